// A decoded record (or any node of it) written back as JSON text, byte for byte what
// nlohmann's dump(-1, ' ', false, error_handler_t::replace) gives for the same document.
#pragma once

#include <cstdint>
#include <string>

#include "feed/json_out.hpp"
#include "feed/record.hpp"

namespace feed::record {

void append_json(JsonOut& out, const View& v, std::uint32_t i);
/// An object member's key as JSON writes it, quotes and colon included (as nlohmann dumps it).
void key(JsonOut& out, const Node& member);
void append_json(std::string& out, const View& v, std::uint32_t i);

/// Appends a number the way JsonWriter and nlohmann write integers.
void append_int(std::string& out, std::int64_t v);
void append_uint(std::string& out, std::uint64_t v);

}  // namespace feed::record
