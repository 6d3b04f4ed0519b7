#include "vmi/isf_profile.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "vmi/kernel_discovery.hpp"

namespace vmi {

namespace {

using json = nlohmann::json;

// Anonymous nesting in task_struct is 2-3 levels deep; the same bounds as the BTF lookup.
constexpr int kMaxNesting = 16;
constexpr std::uint32_t kMaxMemberVisits = 1U << 20;
constexpr std::uint64_t kMaxBaseSize = 64;  // bytes of one base type (long double is 16)

// A validated type descriptor; `sub` indexes the descriptor pool (-1 = none).
struct Desc {
    enum class Kind : std::uint8_t {
        kPointer,
        kBase,
        kArray,
        kStruct,
        kEnum,
        kFunction,
        kBitfield
    };
    Kind kind = Kind::kBase;
    std::string name;         // base, struct/union/class, enum
    std::uint64_t count = 0;  // array
    std::int64_t sub = -1;    // pointer/array subtype, bitfield type
};

struct Field {
    std::string name;
    std::uint64_t offset = 0;
    std::size_t desc = 0;
    bool anonymous = false;
};

struct UserType {
    std::uint64_t size = 0;
    std::vector<Field> fields;
};

// "$.a.b" error text: the JSON path first, then what is wrong there.
Error bad(std::string_view path, const std::string& what) {
    return Error{Fault::kInvalidFormat, std::string(path) + ": " + what};
}

std::string type_name(const json& j) { return j.type_name(); }

// Deepest nesting of arrays/objects in `text`, outside strings; stops early past `limit`.
// nlohmann's parser and destructor recurse, so depth is checked before parsing.
std::optional<std::size_t> too_deep(std::string_view text, std::size_t limit) {
    std::size_t depth = 0;
    bool in_str = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_str) {
            if (c == '\\') {
                ++i;
            } else if (c == '"') {
                in_str = false;
            }
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            if (++depth > limit) return i;
        } else if ((c == '}' || c == ']') && depth > 0) {
            --depth;
        }
    }
    return std::nullopt;
}

}  // namespace

namespace detail {

struct IsfData {
    std::uint64_t hash = 0;
    std::vector<Desc> descs;
    std::unordered_map<std::string, std::uint64_t> base_sizes;
    std::unordered_map<std::string, std::uint64_t> enum_sizes;
    std::unordered_map<std::string, UserType> user_types;
    std::unordered_map<std::string, std::uint64_t> symbols;

    Result<std::uint64_t> size_of(std::size_t desc, int depth) const;
    Result<MemberInfo> find(const UserType& t, std::string_view name, int depth,
                            std::vector<const UserType*>& stack, std::uint32_t& visits) const;
};

}  // namespace detail

namespace {

class Validator {
  public:
    explicit Validator(detail::IsfData& d) : d_(d) {}

    Result<const json*> object_at(const json& parent, const char* key, const std::string& path) {
        const std::string p = path + "." + key;
        auto it = parent.find(key);
        if (it == parent.end()) return bad(path, std::string("missing \"") + key + "\"");
        if (!it->is_object()) return bad(p, "expected an object, got " + type_name(*it));
        return &*it;
    }

    Result<std::uint64_t> unsigned_at(const json& parent, const char* key, const std::string& path,
                                      std::uint64_t max) {
        auto it = parent.find(key);
        if (it == parent.end()) return bad(path, std::string("missing \"") + key + "\"");
        const std::string p = path + "." + key;
        if (!it->is_number_integer() || it->is_number_float()) {
            return bad(p, "expected an unsigned integer, got " +
                              (it->is_number_float() ? std::string("a non-integer number")
                                                     : type_name(*it)));
        }
        if (!it->is_number_unsigned()) return bad(p, "negative value");
        const auto v = it->get<std::uint64_t>();
        if (v > max) {
            return Error{Fault::kLimitExceeded,
                         p + ": " + std::to_string(v) + " exceeds " + std::to_string(max)};
        }
        return v;
    }

    Result<std::string> string_at(const json& parent, const char* key, const std::string& path) {
        auto it = parent.find(key);
        if (it == parent.end()) return bad(path, std::string("missing \"") + key + "\"");
        if (!it->is_string()) {
            return bad(path + "." + key, "expected a string, got " + type_name(*it));
        }
        return it->get<std::string>();
    }

    // Validates a type descriptor and adds it to the pool; returns its index.
    Result<std::size_t> desc(const json& j, const std::string& path, std::size_t depth) {
        if (depth > kMaxIsfNesting) return Error{Fault::kLimitExceeded, path + ": nested too deep"};
        if (!j.is_object())
            return bad(path, "expected a type descriptor object, got " + type_name(j));
        auto kind = string_at(j, "kind", path);
        if (!kind) return std::move(kind).error();
        Desc d;
        const std::string& k = *kind;
        if (k == "pointer" || k == "array") {
            d.kind = k == "pointer" ? Desc::Kind::kPointer : Desc::Kind::kArray;
            auto it = j.find("subtype");
            if (it == j.end()) return bad(path, "missing \"subtype\"");
            auto sub = desc(*it, path + ".subtype", depth + 1);
            if (!sub) return std::move(sub).error();
            d.sub = static_cast<std::int64_t>(*sub);
            if (k == "array") {
                auto n = unsigned_at(j, "count", path, kMaxIsfTypeSize);
                if (!n) return std::move(n).error();
                d.count = *n;
            }
        } else if (k == "base" || k == "struct" || k == "union" || k == "class" || k == "enum") {
            d.kind = k == "base"   ? Desc::Kind::kBase
                     : k == "enum" ? Desc::Kind::kEnum
                                   : Desc::Kind::kStruct;
            auto n = string_at(j, "name", path);
            if (!n) return std::move(n).error();
            d.name = std::move(*n);
        } else if (k == "function") {
            d.kind = Desc::Kind::kFunction;
        } else if (k == "bitfield") {
            d.kind = Desc::Kind::kBitfield;
            auto pos = unsigned_at(j, "bit_position", path, 64 * 8);
            if (!pos) return std::move(pos).error();
            auto len = unsigned_at(j, "bit_length", path, 64 * 8);
            if (!len) return std::move(len).error();
            auto it = j.find("type");
            if (it == j.end()) return bad(path, "missing \"type\"");
            auto sub = desc(*it, path + ".type", depth + 1);
            if (!sub) return std::move(sub).error();
            const Desc::Kind sk = d_.descs[*sub].kind;
            if (sk != Desc::Kind::kBase && sk != Desc::Kind::kEnum) {
                return bad(path + ".type", "a bitfield's type must be base or enum");
            }
            d.sub = static_cast<std::int64_t>(*sub);
        } else {
            return bad(path + ".kind", "unknown type kind \"" + k + "\"");
        }
        d_.descs.push_back(std::move(d));
        return d_.descs.size() - 1;
    }

    Status metadata(const json& root) {
        auto m = object_at(root, "metadata", "$");
        if (!m) return std::move(m).error();
        auto fmt = string_at(**m, "format", "$.metadata");
        if (!fmt) return std::move(fmt).error();
        // 6.x is the current schema; 4.x and 5.x describe types the same way.
        const std::string& f = *fmt;
        const std::size_t dot = f.find('.');
        const std::string major = f.substr(0, dot);
        if (dot == std::string::npos || (major != "4" && major != "5" && major != "6")) {
            return bad("$.metadata.format", "unsupported ISF format \"" + f + "\" (want 4.x-6.x)");
        }
        return {};
    }

    Status base_types(const json& root) {
        auto bt = object_at(root, "base_types", "$");
        if (!bt) return std::move(bt).error();
        for (const auto& [name, v] : (*bt)->items()) {
            const std::string p = "$.base_types." + name;
            if (!v.is_object()) return bad(p, "expected an object, got " + type_name(v));
            auto size = unsigned_at(v, "size", p, kMaxBaseSize);
            if (!size) return std::move(size).error();
            auto kind = string_at(v, "kind", p);
            if (!kind) return std::move(kind).error();
            if (*kind != "void" && *kind != "int" && *kind != "float" && *kind != "char" &&
                *kind != "bool") {
                return bad(p + ".kind", "unknown base kind \"" + *kind + "\"");
            }
            auto s = v.find("signed");
            if (s == v.end() || !s->is_boolean()) return bad(p, "\"signed\" must be a boolean");
            auto endian = string_at(v, "endian", p);
            if (!endian) return std::move(endian).error();
            if (*endian != "little" && *endian != "big") {
                return bad(p + ".endian", "must be \"little\" or \"big\"");
            }
            d_.base_sizes[name] = *size;
        }
        return {};
    }

    Status user_types(const json& root) {
        auto ut = object_at(root, "user_types", "$");
        if (!ut) return std::move(ut).error();
        for (const auto& [name, v] : (*ut)->items()) {
            const std::string p = "$.user_types." + name;
            if (!v.is_object()) return bad(p, "expected an object, got " + type_name(v));
            auto kind = string_at(v, "kind", p);
            if (!kind) return std::move(kind).error();
            if (*kind != "struct" && *kind != "union" && *kind != "class") {
                return bad(p + ".kind", "unknown user type kind \"" + *kind + "\"");
            }
            UserType t;
            auto size = unsigned_at(v, "size", p, kMaxIsfTypeSize);
            if (!size) return std::move(size).error();
            t.size = *size;
            auto fields = object_at(v, "fields", p);
            if (!fields) return std::move(fields).error();
            for (const auto& [fname, f] : (*fields)->items()) {
                const std::string fp = p + ".fields." + fname;
                if (!f.is_object()) return bad(fp, "expected an object, got " + type_name(f));
                Field fld;
                fld.name = fname;
                auto off = unsigned_at(f, "offset", fp, kMaxIsfTypeSize);
                if (!off) return std::move(off).error();
                if (*off > t.size) {
                    return bad(fp + ".offset", "offset " + std::to_string(*off) +
                                                   " past the struct's size " +
                                                   std::to_string(t.size));
                }
                fld.offset = *off;
                auto it = f.find("type");
                if (it == f.end()) return bad(fp, "missing \"type\"");
                auto d = desc(*it, fp + ".type", 0);
                if (!d) return std::move(d).error();
                fld.desc = *d;
                if (auto a = f.find("anonymous"); a != f.end()) {
                    if (!a->is_boolean()) return bad(fp + ".anonymous", "must be a boolean");
                    fld.anonymous = a->get<bool>();
                }
                t.fields.push_back(std::move(fld));
            }
            d_.user_types[name] = std::move(t);
        }
        return {};
    }

    Status enums(const json& root) {
        auto en = object_at(root, "enums", "$");
        if (!en) return std::move(en).error();
        for (const auto& [name, v] : (*en)->items()) {
            const std::string p = "$.enums." + name;
            if (!v.is_object()) return bad(p, "expected an object, got " + type_name(v));
            auto size = unsigned_at(v, "size", p, 8);
            if (!size) return std::move(size).error();
            auto base = string_at(v, "base", p);
            if (!base) return std::move(base).error();
            auto constants = object_at(v, "constants", p);
            if (!constants) return std::move(constants).error();
            for (const auto& [cname, c] : (*constants)->items()) {
                if (!c.is_number_integer()) {
                    return bad(p + ".constants." + cname,
                               "expected an integer, got " + type_name(c));
                }
            }
            d_.enum_sizes[name] = *size;
        }
        return {};
    }

    Status symbols(const json& root) {
        auto sy = object_at(root, "symbols", "$");
        if (!sy) return std::move(sy).error();
        for (const auto& [name, v] : (*sy)->items()) {
            const std::string p = "$.symbols." + name;
            if (!v.is_object()) return bad(p, "expected an object, got " + type_name(v));
            auto addr = unsigned_at(v, "address", p, std::numeric_limits<std::uint64_t>::max());
            if (!addr) return std::move(addr).error();
            if (auto t = v.find("type"); t != v.end()) {
                auto d = desc(*t, p + ".type", 0);
                if (!d) return std::move(d).error();
            }
            for (const char* key : {"linkage_name", "constant_data"}) {
                if (auto s = v.find(key); s != v.end() && !s->is_string()) {
                    return bad(p + "." + key, "expected a string, got " + type_name(*s));
                }
            }
            d_.symbols[name] = *addr;
        }
        return {};
    }

  private:
    detail::IsfData& d_;
};

}  // namespace

Result<std::uint64_t> detail::IsfData::size_of(std::size_t idx, int depth) const {
    if (depth > static_cast<int>(kMaxIsfNesting)) return Fault::kLimitExceeded;
    const Desc& d = descs[idx];
    auto named = [](const auto& map, const std::string& name,
                    const char* where) -> Result<std::uint64_t> {
        auto it = map.find(name);
        if (it == map.end()) return Error{Fault::kNotFound, std::string(where) + name};
        return it->second;
    };
    switch (d.kind) {
        case Desc::Kind::kPointer:
            return named(base_sizes, "pointer", "$.base_types.");
        case Desc::Kind::kBase:
            return named(base_sizes, d.name, "$.base_types.");
        case Desc::Kind::kEnum:
            return named(enum_sizes, d.name, "$.enums.");
        case Desc::Kind::kStruct: {
            auto it = user_types.find(d.name);
            if (it == user_types.end()) return Error{Fault::kNotFound, "$.user_types." + d.name};
            return it->second.size;
        }
        case Desc::Kind::kArray: {
            auto sub = size_of(static_cast<std::size_t>(d.sub), depth + 1);
            if (!sub) return sub;
            if (*sub != 0 && d.count > kMaxIsfTypeSize / *sub) {
                return Error{Fault::kLimitExceeded, "array of " + std::to_string(d.count) +
                                                        " elements of " + std::to_string(*sub) +
                                                        " bytes"};
            }
            return d.count * *sub;
        }
        case Desc::Kind::kFunction:
            return Error{Fault::kInvalidFormat, "a function type has no size"};
        case Desc::Kind::kBitfield:
            break;
    }
    return Error{Fault::kInvalidFormat, "is a bitfield"};
}

Result<MemberInfo> detail::IsfData::find(const UserType& t, std::string_view name, int depth,
                                         std::vector<const UserType*>& stack,
                                         std::uint32_t& visits) const {
    if (depth > kMaxNesting) return Fault::kLimitExceeded;
    if (std::find(stack.begin(), stack.end(), &t) != stack.end()) {
        return Error{Fault::kCycle, "a struct contains itself through anonymous members"};
    }
    stack.push_back(&t);
    for (const Field& f : t.fields) {
        if (++visits > kMaxMemberVisits) return Fault::kLimitExceeded;
        const Desc& d = descs[f.desc];
        if (!f.anonymous && f.name == name) {
            if (d.kind == Desc::Kind::kBitfield) {
                return Error{Fault::kInvalidFormat, std::string(name) + " is a bitfield"};
            }
            auto size = size_of(f.desc, 0);
            if (!size) {
                return Error{
                    size.fault() == Fault::kNotFound ? Fault::kInvalidFormat : size.fault(),
                    "cannot size " + std::string(name) + ": " + size.error().message()};
            }
            stack.pop_back();
            return MemberInfo{f.offset, *size};
        }
        if (f.anonymous && d.kind == Desc::Kind::kStruct) {
            auto it = user_types.find(d.name);
            if (it == user_types.end()) continue;
            auto r = find(it->second, name, depth + 1, stack, visits);
            if (r) {
                stack.pop_back();
                return MemberInfo{r->offset + f.offset, r->size};
            }
            if (r.fault() != Fault::kNotFound) return r;
        }
    }
    stack.pop_back();
    return Fault::kNotFound;
}

IsfProfile::IsfProfile(std::unique_ptr<detail::IsfData> d) : d_(std::move(d)) {}
IsfProfile::IsfProfile(IsfProfile&&) noexcept = default;
IsfProfile& IsfProfile::operator=(IsfProfile&&) noexcept = default;
IsfProfile::~IsfProfile() = default;

Result<IsfProfile> IsfProfile::from_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) return Error{Fault::kIo, "cannot open " + path + ": " + std::strerror(errno)};
    const std::streamoff size = in.tellg();
    if (size < 0) return Error{Fault::kIo, "cannot size " + path};
    if (static_cast<std::uint64_t>(size) > kMaxIsfFileSize) {
        return Error{Fault::kLimitExceeded,
                     path + " is larger than " + std::to_string(kMaxIsfFileSize >> 20) + " MiB"};
    }
    std::string text(static_cast<std::size_t>(size), '\0');
    in.seekg(0);
    if (!in.read(text.data(), size)) return Error{Fault::kIo, "cannot read " + path};
    return parse(text, path);
}

Result<IsfProfile> IsfProfile::parse(std::string_view text, std::string_view source_name) {
    auto fail = [&](Error e) {
        e.detail = std::string(source_name) + ": " + e.detail;
        return e;
    };
    if (text.size() > kMaxIsfFileSize) return fail(Error{Fault::kLimitExceeded, "too large"});
    if (auto at = too_deep(text, kMaxIsfNesting)) {
        return fail(Error{Fault::kLimitExceeded, "JSON nested deeper than " +
                                                     std::to_string(kMaxIsfNesting) + " at byte " +
                                                     std::to_string(*at)});
    }
    json root;
    try {
        root = json::parse(text);
    } catch (const json::exception& e) {
        return fail(Error{Fault::kInvalidFormat, std::string("not JSON: ") + e.what()});
    }
    if (!root.is_object()) return fail(bad("$", "expected an object, got " + type_name(root)));
    auto d = std::make_unique<detail::IsfData>();
    d->hash = fnv1a64(std::as_bytes(std::span(text.data(), text.size())));
    Validator v(*d);
    Status st = v.metadata(root);
    if (st) st = v.base_types(root);
    if (st) st = v.user_types(root);
    if (st) st = v.enums(root);
    if (st) st = v.symbols(root);
    if (!st) return fail(std::move(st).error());
    return IsfProfile(std::move(d));
}

Result<std::uint64_t> IsfProfile::struct_size(std::string_view struct_name) const {
    auto it = d_->user_types.find(std::string(struct_name));
    if (it == d_->user_types.end())
        return Error{Fault::kNotFound, "struct " + std::string(struct_name)};
    return it->second.size;
}

Result<MemberInfo> IsfProfile::member(std::string_view struct_name,
                                      std::string_view member_name) const {
    const std::string sname(struct_name);
    const std::string what = sname + "." + std::string(member_name);
    auto it = d_->user_types.find(sname);
    if (it == d_->user_types.end()) {
        return Error{Fault::kNotFound, "struct " + sname + " (looking up " + what + ")"};
    }
    std::vector<const UserType*> stack;
    std::uint32_t visits = 0;
    auto r = d_->find(it->second, member_name, 0, stack, visits);
    if (!r) {
        return Error{r.fault(),
                     "member " + what + (r.error().detail.empty() ? "" : ": " + r.error().detail)};
    }
    return r;
}

Result<std::vector<NamedMember>> IsfProfile::function_pointers(std::string_view struct_name) const {
    auto it = d_->user_types.find(std::string(struct_name));
    if (it == d_->user_types.end())
        return Error{Fault::kNotFound, "struct " + std::string(struct_name)};
    std::vector<NamedMember> out;
    for (const Field& f : it->second.fields) {
        const Desc& d = d_->descs[f.desc];
        if (f.anonymous || d.kind != Desc::Kind::kPointer || d.sub < 0 ||
            d_->descs[static_cast<std::size_t>(d.sub)].kind != Desc::Kind::kFunction) {
            continue;
        }
        if (out.size() == kMaxFnPointers) return Fault::kLimitExceeded;
        out.push_back({f.name, f.offset});
    }
    return out;
}

std::optional<std::uint64_t> IsfProfile::percpu_variable(std::string_view name) const {
    constexpr std::uint64_t kMaxPercpuOffset = 1ULL << 32;
    if (auto v = symbol(name); v && *v < kMaxPercpuOffset) return v;
    return std::nullopt;
}

std::optional<std::uint64_t> IsfProfile::symbol(std::string_view name) const {
    auto it = d_->symbols.find(std::string(name));
    if (it == d_->symbols.end()) return std::nullopt;
    return it->second;
}

std::size_t IsfProfile::symbol_count() const noexcept { return d_->symbols.size(); }

std::uint64_t IsfProfile::hash() const noexcept { return d_->hash; }

}  // namespace vmi
