// Test helper: kallsyms tables encoded the way the kernel's scripts/kallsyms.c writes them
// (token compression by repeated most-frequent-pair merging, ULEB128 lengths, markers every
// 256 names, 8-byte aligned tables, base-relative offsets), in either table order:
//   6.1:  offsets, relative_base, num_syms, names, markers, seqs_of_names, token_table,
//         token_index
//   6.12: num_syms, names, markers, token_table, token_index, offsets, relative_base,
//         seqs_of_names
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace vmi::test {

struct SynthSym {
    std::uint64_t addr = 0;  // absolute per-CPU offset when percpu
    char type = 'T';
    std::string name;
    bool percpu = false;
};

enum class KallsymsLayout { k61, k612 };

struct KallsymsBlob {
    std::vector<std::byte> bytes;  // starts 8-aligned
    // Byte offsets of the tables within `bytes`.
    std::size_t offsets = 0, relative_base = 0, num_syms = 0, names = 0, markers = 0, seqs = 0,
                token_table = 0, token_index = 0;
    std::size_t max_entry_len = 0;  // longest compressed entry (>= 0x80 uses two length bytes)
    std::array<std::string, 256> tokens;
    std::vector<std::size_t> entry_offsets;  // of each names entry, relative to `names`
};

struct KallsymsBuildOptions {
    KallsymsLayout layout = KallsymsLayout::k612;
    bool absolute_percpu = true;     // x86-64 SMP: per-CPU offsets >= 0, others negative
    bool fill_unused_tokens = true;  // false: unused codes stay empty strings, as the kernel
                                     // leaves them when nothing is left to merge
};

class KallsymsEncoder {
  public:
    /// `syms` must be sorted by address (per-CPU ones, at small addresses, first).
    static KallsymsBlob build(const std::vector<SynthSym>& syms, std::uint64_t relative_base,
                              const KallsymsBuildOptions& o = {}) {
        KallsymsBlob b;
        std::vector<std::vector<std::uint8_t>> codes;
        for (const auto& s : syms) {
            std::vector<std::uint8_t> c;
            c.push_back(static_cast<std::uint8_t>(s.type));
            for (char ch : s.name) c.push_back(static_cast<std::uint8_t>(ch));
            codes.push_back(std::move(c));
        }
        // Initial table: every byte used stands for itself.
        std::array<bool, 256> used{};
        for (const auto& c : codes)
            for (auto x : c) used[x] = true;
        for (int i = 0; i < 256; ++i)
            if (used[i]) b.tokens[i] = std::string(1, static_cast<char>(i));
        // Greedy pair merging into the free codes, highest first (like optimize_result()).
        for (int i = 255; i >= 0; --i) {
            if (!b.tokens[i].empty()) continue;
            std::vector<int> profit(65536);
            for (const auto& c : codes)
                for (std::size_t k = 0; k + 1 < c.size(); ++k) ++profit[c[k] * 256U + c[k + 1]];
            const auto best = std::max_element(profit.begin(), profit.end()) - profit.begin();
            if (profit[static_cast<std::size_t>(best)] == 0) break;
            const auto l = static_cast<std::uint8_t>(best / 256);
            const auto r = static_cast<std::uint8_t>(best % 256);
            b.tokens[i] = b.tokens[l] + b.tokens[r];
            for (auto& c : codes) {
                std::vector<std::uint8_t> out;
                for (std::size_t k = 0; k < c.size(); ++k) {
                    if (k + 1 < c.size() && c[k] == l && c[k + 1] == r) {
                        out.push_back(static_cast<std::uint8_t>(i));
                        ++k;
                    } else {
                        out.push_back(c[k]);
                    }
                }
                c = std::move(out);
            }
        }
        if (o.fill_unused_tokens) {
            for (int i = 0; i < 256; ++i)
                if (b.tokens[i].empty()) b.tokens[i] = "zq" + std::to_string(i);
        }

        auto& out = b.bytes;
        auto align = [&] {
            while (out.size() % 8) out.push_back(std::byte{0});
        };
        auto put = [&](const void* p, std::size_t n) {
            const auto* q = static_cast<const std::byte*>(p);
            out.insert(out.end(), q, q + n);
        };
        auto put_u32 = [&](std::uint32_t v) { put(&v, 4); };
        auto put_u64 = [&](std::uint64_t v) { put(&v, 8); };
        const auto n = static_cast<std::uint32_t>(syms.size());

        auto emit_offsets = [&] {
            align();
            b.offsets = out.size();
            for (const auto& s : syms) {
                std::int64_t off = 0;
                if (!o.absolute_percpu) {
                    off = static_cast<std::int64_t>(s.addr - relative_base);
                    if (s.addr < relative_base || off > UINT32_MAX) throw std::range_error("off");
                } else if (s.percpu) {
                    off = static_cast<std::int64_t>(s.addr);
                    if (off > INT32_MAX) throw std::range_error("percpu");
                } else {
                    off = static_cast<std::int64_t>(relative_base - s.addr) - 1;
                    if (s.addr < relative_base || off < INT32_MIN || off >= 0)
                        throw std::range_error("relative");
                }
                put_u32(static_cast<std::uint32_t>(off));
            }
            align();
            b.relative_base = out.size();
            put_u64(relative_base);
        };
        auto emit_seqs = [&] {
            align();
            b.seqs = out.size();
            std::vector<std::uint32_t> order(n);
            std::iota(order.begin(), order.end(), 0U);
            std::stable_sort(order.begin(), order.end(), [&](std::uint32_t x, std::uint32_t y) {
                return syms[x].name < syms[y].name;
            });
            for (std::uint32_t v : order) {  // three bytes, big-endian
                const std::uint8_t be[3] = {static_cast<std::uint8_t>(v >> 16),
                                            static_cast<std::uint8_t>(v >> 8),
                                            static_cast<std::uint8_t>(v)};
                put(be, 3);
            }
        };

        if (o.layout == KallsymsLayout::k61) emit_offsets();
        align();
        b.num_syms = out.size();
        put_u32(n);
        align();
        b.names = out.size();
        std::vector<std::uint32_t> markers;
        for (std::size_t i = 0; i < codes.size(); ++i) {
            const std::size_t pos = out.size() - b.names;
            if ((i & 0xff) == 0) markers.push_back(static_cast<std::uint32_t>(pos));
            b.entry_offsets.push_back(pos);
            const std::size_t len = codes[i].size();
            b.max_entry_len = std::max(b.max_entry_len, len);
            if (len <= 0x7f) {
                out.push_back(static_cast<std::byte>(len));
            } else {
                out.push_back(static_cast<std::byte>((len & 0x7f) | 0x80));
                out.push_back(static_cast<std::byte>((len >> 7) & 0x7f));
            }
            put(codes[i].data(), len);
        }
        align();
        b.markers = out.size();
        for (auto m : markers) put_u32(m);
        if (o.layout == KallsymsLayout::k61) emit_seqs();
        align();
        b.token_table = out.size();
        std::array<std::uint16_t, 256> idx{};
        for (int i = 0; i < 256; ++i) {
            idx[i] = static_cast<std::uint16_t>(out.size() - b.token_table);
            put(b.tokens[i].data(), b.tokens[i].size());
            out.push_back(std::byte{0});
        }
        align();
        b.token_index = out.size();
        put(idx.data(), sizeof idx);
        if (o.layout == KallsymsLayout::k612) {
            emit_offsets();
            emit_seqs();
        }
        align();
        return b;
    }
};

}  // namespace vmi::test
