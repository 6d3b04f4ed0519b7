// Writes JSON text straight into a string: no document in between. Strings are escaped as JSON
// requires and checked as UTF-8; each invalid byte becomes U+FFFD, so any bytes a guest put in
// a name or a path give valid JSON.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace feed {

class JsonWriter {
  public:
    explicit JsonWriter(std::string& out) : out_(out) {}
    JsonWriter& begin_object();
    JsonWriter& end_object();
    JsonWriter& begin_array();
    JsonWriter& end_array();
    JsonWriter& key(std::string_view k);  // keys are ours: plain ASCII, not escaped
    JsonWriter& string(std::string_view s);
    JsonWriter& number(std::int64_t v);
    JsonWriter& unumber(std::uint64_t v);
    JsonWriter& boolean(bool v);
    JsonWriter& value(const nlohmann::json& v);  // a document subtree, as it is

  private:
    void comma();
    std::string& out_;
    std::vector<bool> first_;  // per open object/array: nothing written in it yet
    bool after_key_ = false;
};

/// Appends `s` to `out` as JSON string contents (no quotes): one U+FFFD per invalid byte.
void append_escaped(std::string& out, std::string_view s);
/// The same as nlohmann's dump with error_handler_t::replace (subtrees passed through as they
/// are): one U+FFFD per maximal invalid subpart (a cut-short sequence is one, not one a byte).
void append_escaped_like_dump(std::string& out, std::string_view s);

}  // namespace feed
