// The guest kernel's own symbol table (kallsyms), found in guest memory with zero
// configuration: no System.map, no vmlinux, no debug package.
//
// Linux keeps every symbol (CONFIG_KALLSYMS_ALL, as distributions build it) in compressed
// tables in its .rodata, written by scripts/kallsyms.c, each table 8-byte aligned:
//
//   kallsyms_num_syms      u32 N (padded to 8 bytes)
//   kallsyms_names         N entries: a length (1 byte, or 2 bytes ULEB128 if >= 0x80) and
//                          that many token indices; the expansion is the type letter followed
//                          by the name ("Tschedule")
//   kallsyms_markers       u32 per 256 entries: byte offset of entry 256*k in the names
//   kallsyms_token_table   256 NUL-terminated strings (the tokens)
//   kallsyms_token_index   256 u16: offset of each token in the token table
//   kallsyms_offsets       N s32, with kallsyms_relative_base (u64) right after them (6.12
//                          order) or right before kallsyms_num_syms (6.1 order); addresses
//                          are sorted. With absolute per-CPU symbols (x86-64 SMP on both
//                          6.1 and 6.12), offset >= 0 is the address itself (a per-CPU
//                          offset) and offset < 0 means relative_base - 1 - offset; otherwise
//                          every address is relative_base + (u32)offset.
//   kallsyms_seqs_of_names (6.1 stable and 6.2+) sorted-by-name order; not used here.
//
// Discovery (find()): the token index is scanned for at 8-byte aligned addresses (u16 0, then
// 255 strictly increasing u16) and confirmed by the token table just before it (256 printable
// strings ending at those offsets, padded to the index). kallsyms_num_syms is then searched
// backwards from the token table: an aligned u32 N whose N names decode to printable
// "<type letter><name>" strings, whose markers follow the names and match every 256th entry,
// and which end before the token table. The offsets table is tried in both places and must
// give sorted addresses. Finally _text must be at the guest's _text (from its page tables):
// if the guest's relative_base is unrelocated the difference is applied as the KASLR slide,
// and init_task must be where kernel discovery found it.
//
// Guest memory is hostile: the scan window, the number of candidates, the symbol count
// (kMaxKallsyms), the name length (kMaxSymbolName) and the bytes read for the tables are all
// bounded; malformed tables are kInvalidFormat / kNotFound / kLimitExceeded errors.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "vmi/guest_memory.hpp"
#include "vmi/page_cache.hpp"
#include "vmi/result.hpp"

namespace vmi {

struct GuestKernelProfile;

/// Kernel-virtual address space for the symbol search: a guest's page tables, or the sections
/// of a vmlinux file at their link addresses.
class KernelVirtualMemory {
  public:
    virtual ~KernelVirtualMemory() = default;
    KernelVirtualMemory() = default;
    KernelVirtualMemory(const KernelVirtualMemory&) = delete;
    KernelVirtualMemory& operator=(const KernelVirtualMemory&) = delete;

    /// Reads the longest readable prefix of [va, va + out.size()) into `out` and returns its
    /// length (0 if the byte at `va` is unreadable). Readability may change at any 4 KiB page
    /// boundary. Bytes of `out` past the returned length are unspecified.
    virtual std::size_t read_prefix(std::uint64_t va, std::span<std::byte> out) = 0;

    /// For an unreadable `va`: how many bytes from `va` on are unreadable too, at least to the
    /// end of its page (a missing page-table entry covers 2 MiB, 1 GiB, ...). Lets a scan skip
    /// holes in large steps.
    virtual std::uint64_t hole_size(std::uint64_t va) { return kPageSize - (va & kPageMask); }

    /// All or nothing: kUnmapped if any byte is unreadable.
    Status read(std::uint64_t va, std::span<std::byte> out);
};

/// Guest kernel memory through the page tables of kernel_pgd_from_cr3(any_cr3). Page-table
/// pages are cached for the object's lifetime: scope it to one derivation.
class PagedKernelMemory final : public KernelVirtualMemory {
  public:
    /// `mem` must outlive this object.
    PagedKernelMemory(GuestMemory& mem, std::uint64_t any_cr3, bool la57 = false);
    std::size_t read_prefix(std::uint64_t va, std::span<std::byte> out) override;
    std::uint64_t hole_size(std::uint64_t va) override;

  private:
    GuestMemory* mem_;
    PageCache tables_;
    std::uint64_t kcr3_;
    bool la57_;
};

/// The allocated PROGBITS sections of a vmlinux ELF in the kernel half, at their link
/// addresses (unrelocated: KASLR slide 0). For tests, benchmarks and offline use. The file is
/// read with pread and every header is bounds-checked. A 4 KiB page that holds part of a
/// section is readable; its bytes outside every section read as zero.
class VmlinuxMemory final : public KernelVirtualMemory {
  public:
    /// kIo if unreadable, kInvalidFormat if not an ELF64 with sane section headers.
    static Result<std::unique_ptr<VmlinuxMemory>> open(const std::string& path);
    ~VmlinuxMemory() override;
    std::size_t read_prefix(std::uint64_t va, std::span<std::byte> out) override;
    std::uint64_t hole_size(std::uint64_t va) override;

    struct Section {
        std::string name;
        std::uint64_t addr = 0;
        std::uint64_t size = 0;
        std::uint64_t offset = 0;  // in the file
    };
    /// Mapped sections, sorted by address.
    [[nodiscard]] const std::vector<Section>& sections() const noexcept { return sections_; }
    /// Address of a mapped section by name (".text", ".rodata", ...).
    [[nodiscard]] std::optional<std::uint64_t> section_addr(std::string_view name) const;

  private:
    VmlinuxMemory() = default;
    int fd_ = -1;
    std::vector<Section> sections_;
};

/// Bounds on what a guest can make the symbol search read or keep.
inline constexpr std::size_t kMaxKallsyms = std::size_t{1} << 20;  // symbols
inline constexpr std::size_t kMaxSymbolName = 511;                 // KSYM_NAME_LEN - 1
inline constexpr std::uint64_t kMaxKallsymsNames = 32ULL << 20;    // bytes of kallsyms_names
inline constexpr std::uint64_t kMaxSymbolBytes = 64ULL << 20;      // all names, expanded
inline constexpr std::size_t kMaxTokenIndexCandidates = 4096;      // u16 patterns checked
inline constexpr std::size_t kMaxTokenTableCandidates = 8;         // token tables tried

struct KallsymsOptions {
    /// Kernel image bytes scanned for the token index, from scan_start (mapped parts only).
    std::uint64_t scan_start = 0;
    std::uint64_t scan_len = 128ULL << 20;
    /// The guest's slid _text (from its page tables); 0 = trust kallsyms_relative_base. When
    /// set, the symbol _text (or _stext) must land there after the slide is applied.
    std::uint64_t text_va = 0;
    /// init_task found by kernel discovery; when set, the symbol init_task must agree.
    std::uint64_t init_task_va = 0;
    /// Lowers kMaxKallsyms.
    std::size_t max_symbols = kMaxKallsyms;
};

/// Where the tables were found and what the derivation cost.
struct KallsymsInfo {
    std::uint64_t num_syms_va = 0;
    std::uint64_t names_va = 0;
    std::uint64_t markers_va = 0;
    std::uint64_t token_table_va = 0;
    std::uint64_t token_index_va = 0;
    std::uint64_t offsets_va = 0;
    std::uint64_t relative_base_va = 0;
    std::uint64_t relative_base = 0;         // as read from memory
    std::uint64_t slide = 0;                 // added to relative addresses (0 if already relocated)
    bool absolute_percpu = false;            // offsets >= 0 are absolute (per-CPU) addresses
    bool offsets_after_token_index = false;  // 6.12 order; false = before num_syms (6.1)
    std::uint64_t bytes_scanned = 0;         // searched for the token index
    std::size_t token_index_candidates = 0;  // u16 patterns that looked like the index
    std::chrono::nanoseconds scan_time{0};   // finding the token table
    std::chrono::nanoseconds decode_time{0};  // names, markers, offsets, indexes
    std::chrono::nanoseconds total_time{0};
    /// Well-known symbols (modules, sys_call_table, idt_table, ...) that are absent.
    std::vector<std::string> missing_well_known;
};

struct KernelSymbol {
    std::uint64_t address = 0;  // KASLR applied; per-CPU symbols are offsets in the per-CPU area
    char type = '?';            // nm letter as kallsyms stores it: T t D d B b R r A W V ...
    std::string_view name;      // valid while the KernelSymbols object lives
};

/// An address resolved to the symbol at or below it.
struct SymbolLocation {
    KernelSymbol symbol;
    std::uint64_t offset = 0;  // address - symbol.address
    std::uint64_t size = 0;    // to the next higher symbol address (0 for the last symbol)
};

/// The guest kernel's symbols, in kallsyms order (sorted by address).
class KernelSymbols {
  public:
    /// Finds, validates and decodes the kallsyms tables (see the file comment). Errors:
    /// kNotFound (no token table, no names, no offsets that validate, _text or init_task
    /// missing), kInvalidFormat (a table decodes but contradicts the guest: _text or init_task
    /// elsewhere), kLimitExceeded (too many candidates or symbols).
    static Result<KernelSymbols> find(KernelVirtualMemory& mem, const KallsymsOptions& opts);

    [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }
    /// The i-th symbol in kallsyms order (i < size()).
    [[nodiscard]] KernelSymbol at(std::size_t i) const;

    /// Address of the first symbol named `name` (lowest address among duplicates).
    [[nodiscard]] std::optional<std::uint64_t> address_of(std::string_view name) const;
    /// Every symbol named `name` (static symbols repeat), by address.
    [[nodiscard]] std::vector<KernelSymbol> lookup(std::string_view name) const;
    /// The symbol at or below `address`, for addresses in [lowest relocated symbol, highest
    /// symbol]; nullopt elsewhere (user space, modules, per-CPU offsets).
    [[nodiscard]] std::optional<SymbolLocation> symbolize(std::uint64_t address) const;

    [[nodiscard]] const KallsymsInfo& info() const noexcept { return info_; }

  private:
    struct Entry {
        std::uint64_t address;
        std::uint32_t name_off;  // in names_
        std::uint16_t name_len;
        char type;
        bool relative;  // address derived from relative_base (not an absolute per-CPU value)
    };
    friend struct KallsymsBuilder;
    void build_name_index();
    [[nodiscard]] std::string_view name_of(const Entry& e) const;

    KallsymsInfo info_;
    std::string names_;           // all names, concatenated
    std::vector<Entry> entries_;  // kallsyms order (sorted by address)
    std::vector<std::pair<std::uint64_t, std::uint32_t>> by_name_;  // (name hash, index), sorted
    std::size_t first_relative_ = 0;  // first entry with relative = true
};

/// Convenience for a live guest or a snapshot: searches [prof.text_va, + scan_len) through
/// the guest's page tables and cross-checks _text and init_task with the profile.
Result<KernelSymbols> discover_kernel_symbols(GuestMemory& mem, std::uint64_t any_cr3,
                                              const GuestKernelProfile& prof, bool la57 = false,
                                              std::uint64_t scan_len = 128ULL << 20);

}  // namespace vmi
