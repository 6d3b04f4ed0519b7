// Virtual KASLR slide of a Linux guest, found from its page tables alone.
#pragma once

#include <cstdint>

#include "vmi/guest_memory.hpp"
#include "vmi/result.hpp"

namespace vmi {

/// The kernel image window: the top 2 GiB minus the module area, one PDPT entry wide.
inline constexpr std::uint64_t kKernelImageStart = 0xffff'ffff'8000'0000ULL;
inline constexpr std::uint64_t kKernelImageEnd = 0xffff'ffff'c000'0000ULL;

/// Virtual address of the first present mapping in [kKernelImageStart, kKernelImageEnd),
/// at 2 MiB granularity. Linux clears the level2_kernel_pgt slots below _text during boot, so
/// this is the slid _text. Walks the kernel PGD (kernel_pgd_from_cr3(cr3)), so any user or
/// kernel CR3 of the guest works, KPTI or not. Examines at most 512 PMD entries (one 4 KiB
/// read). kNotFound if nothing in the window is mapped.
Result<std::uint64_t> find_kernel_text_va(GuestMemory& mem, std::uint64_t any_cr3, bool la57);

/// Slide to add to System.map addresses: find_kernel_text_va() - system_map_text
/// (modulo 2^64, so "slid = unslid + slide" always holds).
Result<std::uint64_t> find_kaslr_slide(GuestMemory& mem, std::uint64_t any_cr3, bool la57,
                                       std::uint64_t system_map_text);

}  // namespace vmi
