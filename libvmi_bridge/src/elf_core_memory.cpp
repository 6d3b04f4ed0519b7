#include "vmi/elf_core_memory.hpp"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <system_error>

namespace vmi {

namespace {

// Offsets in QEMU's struct QEMUCPUState (target/i386/arch_dump.c, QEMUCPUSTATE_VERSION 1):
// u32 version, u32 size, 16 GPRs (rax rbx rcx rdx rsi rdi rsp rbp r8..r15), rip, rflags,
// 10 x QEMUCPUSegment {u32 selector, limit, flags, pad; u64 base} (cs ds es fs gs ss ldt tr
// gdt idt), u64 cr[5] (newer QEMUs append kernel_gs_base; `size` says how much is there).
constexpr std::size_t kQemuRsp = 8 + 6 * 8;
constexpr std::size_t kQemuRip = 8 + 16 * 8;
constexpr std::size_t kQemuSegs = kQemuRip + 16;
constexpr std::size_t kQemuSegSize = 24;
constexpr std::size_t kQemuGsBase = kQemuSegs + 4 * kQemuSegSize + 16;
constexpr std::size_t kQemuCr = kQemuSegs + 10 * kQemuSegSize;
constexpr std::size_t kQemuMinSize = kQemuCr + 5 * 8;  // through cr[4]
static_assert(kQemuCr == 392 && kQemuMinSize == 432);

template <class T>
T load(std::span<const std::byte> b, std::size_t off) {
    T v{};
    std::memcpy(&v, b.data() + off, sizeof(T));
    return v;
}

constexpr std::uint64_t align4(std::uint64_t v) { return (v + 3) & ~std::uint64_t{3}; }

}  // namespace

Status parse_qemu_notes(std::span<const std::byte> notes, std::vector<VcpuState>& out) {
    std::uint64_t pos = 0;
    while (pos < notes.size()) {
        if (notes.size() - pos < sizeof(Elf64_Nhdr)) {
            return Error{Fault::kInvalidFormat, "truncated note header"};
        }
        const auto nh = load<Elf64_Nhdr>(notes, static_cast<std::size_t>(pos));
        const std::uint64_t name_at = pos + sizeof(Elf64_Nhdr);
        const std::uint64_t desc_at = name_at + align4(nh.n_namesz);
        const std::uint64_t next = desc_at + align4(nh.n_descsz);
        if (next > notes.size()) return Error{Fault::kInvalidFormat, "note past its segment"};
        const auto name = notes.subspan(static_cast<std::size_t>(name_at), nh.n_namesz);
        const auto desc = notes.subspan(static_cast<std::size_t>(desc_at), nh.n_descsz);
        static constexpr char kQemu[] = "QEMU";  // namesz 5, NUL included
        if (nh.n_type == 0 && nh.n_namesz == sizeof kQemu &&
            std::memcmp(name.data(), kQemu, sizeof kQemu) == 0 && desc.size() >= kQemuMinSize) {
            const auto version = load<std::uint32_t>(desc, 0);
            const auto size = load<std::uint32_t>(desc, 4);
            if (version == 1 && size >= kQemuMinSize && size <= desc.size()) {
                if (out.size() >= ElfCoreMemory::kMaxVcpus) {
                    return Error{Fault::kLimitExceeded, "too many vCPU notes"};
                }
                VcpuState v;
                v.rsp = load<std::uint64_t>(desc, kQemuRsp);
                v.rip = load<std::uint64_t>(desc, kQemuRip);
                v.gs_base = load<std::uint64_t>(desc, kQemuGsBase);
                v.cr0 = load<std::uint64_t>(desc, kQemuCr);
                v.cr3 = load<std::uint64_t>(desc, kQemuCr + 3 * 8);
                v.cr4 = load<std::uint64_t>(desc, kQemuCr + 4 * 8);
                out.push_back(v);
            }
        }
        pos = next;
    }
    return {};
}

bool is_elf_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    std::array<char, SELFMAG> m{};
    const bool ok = ::pread(fd, m.data(), m.size(), 0) == SELFMAG &&
                    std::memcmp(m.data(), ELFMAG, SELFMAG) == 0;
    ::close(fd);
    return ok;
}

Result<std::unique_ptr<ElfCoreMemory>> ElfCoreMemory::open(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return Error{Fault::kIo, path + ": " + std::generic_category().message(errno)};
    }
    std::unique_ptr<ElfCoreMemory> m(new ElfCoreMemory(path, fd));
    auto bad = [&](const std::string& why) {
        return Error{Fault::kInvalidFormat, path + ": " + why};
    };
    struct stat st {};
    if (::fstat(fd, &st) != 0) return Error{Fault::kIo, path + ": fstat failed"};
    m->file_size_ = static_cast<std::uint64_t>(st.st_size);

    Elf64_Ehdr eh{};
    if (!m->pread_all(0, std::as_writable_bytes(std::span(&eh, 1)))) {
        return bad("too short for an ELF header");
    }
    if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return bad("not an ELF file");
    if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB) {
        return bad("not a little-endian ELF64 file");
    }
    if (eh.e_type != ET_CORE)
        return bad("not an ELF core file (e_type " + std::to_string(eh.e_type) + ")");
    if (eh.e_phentsize != sizeof(Elf64_Phdr)) return bad("unexpected program header size");
    if (eh.e_phnum == 0 || eh.e_phnum == PN_XNUM)
        return bad("no program headers (or extended count)");
    if (eh.e_phnum > kMaxSegments) return bad("too many program headers");
    const std::uint64_t ph_bytes = std::uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr);
    if (eh.e_phoff > m->file_size_ || ph_bytes > m->file_size_ - eh.e_phoff) {
        return bad("program headers past the end of the file");
    }
    std::vector<Elf64_Phdr> ph(eh.e_phnum);
    if (!m->pread_all(eh.e_phoff, std::as_writable_bytes(std::span(ph)))) {
        return bad("cannot read program headers");
    }
    std::size_t notes_total = 0;
    for (const Elf64_Phdr& p : ph) {
        if (p.p_type == PT_LOAD) {
            if (p.p_memsz == 0) continue;
            if (p.p_filesz > p.p_memsz) return bad("PT_LOAD with p_filesz > p_memsz");
            if (!range_fits(p.p_paddr, p.p_memsz)) return bad("PT_LOAD wraps the address space");
            if (p.p_offset > m->file_size_ || p.p_filesz > m->file_size_ - p.p_offset) {
                return bad("PT_LOAD at gpa " + std::to_string(p.p_paddr) +
                           " extends past the end of the file (truncated dump?)");
            }
            m->segs_.push_back(CoreSegment{p.p_paddr, p.p_memsz, p.p_filesz, p.p_offset});
        } else if (p.p_type == PT_NOTE) {
            if (p.p_offset > m->file_size_ || p.p_filesz > m->file_size_ - p.p_offset) {
                return bad("PT_NOTE extends past the end of the file");
            }
            if (p.p_filesz > kMaxNotesBytes - notes_total) return bad("notes too large");
            notes_total += static_cast<std::size_t>(p.p_filesz);
            std::vector<std::byte> notes(static_cast<std::size_t>(p.p_filesz));
            if (!m->pread_all(p.p_offset, notes)) return bad("cannot read notes");
            if (auto s = parse_qemu_notes(notes, m->vcpus_); !s) return bad(s.error().message());
        }
    }
    if (m->segs_.empty()) return bad("no PT_LOAD segments");
    std::sort(m->segs_.begin(), m->segs_.end(),
              [](const CoreSegment& a, const CoreSegment& b) { return a.paddr < b.paddr; });
    for (std::size_t i = 1; i < m->segs_.size(); ++i) {
        const CoreSegment& a = m->segs_[i - 1];
        if (m->segs_[i].paddr - a.paddr < a.memsz) return bad("overlapping PT_LOAD segments");
    }
    return m;
}

ElfCoreMemory::~ElfCoreMemory() {
    if (fd_ >= 0) ::close(fd_);
}

std::vector<std::uint64_t> ElfCoreMemory::vcpu_cr3s() const {
    std::vector<std::uint64_t> out;
    out.reserve(vcpus_.size());
    for (const VcpuState& v : vcpus_) out.push_back(v.cr3);
    return out;
}

Status ElfCoreMemory::pread_all(std::uint64_t off, std::span<std::byte> out) const {
    std::size_t done = 0;
    while (done < out.size()) {
        const ssize_t n =
            ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(off + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Error{Fault::kReadFailed, std::generic_category().message(errno)};
        if (n == 0) return Fault::kUnmapped;  // file shrank
        done += static_cast<std::size_t>(n);
    }
    return {};
}

Status ElfCoreMemory::read_phys(std::uint64_t gpa, std::span<std::byte> out) {
    if (!range_fits(gpa, out.size())) return Fault::kUnmapped;
    std::size_t done = 0;
    while (done < out.size()) {
        const std::uint64_t a = gpa + done;
        // Last segment starting at or below a.
        auto it =
            std::upper_bound(segs_.begin(), segs_.end(), a,
                             [](std::uint64_t v, const CoreSegment& s) { return v < s.paddr; });
        if (it == segs_.begin()) return Fault::kUnmapped;
        const CoreSegment& s = *std::prev(it);
        const std::uint64_t rel = a - s.paddr;
        if (rel >= s.memsz) return Fault::kUnmapped;
        const std::uint64_t want = std::min<std::uint64_t>(s.memsz - rel, out.size() - done);
        const auto piece = out.subspan(done, static_cast<std::size_t>(want));
        if (rel >= s.filesz) {
            std::fill(piece.begin(), piece.end(), std::byte{0});
        } else {
            const std::uint64_t in_file = std::min<std::uint64_t>(s.filesz - rel, want);
            if (auto st = pread_all(s.offset + rel, piece.first(static_cast<std::size_t>(in_file)));
                !st) {
                return st;
            }
            std::fill(piece.begin() + static_cast<std::ptrdiff_t>(in_file), piece.end(),
                      std::byte{0});
        }
        done += static_cast<std::size_t>(want);
    }
    return {};
}

}  // namespace vmi
