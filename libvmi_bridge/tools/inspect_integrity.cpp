#include "inspect_integrity.hpp"

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "vmi/image_memory.hpp"
#include "vmi/integrity.hpp"
#include "vmi/kallsyms.hpp"
#include "vmi/modules.hpp"

namespace vmi::tools {

namespace {

std::string hex(std::uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

// Everything one sweep's context points at.
struct Guest {
    std::unique_ptr<GuestMemory> owned;
    std::optional<KernelSymbols> syms;
    GuestKernelProfile prof;
    IntegrityContext ctx;
};

bool fill(Guest& g, GuestMemory& mem, std::uint64_t cr3, const std::vector<VcpuState>& vcpus,
          bool la57, std::string& error) {
    auto ks = discover_kernel_symbols(mem, cr3, g.prof, la57);
    if (!ks) {
        error = "kallsyms: " + ks.error().message();
        return false;
    }
    g.syms.emplace(std::move(*ks));
    IntegrityContext& c = g.ctx;
    c.mem = &mem;
    c.cr3 = cr3;
    c.la57 = la57;
    c.symbols = &*g.syms;
    c.offsets = &g.prof.offsets;
    c.init_task_va = g.prof.init_task_va;
    if (auto head = modules_list_head(*g.syms)) {
        if (auto mods = list_modules(mem, cr3, g.prof.offsets, *head, la57)) {
            c.modules = std::move(*mods);
            c.modules_known = true;
        }
    }
    for (const VcpuState& v : vcpus) c.vcpus.push_back({v.cr3, v.gs_base, {}, {}, {}});
    return true;
}

// The baseline snapshot: opened, profiled and swept for its baseline.
std::optional<IntegrityBaseline> baseline_of(const IntegrityArgs& a, std::string& error) {
    Guest g;
    std::vector<std::uint64_t> cr3s = a.cr3s;
    std::vector<VcpuState> vcpus;
    if (is_elf_file(a.against)) {
        auto core = ElfCoreMemory::open(a.against);
        if (!core) {
            error = a.against + ": " + core.error().message();
            return std::nullopt;
        }
        vcpus = (*core)->vcpus();
        if (cr3s.empty()) cr3s = (*core)->vcpu_cr3s();
        g.owned = std::move(*core);
    } else {
        try {
            g.owned = std::make_unique<ImageMemory>(a.against);
        } catch (const std::exception& e) {
            error = a.against + ": " + e.what();
            return std::nullopt;
        }
    }
    for (std::uint64_t cr3 : cr3s) {
        if (cr3 == 0) continue;
        DiscoveryOptions o;
        o.la57 = a.la57;
        auto prof = discover_kernel(*g.owned, cr3, o);
        if (!prof) continue;
        g.prof = *prof;
        std::string why;
        if (!fill(g, *g.owned, cr3, vcpus, a.la57, why)) continue;
        auto b = take_integrity_baseline(g.ctx);
        if (b) return std::move(*b);
        error = a.against + ": baseline: " + b.error().message();
        return std::nullopt;
    }
    error = a.against + ": could not profile the guest kernel";
    return std::nullopt;
}

nlohmann::json finding_json(const IntegrityFinding& f) {
    nlohmann::json j = {{"kind", std::string(to_string(f.kind))},
                        {"severity", std::string(to_string(f.severity))},
                        {"check", f.check},
                        {"message", f.message}};
    if (f.index >= 0) j["index"] = f.index;
    if (!f.name.empty()) j["name"] = f.name;
    if (f.expected != 0) j["expected"] = hex(f.expected);
    if (f.actual != 0) j["actual"] = hex(f.actual);
    if (!f.expected_symbol.empty()) j["expected_symbol"] = f.expected_symbol;
    if (!f.actual_symbol.empty()) j["actual_symbol"] = f.actual_symbol;
    return j;
}

std::string printable(const std::string& s) {
    std::string out;
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        out.push_back(u < 0x20 || u == 0x7f ? '?' : c);
    }
    return out;
}

}  // namespace

int inspect_integrity(GuestMemory& mem, std::uint64_t cr3, const GuestKernelProfile& prof,
                      const std::vector<VcpuState>& vcpus, const IntegrityArgs& a,
                      std::string& error) {
    Guest g;
    g.prof = prof;
    if (!fill(g, mem, cr3, vcpus, a.la57, error)) return -1;
    std::optional<IntegrityBaseline> base;
    if (!a.against.empty()) {
        std::string why;
        base = baseline_of(a, why);
        if (!base) {
            std::fprintf(stderr, "vminsight-inspect: %s\n", why.c_str());
            return 1;
        }
    }
    const IntegrityReport rep = sweep_integrity(g.ctx, base ? &*base : nullptr);
    bool critical = false;
    for (const auto& f : rep.findings) critical = critical || f.severity == Severity::kCritical;
    const double ms = static_cast<double>(rep.stats.duration.count()) / 1e6;
    if (a.json) {
        nlohmann::json list = nlohmann::json::array();
        for (const auto& f : rep.findings) list.push_back(finding_json(f));
        nlohmann::json doc = {
            {"snapshot", a.snapshot},
            {"cr3", hex(cr3)},
            {"baseline", a.against.empty() ? nlohmann::json(nullptr) : nlohmann::json(a.against)},
            {"modules_listed", g.ctx.modules.size()},
            {"pages_read", rep.stats.pages_read},
            {"bytes_read", rep.stats.bytes_read},
            {"sweep_ms", ms},
            {"findings", std::move(list)}};
        if (base) {
            doc["baseline_pages_read"] = base->stats.pages_read;
            doc["baseline_ms"] = static_cast<double>(base->stats.duration.count()) / 1e6;
            doc["text_pages"] = base->text.pages.size();
            doc["rodata_pages"] = base->rodata.pages.size();
        }
        std::printf("%s\n",
                    doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
        for (const auto& f : rep.findings) {
            std::printf("%-8s %-14s %s\n", std::string(to_string(f.severity)).c_str(),
                        std::string(to_string(f.kind)).c_str(), printable(f.message).c_str());
        }
        std::printf("%zu findings; %llu pages (%llu bytes) read in %.1f ms\n", rep.findings.size(),
                    static_cast<unsigned long long>(rep.stats.pages_read),
                    static_cast<unsigned long long>(rep.stats.bytes_read), ms);
    }
    return critical ? 3 : 0;
}

}  // namespace vmi::tools
