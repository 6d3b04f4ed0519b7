// Sparse in-memory guest RAM for tests and fixtures: pages exist only once written.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <unordered_map>

#include "vmi/guest_memory.hpp"

namespace vmi {

class BufferMemory final : public GuestMemory {
  public:
    using Page = std::array<std::byte, kPageSize>;

    /// Reads from pages never written fail with kUnmapped.
    Status read_phys(std::uint64_t gpa, std::span<std::byte> out) override;

    /// Copies `data` to `gpa`, creating zero-filled pages as needed.
    void write(std::uint64_t gpa, std::span<const std::byte> data);
    void write_u64(std::uint64_t gpa, std::uint64_t value);
    void write_u32(std::uint64_t gpa, std::uint32_t value);
    /// Creates a zero-filled page at frame `gpa >> 12` if absent.
    void map_page(std::uint64_t gpa);
    /// Removes a page; later reads of it fault.
    void unmap_page(std::uint64_t gpa);

    [[nodiscard]] std::size_t page_count() const noexcept { return pages_.size(); }

  private:
    Page& page_for(std::uint64_t gpa);
    std::unordered_map<std::uint64_t, std::unique_ptr<Page>> pages_;  // frame number -> page
};

}  // namespace vmi
