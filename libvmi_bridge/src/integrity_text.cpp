// Kernel text and rodata hashes: 64-byte chunk hashes per 4 KiB page (the page hash is the
// hash of its chunk hashes), so a changed page is narrowed to the chunks, and the chunks to
// the symbols, that changed without keeping a copy of the kernel.
#include <algorithm>
#include <array>
#include <cstring>

#include "integrity_internal.hpp"
#include "vmi/kernel_discovery.hpp"

namespace vmi::integrity {

namespace {

std::uint32_t fnv1a32(std::span<const std::byte> b) {
    std::uint32_t h = 2166136261U;
    for (std::byte x : b) {
        h ^= static_cast<std::uint8_t>(x);
        h *= 16777619U;
    }
    return h;
}

// Sorted, disjoint.
std::vector<Range> merge(std::vector<Range> v) {
    std::sort(v.begin(), v.end(), [](const Range& a, const Range& b) { return a.start < b.start; });
    std::vector<Range> out;
    for (const Range& x : v) {
        if (x.empty()) continue;
        if (!out.empty() && x.start <= out.back().end) {
            out.back().end = std::max(out.back().end, x.end);
        } else {
            out.push_back(x);
        }
    }
    return out;
}

void apply_masks(std::uint64_t page_va, std::span<std::byte> page, const std::vector<Range>& m) {
    auto it = std::upper_bound(m.begin(), m.end(), page_va,
                               [](std::uint64_t v, const Range& x) { return v < x.end; });
    for (; it != m.end() && it->start < page_va + page.size(); ++it) {
        const std::uint64_t lo = std::max(it->start, page_va);
        const std::uint64_t hi = std::min(it->end, page_va + page.size());
        std::memset(page.data() + (lo - page_va), 0, hi - lo);
    }
}

// Relative-address tables the kernel patches through: each entry's first s32 is the site,
// relative to the entry itself.
void relative_sites(Reader& r, const char* start_sym, const char* stop_sym, std::size_t entry,
                    std::uint64_t site_len, std::vector<Range>& out) {
    const std::uint64_t start = r.sym(start_sym);
    const std::uint64_t stop = r.sym(stop_sym);
    if (start == 0 || stop <= start || (stop - start) % entry != 0) return;
    const std::uint64_t n = std::min<std::uint64_t>((stop - start) / entry, kMaxMaskedSites);
    std::vector<std::byte> buf(kPageSize);
    for (std::uint64_t i = 0; i < n;) {
        const std::uint64_t va = start + i * entry;
        const std::uint64_t batch = std::min<std::uint64_t>(n - i, kPageSize / entry);
        const std::span<std::byte> b(buf.data(), static_cast<std::size_t>(batch * entry));
        if (r.read(va, b)) {
            for (std::uint64_t k = 0; k < batch; ++k) {
                std::int32_t rel = 0;
                std::memcpy(&rel, b.data() + k * entry, 4);
                const std::uint64_t site =
                    va + k * entry + static_cast<std::uint64_t>(std::int64_t{rel});
                out.push_back({site, site + site_len});
            }
        }
        i += batch;
    }
}

}  // namespace

std::vector<Range> self_patched_sites(Reader& r) {
    std::vector<Range> out;
    // struct jump_entry {s32 code; s32 target; long key;}: a 2- or 5-byte jmp/nop at code.
    relative_sites(r, "__start___jump_table", "__stop___jump_table", 16, 5, out);
    // struct static_call_site {s32 addr; s32 key;}: a 5-byte call at addr.
    relative_sites(r, "__start_static_call_sites", "__stop_static_call_sites", 8, 5, out);
    // Whole regions rewritten at run time: static-call trampolines, ftrace's callers (their
    // call sites change with the tracer), BPF dispatchers.
    const std::pair<const char*, const char*> regions[] = {
        {"__static_call_text_start", "__static_call_text_end"},
        {"ftrace_caller", "ftrace_caller_end"},
        {"ftrace_regs_caller", "ftrace_regs_caller_end"},
    };
    for (const auto& [a, b] : regions) {
        const std::uint64_t lo = r.sym(a), hi = r.sym(b);
        if (lo != 0 && hi > lo && hi - lo < (1U << 20)) out.push_back({lo, hi});
    }
    for (const char* d : {"bpf_dispatcher_xdp_func"}) {
        if (const std::uint64_t a = r.sym(d); a != 0) {
            auto loc = r.syms().symbolize(a);
            if (loc && loc->size != 0 && loc->size < (1U << 16)) out.push_back({a, a + loc->size});
        }
    }
    return merge(std::move(out));
}

RangeHashes hash_range(Reader& r, const Range& range, const std::vector<Range>& masks) {
    RangeHashes h;
    h.start = range.start & ~kPageMask;
    const std::uint64_t len = std::min(range.end - h.start, kMaxHashedRange);
    h.end = h.start + ((len + kPageMask) & ~kPageMask);
    const std::size_t pages = static_cast<std::size_t>((h.end - h.start) / kPageSize);
    h.pages.assign(pages, 0);
    h.chunks.assign(pages * kChunksPerPage, 0);
    std::array<std::byte, kPageSize> buf{};
    for (std::size_t p = 0; p < pages; ++p) {
        const std::uint64_t va = h.start + p * kPageSize;
        if (!r.read(va, buf)) continue;  // 0: not comparable
        apply_masks(va, buf, masks);
        std::uint32_t* c = h.chunks.data() + p * kChunksPerPage;
        for (std::size_t k = 0; k < kChunksPerPage; ++k) {
            c[k] = fnv1a32(std::span(buf).subspan(k * kChunkSize, kChunkSize));
        }
        h.pages[p] = fnv1a64(std::as_bytes(std::span(c, kChunksPerPage))) | 1;
    }
    return h;
}

namespace {

// Symbols overlapping [lo, hi), at most `max`, "a, b, c".
std::string symbols_in(Reader& r, std::uint64_t lo, std::uint64_t hi, std::size_t max) {
    std::string out;
    std::size_t n = 0;
    std::uint64_t va = lo;
    while (va < hi && n < max) {
        auto loc = r.syms().symbolize(va);
        if (!loc) break;
        out += (n++ ? ", " : "") + std::string(loc->symbol.name);
        if (loc->size == 0) break;
        va = loc->symbol.address + loc->size;
    }
    if (va < hi && n == max) out += ", ...";
    return out;
}

// True if [lo, hi) lies in syscall tables only: check_syscall_tables reports each changed
// entry with its handler, so the same bytes are not a second, vaguer rodata finding.
bool only_syscall_tables(Reader& r, std::uint64_t lo, std::uint64_t hi) {
    std::uint64_t va = lo;
    while (va < hi) {
        auto loc = r.syms().symbolize(va);
        if (!loc || loc->size == 0) return false;
        const std::string_view n = loc->symbol.name;
        if (n != "sys_call_table" && n != "ia32_sys_call_table" && n != "x32_sys_call_table") {
            return false;
        }
        va = loc->symbol.address + loc->size;
    }
    return true;
}

void diff_range(Reader& r, const char* what, const RangeHashes& base, const RangeHashes& now,
                std::size_t& unreadable) {
    if (base.start != now.start || base.pages.size() != now.pages.size()) {
        r.failed(what, "range moved since the baseline");
        return;
    }
    for (std::size_t p = 0; p < base.pages.size(); ++p) {
        if (base.pages[p] == 0) continue;
        if (now.pages[p] == 0) {
            ++unreadable;
            continue;
        }
        if (base.pages[p] == now.pages[p]) continue;
        // Runs of changed chunks; each run is one finding.
        const std::uint32_t* b = base.chunks.data() + p * kChunksPerPage;
        const std::uint32_t* c = now.chunks.data() + p * kChunksPerPage;
        const std::uint64_t page_va = base.start + p * kPageSize;
        for (std::size_t k = 0; k < kChunksPerPage;) {
            if (b[k] == c[k]) {
                ++k;
                continue;
            }
            std::size_t e = k;
            while (e < kChunksPerPage && b[e] != c[e]) ++e;
            const std::uint64_t lo = page_va + k * kChunkSize, hi = page_va + e * kChunkSize;
            if (only_syscall_tables(r, lo, hi)) {
                k = e;
                continue;
            }
            IntegrityFinding f;
            f.kind = FindingKind::kTextModified;
            f.severity = Severity::kCritical;
            f.check = what;
            f.actual = lo;
            f.name = r.symbol_name(lo);
            f.actual_symbol = r.describe(lo);
            f.message = std::string("kernel ") + what + " changed in " + hex(lo) + ".." + hex(hi) +
                        " (" + symbols_in(r, lo, hi, 4) + ")";
            r.add(std::move(f));
            k = e;
        }
    }
}

}  // namespace

void check_text(Reader& r, const IntegrityBaseline& base) {
    if (base.text.pages.empty()) return r.failed("text", "baseline has no text hashes");
    const auto masks = self_patched_sites(r);
    std::size_t unreadable = 0;
    diff_range(r, "text", base.text, hash_range(r, {base.text.start, base.text.end}, masks),
               unreadable);
    if (!base.rodata.pages.empty()) {
        diff_range(r, "rodata", base.rodata,
                   hash_range(r, {base.rodata.start, base.rodata.end}, masks), unreadable);
    }
    if (unreadable != 0) {
        r.failed("text", std::to_string(unreadable) + " pages readable at baseline are not now");
    }
}

}  // namespace vmi::integrity
