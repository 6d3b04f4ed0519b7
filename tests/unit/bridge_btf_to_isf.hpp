// Test and fuzz helper: a Volatility 3 ISF profile (schema 6.x, as dwarf2json writes it)
// generated from a BTF blob, so ISF parsing can be checked against the BTF path on the same
// kernel: structs and unions (anonymous ones named "unnamed_<id>", reached through fields
// "unnamed_field_<n>" with "anonymous": true), base types plus "pointer" and "void", enums,
// typedefs and modifiers resolved away, bitfields; symbols: the per-CPU variables of the BTF
// DATASEC ".data..percpu" (their offsets) plus `extra` (e.g. _text, init_task).
#pragma once

#include <bpf/btf.h>
#include <linux/btf.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>

namespace vmi::test {

class BtfToIsf {
  public:
    static nlohmann::json convert(std::span<const std::byte> blob,
                                  const std::map<std::string, std::uint64_t>& extra = {}) {
        std::unique_ptr<struct btf, Free> b(
            btf__new(blob.data(), static_cast<std::uint32_t>(blob.size())));
        if (!b) return nullptr;
        BtfToIsf c(b.get());
        return c.run(extra);
    }

  private:
    struct Free {
        void operator()(struct btf* p) const { btf__free(p); }
    };
    explicit BtfToIsf(const struct btf* b) : b_(b) {}

    std::string name_of(std::uint32_t id) const {
        const btf_type* t = btf__type_by_id(b_, id);
        const char* n = btf__name_by_offset(b_, t->name_off);
        return n != nullptr && *n != '\0' ? std::string(n) : "unnamed_" + std::to_string(id);
    }

    std::uint32_t resolve(std::uint32_t id) const {
        for (int i = 0; i < 64 && id != 0; ++i) {
            const btf_type* t = btf__type_by_id(b_, id);
            if (!btf_is_mod(t) && !btf_is_typedef(t)) return id;
            id = t->type;
        }
        return id;
    }

    nlohmann::json desc(std::uint32_t id) const {
        id = resolve(id);
        if (id == 0) return {{"kind", "base"}, {"name", "void"}};
        const btf_type* t = btf__type_by_id(b_, id);
        if (btf_is_ptr(t)) return {{"kind", "pointer"}, {"subtype", desc(t->type)}};
        if (btf_is_int(t)) return {{"kind", "base"}, {"name", name_of(id)}};
        if (btf_is_array(t)) {
            const struct btf_array* a = btf_array(t);
            return {{"kind", "array"}, {"count", a->nelems}, {"subtype", desc(a->type)}};
        }
        if (btf_is_struct(t)) return {{"kind", "struct"}, {"name", name_of(id)}};
        if (btf_is_union(t)) return {{"kind", "union"}, {"name", name_of(id)}};
        if (btf_is_fwd(t))
            return {{"kind", btf_kflag(t) ? "union" : "struct"}, {"name", name_of(id)}};
        if (btf_is_enum(t)) return {{"kind", "enum"}, {"name", name_of(id)}};
        return {{"kind", "function"}};
    }

    nlohmann::json run(const std::map<std::string, std::uint64_t>& extra) {
        nlohmann::json base = nlohmann::json::object();
        nlohmann::json user = nlohmann::json::object();
        nlohmann::json enums = nlohmann::json::object();
        nlohmann::json syms = nlohmann::json::object();
        base["pointer"] = {{"kind", "int"}, {"size", 8}, {"signed", false}, {"endian", "little"}};
        base["void"] = {{"kind", "void"}, {"size", 0}, {"signed", false}, {"endian", "little"}};
        const std::uint32_t n = btf__type_cnt(b_);
        for (std::uint32_t id = 1; id < n; ++id) {
            const btf_type* t = btf__type_by_id(b_, id);
            if (btf_is_int(t)) {
                const bool is_char = (btf_int_encoding(t) & BTF_INT_CHAR) != 0;
                base[name_of(id)] = {{"kind", is_char ? "char" : "int"},
                                     {"size", t->size},
                                     {"signed", (btf_int_encoding(t) & BTF_INT_SIGNED) != 0},
                                     {"endian", "little"}};
            } else if (btf_is_enum(t)) {
                nlohmann::json c = nlohmann::json::object();
                const struct btf_enum* e = btf_enum(t);
                for (std::uint16_t i = 0; i < btf_vlen(t); ++i, ++e) {
                    c[btf__name_by_offset(b_, e->name_off)] = e->val;
                }
                enums[name_of(id)] = {{"size", t->size}, {"base", "int"}, {"constants", c}};
            } else if (btf_is_struct(t) || btf_is_union(t)) {
                nlohmann::json fields = nlohmann::json::object();
                const btf_member* m = btf_members(t);
                for (std::uint16_t i = 0; i < btf_vlen(t); ++i, ++m) {
                    const char* mn = btf__name_by_offset(b_, m->name_off);
                    const bool anon = mn == nullptr || *mn == '\0';
                    const std::uint32_t bits = btf_member_bit_offset(t, i);
                    const std::uint32_t bit_size = btf_member_bitfield_size(t, i);
                    nlohmann::json f = {{"offset", bits / 8}};
                    if (bit_size != 0) {
                        f["type"] = {{"kind", "bitfield"},
                                     {"bit_position", bits % 8},
                                     {"bit_length", bit_size},
                                     {"type", desc(m->type)}};
                    } else {
                        f["type"] = desc(m->type);
                    }
                    if (anon) f["anonymous"] = true;
                    fields[anon ? "unnamed_field_" + std::to_string(i) : std::string(mn)] = f;
                }
                if (user.contains(name_of(id))) continue;  // libbpf finds the first too
                user[name_of(id)] = {{"kind", btf_is_union(t) ? "union" : "struct"},
                                     {"size", t->size},
                                     {"fields", fields}};
            } else if (btf_is_datasec(t) && name_of(id) == ".data..percpu") {
                const btf_var_secinfo* v = btf_var_secinfos(t);
                for (std::uint16_t i = 0; i < btf_vlen(t); ++i, ++v) {
                    syms[name_of(v->type)] = {{"address", v->offset}};
                }
            }
        }
        for (const auto& [name, addr] : extra) syms[name] = {{"address", addr}};
        return {
            {"metadata",
             {{"format", "6.2.0"}, {"producer", {{"name", "btf2isf-test"}, {"version", "0.1.0"}}}}},
            {"base_types", base},
            {"user_types", user},
            {"enums", enums},
            {"symbols", syms}};
    }

    const struct btf* b_;
};

}  // namespace vmi::test
