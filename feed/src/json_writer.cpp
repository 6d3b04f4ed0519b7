#include "feed/json_writer.hpp"

#include <charconv>

#include "feed/json_out.hpp"

namespace feed {

void append_escaped(std::string& out, std::string_view s) {
    JsonOut o(out, s.size() + 16);
    o.escaped(s);
}

void append_escaped_like_dump(std::string& out, std::string_view s) {
    JsonOut o(out, s.size() + 16);
    o.escaped_like_dump(s);
}

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
