#include "guest_integrity.hpp"

#include <algorithm>
#include <chrono>

#include "event_fields.hpp"
#include "vmi/linux_model.hpp"
#include "vmi/modules.hpp"

namespace vmid {
namespace {

double ms(std::chrono::nanoseconds d) {
    return std::chrono::duration<double, std::milli>(d).count();
}

// What a finding is about, for rules and for telling one finding from another.
std::string target_of(const vmi::IntegrityFinding& f) {
    std::string t = f.check;
    if (f.index >= 0) t += "[" + std::to_string(f.index) + "]";
    return t;
}

std::string key_of(const vmi::IntegrityFinding& f) {
    return std::string(vmi::to_string(f.kind)) + "|" + target_of(f) + "|" + f.name + "|" +
           hex(f.actual);
}

}  // namespace

nlohmann::json hidden_process_fields(const vmi::Process& p) {
    nlohmann::json proc = {{"pid", p.pid},
                           {"name", p.comm},
                           {"task", hex(p.task_va)},
                           {"start_time_ns", p.start_time_ns},
                           {"kernel_thread", p.mm_va == 0}};
    if (p.ppid >= 0) proc["ppid"] = p.ppid;
    if (p.pgd_pa) proc["cr3"] = hex(p.pgd_pa);
    if (!p.exe.empty()) proc["exe"] = p.exe;
    if (!p.argv.empty()) proc["args"] = p.argv;
    if (p.uid >= 0) proc["uid"] = p.uid;
    if (p.euid >= 0) proc["euid"] = p.euid;
    if (p.gid >= 0) proc["gid"] = p.gid;
    if (p.threads >= 0) proc["threads"] = p.threads;
    return proc;
}

nlohmann::json tamper_event(const vmi::IntegrityFinding& f) {
    nlohmann::json t = {{"kind", vmi::to_string(f.kind)},
                        {"target", target_of(f)},
                        {"severity", vmi::to_string(f.severity)},
                        {"message", f.message}};
    if (!f.name.empty()) t["name"] = f.name;
    if (f.expected) t["expected"] = hex(f.expected);
    if (f.actual) t["actual"] = hex(f.actual);
    if (!f.expected_symbol.empty()) t["expected_symbol"] = f.expected_symbol;
    if (!f.actual_symbol.empty()) t["actual_symbol"] = f.actual_symbol;
    return {{"@timestamp", utc_now()},
            {"event", {{"kind", "event"}, {"category", "host"}, {"action", "guest-tampered"}}},
            {"vminsight", {{"tamper", std::move(t)}}}};
}

std::optional<std::string> GuestIntegrity::start(vmi::GuestMemory& mem, std::uint64_t cr3,
                                                 const vmi::GuestKernelProfile& prof) {
    const auto t0 = std::chrono::steady_clock::now();
    mem_ = &mem;
    prof_ = prof;
    if (!syms_) {
        auto ks = vmi::discover_kernel_symbols(mem, cr3, prof);
        if (!ks) return failed_ = "kallsyms: " + ks.error().message();
        syms_.emplace(std::move(*ks));
    }
    vmi::IntegrityContext ctx;
    ctx.mem = &mem;
    ctx.cr3 = cr3;
    ctx.symbols = &*syms_;
    ctx.offsets = &prof_.offsets;
    ctx.init_task_va = prof_.init_task_va;
    auto b = vmi::take_integrity_baseline(ctx);
    if (!b) return failed_ = "baseline: " + b.error().message();
    baseline_.emplace(std::move(*b));
    failed_.clear();
    baseline_ms_ = ms(std::chrono::steady_clock::now() - t0);
    return std::nullopt;
}

std::vector<nlohmann::json> GuestIntegrity::sweep(std::uint64_t cr3,
                                                  std::vector<vmi::VcpuView> vcpus) {
    std::vector<nlohmann::json> out;
    if (!baseline_ || !mem_) return out;
    vmi::IntegrityContext ctx;
    ctx.mem = mem_;
    ctx.cr3 = cr3;
    ctx.symbols = &*syms_;
    ctx.offsets = &prof_.offsets;
    ctx.init_task_va = prof_.init_task_va;
    ctx.vcpus = std::move(vcpus);
    if (auto head = vmi::modules_list_head(*syms_))
        if (auto mods = vmi::list_modules(*mem_, cr3, prof_.offsets, *head)) {
            ctx.modules = std::move(*mods);
            ctx.modules_known = true;
        }
    const vmi::IntegrityReport rep = vmi::sweep_integrity(ctx, &*baseline_);
    ++sweeps_;
    last_ = rep.stats;
    const double took = ms(rep.stats.duration);
    sweep_ms_total_ += took;
    sweep_ms_max_ = std::max(sweep_ms_max_, took);
    std::set<std::string> now;
    for (const auto& f : rep.findings) {
        if (f.kind == vmi::FindingKind::kCheckFailed) {
            ++check_failures_;  // a guest mid-change, or one we cannot read: not an alert
            last_check_failure_ = f.message;  // "tasks: cannot check: ..."
            continue;
        }
        std::string key = key_of(f);
        if (!active_.contains(key)) {
            ++findings_;
            out.push_back(tamper_event(f));
            // A hidden process, with everything its task_struct still tells (it runs).
            if (f.kind == vmi::FindingKind::kHiddenTask && f.actual) {
                const vmi::LinuxGuest guest(*mem_, prof_.offsets, prof_.init_task_va);
                if (auto p = guest.read_process(cr3, f.actual))
                    out.back()["process"] = hidden_process_fields(*p);
                else
                    out.back()["process"] = {{"pid", f.index}, {"name", f.name}};
            }
        }
        now.insert(std::move(key));
    }
    active_ = std::move(now);
    return out;
}

std::vector<std::string> GuestIntegrity::describe(std::uint64_t cr3,
                                                  std::span<const std::uint64_t> vas) const {
    std::vector<std::string> out(vas.size());
    if (!syms_ || !mem_) return out;
    std::vector<vmi::KernelModule> mods;
    if (auto head = vmi::modules_list_head(*syms_))
        if (auto m = vmi::list_modules(*mem_, cr3, prof_.offsets, *head)) mods = std::move(*m);
    const auto text = syms_->lookup("_stext"), etext = syms_->lookup("_etext");
    for (std::size_t i = 0; i < vas.size(); ++i) {
        const std::uint64_t va = vas[i];
        const auto mod = std::find_if(mods.begin(), mods.end(), [va](const auto& m) {
            return va >= m.base && va - m.base < m.size;
        });
        if (mod != mods.end()) {
            out[i] = "[" + mod->name + "]+" + hex(va - mod->base);
        } else if (!text.empty() && !etext.empty() && va >= text[0].address &&
                   va < etext[0].address) {
            if (auto loc = syms_->symbolize(va))
                out[i] = std::string(loc->symbol.name) + "+" + hex(loc->offset);
        }
    }
    return out;
}

nlohmann::json GuestIntegrity::status() const {
    return {{"state", baseline_         ? "watching"
                      : failed_.empty() ? "waiting"
                                        : failed_},
            {"baseline_ms", baseline_ms_},
            {"sweeps", sweeps_},
            {"findings", findings_},
            {"active", active_.size()},
            {"check_failures", check_failures_},
            {"last_check_failure", last_check_failure_},
            {"last_sweep_ms", ms(last_.duration)},
            {"mean_sweep_ms", sweeps_ ? sweep_ms_total_ / static_cast<double>(sweeps_) : 0.0},
            {"max_sweep_ms", sweep_ms_max_},
            {"last_sweep_pages", last_.pages_read}};
}

}  // namespace vmid
