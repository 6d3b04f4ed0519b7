#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "vmi/buffer_memory.hpp"
#include "vmi/image_memory.hpp"
#include "vmi/page_cache.hpp"
#include "vmi/process_memory.hpp"

namespace vmi {
namespace {

std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
    std::vector<std::byte> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 7 + seed) & 0xff);
    return v;
}

TEST(BridgeBufferMemory, ReadsWrittenBytesAcrossPagesAndFaultsOnHoles) {
    BufferMemory mem;
    const auto data = pattern(6000, 1);
    mem.write(0x1ff0, data);
    std::vector<std::byte> got(data.size());
    ASSERT_TRUE(mem.read_phys(0x1ff0, got).ok());
    EXPECT_EQ(got, data);
    EXPECT_EQ(mem.page_count(), 3U);

    std::array<std::byte, 8> small{};
    EXPECT_EQ(mem.read_phys(0x9000, small).fault(), Fault::kUnmapped);
    // Partially mapped range: all or nothing.
    EXPECT_EQ(mem.read_phys(0x3ffc, small).fault(), Fault::kUnmapped);
    EXPECT_EQ(mem.read_phys(UINT64_MAX - 2, small).fault(), Fault::kUnmapped);
}

TEST(BridgeBufferMemory, ScalarAndStringHelpers) {
    BufferMemory mem;
    mem.write_u64(0x100, 0x1122334455667788ULL);
    mem.write_u32(0x200, 0xdeadbeef);
    EXPECT_EQ(mem.read_u64(0x100).value_or(0), 0x1122334455667788ULL);
    EXPECT_EQ(mem.read_u32(0x200).value_or(0), 0xdeadbeefU);

    const char s[] = "bash";
    mem.write(0x300, std::as_bytes(std::span(s, sizeof s)));
    EXPECT_EQ(mem.read_string(0x300, 64).value_or("?"), "bash");
    EXPECT_EQ(mem.read_string(0x300, 2).value_or("?"), "ba");

    // A string running to the end of the last mapped page is cut at the page, not a fault,
    // only if max_len stops there; reading further faults.
    const std::string tail(8, 'x');
    mem.write(0x1000 - 8, std::as_bytes(std::span(tail)));
    EXPECT_EQ(mem.read_string(0x1000 - 8, 8).value_or("?"), tail);
    EXPECT_EQ(mem.read_string(0x1000 - 8, 100).fault(), Fault::kUnmapped);
}

class TempFile {
  public:
    explicit TempFile(const std::vector<std::byte>& content) {
        std::string tmpl = (std::filesystem::temp_directory_path() / "bridge_img_XXXXXX").string();
        const int fd = ::mkstemp(tmpl.data());
        if (fd < 0) throw std::system_error(errno, std::generic_category(), "mkstemp");
        ::close(fd);
        path_ = tmpl;
        std::ofstream out(path_, std::ios::binary);
        out.write(reinterpret_cast<const char*>(content.data()),
                  static_cast<std::streamsize>(content.size()));
    }
    ~TempFile() { std::filesystem::remove(path_); }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    [[nodiscard]] const std::string& path() const { return path_; }

  private:
    std::string path_;
};

TEST(BridgeImageMemory, FileOffsetIsGuestPhysicalAddress) {
    const auto data = pattern(3 * 4096 + 100, 3);
    TempFile file(data);
    ImageMemory img(file.path());
    EXPECT_EQ(img.size(), data.size());

    std::vector<std::byte> got(5000);
    ASSERT_TRUE(img.read_phys(4000, got).ok());
    EXPECT_TRUE(std::equal(got.begin(), got.end(), data.begin() + 4000));

    std::array<std::byte, 8> small{};
    EXPECT_TRUE(img.read_phys(data.size() - 8, small).ok());
    EXPECT_EQ(img.read_phys(data.size() - 7, small).fault(), Fault::kUnmapped);
    EXPECT_EQ(img.read_phys(UINT64_MAX - 1, small).fault(), Fault::kUnmapped);
}

TEST(BridgeImageMemory, MissingFileThrowsAtSetup) {
    EXPECT_THROW(ImageMemory("/nonexistent/bridge/image.raw"), std::system_error);
}

TEST(BridgeProcessMemory, ReadsOwnProcessThroughMemslots) {
    // Two "RAM" regions in this process, exposed as two guest slots with a gap between them.
    std::vector<std::byte> low = pattern(3ULL * 4096, 5);
    std::vector<std::byte> high = pattern(2 * 4096 + 123, 9);
    const auto hva = [](const std::vector<std::byte>& v) {
        return reinterpret_cast<std::uint64_t>(v.data());
    };
    ProcessMemory mem(::getpid(), {
                                      {0x0, low.size(), hva(low)},
                                      {0x10'0000, high.size(), hva(high)},
                                  });

    std::vector<std::byte> got(low.size() - 10);
    ASSERT_TRUE(mem.read_phys(10, got).ok());
    EXPECT_TRUE(std::equal(got.begin(), got.end(), low.begin() + 10));

    std::vector<std::byte> got2(high.size());
    auto st = mem.read_phys(0x10'0000, got2);
    ASSERT_TRUE(st.ok()) << st.error().message();
    EXPECT_EQ(got2, high);

    std::array<std::byte, 16> small{};
    EXPECT_EQ(mem.read_phys(low.size() - 8, small).fault(), Fault::kUnmapped);  // runs off slot
    EXPECT_EQ(mem.read_phys(0x8'0000, small).fault(), Fault::kUnmapped);        // gap
    EXPECT_EQ(mem.read_u64(0x10'0000).value_or(0), [&] {
        std::uint64_t v;
        std::memcpy(&v, high.data(), 8);
        return v;
    }());
}

TEST(BridgeProcessMemory, LargeReadNeedsSeveralBatches) {
    // > 64 page-sized iovecs: exercises batching.
    std::vector<std::byte> ram = pattern(100 * 4096 + 17, 11);
    ProcessMemory mem(::getpid(),
                      {{0x1000, ram.size(), reinterpret_cast<std::uint64_t>(ram.data())}});
    std::vector<std::byte> got(ram.size() - 1);
    ASSERT_TRUE(mem.read_phys(0x1001, got).ok());
    EXPECT_TRUE(std::equal(got.begin(), got.end(), ram.begin() + 1));
}

TEST(BridgeProcessMemory, SetMemslotsReplacesMapAndRejectsBadSlots) {
    std::vector<std::byte> a = pattern(4096, 1);
    std::vector<std::byte> b = pattern(4096, 2);
    ProcessMemory mem(::getpid(), {{0, 4096, reinterpret_cast<std::uint64_t>(a.data())}});
    std::array<std::byte, 4> got{};
    ASSERT_TRUE(mem.read_phys(0, got).ok());
    EXPECT_EQ(got[1], a[1]);

    ASSERT_TRUE(mem.set_memslots({{0, 4096, reinterpret_cast<std::uint64_t>(b.data())}}).ok());
    ASSERT_TRUE(mem.read_phys(0, got).ok());
    EXPECT_EQ(got[1], b[1]);

    // Overlapping slots are rejected and the old map stays.
    auto st = mem.set_memslots({{0, 8192, 0x1000}, {4096, 4096, 0x9000}});
    EXPECT_EQ(st.fault(), Fault::kInvalidFormat);
    ASSERT_TRUE(mem.read_phys(0, got).ok());
    EXPECT_EQ(got[1], b[1]);
    EXPECT_THROW(ProcessMemory(::getpid(), {{0, 0, 0x1000}}), std::invalid_argument);
}

TEST(BridgeProcessMemory, UnmappedHostAddressIsReadFailure) {
    // hva 0x1000 is never mapped in a Linux process (mmap_min_addr).
    ProcessMemory mem(::getpid(), {{0, 4096, 0x1000}});
    std::array<std::byte, 8> buf{};
    EXPECT_EQ(mem.read_phys(0, buf).fault(), Fault::kReadFailed);
}

TEST(BridgeProcessMemory, WritesThroughMemslotsAndStopsAtTheFirstBadByte) {
    // Guest-physical [0, 4096) and [8192, 12288): two host buffers; [4096, 8192) is a hole.
    std::vector<std::byte> lo(4096), hi(4096);
    ProcessMemory mem(::getpid(), {{0, 4096, reinterpret_cast<std::uint64_t>(lo.data())},
                                   {8192, 4096, reinterpret_cast<std::uint64_t>(hi.data())}});
    const std::array<std::byte, 4> v{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
    std::size_t written = 99;
    ASSERT_TRUE(mem.write_phys(4094, std::span(v).first(2), &written).ok());
    EXPECT_EQ(written, 2U);
    EXPECT_EQ(lo[4094], std::byte{1});
    EXPECT_EQ(lo[4095], std::byte{2});
    ASSERT_TRUE(mem.write_phys(8192, v).ok());
    EXPECT_EQ(hi[3], std::byte{4});
    // Into the hole: the bytes before it are written and counted, then kUnmapped.
    EXPECT_EQ(mem.write_phys(4094, v, &written).fault(), Fault::kUnmapped);
    EXPECT_EQ(written, 2U);
    EXPECT_EQ(mem.write_phys(~0ULL - 1, v).fault(), Fault::kUnmapped);  // wraps
    ProcessMemory bad(::getpid(), {{0, 4096, 0x1000}});                 // hva never mapped
    EXPECT_EQ(bad.write_phys(0, v).fault(), Fault::kReadFailed);
}

TEST(BridgePageCache, ServesCachedPagesPassesFaultsThroughAndStaysBounded) {
    BufferMemory mem;
    mem.write_u64(0x1ff8, 0x1122334455667788ULL);
    mem.write_u64(0x2000, 0x99aabbccddeeff00ULL);
    PageCache cache(mem, 2);
    std::array<std::byte, 16> buf{};
    ASSERT_TRUE(cache.read_phys(0x1ff8, buf).ok());  // straddles two pages
    EXPECT_EQ(*cache.read_u64(0x1ff8), 0x1122334455667788ULL);
    EXPECT_EQ(*cache.read_u64(0x2000), 0x99aabbccddeeff00ULL);
    EXPECT_EQ(cache.page_count(), 2U);
    EXPECT_GE(cache.hits(), 2U);

    // Cached: a later write to the backing memory is not seen until clear().
    mem.write_u64(0x2000, 7);
    EXPECT_EQ(*cache.read_u64(0x2000), 0x99aabbccddeeff00ULL);
    cache.clear();
    EXPECT_EQ(*cache.read_u64(0x2000), 7U);

    // Faults are the backing memory's; a third page empties the 2-page cache first.
    EXPECT_EQ(cache.read_u64(0x9000).fault(), Fault::kUnmapped);
    EXPECT_EQ(cache.read_u64(UINT64_MAX - 3).fault(), Fault::kUnmapped);
    mem.write_u64(0x5000, 5);
    (void)cache.read_u64(0x1000);
    EXPECT_EQ(*cache.read_u64(0x5000), 5U);
    EXPECT_LE(cache.page_count(), 2U);

    // Large reads bypass the cache.
    std::vector<std::byte> big(PageCache::kMaxCachedRead + 1);
    EXPECT_EQ(cache.read_phys(0x1000, big).fault(), Fault::kUnmapped);
}

}  // namespace
}  // namespace vmi
