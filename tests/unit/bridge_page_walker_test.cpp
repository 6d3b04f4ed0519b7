#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <string>

#include "bridge_test_support.hpp"
#include "vmi/page_walker.hpp"

namespace vmi {
namespace {

using test::k1G;
using test::k2M;
using test::k4K;
using test::PageTableBuilder;

constexpr std::uint64_t kUserVa = 0x0000'7fff'1234'5000ULL;
constexpr std::uint64_t kKernVa = 0xffff'8880'0000'0000ULL;

TEST(BridgePageWalker, FourLevel4KPage) {
    BufferMemory mem;
    PageTableBuilder pt(mem, false);
    pt.map(kUserVa, 0x20'0000'0000ULL + 0x7000);
    auto pa = translate(mem, pt.cr3(), kUserVa + 0x123, false);
    ASSERT_TRUE(pa.ok()) << pa.error().message();
    EXPECT_EQ(*pa, 0x20'0000'7123ULL);
}

TEST(BridgePageWalker, TwoMegAndOneGigPages) {
    BufferMemory mem;
    PageTableBuilder pt(mem, false);
    pt.map(kKernVa, 0x4000'0000ULL, k2M);
    pt.map(kKernVa + k1G, 0x8000'0000ULL, k1G);
    auto t2 = translate_ex(mem, pt.cr3(), kKernVa + 0x1'2345, false);
    ASSERT_TRUE(t2.ok());
    EXPECT_EQ(t2->pa, 0x4001'2345ULL);
    EXPECT_EQ(t2->page_size, k2M);
    auto t1 = translate_ex(mem, pt.cr3(), kKernVa + k1G + 0x3ff'ffff, false);
    ASSERT_TRUE(t1.ok());
    EXPECT_EQ(t1->pa, 0x8000'0000ULL + 0x3ff'ffff);
    EXPECT_EQ(t1->page_size, k1G);
}

TEST(BridgePageWalker, FiveLevel) {
    BufferMemory mem;
    PageTableBuilder pt(mem, true);
    const std::uint64_t va57 = 0xff11'0000'0000'1000ULL;  // PML5 index 0x111
    pt.map(va57, 0x5000);
    auto pa = translate(mem, pt.cr3(), va57 + 8, true);
    ASSERT_TRUE(pa.ok()) << pa.error().message();
    EXPECT_EQ(*pa, 0x5008U);
    // Same tables read as 4-level: the address is non-canonical for 48 bits.
    EXPECT_EQ(translate(mem, pt.cr3(), va57, false).fault(), Fault::kNonCanonical);
}

TEST(BridgePageWalker, Cr3PcidBitsIgnoredAndKernelPgdHelper) {
    BufferMemory mem;
    PageTableBuilder pt(mem, false);
    pt.map(kUserVa, 0x9000);
    // PCID 0x5 and the no-flush bit 63 must not disturb the walk.
    const std::uint64_t cr3 = pt.cr3() | 0x5 | (1ULL << 63);
    EXPECT_EQ(translate(mem, cr3, kUserVa, false).value_or(0), 0x9000U);
    EXPECT_EQ(pgd_from_cr3(0x12'2000 | 0x1001), 0x12'3000U);  // bit 12 kept
    EXPECT_EQ(kernel_pgd_from_cr3(0x12'3000 | 0x1fff | (1ULL << 63)), 0x12'2000U);
}

TEST(BridgePageWalker, NotPresentFault) {
    BufferMemory mem;
    PageTableBuilder pt(mem, false);
    pt.map(kUserVa, 0x9000);
    EXPECT_EQ(translate(mem, pt.cr3(), kUserVa + k4K, false).fault(), Fault::kNotPresent);
    EXPECT_EQ(translate(mem, pt.cr3(), kKernVa, false).fault(), Fault::kNotPresent);
}

TEST(BridgePageWalker, ReservedBitFaults) {
    BufferMemory mem;
    PageTableBuilder pt(mem, false);
    pt.map(kKernVa, 0x4000'0000ULL, k2M);
    pt.map(kUserVa, 0x9000);
    // 2 MiB entry with bit 13 set (inside the reserved range 20:13).
    const std::uint64_t pde = pt.entry_pa(kKernVa, 2);
    mem.write_u64(pde, *mem.read_u64(pde) | (1ULL << 13));
    EXPECT_EQ(translate(mem, pt.cr3(), kKernVa, false).fault(), Fault::kReservedBit);
    // PS in a PML4 entry is reserved.
    const std::uint64_t pml4e = pt.entry_pa(kUserVa, 4);
    // 1 GiB-aligned target so no other reserved-bit rule could catch it.
    mem.write_u64(pml4e, 0x4000'0000ULL | test::kPresentRw | test::kPs);
    EXPECT_EQ(translate(mem, pt.cr3(), kUserVa, false).fault(), Fault::kReservedBit);
}

TEST(BridgePageWalker, AddressBitsAbovePhysWidthAreReserved) {
    BufferMemory mem;
    PageTableBuilder pt(mem, false);
    pt.map(kUserVa, 1ULL << 45);
    EXPECT_TRUE(translate(mem, pt.cr3(), kUserVa, false).ok());
    EXPECT_EQ(translate(mem, pt.cr3(), kUserVa, false, 40).fault(), Fault::kReservedBit);
}

TEST(BridgePageWalker, NonCanonicalFault) {
    BufferMemory mem;
    PageTableBuilder pt(mem, false);
    EXPECT_EQ(translate(mem, pt.cr3(), 0x0000'8000'0000'0000ULL, false).fault(),
              Fault::kNonCanonical);
    EXPECT_FALSE(is_canonical(0x1234'0000'0000'0000ULL, true));
    EXPECT_TRUE(is_canonical(0xff00'0000'0000'0000ULL, true));
}

TEST(BridgePageWalker, ReadErrorWhenTableMissing) {
    BufferMemory mem;
    PageTableBuilder pt(mem, false);
    pt.map(kUserVa, 0x9000);
    // Point the PML4 entry at a frame that does not exist.
    mem.write_u64(pt.entry_pa(kUserVa, 4), 0x7700'0000ULL | test::kPresentRw);
    EXPECT_EQ(translate(mem, pt.cr3(), kUserVa, false).fault(), Fault::kUnmapped);
    // A CR3 outside memory is a read fault too.
    EXPECT_EQ(translate(mem, 0x6600'0000ULL, kUserVa, false).fault(), Fault::kUnmapped);
}

TEST(BridgePageWalker, ReadVirtSplitsAcrossNonContiguousPages) {
    BufferMemory mem;
    PageTableBuilder pt(mem, false);
    // Two virtually adjacent pages backed by physically distant frames, in reverse order.
    pt.map(kUserVa, 0x30'0000);
    pt.map(kUserVa + k4K, 0x20'0000);
    const std::string text = "hello-from-two-pages";
    const std::uint64_t va = kUserVa + k4K - 5;
    mem.write(0x30'0000 + k4K - 5, std::as_bytes(std::span(text.data(), 5)));
    mem.write(0x20'0000, std::as_bytes(std::span(text.data() + 5, text.size() - 5)));

    std::string got(text.size(), '\0');
    auto st = read_virt(mem, pt.cr3(), va, std::as_writable_bytes(std::span(got)));
    ASSERT_TRUE(st.ok()) << st.error().message();
    EXPECT_EQ(got, text);

    // The page after the second one is unmapped: a read spilling into it fails as a whole.
    std::array<std::byte, 16> buf{};
    EXPECT_EQ(read_virt(mem, pt.cr3(), kUserVa + 2 * k4K - 8, buf).fault(), Fault::kNotPresent);
    EXPECT_EQ(read_virt_u64(mem, pt.cr3(), kUserVa + k4K - 4).ok(), true);
}

TEST(BridgePageWalker, ReadVirtRejectsHugeAndWrappingReads) {
    BufferMemory mem;
    PageTableBuilder pt(mem, false);
    std::vector<std::byte> big(kMaxVirtRead + 1);
    EXPECT_EQ(read_virt(mem, pt.cr3(), kUserVa, big).fault(), Fault::kLimitExceeded);
    std::array<std::byte, 16> buf{};
    EXPECT_FALSE(read_virt(mem, pt.cr3(), UINT64_MAX - 3, buf).ok());
}

}  // namespace
}  // namespace vmi
