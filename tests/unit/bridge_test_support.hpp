// Test helper: builds x86-64 page tables inside a BufferMemory.
#pragma once

#include <cstdint>
#include <stdexcept>

#include "vmi/buffer_memory.hpp"

namespace vmi::test {

inline constexpr std::uint64_t k4K = 4096;
inline constexpr std::uint64_t k2M = 2ULL << 20;
inline constexpr std::uint64_t k1G = 1ULL << 30;
inline constexpr std::uint64_t kPresentRw = 0x3;
inline constexpr std::uint64_t kPs = 0x80;

class PageTableBuilder {
  public:
    /// Page-table frames are allocated upward from `table_base` (keep it away from data).
    PageTableBuilder(BufferMemory& mem, bool la57, std::uint64_t table_base = 0x10'0000)
        : mem_(mem), la57_(la57), next_frame_(table_base) {
        root_ = alloc_frame();
    }

    [[nodiscard]] std::uint64_t cr3() const { return root_; }
    [[nodiscard]] bool la57() const { return la57_; }

    std::uint64_t alloc_frame() {
        const std::uint64_t pa = next_frame_;
        next_frame_ += k4K;
        mem_.map_page(pa);
        return pa;
    }

    /// Maps one page of `size` (4K/2M/1G) at va -> pa, creating intermediate tables.
    void map(std::uint64_t va, std::uint64_t pa, std::uint64_t size = k4K) {
        const int leaf = size == k4K ? 1 : size == k2M ? 2 : size == k1G ? 3 : 0;
        if (leaf == 0) throw std::invalid_argument("page size");
        std::uint64_t table = root_;
        for (int level = la57_ ? 5 : 4; level > leaf; --level) {
            const std::uint64_t slot = entry_addr(table, va, level);
            auto e = mem_.read_u64(slot);
            std::uint64_t entry = e ? *e : 0;
            if ((entry & 1) == 0) {
                entry = alloc_frame() | kPresentRw;
                mem_.write_u64(slot, entry);
            }
            table = entry & 0x000F'FFFF'FFFF'F000ULL;
        }
        mem_.write_u64(entry_addr(table, va, leaf), pa | kPresentRw | (leaf > 1 ? kPs : 0));
    }

    /// Maps [va, va+len) to [pa, pa+len) with 4K pages.
    void map_range(std::uint64_t va, std::uint64_t pa, std::uint64_t len) {
        for (std::uint64_t off = 0; off < len; off += k4K) map(va + off, pa + off);
    }

    /// Physical address of the entry for `va` at `level` (must exist down to level+1).
    std::uint64_t entry_pa(std::uint64_t va, int level) {
        std::uint64_t table = root_;
        for (int l = la57_ ? 5 : 4; l > level; --l) {
            table = *mem_.read_u64(entry_addr(table, va, l)) & 0x000F'FFFF'FFFF'F000ULL;
        }
        return entry_addr(table, va, level);
    }

  private:
    static std::uint64_t entry_addr(std::uint64_t table, std::uint64_t va, int level) {
        const unsigned shift = 12U + 9U * static_cast<unsigned>(level - 1);
        return table + ((va >> shift) & 0x1FF) * 8;
    }

    BufferMemory& mem_;
    bool la57_;
    std::uint64_t next_frame_;
    std::uint64_t root_ = 0;
};

}  // namespace vmi::test
