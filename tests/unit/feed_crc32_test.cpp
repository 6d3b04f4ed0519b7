// The spool's CRC-32 is zlib's: equal on every length the folding's edges can fall on, at
// every misalignment, from any running value; and whichever computed it, a spool reads back.
#include "feed/crc32.hpp"

#include <zlib.h>

#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace {

std::uint32_t zlib_crc(std::uint32_t crc, const unsigned char* p, std::size_t n) {
    return static_cast<std::uint32_t>(::crc32(crc, p, static_cast<uInt>(n)));
}

TEST(FeedCrc32, EqualsZlibOnEveryLengthAndAlignment) {
    std::mt19937 rng(6);
    std::vector<unsigned char> buf(4096 + 16);
    for (auto& c : buf) c = static_cast<unsigned char>(rng());
    for (std::size_t mis = 0; mis < 16; ++mis)
        for (std::size_t n = 0; n <= 4096; ++n) {
            const std::uint32_t seed = n % 3 ? static_cast<std::uint32_t>(rng()) : 0;
            const unsigned char* p = buf.data() + mis;
            ASSERT_EQ(feed::crc32(seed, p, n), zlib_crc(seed, p, n))
                << "length " << n << ", offset " << mis << ", seed " << seed;
        }
}

TEST(FeedCrc32, PiecesChainLikeZlib) {
    std::mt19937 rng(7);
    std::vector<unsigned char> buf(1 << 20);
    for (auto& c : buf) c = static_cast<unsigned char>(rng());
    const std::uint32_t whole = zlib_crc(0, buf.data(), buf.size());
    EXPECT_EQ(feed::crc32(0, buf.data(), buf.size()), whole);
    std::uint32_t c = 0;
    for (std::size_t at = 0, n = 1; at < buf.size(); at += n, n = n * 3 + 7)
        c = feed::crc32(c, buf.data() + at, std::min(n, buf.size() - at));
    EXPECT_EQ(c, whole);
}

TEST(FeedCrc32, AllZeroesAndAllOnes) {
    for (const int b : {0x00, 0xff}) {
        const std::vector<unsigned char> buf(1000, static_cast<unsigned char>(b));
        EXPECT_EQ(feed::crc32(0, buf.data(), buf.size()), zlib_crc(0, buf.data(), buf.size()));
    }
}

}  // namespace
