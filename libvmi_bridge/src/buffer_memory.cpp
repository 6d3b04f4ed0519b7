#include "vmi/buffer_memory.hpp"

#include <algorithm>
#include <cstring>

namespace vmi {

Status BufferMemory::read_phys(std::uint64_t gpa, std::span<std::byte> out) {
    if (!range_fits(gpa, out.size())) return Fault::kUnmapped;
    std::size_t done = 0;
    while (done < out.size()) {
        std::uint64_t addr = gpa + done;
        auto it = pages_.find(addr / kPageSize);
        if (it == pages_.end()) return Fault::kUnmapped;
        std::size_t off = addr & kPageMask;
        std::size_t n = std::min(out.size() - done, static_cast<std::size_t>(kPageSize - off));
        std::memcpy(out.data() + done, it->second->data() + off, n);
        done += n;
    }
    return {};
}

BufferMemory::Page& BufferMemory::page_for(std::uint64_t gpa) {
    auto& slot = pages_[gpa / kPageSize];
    if (!slot) slot = std::make_unique<Page>(Page{});
    return *slot;
}

void BufferMemory::write(std::uint64_t gpa, std::span<const std::byte> data) {
    std::size_t done = 0;
    while (done < data.size()) {
        std::uint64_t addr = gpa + done;
        std::size_t off = addr & kPageMask;
        std::size_t n = std::min(data.size() - done, static_cast<std::size_t>(kPageSize - off));
        std::memcpy(page_for(addr).data() + off, data.data() + done, n);
        done += n;
    }
}

void BufferMemory::write_u64(std::uint64_t gpa, std::uint64_t value) {
    write(gpa, std::as_bytes(std::span(&value, 1)));
}

void BufferMemory::write_u32(std::uint64_t gpa, std::uint32_t value) {
    write(gpa, std::as_bytes(std::span(&value, 1)));
}

void BufferMemory::map_page(std::uint64_t gpa) { page_for(gpa); }

void BufferMemory::unmap_page(std::uint64_t gpa) { pages_.erase(gpa / kPageSize); }

}  // namespace vmi
