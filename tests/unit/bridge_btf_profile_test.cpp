#include <bpf/btf.h>
#include <gtest/gtest.h>
#include <linux/btf.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vmi/btf_profile.hpp"

namespace vmi {
namespace {

struct BtfFree {
    void operator()(struct btf* b) const { btf__free(b); }
};
using BtfPtr = std::unique_ptr<struct btf, BtfFree>;

// Builds a miniature kernel BTF. Layout (bytes):
//   struct mm_struct (64) { u64 mm_mt@0; struct { u64 mmap_base@0; pgd_t* pgd@8; }@8 } -> pgd@16
//   struct task_struct (256) {
//     unsigned int __state@0; unsigned int flags@4;
//     union { struct { u64 pad@0; struct list_head tasks@8; }; u64 alias; }@16 -> tasks@24
//     pid_t pid@48; pid_t tgid@52; task_struct* real_parent@56; mm_struct* mm@64;
//     u64 start_time@72; char comm[16]@80; unsigned in_execve:1 @96 (bitfield);
//     u64 self_exec_id@104
//   }
std::vector<std::byte> build_btf(bool with_pgd) {
    BtfPtr b(btf__new_empty());
    if (!b) return {};
    struct btf* p = b.get();
    const int i32 = btf__add_int(p, "int", 4, BTF_INT_SIGNED);
    const int u32 = btf__add_int(p, "unsigned int", 4, 0);
    const int u64 = btf__add_int(p, "long long unsigned int", 8, 0);
    const int chr = btf__add_int(p, "char", 1, BTF_INT_CHAR);
    const int pid_t_id = btf__add_typedef(p, "pid_t", i32);
    const int voidp = btf__add_ptr(p, 0);
    const int comm = btf__add_array(p, i32, chr, 16);

    const int list_head = btf__add_struct(p, "list_head", 16);
    btf__add_field(p, "next", voidp, 0, 0);
    btf__add_field(p, "prev", voidp, 64, 0);

    const int mm_anon = btf__add_struct(p, nullptr, 16);
    btf__add_field(p, "mmap_base", u64, 0, 0);
    if (with_pgd) btf__add_field(p, "pgd", voidp, 64, 0);
    const int mm = btf__add_struct(p, "mm_struct", 64);
    btf__add_field(p, "mm_mt", u64, 0, 0);
    btf__add_field(p, nullptr, mm_anon, 64, 0);
    const int mm_ptr = btf__add_ptr(p, mm);

    const int tasks_anon = btf__add_struct(p, nullptr, 24);
    btf__add_field(p, "pad", u64, 0, 0);
    btf__add_field(p, "tasks", list_head, 64, 0);
    const int tasks_union = btf__add_union(p, nullptr, 24);
    btf__add_field(p, nullptr, tasks_anon, 0, 0);
    btf__add_field(p, "alias", u64, 0, 0);
    const int const_union = btf__add_const(p, tasks_union);  // modifiers must be skipped

    // Fields attach to the most recently added struct: add no other type until it is done.
    btf__add_struct(p, "task_struct", 256);
    btf__add_field(p, "__state", u32, 0, 0);
    btf__add_field(p, "flags", u32, 32, 0);
    btf__add_field(p, nullptr, const_union, 128, 0);
    btf__add_field(p, "pid", pid_t_id, 48 * 8, 0);
    btf__add_field(p, "tgid", pid_t_id, 52 * 8, 0);
    btf__add_field(p, "real_parent", voidp, 56 * 8, 0);
    btf__add_field(p, "mm", mm_ptr, 64 * 8, 0);
    btf__add_field(p, "start_time", u64, 72 * 8, 0);
    btf__add_field(p, "comm", comm, 80 * 8, 0);
    btf__add_field(p, "in_execve", u32, 96 * 8, 1);
    btf__add_field(p, "self_exec_id", u64, 104 * 8, 0);

    std::uint32_t size = 0;
    const void* raw = btf__raw_data(p, &size);
    if (raw == nullptr) return {};
    const auto* bytes = static_cast<const std::byte*>(raw);
    return {bytes, bytes + size};
}

TEST(BridgeBtfProfile, SyntheticBtfResolvesNestedMembers) {
    const auto blob = build_btf(true);
    ASSERT_FALSE(blob.empty());
    auto prof = BtfProfile::from_blob(blob);
    ASSERT_TRUE(prof.ok()) << prof.error().message();

    auto tasks = prof->member("task_struct", "tasks");
    ASSERT_TRUE(tasks.ok()) << tasks.error().message();
    EXPECT_EQ(tasks->offset, 24U);  // 16 (union) + 0 (anon struct) + 8
    EXPECT_EQ(tasks->size, 16U);

    auto off = prof->linux_offsets();
    ASSERT_TRUE(off.ok()) << off.error().message();
    EXPECT_EQ(off->task_struct_size, 256U);
    EXPECT_EQ(off->task_tasks, 24U);
    EXPECT_EQ(off->task_flags, 4U);
    EXPECT_EQ(off->task_pid, 48U);
    EXPECT_EQ(off->task_tgid, 52U);
    EXPECT_EQ(off->task_real_parent, 56U);
    EXPECT_EQ(off->task_mm, 64U);
    EXPECT_EQ(off->task_start_time, 72U);
    EXPECT_EQ(off->task_self_exec_id, 104U);
    EXPECT_EQ(off->task_comm, 80U);
    EXPECT_EQ(off->task_comm_size, 16U);
    EXPECT_EQ(off->mm_pgd, 16U);  // 8 (anon struct) + 8
}

TEST(BridgeBtfProfile, MissingMemberErrorNamesStructAndMember) {
    auto prof = BtfProfile::from_blob(build_btf(false));
    ASSERT_TRUE(prof.ok());
    auto off = prof->linux_offsets();
    ASSERT_FALSE(off.ok());
    EXPECT_EQ(off.fault(), Fault::kNotFound);
    EXPECT_NE(off.error().detail.find("mm_struct.pgd"), std::string::npos) << off.error().detail;

    auto nostruct = prof->member("files_struct", "fdt");
    ASSERT_FALSE(nostruct.ok());
    EXPECT_NE(nostruct.error().detail.find("files_struct"), std::string::npos);
}

TEST(BridgeBtfProfile, BitfieldMemberIsRejected) {
    auto prof = BtfProfile::from_blob(build_btf(true));
    ASSERT_TRUE(prof.ok());
    EXPECT_EQ(prof->member("task_struct", "in_execve").fault(), Fault::kInvalidFormat);
}

TEST(BridgeBtfProfile, WideAnonymousNestingIsBounded) {
    // 64 anonymous members per level, 5 levels: 64^5 visits if the search were unbounded.
    BtfPtr b(btf__new_empty());
    ASSERT_TRUE(b);
    struct btf* p = b.get();
    const int i32 = btf__add_int(p, "int", 4, BTF_INT_SIGNED);
    int inner = btf__add_struct(p, nullptr, 4);
    btf__add_field(p, "x", i32, 0, 0);
    for (int level = 0; level < 5; ++level) {
        const int outer = btf__add_struct(p, nullptr, 4);
        for (int i = 0; i < 64; ++i) btf__add_field(p, nullptr, inner, 0, 0);
        inner = outer;
    }
    btf__add_struct(p, "task_struct", 4);
    btf__add_field(p, nullptr, inner, 0, 0);
    std::uint32_t size = 0;
    const auto* raw = static_cast<const std::byte*>(btf__raw_data(p, &size));
    ASSERT_NE(raw, nullptr);
    auto prof = BtfProfile::from_blob(std::span(raw, size));
    ASSERT_TRUE(prof.ok()) << prof.error().message();
    EXPECT_EQ(prof->member("task_struct", "x").value_or(MemberInfo{99, 0}).offset, 0U);
    EXPECT_EQ(prof->member("task_struct", "absent").fault(), Fault::kLimitExceeded);
}

TEST(BridgeBtfProfile, GarbageBlobIsAnError) {
    std::vector<std::byte> junk(64, std::byte{0x41});
    EXPECT_FALSE(BtfProfile::from_blob(junk).ok());
    EXPECT_FALSE(BtfProfile::from_blob({}).ok());
    // A truncated valid header must not be accepted either.
    auto blob = build_btf(true);
    blob.resize(blob.size() / 2);
    EXPECT_FALSE(BtfProfile::from_blob(blob).ok());
}

TEST(BridgeBtfProfile, FromRawBtfFile) {
    const auto blob = build_btf(true);
    const auto path = std::filesystem::temp_directory_path() /
                      ("bridge_btf_" + std::to_string(::getpid()) + ".btf");
    {
        std::ofstream out(path, std::ios::binary);
        out.write(reinterpret_cast<const char*>(blob.data()),
                  static_cast<std::streamsize>(blob.size()));
    }
    auto prof = BtfProfile::from_file(path.string());
    std::filesystem::remove(path);
    ASSERT_TRUE(prof.ok()) << prof.error().message();
    EXPECT_EQ(prof->member("mm_struct", "pgd").value_or(MemberInfo{}).offset, 16U);
    EXPECT_FALSE(BtfProfile::from_file("/nonexistent/vmlinux").ok());
}

TEST(BridgeBtfProfile, HostKernelBtfIsPlausible) {
    const std::string path = "/sys/kernel/btf/vmlinux";
    if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not present";
    auto prof = BtfProfile::from_file(path);
    ASSERT_TRUE(prof.ok()) << prof.error().message();
    auto off = prof->linux_offsets();
    ASSERT_TRUE(off.ok()) << off.error().message();
    EXPECT_EQ(off->task_comm_size, 16U);
    EXPECT_GT(off->task_struct_size, 1000U);
    for (std::uint64_t o :
         {off->task_tasks, off->task_pid, off->task_tgid, off->task_comm, off->task_real_parent,
          off->task_mm, off->task_flags, off->task_start_time}) {
        EXPECT_LT(o, off->task_struct_size);
    }
    EXPECT_EQ(off->task_tgid, off->task_pid + 4);  // adjacent in every kernel since 2.6
    EXPECT_LT(off->task_flags, 64U);               // right after __state/stack/usage
    auto mm_size = prof->struct_size("mm_struct");
    ASSERT_TRUE(mm_size.ok());
    EXPECT_LT(off->mm_pgd, *mm_size);
    EXPECT_EQ(off->mm_pgd % 8, 0U);
}

// The optional groups (exe path, mounts, argv, threads, euid/gid) on a real 6.x kernel.
TEST(BridgeBtfProfile, HostKernelBtfHasProcessDetailOffsets) {
    const std::string path = "/sys/kernel/btf/vmlinux";
    if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not present";
    auto prof = BtfProfile::from_file(path);
    ASSERT_TRUE(prof.ok()) << prof.error().message();
    auto off = prof->linux_offsets();
    ASSERT_TRUE(off.ok()) << off.error().message();
    EXPECT_TRUE(off->has_exe);
    EXPECT_TRUE(off->has_mount);
    EXPECT_TRUE(off->has_args);
    EXPECT_TRUE(off->has_threads);
    EXPECT_NE(off->cred_euid, 0U);
    EXPECT_NE(off->cred_gid, 0U);
    EXPECT_EQ(off->qstr_len, 4U);  // union { struct { u32 hash; u32 len; }; u64 hash_len; }
    EXPECT_EQ(off->qstr_name, 8U);
    EXPECT_EQ(off->path_mnt, 0U);
    EXPECT_EQ(off->path_dentry, 8U);
    EXPECT_EQ(off->mm_arg_end, off->mm_arg_start + 8);
    EXPECT_NE(off->signal_nr_threads, 0U);
    // The PID allocator: an xarray of 64-slot nodes, PIDTYPE_PID's list and link at +0.
    EXPECT_TRUE(off->has_pid_hash);
    EXPECT_EQ(off->xa_chunk, 64U);
    EXPECT_EQ(off->xa_node_shift, 0U);
    EXPECT_EQ(off->hlist_first, 0U);
    EXPECT_NE(off->task_pid_links, 0U);
    EXPECT_LT(off->task_pid_links, off->task_struct_size);
    // The run queues: the per-CPU runqueues, and the CFS task list's node in task_struct.se.
    EXPECT_TRUE(off->has_runqueues);
    EXPECT_NE(off->percpu_runqueues, 0U);
    EXPECT_NE(off->rq_cfs_tasks, off->rq_curr);
    EXPECT_LT(off->task_se_group_node, off->task_struct_size);
    EXPECT_NE(off->percpu_current_task, 0U);
    // Kernel function pointers: struct proto's and the N_TTY line discipline's, by name.
    auto object = [&](std::string_view sym) -> const FnPointerObject* {
        for (const auto& o : off->fn_pointer_objects)
            if (o.symbol == sym) return &o;
        return nullptr;
    };
    auto has = [](const FnPointerObject* o, std::string_view m) {
        return o != nullptr && std::any_of(o->members.begin(), o->members.end(),
                                           [&](const NamedMember& n) { return n.name == m; });
    };
    const FnPointerObject* tcp = object("tcp_prot");
    ASSERT_NE(tcp, nullptr);
    EXPECT_TRUE(has(tcp, "getsockopt") && has(tcp, "recvmsg") && has(tcp, "close"));
    EXPECT_FALSE(has(tcp, "name") || has(tcp, "obj_size") || has(tcp, "memory_allocated"));
    EXPECT_GT(tcp->members.size(), 20U);
    EXPECT_TRUE(has(object("n_tty_ops"), "receive_buf"));
    EXPECT_EQ(off->fn_pointer_objects.size(), 12U);
}

// A BTF without the optional structs still yields the required offsets, with the groups off.
TEST(BridgeBtfProfile, MissingOptionalStructsLeaveGroupsOff) {
    auto prof = BtfProfile::from_blob(build_btf(true));
    ASSERT_TRUE(prof.ok());
    auto off = prof->linux_offsets();
    ASSERT_TRUE(off.ok()) << off.error().message();
    EXPECT_FALSE(off->has_exe);
    EXPECT_FALSE(off->has_mount);
    EXPECT_FALSE(off->has_args);
    EXPECT_FALSE(off->has_threads);
    EXPECT_FALSE(off->has_pid_hash);
    EXPECT_EQ(off->cred_euid, 0U);
}

}  // namespace
}  // namespace vmi
