// The integrity sweep: the reader every check shares, the baseline and the order of checks.
#include "vmi/integrity.hpp"

#include <algorithm>
#include <cstdio>

#include "integrity_internal.hpp"
#include "vmi/page_walker.hpp"

namespace vmi {

std::string_view to_string(FindingKind k) noexcept {
    switch (k) {
        case FindingKind::kSyscallHook:
            return "syscall_hook";
        case FindingKind::kIdtHook:
            return "idt_hook";
        case FindingKind::kMsrHook:
            return "msr_hook";
        case FindingKind::kTextModified:
            return "text_modified";
        case FindingKind::kPointerHook:
            return "pointer_hook";
        case FindingKind::kHiddenModule:
            return "hidden_module";
        case FindingKind::kHiddenTask:
            return "hidden_task";
        case FindingKind::kCheckFailed:
            return "check_failed";
    }
    return "?";
}

std::string_view to_string(Severity s) noexcept {
    switch (s) {
        case Severity::kInfo:
            return "info";
        case Severity::kWarning:
            return "warning";
        case Severity::kCritical:
            return "critical";
    }
    return "?";
}

namespace integrity {

std::string hex(std::uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

std::string where(const Reader& r, std::uint64_t va) {
    const std::string d = r.describe(va);
    if (r.module_at(va) != nullptr) return "module code " + d;
    if (r.text().contains(va)) return "kernel text " + d;
    return hex(va) + ", outside kernel text and every listed module";
}

Status CountingMemory::read_phys(std::uint64_t gpa, std::span<std::byte> out) {
    if (!out.empty() && range_fits(gpa, out.size())) {
        for (std::uint64_t f = gpa / kPageSize; f <= (gpa + out.size() - 1) / kPageSize; ++f) {
            frames_.insert(f);
        }
    }
    bytes_ += out.size();
    return backing_->read_phys(gpa, out);
}

Reader::Reader(const IntegrityContext& ctx)
    : ctx_(&ctx), counter_(*ctx.mem), tables_(counter_), kcr3_(kernel_pgd_from_cr3(ctx.cr3)) {
    text_.start = sym("_stext");
    if (text_.start == 0) text_.start = sym("_text");
    text_.end = sym("_etext");
    if (text_.end <= text_.start) text_ = {};
    rodata_ = {sym("__start_rodata"), sym("__end_rodata")};
    if (rodata_.end <= rodata_.start) rodata_ = {};
}

Status Reader::read(std::uint64_t va, std::span<std::byte> out) {
    if (!range_fits(va, out.size())) return Fault::kNonCanonical;
    std::size_t done = 0;
    while (done < out.size()) {
        const std::uint64_t addr = va + done;
        auto t = translate_ex(tables_, kcr3_, addr, ctx_->la57);
        if (!t) return std::move(t).error();
        const std::size_t n = static_cast<std::size_t>(
            std::min<std::uint64_t>(kPageSize - (addr & kPageMask), out.size() - done));
        // Whole pages (hashing) bypass the cache; small reads share it.
        GuestMemory& m = n == kPageSize ? static_cast<GuestMemory&>(counter_) : tables_;
        if (auto st = m.read_phys(t->pa, out.subspan(done, n)); !st) return st;
        done += n;
    }
    return {};
}

Result<std::uint64_t> Reader::u64(std::uint64_t va) {
    std::uint64_t v = 0;
    auto st = read(va, std::as_writable_bytes(std::span(&v, 1)));
    if (!st) return std::move(st).error();
    return v;
}

std::uint64_t Reader::sym(std::string_view name) const {
    return syms().address_of(name).value_or(0);
}

const KernelModule* Reader::module_at(std::uint64_t va) const {
    for (const KernelModule& m : ctx_->modules) {
        if (m.base != 0 && va >= m.base && va - m.base < m.size) return &m;
    }
    return nullptr;
}

std::string Reader::describe(std::uint64_t va) const {
    if (const KernelModule* m = module_at(va)) return "[" + m->name + "]+" + hex(va - m->base);
    if (auto loc = syms().symbolize(va); loc && (text_.contains(va) || rodata_.contains(va))) {
        return std::string(loc->symbol.name) + "+" + hex(loc->offset);
    }
    return {};
}

std::string Reader::symbol_name(std::uint64_t va) const {
    auto loc = syms().symbolize(va);
    return loc ? std::string(loc->symbol.name) : std::string();
}

void Reader::failed(std::string check, std::string why) {
    IntegrityFinding f;
    f.kind = FindingKind::kCheckFailed;
    f.severity = Severity::kWarning;
    f.message = check + ": cannot check: " + why;
    f.check = std::move(check);
    findings_.push_back(std::move(f));
}

IntegrityStats Reader::stats() const {
    IntegrityStats s;
    s.pages_read = counter_.pages();
    s.bytes_read = counter_.bytes();
    return s;
}

}  // namespace integrity

using Clock = std::chrono::steady_clock;

Result<IntegrityBaseline> take_integrity_baseline(const IntegrityContext& ctx) {
    if (ctx.mem == nullptr || ctx.symbols == nullptr || ctx.offsets == nullptr) {
        return Error{Fault::kInvalidFormat, "integrity context incomplete"};
    }
    const auto t0 = Clock::now();
    integrity::Reader r(ctx);
    if (r.text().empty()) return Error{Fault::kNotFound, "kallsyms lacks _stext/_etext"};
    IntegrityBaseline b;
    b.syscalls = integrity::read_syscall_table(r, "sys_call_table");
    b.ia32_syscalls = integrity::read_syscall_table(r, "ia32_sys_call_table");
    b.idt = integrity::read_idt(r);
    const auto masks = integrity::self_patched_sites(r);
    b.text = integrity::hash_range(r, r.text(), masks);
    if (!r.rodata().empty()) b.rodata = integrity::hash_range(r, r.rodata(), masks);
    b.fn_pointers = integrity::read_kernel_pointers(r);
    b.stats = r.stats();
    b.stats.duration = Clock::now() - t0;
    return b;
}

IntegrityReport sweep_integrity(const IntegrityContext& ctx, const IntegrityBaseline* baseline,
                                const IntegrityOptions& opts) {
    IntegrityReport rep;
    if (ctx.mem == nullptr || ctx.symbols == nullptr || ctx.offsets == nullptr) {
        rep.findings.push_back({FindingKind::kCheckFailed,
                                Severity::kWarning,
                                "context",
                                -1,
                                {},
                                0,
                                0,
                                {},
                                {},
                                "integrity context incomplete"});
        return rep;
    }
    const auto t0 = Clock::now();
    integrity::Reader r(ctx);
    if (opts.syscalls) integrity::check_syscall_tables(r, baseline);
    if (opts.idt) integrity::check_idt(r, baseline);
    if (opts.msrs) integrity::check_msrs(r);
    if (opts.text && baseline != nullptr) integrity::check_text(r, *baseline);
    if (opts.pointers) integrity::check_kernel_pointers(r, baseline);
    if (opts.modules) integrity::check_hidden_modules(r);
    if (opts.tasks) integrity::check_hidden_tasks(r);
    rep.findings = std::move(r.findings());
    rep.stats = r.stats();
    rep.stats.duration = Clock::now() - t0;
    return rep;
}

}  // namespace vmi
