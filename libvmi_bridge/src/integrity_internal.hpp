// Shared by the integrity checks (private to libvmi_bridge): one sweep's guest reader, which
// counts the pages it reads, and the kernel's layout as the checks see it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include "vmi/integrity.hpp"
#include "vmi/page_cache.hpp"

namespace vmi::integrity {

/// Counts distinct 4 KiB frames and bytes read through it.
class CountingMemory final : public GuestMemory {
  public:
    explicit CountingMemory(GuestMemory& backing) : backing_(&backing) {}
    Status read_phys(std::uint64_t gpa, std::span<std::byte> out) override;
    [[nodiscard]] std::uint64_t pages() const noexcept { return frames_.size(); }
    [[nodiscard]] std::uint64_t bytes() const noexcept { return bytes_; }

  private:
    GuestMemory* backing_;
    std::unordered_set<std::uint64_t> frames_;
    std::uint64_t bytes_ = 0;
};

/// [start, end) of kernel virtual addresses.
struct Range {
    std::uint64_t start = 0;
    std::uint64_t end = 0;
    [[nodiscard]] bool contains(std::uint64_t va) const noexcept { return va >= start && va < end; }
    [[nodiscard]] bool empty() const noexcept { return end <= start; }
};

/// One sweep's view of the guest: reads through its page tables (tables cached, data
/// counted), symbolizes, and collects findings.
class Reader {
  public:
    explicit Reader(const IntegrityContext& ctx);

    /// All-or-nothing kernel-virtual read of any length; page by page.
    Status read(std::uint64_t va, std::span<std::byte> out);
    Result<std::uint64_t> u64(std::uint64_t va);

    [[nodiscard]] const IntegrityContext& ctx() const noexcept { return *ctx_; }
    [[nodiscard]] const KernelSymbols& syms() const noexcept { return *ctx_->symbols; }
    /// Address of a symbol, or 0.
    [[nodiscard]] std::uint64_t sym(std::string_view name) const;
    /// [_stext, _etext) (falls back to _text); empty if unknown.
    [[nodiscard]] const Range& text() const noexcept { return text_; }
    /// [__start_rodata, __end_rodata); empty if unknown.
    [[nodiscard]] const Range& rodata() const noexcept { return rodata_; }
    /// The listed module whose [base, base + size) holds `va`, or nullptr.
    [[nodiscard]] const KernelModule* module_at(std::uint64_t va) const;
    /// "name+0x10" for kernel symbols, "[module]+0x10" inside a listed module, else "".
    [[nodiscard]] std::string describe(std::uint64_t va) const;
    /// The kernel symbol `va` falls in ("" if none): name only.
    [[nodiscard]] std::string symbol_name(std::uint64_t va) const;

    /// Forget the cached guest pages, so that what is read next is the guest as it is now: a
    /// read that confirms a finding must not be served the pages the first read saw.
    void refresh() { tables_.clear(); }

    void add(IntegrityFinding f) { findings_.push_back(std::move(f)); }
    /// A check that could not run.
    void failed(std::string check, std::string why);
    std::vector<IntegrityFinding>& findings() { return findings_; }
    [[nodiscard]] IntegrityStats stats() const;

  private:
    const IntegrityContext* ctx_;
    CountingMemory counter_;
    PageCache tables_;
    std::uint64_t kcr3_;
    Range text_;
    Range rodata_;
    std::vector<IntegrityFinding> findings_;
};

std::string hex(std::uint64_t v);
/// Where `va` points, for a message: "kernel text sym+0x0", "module code [m]+0x10", "0x...".
std::string where(const Reader& r, std::uint64_t va);

// The checks, one per file.
void check_syscall_tables(Reader& r, const IntegrityBaseline* base);
void check_idt(Reader& r, const IntegrityBaseline* base);
void check_msrs(Reader& r);
void check_text(Reader& r, const IntegrityBaseline& base);
void check_kernel_pointers(Reader& r, const IntegrityBaseline* base);
void check_hidden_modules(Reader& r);
void check_hidden_tasks(Reader& r);

/// Baseline parts.
std::vector<std::uint64_t> read_syscall_table(Reader& r, std::string_view table);
std::vector<std::uint64_t> read_idt(Reader& r);
std::vector<FnPointerValue> read_kernel_pointers(Reader& r);
RangeHashes hash_range(Reader& r, const Range& range, const std::vector<Range>& masks);
/// Byte ranges the kernel rewrites by itself at run time (zeroed before hashing).
std::vector<Range> self_patched_sites(Reader& r);

}  // namespace vmi::integrity
