// Zero-configuration kernel discovery on synthetic guests: a fake kernel image mapped at a
// slid _text with a real BTF blob inside it and a task list whose head is "swapper/0".
#include <bpf/btf.h>
#include <gtest/gtest.h>
#include <linux/btf.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "bridge_synthetic_guest.hpp"
#include "bridge_test_support.hpp"
#include "vmi/buffer_memory.hpp"
#include "vmi/kernel_discovery.hpp"
#include "vmi/linux_model.hpp"

namespace vmi {
namespace {

using test::k2M;
using test::k4K;
using test::PageTableBuilder;

LinuxOffsets offsets_of(std::span<const std::byte> blob) {
    auto prof = BtfProfile::from_blob(blob);
    EXPECT_TRUE(prof.ok());
    auto off = prof->linux_offsets();
    EXPECT_TRUE(off.ok()) << off.error().message();
    return off.value_or(LinuxOffsets{});
}

constexpr std::uint64_t kText = 0xffff'ffff'8a00'0000ULL;  // slid _text (2 MiB aligned)
constexpr std::uint64_t kImagePa = 0x0100'0000;            // kernel image in guest RAM
constexpr std::uint64_t kBtfOff = 0x14'0071;               // unaligned, like Debian's .BTF
constexpr std::uint64_t kDataOff = 0x30'0000;              // ".data": init_task lives here
constexpr std::uint64_t kDirectMap = 0xffff'8880'0000'0000ULL;
constexpr std::uint64_t kHeapPa = 0x0080'0000;  // "slab" tasks, reached via the direct map

// A guest with a kernel image of `image_len` bytes (4 KiB pages, all backed) at kText.
class FakeKernel {
  public:
    explicit FakeKernel(std::vector<std::byte> btf, std::uint64_t image_len = 0x40'0000,
                        std::uint64_t btf_off = kBtfOff)
        : pt_(mem_, false, 0x10'0000), btf_(std::move(btf)), off_(offsets_of(btf_)) {
        pt_.map_range(kText, kImagePa, image_len);
        pt_.map_range(kDirectMap + kHeapPa, kHeapPa, 0x10'0000);
        for (std::uint64_t o = 0; o < image_len; o += k4K) mem_.map_page(kImagePa + o);
        mem_.write(kImagePa + btf_off, btf_);
    }

    BufferMemory& mem() { return mem_; }
    [[nodiscard]] std::uint64_t cr3() const { return pt_.cr3(); }
    [[nodiscard]] const LinuxOffsets& off() const { return off_; }
    PageTableBuilder& pt() { return pt_; }

    static std::uint64_t image_va(std::uint64_t off) { return kText + off; }
    static std::uint64_t heap_va(std::uint64_t off) { return kDirectMap + kHeapPa + off; }
    static std::uint64_t pa_of(std::uint64_t va) {
        return va >= kText ? kImagePa + (va - kText) : kHeapPa + (va - kDirectMap - kHeapPa);
    }

    // Writes a task at `va` (pid == tgid) with the given list links.
    void task(std::uint64_t va, std::int32_t pid, const std::string& comm, std::uint64_t next_task,
              std::uint64_t prev_task, std::uint64_t parent) {
        const std::uint64_t pa = pa_of(va);
        mem_.write_u32(pa + off_.task_pid, static_cast<std::uint32_t>(pid));
        mem_.write_u32(pa + off_.task_tgid, static_cast<std::uint32_t>(pid));
        mem_.write_u64(pa + off_.task_tasks, next_task + off_.task_tasks);
        mem_.write_u64(pa + off_.task_tasks + 8, prev_task + off_.task_tasks);
        mem_.write_u64(pa + off_.task_real_parent, parent);
        std::string c = comm;
        c.resize(16, '\0');
        mem_.write(pa + off_.task_comm, std::as_bytes(std::span(c)));
    }

    // init_task in .data, two "slab" tasks: init (pid 1, uid 0) and sh (pid 42, uid 1000).
    std::uint64_t standard_tasks() {
        const std::uint64_t it = image_va(kDataOff + 0x1c0);
        const std::uint64_t a = heap_va(0x1000);
        const std::uint64_t b = heap_va(0x3000);
        task(it, 0, "swapper/0", a, b, it);
        task(a, 1, "init", b, it, it);
        task(b, 42, "sh", it, a, a);
        // cred of sh
        const std::uint64_t cred = heap_va(0x8000);
        mem_.write_u64(pa_of(b) + off_.task_cred, cred);
        mem_.write_u32(pa_of(cred) + off_.cred_uid, 1000);
        return it;
    }

  private:
    BufferMemory mem_;
    PageTableBuilder pt_;
    std::vector<std::byte> btf_;
    LinuxOffsets off_;
};

class BridgeKernelDiscovery : public ::testing::Test {
  protected:
    void SetUp() override { clear_kernel_profile_cache(); }
    void TearDown() override { clear_kernel_profile_cache(); }
};

TEST_F(BridgeKernelDiscovery, FindsTextBtfAndInitTaskWithoutSymbols) {
    FakeKernel k(test::compact_kernel_btf());
    const std::uint64_t it = k.standard_tasks();
    // Decoy 1: "swapper/0" in .rodata, not inside a task (its would-be list head is zero).
    const std::string decoy = std::string("swapper/0") + '\0';
    k.mem().write(kImagePa + 0x20'0000 + 0x40 + k.off().task_comm, std::as_bytes(std::span(decoy)));
    // Decoy 2: a stale copy of init_task whose list does not link back to it.
    const std::uint64_t stale = FakeKernel::image_va(kDataOff + 0x8000);
    k.task(stale, 0, "swapper/0", FakeKernel::heap_va(0x1000), FakeKernel::heap_va(0x3000), stale);

    auto p = discover_kernel(k.mem(), k.cr3() | 0x5 /* PCID bits */);
    ASSERT_TRUE(p.ok()) << p.error().message();
    EXPECT_EQ(p->text_va, kText);
    EXPECT_EQ(p->btf_va, kText + kBtfOff);
    EXPECT_EQ(p->init_task_va, it);
    EXPECT_EQ(p->offsets.task_comm, 80U);
    EXPECT_EQ(p->offsets.task_cred, 104U);
    EXPECT_EQ(p->offsets.cred_uid, 4U);
    EXPECT_FALSE(p->from_cache);
    EXPECT_GT(p->bytes_scanned, 0U);

    LinuxGuest g(k.mem(), p->offsets, p->init_task_va);
    auto procs = g.list_processes(k.cr3());
    ASSERT_TRUE(procs.ok()) << procs.error().message();
    ASSERT_EQ(procs->size(), 3U);
    EXPECT_EQ((*procs)[0].comm, "swapper/0");
    EXPECT_EQ((*procs)[1].pid, 1);
    EXPECT_EQ((*procs)[2].comm, "sh");
    EXPECT_EQ((*procs)[2].ppid, 1);
    EXPECT_EQ((*procs)[2].uid, 1000);
    EXPECT_EQ((*procs)[1].uid, -1);  // no cred pointer written
}

TEST_F(BridgeKernelDiscovery, SecondDiscoveryOfTheSameBuildUsesTheCache) {
    FakeKernel k(test::compact_kernel_btf());
    k.standard_tasks();
    auto first = discover_kernel(k.mem(), k.cr3());
    ASSERT_TRUE(first.ok()) << first.error().message();
    EXPECT_EQ(kernel_profile_cache_size(), 1U);
    auto second = discover_kernel(k.mem(), k.cr3());
    ASSERT_TRUE(second.ok()) << second.error().message();
    EXPECT_TRUE(second->from_cache);
    EXPECT_EQ(second->bytes_scanned, 0U);
    EXPECT_EQ(second->btf_hash, first->btf_hash);
    EXPECT_EQ(second->init_task_va, first->init_task_va);

    // Same build, different init_task placement (a different guest): the cached entry
    // fails validation and a full scan runs.
    FakeKernel other(test::compact_kernel_btf());
    const std::uint64_t it = FakeKernel::image_va(kDataOff + 0x2000);
    other.task(it, 0, "swapper/0", it, it, it);
    auto third = discover_kernel(other.mem(), other.cr3());
    ASSERT_TRUE(third.ok()) << third.error().message();
    EXPECT_FALSE(third->from_cache);
    EXPECT_EQ(third->init_task_va, it);

    DiscoveryOptions no_cache;
    no_cache.use_cache = false;
    auto fourth = discover_kernel(k.mem(), k.cr3(), no_cache);
    ASSERT_TRUE(fourth.ok());
    EXPECT_FALSE(fourth->from_cache);
}

TEST_F(BridgeKernelDiscovery, BtfHeaderStraddlingAChunkBoundaryIsFound) {
    // The BTF header starts 5 bytes before a 2 MiB boundary (chunks are read 2 MiB at a time).
    FakeKernel k(test::compact_kernel_btf(), 0x40'0000, 0x20'0000 - 5);
    k.standard_tasks();
    auto p = discover_kernel(k.mem(), k.cr3());
    ASSERT_TRUE(p.ok()) << p.error().message();
    EXPECT_EQ(p->btf_va, kText + 0x20'0000 - 5);
}

TEST_F(BridgeKernelDiscovery, UnmappedHolesInTheImageAreSkipped) {
    FakeKernel k(test::compact_kernel_btf());
    const std::uint64_t it = k.standard_tasks();
    // Unmap a page between BTF and .data (Linux frees the gap after rodata), and drop the RAM
    // behind another mapped page.
    const std::uint64_t hole = FakeKernel::image_va(0x28'0000);
    k.mem().write_u64(k.pt().entry_pa(hole, 1), 0);
    k.mem().unmap_page(kImagePa + 0x29'0000);
    auto p = discover_kernel(k.mem(), k.cr3());
    ASSERT_TRUE(p.ok()) << p.error().message();
    EXPECT_EQ(p->init_task_va, it);
}

TEST_F(BridgeKernelDiscovery, MissingRamInsideALargePageIsReadPageByPage) {
    // 2 MiB pages; the first 4 KiB frame behind the page holding the BTF is absent, so the
    // 2 MiB read fails and the scan falls back to single pages.
    const auto btf = test::compact_kernel_btf();
    const LinuxOffsets off = offsets_of(btf);
    BufferMemory mem;
    PageTableBuilder pt(mem, false, 0x10'0000);
    constexpr std::uint64_t kPa = 0x0400'0000;
    for (std::uint64_t o = 0; o < 2 * k2M; o += k2M) pt.map(kText + o, kPa + o, k2M);
    for (std::uint64_t o = k4K; o < 2 * k2M; o += k4K) mem.map_page(kPa + o);
    mem.write(kPa + 0x8'0123, btf);
    const std::uint64_t it = kText + k2M + 0x1000;
    mem.write_u64(kPa + k2M + 0x1000 + off.task_tasks, it + off.task_tasks);
    mem.write_u64(kPa + k2M + 0x1000 + off.task_tasks + 8, it + off.task_tasks);
    const std::string comm = std::string("swapper/0") + '\0';
    mem.write(kPa + k2M + 0x1000 + off.task_comm, std::as_bytes(std::span(comm)));
    auto p = discover_kernel(mem, pt.cr3());
    ASSERT_TRUE(p.ok()) << p.error().message();
    EXPECT_EQ(p->btf_va, kText + 0x8'0123);
    EXPECT_EQ(p->init_task_va, it);
    EXPECT_EQ(p->bytes_scanned, 2 * k2M - k4K);
}

TEST_F(BridgeKernelDiscovery, TwoValidInitTasksAreAmbiguous) {
    FakeKernel k(test::compact_kernel_btf());
    const std::uint64_t a = FakeKernel::image_va(kDataOff);
    const std::uint64_t b = FakeKernel::image_va(kDataOff + 0x4000);
    k.task(a, 0, "swapper/0", a, a, a);  // self-linked lists validate
    k.task(b, 0, "swapper/0", b, b, b);
    auto p = discover_kernel(k.mem(), k.cr3());
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.fault(), Fault::kInvalidFormat);
    EXPECT_NE(p.error().detail.find("2 init_task candidates"), std::string::npos)
        << p.error().detail;
}

TEST_F(BridgeKernelDiscovery, NoInitTaskIsNotFound) {
    FakeKernel k(test::compact_kernel_btf());
    auto p = discover_kernel(k.mem(), k.cr3());
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.fault(), Fault::kNotFound);
    EXPECT_NE(p.error().detail.find("init_task"), std::string::npos);
}

TEST_F(BridgeKernelDiscovery, CyclicTaskListRejectsTheCandidate) {
    FakeKernel k(test::compact_kernel_btf());
    const std::uint64_t it = FakeKernel::image_va(kDataOff);
    const std::uint64_t a = FakeKernel::heap_va(0x1000);
    const std::uint64_t b = FakeKernel::heap_va(0x2000);
    const std::uint64_t c = FakeKernel::heap_va(0x3000);
    // Back-links of the head are right, but a -> b -> a loops without returning.
    k.task(it, 0, "swapper/0", a, c, it);
    k.task(a, 1, "init", b, it, it);
    k.task(b, 2, "x", a, a, it);
    k.task(c, 3, "y", it, b, it);
    auto p = discover_kernel(k.mem(), k.cr3());
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.fault(), Fault::kNotFound);
    EXPECT_NE(p.error().detail.find("cycle"), std::string::npos) << p.error().detail;
}

TEST_F(BridgeKernelDiscovery, ManySwapperStringsAreCapped) {
    FakeKernel k(test::compact_kernel_btf());
    const std::string s = std::string("swapper/0") + '\0';
    for (std::uint64_t i = 0; i < kMaxInitTaskCandidates + 50; ++i) {
        k.mem().write(kImagePa + 0x30'0000 + i * 64 + 16, std::as_bytes(std::span(s)));
    }
    auto p = discover_kernel(k.mem(), k.cr3());
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.fault(), Fault::kNotFound);
    EXPECT_NE(p.error().detail.find("capped"), std::string::npos) << p.error().detail;
}

// Writes a 24-byte BTF header at `pa`.
void write_btf_header(BufferMemory& mem, std::uint64_t pa, std::uint32_t type_len,
                      std::uint32_t str_off, std::uint32_t str_len) {
    const std::uint32_t h[6] = {0x0001'eb9fU, 24, 0, type_len, str_off, str_len};
    mem.write(pa, std::as_bytes(std::span(h)));
}

TEST_F(BridgeKernelDiscovery, HostileBtfHeadersAreSkippedNotTrusted) {
    FakeKernel k(test::compact_kernel_btf());
    k.standard_tasks();
    // Before the real BTF: a header with huge lengths, one pointing past the mapped image,
    // one with garbage where the types should be.
    write_btf_header(k.mem(), kImagePa + 0x1000, 0x7fff'ffff, 0x7fff'ffff, 0x7fff'ffff);
    write_btf_header(k.mem(), kImagePa + 0x2000, 0x100, 0x100, 0x3f0'0000);
    write_btf_header(k.mem(), kImagePa + 0x3000, 0x100, 0x100, 0x10);
    auto p = discover_kernel(k.mem(), k.cr3());
    ASSERT_TRUE(p.ok()) << p.error().message();
    EXPECT_EQ(p->btf_va, kText + kBtfOff);
}

TEST_F(BridgeKernelDiscovery, OnlyHostileBtfIsNotFound) {
    FakeKernel k(test::compact_kernel_btf());
    k.standard_tasks();
    k.mem().write(kImagePa + kBtfOff, std::vector<std::byte>(64));  // wipe the real header
    write_btf_header(k.mem(), kImagePa + 0x1000, 0xffff'ff00, 0xffff'ff00, 0xffff'ff00);
    // A syntactically plausible header whose content is not BTF at all.
    write_btf_header(k.mem(), kImagePa + 0x5000, 0x40, 0x40, 0x20);
    auto p = discover_kernel(k.mem(), k.cr3());
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.fault(), Fault::kNotFound);
    EXPECT_NE(p.error().detail.find("BTF"), std::string::npos) << p.error().detail;
}

TEST_F(BridgeKernelDiscovery, UnmappedKernelWindowIsNotFound) {
    BufferMemory mem;
    PageTableBuilder pt(mem, false);
    auto p = discover_kernel(mem, pt.cr3());
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.fault(), Fault::kNotFound);
}

TEST_F(BridgeKernelDiscovery, ValidateInitTaskRejectsWildPointers) {
    FakeKernel k(test::compact_kernel_btf());
    const std::uint64_t it = FakeKernel::image_va(kDataOff);
    k.task(it, 0, "swapper/0", 0, 0, it);
    k.mem().write_u64(FakeKernel::pa_of(it) + k.off().task_tasks, 0x4141'4141'4141'4141ULL);
    EXPECT_FALSE(validate_init_task(k.mem(), k.cr3(), k.off(), it).ok());
    EXPECT_FALSE(validate_init_task(k.mem(), k.cr3(), k.off(), 0x1234).ok());
    EXPECT_FALSE(validate_init_task(k.mem(), k.cr3(), k.off(), UINT64_MAX - 7).ok());
}

TEST(BridgeKernelDiscoveryHash, Fnv1aKnownValues) {
    EXPECT_EQ(fnv1a64({}), 0xcbf29ce484222325ULL);
    const std::string a = "a";
    EXPECT_EQ(fnv1a64(std::as_bytes(std::span(a))), 0xaf63dc4c8601ec8cULL);
}

// The host's own kernel BTF (~5 MB) placed where Debian 6.1 has it, in a 64 MiB image mapped
// with 2 MiB pages: a realistic scan; prints the time it takes.
TEST_F(BridgeKernelDiscovery, RealKernelBtfScanTiming) {
    const char* path = "/sys/kernel/btf/vmlinux";
    std::ifstream f(path, std::ios::binary);
    if (!f) GTEST_SKIP() << path << " not readable";
    std::vector<char> raw((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::vector<std::byte> blob(raw.size());
    std::memcpy(blob.data(), raw.data(), raw.size());
    auto prof = BtfProfile::from_blob(blob);
    if (!prof || !prof->linux_offsets()) GTEST_SKIP() << "host BTF lacks the Linux offsets";
    const LinuxOffsets off = *prof->linux_offsets();

    BufferMemory mem;
    PageTableBuilder pt(mem, false, 0x10'0000);
    constexpr std::uint64_t kLen = 64ULL << 20;
    constexpr std::uint64_t kPa = 0x0400'0000;
    for (std::uint64_t o = 0; o < kLen; o += k2M) pt.map(kText + o, kPa + o, k2M);
    for (std::uint64_t o = 0; o < kLen; o += k4K) mem.map_page(kPa + o);
    constexpr std::uint64_t kDebianBtfOff = 0x143'8070;
    mem.write(kPa + kDebianBtfOff, blob);
    // init_task well after the BTF, self-linked (a guest with no other task).
    const std::uint64_t it = kText + 0x260'0000;
    const std::uint64_t it_pa = kPa + 0x260'0000;
    mem.write_u64(it_pa + off.task_tasks, it + off.task_tasks);
    mem.write_u64(it_pa + off.task_tasks + 8, it + off.task_tasks);
    const std::string comm = std::string("swapper/0") + '\0';
    mem.write(it_pa + off.task_comm, std::as_bytes(std::span(comm)));

    auto p = discover_kernel(mem, pt.cr3());
    ASSERT_TRUE(p.ok()) << p.error().message();
    EXPECT_EQ(p->btf_va, kText + kDebianBtfOff);
    EXPECT_EQ(p->btf_size, blob.size());
    EXPECT_EQ(p->init_task_va, it);
    std::printf(
        "[ timing   ] %zu-byte BTF, %llu bytes scanned: scan+BTF %.1f ms, init_task %.2f ms, "
        "total %.1f ms\n",
        blob.size(), static_cast<unsigned long long>(p->bytes_scanned),
        static_cast<double>(p->btf_time.count()) / 1e6,
        static_cast<double>(p->init_task_time.count()) / 1e6,
        static_cast<double>(p->total_time.count()) / 1e6);
    auto again = discover_kernel(mem, pt.cr3());
    ASSERT_TRUE(again.ok());
    EXPECT_TRUE(again->from_cache);
    std::printf("[ timing   ] cached re-discovery: total %.1f ms\n",
                static_cast<double>(again->total_time.count()) / 1e6);
}

// The fuzzer's seed guest: SyntheticLinux with compact offsets (those of
// test::compact_kernel_btf()), its init_task in a kernel image at a 2 MiB slot and the BTF in that
// image. Zero-config discovery must find it and list the processes it built.
TEST_F(BridgeKernelDiscovery, SyntheticLinuxGuestWithImageIsDiscovered) {
    test::SyntheticLinux g(test::compact_offsets(), 2ULL << 20);
    g.map_kernel_image(kText);
    std::vector<test::SynthProcess> v(3);
    v[0] = {0, 0, "swapper/0", "", {}, 0, 0, 0, 1};
    v[1] = {1, 0, "init", "/sbin/init", {"/sbin/init"}, 0, 0, 0, 1};
    v[2] = {40, 1, "sh", "/bin/sh", {"sh"}, 1000, 1000, 100, 2};
    g.build(v);
    const auto btf = test::compact_kernel_btf();
    g.mem().write(test::SyntheticLinux::pa(g.alloc(btf.size(), 8)), btf);
    auto p = discover_kernel(g.mem(), g.cr3());
    ASSERT_TRUE(p.ok()) << p.error().message();
    EXPECT_EQ(p->text_va, kText);
    EXPECT_EQ(p->init_task_va, g.init_task_va());
    auto procs = LinuxGuest(g.mem(), p->offsets, p->init_task_va).list_processes(g.cr3());
    ASSERT_TRUE(procs.ok()) << procs.error().message();
    ASSERT_EQ(procs->size(), 3U);
    EXPECT_EQ((*procs)[2].uid, 1000);
    EXPECT_EQ((*procs)[2].ppid, 1);
    // The miniature BTF has no file/dentry/signal types: those fields stay unknown.
    EXPECT_EQ((*procs)[2].exe, "");
    EXPECT_EQ((*procs)[2].threads, -1);
    // With the full offsets the same memory gives them.
    auto full = LinuxGuest(g.mem(), g.offsets(), g.init_task_va()).list_processes(g.cr3());
    ASSERT_TRUE(full.ok()) << full.error().message();
    EXPECT_EQ((*full)[2].exe, "/bin/sh");
    EXPECT_EQ((*full)[2].threads, 2);
}

}  // namespace
}  // namespace vmi
