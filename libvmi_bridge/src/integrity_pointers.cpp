// Kernel function pointers in writable data: the ops structs rootkits hook (tcp_prot.recvmsg,
// n_tty_ops.receive_buf ...). Rodata is hashed; these live in .data, so each pointer is
// checked by value: in kernel text always, and unchanged since the baseline.
#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "integrity_internal.hpp"

namespace vmi::integrity {

namespace {

constexpr const char* kCheck = "kernel_pointers";

// Appends the object's pointers to `out`; false if it cannot be read as a whole.
bool read_object(Reader& r, const FnPointerObject& obj, std::uint64_t va,
                 std::vector<FnPointerValue>& out) {
    std::uint64_t end = 0;
    for (const NamedMember& m : obj.members) end = std::max(end, m.offset + 8);
    if (end == 0 || end > kMaxFnPointerObject || obj.members.size() > kMaxFnPointers) {
        return false;
    }
    std::vector<std::byte> raw(static_cast<std::size_t>(end));
    if (!r.read(va, raw)) return false;
    for (const NamedMember& m : obj.members) {
        std::uint64_t v = 0;
        std::memcpy(&v, raw.data() + m.offset, sizeof v);
        out.push_back({obj.symbol + "." + m.name, va + m.offset, v});
    }
    return true;
}

// Every object the kernel has (a missing symbol is an older or differently built kernel, left
// out quietly); an unreadable one is a failed check when `report`.
std::vector<FnPointerValue> read_all(Reader& r, bool report) {
    std::vector<FnPointerValue> out;
    for (const FnPointerObject& obj : r.ctx().offsets->fn_pointer_objects) {
        const std::uint64_t va = r.sym(obj.symbol);
        if (va == 0) continue;
        if (!read_object(r, obj, va, out) && report) {
            r.failed(kCheck, obj.symbol + " unreadable at " + hex(va));
        }
    }
    return out;
}

}  // namespace

std::vector<FnPointerValue> read_kernel_pointers(Reader& r) { return read_all(r, false); }

void check_kernel_pointers(Reader& r, const IntegrityBaseline* base) {
    if (r.ctx().offsets->fn_pointer_objects.empty()) return;  // a layout without them
    if (r.text().empty()) return r.failed(kCheck, "kernel text bounds unknown");
    std::unordered_map<std::uint64_t, const FnPointerValue*> was;
    if (base != nullptr) {
        for (const FnPointerValue& p : base->fn_pointers) was.emplace(p.va, &p);
    }
    for (const FnPointerValue& p : read_all(r, true)) {
        const auto it = was.find(p.va);
        const bool known = it != was.end() && it->second->name == p.name;
        const std::uint64_t expected = known ? it->second->value : 0;
        const bool in_text = r.text().contains(p.value);
        if (p.value == 0 ? expected == 0 : in_text && (!known || expected == p.value)) continue;
        IntegrityFinding f;
        f.kind = FindingKind::kPointerHook;
        f.severity = p.value == 0 ? Severity::kWarning : Severity::kCritical;
        f.check = kCheck;
        f.name = p.name;
        f.expected = expected;
        f.expected_symbol = expected != 0 ? r.describe(expected) : std::string();
        f.actual = p.value;
        f.actual_symbol = p.value != 0 ? r.describe(p.value) : std::string();
        const std::string was_text =
            expected == 0 ? "NULL"
                          : (f.expected_symbol.empty() ? hex(expected) : f.expected_symbol);
        if (p.value == 0) {
            f.message = p.name + " cleared (was " + was_text + ")";
        } else if (!in_text) {
            f.message = p.name + " points to " + where(r, p.value);
            if (known && expected != p.value) f.message += " (was " + was_text + ")";
        } else {
            f.message = p.name + " changed from " + was_text + " to " + f.actual_symbol;
        }
        r.add(std::move(f));
    }
}

}  // namespace vmi::integrity
