// Control-flow tables: the syscall tables, the IDT and the syscall entry MSRs.
#include <algorithm>
#include <array>
#include <cstring>

#include "integrity_internal.hpp"

namespace vmi::integrity {

namespace {

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// A syscall handler's symbol: __x64_sys_read, __ia32_compat_sys_open, sys_ni_syscall ...
bool syscall_symbol(std::string_view name) {
    return starts_with(name, "__x64_sys_") || starts_with(name, "__ia32_sys_") ||
           starts_with(name, "__ia32_compat_sys_") || starts_with(name, "__x64_compat_sys_") ||
           starts_with(name, "__x32_compat_sys_") || name == "sys_ni_syscall";
}

// The absolute rule and the baseline rule for one code pointer of a table.
void check_pointer(Reader& r, FindingKind kind, const std::string& table, std::int64_t index,
                   std::uint64_t actual, std::uint64_t expected, bool symbol_ok,
                   const std::string& what) {
    IntegrityFinding f;
    f.kind = kind;
    f.check = table;
    f.index = index;
    f.actual = actual;
    f.actual_symbol = r.describe(actual);
    // The handler the entry belongs to: the baseline's when known (a hook's target has none).
    f.name = r.symbol_name(expected != 0 ? expected : actual);
    if (expected != 0) {
        f.expected = expected;
        f.expected_symbol = r.describe(expected);
    }
    const bool in_text = r.text().contains(actual);
    if (!in_text) {
        f.severity = Severity::kCritical;
        f.message = what + " points to " + where(r, actual);
    } else if (expected != 0 && expected != actual) {
        f.severity = Severity::kCritical;
        f.message = what + " changed from " + f.expected_symbol + " to " + f.actual_symbol;
    } else if (!symbol_ok) {
        f.severity = Severity::kWarning;
        f.message =
            what + " points into kernel text at " + f.actual_symbol + ", not at a syscall handler";
    } else {
        return;
    }
    if (!in_text && expected != 0 && expected != actual) {
        f.message += " (was " + f.expected_symbol + ")";
    }
    r.add(std::move(f));
}

constexpr std::size_t kGateSize = 16;

std::uint64_t gate_handler(const std::byte* g) {
    std::uint16_t lo = 0, mid = 0, bits = 0;
    std::uint32_t hi = 0;
    std::memcpy(&lo, g, 2);
    std::memcpy(&bits, g + 4, 2);
    std::memcpy(&mid, g + 6, 2);
    std::memcpy(&hi, g + 8, 4);
    if ((bits & 0x8000U) == 0) return 0;  // not present
    return std::uint64_t{lo} | (std::uint64_t{mid} << 16) | (std::uint64_t{hi} << 32);
}

}  // namespace

std::vector<std::uint64_t> read_syscall_table(Reader& r, std::string_view table) {
    const std::uint64_t va = r.sym(table);
    if (va == 0) return {};
    // kallsyms gives no size: read up to the next symbol (bounded) and keep the prefix that
    // ends with the last entry at a syscall handler (what follows is other data).
    auto loc = r.syms().symbolize(va);
    std::size_t n = kMaxSyscalls;
    if (loc && loc->size != 0) n = std::min<std::uint64_t>(loc->size / 8, kMaxSyscalls);
    std::vector<std::uint64_t> e(n);
    if (!r.read(va, std::as_writable_bytes(std::span(e)))) {
        // A shorter readable prefix still serves (the table may end before an unmapped page).
        std::size_t ok = 0;
        for (; ok < n; ++ok) {
            auto v = r.u64(va + ok * 8);
            if (!v) break;
            e[ok] = *v;
        }
        e.resize(ok);
    }
    std::size_t last = 0;
    for (std::size_t i = 0; i < e.size(); ++i) {
        if (r.text().contains(e[i]) && syscall_symbol(r.symbol_name(e[i]))) last = i + 1;
    }
    e.resize(last);
    return e;
}

std::vector<std::uint64_t> read_idt(Reader& r) {
    const std::uint64_t va = r.sym("idt_table");
    if (va == 0) return {};
    std::array<std::byte, kIdtVectors * kGateSize> raw{};
    if (!r.read(va, raw)) return {};
    std::vector<std::uint64_t> out(kIdtVectors);
    for (std::size_t v = 0; v < kIdtVectors; ++v) out[v] = gate_handler(raw.data() + v * kGateSize);
    return out;
}

void check_syscall_tables(Reader& r, const IntegrityBaseline* base) {
    if (r.text().empty()) return r.failed("sys_call_table", "kernel text bounds unknown");
    for (std::string_view table : {"sys_call_table", "ia32_sys_call_table"}) {
        const bool x64 = table == "sys_call_table";
        if (r.sym(table) == 0) {
            if (x64) r.failed(std::string(table), "no such symbol");
            continue;
        }
        std::vector<std::uint64_t> now = read_syscall_table(r, table);
        const std::vector<std::uint64_t>* was = nullptr;
        if (base != nullptr) was = x64 ? &base->syscalls : &base->ia32_syscalls;
        // With a baseline the table keeps its attach-time length (a hooked last entry would
        // otherwise shorten it); read again at that length.
        if (was != nullptr && was->size() > now.size()) {
            now.resize(was->size());
            const std::uint64_t va = r.sym(table);
            if (!r.read(va, std::as_writable_bytes(std::span(now)))) {
                r.failed(std::string(table), "unreadable at " + hex(va));
                continue;
            }
        }
        if (now.empty()) {
            r.failed(std::string(table), "no entry points at a syscall handler");
            continue;
        }
        for (std::size_t i = 0; i < now.size(); ++i) {
            const std::uint64_t expected = was != nullptr && i < was->size() ? (*was)[i] : 0;
            check_pointer(r, FindingKind::kSyscallHook, std::string(table),
                          static_cast<std::int64_t>(i), now[i], expected,
                          syscall_symbol(r.symbol_name(now[i])),
                          std::string(x64 ? "syscall " : "ia32 syscall ") + std::to_string(i));
        }
    }
}

namespace {

// Reserved exception vectors (and #MC without MCE) keep the boot-time stub of
// early_idt_handler_array (9 bytes each, 13 with IBT), in init text freed after boot.
bool early_stub(Reader& r, std::size_t vector, std::uint64_t handler) {
    const std::uint64_t array = r.sym("early_idt_handler_array");
    if (array == 0 || vector >= 32) return false;
    return handler == array + vector * 9 || handler == array + vector * 13;
}

}  // namespace

void check_idt(Reader& r, const IntegrityBaseline* base) {
    if (r.text().empty()) return r.failed("idt_table", "kernel text bounds unknown");
    if (r.sym("idt_table") == 0) return r.failed("idt_table", "no such symbol");
    const std::vector<std::uint64_t> now = read_idt(r);
    if (now.empty()) return r.failed("idt_table", "unreadable at " + hex(r.sym("idt_table")));
    const bool have_base = base != nullptr && base->idt.size() == now.size();
    for (std::size_t v = 0; v < now.size(); ++v) {
        const std::uint64_t expected = have_base ? base->idt[v] : 0;
        if (now[v] == 0) {
            if (expected != 0) {
                IntegrityFinding f;
                f.kind = FindingKind::kIdtHook;
                f.severity = Severity::kWarning;
                f.check = "idt_table";
                f.index = static_cast<std::int64_t>(v);
                f.expected = expected;
                f.expected_symbol = r.describe(expected);
                f.message = "IDT vector " + std::to_string(v) + " no longer present (was " +
                            f.expected_symbol + ")";
                r.add(std::move(f));
            }
            continue;
        }
        if (early_stub(r, v, now[v]) && (expected == 0 || expected == now[v])) continue;
        check_pointer(r, FindingKind::kIdtHook, "idt_table", static_cast<std::int64_t>(v), now[v],
                      expected, true, "IDT vector " + std::to_string(v));
    }
}

void check_msrs(Reader& r) {
    struct Msr {
        const char* name;
        std::optional<std::uint64_t> VcpuView::*field;
        std::array<const char*, 2> expect;  // acceptable entry symbols
    };
    const Msr msrs[] = {
        {"LSTAR", &VcpuView::lstar, {"entry_SYSCALL_64", nullptr}},
        {"CSTAR", &VcpuView::cstar, {"entry_SYSCALL_compat", "ignore_sysret"}},
        {"SYSENTER_EIP", &VcpuView::sysenter_eip, {"entry_SYSENTER_compat", nullptr}},
    };
    const auto& vcpus = r.ctx().vcpus;
    for (std::size_t c = 0; c < vcpus.size(); ++c) {
        for (const Msr& m : msrs) {
            const std::optional<std::uint64_t>& v = vcpus[c].*m.field;
            if (!v) continue;
            std::uint64_t want = 0;
            bool ok = false;
            for (const char* s : m.expect) {
                if (s == nullptr) continue;
                const std::uint64_t a = r.sym(s);
                if (a == 0) continue;
                if (want == 0) want = a;
                ok = ok || a == *v;
            }
            // SYSENTER_EIP is 0 on kernels without 32-bit emulation.
            if (ok || want == 0 || (*v == 0 && std::string_view(m.name) == "SYSENTER_EIP")) {
                continue;
            }
            IntegrityFinding f;
            f.kind = FindingKind::kMsrHook;
            f.severity = Severity::kCritical;
            f.check = m.name;
            f.index = static_cast<std::int64_t>(c);
            f.name = m.name;
            f.expected = want;
            f.expected_symbol = r.describe(want);
            f.actual = *v;
            f.actual_symbol = r.describe(*v);
            f.message = std::string(m.name) + " of vCPU " + std::to_string(c) + " is " +
                        where(r, *v) + ", not " + f.expected_symbol;
            r.add(std::move(f));
        }
    }
}

}  // namespace vmi::integrity
