#include "vmi/page_cache.hpp"

#include <algorithm>
#include <cstring>

namespace vmi {

PageCache::PageCache(GuestMemory& backing, std::size_t max_pages)
    : backing_(&backing), max_pages_(std::max<std::size_t>(max_pages, 1)) {}

const PageCache::Page* PageCache::page(std::uint64_t frame) {
    if (auto it = pages_.find(frame); it != pages_.end()) {
        ++hits_;
        return it->second.get();
    }
    ++misses_;
    auto p = std::make_unique<Page>();
    if (!backing_->read_phys(frame * kPageSize, *p)) return nullptr;
    if (pages_.size() >= max_pages_) pages_.clear();
    return pages_.emplace(frame, std::move(p)).first->second.get();
}

Status PageCache::read_phys(std::uint64_t gpa, std::span<std::byte> out) {
    if (!range_fits(gpa, out.size())) return Fault::kUnmapped;
    if (out.size() > kMaxCachedRead) return backing_->read_phys(gpa, out);
    std::size_t done = 0;
    while (done < out.size()) {
        const std::uint64_t addr = gpa + done;
        const std::size_t in_page = addr & kPageMask;
        const std::size_t n = std::min<std::size_t>(kPageSize - in_page, out.size() - done);
        const Page* pg = page(addr / kPageSize);
        if (pg == nullptr) {
            // Not readable as a whole page: let the backing memory decide on the exact bytes.
            if (auto st = backing_->read_phys(addr, out.subspan(done, n)); !st) return st;
        } else {
            std::memcpy(out.data() + done, pg->data() + in_page, n);
        }
        done += n;
    }
    return {};
}

}  // namespace vmi
