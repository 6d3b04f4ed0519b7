#include "feed/crc32.hpp"

#include <zlib.h>

#include <algorithm>
#include <climits>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace feed {
namespace {

// zlib's own code for long stretches the folding does not cover (CPUs without PCLMULQDQ). It
// takes uInt lengths: larger buffers go in pieces.
std::uint32_t crc32_zlib(std::uint32_t crc, const unsigned char* p, std::size_t n) {
    uLong c = crc;
    while (n) {
        const std::size_t k = std::min<std::size_t>(n, UINT_MAX);
        c = ::crc32(c, p, static_cast<uInt>(k));
        p += k;
        n -= k;
    }
    return static_cast<std::uint32_t>(c);
}

// A byte at a time by zlib's table: for the few bytes around the folding, cheaper than a call
// into zlib's braided code.
std::uint32_t crc32_bytes(std::uint32_t crc, const unsigned char* p, std::size_t n) {
    static const z_crc_t* const table = get_crc_table();
    std::uint32_t c = ~crc;
    for (; n; --n, ++p) c = static_cast<std::uint32_t>(table[(c ^ *p) & 0xff]) ^ (c >> 8);
    return ~c;
}

#if defined(__x86_64__)

#define VMI_CLMUL __attribute__((target("pclmul,sse4.1")))

VMI_CLMUL inline __m128i load(const unsigned char* q) {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
}

// x's two halves, each moved on by its distance (the multipliers in k), added to the next.
VMI_CLMUL inline __m128i step(__m128i x, __m128i k, __m128i next) {
    const __m128i lo = _mm_clmulepi64_si128(x, k, 0x00);
    const __m128i hi = _mm_clmulepi64_si128(x, k, 0x11);
    return _mm_xor_si128(_mm_xor_si128(lo, hi), next);
}

// Folding by carry-less multiplication (Intel, "Fast CRC Computation for Generic Polynomials
// Using PCLMULQDQ Instruction", bit-reflected form). The constants are x^k mod P for the
// distances folded (4 x 128 bits, then 128), the final 64 -> 32 fold, and Barrett's P' and u'.
// `state` is zlib's inverted running value; `n` is a multiple of 16, at least 64.
VMI_CLMUL std::uint32_t fold(std::uint32_t state, const unsigned char* p, std::size_t n) {
    __m128i x1 = _mm_xor_si128(load(p), _mm_cvtsi32_si128(static_cast<int>(state)));
    __m128i x2 = load(p + 16), x3 = load(p + 32), x4 = load(p + 48);
    p += 64;
    n -= 64;
    const __m128i k4x = _mm_set_epi64x(0x1c6e41596, 0x154442bd4);
    for (; n >= 64; p += 64, n -= 64) {
        x1 = step(x1, k4x, load(p));
        x2 = step(x2, k4x, load(p + 16));
        x3 = step(x3, k4x, load(p + 32));
        x4 = step(x4, k4x, load(p + 48));
    }
    const __m128i k1x = _mm_set_epi64x(0x0ccaa009e, 0x1751997d0);
    x1 = step(x1, k1x, x2);
    x1 = step(x1, k1x, x3);
    x1 = step(x1, k1x, x4);
    for (; n >= 16; p += 16, n -= 16) x1 = step(x1, k1x, load(p));
    // 128 -> 64 bits (appending 32 zero bits), then 64 -> 32.
    x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), _mm_clmulepi64_si128(k1x, x1, 0x01));
    const __m128i mask32 = _mm_set_epi32(0, 0, 0, -1);
    const __m128i k5 = _mm_set_epi64x(0, 0x163cd6124);
    x1 = _mm_xor_si128(_mm_srli_si128(x1, 4),
                       _mm_clmulepi64_si128(_mm_and_si128(x1, mask32), k5, 0x00));
    // Barrett reduction to 32 bits.
    const __m128i poly = _mm_set_epi64x(0x1f7011641, 0x1db710641);
    __m128i t = _mm_clmulepi64_si128(_mm_and_si128(x1, mask32), poly, 0x10);
    t = _mm_clmulepi64_si128(_mm_and_si128(t, mask32), poly, 0x00);
    return static_cast<std::uint32_t>(_mm_extract_epi32(_mm_xor_si128(x1, t), 1));
}

bool have_pclmul() {
    static const bool yes = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
    return yes;
}

#endif

}  // namespace

std::uint32_t crc32(std::uint32_t crc, const void* data, std::size_t size) noexcept {
    const auto* p = static_cast<const unsigned char*>(data);
#if defined(__x86_64__)
    if (size >= 64 && have_pclmul()) {
        const std::size_t body = size & ~std::size_t{15};
        return crc32_bytes(~fold(~crc, p, body), p + body, size - body);
    }
#endif
    return size < 16 ? crc32_bytes(crc, p, size) : crc32_zlib(crc, p, size);
}

}  // namespace feed
