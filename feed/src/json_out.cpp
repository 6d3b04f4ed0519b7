#include "feed/json_out.hpp"

#include <algorithm>
#include <array>

namespace feed {

namespace {

// Bytes written as they are: printable ASCII but '"' and '\\'.
constexpr std::array<bool, 256> kPlain = [] {
    std::array<bool, 256> t{};
    for (int c = 0x20; c < 0x80; ++c) t[static_cast<std::size_t>(c)] = c != '"' && c != '\\';
    return t;
}();

// What a byte that is not plain ASCII becomes, when it is not UTF-8: its two-character escape
// ('n' for "\\n"), 'u' for \u00XX.
constexpr std::array<char, 0x80> kEscape = [] {
    std::array<char, 0x80> t{};
    for (std::size_t c = 0; c < 0x20; ++c) t[c] = 'u';
    t['"'] = '"';
    t['\\'] = '\\';
    t['\n'] = 'n';
    t['\r'] = 'r';
    t['\t'] = 't';
    t['\b'] = 'b';
    t['\f'] = 'f';
    return t;
}();

// A byte >= 0x80, < 0x20, '"' or '\\' among these eight.
inline bool special8(std::uint64_t w) {
    constexpr std::uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    const auto has_zero = [](std::uint64_t v) { return (v - ones) & ~v & highs; };
    return ((w & highs) | ((w - 0x2020202020202020ULL) & ~w & highs) | has_zero(w ^ (ones * '"')) |
            has_zero(w ^ (ones * '\\'))) != 0;
}

// Length of the valid UTF-8 sequence at s[i] (s[i] >= 0x80), or 0 if it is not one.
std::size_t utf8_len(const unsigned char* s, std::size_t n, std::size_t i) {
    const unsigned char c = s[i];
    const auto cont = [&](std::size_t k) { return k < n && (s[k] & 0xC0) == 0x80; };
    if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (!cont(i + 1) || !cont(i + 2)) return 0;
        if (c == 0xE0 && s[i + 1] < 0xA0) return 0;  // overlong
        if (c == 0xED && s[i + 1] > 0x9F) return 0;  // surrogates
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
        if (c == 0xF0 && s[i + 1] < 0x90) return 0;
        if (c == 0xF4 && s[i + 1] > 0x8F) return 0;
        return 4;
    }
    return 0;
}

// How many bytes one U+FFFD stands for, nlohmann's way: the longest start of a valid sequence
// (at least the byte itself), so the byte that broke it is looked at again.
std::size_t maximal_subpart(const unsigned char* s, std::size_t n, std::size_t i) {
    const unsigned char c = s[i];
    std::size_t need = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        need = 1;
    else if (c >= 0xE0 && c <= 0xEF)
        need = 2;
    else if (c >= 0xF0 && c <= 0xF4)
        need = 3;
    else
        return 1;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
    std::size_t k = 1;
    for (; k <= need && i + k < n; ++k) {
        if (s[i + k] < lo || s[i + k] > hi) break;
        lo = 0x80;
        hi = 0xBF;
    }
    return k;
}

}  // namespace

JsonOut::JsonOut(std::string& s, std::size_t hint) : s_(s) {
    const std::size_t at = s_.size();
    s_.resize(at + std::max<std::size_t>(hint, 64));
    p_ = s_.data() + at;
    end_ = s_.data() + s_.size();
}

void JsonOut::grow(std::size_t n) {
    const auto at = static_cast<std::size_t>(p_ - s_.data());
    s_.resize(std::max(2 * s_.size(), at + n + 256));
    p_ = s_.data() + at;
    end_ = s_.data() + s_.size();
}

namespace {

// The escaper: plain bytes are copied while they are scanned (a word at a time), and the room
// for what is left of the string plus one escape is made before each run, so no byte needs its
// own check.
template <bool kPerByte>
char* escape_into(char* p, const unsigned char* s, std::size_t n, std::size_t& i) {
    // Plain run.
    const std::size_t from = i;
    for (; i + 8 <= n; i += 8, p += 8) {
        std::uint64_t w = 0;
        std::memcpy(&w, s + i, 8);
        if (special8(w)) break;
        std::memcpy(p, &w, 8);
    }
    // The last few bytes as one word that overlaps what this run already copied as it is.
    if (i < n && i + 8 > n && n >= from + 8) {
        std::uint64_t w = 0;
        std::memcpy(&w, s + n - 8, 8);
        if (!special8(w)) {
            std::memcpy(p - (i + 8 - n), &w, 8);
            p += n - i;
            i = n;
            return p;
        }
    }
    while (i < n && kPlain[s[i]]) *p++ = static_cast<char>(s[i++]);
    if (i >= n) return p;
    const unsigned char c = s[i];
    if (c >= 0x80) {
        if (const std::size_t len = utf8_len(s, n, i)) {
            std::memcpy(p, s + i, len);
            p += len;
            i += len;
        } else {
            std::memcpy(p, "\xEF\xBF\xBD", 3);  // U+FFFD
            p += 3;
            i += kPerByte ? 1 : maximal_subpart(s, n, i);
        }
        return p;
    }
    static constexpr char hex[] = "0123456789abcdef";
    const char e = kEscape[c];
    *p++ = '\\';
    *p++ = e;
    if (e == 'u') {
        *p++ = '0';
        *p++ = '0';
        *p++ = hex[c >> 4];
        *p++ = hex[c & 15];
    }
    ++i;
    return p;
}

}  // namespace

void JsonOut::escaped(std::string_view sv) {
    const auto* s = reinterpret_cast<const unsigned char*>(sv.data());
    const std::size_t n = sv.size();
    for (std::size_t i = 0; i < n;) {
        room(n - i + 6);
        p_ = escape_into<true>(p_, s, n, i);
    }
}

void JsonOut::escaped_like_dump(std::string_view sv) {
    const auto* s = reinterpret_cast<const unsigned char*>(sv.data());
    const std::size_t n = sv.size();
    for (std::size_t i = 0; i < n;) {
        room(n - i + 6);
        p_ = escape_into<false>(p_, s, n, i);
    }
}

}  // namespace feed
