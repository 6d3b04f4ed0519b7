#include "feed/json_writer.hpp"

#include <array>
#include <charconv>
#include <cstring>

namespace feed {

namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 if it is not one.
std::size_t utf8_len(std::string_view s, std::size_t i) {
    const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = b(i);
    const auto cont = [&](std::size_t k) { return k < s.size() && (b(k) & 0xC0) == 0x80; };
    if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (!cont(i + 1) || !cont(i + 2)) return 0;
        if (c == 0xE0 && b(i + 1) < 0xA0) return 0;  // overlong
        if (c == 0xED && b(i + 1) > 0x9F) return 0;  // surrogates
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
        if (c == 0xF0 && b(i + 1) < 0x90) return 0;
        if (c == 0xF4 && b(i + 1) > 0x8F) return 0;
        return 4;
    }
    return 0;
}

}  // namespace

namespace {

// Bytes written as they are: printable ASCII but '"' and '\\'. A table: the hot loop is a
// load and a test per byte.
constexpr std::array<bool, 256> kPlain = [] {
    std::array<bool, 256> t{};
    for (int c = 0x20; c < 0x80; ++c) t[static_cast<std::size_t>(c)] = c != '"' && c != '\\';
    return t;
}();

// How many bytes one U+FFFD stands for, nlohmann's way: the longest start of a valid sequence
// (at least the byte itself), so the byte that broke it is looked at again.
std::size_t maximal_subpart(std::string_view s, std::size_t i) {
    const auto c = static_cast<unsigned char>(s[i]);
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
    for (; k <= need && i + k < s.size(); ++k) {
        const auto b = static_cast<unsigned char>(s[i + k]);
        if (b < lo || b > hi) break;
        lo = 0x80;
        hi = 0xBF;
    }
    return k;
}

// Where the run of plain bytes from i ends: eight at a time while none needs care.
std::size_t plain_run(const unsigned char* p, std::size_t i, std::size_t n) {
    constexpr std::uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    const auto has_zero = [&](std::uint64_t v) { return (v - ones) & ~v & highs; };
    for (; i + 8 <= n; i += 8) {
        std::uint64_t w = 0;
        std::memcpy(&w, p + i, 8);
        // A byte >= 0x80, < 0x20, '"' or '\\' somewhere in these eight: look at each.
        const std::uint64_t special = (w & highs) | ((w - 0x2020202020202020ULL) & ~w & highs) |
                                      has_zero(w ^ (ones * '"')) | has_zero(w ^ (ones * '\\'));
        if (special) break;
    }
    while (i < n && kPlain[p[i]]) ++i;
    return i;
}

template <bool kPerByte>
void escape(std::string& out, std::string_view s) {
    static const char* hex = "0123456789abcdef";
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const std::size_t n = s.size();
    std::size_t i = 0;
    while (i < n) {
        // Runs of plain ASCII in one go (the whole string, for most names and paths).
        std::size_t j = plain_run(p, i, n);
        out.append(s.data() + i, j - i);
        i = j;
        if (i >= n) break;
        const unsigned char c = p[i];
        if (c >= 0x80) {
            if (const std::size_t len = utf8_len(s, i)) {
                out.append(s.data() + i, len);
                i += len;
            } else {
                out += "\xEF\xBF\xBD";  // U+FFFD
                i += kPerByte ? 1 : maximal_subpart(s, i);
            }
            continue;
        }
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            default: {
                const char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                out.append(u, 6);
            }
        }
        ++i;
    }
}

}  // namespace

void append_escaped(std::string& out, std::string_view s) { escape<true>(out, s); }

void append_escaped_like_dump(std::string& out, std::string_view s) { escape<false>(out, s); }

void JsonWriter::comma() {
    if (after_key_) {
        after_key_ = false;
        return;
    }
    if (!first_.empty()) {
        if (!first_.back()) out_ += ',';
        first_.back() = false;
    }
}

JsonWriter& JsonWriter::begin_object() {
    comma();
    out_ += '{';
    first_.push_back(true);
    return *this;
}
JsonWriter& JsonWriter::end_object() {
    out_ += '}';
    first_.pop_back();
    return *this;
}
JsonWriter& JsonWriter::begin_array() {
    comma();
    out_ += '[';
    first_.push_back(true);
    return *this;
}
JsonWriter& JsonWriter::end_array() {
    out_ += ']';
    first_.pop_back();
    return *this;
}
JsonWriter& JsonWriter::key(std::string_view k) {
    comma();
    out_ += '"';
    out_.append(k);
    out_ += "\":";
    after_key_ = true;
    return *this;
}
JsonWriter& JsonWriter::string(std::string_view s) {
    comma();
    out_ += '"';
    append_escaped(out_, s);
    out_ += '"';
    return *this;
}
JsonWriter& JsonWriter::number(std::int64_t v) {
    comma();
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out_.append(buf, static_cast<std::size_t>(r.ptr - buf));
    return *this;
}
JsonWriter& JsonWriter::unumber(std::uint64_t v) {
    comma();
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out_.append(buf, static_cast<std::size_t>(r.ptr - buf));
    return *this;
}
JsonWriter& JsonWriter::boolean(bool v) {
    comma();
    out_ += v ? "true" : "false";
    return *this;
}
JsonWriter& JsonWriter::value(const nlohmann::json& v) {
    comma();
    out_ += v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return *this;
}

}  // namespace feed
