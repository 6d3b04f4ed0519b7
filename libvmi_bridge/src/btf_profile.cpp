#include "vmi/btf_profile.hpp"

#include <bpf/btf.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include "vmi/kernel_discovery.hpp"

namespace vmi {

namespace {

// Anonymous nesting in task_struct is 2-3 levels deep; the bounds guard against crafted BTF
// (the BTF may come from guest memory): depth alone does not stop a wide tree of anonymous
// members from blowing up exponentially, so the total member visits are capped too.
constexpr int kMaxNesting = 16;
constexpr std::uint32_t kMaxMemberVisits = 1U << 20;

std::string errno_text(int err) { return std::strerror(err); }

// Skips typedefs and cv-qualifiers; bounded so a malformed loop cannot spin.
const btf_type* skip_mods(const struct btf* b, std::uint32_t& id) {
    for (int i = 0; i < 64; ++i) {
        const btf_type* t = btf__type_by_id(b, id);
        if (t == nullptr) return nullptr;
        if (!btf_is_mod(t) && !btf_is_typedef(t)) return t;
        id = t->type;
    }
    return nullptr;
}

Result<MemberInfo> find_member(const struct btf* b, const btf_type* t, std::string_view name,
                               int depth, std::uint32_t& visits) {
    if (depth > kMaxNesting) return Fault::kLimitExceeded;
    const btf_member* m = btf_members(t);
    for (std::uint16_t i = 0; i < btf_vlen(t); ++i, ++m) {
        if (++visits > kMaxMemberVisits) return Fault::kLimitExceeded;
        const char* mname = btf__name_by_offset(b, m->name_off);
        const std::uint32_t bit_off = btf_member_bit_offset(t, i);
        std::uint32_t type_id = m->type;
        if (mname != nullptr && name == mname) {
            if (btf_member_bitfield_size(t, i) != 0 || bit_off % 8 != 0) {
                return Error{Fault::kInvalidFormat, std::string(name) + " is a bitfield"};
            }
            const std::int64_t size = btf__resolve_size(b, type_id);
            if (size < 0) return Error{Fault::kInvalidFormat, "cannot size " + std::string(name)};
            return MemberInfo{bit_off / 8U, static_cast<std::uint64_t>(size)};
        }
        if (mname == nullptr || *mname == '\0') {
            const btf_type* inner = skip_mods(b, type_id);
            if (inner != nullptr && (btf_is_struct(inner) || btf_is_union(inner))) {
                auto r = find_member(b, inner, name, depth + 1, visits);
                if (r) return MemberInfo{r->offset + bit_off / 8U, r->size};
                if (r.fault() != Fault::kNotFound) return r;
            }
        }
    }
    return Fault::kNotFound;
}

}  // namespace

void BtfProfile::BtfDeleter::operator()(struct btf* b) const noexcept { btf__free(b); }

Result<BtfProfile> BtfProfile::from_file(const std::string& path) {
    struct btf* b = btf__parse(path.c_str(), nullptr);
    if (b == nullptr) {
        return Error{Fault::kInvalidFormat,
                     "cannot parse BTF from " + path + ": " + errno_text(errno)};
    }
    return BtfProfile(std::unique_ptr<struct btf, BtfDeleter>(b));
}

Result<BtfProfile> BtfProfile::from_blob(std::span<const std::byte> blob) {
    if (blob.size() > std::numeric_limits<std::uint32_t>::max()) return Fault::kLimitExceeded;
    struct btf* b = btf__new(blob.data(), static_cast<std::uint32_t>(blob.size()));
    if (b == nullptr) {
        return Error{Fault::kInvalidFormat, "cannot parse BTF blob: " + errno_text(errno)};
    }
    return BtfProfile(std::unique_ptr<struct btf, BtfDeleter>(b));
}

Result<std::uint64_t> BtfProfile::struct_size(std::string_view struct_name) const {
    const std::string name(struct_name);
    const std::int32_t id = btf__find_by_name_kind(btf_.get(), name.c_str(), BTF_KIND_STRUCT);
    if (id < 0) return Error{Fault::kNotFound, "struct " + name};
    return std::uint64_t{btf__type_by_id(btf_.get(), static_cast<std::uint32_t>(id))->size};
}

Result<MemberInfo> BtfProfile::member(std::string_view struct_name,
                                      std::string_view member_name) const {
    const std::string sname(struct_name);
    const std::string what = sname + "." + std::string(member_name);
    const std::int32_t id = btf__find_by_name_kind(btf_.get(), sname.c_str(), BTF_KIND_STRUCT);
    if (id < 0) return Error{Fault::kNotFound, "struct " + sname + " (looking up " + what + ")"};
    const btf_type* t = btf__type_by_id(btf_.get(), static_cast<std::uint32_t>(id));
    std::uint32_t visits = 0;
    auto r = find_member(btf_.get(), t, member_name, 0, visits);
    if (!r)
        return Error{r.fault(),
                     "member " + what + (r.error().detail.empty() ? "" : ": " + r.error().detail)};
    return r;
}

Result<std::vector<NamedMember>> BtfProfile::function_pointers(std::string_view struct_name) const {
    const struct btf* b = btf_.get();
    const std::string sname(struct_name);
    const std::int32_t id = btf__find_by_name_kind(b, sname.c_str(), BTF_KIND_STRUCT);
    if (id < 0) return Error{Fault::kNotFound, "struct " + sname};
    const btf_type* t = btf__type_by_id(b, static_cast<std::uint32_t>(id));
    std::vector<NamedMember> out;
    const btf_member* m = btf_members(t);
    for (std::uint16_t i = 0; i < btf_vlen(t); ++i, ++m) {
        std::uint32_t type_id = m->type;
        const btf_type* mt = skip_mods(b, type_id);
        if (mt == nullptr || !btf_is_ptr(mt)) continue;
        type_id = mt->type;
        const btf_type* target = skip_mods(b, type_id);
        const char* name = btf__name_by_offset(b, m->name_off);
        const std::uint32_t bit_off = btf_member_bit_offset(t, i);
        if (target == nullptr || !btf_is_func_proto(target) || name == nullptr || *name == '\0' ||
            bit_off % 8 != 0 || btf_member_bitfield_size(t, i) != 0) {
            continue;
        }
        if (out.size() == kMaxFnPointers) return Fault::kLimitExceeded;
        out.push_back({name, bit_off / 8U});
    }
    return out;
}

std::uint64_t BtfProfile::hash() const {
    std::uint32_t size = 0;
    const void* raw = btf__raw_data(btf_.get(), &size);
    if (raw == nullptr) return 0;
    return fnv1a64(std::span(static_cast<const std::byte*>(raw), size));
}

// Per-CPU variables are listed, with their offsets in the per-CPU area, in the BTF DATASEC
// ".data..percpu" (pahole emits them unless told not to).
std::optional<std::uint64_t> BtfProfile::percpu_variable(std::string_view name) const {
    const struct btf* b = btf_.get();
    const std::int32_t sec = btf__find_by_name_kind(b, ".data..percpu", BTF_KIND_DATASEC);
    if (sec <= 0) return std::nullopt;
    const btf_type* t = btf__type_by_id(b, static_cast<std::uint32_t>(sec));
    const btf_var_secinfo* v = btf_var_secinfos(t);
    for (std::uint16_t i = 0; i < btf_vlen(t); ++i, ++v) {
        const btf_type* var = btf__type_by_id(b, v->type);
        if (var && btf_is_var(var) && btf__name_by_offset(b, var->name_off) == name) {
            return v->offset;
        }
    }
    return std::nullopt;
}

}  // namespace vmi
