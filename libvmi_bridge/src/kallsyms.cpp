#include "vmi/kallsyms.hpp"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iterator>

#include "vmi/kernel_discovery.hpp"
#include "vmi/page_walker.hpp"

namespace vmi {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kChunk = 2U << 20;  // bytes read per step of the token index scan
constexpr std::size_t kIndexBytes = 256 * 2;
constexpr std::size_t kMaxToken = kMaxSymbolName;  // a token never exceeds a whole name
constexpr std::uint64_t kMaxOffsetsBytes = 4ULL * kMaxKallsyms + 8;
constexpr std::uint64_t kSlideAlign = 2ULL << 20;  // CONFIG_PHYSICAL_ALIGN on x86-64

std::string hex(std::uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

template <class T>
T load(std::span<const std::byte> b, std::size_t off) {
    T v{};
    std::memcpy(&v, b.data() + off, sizeof(T));
    return v;
}

constexpr std::uint64_t align8(std::uint64_t v) { return (v + 7) & ~std::uint64_t{7}; }

bool printable(unsigned char c) { return c > 0x20 && c < 0x7f; }
bool type_letter(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

// A kernel-half address of either paging mode.
bool kernel_half(std::uint64_t va) { return (va >> 63) != 0 && is_canonical(va, true); }

// The longest readable suffix of [end - max_len, end) (whole pages below the first unreadable
// one are dropped). Returns the suffix's start address; `buf` holds its bytes.
std::uint64_t read_suffix(KernelVirtualMemory& mem, std::uint64_t end, std::uint64_t max_len,
                          std::vector<std::byte>& buf) {
    const std::uint64_t lo = end > max_len ? end - max_len : 0;
    buf.resize(static_cast<std::size_t>(end - lo));
    if (mem.read(lo, buf)) return lo;
    std::uint64_t start = end;
    while (start > lo) {
        const std::uint64_t p = std::max(lo, (start - 1) & ~kPageMask);
        std::array<std::byte, 1> probe{};
        if (mem.read_prefix(p, probe) != 1) break;
        start = p;
    }
    buf.resize(static_cast<std::size_t>(end - start));
    if (start < end && !mem.read(start, buf)) buf.clear();  // changed under us: give up
    return buf.empty() ? end : start;
}

using Tokens = std::array<std::string, 256>;

// 256 u16, starting at 0, strictly increasing, no step longer than a token can be.
bool looks_like_token_index(std::span<const std::byte> b, std::array<std::uint16_t, 256>& idx) {
    std::memcpy(idx.data(), b.data(), kIndexBytes);
    if (idx[0] != 0) return false;
    for (std::size_t i = 1; i < 256; ++i) {
        if (idx[i] <= idx[i - 1] || std::size_t{idx[i]} - idx[i - 1] > kMaxToken + 1) return false;
    }
    return true;
}

// The token table ending just before the index at `index_va`: 8-aligned, each token a printable
// NUL-terminated string at its index offset, the last one padded with zeros up to the index.
Result<Tokens> token_table_at(KernelVirtualMemory& mem, std::uint64_t index_va,
                              const std::array<std::uint16_t, 256>& idx, std::uint64_t& table_va) {
    const std::uint64_t last = idx[255];
    if (index_va < last + 2 + 8) return Error{Fault::kInvalidFormat, "token index too low"};
    const std::uint64_t span = last + kMaxToken + 2 + 8;
    std::vector<std::byte> buf;
    const std::uint64_t lo = read_suffix(mem, index_va, span, buf);
    if (buf.size() < last + 2) return Error{Fault::kUnmapped, "token table unreadable"};
    const auto at = [&](std::uint64_t va) { return static_cast<unsigned char>(buf[va - lo]); };
    // Highest candidate first: T + last + 1 < index_va at least (last token >= 1 byte + NUL).
    for (std::uint64_t t = (index_va - last - 2) & ~std::uint64_t{7}; t >= lo; t -= 8) {
        bool ok = true;
        for (std::size_t i = 0; i < 255 && ok; ++i) {
            const std::uint64_t s = t + idx[i], e = t + idx[i + 1] - 1;
            if (at(e) != 0) ok = false;
            for (std::uint64_t v = s; v < e && ok; ++v) ok = printable(at(v));
        }
        if (!ok) {
            if (t < 8) break;
            continue;
        }
        std::uint64_t e = t + last;
        while (e < index_va && at(e) != 0 && printable(at(e)) && e - (t + last) <= kMaxToken) ++e;
        bool tail_ok = e < index_va && at(e) == 0 && align8(e + 1) == index_va;
        for (std::uint64_t v = e + 1; v < index_va && tail_ok; ++v) tail_ok = at(v) == 0;
        if (tail_ok) {
            Tokens tok;
            for (std::size_t i = 0; i < 256; ++i) {
                const std::uint64_t s = t + idx[i];
                const std::uint64_t len = (i < 255 ? t + idx[i + 1] - 1 : e) - s;
                tok[i].assign(reinterpret_cast<const char*>(buf.data() + (s - lo)),
                              static_cast<std::size_t>(len));
            }
            table_va = t;
            return tok;
        }
        if (t < 8) break;
    }
    return Error{Fault::kInvalidFormat, "no token table ends at the token index " + hex(index_va)};
}

// One expanded entry: "<type><name>", at most kMaxSymbolName + 1 bytes.
struct Expanded {
    std::array<char, kMaxSymbolName + 1> text;
    std::size_t len = 0;
};

// Decodes the kallsyms_names entry at data[pos..) into `out` and returns the bytes consumed, or
// 0 if malformed (bad length, past the end, not "<letter><printable>+", longer than
// kMaxSymbolName). Tokens were checked printable when the token table was accepted.
std::size_t decode_entry(std::span<const std::byte> data, std::size_t pos, const Tokens& tok,
                         Expanded& out) {
    if (pos >= data.size()) return 0;
    std::size_t len = static_cast<std::uint8_t>(data[pos]);
    std::size_t hdr = 1;
    if (len & 0x80) {
        if (pos + 1 >= data.size()) return 0;
        const auto hi = static_cast<std::uint8_t>(data[pos + 1]);
        if (hi & 0x80) return 0;  // at most two ULEB128 bytes
        len = (len & 0x7f) | (std::size_t{hi} << 7);
        hdr = 2;
    }
    if (len == 0 || data.size() - pos - hdr < len) return 0;
    out.len = 0;
    for (std::size_t k = 0; k < len; ++k) {
        const std::string& t = tok[static_cast<std::uint8_t>(data[pos + hdr + k])];
        if (t.size() > out.text.size() - out.len) return 0;
        std::memcpy(out.text.data() + out.len, t.data(), t.size());
        out.len += t.size();
    }
    if (out.len < 2 || !type_letter(out.text[0])) return 0;
    return hdr + len;
}

struct NamesFound {
    std::uint64_t num_syms_va = 0, names_va = 0, markers_va = 0;
    std::size_t count = 0;
    std::string pool;  // names without their type letter, concatenated
    std::vector<std::uint32_t> name_off;
    std::vector<std::uint16_t> name_len;
    std::vector<char> types;
};

// Candidate kallsyms_names at `s` (window bytes [win_va, end) in `win`): num_syms is the u32 at
// s - 8 with zero padding after it; the first min(N, 256) entries must decode before the whole
// table is decoded and the markers after it checked. Returns kNotFound for a plain mismatch.
Result<NamesFound> names_at(std::span<const std::byte> win, std::uint64_t win_va, std::uint64_t s,
                            const Tokens& tok, std::size_t max_symbols) {
    const std::size_t base = static_cast<std::size_t>(s - win_va);
    const auto n = load<std::uint32_t>(win, base - 8);
    if (n == 0 || load<std::uint32_t>(win, base - 4) != 0) return Fault::kNotFound;
    const auto data = win.subspan(base);
    const std::uint64_t markers = (std::uint64_t{n} + 255) / 256;
    if (data.size() < 2ULL * n + 4 * markers) return Fault::kNotFound;  // >= 2 bytes per entry
    Expanded e;
    std::size_t pos = 0;
    for (std::uint32_t i = 0; i < std::min<std::uint32_t>(n, 256); ++i) {
        const std::size_t used = decode_entry(data, pos, tok, e);
        if (used == 0) return Fault::kNotFound;
        pos += used;
    }
    if (n > max_symbols) {
        return Error{Fault::kLimitExceeded, "kallsyms_num_syms " + std::to_string(n) + " at " +
                                                hex(s - 8) + " exceeds the limit of " +
                                                std::to_string(max_symbols)};
    }
    NamesFound f;
    f.num_syms_va = s - 8;
    f.names_va = s;
    f.count = n;
    f.name_off.reserve(n);
    f.name_len.reserve(n);
    f.types.reserve(n);
    f.pool.reserve(
        static_cast<std::size_t>(std::min<std::uint64_t>(3ULL * data.size(), kMaxSymbolBytes)));
    std::vector<std::uint32_t> marks;
    marks.reserve(static_cast<std::size_t>(markers));
    pos = 0;
    for (std::uint32_t i = 0; i < n; ++i) {
        if ((i & 0xff) == 0) marks.push_back(static_cast<std::uint32_t>(pos));
        const std::size_t used = decode_entry(data, pos, tok, e);
        if (used == 0) {
            return Error{Fault::kInvalidFormat,
                         "kallsyms_names entry " + std::to_string(i) + " at " + hex(s + pos)};
        }
        if (f.pool.size() + e.len > kMaxSymbolBytes) {
            return Error{Fault::kLimitExceeded, "kallsyms names expand past " +
                                                    std::to_string(kMaxSymbolBytes) + " bytes"};
        }
        f.types.push_back(e.text[0]);  // the type letter is kept apart
        f.name_off.push_back(static_cast<std::uint32_t>(f.pool.size()));
        f.name_len.push_back(static_cast<std::uint16_t>(e.len - 1));
        f.pool.append(e.text.data() + 1, e.len - 1);
        pos += used;
    }
    // Markers: u32 (6.x) or, on older kernels, unsigned long.
    const std::uint64_t mk = align8(s + pos);
    for (std::uint64_t width : {4ULL, 8ULL}) {
        if (mk + width * markers > win_va + win.size()) continue;
        bool ok = true;
        for (std::size_t k = 0; k < marks.size() && ok; ++k) {
            const std::size_t at = static_cast<std::size_t>(mk - win_va + width * k);
            const std::uint64_t v =
                width == 4 ? load<std::uint32_t>(win, at) : load<std::uint64_t>(win, at);
            ok = v == marks[k];
        }
        if (ok) {
            f.markers_va = mk;
            return f;
        }
    }
    return Error{Fault::kInvalidFormat, "kallsyms_markers after the names at " + hex(s) +
                                            " do not match " + std::to_string(n) + " entries"};
}

struct OffsetsFound {
    std::uint64_t offsets_va = 0, base_va = 0, base = 0;
    bool absolute_percpu = false;
    std::vector<std::uint64_t> addr;
    std::vector<bool> relative;
};

// kallsyms_offsets at `off_va` and kallsyms_relative_base at `base_va`: the addresses must be
// sorted and the base a kernel-half address.
Result<OffsetsFound> offsets_at(KernelVirtualMemory& mem, std::uint64_t off_va,
                                std::uint64_t base_va, std::size_t n) {
    if (4ULL * n + 8 > kMaxOffsetsBytes) return Fault::kLimitExceeded;
    std::vector<std::byte> raw(4 * n);
    std::array<std::byte, 8> rb{};
    if (!mem.read(off_va, raw) || !mem.read(base_va, rb)) {
        return Error{Fault::kUnmapped, "offsets at " + hex(off_va)};
    }
    OffsetsFound f;
    f.offsets_va = off_va;
    f.base_va = base_va;
    f.base = load<std::uint64_t>(rb, 0);
    if (!kernel_half(f.base)) {
        return Error{Fault::kInvalidFormat, "relative base " + hex(f.base) + " at " + hex(base_va)};
    }
    for (std::size_t i = 0; i < n && !f.absolute_percpu; ++i) {
        f.absolute_percpu = load<std::int32_t>(raw, 4 * i) < 0;
    }
    f.addr.resize(n);
    f.relative.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        const std::int32_t o = load<std::int32_t>(raw, 4 * i);
        std::uint64_t a = 0;
        bool rel = true;
        if (!f.absolute_percpu) {
            a = f.base + static_cast<std::uint32_t>(o);
        } else if (o >= 0) {
            a = static_cast<std::uint64_t>(o);
            rel = false;
        } else {
            a = f.base - 1 - static_cast<std::uint64_t>(static_cast<std::int64_t>(o));
        }
        if (rel && a < f.base) {  // wrapped past 2^64
            return Error{Fault::kInvalidFormat, "offset " + std::to_string(i) + " overflows"};
        }
        if (i > 0 && a < f.addr[i - 1]) {
            return Error{Fault::kInvalidFormat,
                         "addresses at " + hex(off_va) + " not sorted at " + std::to_string(i)};
        }
        f.addr[i] = a;
        f.relative[i] = rel;
    }
    return f;
}

const char* const kWellKnown[] = {"_stext",  "_etext",         "_end",     "init_task",
                                  "modules", "sys_call_table", "idt_table"};

}  // namespace

// --- memories ------------------------------------------------------------------------------

Status KernelVirtualMemory::read(std::uint64_t va, std::span<std::byte> out) {
    if (!range_fits(va, out.size())) return Fault::kUnmapped;
    if (read_prefix(va, out) != out.size()) return Error{Fault::kUnmapped, "kernel va " + hex(va)};
    return {};
}

PagedKernelMemory::PagedKernelMemory(GuestMemory& mem, std::uint64_t any_cr3, bool la57)
    : mem_(&mem), tables_(mem, 512), kcr3_(kernel_pgd_from_cr3(any_cr3)), la57_(la57) {}

std::size_t PagedKernelMemory::read_prefix(std::uint64_t va, std::span<std::byte> out) {
    if (!range_fits(va, out.size())) out = out.first(static_cast<std::size_t>(UINT64_MAX - va));
    std::size_t done = 0;
    while (done < out.size()) {
        const std::uint64_t addr = va + done;
        auto t = translate_ex(tables_, kcr3_, addr, la57_);
        if (!t) break;
        std::uint64_t n =
            std::min<std::uint64_t>(t->page_size - (addr & (t->page_size - 1)), out.size() - done);
        // Grow the run while the next page is physically contiguous.
        while (done + n < out.size() && n < kChunk) {
            auto nx = translate_ex(tables_, kcr3_, addr + n, la57_);
            if (!nx || nx->pa != t->pa + n) break;
            n = std::min<std::uint64_t>(n + nx->page_size - ((addr + n) & (nx->page_size - 1)),
                                        out.size() - done);
        }
        auto dst = out.subspan(done, static_cast<std::size_t>(n));
        if (mem_->read_phys(t->pa, dst)) {
            done += dst.size();
            continue;
        }
        // Part of the run is missing: keep the readable pages before the hole.
        std::uint64_t got = 0;
        while (got < n) {
            const std::uint64_t m = std::min(kPageSize - ((addr + got) & kPageMask), n - got);
            if (!mem_->read_phys(t->pa + got, dst.subspan(static_cast<std::size_t>(got),
                                                          static_cast<std::size_t>(m)))) {
                break;
            }
            got += m;
        }
        done += static_cast<std::size_t>(got);
        if (got < n) break;
    }
    return done;
}

// The reach of the first missing entry on the walk to `va` (like the discovery scan's extents).
std::uint64_t PagedKernelMemory::hole_size(std::uint64_t va) {
    const std::uint64_t page_rest = kPageSize - (va & kPageMask);
    if (!is_canonical(va, la57_)) return page_rest;
    std::uint64_t table = pgd_from_cr3(kcr3_);
    for (int level = la57_ ? 5 : 4; level >= 1; --level) {
        const unsigned shift = 12U + 9U * static_cast<unsigned>(level - 1);
        const std::uint64_t reach = 1ULL << shift;
        auto e = tables_.read_u64(table + ((va >> shift) & 0x1FF) * 8);
        if (!e || (*e & 1) == 0) return reach - (va & (reach - 1));
        if (level == 1 || (*e & 0x80) != 0) break;  // a leaf: its RAM is what is missing
        table = *e & kPteAddrMask;
    }
    return page_rest;
}

Result<std::unique_ptr<VmlinuxMemory>> VmlinuxMemory::open(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Error{Fault::kIo, path + ": " + std::strerror(errno)};
    std::unique_ptr<VmlinuxMemory> m(new VmlinuxMemory());
    m->fd_ = fd;
    struct stat st {};
    if (::fstat(fd, &st) != 0) return Error{Fault::kIo, path + ": " + std::strerror(errno)};
    const auto file_size = static_cast<std::uint64_t>(st.st_size);
    auto bad = [&](const char* why) { return Error{Fault::kInvalidFormat, path + ": " + why}; };
    auto pread_all = [&](std::uint64_t off, void* dst, std::size_t len) {
        return off <= file_size && file_size - off >= len &&
               ::pread(fd, dst, len, static_cast<off_t>(off)) == static_cast<ssize_t>(len);
    };
    Elf64_Ehdr eh{};
    if (!pread_all(0, &eh, sizeof eh) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
        eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB) {
        return bad("not a little-endian ELF64 file");
    }
    if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shnum == 0 || eh.e_shstrndx >= eh.e_shnum) {
        return bad("bad section header table");
    }
    std::vector<Elf64_Shdr> sh(eh.e_shnum);
    if (!pread_all(eh.e_shoff, sh.data(), sh.size() * sizeof(Elf64_Shdr))) {
        return bad("section headers past the end of the file");
    }
    const Elf64_Shdr& strs = sh[eh.e_shstrndx];
    if (strs.sh_size > (16U << 20)) return bad("section name table too large");
    std::string names(static_cast<std::size_t>(strs.sh_size), '\0');
    if (!pread_all(strs.sh_offset, names.data(), names.size())) return bad("bad section names");
    for (const Elf64_Shdr& s : sh) {
        if (s.sh_type != SHT_PROGBITS || !(s.sh_flags & SHF_ALLOC) || s.sh_size == 0) continue;
        if (!kernel_half(s.sh_addr) || !range_fits(s.sh_addr, s.sh_size)) continue;
        if (s.sh_offset > file_size || file_size - s.sh_offset < s.sh_size) {
            return bad("section past the end of the file");
        }
        std::string name;
        if (s.sh_name < names.size()) name = names.c_str() + s.sh_name;
        m->sections_.push_back({name, s.sh_addr, s.sh_size, s.sh_offset});
    }
    std::sort(m->sections_.begin(), m->sections_.end(),
              [](const Section& a, const Section& b) { return a.addr < b.addr; });
    for (std::size_t i = 1; i < m->sections_.size(); ++i) {
        const Section& p = m->sections_[i - 1];
        if (p.addr + p.size > m->sections_[i].addr) return bad("overlapping sections");
    }
    if (m->sections_.empty()) return bad("no allocated sections in the kernel half");
    return m;
}

VmlinuxMemory::~VmlinuxMemory() {
    if (fd_ >= 0) ::close(fd_);
}

std::optional<std::uint64_t> VmlinuxMemory::section_addr(std::string_view name) const {
    for (const Section& s : sections_) {
        if (s.name == name) return s.addr;
    }
    return std::nullopt;
}

std::uint64_t VmlinuxMemory::hole_size(std::uint64_t va) {
    const std::uint64_t page = va & ~kPageMask;
    auto it = std::upper_bound(sections_.begin(), sections_.end(), page,
                               [](std::uint64_t p, const Section& s) { return p < s.addr; });
    if (it == sections_.end()) return UINT64_MAX - va;  // nothing above
    const std::uint64_t next_page = it->addr & ~kPageMask;
    return std::max(next_page > va ? next_page - va : 0, kPageSize - (va & kPageMask));
}

// A byte is readable if its 4 KiB page overlaps a section; bytes between sections read as zero.
std::size_t VmlinuxMemory::read_prefix(std::uint64_t va, std::span<std::byte> out) {
    if (!range_fits(va, out.size())) out = out.first(static_cast<std::size_t>(UINT64_MAX - va));
    std::size_t done = 0;
    while (done < out.size()) {
        const std::uint64_t addr = va + done;
        const std::uint64_t page = addr & ~kPageMask;
        // The first section ending after `addr`; the page is covered if that section starts
        // in it or the one before ends in it.
        auto it = std::lower_bound(
            sections_.begin(), sections_.end(), addr,
            [](const Section& s, std::uint64_t a) { return s.addr + s.size <= a; });
        const bool covered =
            (it != sections_.end() && it->addr < page + kPageSize) ||
            (it != sections_.begin() && std::prev(it)->addr + std::prev(it)->size > page);
        if (!covered) break;
        std::size_t n = 0;
        const std::size_t room = out.size() - done;
        if (it != sections_.end() && it->addr <= addr) {
            n = static_cast<std::size_t>(std::min<std::uint64_t>(it->addr + it->size - addr, room));
            const auto got = ::pread(fd_, out.data() + done, n,
                                     static_cast<off_t>(it->offset + (addr - it->addr)));
            if (got != static_cast<ssize_t>(n)) break;
        } else {  // between sections, inside a covered page: zeros
            const std::uint64_t limit =
                it != sections_.end() ? std::min(it->addr, page + kPageSize) : page + kPageSize;
            n = static_cast<std::size_t>(std::min<std::uint64_t>(limit - addr, room));
            std::memset(out.data() + done, 0, n);
        }
        if (n == 0) break;
        done += n;
    }
    return done;
}

// --- KernelSymbols ------------------------------------------------------------------------

struct KallsymsBuilder {
    // Everything after the token table: names, markers, offsets, slide, checks, indexes.
    static Result<KernelSymbols> at_token_table(KernelVirtualMemory& mem,
                                                const KallsymsOptions& opts, const Tokens& tok,
                                                std::uint64_t table_va, std::uint64_t index_va) {
        // kallsyms_num_syms: searched backwards from the token table in doubling windows.
        std::vector<std::byte> win;
        std::optional<NamesFound> names;
        Error last{Fault::kNotFound,
                   "no kallsyms_names before the token table at " + hex(table_va)};
        std::uint64_t checked_down_to = table_va;  // candidates >= this were tried
        for (std::uint64_t want = 256U << 10;; want *= 2) {
            want = std::min(want, kMaxKallsymsNames);
            const std::uint64_t win_va = read_suffix(mem, table_va, want, win);
            const std::span<const std::byte> w(win);
            for (std::uint64_t s = checked_down_to - 8; s >= win_va + 8 && s < checked_down_to;
                 s -= 8) {
                auto r = names_at(w, win_va, s, tok, opts.max_symbols);
                if (r) {
                    names = std::move(*r);
                    break;
                }
                if (r.fault() != Fault::kNotFound) last = std::move(r).error();
            }
            checked_down_to = win_va + 8;
            if (names || win.size() < want || want >= kMaxKallsymsNames) break;
        }
        if (!names) return last;
        const std::size_t n = names->count;

        // kallsyms_offsets and kallsyms_relative_base: after the token index (6.12) or before
        // kallsyms_num_syms (6.1).
        const std::uint64_t off_bytes = align8(4ULL * n);
        struct Place {
            std::uint64_t off_va, base_va;
            bool after;
        };
        std::vector<Place> places;
        places.push_back({index_va + kIndexBytes, index_va + kIndexBytes + off_bytes, true});
        if (names->num_syms_va >= off_bytes + 8) {
            places.push_back({names->num_syms_va - 8 - off_bytes, names->num_syms_va - 8, false});
        }
        std::optional<OffsetsFound> offs;
        bool offs_after = false;
        Error off_err{Fault::kNotFound, "no kallsyms_offsets for " + std::to_string(n) + " names"};
        for (const Place& p : places) {
            auto r = offsets_at(mem, p.off_va, p.base_va, n);
            if (!r) {
                off_err = std::move(r).error();
                continue;
            }
            if (offs) continue;  // the first place that validates wins
            offs = std::move(*r);
            offs_after = p.after;
        }
        if (!offs) return Error{Fault::kNotFound, "kallsyms_offsets: " + off_err.message()};

        KernelSymbols ks;
        ks.info_.num_syms_va = names->num_syms_va;
        ks.info_.names_va = names->names_va;
        ks.info_.markers_va = names->markers_va;
        ks.info_.token_table_va = table_va;
        ks.info_.token_index_va = index_va;
        ks.info_.offsets_va = offs->offsets_va;
        ks.info_.relative_base_va = offs->base_va;
        ks.info_.relative_base = offs->base;
        ks.info_.absolute_percpu = offs->absolute_percpu;
        ks.info_.offsets_after_token_index = offs_after;
        ks.names_ = std::move(names->pool);
        ks.entries_.resize(n);
        ks.first_relative_ = n;
        for (std::size_t i = 0; i < n; ++i) {
            ks.entries_[i] =
                KernelSymbols::Entry{offs->addr[i], names->name_off[i], names->name_len[i],
                                     names->types[i], static_cast<bool>(offs->relative[i])};
            if (offs->relative[i] && ks.first_relative_ == n) ks.first_relative_ = i;
        }
        ks.build_name_index();

        // KASLR: _text must be the guest's _text. A guest whose relative base was not
        // relocated gets the difference as the slide.
        if (opts.text_va != 0) {
            auto text = ks.address_of("_text");
            if (!text) text = ks.address_of("_stext");
            if (!text) return Error{Fault::kNotFound, "kallsyms has no _text or _stext"};
            const std::uint64_t slide = opts.text_va - *text;
            if (slide != 0) {
                if (slide % kSlideAlign != 0 || !kernel_half(offs->base + slide)) {
                    return Error{Fault::kInvalidFormat, "kallsyms puts _text at " + hex(*text) +
                                                            ", the page tables at " +
                                                            hex(opts.text_va)};
                }
                for (auto& e : ks.entries_) {
                    if (e.relative) e.address += slide;
                }
                ks.info_.slide = slide;
            }
        }
        if (opts.init_task_va != 0) {
            const auto all = ks.lookup("init_task");
            if (all.empty()) return Error{Fault::kNotFound, "kallsyms has no init_task"};
            if (std::none_of(all.begin(), all.end(), [&](const KernelSymbol& s) {
                    return s.address == opts.init_task_va;
                })) {
                return Error{Fault::kInvalidFormat, "kallsyms puts init_task at " +
                                                        hex(all[0].address) + ", discovery at " +
                                                        hex(opts.init_task_va)};
            }
        }
        for (const char* w : kWellKnown) {
            if (!ks.address_of(w)) ks.info_.missing_well_known.emplace_back(w);
        }
        return ks;
    }
};

namespace {
std::uint64_t name_hash(std::string_view n) { return std::hash<std::string_view>{}(n); }
}  // namespace

// Sorted (hash, index) pairs: O(N log N) to build whatever the names, and a lookup scans only
// the run of its hash (all duplicates of a name, plus any colliding names).
void KernelSymbols::build_name_index() {
    by_name_.resize(entries_.size());
    for (std::size_t i = 0; i < entries_.size(); ++i) {
        by_name_[i] = {name_hash(name_of(entries_[i])), static_cast<std::uint32_t>(i)};
    }
    std::sort(by_name_.begin(), by_name_.end());
}

std::string_view KernelSymbols::name_of(const Entry& e) const {
    return std::string_view(names_).substr(e.name_off, e.name_len);
}

KernelSymbol KernelSymbols::at(std::size_t i) const {
    const Entry& e = entries_.at(i);
    return KernelSymbol{e.address, e.type, name_of(e)};
}

std::vector<KernelSymbol> KernelSymbols::lookup(std::string_view name) const {
    const std::uint64_t h = name_hash(name);
    std::vector<KernelSymbol> out;
    for (auto it = std::lower_bound(by_name_.begin(), by_name_.end(),
                                    std::pair<std::uint64_t, std::uint32_t>{h, 0});
         it != by_name_.end() && it->first == h; ++it) {
        if (name_of(entries_[it->second]) == name) out.push_back(at(it->second));
    }
    return out;  // by index within the run: kallsyms order = address order
}

std::optional<std::uint64_t> KernelSymbols::address_of(std::string_view name) const {
    auto all = lookup(name);
    if (all.empty()) return std::nullopt;
    return all.front().address;
}

std::optional<SymbolLocation> KernelSymbols::symbolize(std::uint64_t address) const {
    if (first_relative_ >= entries_.size()) return std::nullopt;
    const auto begin = entries_.begin() + static_cast<std::ptrdiff_t>(first_relative_);
    if (address < begin->address || address > entries_.back().address) return std::nullopt;
    auto it = std::upper_bound(begin, entries_.end(), address,
                               [](std::uint64_t a, const Entry& e) { return a < e.address; });
    --it;  // the last entry at or below `address` (the first of equal addresses is fine too)
    SymbolLocation loc;
    loc.symbol = at(static_cast<std::size_t>(it - entries_.begin()));
    loc.offset = address - it->address;
    auto next = std::upper_bound(it, entries_.end(), it->address,
                                 [](std::uint64_t a, const Entry& e) { return a < e.address; });
    loc.size = next == entries_.end() ? 0 : next->address - it->address;
    return loc;
}

Result<KernelSymbols> KernelSymbols::find(KernelVirtualMemory& mem, const KallsymsOptions& opts) {
    const auto t0 = Clock::now();
    KallsymsOptions o = opts;
    o.max_symbols = std::min(o.max_symbols, kMaxKallsyms);
    const std::uint64_t start = align8(o.scan_start);
    const std::uint64_t end =
        range_fits(start, o.scan_len) ? start + o.scan_len : UINT64_MAX & ~std::uint64_t{7};

    std::vector<std::byte> buf(kChunk + kIndexBytes + 8);
    std::uint64_t buf_va = start;  // va of buf[0]
    std::size_t have = 0;
    std::uint64_t scanned = 0;
    std::size_t index_candidates = 0, tables = 0;
    Error last{Fault::kNotFound,
               "no kallsyms token table in [" + hex(start) + ", " + hex(end) + ")"};
    std::array<std::uint16_t, 256> idx{};

    while (buf_va + have < end) {
        const std::uint64_t fill_va = buf_va + have;
        const std::size_t want =
            static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, end - fill_va));
        const std::size_t got = mem.read_prefix(fill_va, std::span(buf).subspan(have, want));
        if (got == 0) {  // unreadable: skip the hole, drop what straddles it
            const std::uint64_t hole = std::max<std::uint64_t>(mem.hole_size(fill_va), 1);
            if (hole >= end - fill_va) break;
            buf_va = align8(fill_va + hole);
            have = 0;
            continue;
        }
        scanned += got;
        have += got;
        const std::span<const std::byte> b(buf.data(), have);
        std::size_t off = 0;  // buf_va is 8-aligned
        for (; off + kIndexBytes <= have; off += 8) {
            const auto w = load<std::uint64_t>(b, off);
            if ((w & 0xffff) != 0) continue;
            const std::uint64_t a = (w >> 16) & 0xffff, c = (w >> 32) & 0xffff, d = w >> 48;
            if (a == 0 || a > kMaxToken + 1 || c <= a || d <= c) continue;
            if (!looks_like_token_index(b.subspan(off, kIndexBytes), idx)) continue;
            if (++index_candidates > kMaxTokenIndexCandidates) {
                return Error{Fault::kLimitExceeded, "more than " +
                                                        std::to_string(kMaxTokenIndexCandidates) +
                                                        " token index candidates"};
            }
            const std::uint64_t index_va = buf_va + off;
            std::uint64_t table_va = 0;
            auto tok = token_table_at(mem, index_va, idx, table_va);
            if (!tok) {
                if (tok.fault() != Fault::kInvalidFormat) last = std::move(tok).error();
                continue;
            }
            if (++tables > kMaxTokenTableCandidates) {
                return Error{Fault::kLimitExceeded,
                             "more than " + std::to_string(kMaxTokenTableCandidates) +
                                 " token tables; last error: " + last.message()};
            }
            const auto t_found = Clock::now();
            auto ks = KallsymsBuilder::at_token_table(mem, o, *tok, table_va, index_va);
            if (!ks) {
                last = Error{ks.fault(),
                             "token table at " + hex(table_va) + ": " + ks.error().message()};
                continue;
            }
            ks->info_.bytes_scanned = scanned;
            ks->info_.token_index_candidates = index_candidates;
            ks->info_.scan_time = t_found - t0;
            ks->info_.total_time = Clock::now() - t0;
            ks->info_.decode_time = ks->info_.total_time - ks->info_.scan_time;
            return ks;
        }
        std::memmove(buf.data(), buf.data() + off, have - off);
        buf_va += off;
        have -= off;
    }
    return last;
}

Result<KernelSymbols> discover_kernel_symbols(GuestMemory& mem, std::uint64_t any_cr3,
                                              const GuestKernelProfile& prof, bool la57,
                                              std::uint64_t scan_len) {
    PagedKernelMemory km(mem, any_cr3, la57);
    KallsymsOptions o;
    o.scan_start = prof.text_va;
    o.scan_len = scan_len;
    o.text_va = prof.text_va;
    o.init_task_va = prof.init_task_va;
    return KernelSymbols::find(km, o);
}

}  // namespace vmi
