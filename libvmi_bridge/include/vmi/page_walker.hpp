// x86-64 guest virtual -> guest physical translation (4- and 5-level paging, 4 KiB, 2 MiB and
// 1 GiB pages). Each walk reads at most 5 entries, so it is bounded whatever the guest wrote.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "vmi/guest_memory.hpp"
#include "vmi/result.hpp"

namespace vmi {

/// Physical-address bits of a CR3 / page-table entry (bits 51:12).
inline constexpr std::uint64_t kPteAddrMask = 0x000F'FFFF'FFFF'F000ULL;

/// Top-level table address of a CR3: drops PCID (bits 0-11), bit 63 (no-flush) and the other
/// non-address bits. Keeps bit 12, so a KPTI user CR3 yields the *user* PGD.
constexpr std::uint64_t pgd_from_cr3(std::uint64_t cr3) noexcept { return cr3 & kPteAddrMask; }

/// Kernel PGD of a CR3: like pgd_from_cr3() but also clears bit 12. With KPTI the user PGD is
/// the kernel PGD + 4 KiB (the pair is allocated 8 KiB-aligned), so this maps both user and
/// kernel CR3 values of a process to the same address, which equals the physical address of
/// mm->pgd.
constexpr std::uint64_t kernel_pgd_from_cr3(std::uint64_t cr3) noexcept {
    return cr3 & kPteAddrMask & ~std::uint64_t{0x1000};
}

/// True if `va` is canonical: 48-bit (4-level) or 57-bit (5-level, la57) sign extension.
constexpr bool is_canonical(std::uint64_t va, bool la57) noexcept {
    const unsigned bits = la57 ? 57 : 48;
    const auto sign_extended =
        static_cast<std::uint64_t>(static_cast<std::int64_t>(va << (64 - bits)) >> (64 - bits));
    return sign_extended == va;
}

struct Translation {
    std::uint64_t pa = 0;         // guest-physical address of `va`
    std::uint64_t page_size = 0;  // 4 KiB, 2 MiB or 1 GiB
};

/// Walks the tables rooted at pgd_from_cr3(cr3). Faults: kNonCanonical, kNotPresent,
/// kReservedBit (PS in PML5E/PML4E, reserved bits of large-page entries, address bits at or
/// above `phys_bits`), or the memory's own read fault. Access rights (U/S, R/W, NX) are not
/// checked: the hypervisor reads with supervisor rights.
Result<Translation> translate_ex(GuestMemory& mem, std::uint64_t cr3, std::uint64_t va, bool la57,
                                 unsigned phys_bits = 52);

/// translate_ex() returning only the physical address.
Result<std::uint64_t> translate(GuestMemory& mem, std::uint64_t cr3, std::uint64_t va, bool la57,
                                unsigned phys_bits = 52);

/// Reads `out.size()` bytes at guest-virtual `va`, translating each page separately.
/// All or nothing; kLimitExceeded for reads larger than kMaxVirtRead.
inline constexpr std::size_t kMaxVirtRead = 1 << 20;
Status read_virt(GuestMemory& mem, std::uint64_t cr3, std::uint64_t va, std::span<std::byte> out,
                 bool la57 = false);

/// Little-endian scalar reads at a guest-virtual address.
Result<std::uint64_t> read_virt_u64(GuestMemory& mem, std::uint64_t cr3, std::uint64_t va,
                                    bool la57 = false);
Result<std::uint32_t> read_virt_u32(GuestMemory& mem, std::uint64_t cr3, std::uint64_t va,
                                    bool la57 = false);

}  // namespace vmi
