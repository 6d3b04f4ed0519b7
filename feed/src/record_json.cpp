#include "feed/record_json.hpp"

#include <charconv>

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

void key(JsonOut& out, const Node& member) {
    if (member.key_id != Key::None) {
        out.put(quoted_key_name(member.key_id));  // the dictionary's: plain, escaped already
        return;
    }
    out.quoted_like_dump(member.key);
    out.put(':');
}

void append_json(JsonOut& out, const View& v, std::uint32_t i) {
    const Node& n = v[i];
    switch (n.type) {
        case Type::Null:
            out.put("null");
            return;
        case Type::False:
            out.put("false");
            return;
        case Type::True:
            out.put("true");
            return;
        case Type::Int:
            out.i64(n.num.i);
            return;
        case Type::Uint:
            out.u64(n.num.u);
            return;
        case Type::Double:
            // nlohmann's shortest round-trip form ("1.0", "1e+100"); rare in events.
            out.put(nlohmann::json(n.num.d).dump());
            return;
        case Type::String:
            out.quoted_like_dump(n.str);
            return;
        case Type::Array:
        case Type::Object: {
            const bool obj = n.type == Type::Object;
            out.put(obj ? '{' : '[');
            for (std::uint32_t c = i + 1; c < n.end; c = v[c].end) {
                if (c != i + 1) out.put(',');
                if (obj) key(out, v[c]);
                append_json(out, v, c);
            }
            out.put(obj ? '}' : ']');
            return;
        }
    }
}

void append_json(std::string& out, const View& v, std::uint32_t i) {
    JsonOut o(out, 256);
    append_json(o, v, i);
}

}  // namespace feed::record
