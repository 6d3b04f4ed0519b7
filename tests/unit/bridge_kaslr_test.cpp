#include <gtest/gtest.h>

#include "bridge_test_support.hpp"
#include "vmi/kaslr.hpp"

namespace vmi {
namespace {

using test::k1G;
using test::k2M;
using test::k4K;
using test::PageTableBuilder;

constexpr std::uint64_t kMapText = 0xffff'ffff'8100'0000ULL;  // System.map _text

TEST(BridgeKaslr, FirstPresentPmdIsText) {
    BufferMemory mem;
    PageTableBuilder pt(mem, false);
    // Slid kernel at +0x1e000000: image mapped by 2 MiB pages from _text on.
    const std::uint64_t slid_text = kMapText + 0x1e00'0000ULL;
    for (int i = 0; i < 8; ++i) pt.map(slid_text + i * k2M, 0x4000'0000ULL + i * k2M, k2M);
    // Something mapped in the direct map and the module area must not confuse it.
    pt.map(0xffff'8880'0000'0000ULL, 0, k2M);
    pt.map(0xffff'ffff'c000'0000ULL, 0x200'0000, k2M);

    auto text = find_kernel_text_va(mem, pt.cr3(), false);
    ASSERT_TRUE(text.ok()) << text.error().message();
    EXPECT_EQ(*text, slid_text);
    EXPECT_EQ(find_kaslr_slide(mem, pt.cr3(), false, kMapText).value_or(0), 0x1e00'0000U);
}

TEST(BridgeKaslr, KptiUserCr3UsesKernelPgd) {
    BufferMemory mem;
    // Kernel PGD at an 8 KiB-aligned frame; the "user" PGD is the next 4 KiB and maps
    // an unrelated kernel page earlier in the window (as pti clones entry text).
    PageTableBuilder kernel(mem, false, 0x20'0000);
    const std::uint64_t user_pgd = kernel.alloc_frame();
    ASSERT_EQ(user_pgd, kernel.cr3() + k4K);
    const std::uint64_t slid_text = kMapText + 0x0400'0000ULL;
    kernel.map(slid_text, 0x100'0000, k2M);
    // User tables: PML4[511] -> PDPT[510] -> PD[0] present, i.e. a wrong, earlier answer.
    const std::uint64_t user_pdpt = kernel.alloc_frame();
    const std::uint64_t user_pd = kernel.alloc_frame();
    mem.write_u64(user_pgd + 511ULL * 8, user_pdpt | test::kPresentRw);
    mem.write_u64(user_pdpt + 510ULL * 8, user_pd | test::kPresentRw);
    mem.write_u64(user_pd, 0x100'0000 | test::kPresentRw | test::kPs);

    const std::uint64_t user_cr3 = kernel.cr3() | 0x1000 | 0x801;  // bit 12 + PCID
    EXPECT_EQ(find_kernel_text_va(mem, user_cr3, false).value_or(0), slid_text);
}

TEST(BridgeKaslr, FiveLevelAnd1GPage) {
    BufferMemory mem;
    PageTableBuilder pt(mem, true);
    pt.map(kKernelImageStart, 0x4000'0000ULL, k1G);
    EXPECT_EQ(find_kernel_text_va(mem, pt.cr3(), true).value_or(0), kKernelImageStart);
}

TEST(BridgeKaslr, EmptyWindowIsNotFound) {
    BufferMemory mem;
    PageTableBuilder pt(mem, false);
    pt.map(0xffff'ffff'c000'0000ULL, 0x200'0000, k2M);  // only the module area
    // The PD for the window does not even exist.
    EXPECT_EQ(find_kernel_text_va(mem, pt.cr3(), false).fault(), Fault::kNotFound);
    // Window PD exists but is all zero.
    pt.map(kKernelImageStart + 5 * k2M, 0x600'0000, k2M);
    mem.write_u64(pt.entry_pa(kKernelImageStart + 5 * k2M, 2), 0);
    EXPECT_EQ(find_kernel_text_va(mem, pt.cr3(), false).fault(), Fault::kNotFound);
}

TEST(BridgeKaslr, GarbageCr3IsAnErrorNotACrash) {
    BufferMemory mem;
    EXPECT_FALSE(find_kernel_text_va(mem, 0xffff'ffff'ffff'ffffULL, false).ok());
}

}  // namespace
}  // namespace vmi
