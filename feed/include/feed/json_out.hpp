// JSON text written straight into the tail of a std::string the caller reuses: room is made
// once per piece (one compare), then bytes are stored through a pointer, with no capacity check
// or call per character. Strings are escaped as JSON requires and checked as UTF-8, with a fast
// path for runs of plain ASCII (eight bytes at a time), so any bytes a guest gives make valid
// JSON: control characters as \u00XX (or \n, \t, ...), invalid UTF-8 as U+FFFD.
//
// The string holds scratch space past what was written while a JsonOut is alive: nothing else
// may touch it until the JsonOut is gone (its destructor trims the string to what was written).
#pragma once

#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace feed {

class JsonOut {
  public:
    /// Writes after what `s` holds; `hint`: the bytes likely needed, made room for up front.
    JsonOut(std::string& s, std::size_t hint);
    ~JsonOut() { s_.resize(static_cast<std::size_t>(p_ - s_.data())); }
    JsonOut(const JsonOut&) = delete;
    JsonOut& operator=(const JsonOut&) = delete;

    /// Makes sure `n` more bytes can be written without another check.
    void room(std::size_t n) {
        if (static_cast<std::size_t>(end_ - p_) < n) grow(n);
    }
    void put(char c) {
        room(1);
        *p_++ = c;
    }
    /// Bytes as they are (ours: keys, punctuation, text known to be plain).
    void put(std::string_view s) {
        room(s.size());
        put_unchecked(s);
    }
    void put_unchecked(char c) { *p_++ = c; }
    void put_unchecked(std::string_view s) {
        std::memcpy(p_, s.data(), s.size());
        p_ += s.size();
    }
    void i64(std::int64_t v) {
        room(20);
        p_ = std::to_chars(p_, p_ + 20, v).ptr;
    }
    void u64(std::uint64_t v) {
        room(20);
        p_ = std::to_chars(p_, p_ + 20, v).ptr;
    }

    /// `s` as JSON string contents (no quotes): one U+FFFD per invalid byte.
    void escaped(std::string_view s);
    /// As nlohmann's dump with error_handler_t::replace: one U+FFFD per maximal invalid
    /// subpart (a cut-short sequence is one, not one a byte).
    void escaped_like_dump(std::string_view s);
    /// The same with the quotes.
    void quoted(std::string_view s) {
        put('"');
        escaped(s);
        put('"');
    }
    void quoted_like_dump(std::string_view s) {
        put('"');
        escaped_like_dump(s);
        put('"');
    }

  private:
    void grow(std::size_t n);
    std::string& s_;
    char* p_;
    char* end_;
};

}  // namespace feed
