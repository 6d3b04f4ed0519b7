#include "feed/record_json.hpp"

#include <charconv>

#include "feed/json_writer.hpp"

namespace feed::record {

void append_int(std::string& out, std::int64_t v) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, static_cast<std::size_t>(r.ptr - buf));
}

void append_uint(std::string& out, std::uint64_t v) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, static_cast<std::size_t>(r.ptr - buf));
}

void append_json(std::string& out, const View& v, std::uint32_t i) {
    const Node& n = v[i];
    switch (n.type) {
        case Type::Null:
            out += "null";
            return;
        case Type::False:
            out += "false";
            return;
        case Type::True:
            out += "true";
            return;
        case Type::Int:
            append_int(out, n.num.i);
            return;
        case Type::Uint:
            append_uint(out, n.num.u);
            return;
        case Type::Double:
            // nlohmann's shortest round-trip form ("1.0", "1e+100"); rare in events.
            out += nlohmann::json(n.num.d).dump();
            return;
        case Type::String:
            out += '"';
            append_escaped_like_dump(out, n.str);
            out += '"';
            return;
        case Type::Array:
        case Type::Object: {
            const bool obj = n.type == Type::Object;
            out += obj ? '{' : '[';
            for (std::uint32_t c = i + 1; c < n.end; c = v[c].end) {
                if (c != i + 1) out += ',';
                if (obj) {
                    out += '"';
                    append_escaped_like_dump(out, v[c].key);
                    out += "\":";
                }
                append_json(out, v, c);
            }
            out += obj ? '}' : ']';
            return;
        }
    }
}

}  // namespace feed::record
