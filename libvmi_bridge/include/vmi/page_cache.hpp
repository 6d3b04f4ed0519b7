// A bounded cache of 4 KiB guest-physical pages in front of another GuestMemory. It never
// decides freshness by itself: the owner scopes it to one consistent read pass (e.g. one
// process listing) and drops it, or calls clear(), before reading a live guest again.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <unordered_map>

#include "vmi/guest_memory.hpp"

namespace vmi {

class PageCache final : public GuestMemory {
  public:
    static constexpr std::size_t kDefaultMaxPages = 4096;  // 16 MiB
    /// Reads larger than this go straight to the backing memory (bulk scans).
    static constexpr std::size_t kMaxCachedRead = 16 * kPageSize;

    /// `backing` must outlive the cache. When `max_pages` pages are held the cache is emptied
    /// (memory stays bounded whatever the guest makes us read).
    explicit PageCache(GuestMemory& backing, std::size_t max_pages = kDefaultMaxPages);

    /// Same contract as the backing memory's read_phys. A page that cannot be read whole (e.g.
    /// the end of an image) is not cached: the request is passed through unchanged, so faults
    /// are exactly the backing memory's.
    Status read_phys(std::uint64_t gpa, std::span<std::byte> out) override;

    void clear() noexcept { pages_.clear(); }
    [[nodiscard]] std::uint64_t hits() const noexcept { return hits_; }
    [[nodiscard]] std::uint64_t misses() const noexcept { return misses_; }
    [[nodiscard]] std::size_t page_count() const noexcept { return pages_.size(); }

  private:
    using Page = std::array<std::byte, kPageSize>;
    const Page* page(std::uint64_t frame);

    GuestMemory* backing_;
    std::size_t max_pages_;
    std::unordered_map<std::uint64_t, std::unique_ptr<Page>> pages_;  // frame -> contents
    std::uint64_t hits_ = 0;
    std::uint64_t misses_ = 0;
};

}  // namespace vmi
