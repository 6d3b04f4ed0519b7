// Loaded kernel modules of a Linux guest: the kernel's `modules` list (its head found through
// kallsyms) walked with struct module's layout from the guest's own BTF. 6.1 describes a
// module's memory with core_layout/init_layout, 6.4 and later with mem[MOD_MEM_NUM_TYPES];
// both are handled (LinuxOffsets' module group).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmi/btf_profile.hpp"
#include "vmi/guest_memory.hpp"
#include "vmi/kallsyms.hpp"
#include "vmi/result.hpp"

namespace vmi {

/// enum module_state.
enum class ModuleState : std::int32_t { kLive = 0, kComing = 1, kGoing = 2, kUnformed = 3 };

struct KernelModule {
    std::uint64_t module_va = 0;  // struct module*
    std::string name;             // < MODULE_NAME_LEN chars, non-printables replaced by '?'
    std::int32_t state = 0;       // raw enum module_state
    std::uint64_t base = 0;       // start of the module's text, as /proc/modules shows it
    std::uint64_t size = 0;       // as /proc/modules: the sum of the region sizes
    std::int64_t refcount = -1;   // refcnt - 1, as /proc/modules; -1 if unknown
};

/// /proc/modules' words: "Live", "Loading", "Unloading"; "Unformed" and "?" otherwise.
std::string_view module_state_name(std::int32_t state);

/// Hard cap on list entries (a real guest loads a few hundred modules at most).
inline constexpr std::size_t kMaxModules = 4096;

/// Walks the circular list whose head is at `modules_head_va` (the kernel's `modules`, a
/// struct list_head), newest module first like /proc/modules, reading kernel memory through
/// kernel_pgd_from_cr3(any_cr3). Bounded by max_modules entries (clamped to kMaxModules) and
/// cycle-safe. Errors: kNotFound (the offsets lack the module group), kBadPointer (a link that
/// is not a kernel pointer or does not link back), kCycle (a loop not through the head),
/// kLimitExceeded (too long), kInvalidFormat (a name without its NUL within MODULE_NAME_LEN,
/// offsets spanning more than 64 KiB), or the memory's own faults.
Result<std::vector<KernelModule>> list_modules(GuestMemory& mem, std::uint64_t any_cr3,
                                               const LinuxOffsets& off,
                                               std::uint64_t modules_head_va, bool la57 = false,
                                               std::size_t max_modules = kMaxModules);

/// Address of the list head `modules` among the guest's symbols (a data or bss symbol).
std::optional<std::uint64_t> modules_list_head(const KernelSymbols& syms);

}  // namespace vmi
