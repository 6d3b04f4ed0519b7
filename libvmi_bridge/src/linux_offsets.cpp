// The Linux model's offsets from any TypeLayout (BTF or ISF): one derivation for every source.
#include <algorithm>
#include <initializer_list>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "vmi/type_layout.hpp"

namespace vmi {

namespace {

// The running task pointer in the per-CPU area: the variable current_task (6.1), or
// pcpu_hot.current_task (6.2 on); 0 when the source lists neither.
std::uint64_t percpu_current_task(const TypeLayout& t) {
    if (auto ct = t.percpu_variable("current_task")) return *ct;
    if (auto hot = t.percpu_variable("pcpu_hot")) {
        auto m = t.member("pcpu_hot", "current_task");
        auto size = t.struct_size("pcpu_hot");
        if (m && size && m->size == 8 && m->offset + 8 <= *size) return *hot + m->offset;
    }
    return 0;
}

}  // namespace

void module_offsets_from(const TypeLayout& t, LinuxOffsets& o) {
    o.has_modules = false;
    auto size = t.struct_size("module");
    auto list = t.member("module", "list");
    auto name = t.member("module", "name");
    auto state = t.member("module", "state");
    if (!size || !list || !name || !state || list->size != 16 || name->size == 0 ||
        name->size > 256 || state->size != 4) {
        return;
    }
    o.module_struct_size = *size;
    o.module_list = list->offset;
    o.module_name = name->offset;
    o.module_name_size = name->size;
    o.module_state = state->offset;
    auto refcnt = t.member("module", "refcnt");
    o.module_refcnt = refcnt && refcnt->size == 4 ? refcnt->offset : 0;
    o.module_size_count = 0;
    // 6.4+: struct module_memory mem[MOD_MEM_NUM_TYPES], MOD_TEXT first.
    auto mem = t.member("module", "mem");
    auto mem_size = t.struct_size("module_memory");
    auto mem_base = t.member("module_memory", "base");
    auto mem_len = t.member("module_memory", "size");
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
    auto core = t.member("module", "core_layout");
    auto init = t.member("module", "init_layout");
    auto lay_base = t.member("module_layout", "base");
    auto lay_len = t.member("module_layout", "size");
    if (core && lay_base && lay_len && lay_base->size == 8 && lay_len->size == 4) {
        o.module_base = core->offset + lay_base->offset;
        o.module_sizes[o.module_size_count++] = core->offset + lay_len->offset;
        if (init) o.module_sizes[o.module_size_count++] = init->offset + lay_len->offset;
        o.has_modules = true;
    }
}

// Ops structs in writable .data that rootkits hook (rodata and ro_after_init are covered by the
// rodata hashes), built into every Debian 6.1 / 6.12 kernel (INET, IPV6, UNIX, TTY =y):
// the protocols' struct proto (recvmsg/getsockopt/... hooks hide or filter sockets), and the
// N_TTY line discipline (receive_buf hooks log keystrokes).
constexpr std::pair<const char*, const char*> kFnPointerObjects[] = {
    {"tcp_prot", "proto"},          {"udp_prot", "proto"},         {"udplite_prot", "proto"},
    {"raw_prot", "proto"},          {"ping_prot", "proto"},        {"tcpv6_prot", "proto"},
    {"udpv6_prot", "proto"},        {"udplitev6_prot", "proto"},   {"rawv6_prot", "proto"},
    {"unix_stream_proto", "proto"}, {"unix_dgram_proto", "proto"}, {"n_tty_ops", "tty_ldisc_ops"},
};

void fn_pointer_offsets_from(const TypeLayout& t, LinuxOffsets& o) {
    o.fn_pointer_objects.clear();
    for (const auto& [symbol, type] : kFnPointerObjects) {
        auto size = t.struct_size(type);
        auto members = t.function_pointers(type);
        if (!size || !members || *size == 0 || *size > kMaxFnPointerObject) continue;
        FnPointerObject obj{symbol, type, *size, {}};
        for (NamedMember& m : *members) {
            if (m.offset % 8 == 0 && m.offset + 8 <= *size) obj.members.push_back(std::move(m));
        }
        // By offset: an ISF keeps its fields in a JSON object, without declaration order.
        std::sort(obj.members.begin(), obj.members.end(), [](const auto& a, const auto& b) {
            return std::tie(a.offset, a.name) < std::tie(b.offset, b.name);
        });
        if (!obj.members.empty()) o.fn_pointer_objects.push_back(std::move(obj));
    }
}

Result<LinuxOffsets> linux_offsets_from(const TypeLayout& t) {
    LinuxOffsets o;
    auto size = t.struct_size("task_struct");
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
        auto m = t.member(w.strct, w.name);
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
    auto cred = t.member("task_struct", "cred");
    auto uid = t.member("cred", "uid");
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
            auto m = t.member(w.strct, w.name);
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
    o.percpu_current_task = percpu_current_task(t);
    module_offsets_from(t, o);
    // The module address tree (kernel/module/internal.h): tree[0] of the latch tree in
    // mod_tree_root, and where a mod_tree_node keeps its module and its rb nodes.
    o.has_mod_tree = group({{"mod_tree_root", "root", &o.mod_tree_root, 0},
                            {"latch_tree_root", "tree", &o.latch_tree_tree, 16},
                            {"mod_tree_node", "mod", &o.mtn_mod, 8},
                            {"mod_tree_node", "node", &o.mtn_node, 48}});
    // The PID allocator (kernel/pid.c, lib/xarray.c): init_pid_ns.idr.idr_rt.xa_head, xa_node
    // {shift, slots[]}, pid->tasks[PIDTYPE_PID].first, task_struct.pid_links[PIDTYPE_PID].
    o.has_pid_hash = group({{"pid_namespace", "idr", &o.pidns_idr, 0},
                            {"idr", "idr_rt", &o.idr_rt, 0},
                            {"xarray", "xa_head", &o.xarray_xa_head, 8},
                            {"xa_node", "shift", &o.xa_node_shift, 1},
                            {"xa_node", "slots", &o.xa_node_slots, 0},
                            {"pid", "tasks", &o.pid_tasks, 0},
                            {"task_struct", "pid_links", &o.task_pid_links, 0},
                            {"hlist_head", "first", &o.hlist_first, 8}});
    if (o.has_pid_hash) {
        const std::uint64_t slots = t.member("xa_node", "slots")->size;
        const std::uint64_t tasks = t.member("pid", "tasks")->size;
        const std::uint64_t links = t.member("task_struct", "pid_links")->size;
        o.xa_chunk = slots / 8;
        // Power-of-two chunks of 4..256 slots; PIDTYPE_PID's list and link exist.
        const bool chunk_ok = slots % 8 == 0 && o.xa_chunk >= 4 && o.xa_chunk <= 256 &&
                              (o.xa_chunk & (o.xa_chunk - 1)) == 0;
        if (!chunk_ok || tasks < 8 || tasks % 8 != 0 || links < 16 || links % 16 != 0) {
            o.has_pid_hash = false;
        }
    }
    if (!o.has_pid_hash) {
        o.pidns_idr = o.idr_rt = o.xarray_xa_head = o.xa_node_shift = o.xa_node_slots = 0;
        o.xa_chunk = o.pid_tasks = o.task_pid_links = o.hlist_first = 0;
    }
    // The run queues (kernel/sched/sched.h): per-CPU runqueues, its CFS task list and curr.
    if (auto rq = t.percpu_variable("runqueues")) {
        std::uint64_t se = 0;
        std::uint64_t group_node = 0;
        o.has_runqueues = group({{"rq", "cfs_tasks", &o.rq_cfs_tasks, 16},
                                 {"rq", "curr", &o.rq_curr, 8},
                                 {"task_struct", "se", &se, 0},
                                 {"sched_entity", "group_node", &group_node, 16}});
        if (o.has_runqueues) {
            o.percpu_runqueues = *rq;
            o.task_se_group_node = se + group_node;
        }
    }
    fn_pointer_offsets_from(t, o);
    if (o.task_comm_size == 0 || o.task_comm_size > 64) {
        return Error{Fault::kInvalidFormat,
                     "task_struct.comm has implausible size " + std::to_string(o.task_comm_size)};
    }
    return o;
}

}  // namespace vmi
