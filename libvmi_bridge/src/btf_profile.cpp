#include "vmi/btf_profile.hpp"

#include <bpf/btf.h>

#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <utility>
#include <vector>

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

// Per-CPU variables are listed, with their offsets in the per-CPU area, in the BTF DATASEC
// ".data..percpu" (pahole emits them unless told not to).
std::uint64_t BtfProfile::percpu_current_task() const {
    const struct btf* b = btf_.get();
    const std::int32_t sec = btf__find_by_name_kind(b, ".data..percpu", BTF_KIND_DATASEC);
    if (sec <= 0) return 0;
    const btf_type* t = btf__type_by_id(b, static_cast<std::uint32_t>(sec));
    const btf_var_secinfo* v = btf_var_secinfos(t);
    for (std::uint16_t i = 0; i < btf_vlen(t); ++i, ++v) {
        const btf_type* var = btf__type_by_id(b, v->type);
        if (!var || !btf_is_var(var)) continue;
        const std::string_view name = btf__name_by_offset(b, var->name_off);
        if (name == "current_task" && v->size == 8) return v->offset;
        if (name == "pcpu_hot") {
            auto m = member("pcpu_hot", "current_task");
            if (m && m->size == 8 && m->offset + 8 <= v->size) return v->offset + m->offset;
        }
    }
    return 0;
}

void BtfProfile::module_offsets(LinuxOffsets& o) const {
    o.has_modules = false;
    auto size = struct_size("module");
    auto list = member("module", "list");
    auto name = member("module", "name");
    auto state = member("module", "state");
    if (!size || !list || !name || !state || list->size != 16 || name->size == 0 ||
        name->size > 256 || state->size != 4) {
        return;
    }
    o.module_struct_size = *size;
    o.module_list = list->offset;
    o.module_name = name->offset;
    o.module_name_size = name->size;
    o.module_state = state->offset;
    auto refcnt = member("module", "refcnt");
    o.module_refcnt = refcnt && refcnt->size == 4 ? refcnt->offset : 0;
    o.module_size_count = 0;
    // 6.4+: struct module_memory mem[MOD_MEM_NUM_TYPES], MOD_TEXT first.
    auto mem = member("module", "mem");
    auto mem_size = struct_size("module_memory");
    auto mem_base = member("module_memory", "base");
    auto mem_len = member("module_memory", "size");
    if (mem && mem_size && mem_base && mem_len && *mem_size > 0 && mem->size % *mem_size == 0 &&
        mem->size / *mem_size >= 1 && mem->size / *mem_size <= o.module_sizes.size() &&
        mem_base->size == 8 && mem_len->size == 4) {
        o.module_base = mem->offset + mem_base->offset;
        o.module_size_count = static_cast<std::size_t>(mem->size / *mem_size);
        for (std::size_t i = 0; i < o.module_size_count; ++i) {
            o.module_sizes[i] = mem->offset + i * *mem_size + mem_len->offset;
        }
        o.has_modules = true;
        return;
    }
    // 6.1: struct module_layout core_layout, init_layout.
    auto core = member("module", "core_layout");
    auto init = member("module", "init_layout");
    auto lay_base = member("module_layout", "base");
    auto lay_len = member("module_layout", "size");
    if (core && lay_base && lay_len && lay_base->size == 8 && lay_len->size == 4) {
        o.module_base = core->offset + lay_base->offset;
        o.module_sizes[o.module_size_count++] = core->offset + lay_len->offset;
        if (init) o.module_sizes[o.module_size_count++] = init->offset + lay_len->offset;
        o.has_modules = true;
    }
}

Result<LinuxOffsets> BtfProfile::linux_offsets() const {
    LinuxOffsets o;
    auto size = struct_size("task_struct");
    if (!size) return std::move(size).error();
    o.task_struct_size = *size;

    // Each entry: struct, member, destination, required size (0 = any).
    struct Want {
        const char* strct;
        const char* name;
        std::uint64_t* dst;
        std::uint64_t size;
    };
    const Want wants[] = {
        {"task_struct", "tasks", &o.task_tasks, 16},
        {"task_struct", "pid", &o.task_pid, 4},
        {"task_struct", "tgid", &o.task_tgid, 4},
        {"task_struct", "comm", &o.task_comm, 0},
        {"task_struct", "real_parent", &o.task_real_parent, 8},
        {"task_struct", "mm", &o.task_mm, 8},
        {"task_struct", "flags", &o.task_flags, 4},
        {"task_struct", "start_time", &o.task_start_time, 8},
        {"task_struct", "self_exec_id", &o.task_self_exec_id, 8},
        {"mm_struct", "pgd", &o.mm_pgd, 8},
    };
    for (const Want& w : wants) {
        auto m = member(w.strct, w.name);
        if (!m) return std::move(m).error();
        if (w.size != 0 && m->size != w.size) {
            return Error{Fault::kInvalidFormat, std::string(w.strct) + "." + w.name + " has size " +
                                                    std::to_string(m->size) + ", expected " +
                                                    std::to_string(w.size)};
        }
        *w.dst = m->offset;
        if (w.dst == &o.task_comm) o.task_comm_size = m->size;
    }
    // Optional: a missing or odd cred layout only costs the uid column.
    auto cred = member("task_struct", "cred");
    auto uid = member("cred", "uid");
    if (cred && uid && cred->size == 8 && uid->size == 4 && cred->offset != 0 && uid->offset != 0) {
        o.task_cred = cred->offset;
        o.cred_uid = uid->offset;
    }
    // Optional groups: all members present with the expected sizes, or the group stays off.
    struct Opt {
        const char* strct;
        const char* name;
        std::uint64_t* dst;
        std::uint64_t size;
    };
    auto group = [&](std::initializer_list<Opt> opts) {
        std::vector<std::pair<std::uint64_t*, std::uint64_t>> got;
        for (const Opt& w : opts) {
            auto m = member(w.strct, w.name);
            if (!m || (w.size != 0 && m->size != w.size)) return false;
            got.emplace_back(w.dst, m->offset);
        }
        for (auto& [dst, off] : got) *dst = off;
        return true;
    };
    if (o.task_cred != 0) {
        group({{"cred", "euid", &o.cred_euid, 4}, {"cred", "gid", &o.cred_gid, 4}});
    }
    o.has_exe = group({{"mm_struct", "exe_file", &o.mm_exe_file, 8},
                       {"file", "f_path", &o.file_f_path, 16},
                       {"path", "mnt", &o.path_mnt, 8},
                       {"path", "dentry", &o.path_dentry, 8},
                       {"dentry", "d_parent", &o.dentry_d_parent, 8},
                       {"dentry", "d_name", &o.dentry_d_name, 16},
                       {"qstr", "len", &o.qstr_len, 4},
                       {"qstr", "name", &o.qstr_name, 8}});
    if (o.has_exe) {
        o.has_mount = group({{"mount", "mnt", &o.mount_mnt, 0},
                             {"mount", "mnt_parent", &o.mount_mnt_parent, 8},
                             {"mount", "mnt_mountpoint", &o.mount_mnt_mountpoint, 8},
                             {"vfsmount", "mnt_root", &o.vfsmount_mnt_root, 8}});
    }
    o.has_args = group({{"mm_struct", "arg_start", &o.mm_arg_start, 8},
                        {"mm_struct", "arg_end", &o.mm_arg_end, 8}});
    o.has_threads = group({{"task_struct", "signal", &o.task_signal, 8},
                           {"signal_struct", "thread_head", &o.signal_thread_head, 16},
                           {"task_struct", "thread_node", &o.task_thread_node, 16}});
    if (o.has_threads) group({{"signal_struct", "nr_threads", &o.signal_nr_threads, 4}});
    o.has_children = group({{"task_struct", "children", &o.task_children, 16},
                            {"task_struct", "sibling", &o.task_sibling, 16}});
    o.percpu_current_task = percpu_current_task();
    module_offsets(o);
    // The module address tree (kernel/module/internal.h): tree[0] of the latch tree in
    // mod_tree_root, and where a mod_tree_node keeps its module and its rb nodes.
    o.has_mod_tree = group({{"mod_tree_root", "root", &o.mod_tree_root, 0},
                            {"latch_tree_root", "tree", &o.latch_tree_tree, 16},
                            {"mod_tree_node", "mod", &o.mtn_mod, 8},
                            {"mod_tree_node", "node", &o.mtn_node, 48}});
    if (o.task_comm_size == 0 || o.task_comm_size > 64) {
        return Error{Fault::kInvalidFormat,
                     "task_struct.comm has implausible size " + std::to_string(o.task_comm_size)};
    }
    return o;
}

}  // namespace vmi
