#include "vmi/kaslr.hpp"

#include <array>
#include <cstring>

#include "vmi/page_walker.hpp"

namespace vmi {

namespace {
constexpr std::uint64_t k2M = 2ULL << 20;
constexpr std::uint64_t kPresent = 1;
constexpr std::uint64_t kPageSizeBit = 1ULL << 7;
}  // namespace

Result<std::uint64_t> find_kernel_text_va(GuestMemory& mem, std::uint64_t any_cr3, bool la57) {
    const std::uint64_t kcr3 = kernel_pgd_from_cr3(any_cr3);
    // Reuse the page walker down to the PDPT entry covering the window; a 1 GiB page there
    // means the whole window is mapped and its first byte is the answer.
    auto top = translate_ex(mem, kcr3, kKernelImageStart, la57);
    if (top && top->page_size == (1ULL << 30)) return kKernelImageStart;

    // Find the PD physical address: walk to level 3 by hand (translate_ex cannot stop early).
    std::uint64_t table = kcr3;
    for (int level = la57 ? 5 : 4; level >= 3; --level) {
        const unsigned shift = 12U + 9U * static_cast<unsigned>(level - 1);
        const std::uint64_t index = (kKernelImageStart >> shift) & 0x1FF;
        auto e = mem.read_u64(table + index * 8);
        if (!e) return std::move(e).error();
        if (!(*e & kPresent)) return Error{Fault::kNotFound, "kernel image window not mapped"};
        if (*e & kPageSizeBit) return Fault::kReservedBit;  // 1G case returned above if valid
        table = *e & kPteAddrMask;
    }

    std::array<std::byte, kPageSize> pd{};
    if (auto st = mem.read_phys(table, pd); !st) return st.error();
    // The window starts at PD index 0 (0xffffffff80000000 is 1 GiB aligned).
    for (std::uint64_t i = 0; i < 512; ++i) {
        std::uint64_t e = 0;
        std::memcpy(&e, pd.data() + i * 8, sizeof e);
        if (e & kPresent) return kKernelImageStart + i * k2M;
    }
    return Error{Fault::kNotFound, "no present PMD in kernel image window"};
}

Result<std::uint64_t> find_kaslr_slide(GuestMemory& mem, std::uint64_t any_cr3, bool la57,
                                       std::uint64_t system_map_text) {
    auto text = find_kernel_text_va(mem, any_cr3, la57);
    if (!text) return text;
    return *text - system_map_text;
}

}  // namespace vmi
