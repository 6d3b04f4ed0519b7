#include "vmi/guest_memory.hpp"

#include <algorithm>
#include <array>
#include <cstring>

namespace vmi {

namespace {

template <class T>
Result<T> read_scalar(GuestMemory& mem, std::uint64_t gpa) {
    std::array<std::byte, sizeof(T)> buf{};
    if (auto st = mem.read_phys(gpa, buf); !st) return std::move(st).error();
    T v{};
    std::memcpy(&v, buf.data(), sizeof(T));  // x86 host and guest: both little-endian
    return v;
}

}  // namespace

Result<std::uint64_t> GuestMemory::read_u64(std::uint64_t gpa) {
    return read_scalar<std::uint64_t>(*this, gpa);
}

Result<std::uint32_t> GuestMemory::read_u32(std::uint64_t gpa) {
    return read_scalar<std::uint32_t>(*this, gpa);
}

Result<std::string> GuestMemory::read_string(std::uint64_t gpa, std::size_t max_len) {
    std::size_t remaining = std::min(max_len, kMaxGuestString);
    std::string out;
    std::array<std::byte, kPageSize> page{};
    while (remaining > 0) {
        // Never cross a page in one read: the next page may be unmapped.
        std::size_t chunk = std::min<std::uint64_t>(remaining, kPageSize - (gpa & kPageMask));
        std::span<std::byte> dst(page.data(), chunk);
        if (auto st = read_phys(gpa, dst); !st) return std::move(st).error();
        for (std::byte b : dst) {
            if (b == std::byte{0}) return out;
            out.push_back(static_cast<char>(b));
        }
        remaining -= chunk;
        if (!range_fits(gpa, chunk + 1)) break;
        gpa += chunk;
    }
    return out;
}

}  // namespace vmi
