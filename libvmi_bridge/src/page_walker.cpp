#include "vmi/page_walker.hpp"

#include <algorithm>
#include <array>
#include <cstring>

namespace vmi {

namespace {

constexpr std::uint64_t kPresent = 1ULL << 0;
constexpr std::uint64_t kPageSizeBit = 1ULL << 7;
// Large-page entries: bit 12 is PAT, bits up to the page alignment are reserved.
constexpr std::uint64_t kReserved1G = 0x3FFF'E000ULL;  // bits 29:13
constexpr std::uint64_t kReserved2M = 0x001F'E000ULL;  // bits 20:13

// Bits [51:phys_bits] of an entry must be zero.
constexpr std::uint64_t above_phys_mask(unsigned phys_bits) noexcept {
    if (phys_bits >= 52) return 0;
    return kPteAddrMask & ~((1ULL << phys_bits) - 1);
}

template <class T>
Result<T> read_virt_scalar(GuestMemory& mem, std::uint64_t cr3, std::uint64_t va, bool la57) {
    std::array<std::byte, sizeof(T)> buf{};
    if (auto st = read_virt(mem, cr3, va, buf, la57); !st) return std::move(st).error();
    T v{};
    std::memcpy(&v, buf.data(), sizeof(T));
    return v;
}

}  // namespace

Result<Translation> translate_ex(GuestMemory& mem, std::uint64_t cr3, std::uint64_t va, bool la57,
                                 unsigned phys_bits) {
    if (!is_canonical(va, la57)) return Fault::kNonCanonical;
    const std::uint64_t bad_addr_bits = above_phys_mask(phys_bits);
    if (pgd_from_cr3(cr3) & bad_addr_bits) return Fault::kReservedBit;

    std::uint64_t table = pgd_from_cr3(cr3);
    // Level 5 = PML5, 4 = PML4, 3 = PDPT, 2 = PD, 1 = PT; index bits start at 12 + 9*(level-1).
    for (int level = la57 ? 5 : 4; level >= 1; --level) {
        const unsigned shift = 12U + 9U * static_cast<unsigned>(level - 1);
        const std::uint64_t index = (va >> shift) & 0x1FF;
        auto entry_r = mem.read_u64(table + index * 8);
        if (!entry_r) return std::move(entry_r).error();
        const std::uint64_t e = *entry_r;
        if (!(e & kPresent)) return Fault::kNotPresent;
        if (e & bad_addr_bits) return Fault::kReservedBit;

        const bool large = (e & kPageSizeBit) != 0;
        if (large && level >= 4) return Fault::kReservedBit;  // no 512 GiB pages
        if (large && level >= 2) {
            if (e & (level == 3 ? kReserved1G : kReserved2M)) return Fault::kReservedBit;
            const std::uint64_t size = 1ULL << shift;
            const std::uint64_t base = e & kPteAddrMask & ~(size - 1);
            return Translation{base | (va & (size - 1)), size};
        }
        table = e & kPteAddrMask;
        if (level == 1) return Translation{table | (va & kPageMask), kPageSize};
    }
    return Fault::kNotPresent;  // unreachable: level 1 always returns
}

Result<std::uint64_t> translate(GuestMemory& mem, std::uint64_t cr3, std::uint64_t va, bool la57,
                                unsigned phys_bits) {
    auto t = translate_ex(mem, cr3, va, la57, phys_bits);
    if (!t) return std::move(t).error();
    return t->pa;
}

Status read_virt(GuestMemory& mem, std::uint64_t cr3, std::uint64_t va, std::span<std::byte> out,
                 bool la57) {
    if (out.size() > kMaxVirtRead) return Fault::kLimitExceeded;
    if (!range_fits(va, out.size())) return Fault::kNonCanonical;
    std::size_t done = 0;
    while (done < out.size()) {
        const std::uint64_t addr = va + done;
        auto t = translate_ex(mem, cr3, addr, la57);
        if (!t) return std::move(t).error();
        // Stay inside the (possibly large) page that was just translated.
        const std::uint64_t room = t->page_size - (addr & (t->page_size - 1));
        const std::size_t n =
            static_cast<std::size_t>(std::min<std::uint64_t>(room, out.size() - done));
        if (auto st = mem.read_phys(t->pa, out.subspan(done, n)); !st) return st;
        done += n;
    }
    return {};
}

Result<std::uint64_t> read_virt_u64(GuestMemory& mem, std::uint64_t cr3, std::uint64_t va,
                                    bool la57) {
    return read_virt_scalar<std::uint64_t>(mem, cr3, va, la57);
}

Result<std::uint32_t> read_virt_u32(GuestMemory& mem, std::uint64_t cr3, std::uint64_t va,
                                    bool la57) {
    return read_virt_scalar<std::uint32_t>(mem, cr3, va, la57);
}

}  // namespace vmi
