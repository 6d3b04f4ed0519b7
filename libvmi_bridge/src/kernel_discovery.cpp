#include "vmi/kernel_discovery.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmi/kaslr.hpp"
#include "vmi/linux_model.hpp"
#include "vmi/page_walker.hpp"

namespace vmi {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kPresent = 1;
constexpr std::uint64_t kPageSizeBit = 1ULL << 7;
constexpr std::size_t kChunk = 2U << 20;  // bytes searched per read
constexpr std::size_t kTail = 31;         // overlap between chunks (> longest needle)
constexpr std::uint32_t kBtfHdrLen = 24;
// magic 0xEB9F (LE), version 1, flags 0, hdr_len 24.
constexpr std::array<unsigned char, 8> kBtfNeedle = {0x9f, 0xeb, 0x01, 0x00,
                                                     0x18, 0x00, 0x00, 0x00};
constexpr std::string_view kSwapper0{"swapper/0\0", 10};
constexpr std::size_t kMaxCacheEntries = 16;

std::string hex(std::uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

bool plausible_kernel_ptr(std::uint64_t va, bool la57) {
    return is_canonical(va, la57) && (va >> 63) != 0 && (va & 7) == 0;
}

// One piece of the virtual range: either mapped (pa valid, `len` bytes physically contiguous
// within one page) or a hole of `len` bytes (to the end of the missing table entry's reach).
struct Extent {
    bool mapped = false;
    std::uint64_t pa = 0;
    std::uint64_t len = 0;
};

Extent extent_at(GuestMemory& mem, std::uint64_t kcr3, std::uint64_t va, bool la57) {
    std::uint64_t table = pgd_from_cr3(kcr3);
    for (int level = la57 ? 5 : 4; level >= 1; --level) {
        const unsigned shift = 12U + 9U * static_cast<unsigned>(level - 1);
        const std::uint64_t reach = 1ULL << shift;
        const std::uint64_t rest = reach - (va & (reach - 1));
        auto e = mem.read_u64(table + ((va >> shift) & 0x1FF) * 8);
        if (!e || !(*e & kPresent)) return Extent{false, 0, rest};
        if (level == 1 || (level <= 3 && (*e & kPageSizeBit))) {
            auto t = translate_ex(mem, kcr3, va, la57);  // applies the reserved-bit checks
            if (!t) return Extent{false, 0, rest};
            return Extent{true, t->pa, rest};
        }
        if (*e & kPageSizeBit) return Extent{false, 0, rest};  // PS at PML4/PML5: invalid
        table = *e & kPteAddrMask;
    }
    return Extent{false, 0, kPageSize};
}

// Calls on_match(va, needle_index) for each needle occurrence in the mapped parts of
// [start, start+len). Reads physically contiguous runs of up to kChunk bytes at once.
// on_match returns false to stop. Returns the number of bytes searched.
template <class F>
std::uint64_t scan_range(GuestMemory& mem, std::uint64_t kcr3, std::uint64_t start,
                         std::uint64_t len, bool la57,
                         std::span<const std::span<const std::byte>> needles, F&& on_match) {
    std::vector<std::byte> buf(kTail + kChunk);
    std::size_t tail = 0;  // bytes of the previous chunk kept at buf[0..tail)
    std::uint64_t searched = 0;
    std::uint64_t pagewise_until = 0;  // after a failed run read: one page per read up to here
    std::uint64_t va = start;
    const std::uint64_t end = range_fits(start, len) ? start + len : UINT64_MAX;
    while (va < end) {
        Extent ex = extent_at(mem, kcr3, va, la57);
        if (!ex.mapped) {
            tail = 0;
            if (ex.len == 0 || va > UINT64_MAX - ex.len) break;
            va += ex.len;
            continue;
        }
        std::uint64_t n = std::min<std::uint64_t>({ex.len, end - va, kChunk});
        if (va < pagewise_until) {
            n = std::min<std::uint64_t>(n, kPageSize - (va & kPageMask));
        } else {
            // Grow the run while the next page is physically contiguous.
            while (n < kChunk && va + n < end) {
                Extent nx = extent_at(mem, kcr3, va + n, la57);
                if (!nx.mapped || nx.pa != ex.pa + n) break;
                n = std::min<std::uint64_t>({n + nx.len, end - va, kChunk});
            }
        }
        auto dst = std::span(buf).subspan(tail, static_cast<std::size_t>(n));
        auto st = mem.read_phys(ex.pa, dst);
        if (!st && n > kPageSize - (va & kPageMask)) {
            // Part of the run is missing: read it page by page.
            pagewise_until = va + n;
            n = kPageSize - (va & kPageMask);
            dst = dst.first(static_cast<std::size_t>(n));
            st = mem.read_phys(ex.pa, dst);
        }
        if (!st) {
            // RAM behind the mapping is missing (e.g. not in the dump): treat as a hole.
            tail = 0;
            va += n;
            continue;
        }
        searched += n;
        const std::size_t have = tail + static_cast<std::size_t>(n);
        const std::uint64_t base = va - tail;
        const auto* hay = reinterpret_cast<const unsigned char*>(buf.data());
        for (std::size_t k = 0; k < needles.size(); ++k) {
            const auto nd = needles[k];
            std::size_t pos = 0;
            // memchr for the (non-zero) first byte, then compare: glibc's memmem degrades
            // to a memcmp per position on zero-filled memory because of the needles' zeros.
            const auto first = static_cast<unsigned char>(nd[0]);
            while (pos + nd.size() <= have) {
                const void* hit = std::memchr(hay + pos, first, have - pos - (nd.size() - 1));
                if (hit == nullptr) break;
                const auto at =
                    static_cast<std::size_t>(static_cast<const unsigned char*>(hit) - hay);
                pos = at + 1;
                if (std::memcmp(hay + at, nd.data(), nd.size()) != 0) continue;
                // Matches wholly inside the kept tail were reported with the previous chunk.
                if (at + nd.size() > tail && !on_match(base + at, k)) return searched;
            }
        }
        const std::size_t keep = std::min(kTail, have);
        std::memmove(buf.data(), buf.data() + have - keep, keep);
        tail = keep;
        va += n;
    }
    return searched;
}

struct BtfHeader {
    std::uint16_t magic;
    std::uint8_t version;
    std::uint8_t flags;
    std::uint32_t hdr_len;
    std::uint32_t type_off;
    std::uint32_t type_len;
    std::uint32_t str_off;
    std::uint32_t str_len;
};
static_assert(sizeof(BtfHeader) == 24);

// Plausibility of a BTF header read from the guest; returns the blob size or 0.
std::uint64_t btf_blob_size(const BtfHeader& h) {
    if (h.magic != 0xEB9F || h.version != 1 || h.flags != 0 || h.hdr_len != kBtfHdrLen) return 0;
    if (h.type_off != 0 || h.type_len == 0 || h.str_off != h.type_len || h.str_len == 0) return 0;
    const std::uint64_t total = std::uint64_t{h.hdr_len} + h.str_off + h.str_len;
    return total < kMaxGuestBtfSize ? total : 0;
}

// Copies a guest range in read_virt-sized pieces.
Status copy_virt(GuestMemory& mem, std::uint64_t kcr3, std::uint64_t va, std::span<std::byte> out,
                 bool la57) {
    if (!range_fits(va, out.size())) return Fault::kNonCanonical;
    for (std::size_t done = 0; done < out.size();) {
        const std::size_t n = std::min(out.size() - done, kMaxVirtRead);
        if (auto st = read_virt(mem, kcr3, va + done, out.subspan(done, n), la57); !st) return st;
        done += n;
    }
    return {};
}

struct BtfFound {
    std::uint64_t va = 0;
    std::uint64_t size = 0;
    std::uint64_t hash = 0;
    LinuxOffsets offsets;
};

// Reads and checks the BTF candidate at `va`. Cheap checks (header, first and last string
// byte NUL) come before the copy.
Result<BtfFound> try_btf_at(GuestMemory& mem, std::uint64_t kcr3, std::uint64_t va, bool la57,
                            std::vector<std::byte>& blob) {
    BtfHeader h{};
    if (auto st = read_virt(mem, kcr3, va, std::as_writable_bytes(std::span(&h, 1)), la57); !st) {
        return std::move(st).error();
    }
    const std::uint64_t size = btf_blob_size(h);
    if (size == 0 || !range_fits(va, size)) return Error{Fault::kInvalidFormat, "BTF header"};
    const std::uint64_t strs = va + h.hdr_len + h.str_off;
    std::array<std::byte, 1> first{}, last{};
    if (!read_virt(mem, kcr3, strs, first, la57) ||
        !read_virt(mem, kcr3, strs + h.str_len - 1, last, la57) || first[0] != std::byte{0} ||
        last[0] != std::byte{0}) {
        return Error{Fault::kInvalidFormat, "BTF string section"};
    }
    blob.resize(static_cast<std::size_t>(size));
    if (auto st = copy_virt(mem, kcr3, va, blob, la57); !st) return std::move(st).error();
    auto prof = BtfProfile::from_blob(blob);
    if (!prof) return std::move(prof).error();
    auto off = prof->linux_offsets();
    if (!off) return std::move(off).error();
    return BtfFound{va, size, fnv1a64(blob), *off};
}

// --- in-process cache -------------------------------------------------------------------
struct CacheEntry {
    std::uint64_t btf_off = 0;  // BTF va - text_va (in-memory BTF only)
    std::uint64_t btf_size = 0;
    std::uint64_t init_task_off = 0;  // init_task va - text_va
    LinuxOffsets offsets;
};
// Key: source and hash. The source keeps a BTF file that is a copy of a guest's BTF (same
// hash) from being taken for a build whose BTF is in memory, and the other way round.
using CacheKey = std::pair<ProfileSource, std::uint64_t>;
std::mutex g_cache_mu;
std::map<CacheKey, CacheEntry> g_cache;

std::vector<std::pair<CacheKey, CacheEntry>> cache_snapshot() {
    std::lock_guard lock(g_cache_mu);
    return {g_cache.begin(), g_cache.end()};
}

void cache_put(const CacheKey& key, const CacheEntry& e) {
    std::lock_guard lock(g_cache_mu);
    if (g_cache.size() >= kMaxCacheEntries && !g_cache.contains(key)) g_cache.clear();
    g_cache[key] = e;
}

// A cached build matches if the BTF at the cached offset hashes to the key and the cached
// init_task still validates.
bool try_cached(GuestMemory& mem, std::uint64_t any_cr3, const DiscoveryOptions& opts,
                std::uint64_t text_va, GuestKernelProfile& p) {
    const std::uint64_t kcr3 = kernel_pgd_from_cr3(any_cr3);
    std::vector<std::byte> blob;
    for (const auto& [key, e] : cache_snapshot()) {
        if (key.first != ProfileSource::kGuestBtf) continue;
        const std::uint64_t hash = key.second;
        const auto t0 = Clock::now();
        BtfHeader h{};
        if (!read_virt(mem, kcr3, text_va + e.btf_off, std::as_writable_bytes(std::span(&h, 1)),
                       opts.la57) ||
            btf_blob_size(h) != e.btf_size) {
            continue;
        }
        blob.resize(static_cast<std::size_t>(e.btf_size));
        if (!copy_virt(mem, kcr3, text_va + e.btf_off, blob, opts.la57) || fnv1a64(blob) != hash) {
            continue;
        }
        const auto t1 = Clock::now();
        if (!validate_init_task(mem, any_cr3, e.offsets, text_va + e.init_task_off, opts.la57)) {
            continue;
        }
        p.btf_va = text_va + e.btf_off;
        p.btf_size = e.btf_size;
        p.btf_hash = hash;
        p.offsets = e.offsets;
        p.init_task_va = text_va + e.init_task_off;
        p.from_cache = true;
        p.btf_time = t1 - t0;
        p.init_task_time = Clock::now() - t1;
        return true;
    }
    return false;
}

// The one "swapper/0" string (comm) that belongs to a task validating as init_task.
Result<std::uint64_t> pick_init_task(GuestMemory& mem, std::uint64_t any_cr3,
                                     const LinuxOffsets& off,
                                     const std::vector<std::uint64_t>& swappers, bool overflow,
                                     bool la57) {
    std::vector<std::uint64_t> valid;
    std::string last_task_error = "no \"swapper/0\" string in the kernel image";
    for (std::uint64_t s : swappers) {
        if (s < off.task_comm) continue;
        const std::uint64_t task = s - off.task_comm;
        if ((task & 7) != 0) continue;
        if (auto st = validate_init_task(mem, any_cr3, off, task, la57)) {
            valid.push_back(task);
        } else {
            last_task_error = st.error().message();
        }
    }
    if (valid.empty()) {
        return Error{Fault::kNotFound, "init_task not found among " +
                                           std::to_string(swappers.size()) +
                                           " \"swapper/0\" candidate(s)" +
                                           (overflow ? " (capped)" : "") + ": " + last_task_error};
    }
    if (valid.size() > 1) {
        return Error{Fault::kInvalidFormat, std::to_string(valid.size()) +
                                                " init_task candidates validate (" + hex(valid[0]) +
                                                ", " + hex(valid[1]) + ")"};
    }
    return valid[0];
}

// Discovery with a profile file: the offsets are given, only init_task is looked for.
Result<GuestKernelProfile> discover_with_file(GuestMemory& mem, std::uint64_t any_cr3,
                                              const DiscoveryOptions& opts, GuestKernelProfile p,
                                              Clock::time_point t_start) {
    const KernelProfileFile& f = *opts.profile;
    p.source = f.source;
    p.btf_hash = f.hash;
    p.offsets = f.offsets;
    if (f.link_text != 0) p.kaslr_slide = p.text_va - f.link_text;
    const CacheKey key{f.source, f.hash};
    const auto t0 = Clock::now();
    if (opts.use_cache) {
        for (const auto& [k, e] : cache_snapshot()) {
            if (k != key || !validate_init_task(mem, any_cr3, f.offsets,
                                                p.text_va + e.init_task_off, opts.la57)) {
                continue;
            }
            p.init_task_va = p.text_va + e.init_task_off;
            p.from_cache = true;
            p.init_task_time = Clock::now() - t0;
            p.total_time = Clock::now() - t_start;
            return p;
        }
    }
    std::string symbol_error;
    if (f.link_text != 0 && f.link_init_task != 0) {
        const std::uint64_t task = f.link_init_task + *p.kaslr_slide;
        if (auto st = validate_init_task(mem, any_cr3, f.offsets, task, opts.la57)) {
            p.init_task_va = task;
        } else {
            symbol_error = "init_task symbol + slide " + hex(*p.kaslr_slide) + ": " +
                           st.error().message() + "; ";
        }
    }
    if (p.init_task_va == 0) {
        const auto* swp_needle = reinterpret_cast<const std::byte*>(kSwapper0.data());
        const std::array<std::span<const std::byte>, 1> needles = {
            std::span(swp_needle, kSwapper0.size())};
        std::vector<std::uint64_t> swappers;
        bool overflow = false;
        p.bytes_scanned = scan_range(mem, kernel_pgd_from_cr3(any_cr3), p.text_va, opts.scan_len,
                                     opts.la57, needles, [&](std::uint64_t va, std::size_t) {
                                         if (swappers.size() < kMaxInitTaskCandidates) {
                                             swappers.push_back(va);
                                         } else {
                                             overflow = true;
                                         }
                                         return true;
                                     });
        auto task = pick_init_task(mem, any_cr3, f.offsets, swappers, overflow, opts.la57);
        if (!task) return Error{task.fault(), symbol_error + task.error().message()};
        p.init_task_va = *task;
    }
    p.init_task_time = Clock::now() - t0;
    if (opts.use_cache) cache_put(key, CacheEntry{0, 0, p.init_task_va - p.text_va, p.offsets});
    p.total_time = Clock::now() - t_start;
    return p;
}

}  // namespace

std::uint64_t fnv1a64(std::span<const std::byte> bytes) noexcept {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (std::byte b : bytes) {
        h ^= static_cast<std::uint8_t>(b);
        h *= 0x100000001b3ULL;
    }
    return h;
}

void clear_kernel_profile_cache() {
    std::lock_guard lock(g_cache_mu);
    g_cache.clear();
}

std::size_t kernel_profile_cache_size() {
    std::lock_guard lock(g_cache_mu);
    return g_cache.size();
}

Status validate_init_task(GuestMemory& mem, std::uint64_t any_cr3, const LinuxOffsets& off,
                          std::uint64_t task_va, bool la57) {
    const std::uint64_t kcr3 = kernel_pgd_from_cr3(any_cr3);
    if (!plausible_kernel_ptr(task_va, la57) || !range_fits(task_va, off.task_struct_size)) {
        return Error{Fault::kBadPointer, "candidate " + hex(task_va)};
    }
    auto pid = read_virt_u32(mem, kcr3, task_va + off.task_pid, la57);
    auto tgid = read_virt_u32(mem, kcr3, task_va + off.task_tgid, la57);
    if (!pid || !tgid) return Error{Fault::kUnmapped, "candidate " + hex(task_va) + " unreadable"};
    if (*pid != 0 || *tgid != 0) {
        return Error{Fault::kNotFound, "candidate " + hex(task_va) + " has pid " +
                                           std::to_string(*pid) + "/" + std::to_string(*tgid)};
    }
    const std::uint64_t head = task_va + off.task_tasks;
    auto next = read_virt_u64(mem, kcr3, head, la57);
    auto prev = read_virt_u64(mem, kcr3, head + 8, la57);
    if (!next || !prev || !plausible_kernel_ptr(*next, la57) ||
        !plausible_kernel_ptr(*prev, la57)) {
        return Error{Fault::kBadPointer, "candidate " + hex(task_va) + ": bad tasks list head"};
    }
    auto next_prev = read_virt_u64(mem, kcr3, *next + 8, la57);
    auto prev_next = read_virt_u64(mem, kcr3, *prev, la57);
    if (!next_prev || !prev_next || *next_prev != head || *prev_next != head) {
        return Error{Fault::kBadPointer,
                     "candidate " + hex(task_va) + ": tasks list not linked back"};
    }
    LinuxGuest guest(mem, off, task_va, la57);
    auto procs = guest.list_processes(any_cr3);
    if (!procs) {
        return Error{procs.fault(), "candidate " + hex(task_va) + ": " + procs.error().message()};
    }
    return {};
}

Result<GuestKernelProfile> discover_kernel(GuestMemory& mem, std::uint64_t any_cr3,
                                           const DiscoveryOptions& opts) {
    const auto t_start = Clock::now();
    const std::uint64_t kcr3 = kernel_pgd_from_cr3(any_cr3);
    GuestKernelProfile p;
    auto text = find_kernel_text_va(mem, any_cr3, opts.la57);
    if (!text) return Error{text.fault(), "finding _text: " + text.error().message()};
    p.text_va = *text;
    if (opts.profile != nullptr) return discover_with_file(mem, any_cr3, opts, p, t_start);

    if (opts.use_cache && try_cached(mem, any_cr3, opts, p.text_va, p)) {
        p.total_time = Clock::now() - t_start;
        return p;
    }

    // One pass over the image: BTF headers are checked as they are met (the BTF precedes
    // .data in the image), "swapper/0" strings are collected for after the BTF is known.
    const auto* btf_needle = reinterpret_cast<const std::byte*>(kBtfNeedle.data());
    const auto* swp_needle = reinterpret_cast<const std::byte*>(kSwapper0.data());
    const std::array<std::span<const std::byte>, 2> needles = {
        std::span(btf_needle, kBtfNeedle.size()), std::span(swp_needle, kSwapper0.size())};

    std::optional<BtfFound> btf;
    std::vector<std::uint64_t> swappers;
    std::size_t btf_tries = 0;
    bool swappers_overflow = false;
    std::vector<std::byte> blob;
    std::chrono::nanoseconds btf_check_time{0};
    std::string last_btf_error = "no BTF header in the kernel image";

    p.bytes_scanned = scan_range(mem, kcr3, p.text_va, opts.scan_len, opts.la57, needles,
                                 [&](std::uint64_t va, std::size_t which) {
                                     if (which == 0) {
                                         if (btf || btf_tries >= kMaxBtfCandidates) return true;
                                         ++btf_tries;
                                         const auto t0 = Clock::now();
                                         auto r = try_btf_at(mem, kcr3, va, opts.la57, blob);
                                         btf_check_time += Clock::now() - t0;
                                         if (r) {
                                             btf = *r;
                                         } else {
                                             last_btf_error = "BTF candidate at " + hex(va) + ": " +
                                                              r.error().message();
                                         }
                                     } else {
                                         if (swappers.size() < kMaxInitTaskCandidates) {
                                             swappers.push_back(va);
                                         } else {
                                             swappers_overflow = true;
                                         }
                                     }
                                     return true;
                                 });
    const auto t_scanned = Clock::now();
    p.btf_time = t_scanned - t_start;
    if (!btf) {
        return Error{Fault::kNotFound, "no usable kernel BTF in [" + hex(p.text_va) + ", +" +
                                           hex(opts.scan_len) + "): " + last_btf_error + " (" +
                                           std::to_string(btf_tries) + " candidate(s))"};
    }
    p.btf_va = btf->va;
    p.btf_size = btf->size;
    p.btf_hash = btf->hash;
    p.offsets = btf->offsets;
    blob.clear();
    blob.shrink_to_fit();

    auto task = pick_init_task(mem, any_cr3, p.offsets, swappers, swappers_overflow, opts.la57);
    p.init_task_time = Clock::now() - t_scanned;
    if (!task) return std::move(task).error();
    p.init_task_va = *task;
    if (opts.use_cache) {
        cache_put(
            {ProfileSource::kGuestBtf, p.btf_hash},
            CacheEntry{p.btf_va - p.text_va, p.btf_size, p.init_task_va - p.text_va, p.offsets});
    }
    p.total_time = Clock::now() - t_start;
    return p;
}

}  // namespace vmi
