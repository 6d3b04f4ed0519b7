#include "feed/record.hpp"

#include <array>
#include <cmath>
#include <cstring>
#include <limits>

namespace feed::record {
using json = nlohmann::json;

namespace {

enum Tag : unsigned char { TNull, TFalse, TTrue, TInt, TUint, TDouble, TString, TArray, TObject };

constexpr std::array<std::string_view, static_cast<std::size_t>(Key::Count)> kNames = {
    "",
#define VMI_RECORD_KEY(id, text) text,
#include "feed/record_keys.inc"
#undef VMI_RECORD_KEY
};

// Each dictionary key as JSON writes it before a value: "\"pid\":" (plain ASCII all).
constexpr std::array<std::string_view, static_cast<std::size_t>(Key::Count)> kQuotedNames = {
    "",
#define VMI_RECORD_KEY(id, text) "\"" text "\":",
#include "feed/record_keys.inc"
#undef VMI_RECORD_KEY
};

// Key text -> id: a small open-addressed table, built once (publish looks up every key).
class KeyTable {
  public:
    KeyTable() {
        for (std::size_t k = 1; k < kNames.size(); ++k) {
            std::size_t h = hash(kNames[k]) & (kSlots - 1);
            while (slots_[h] != 0) h = (h + 1) & (kSlots - 1);
            slots_[h] = static_cast<std::uint16_t>(k);
        }
    }
    [[nodiscard]] std::uint16_t find(std::string_view k) const noexcept {
        for (std::size_t h = hash(k) & (kSlots - 1);; h = (h + 1) & (kSlots - 1)) {
            const std::uint16_t id = slots_[h];
            if (id == 0) return 0;
            if (kNames[id] == k) return id;
        }
    }

  private:
    static constexpr std::size_t kSlots = 512;  // > 4x the dictionary: short probes
    static std::size_t hash(std::string_view s) noexcept {
        std::uint32_t h = 2166136261u;
        for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 16777619u;
        return h ^ (h >> 15);
    }
    std::array<std::uint16_t, kSlots> slots_{};
};
static_assert(static_cast<std::size_t>(Key::Count) < 512 / 4);

const KeyTable& key_table() {
    static const KeyTable t;
    return t;
}

void put_varint(std::string& out, std::uint64_t v) {
    char buf[10];
    std::size_t n = 0;
    while (v >= 0x80) {
        buf[n++] = static_cast<char>((v & 0x7F) | 0x80);
        v >>= 7;
    }
    buf[n++] = static_cast<char>(v);
    out.append(buf, n);
}

void put_bytes(std::string& out, std::string_view s) {
    put_varint(out, s.size());
    out.append(s);
}

void put_value(std::string& out, const json& v) {
    switch (v.type()) {
        case json::value_t::boolean:
            out += static_cast<char>(v.get<bool>() ? TTrue : TFalse);
            return;
        case json::value_t::number_integer: {
            const auto i = v.get<std::int64_t>();
            out += static_cast<char>(TInt);
            put_varint(out,
                       (static_cast<std::uint64_t>(i) << 1) ^ static_cast<std::uint64_t>(i >> 63));
            return;
        }
        case json::value_t::number_unsigned:
            out += static_cast<char>(TUint);
            put_varint(out, v.get<std::uint64_t>());
            return;
        case json::value_t::number_float: {
            const double d = v.get<double>();
            std::uint64_t bits = 0;
            std::memcpy(&bits, &d, sizeof bits);
            out += static_cast<char>(TDouble);
            for (int k = 0; k < 8; ++k) out += static_cast<char>(bits >> (8 * k));
            return;
        }
        case json::value_t::string:
            out += static_cast<char>(TString);
            put_bytes(out, v.get_ref<const std::string&>());
            return;
        case json::value_t::array:
            out += static_cast<char>(TArray);
            put_varint(out, v.size());
            for (const auto& e : v) put_value(out, e);
            return;
        case json::value_t::object:
            out += static_cast<char>(TObject);
            put_varint(out, v.size());
            for (auto it = v.begin(); it != v.end(); ++it) {
                const std::uint16_t id = key_table().find(it.key());
                put_varint(out, id);
                if (id == 0) put_bytes(out, it.key());
                put_value(out, *it);
            }
            return;
        default:  // null, and binary values (never in events): null
            out += static_cast<char>(TNull);
            return;
    }
}

}  // namespace

// The bytes of a record being decoded: a cursor and the end, every read bounded by it.
struct Reader {
    const unsigned char* p;
    const unsigned char* end;

    [[nodiscard]] std::size_t left() const noexcept { return static_cast<std::size_t>(end - p); }

    bool varint(std::uint64_t& v) noexcept {
        if (p < end && *p < 0x80) {  // most: counts, lengths, key ids, small numbers
            v = *p++;
            return true;
        }
        return varint_long(v);
    }

    bool varint_long(std::uint64_t& v) noexcept {
        v = 0;
        for (unsigned shift = 0; shift < 64; shift += 7) {
            if (p == end) return false;
            const unsigned char b = *p++;
            if (shift == 63 && b > 1) return false;  // past 64 bits
            v |= static_cast<std::uint64_t>(b & 0x7F) << shift;
            if (!(b & 0x80)) return true;
        }
        return false;
    }

    bool bytes(std::string_view& s) noexcept {
        std::uint64_t n = 0;
        if (!varint(n) || n > left()) return false;
        s = std::string_view(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
        p += n;
        return true;
    }
};

std::string_view key_name(Key k) noexcept {
    const auto i = static_cast<std::size_t>(k);
    return i < kNames.size() ? kNames[i] : std::string_view();
}

std::string_view quoted_key_name(Key k) noexcept {
    const auto i = static_cast<std::size_t>(k);
    return i < kQuotedNames.size() ? kQuotedNames[i] : std::string_view();
}

void encode(const json& event, std::string& out) {
    out += static_cast<char>(kMagic);
    out += static_cast<char>(kVersion);
    put_value(out, event);
}

std::string encode(const json& event) {
    std::string out;
    out.reserve(512);
    encode(event, out);
    return out;
}

bool View::fail(const char* what) {
    nodes_.clear();
    error_ = std::string("record: ") + what;
    return false;
}

bool View::fail(const char* before, std::uint64_t n, const char* after) {
    nodes_.clear();
    error_ = std::string("record: ") + before + std::to_string(n) + after;
    return false;
}

bool View::decode(std::string_view payload) {
    nodes_.clear();
    error_.clear();
    if (payload.size() < 2 || static_cast<unsigned char>(payload[0]) != kMagic)
        return fail("not a record");
    if (static_cast<unsigned char>(payload[1]) != kVersion)
        return fail("version ", static_cast<unsigned char>(payload[1]), " unknown");
    const auto* data = reinterpret_cast<const unsigned char*>(payload.data());
    Reader in{data + 2, data + payload.size()};
    if (!value(in, 0, Key::None, {})) return false;
    if (in.left()) return fail("", in.left(), " bytes after the event");
    return true;
}

// A value that is not a container, its tag already read, into `n`.
inline bool View::scalar(Reader& in, unsigned char tag, Node& n) {
    std::uint64_t v = 0;
    switch (tag) {
        case TNull:
            n.type = Type::Null;
            return true;
        case TFalse:
            n.type = Type::False;
            return true;
        case TTrue:
            n.type = Type::True;
            return true;
        case TInt:
            if (!in.varint(v)) return fail("bad integer");
            n.type = Type::Int;
            n.num.i = static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1);
            return true;
        case TUint:
            if (!in.varint(v)) return fail("bad integer");
            n.type = Type::Uint;
            n.num.u = v;
            return true;
        case TDouble:
            if (in.left() < 8) return fail("cut short");
            for (int k = 7; k >= 0; --k) v = (v << 8) | in.p[k];
            in.p += 8;
            n.type = Type::Double;
            std::memcpy(&n.num.d, &v, sizeof v);
            if (!std::isfinite(n.num.d)) return fail("a number that is not finite");
            return true;
        case TString:
            if (!in.bytes(n.str)) return fail("bad string length");
            n.type = Type::String;
            return true;
        default:
            return fail("tag ", tag, " unknown");
    }
}

bool View::value(Reader& in, std::size_t depth, Key key_id, std::string_view key) {
    if (depth > kMaxDepth) return fail("nested deeper than ", kMaxDepth);
    if (nodes_.size() >= kMaxNodes) return fail("more than ", kMaxNodes, " values");
    if (in.p == in.end) return fail("cut short");
    const unsigned char tag = *in.p++;
    const auto at = static_cast<std::uint32_t>(nodes_.size());
    Node& n = nodes_.emplace_back();
    n.key_id = key_id;
    n.key = key;
    if (tag != TArray && tag != TObject) {
        if (!scalar(in, tag, n)) return false;
        n.end = at + 1;
        return true;
    }
    // Each element takes at least a byte (an object member two): a count past what is left
    // is corrupt, found before any work.
    std::uint64_t count = 0;
    if (!in.varint(count) || count > in.left()) return fail("bad count");
    n.type = tag == TArray ? Type::Array : Type::Object;
    n.count = static_cast<std::uint32_t>(count);
    for (std::uint64_t k = 0; k < count; ++k) {
        Key id = Key::None;
        std::string_view name;
        if (tag == TObject) {
            std::uint64_t kid = 0;
            if (!in.varint(kid)) return fail("bad key");
            if (kid == 0) {
                if (!in.bytes(name)) return fail("bad key length");
            } else if (kid < kNames.size()) {
                id = static_cast<Key>(kid);
                name = kNames[kid];
            } else {
                return fail("key id ", kid, " unknown");
            }
        }
        // Scalars (most members) here, without a call; containers and every case that fails
        // a check (reported by value(), in its order) go down a level.
        if (depth < kMaxDepth && nodes_.size() < kMaxNodes && in.p != in.end && *in.p != TArray &&
            *in.p != TObject) {
            const unsigned char t = *in.p++;
            const auto c = static_cast<std::uint32_t>(nodes_.size());
            Node& e = nodes_.emplace_back();
            e.key_id = id;
            e.key = name;
            if (!scalar(in, t, e)) return false;
            e.end = c + 1;
        } else if (!value(in, depth + 1, id, name)) {
            return false;
        }
    }
    nodes_[at].end = static_cast<std::uint32_t>(nodes_.size());  // `n` may have moved
    return true;
}

std::uint32_t View::find(std::uint32_t obj, Key k) const noexcept {
    if (!is(obj, Type::Object)) return npos;
    for (std::uint32_t i = obj + 1, end = nodes_[obj].end; i < end; i = nodes_[i].end)
        if (nodes_[i].key_id == k) return i;
    return npos;
}

std::uint32_t View::find(std::uint32_t obj, std::string_view k) const noexcept {
    if (!is(obj, Type::Object)) return npos;
    for (std::uint32_t i = obj + 1, end = nodes_[obj].end; i < end; i = nodes_[i].end)
        if (nodes_[i].key == k) return i;
    return npos;
}

bool View::is_number(std::uint32_t i) const noexcept {
    if (i == npos) return false;
    const Type t = nodes_[i].type;
    return t == Type::Int || t == Type::Uint || t == Type::Double;
}

namespace {
template <class T>
T from_double(double d) {
    // nlohmann casts; a cast out of range is undefined, so clamp first.
    if (!(d >= static_cast<double>(std::numeric_limits<T>::min())))
        return std::numeric_limits<T>::min();
    if (d >= static_cast<double>(std::numeric_limits<T>::max()))
        return std::numeric_limits<T>::max();
    return static_cast<T>(d);
}
}  // namespace

std::int64_t View::as_i64(std::uint32_t i) const noexcept {
    if (i == npos) return 0;
    const Node& n = nodes_[i];
    if (n.type == Type::Int) return n.num.i;
    if (n.type == Type::Uint) return static_cast<std::int64_t>(n.num.u);
    if (n.type == Type::Double) return from_double<std::int64_t>(n.num.d);
    return 0;
}

std::uint64_t View::as_u64(std::uint32_t i) const noexcept {
    if (i == npos) return 0;
    const Node& n = nodes_[i];
    if (n.type == Type::Int) return static_cast<std::uint64_t>(n.num.i);
    if (n.type == Type::Uint) return n.num.u;
    if (n.type == Type::Double) return from_double<std::uint64_t>(n.num.d);
    return 0;
}

json View::to_json(std::uint32_t i) const {
    if (i >= nodes_.size()) return nullptr;
    const Node& n = nodes_[i];
    switch (n.type) {
        case Type::Null:
            return nullptr;
        case Type::False:
            return false;
        case Type::True:
            return true;
        case Type::Int:
            return n.num.i;
        case Type::Uint:
            return n.num.u;
        case Type::Double:
            return n.num.d;
        case Type::String:
            return std::string(n.str);
        case Type::Array: {
            json a = json::array();
            for (std::uint32_t c = i + 1; c < n.end; c = nodes_[c].end) a.push_back(to_json(c));
            return a;
        }
        case Type::Object: {
            json o = json::object();
            for (std::uint32_t c = i + 1; c < n.end; c = nodes_[c].end)
                o[std::string(nodes_[c].key)] = to_json(c);
            return o;
        }
    }
    return nullptr;
}

}  // namespace feed::record
