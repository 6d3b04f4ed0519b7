// Writes guest RAM as an ELF core in the layout of QEMU's `dump-guest-memory` (paging off),
// so ElfCoreMemory, crash and gdb read it: ELF64 x86-64 ET_CORE, one PT_LOAD per range with
// p_paddr = guest-physical address and p_vaddr = 0. Used by the policy action `dump_memory`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "vmi/guest_memory.hpp"
#include "vmi/result.hpp"

namespace vmi {

/// Guest-physical [gpa, gpa+size) to dump.
struct DumpRange {
    std::uint64_t gpa = 0;
    std::uint64_t size = 0;
};

struct DumpOptions {
    /// Refuse (kLimitExceeded, nothing written) if the ranges total more than this.
    std::uint64_t max_bytes = UINT64_MAX;
    /// Refuse (kLimitExceeded) unless the target filesystem has the file size plus this free.
    std::uint64_t free_space_margin = 64ULL << 20;
    /// Guest bytes read and written per step: bounds memory use. Rounded down to whole pages.
    std::size_t chunk_bytes = 1U << 20;
};

struct DumpStats {
    std::uint64_t guest_bytes = 0;       // sum of the range sizes
    std::uint64_t file_bytes = 0;        // size of the written file
    std::uint64_t unreadable_bytes = 0;  // written as zeros because reading them failed
    std::string first_read_error;        // "gpa 0x...: <fault>" of the first, empty if none
};

/// ElfCoreMemory::kMaxSegments: more could not be read back.
inline constexpr std::size_t kMaxDumpRanges = 4096;

/// Writes `ranges` of `mem` to `out` as an ELF core: ELF header, program headers (one PT_LOAD
/// per range, in `ranges` order), then each range's bytes at a page-aligned file offset (QEMU
/// packs them; aligned data can be mmap'ed per segment). No PT_NOTE: there are no vCPU
/// registers to record. Guest memory is read `chunk_bytes` at a time.
///
/// Guest pages whose read fails are written as zeros and counted in unreadable_bytes; they
/// never fail the dump. The file is built as `out` + ".partial" (O_EXCL, mode 0600), fsync'd,
/// then renamed to `out` without replacing anything, so `out` appears complete or not at all.
/// Errors (the .partial is removed on each, unless it pre-existed):
///  - kInvalidFormat: no ranges, an empty, wrapping or overlapping range;
///  - kLimitExceeded: more than kMaxDumpRanges ranges, over max_bytes, not enough free space;
///  - kIo: `out` or `out.partial` exists, create / write / fsync / rename failed. Messages
///    name the path and the errno text. Only a failed fsync of the directory comes after the
///    rename: `out` is then complete but may not survive a host crash.
Result<DumpStats> write_elf_core(GuestMemory& mem, const std::vector<DumpRange>& ranges,
                                 const std::filesystem::path& out, const DumpOptions& opts = {});

}  // namespace vmi
