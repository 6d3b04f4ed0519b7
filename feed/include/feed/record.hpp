// The spool's event record: a native event (nlohmann::json) as a compact, versioned binary
// tree, and a bounded decoder that turns one back into a flat view without parsing JSON.
//
// Layout (version 1): magic 0xB7, version 0x01, then one value. A value is a tag byte and its
// body: null, false, true; int (zigzag varint); uint (varint); double (8 bytes LE); string
// (varint length, bytes as given); array (varint count, values); object (varint count, then
// per member a key and a value). A key is a varint: 0 then a literal (varint length, bytes),
// or k > 0 for the k-th name of the version's fixed dictionary of well-known keys. Members
// keep nlohmann's (sorted) order, so a record dumps back to the same text.
//
// Spool data is untrusted after a crash: decode() checks every length, count, tag and key
// against what is left of the payload, limits depth and size, and says what was wrong.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace feed::record {

inline constexpr unsigned char kMagic = 0xB7;  // never '{': older spools hold JSON text
inline constexpr unsigned char kVersion = 1;
inline constexpr std::size_t kMaxDepth = 64;
inline constexpr std::size_t kMaxNodes = 1U << 16;

enum class Type : std::uint8_t { Null, False, True, Int, Uint, Double, String, Array, Object };

/// Well-known keys (version 1's dictionary): ids for lookups without string compares.
enum class Key : std::uint16_t {
    None = 0,  // a literal key, or no key (array element, root)
#define VMI_RECORD_KEY(id, text) id,
#include "feed/record_keys.inc"
#undef VMI_RECORD_KEY
    Count
};

/// True when `payload` is a binary record (else: legacy JSON text, or garbage).
inline bool is_record(std::string_view payload) {
    return !payload.empty() && static_cast<unsigned char>(payload[0]) == kMagic;
}

/// Appends `event` as a record to `out`.
void encode(const nlohmann::json& event, std::string& out);
std::string encode(const nlohmann::json& event);

struct Node {
    Type type = Type::Null;
    Key key_id = Key::None;
    std::uint32_t end = 0;    // index one past this node's subtree
    std::uint32_t count = 0;  // array / object: children
    std::string_view key;     // the member's name (also for dictionary keys)
    std::string_view str;     // String: the bytes as the guest gave them
    union {
        std::int64_t i;
        std::uint64_t u;
        double d;
    } num{0};
};

struct Reader;  // record.cpp: the bytes being decoded

/// A decoded record: nodes in document order (a container's children follow it). Views point
/// into the payload, which must outlive it. Reusable: decode() keeps its capacity.
class View {
  public:
    static constexpr std::uint32_t npos = 0xFFFFFFFF;

    /// Decodes `payload`; on failure returns false, sets error() and leaves an empty view.
    bool decode(std::string_view payload);
    [[nodiscard]] const std::string& error() const noexcept { return error_; }

    [[nodiscard]] bool empty() const noexcept { return nodes_.empty(); }
    [[nodiscard]] const Node& operator[](std::uint32_t i) const { return nodes_[i]; }
    [[nodiscard]] std::uint32_t size() const noexcept {
        return static_cast<std::uint32_t>(nodes_.size());
    }
    /// The member `k` of object node `obj` (npos if `obj` is npos, not an object, or has none).
    [[nodiscard]] std::uint32_t find(std::uint32_t obj, Key k) const noexcept;
    [[nodiscard]] std::uint32_t find(std::uint32_t obj, std::string_view k) const noexcept;
    /// Type tests that accept npos (absent).
    [[nodiscard]] bool is(std::uint32_t i, Type t) const noexcept {
        return i != npos && nodes_[i].type == t;
    }
    [[nodiscard]] bool is_number(std::uint32_t i) const noexcept;
    /// A number as nlohmann's get<int64_t>() / get<uint64_t>() would give it.
    [[nodiscard]] std::int64_t as_i64(std::uint32_t i) const noexcept;
    [[nodiscard]] std::uint64_t as_u64(std::uint32_t i) const noexcept;
    /// The string at i, or nullptr if absent or not a string.
    [[nodiscard]] const std::string_view* str(std::uint32_t i) const noexcept {
        return is(i, Type::String) ? &nodes_[i].str : nullptr;
    }

    /// The subtree at i as a document (rare event kinds, OCSF, Falco).
    [[nodiscard]] nlohmann::json to_json(std::uint32_t i = 0) const;

  private:
    bool value(Reader& in, std::size_t depth, Key key_id, std::string_view key);
    bool scalar(Reader& in, unsigned char tag, Node& n);
    // Out of line and cold: the decoder's hot path keeps no message building.
    [[gnu::cold, gnu::noinline]] bool fail(const char* what);
    [[gnu::cold, gnu::noinline]] bool fail(const char* before, std::uint64_t n,
                                           const char* after = "");
    std::vector<Node> nodes_;
    std::string error_;
};

/// The name of a dictionary key.
std::string_view key_name(Key k) noexcept;
/// The same quoted, with the colon after it: "\"pid\":", as JSON writes the key (empty for
/// Key::None).
std::string_view quoted_key_name(Key k) noexcept;

}  // namespace feed::record
