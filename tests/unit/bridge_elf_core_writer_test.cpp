// write_elf_core: dumps of a BufferMemory guest read back with ElfCoreMemory, unreadable pages,
// and the refusals that must leave nothing behind.
#include <elf.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <vector>

#include "vmi/buffer_memory.hpp"
#include "vmi/elf_core_memory.hpp"
#include "vmi/elf_core_writer.hpp"

namespace vmi {
namespace {

namespace fs = std::filesystem;

constexpr std::uint64_t k4G = 1ULL << 32;

// A fresh directory per test, removed with everything in it.
class TempDir {
  public:
    TempDir() {
        path_ =
            fs::temp_directory_path() /
            ("bridge_elf_core_writer_" + std::to_string(::getpid()) + "_" + std::to_string(n_++));
        fs::remove_all(path_);
        fs::create_directories(path_);
    }
    ~TempDir() { fs::remove_all(path_); }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    [[nodiscard]] const fs::path& path() const { return path_; }
    [[nodiscard]] std::vector<std::string> entries() const {
        std::vector<std::string> v;
        for (const auto& e : fs::directory_iterator(path_)) v.push_back(e.path().filename());
        return v;
    }

  private:
    static inline int n_ = 0;
    fs::path path_;
};

// Distinct bytes per address, so a misplaced byte is caught.
std::byte byte_at(std::uint64_t gpa) {
    return static_cast<std::byte>((gpa * 31 + (gpa >> 12) * 7 + (gpa >> 32)) & 0xff);
}

void fill(BufferMemory& mem, const DumpRange& r) {
    std::vector<std::byte> b(r.size);
    for (std::uint64_t i = 0; i < r.size; ++i) b[i] = byte_at(r.gpa + i);
    mem.write(r.gpa, b);
}

std::vector<std::byte> read_all(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::vector<char> c((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::vector<std::byte> b(c.size());
    std::memcpy(b.data(), c.data(), c.size());
    return b;
}

// Every byte of `r` in the dump equals `expect(gpa)`.
template <class F>
void expect_range(ElfCoreMemory& core, const DumpRange& r, F expect) {
    std::vector<std::byte> got(r.size);
    ASSERT_TRUE(core.read_phys(r.gpa, got).ok());
    std::uint64_t mismatches = 0;
    for (std::uint64_t i = 0; i < r.size; ++i) {
        if (got[i] != expect(r.gpa + i) && mismatches++ < 5) {
            ADD_FAILURE() << "byte at gpa 0x" << std::hex << r.gpa + i;
        }
    }
    EXPECT_EQ(mismatches, 0U);
}

TEST(BridgeElfCoreWriter, RoundTripsThroughElfCoreMemory) {
    // Low RAM, RAM above 1 MiB spanning several chunks with an unaligned end, RAM above 4 GiB.
    const std::vector<DumpRange> ranges = {
        {0, 0xa0000}, {0x100000, (2U << 20) + 0x1234}, {k4G + 0x3000, 0x5000}};
    BufferMemory mem;
    for (const auto& r : ranges) fill(mem, r);
    TempDir dir;
    const fs::path out = dir.path() / "guest.elf";
    DumpOptions opts;
    opts.chunk_bytes = 256 << 10;

    auto st = write_elf_core(mem, ranges, out, opts);
    ASSERT_TRUE(st.ok()) << st.error().message();
    EXPECT_EQ(st->guest_bytes, 0xa0000U + (2U << 20) + 0x1234 + 0x5000);
    EXPECT_EQ(st->unreadable_bytes, 0U);
    EXPECT_TRUE(st->first_read_error.empty());
    EXPECT_EQ(st->file_bytes, fs::file_size(out));
    EXPECT_EQ(dir.entries(), std::vector<std::string>{"guest.elf"});  // no .partial
    struct stat sb {};
    ASSERT_EQ(::stat(out.c_str(), &sb), 0);
    EXPECT_EQ(sb.st_mode & 07777, 0600U);

    auto core = ElfCoreMemory::open(out.string());
    ASSERT_TRUE(core.ok()) << core.error().message();
    ASSERT_EQ((*core)->segments().size(), ranges.size());
    for (const auto& s : (*core)->segments()) {
        EXPECT_EQ(s.offset % kPageSize, 0U);
        EXPECT_EQ(s.filesz, s.memsz);
    }
    for (const auto& r : ranges) expect_range(**core, r, byte_at);
    // Nothing else is mapped: holes and the end still fault.
    std::vector<std::byte> b(16);
    EXPECT_FALSE((*core)->read_phys(0xa0000, b).ok());
    EXPECT_FALSE((*core)->read_phys(k4G + 0x8000, b).ok());

    // The headers as QEMU writes them, PT_LOADs in the order given.
    const auto f = read_all(out);
    Elf64_Ehdr eh{};
    std::memcpy(&eh, f.data(), sizeof eh);
    EXPECT_EQ(eh.e_type, ET_CORE);
    EXPECT_EQ(eh.e_machine, EM_X86_64);
    EXPECT_EQ(eh.e_version, EV_CURRENT);
    EXPECT_EQ(eh.e_ident[EI_DATA], ELFDATA2LSB);
    ASSERT_EQ(eh.e_phnum, ranges.size());
    for (std::size_t i = 0; i < ranges.size(); ++i) {
        Elf64_Phdr ph{};
        std::memcpy(&ph, f.data() + eh.e_phoff + i * sizeof ph, sizeof ph);
        EXPECT_EQ(ph.p_type, PT_LOAD);
        EXPECT_EQ(ph.p_paddr, ranges[i].gpa);
        EXPECT_EQ(ph.p_vaddr, 0U);
        EXPECT_EQ(ph.p_filesz, ranges[i].size);
        EXPECT_EQ(ph.p_memsz, ranges[i].size);
    }
}

TEST(BridgeElfCoreWriter, UnreadablePagesAreZerosAndCounted) {
    // The second range starts mid-page, so its unreadable page is only partly in it.
    const std::vector<DumpRange> ranges = {{k4G, 0x40000}, {0x1800, 0x2000}};
    BufferMemory mem;
    for (const auto& r : ranges) fill(mem, r);
    const std::uint64_t bad1 = k4G + 0x10000;  // exactly at a 64 KiB chunk boundary
    const std::uint64_t bad2 = k4G + 0x3f000;  // the range's last page
    const std::uint64_t bad3 = 0x1000;         // [0x1800, 0x2000) of it is in the range
    for (auto p : {bad1, bad2, bad3}) mem.unmap_page(p);
    TempDir dir;
    const fs::path out = dir.path() / "guest.elf";
    DumpOptions opts;
    opts.chunk_bytes = 64 << 10;

    auto st = write_elf_core(mem, ranges, out, opts);
    ASSERT_TRUE(st.ok()) << st.error().message();
    EXPECT_EQ(st->unreadable_bytes, 2 * kPageSize + 0x800);
    EXPECT_NE(st->first_read_error.find("0x100010000"), std::string::npos) << st->first_read_error;

    auto core = ElfCoreMemory::open(out.string());
    ASSERT_TRUE(core.ok()) << core.error().message();
    auto expect = [&](std::uint64_t gpa) {
        for (auto p : {bad1, bad2, bad3}) {
            if (gpa - p < kPageSize) return std::byte{0};
        }
        return byte_at(gpa);
    };
    for (const auto& r : ranges) expect_range(**core, r, expect);
}

TEST(BridgeElfCoreWriter, AllUnreadableStillWritesADump) {
    BufferMemory mem;  // nothing mapped
    TempDir dir;
    const fs::path out = dir.path() / "guest.elf";
    auto st = write_elf_core(mem, {{0x100000, 0x3000}}, out);
    ASSERT_TRUE(st.ok()) << st.error().message();
    EXPECT_EQ(st->unreadable_bytes, 0x3000U);
    auto core = ElfCoreMemory::open(out.string());
    ASSERT_TRUE(core.ok()) << core.error().message();
    expect_range(**core, {0x100000, 0x3000}, [](std::uint64_t) { return std::byte{0}; });
}

TEST(BridgeElfCoreWriter, RefusesToOverwrite) {
    BufferMemory mem;
    fill(mem, {0, 0x1000});
    TempDir dir;
    const fs::path out = dir.path() / "guest.elf";
    { std::ofstream(out) << "evidence"; }

    auto st = write_elf_core(mem, {{0, 0x1000}}, out);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.fault(), Fault::kIo);
    EXPECT_NE(st.error().detail.find(out.string()), std::string::npos) << st.error().detail;
    EXPECT_NE(st.error().detail.find("exists"), std::string::npos) << st.error().detail;
    EXPECT_EQ(fs::file_size(out), 8U);
    EXPECT_EQ(dir.entries(), std::vector<std::string>{"guest.elf"});

    // A dangling symlink is a name in use too.
    const fs::path link = dir.path() / "link.elf";
    fs::create_symlink(dir.path() / "nowhere", link);
    EXPECT_FALSE(write_elf_core(mem, {{0, 0x1000}}, link).ok());
    EXPECT_FALSE(fs::exists(dir.path() / "nowhere"));
}

// Creates a file at `path` on its first read: a dump racing another writer of the same name.
class RacingMemory final : public GuestMemory {
  public:
    explicit RacingMemory(fs::path path) : path_(std::move(path)) {}
    Status read_phys(std::uint64_t, std::span<std::byte> out) override {
        if (!done_) std::ofstream(path_) << "evidence";
        done_ = true;
        std::fill(out.begin(), out.end(), std::byte{0x5a});
        return {};
    }

  private:
    fs::path path_;
    bool done_ = false;
};

TEST(BridgeElfCoreWriter, NeverReplacesAFileCreatedDuringTheDump) {
    TempDir dir;
    const fs::path out = dir.path() / "guest.elf";
    RacingMemory mem(out);
    auto st = write_elf_core(mem, {{0, 0x1000}}, out);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.fault(), Fault::kIo);
    EXPECT_NE(st.error().detail.find(out.string()), std::string::npos) << st.error().detail;
    EXPECT_NE(st.error().detail.find("File exists"), std::string::npos) << st.error().detail;
    EXPECT_EQ(fs::file_size(out), 8U);
    EXPECT_EQ(dir.entries(), std::vector<std::string>{"guest.elf"});  // .partial removed
}

TEST(BridgeElfCoreWriter, LeavesAnotherWritersPartialAlone) {
    BufferMemory mem;
    fill(mem, {0, 0x1000});
    TempDir dir;
    const fs::path out = dir.path() / "guest.elf";
    const fs::path partial = dir.path() / "guest.elf.partial";
    { std::ofstream(partial) << "in progress"; }

    auto st = write_elf_core(mem, {{0, 0x1000}}, out);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.fault(), Fault::kIo);
    EXPECT_NE(st.error().detail.find(partial.string()), std::string::npos) << st.error().detail;
    EXPECT_NE(st.error().detail.find("File exists"), std::string::npos) << st.error().detail;
    EXPECT_EQ(fs::file_size(partial), 11U);
    EXPECT_FALSE(fs::exists(out));
}

TEST(BridgeElfCoreWriter, RefusesOverMaxBytesBeforeWriting) {
    BufferMemory mem;
    TempDir dir;
    const fs::path out = dir.path() / "guest.elf";
    DumpOptions opts;
    opts.max_bytes = 0x2fff;

    auto st = write_elf_core(mem, {{0, 0x1000}, {k4G, 0x2000}}, out, opts);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.fault(), Fault::kLimitExceeded);
    EXPECT_NE(st.error().detail.find("12288"), std::string::npos) << st.error().detail;
    EXPECT_NE(st.error().detail.find("max_bytes"), std::string::npos) << st.error().detail;
    EXPECT_TRUE(dir.entries().empty());

    opts.max_bytes = 0x3000;  // exactly the total is allowed
    EXPECT_TRUE(write_elf_core(mem, {{0, 0x1000}, {k4G, 0x2000}}, out, opts).ok());
}

TEST(BridgeElfCoreWriter, RefusesWithoutFreeSpace) {
    BufferMemory mem;
    TempDir dir;
    const fs::path out = dir.path() / "guest.elf";
    DumpOptions opts;
    opts.free_space_margin = UINT64_MAX;  // more than any filesystem has; must not overflow

    auto st = write_elf_core(mem, {{0, 0x1000}}, out, opts);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.fault(), Fault::kLimitExceeded);
    EXPECT_NE(st.error().detail.find("free"), std::string::npos) << st.error().detail;
    EXPECT_TRUE(dir.entries().empty());
}

TEST(BridgeElfCoreWriter, BadRangesAreRejectedBeforeWriting) {
    BufferMemory mem;
    TempDir dir;
    const fs::path out = dir.path() / "guest.elf";
    const std::vector<std::vector<DumpRange>> bad = {
        {},                                                    // nothing to dump
        {{0, 0x1000}, {0x2000, 0}},                            // empty range
        {{UINT64_MAX - 0xfff, 0x2000}},                        // wraps
        {{k4G, 0x2000}, {0, 0x1000}, {k4G + 0x1000, 0x1000}},  // overlap, out of order
    };
    for (const auto& ranges : bad) {
        auto st = write_elf_core(mem, ranges, out);
        ASSERT_FALSE(st.ok());
        EXPECT_EQ(st.fault(), Fault::kInvalidFormat) << st.error().message();
    }
    std::vector<DumpRange> many;
    for (std::uint64_t i = 0; i <= kMaxDumpRanges; ++i) many.push_back({i * 0x2000, 0x1000});
    auto st = write_elf_core(mem, many, out);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.fault(), Fault::kLimitExceeded);
    EXPECT_TRUE(dir.entries().empty());
}

TEST(BridgeElfCoreWriter, MissingDirectoryNamesThePath) {
    BufferMemory mem;
    TempDir dir;
    const fs::path out = dir.path() / "no" / "such" / "guest.elf";
    auto st = write_elf_core(mem, {{0, 0x1000}}, out);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.fault(), Fault::kIo);
    EXPECT_NE(st.error().detail.find(dir.path().string() + "/no/such"), std::string::npos)
        << st.error().detail;
    EXPECT_NE(st.error().detail.find("No such file or directory"), std::string::npos)
        << st.error().detail;
}

TEST(BridgeElfCoreWriter, WriteErrorMidDumpLeavesNoPartial) {
    // RLIMIT_FSIZE makes writes past 1 MiB fail with EFBIG (SIGXFSZ ignored), half-way
    // through the data.
    BufferMemory mem;
    fill(mem, {0, 2U << 20});
    TempDir dir;
    const fs::path out = dir.path() / "guest.elf";
    rlimit old{};
    ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
    auto* old_handler = std::signal(SIGXFSZ, SIG_IGN);
    rlimit lim = old;
    lim.rlim_cur = 1U << 20;
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &lim), 0);
    auto st = write_elf_core(mem, {{0, 2U << 20}}, out);
    ::setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, old_handler);

    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.fault(), Fault::kIo);
    EXPECT_NE(st.error().detail.find(out.string() + ".partial"), std::string::npos)
        << st.error().detail;
    EXPECT_NE(st.error().detail.find("too large"), std::string::npos) << st.error().detail;
    EXPECT_TRUE(dir.entries().empty());
}

}  // namespace
}  // namespace vmi
