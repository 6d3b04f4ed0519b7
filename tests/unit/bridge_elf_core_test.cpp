// ElfCoreMemory on synthetic QEMU-style ELF cores written by the test, including truncated
// and garbage files.
#include <elf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "vmi/elf_core_memory.hpp"

namespace vmi {
namespace {

namespace fs = std::filesystem;

class TempFile {
  public:
    TempFile() {
        path_ = (fs::temp_directory_path() /
                 ("bridge_elf_core_" + std::to_string(::getpid()) + "_" + std::to_string(n_++)))
                    .string();
    }
    ~TempFile() { fs::remove(path_); }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    void write(const std::vector<std::byte>& b) const {
        std::ofstream f(path_, std::ios::binary | std::ios::trunc);
        f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    }
    [[nodiscard]] const std::string& path() const { return path_; }

  private:
    static inline int n_ = 0;
    std::string path_;
};

template <class T>
void put(std::vector<std::byte>& b, std::size_t off, const T& v) {
    if (b.size() < off + sizeof(T)) b.resize(off + sizeof(T));
    std::memcpy(b.data() + off, &v, sizeof(T));
}

void append(std::vector<std::byte>& b, const void* p, std::size_t n) {
    const auto* c = static_cast<const std::byte*>(p);
    b.insert(b.end(), c, c + n);
    while (b.size() % 4) b.push_back(std::byte{0});
}

// One note: name (with NUL), type, desc; 4-byte padded like QEMU writes them.
void add_note(std::vector<std::byte>& notes, const char* name, std::uint32_t type,
              const std::vector<std::byte>& desc) {
    Elf64_Nhdr h{};
    h.n_namesz = static_cast<Elf64_Word>(std::strlen(name) + 1);
    h.n_descsz = static_cast<Elf64_Word>(desc.size());
    h.n_type = type;
    append(notes, &h, sizeof h);
    append(notes, name, h.n_namesz);
    append(notes, desc.data(), desc.size());
}

// QEMUCPUState version 1 (432 bytes) with rip / cr3 set.
std::vector<std::byte> qemu_cpu_state(std::uint64_t rip, std::uint64_t cr3) {
    std::vector<std::byte> s(432);
    put<std::uint32_t>(s, 0, 1);
    put<std::uint32_t>(s, 4, 432);
    put<std::uint64_t>(s, 8 + 16 * 8, rip);
    put<std::uint64_t>(s, 392 + 3 * 8, cr3);
    put<std::uint64_t>(s, 392 + 4 * 8, 0x3506f0);  // cr4
    return s;
}

struct Seg {
    std::uint64_t paddr;
    std::uint64_t memsz;
    std::vector<std::byte> data;  // filesz = data.size()
};

// ELF64 ET_CORE: header, PT_NOTE + PT_LOADs, notes, then segment data.
std::vector<std::byte> build_core(const std::vector<Seg>& segs, const std::vector<std::byte>& notes,
                                  std::uint16_t type = ET_CORE) {
    const std::size_t nph = segs.size() + 1;
    std::vector<std::byte> f(sizeof(Elf64_Ehdr) + nph * sizeof(Elf64_Phdr));
    Elf64_Ehdr eh{};
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = type;
    eh.e_machine = EM_X86_64;
    eh.e_version = EV_CURRENT;
    eh.e_phoff = sizeof(Elf64_Ehdr);
    eh.e_ehsize = sizeof(Elf64_Ehdr);
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = static_cast<Elf64_Half>(nph);
    put(f, 0, eh);
    Elf64_Phdr note{};
    note.p_type = PT_NOTE;
    note.p_offset = f.size();
    note.p_filesz = note.p_memsz = notes.size();
    put(f, sizeof(Elf64_Ehdr), note);
    f.insert(f.end(), notes.begin(), notes.end());
    for (std::size_t i = 0; i < segs.size(); ++i) {
        Elf64_Phdr ph{};
        ph.p_type = PT_LOAD;
        ph.p_offset = f.size();
        ph.p_paddr = segs[i].paddr;
        ph.p_filesz = segs[i].data.size();
        ph.p_memsz = segs[i].memsz;
        put(f, sizeof(Elf64_Ehdr) + (i + 1) * sizeof(Elf64_Phdr), ph);
        f.insert(f.end(), segs[i].data.begin(), segs[i].data.end());
    }
    return f;
}

std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
    std::vector<std::byte> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 7 + seed) & 0xff);
    return v;
}

std::vector<std::byte> standard_notes() {
    std::vector<std::byte> notes;
    add_note(notes, "CORE", NT_PRSTATUS, std::vector<std::byte>(336));
    add_note(notes, "QEMU", 0, qemu_cpu_state(0xffffffff81000000ULL, 0x1a2b000));
    add_note(notes, "CORE", NT_PRSTATUS, std::vector<std::byte>(336));
    add_note(notes, "QEMU", 0, qemu_cpu_state(0x401000, 0x2c3d000 | 0x8000000000000001ULL));
    return notes;
}

std::vector<std::byte> standard_core() {
    // RAM below 640 KiB, a hole, then 1 MiB.. with only the first 8 KiB in the file.
    return build_core(
        {Seg{0, 0xa0000, pattern(0xa0000, 1)}, Seg{0x100000, 0x10000, pattern(0x2000, 2)},
         Seg{0x110000, 0x1000, pattern(0x1000, 3)}},
        standard_notes());
}

TEST(BridgeElfCore, ReadsSegmentsZeroFillsAndFaultsOutside) {
    TempFile t;
    t.write(standard_core());
    auto m = ElfCoreMemory::open(t.path());
    ASSERT_TRUE(m.ok()) << m.error().message();
    ElfCoreMemory& mem = **m;
    ASSERT_EQ(mem.segments().size(), 3U);

    const auto p1 = pattern(0xa0000, 1);
    std::vector<std::byte> buf(0x100);
    ASSERT_TRUE(mem.read_phys(0x1234, buf).ok());
    EXPECT_EQ(std::memcmp(buf.data(), p1.data() + 0x1234, buf.size()), 0);

    // Across p_filesz into the zero-filled tail.
    const auto p2 = pattern(0x2000, 2);
    ASSERT_TRUE(mem.read_phys(0x100000 + 0x2000 - 0x10, buf).ok());
    EXPECT_EQ(std::memcmp(buf.data(), p2.data() + 0x1ff0, 0x10), 0);
    for (std::size_t i = 0x10; i < buf.size(); ++i) EXPECT_EQ(buf[i], std::byte{0});

    // Across two adjacent segments: zero tail of the second, data of the third.
    const auto p3 = pattern(0x1000, 3);
    ASSERT_TRUE(mem.read_phys(0x110000 - 0x80, buf).ok());
    EXPECT_EQ(buf[0x7f], std::byte{0});
    EXPECT_EQ(std::memcmp(buf.data() + 0x80, p3.data(), 0x80), 0);

    // The hole, the end, a wrapping range.
    EXPECT_EQ(mem.read_phys(0xa0000, buf).fault(), Fault::kUnmapped);
    EXPECT_EQ(mem.read_phys(0x9ff80, buf).fault(), Fault::kUnmapped);
    EXPECT_EQ(mem.read_phys(0x111000 - 0x10, buf).fault(), Fault::kUnmapped);
    EXPECT_EQ(mem.read_phys(UINT64_MAX - 0x10, buf).fault(), Fault::kUnmapped);
    auto v = mem.read_u64(0x110000);
    ASSERT_TRUE(v.ok());

    ASSERT_EQ(mem.vcpus().size(), 2U);
    EXPECT_EQ(mem.vcpus()[0].rip, 0xffffffff81000000ULL);
    EXPECT_EQ(mem.vcpus()[0].cr4, 0x3506f0U);
    const auto cr3s = mem.vcpu_cr3s();
    ASSERT_EQ(cr3s.size(), 2U);
    EXPECT_EQ(cr3s[0], 0x1a2b000U);
    EXPECT_EQ(cr3s[1], 0x2c3d000U | 0x8000000000000001ULL);
    EXPECT_TRUE(is_elf_file(t.path()));
}

TEST(BridgeElfCore, NewerQemuStateWithExtraFieldsIsAccepted) {
    std::vector<std::byte> notes;
    auto s = qemu_cpu_state(1, 0xabc000);
    s.resize(440);  // + kernel_gs_base
    put<std::uint32_t>(s, 4, 440);
    add_note(notes, "QEMU", 0, s);
    // Not ours: other names, other types, a short QEMU note, version 2.
    add_note(notes, "QEMU", 1, qemu_cpu_state(2, 0xdead000));
    add_note(notes, "QEMUX", 0, qemu_cpu_state(3, 0xdead000));
    add_note(notes, "QEMU", 0, std::vector<std::byte>(100));
    auto v2 = qemu_cpu_state(4, 0xdead000);
    put<std::uint32_t>(v2, 0, 2);
    add_note(notes, "QEMU", 0, v2);
    auto oversize = qemu_cpu_state(5, 0xdead000);
    put<std::uint32_t>(oversize, 4, 100000);  // claims more than the note holds
    add_note(notes, "QEMU", 0, oversize);
    TempFile t;
    t.write(build_core({Seg{0, 0x1000, pattern(0x1000, 0)}}, notes));
    auto m = ElfCoreMemory::open(t.path());
    ASSERT_TRUE(m.ok()) << m.error().message();
    ASSERT_EQ((*m)->vcpu_cr3s().size(), 1U);
    EXPECT_EQ((*m)->vcpu_cr3s()[0], 0xabc000U);
}

TEST(BridgeElfCore, DumpWithoutNotesHasNoVcpus) {
    TempFile t;
    t.write(build_core({Seg{0, 0x1000, pattern(0x1000, 0)}}, {}));
    auto m = ElfCoreMemory::open(t.path());
    ASSERT_TRUE(m.ok()) << m.error().message();
    EXPECT_TRUE((*m)->vcpus().empty());
}

TEST(BridgeElfCore, EveryTruncationIsAnErrorNamingTheFile) {
    const auto core = standard_core();
    TempFile t;
    // Every cut inside headers and notes, then a sample of cuts inside segment data.
    std::vector<std::size_t> cuts;
    for (std::size_t n = 0; n < 2048; ++n) cuts.push_back(n);
    for (std::size_t n = 2048; n < core.size(); n += 4093) cuts.push_back(n);
    cuts.push_back(core.size() - 1);
    for (std::size_t n : cuts) {
        t.write(std::vector<std::byte>(core.begin(), core.begin() + static_cast<long>(n)));
        auto m = ElfCoreMemory::open(t.path());
        ASSERT_FALSE(m.ok()) << "accepted a dump cut at " << n;
        EXPECT_NE(m.error().detail.find(t.path()), std::string::npos) << m.error().detail;
    }
}

TEST(BridgeElfCore, GarbageAndWrongTypesAreRejected) {
    TempFile t;
    std::mt19937 rng(42);
    for (int i = 0; i < 200; ++i) {
        std::vector<std::byte> g(static_cast<std::size_t>(rng() % 4096));
        for (auto& b : g) b = static_cast<std::byte>(rng());
        if (i % 2 == 0 && g.size() >= 64) {  // keep a valid ident so the headers are parsed
            std::memcpy(g.data(), ELFMAG, SELFMAG);
            g[EI_CLASS] = std::byte{ELFCLASS64};
            g[EI_DATA] = std::byte{ELFDATA2LSB};
        }
        t.write(g);
        auto m = ElfCoreMemory::open(t.path());
        if (m.ok()) {  // only if it happened to be a valid core: reads must still be safe
            std::vector<std::byte> buf(64);
            (void)(*m)->read_phys(0, buf);
        }
    }
    TempFile exec;
    exec.write(build_core({Seg{0, 0x1000, pattern(0x1000, 0)}}, {}, ET_EXEC));
    auto m = ElfCoreMemory::open(exec.path());
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.fault(), Fault::kInvalidFormat);

    auto missing = ElfCoreMemory::open("/nonexistent/guest.elf");
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.fault(), Fault::kIo);
    EXPECT_NE(missing.error().detail.find("/nonexistent/guest.elf"), std::string::npos);
    EXPECT_FALSE(is_elf_file("/nonexistent/guest.elf"));
}

TEST(BridgeElfCore, HostileSegmentsAndNotesAreRejected) {
    TempFile t;
    // Overlapping segments.
    t.write(build_core(
        {Seg{0, 0x2000, pattern(0x1000, 0)}, Seg{0x1000, 0x1000, pattern(0x1000, 1)}}, {}));
    EXPECT_FALSE(ElfCoreMemory::open(t.path()).ok());
    // A segment wrapping past 2^64.
    t.write(build_core({Seg{UINT64_MAX - 0xfff, 0x2000, pattern(0x10, 0)}}, {}));
    EXPECT_FALSE(ElfCoreMemory::open(t.path()).ok());
    // filesz > memsz.
    t.write(build_core({Seg{0, 0x10, pattern(0x1000, 0)}}, {}));
    EXPECT_FALSE(ElfCoreMemory::open(t.path()).ok());
    // A note whose descsz runs past its segment.
    std::vector<std::byte> notes;
    add_note(notes, "QEMU", 0, qemu_cpu_state(1, 2));
    put<std::uint32_t>(notes, 4, 0xffff'fff0U);
    t.write(build_core({Seg{0, 0x1000, pattern(0x1000, 0)}}, notes));
    auto m = ElfCoreMemory::open(t.path());
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.error().detail.find("note"), std::string::npos) << m.error().detail;

    std::vector<VcpuState> out;
    const std::vector<std::byte> short_hdr(5);
    EXPECT_FALSE(parse_qemu_notes(short_hdr, out).ok());
    EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace vmi
