// Abstract access to guest-physical memory. All guest data is hostile: readers never trust a
// length or an address coming from the guest, and every helper here is bounded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "vmi/result.hpp"

namespace vmi {

inline constexpr std::uint64_t kPageSize = 4096;
inline constexpr std::uint64_t kPageMask = kPageSize - 1;

/// Upper bound for read_string(): guest strings longer than this are truncated.
inline constexpr std::size_t kMaxGuestString = 4096;

class GuestMemory {
  public:
    virtual ~GuestMemory() = default;
    GuestMemory() = default;
    GuestMemory(const GuestMemory&) = delete;
    GuestMemory& operator=(const GuestMemory&) = delete;

    /// Fills `out` with guest-physical bytes starting at `gpa`. All or nothing: on error the
    /// contents of `out` are unspecified. A range wrapping past 2^64 is kUnmapped.
    virtual Status read_phys(std::uint64_t gpa, std::span<std::byte> out) = 0;

    /// Little-endian scalar reads (x86 guests).
    Result<std::uint64_t> read_u64(std::uint64_t gpa);
    Result<std::uint32_t> read_u32(std::uint64_t gpa);

    /// Reads at most min(max_len, kMaxGuestString) bytes and stops at the first NUL. Reads page
    /// by page so a string ending just before an unmapped page still succeeds.
    Result<std::string> read_string(std::uint64_t gpa, std::size_t max_len);
};

/// True if [addr, addr+len) does not wrap around 2^64.
constexpr bool range_fits(std::uint64_t addr, std::uint64_t len) noexcept {
    return len == 0 || addr <= UINT64_MAX - (len - 1);
}

}  // namespace vmi
