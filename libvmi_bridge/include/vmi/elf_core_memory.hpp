// Guest RAM from an ELF core file, as written by QEMU's `dump-guest-memory` (paging off):
// ELF64 ET_CORE whose PT_LOAD segments map guest-physical p_paddr to file offsets. QEMU also
// writes one "QEMU" note per vCPU with its registers, which gives the CR3 values.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vmi/guest_memory.hpp"
#include "vmi/result.hpp"

namespace vmi {

/// One PT_LOAD segment: guest-physical [paddr, paddr+memsz); the first filesz bytes are at
/// file offset `offset`, the rest reads as zeros.
struct CoreSegment {
    std::uint64_t paddr = 0;
    std::uint64_t memsz = 0;
    std::uint64_t filesz = 0;
    std::uint64_t offset = 0;
};

/// Registers of one vCPU from QEMU's "QEMU" note (struct QEMUCPUState in
/// target/i386/arch_dump.c).
struct VcpuState {
    std::uint64_t rip = 0;
    std::uint64_t rsp = 0;
    std::uint64_t cr0 = 0;
    std::uint64_t cr3 = 0;
    std::uint64_t cr4 = 0;
    std::uint64_t gs_base = 0;
};

class ElfCoreMemory final : public GuestMemory {
  public:
    /// Bounds on hostile files.
    static constexpr std::size_t kMaxSegments = 4096;
    static constexpr std::size_t kMaxNotesBytes = 16U << 20;
    static constexpr std::size_t kMaxVcpus = 1024;

    /// Opens and validates `path`. Errors name the file: kIo (cannot open), kInvalidFormat
    /// (not ELF64 little-endian ET_CORE, headers or segments out of the file, overlapping or
    /// wrapping segments, too many segments).
    static Result<std::unique_ptr<ElfCoreMemory>> open(const std::string& path);

    ~ElfCoreMemory() override;
    ElfCoreMemory(const ElfCoreMemory&) = delete;
    ElfCoreMemory& operator=(const ElfCoreMemory&) = delete;

    /// pread from the segment(s) covering the range; zero-fill past p_filesz; any byte outside
    /// every segment -> kUnmapped.
    Status read_phys(std::uint64_t gpa, std::span<std::byte> out) override;

    [[nodiscard]] const std::vector<CoreSegment>& segments() const noexcept { return segs_; }
    /// vCPU states from the QEMU notes, in file order (empty if the dump has none).
    [[nodiscard]] const std::vector<VcpuState>& vcpus() const noexcept { return vcpus_; }
    /// CR3 of each vCPU (same order as vcpus()).
    [[nodiscard]] std::vector<std::uint64_t> vcpu_cr3s() const;
    [[nodiscard]] const std::string& path() const noexcept { return path_; }

  private:
    ElfCoreMemory(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
    Status pread_all(std::uint64_t off, std::span<std::byte> out) const;

    std::string path_;
    int fd_ = -1;
    std::uint64_t file_size_ = 0;
    std::vector<CoreSegment> segs_;  // sorted by paddr, non-overlapping
    std::vector<VcpuState> vcpus_;
};

/// Parses the notes of one PT_NOTE segment, appending every valid "QEMU" type-0 note.
/// Malformed notes end the parse (kInvalidFormat); exposed for tests and fuzzing.
Status parse_qemu_notes(std::span<const std::byte> notes, std::vector<VcpuState>& out);

/// True if the file starts with the ELF magic.
bool is_elf_file(const std::string& path);

}  // namespace vmi
