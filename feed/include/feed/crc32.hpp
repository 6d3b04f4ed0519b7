// CRC-32 as zlib's crc32() computes it (same polynomial, same result: spool segments written
// with either read with the other), faster: PCLMULQDQ folding where the CPU has it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace feed {

/// zlib's crc32(crc, data, size): `crc` is 0 to start, or the result for what came before.
std::uint32_t crc32(std::uint32_t crc, const void* data, std::size_t size) noexcept;

}  // namespace feed
