// What the Linux model needs to know about a guest kernel's types, whatever describes them:
// the kernel's BTF (in guest memory or a file) or a Volatility 3 ISF profile. The Linux
// offsets are derived from this interface once, so every source yields them the same way.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmi/result.hpp"

namespace vmi {

/// A resolved struct member. Offsets are absolute within the named struct, already summed
/// through any anonymous struct/union nesting.
struct MemberInfo {
    std::uint64_t offset = 0;  // bytes
    std::uint64_t size = 0;    // bytes
};

/// A struct member by name and byte offset.
struct NamedMember {
    std::string name;
    std::uint64_t offset = 0;
    friend bool operator==(const NamedMember&, const NamedMember&) = default;
};

/// A kernel object in writable data whose function pointers the integrity sweep checks:
/// the global `symbol` of type struct `type`, and its function-pointer members.
struct FnPointerObject {
    std::string symbol;  // "tcp_prot"
    std::string type;    // "proto"
    std::uint64_t size = 0;
    std::vector<NamedMember> members;  // by offset (then name); offset + 8 <= size
    friend bool operator==(const FnPointerObject&, const FnPointerObject&) = default;
};

/// Bounds on the function-pointer layouts taken from a (hostile) type description.
inline constexpr std::size_t kMaxFnPointers = 256;               // members per struct
inline constexpr std::uint64_t kMaxFnPointerObject = 64U << 10;  // struct size, bytes

/// Offsets used by the Linux model (LinuxGuest). All values in bytes.
struct LinuxOffsets {
    std::uint64_t task_struct_size = 0;
    std::uint64_t task_tasks = 0;  // struct list_head, `next` at +0
    std::uint64_t task_pid = 0;    // pid_t (4 bytes)
    std::uint64_t task_tgid = 0;   // pid_t (4 bytes)
    std::uint64_t task_comm = 0;   // char[task_comm_size]
    std::uint64_t task_comm_size = 0;
    std::uint64_t task_real_parent = 0;   // struct task_struct*
    std::uint64_t task_mm = 0;            // struct mm_struct*
    std::uint64_t task_flags = 0;         // unsigned int
    std::uint64_t task_start_time = 0;    // u64, ns
    std::uint64_t task_self_exec_id = 0;  // u64, +1 per execve (since 5.7)
    std::uint64_t mm_pgd = 0;             // pgd_t*
    // Optional (0 = not known, e.g. a BTF without struct cred): effective credentials.
    std::uint64_t task_cred = 0;  // const struct cred*
    std::uint64_t cred_uid = 0;   // kuid_t (u32 val)
    // Optional, each group all-or-nothing (0 = not known; the field is then reported unknown).
    std::uint64_t cred_euid = 0;  // kuid_t
    std::uint64_t cred_gid = 0;   // kgid_t (u32 val)
    // Executable path: mm->exe_file->f_path {mnt, dentry}; dentry d_name / d_parent.
    bool has_exe = false;
    std::uint64_t mm_exe_file = 0;      // struct file*
    std::uint64_t file_f_path = 0;      // struct path (embedded)
    std::uint64_t path_mnt = 0;         // struct vfsmount* within struct path
    std::uint64_t path_dentry = 0;      // struct dentry* within struct path
    std::uint64_t dentry_d_parent = 0;  // struct dentry*
    std::uint64_t dentry_d_name = 0;    // struct qstr (embedded)
    std::uint64_t qstr_len = 0;         // u32 (high half of hash_len)
    std::uint64_t qstr_name = 0;        // const unsigned char*
    // Mount crossing (struct mount is internal to fs/; absent -> stop at the mount root).
    bool has_mount = false;
    std::uint64_t mount_mnt = 0;             // struct vfsmount embedded in struct mount
    std::uint64_t mount_mnt_parent = 0;      // struct mount*
    std::uint64_t mount_mnt_mountpoint = 0;  // struct dentry*
    std::uint64_t vfsmount_mnt_root = 0;     // struct dentry*
    // Command line: [arg_start, arg_end) in the process's own address space.
    bool has_args = false;
    std::uint64_t mm_arg_start = 0;  // unsigned long
    std::uint64_t mm_arg_end = 0;    // unsigned long
    // Threads: signal->thread_head lists every task_struct.thread_node of the group.
    bool has_threads = false;
    std::uint64_t task_signal = 0;         // struct signal_struct*
    std::uint64_t signal_thread_head = 0;  // struct list_head
    std::uint64_t task_thread_node = 0;    // struct list_head
    std::uint64_t signal_nr_threads = 0;   // int (0 = not known)
    // The running task of a CPU: a pointer at this offset into the CPU's per-CPU area (the
    // kernel's GS base); the per-CPU variable current_task (6.1) or pcpu_hot.current_task
    // (6.2 on). 0 = not known (a BTF without per-CPU variables).
    std::uint64_t percpu_current_task = 0;
    // Loaded modules (optional group): each struct module is on the kernel's `modules` list.
    bool has_modules = false;
    std::uint64_t module_struct_size = 0;
    std::uint64_t module_list = 0;       // struct list_head
    std::uint64_t module_name = 0;       // char[module_name_size]
    std::uint64_t module_name_size = 0;  // MODULE_NAME_LEN (56 on x86-64)
    std::uint64_t module_state = 0;      // enum module_state (4 bytes)
    std::uint64_t module_refcnt = 0;     // atomic_t; 0 = not known (no CONFIG_MODULE_UNLOAD)
    /// void*: start of the module's text, core_layout.base (6.1) or mem[MOD_TEXT].base (6.4+).
    std::uint64_t module_base = 0;
    /// u32 fields whose sum /proc/modules shows as the size: core_layout.size and
    /// init_layout.size (6.1), or mem[i].size for every region i (6.4+).
    std::array<std::uint64_t, 8> module_sizes{};
    std::size_t module_size_count = 0;
    // Process tree (optional group): task_struct.children lists each child's .sibling.
    bool has_children = false;
    std::uint64_t task_children = 0;  // struct list_head
    std::uint64_t task_sibling = 0;   // struct list_head
    // Module address tree (optional group, CONFIG_MODULES_TREE_LOOKUP): `mod_tree` is a struct
    // mod_tree_root whose latch tree's tree[0] (struct rb_root[2]) holds the rb nodes
    // node[0] of every struct mod_tree_node {struct module *mod; struct latch_tree_node node}.
    bool has_mod_tree = false;
    std::uint64_t mod_tree_root = 0;    // latch_tree_root within mod_tree_root
    std::uint64_t latch_tree_tree = 0;  // rb_root tree[2] within latch_tree_root
    std::uint64_t mtn_mod = 0;          // struct module* within mod_tree_node
    std::uint64_t mtn_node = 0;         // latch_tree_node within mod_tree_node

    // PID allocator (optional group): init_pid_ns.idr is an IDR, i.e. an xarray (idr_rt)
    // whose entries are struct pid*; each internal node (struct xa_node) has `shift` and
    // slots[xa_chunk]. A pid's tasks[PIDTYPE_PID].first is the hlist_node pid_links[PIDTYPE_PID]
    // of its task (PIDTYPE_PID = 0, so both at +0 of their arrays).
    bool has_pid_hash = false;
    std::uint64_t pidns_idr = 0;       // struct idr within struct pid_namespace
    std::uint64_t idr_rt = 0;          // struct xarray within struct idr
    std::uint64_t xarray_xa_head = 0;  // void* within struct xarray
    std::uint64_t xa_node_shift = 0;   // unsigned char within struct xa_node
    std::uint64_t xa_node_slots = 0;   // void* slots[xa_chunk] within struct xa_node
    std::uint64_t xa_chunk = 0;        // XA_CHUNK_SIZE: 64 (16 with CONFIG_BASE_SMALL)
    std::uint64_t pid_tasks = 0;       // struct hlist_head tasks[PIDTYPE_MAX] within struct pid
    std::uint64_t task_pid_links = 0;  // struct hlist_node pid_links[PIDTYPE_MAX]
    std::uint64_t hlist_first = 0;     // struct hlist_node* within struct hlist_head

    // Run queues (optional group): the per-CPU variable `runqueues` (struct rq). rq.cfs_tasks
    // lists every CFS task queued on that CPU, the running one included, through
    // task_struct.se.group_node; rq.curr is the task running there, of any class.
    bool has_runqueues = false;
    std::uint64_t percpu_runqueues = 0;    // runqueues' offset in the per-CPU area
    std::uint64_t rq_cfs_tasks = 0;        // struct list_head within struct rq
    std::uint64_t rq_curr = 0;             // struct task_struct* within struct rq
    std::uint64_t task_se_group_node = 0;  // struct list_head task_struct.se.group_node
    // Kernel function pointers in writable data (optional: objects whose struct the layout
    // lacks are left out; see fn_pointer_offsets_from()).
    std::vector<FnPointerObject> fn_pointer_objects;

    friend bool operator==(const LinuxOffsets&, const LinuxOffsets&) = default;
};

/// Struct layouts of one kernel build.
class TypeLayout {
  public:
    virtual ~TypeLayout() = default;

    /// Struct size in bytes; kNotFound if no struct of that name.
    [[nodiscard]] virtual Result<std::uint64_t> struct_size(std::string_view struct_name) const = 0;
    /// `member` of struct `struct_name`, found through anonymous struct/union members too.
    /// kNotFound errors name "struct.member"; bitfields are kInvalidFormat.
    [[nodiscard]] virtual Result<MemberInfo> member(std::string_view struct_name,
                                                    std::string_view member_name) const = 0;
    /// Offset of per-CPU variable `name` in the per-CPU area (x86-64 links them from 0);
    /// nullopt when the source does not list it.
    [[nodiscard]] virtual std::optional<std::uint64_t> percpu_variable(
        std::string_view name) const = 0;
    /// The direct members of struct `struct_name` whose type is a pointer to a function
    /// (through typedefs and qualifiers), in any order. kNotFound if no such struct,
    /// kLimitExceeded past kMaxFnPointers.
    [[nodiscard]] virtual Result<std::vector<NamedMember>> function_pointers(
        std::string_view struct_name) const = 0;

  protected:
    TypeLayout() = default;
    TypeLayout(const TypeLayout&) = default;
    TypeLayout(TypeLayout&&) = default;
    TypeLayout& operator=(const TypeLayout&) = default;
    TypeLayout& operator=(TypeLayout&&) = default;
};

/// All offsets the Linux model needs, with size sanity checks (pid 4 bytes, pointers 8, ...):
/// the required task_struct/mm_struct members are errors when missing, each optional group
/// (cred, exe, mount, args, threads, modules) is all-or-nothing.
Result<LinuxOffsets> linux_offsets_from(const TypeLayout& layout);

/// Fills the module group of `o` (has_modules) when `layout` describes struct module with
/// either layout (6.1 core_layout or 6.4+ mem[]); leaves it off otherwise.
void module_offsets_from(const TypeLayout& layout, LinuxOffsets& o);

/// Fills o.fn_pointer_objects: the function-pointer members of each kernel object the
/// integrity sweep checks (tcp_prot, udp_prot, ..., n_tty_ops) whose struct `layout` has.
void fn_pointer_offsets_from(const TypeLayout& layout, LinuxOffsets& o);

}  // namespace vmi
