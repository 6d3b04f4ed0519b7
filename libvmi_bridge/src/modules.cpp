#include "vmi/modules.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <unordered_set>

#include "vmi/page_cache.hpp"
#include "vmi/page_walker.hpp"

namespace vmi {

namespace {

constexpr std::uint64_t kMaxModuleSpan = 64ULL * 1024;

bool plausible_kernel_ptr(std::uint64_t va, bool la57) {
    return is_canonical(va, la57) && (va >> 63) != 0 && (va & 7) == 0;
}

std::string hex(std::uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

template <class T>
T load(std::span<const std::byte> b, std::uint64_t off) {
    T v{};
    std::memcpy(&v, b.data() + off, sizeof(T));
    return v;
}

}  // namespace

std::string_view module_state_name(std::int32_t state) {
    switch (static_cast<ModuleState>(state)) {
        case ModuleState::kLive:
            return "Live";
        case ModuleState::kComing:
            return "Loading";
        case ModuleState::kGoing:
            return "Unloading";
        case ModuleState::kUnformed:
            return "Unformed";
    }
    return "?";
}

Result<std::vector<KernelModule>> list_modules(GuestMemory& mem, std::uint64_t any_cr3,
                                               const LinuxOffsets& off,
                                               std::uint64_t modules_head_va, bool la57,
                                               std::size_t max_modules) {
    if (!off.has_modules) return Error{Fault::kNotFound, "the guest's BTF lacks struct module"};
    max_modules = std::min(max_modules, kMaxModules);
    // One read per module covers every field used.
    std::uint64_t lo =
        std::min({off.module_list, off.module_name, off.module_state, off.module_base});
    std::uint64_t hi = std::max({off.module_list + 16, off.module_name + off.module_name_size,
                                 off.module_state + 4, off.module_base + 8});
    if (off.module_refcnt != 0) {
        lo = std::min(lo, off.module_refcnt);
        hi = std::max(hi, off.module_refcnt + 4);
    }
    for (std::size_t i = 0; i < std::min(off.module_size_count, off.module_sizes.size()); ++i) {
        lo = std::min(lo, off.module_sizes[i]);
        hi = std::max(hi, off.module_sizes[i] + 4);
    }
    if (hi - lo > kMaxModuleSpan || off.module_name_size == 0) {
        return Error{Fault::kInvalidFormat,
                     "struct module offsets span " + std::to_string(hi - lo)};
    }
    PageCache cache(mem);
    const std::uint64_t kcr3 = kernel_pgd_from_cr3(any_cr3);
    std::vector<std::byte> buf(static_cast<std::size_t>(hi - lo));

    if (!plausible_kernel_ptr(modules_head_va, la57) || !range_fits(modules_head_va, 16)) {
        return Error{Fault::kBadPointer, "modules list head " + hex(modules_head_va)};
    }
    std::array<std::byte, 16> head{};
    if (auto st = read_virt(cache, kcr3, modules_head_va, head, la57); !st) {
        return Error{st.fault(),
                     "modules list head " + hex(modules_head_va) + ": " + st.error().message()};
    }
    const auto head_prev = load<std::uint64_t>(head, 8);
    std::uint64_t cur = load<std::uint64_t>(head, 0);
    std::uint64_t prev = modules_head_va;
    std::unordered_set<std::uint64_t> seen;
    std::vector<KernelModule> out;
    while (cur != modules_head_va) {
        if (out.size() >= max_modules) {
            return Error{Fault::kLimitExceeded,
                         "modules list longer than " + std::to_string(max_modules)};
        }
        if (!plausible_kernel_ptr(cur, la57) || cur < off.module_list) {
            return Error{Fault::kBadPointer, "modules list link " + hex(cur)};
        }
        if (!seen.insert(cur).second) {
            return Error{Fault::kCycle, "modules list loops at " + hex(cur)};
        }
        const std::uint64_t m = cur - off.module_list;
        if (!range_fits(m + lo, hi - lo)) return Error{Fault::kBadPointer, "module " + hex(m)};
        if (auto st = read_virt(cache, kcr3, m + lo, buf, la57); !st) {
            return Error{st.fault(), "module " + hex(m) + ": " + st.error().message()};
        }
        const std::span<const std::byte> b(buf);
        const auto next = load<std::uint64_t>(b, off.module_list - lo);
        const auto back = load<std::uint64_t>(b, off.module_list + 8 - lo);
        if (back != prev) {
            return Error{Fault::kBadPointer, "module " + hex(m) + ": list not linked back"};
        }
        KernelModule km;
        km.module_va = m;
        const auto name = b.subspan(static_cast<std::size_t>(off.module_name - lo),
                                    static_cast<std::size_t>(off.module_name_size));
        const auto nul = std::find(name.begin(), name.end(), std::byte{0});
        if (nul == name.end()) {
            return Error{Fault::kInvalidFormat, "module " + hex(m) + ": name not NUL-terminated"};
        }
        for (auto it = name.begin(); it != nul; ++it) {
            const auto c = static_cast<unsigned char>(*it);
            km.name.push_back(c > 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
        }
        km.state = load<std::int32_t>(b, off.module_state - lo);
        km.base = load<std::uint64_t>(b, off.module_base - lo);
        for (std::size_t i = 0; i < std::min(off.module_size_count, off.module_sizes.size()); ++i) {
            km.size += load<std::uint32_t>(b, off.module_sizes[i] - lo);
        }
        if (off.module_refcnt != 0) {
            km.refcount = std::int64_t{load<std::int32_t>(b, off.module_refcnt - lo)} - 1;
        }
        out.push_back(std::move(km));
        prev = cur;
        cur = next;
    }
    if (head_prev != prev) {
        return Error{Fault::kBadPointer, "modules list head " + hex(modules_head_va) +
                                             ": prev does not point at the last module"};
    }
    return out;
}

std::optional<std::uint64_t> modules_list_head(const KernelSymbols& syms) {
    for (const KernelSymbol& s : syms.lookup("modules")) {
        if (std::strchr("dDbB", s.type) != nullptr && s.type != '\0') return s.address;
    }
    return std::nullopt;
}

}  // namespace vmi
