#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "bridge_synthetic_guest.hpp"
#include "bridge_test_support.hpp"
#include "vmi/linux_model.hpp"
#include "vmi/page_walker.hpp"

namespace vmi {
namespace {

using test::k2M;
using test::k4K;
using test::PageTableBuilder;

// Offsets shaped like a 6.x kernel (fields spread over more than one page).
LinuxOffsets offsets() {
    LinuxOffsets o;
    o.task_struct_size = 0x2600;
    o.task_flags = 0x2c;
    o.task_tasks = 0x4d0;
    o.task_mm = 0x520;
    o.task_pid = 0x5a0;
    o.task_tgid = 0x5a4;
    o.task_real_parent = 0x5b0;
    o.task_start_time = 0x6d0;
    o.task_self_exec_id = 0x8a8;
    o.task_comm = 0x738;
    o.task_comm_size = 16;
    o.mm_pgd = 0x48;
    return o;
}

constexpr std::uint64_t kDirectMap = 0xffff'8880'0000'0000ULL;   // page_offset_base
constexpr std::uint64_t kInitTaskVa = 0xffff'ffff'82a1'2940ULL;  // in the kernel image
constexpr std::uint64_t kInitTaskPa = 0x0300'0000ULL + 0x940;

struct FakeTask {
    std::int32_t tgid;
    std::string comm;      // raw bytes, up to 16, written without NUL if 16 long
    std::uint64_t pgd_pa;  // 0: kernel thread
    std::uint32_t flags;
    std::uint64_t start_time;
    std::size_t parent;  // index into the task vector
};

// A guest with init_task in the kernel image and other tasks/mm in the direct map, all reached
// through one set of kernel page tables.
class SyntheticGuest {
  public:
    SyntheticGuest() : pt_(mem_, false) {
        // Direct map of the first 64 MiB with 2 MiB pages.
        for (std::uint64_t pa = 0; pa < 64 * k2M / 2; pa += k2M) pt_.map(kDirectMap + pa, pa, k2M);
        // Kernel image: init_task's pages with 4 KiB pages.
        pt_.map_range(kInitTaskVa & ~(k4K - 1), kInitTaskPa & ~(k4K - 1), 4 * k4K);
    }

    // Task i>0 lives at pa 0x40'0000 + i*0x2800 (not page aligned: fields straddle pages).
    static std::uint64_t task_pa(std::size_t i) {
        return i == 0 ? kInitTaskPa : 0x40'0000 + i * 0x2800;
    }
    static std::uint64_t task_va(std::size_t i) {
        return i == 0 ? kInitTaskVa : kDirectMap + task_pa(i);
    }
    static std::uint64_t mm_pa(std::size_t i) { return 0x80'0000 + i * k4K; }

    void build(const std::vector<FakeTask>& tasks) {
        const LinuxOffsets o = offsets();
        for (std::size_t i = 0; i < tasks.size(); ++i) {
            const FakeTask& t = tasks[i];
            const std::uint64_t pa = task_pa(i);
            mem_.write_u32(pa + o.task_flags, t.flags);
            mem_.write_u32(pa + o.task_pid, static_cast<std::uint32_t>(t.tgid));
            mem_.write_u32(pa + o.task_tgid, static_cast<std::uint32_t>(t.tgid));
            mem_.write_u64(pa + o.task_real_parent, task_va(t.parent));
            mem_.write_u64(pa + o.task_start_time, t.start_time);
            mem_.write_u64(pa + o.task_self_exec_id, t.start_time / 1000 + 7);  // distinct per task
            std::string comm = t.comm;
            comm.resize(16, '\0');
            mem_.write(pa + o.task_comm, std::as_bytes(std::span(comm)));
            const std::size_t next = (i + 1) % tasks.size();
            mem_.write_u64(pa + o.task_tasks, task_va(next) + o.task_tasks);
            mem_.write_u64(pa + o.task_tasks + 8,
                           task_va((i + tasks.size() - 1) % tasks.size()) + o.task_tasks);
            if (t.pgd_pa != 0) {
                const std::uint64_t mm = mm_pa(i);
                mem_.write_u64(pa + o.task_mm, kDirectMap + mm);
                mem_.write_u64(mm + o.mm_pgd, kDirectMap + t.pgd_pa);
            } else {
                mem_.write_u64(pa + o.task_mm, 0);
            }
        }
    }

    void set_next(std::size_t i, std::uint64_t value) {
        mem_.write_u64(task_pa(i) + offsets().task_tasks, value);
    }

    BufferMemory& mem() { return mem_; }
    [[nodiscard]] std::uint64_t cr3() const { return pt_.cr3(); }

  private:
    BufferMemory mem_;
    PageTableBuilder pt_;
};

std::vector<FakeTask> four_tasks() {
    return {
        {0, "swapper/0", 0, 0x00200000, 0, 0},
        {1, "systemd", 0x0a0'0000, 0x00400100, 1'000'000, 0},
        {2, "kthreadd", 0, 0x00208040, 2'000'000, 0},
        {1234, std::string("ba\x01sh\xff", 6), 0x0a0'2000, 0x00400000, 9'000'000'000, 1},
        {77, "averyveryverylon", 0x0a0'4000, 0, 42, 3},  // exactly 16 bytes, no NUL
    };
}

TEST(BridgeLinuxModel, ListsTasksWithPidsParentsCommsAndPgds) {
    SyntheticGuest g;
    g.build(four_tasks());
    LinuxGuest guest(g.mem(), offsets(), kInitTaskVa);
    // Pass a KPTI-style user CR3 (bit 12 + PCID): kernel memory must still be reachable.
    auto list = guest.list_processes(g.cr3() | 0x1000 | 0x7);
    ASSERT_TRUE(list.ok()) << list.error().message();
    ASSERT_EQ(list->size(), 5U);
    const auto& p = *list;

    EXPECT_EQ(p[0].task_va, kInitTaskVa);
    EXPECT_EQ(p[0].pid, 0);
    EXPECT_EQ(p[0].ppid, 0);
    EXPECT_EQ(p[0].comm, "swapper/0");
    EXPECT_EQ(p[0].mm_va, 0U);
    EXPECT_EQ(p[0].pgd_pa, 0U);

    EXPECT_EQ(p[1].pid, 1);
    EXPECT_EQ(p[1].ppid, 0);
    EXPECT_EQ(p[1].comm, "systemd");
    EXPECT_EQ(p[1].mm_va, kDirectMap + SyntheticGuest::mm_pa(1));
    EXPECT_EQ(p[1].pgd_pa, 0x0a0'0000U);
    EXPECT_EQ(p[1].flags, 0x00400100U);
    EXPECT_EQ(p[1].start_time_ns, 1'000'000U);
    EXPECT_EQ(p[1].exec_id, 1'007U);

    EXPECT_EQ(p[2].comm, "kthreadd");
    EXPECT_EQ(p[2].pgd_pa, 0U);

    EXPECT_EQ(p[3].pid, 1234);
    EXPECT_EQ(p[3].ppid, 1);
    EXPECT_EQ(p[3].comm, "ba?sh?");
    EXPECT_EQ(p[3].pgd_pa, 0x0a0'2000U);
    EXPECT_EQ(p[3].start_time_ns, 9'000'000'000U);
    EXPECT_EQ(p[3].task_va, SyntheticGuest::task_va(3));

    EXPECT_EQ(p[4].pid, 77);
    EXPECT_EQ(p[4].ppid, 1234);
    EXPECT_EQ(p[4].comm, "averyveryverylon");
}

TEST(BridgeLinuxModel, FindByCr3MatchesKernelAndKptiUserCr3) {
    SyntheticGuest g;
    g.build(four_tasks());
    auto list = LinuxGuest(g.mem(), offsets(), kInitTaskVa).list_processes(g.cr3());
    ASSERT_TRUE(list.ok()) << list.error().message();

    const Process* k = find_by_cr3(*list, 0x0a0'2000 | 0x3);                   // kernel CR3 + PCID
    const Process* u = find_by_cr3(*list, 0x0a0'3000 | 0x803 | (1ULL << 63));  // user CR3
    ASSERT_NE(k, nullptr);
    ASSERT_NE(u, nullptr);
    EXPECT_EQ(k->pid, 1234);
    EXPECT_EQ(u->pid, 1234);
    EXPECT_EQ(find_by_cr3(*list, 0x0a0'0000)->pid, 1);
    EXPECT_EQ(find_by_cr3(*list, 0x0b0'0000), nullptr);
    EXPECT_EQ(find_by_cr3(*list, 0), nullptr);  // kernel threads (pgd_pa 0) never match
}

TEST(BridgeLinuxModel, FindByCr3PrefersExactMatch) {
    std::vector<Process> ps(2);
    ps[0].pid = 10;
    ps[0].pgd_pa = 0x5000;
    ps[1].pid = 11;
    ps[1].pgd_pa = 0x4000;
    EXPECT_EQ(find_by_cr3(ps, 0x4000)->pid, 11);
    EXPECT_EQ(find_by_cr3(ps, 0x5000)->pid, 10);
}

TEST(BridgeLinuxModel, CycleNotThroughHeadIsBoundedError) {
    SyntheticGuest g;
    g.build(four_tasks());
    // bash -> systemd again: never returns to init_task.
    g.set_next(3, SyntheticGuest::task_va(1) + offsets().task_tasks);
    auto list = LinuxGuest(g.mem(), offsets(), kInitTaskVa).list_processes(g.cr3());
    ASSERT_FALSE(list.ok());
    EXPECT_EQ(list.fault(), Fault::kCycle);
}

TEST(BridgeLinuxModel, SelfLoopIsCycle) {
    SyntheticGuest g;
    g.build(four_tasks());
    g.set_next(2, SyntheticGuest::task_va(2) + offsets().task_tasks);
    EXPECT_EQ(LinuxGuest(g.mem(), offsets(), kInitTaskVa).list_processes(g.cr3()).fault(),
              Fault::kCycle);
}

TEST(BridgeLinuxModel, WildPointersAreErrors) {
    const std::pair<std::uint64_t, Fault> cases[] = {
        {0, Fault::kBadPointer},                            // NULL
        {0x4141'4141'4141'4141ULL, Fault::kBadPointer},     // user half, non-canonical
        {0xffff'ffff'ffff'fff8ULL, Fault::kBadPointer},     // wraps when reading the task
        {kDirectMap + 0x3f00'0000ULL, Fault::kNotPresent},  // beyond the direct map
        {kDirectMap + 0x40'0000 + 3, Fault::kBadPointer},   // misaligned
    };
    for (const auto& [next, fault] : cases) {
        SyntheticGuest g;
        g.build(four_tasks());
        g.set_next(1, next);
        auto list = LinuxGuest(g.mem(), offsets(), kInitTaskVa).list_processes(g.cr3());
        ASSERT_FALSE(list.ok()) << std::hex << next;
        EXPECT_EQ(list.fault(), fault) << std::hex << next << " " << list.error().message();
    }
}

TEST(BridgeLinuxModel, MappedButMissingRamIsReadError) {
    SyntheticGuest g;
    g.build(four_tasks());
    // Mapped by the direct map (2 MiB page) but no RAM behind it in the BufferMemory.
    g.set_next(1, kDirectMap + 0x1e0'0000 + offsets().task_tasks);
    auto list = LinuxGuest(g.mem(), offsets(), kInitTaskVa).list_processes(g.cr3());
    ASSERT_FALSE(list.ok());
    EXPECT_EQ(list.fault(), Fault::kUnmapped);
}

TEST(BridgeLinuxModel, BadParentOrMmDegradesFieldsOnly) {
    SyntheticGuest g;
    g.build(four_tasks());
    const LinuxOffsets o = offsets();
    g.mem().write_u64(SyntheticGuest::task_pa(3) + o.task_real_parent, 0xdead'beef);
    g.mem().write_u64(SyntheticGuest::mm_pa(4) + o.mm_pgd, kDirectMap + 0x3f00'0000ULL);
    auto list = LinuxGuest(g.mem(), offsets(), kInitTaskVa).list_processes(g.cr3());
    ASSERT_TRUE(list.ok()) << list.error().message();
    ASSERT_EQ(list->size(), 5U);
    EXPECT_EQ((*list)[3].ppid, -1);
    EXPECT_EQ((*list)[3].pgd_pa, 0x0a0'2000U);
    EXPECT_NE((*list)[4].mm_va, 0U);
    EXPECT_EQ((*list)[4].pgd_pa, 0U);
}

TEST(BridgeLinuxModel, ListLongerThanLimitIsError) {
    SyntheticGuest g;
    g.build(four_tasks());
    auto list = LinuxGuest(g.mem(), offsets(), kInitTaskVa, false, 3).list_processes(g.cr3());
    ASSERT_FALSE(list.ok());
    EXPECT_EQ(list.fault(), Fault::kLimitExceeded);
    EXPECT_TRUE(LinuxGuest(g.mem(), offsets(), kInitTaskVa, false, 5).list_processes(g.cr3()).ok());
}

TEST(BridgeLinuxModel, AbsurdOffsetsAreRejected) {
    SyntheticGuest g;
    g.build(four_tasks());
    LinuxOffsets o = offsets();
    o.task_comm = 1ULL << 40;
    auto list = LinuxGuest(g.mem(), o, kInitTaskVa).list_processes(g.cr3());
    EXPECT_EQ(list.fault(), Fault::kInvalidFormat);
}

TEST(BridgeLinuxModel, SanitizeComm) {
    const char raw[] = {'a', '\t', 'b', '\x7f', 'c', '\0', 'z'};
    EXPECT_EQ(sanitize_comm(std::as_bytes(std::span(raw))), "a?b?c");
}

// --- Process details: credentials, exe path, argv, threads -------------------------------

using test::SyntheticLinux;
using test::SynthProcess;

std::vector<SynthProcess> detail_procs() {
    std::vector<SynthProcess> v(5);
    v[0] = {0, 0, "swapper/0", "", {}, 0, 0, 0, 1};
    v[1] = {1, 0, "init", "/sbin/init", {"/sbin/init"}, 0, 0, 0, 1};
    v[2] = {2, 0, "kthreadd", "", {}, 0, 0, 0, 1};
    v[3] = {412,
            1,
            "vmi-canary-ab1",
            "/tmp/canary/vmi-canary-ab1",
            {"/tmp/canary/vmi-canary-ab1", "--flag", "", "x y"},
            1000,
            0,
            100,
            3};
    v[4] = {413, 3, "sh", "/usr/bin/sh", {"sh", "-c", std::string(5000, 'a')}, 33, 33, 33, 1};
    return v;
}

struct DetailGuest {
    SyntheticLinux g{test::realistic_offsets(), 32ULL << 20};
    DetailGuest() {
        g.add_mount("/usr");
        g.build(detail_procs());
    }
    Result<std::vector<Process>> list(const ListOptions& opts = {}) {
        return LinuxGuest(g.mem(), g.offsets(), g.init_task_va()).list_processes(g.cr3(), opts);
    }
    Process get(std::size_t i) {
        auto l = list();
        EXPECT_TRUE(l.ok()) << l.error().message();
        return l.ok() && i < l->size() ? (*l)[i] : Process{};
    }
};

TEST(BridgeLinuxModelDetails, CredsExeArgvThreads) {
    DetailGuest d;
    auto list = d.list();
    ASSERT_TRUE(list.ok()) << list.error().message();
    ASSERT_EQ(list->size(), 5U);
    const auto& p = *list;
    EXPECT_EQ(p[0].exe, "");
    EXPECT_TRUE(p[0].argv.empty());
    EXPECT_EQ(p[0].threads, 1);
    EXPECT_EQ(p[1].exe, "/sbin/init");
    EXPECT_EQ(p[1].argv, std::vector<std::string>{"/sbin/init"});
    EXPECT_EQ(p[2].exe, "");  // kernel thread: no mm

    EXPECT_EQ(p[3].pid, 412);
    EXPECT_EQ(p[3].ppid, 1);
    EXPECT_EQ(p[3].uid, 1000);
    EXPECT_EQ(p[3].euid, 0);
    EXPECT_EQ(p[3].gid, 100);
    EXPECT_EQ(p[3].exe, "/tmp/canary/vmi-canary-ab1");
    EXPECT_EQ(p[3].argv,
              (std::vector<std::string>{"/tmp/canary/vmi-canary-ab1", "--flag", "", "x y"}));
    EXPECT_FALSE(p[3].argv_truncated);
    EXPECT_EQ(p[3].threads, 3);

    // Crosses the /usr mount; argv longer than kMaxArgBytes is cut, not dropped.
    EXPECT_EQ(p[4].exe, "/usr/bin/sh");
    EXPECT_EQ(p[4].uid, 33);
    ASSERT_EQ(p[4].argv.size(), 3U);
    EXPECT_EQ(p[4].argv[0], "sh");
    EXPECT_EQ(p[4].argv[2].size(), LinuxGuest::kMaxArgBytes - 6);
    EXPECT_TRUE(p[4].argv_truncated);
}

// A task read on its own (as for a process unlinked from the task list) is the same
// Process the listing gives; wild addresses are errors.
TEST(BridgeLinuxModelDetails, ReadProcessByTaskAddress) {
    DetailGuest d;
    auto list = d.list();
    ASSERT_TRUE(list.ok()) << list.error().message();
    const LinuxGuest guest(d.g.mem(), d.g.offsets(), d.g.init_task_va());
    for (const Process& want : *list) {
        auto got = guest.read_process(d.g.cr3(), want.task_va);
        ASSERT_TRUE(got.ok()) << got.error().message();
        EXPECT_EQ(got->pid, want.pid);
        EXPECT_EQ(got->ppid, want.ppid);
        EXPECT_EQ(got->comm, want.comm);
        EXPECT_EQ(got->exe, want.exe);
        EXPECT_EQ(got->argv, want.argv);
        EXPECT_EQ(got->uid, want.uid);
        EXPECT_EQ(got->threads, want.threads);
        EXPECT_EQ(got->start_time_ns, want.start_time_ns);
    }
    EXPECT_FALSE(guest.read_process(d.g.cr3(), 0x1234).ok());
    EXPECT_FALSE(guest.read_process(d.g.cr3(), 0xffffffffffff0000ULL).ok());
}

TEST(BridgeLinuxModelDetails, OptionsAndMissingOffsetsLeaveFieldsUnknown) {
    DetailGuest d;
    ListOptions none;
    none.exe = none.argv = none.threads = false;
    auto l = d.list(none);
    ASSERT_TRUE(l.ok());
    EXPECT_EQ((*l)[3].exe, "");
    EXPECT_TRUE((*l)[3].argv.empty());
    EXPECT_EQ((*l)[3].threads, -1);
    EXPECT_EQ((*l)[3].uid, 1000);

    LinuxOffsets o = d.g.offsets();
    o.has_exe = o.has_args = o.has_threads = false;
    o.cred_euid = o.cred_gid = 0;
    auto l2 = LinuxGuest(d.g.mem(), o, d.g.init_task_va()).list_processes(d.g.cr3());
    ASSERT_TRUE(l2.ok());
    EXPECT_EQ((*l2)[3].exe, "");
    EXPECT_EQ((*l2)[3].euid, -1);
    EXPECT_EQ((*l2)[3].gid, -1);
    EXPECT_EQ((*l2)[3].threads, -1);

    // Without struct mount the walk stops at the root of the mounted file system.
    o = d.g.offsets();
    o.has_mount = false;
    auto l3 = LinuxGuest(d.g.mem(), o, d.g.init_task_va()).list_processes(d.g.cr3());
    ASSERT_TRUE(l3.ok());
    EXPECT_EQ((*l3)[4].exe, "/bin/sh");
    EXPECT_EQ((*l3)[3].exe, "/tmp/canary/vmi-canary-ab1");
}

TEST(BridgeLinuxModelDetails, DentryCycleIsBounded) {
    DetailGuest d;
    const LinuxOffsets& o = d.g.offsets();
    const std::uint64_t leaf = d.g.addrs()[3].dentry;
    const std::uint64_t dir = *d.g.mem().read_u64(SyntheticLinux::pa(leaf + o.dentry_d_parent));
    d.g.wu64(dir + o.dentry_d_parent, leaf);  // canary -> leaf -> canary -> ...
    const Process p = d.get(3);
    EXPECT_EQ(p.exe, "");
    EXPECT_EQ(p.argv.size(), 4U);  // the rest of the process is still read
    EXPECT_EQ(d.get(1).exe, "/sbin/init");
}

TEST(BridgeLinuxModelDetails, HostileDentryNamesAreRejected) {
    const std::uint32_t lens[] = {0xffff'ffffU, 256, 0};
    for (std::uint32_t len : lens) {
        DetailGuest d;
        const LinuxOffsets& o = d.g.offsets();
        d.g.wu32(d.g.addrs()[3].dentry + o.dentry_d_name + o.qstr_len, len);
        EXPECT_EQ(d.get(3).exe, "") << len;
    }
    DetailGuest d;
    const LinuxOffsets& o = d.g.offsets();
    d.g.wu64(d.g.addrs()[3].dentry + o.dentry_d_name + o.qstr_name, 0x4141'4141'4141'4141ULL);
    EXPECT_EQ(d.get(3).exe, "");
    d.g.wu64(d.g.addrs()[3].mm + o.mm_exe_file, 0xffff'8880'3f00'0000ULL);  // unmapped RAM
    EXPECT_EQ(d.get(3).exe, "");
    d.g.wu64(d.g.addrs()[3].mm + o.mm_exe_file, 0);
    EXPECT_EQ(d.get(3).exe, "");
}

TEST(BridgeLinuxModelDetails, DeepAndLongPathsAreBounded) {
    SyntheticLinux g(test::realistic_offsets(), 16ULL << 20);
    std::string deep;
    for (int i = 0; i < 100; ++i) deep += "/d";
    std::string longp;
    for (int i = 0; i < 20; ++i) longp += "/" + std::string(250, 'x');
    std::string ok63;
    for (int i = 0; i < 63; ++i) ok63 += "/d";
    std::vector<SynthProcess> v(4);
    v[0] = {0, 0, "swapper/0", "", {}, 0, 0, 0, 1};
    v[1] = {1, 0, "deep", deep + "/x", {"x"}, 0, 0, 0, 1};
    v[2] = {2, 0, "long", longp, {"y"}, 0, 0, 0, 1};
    v[3] = {3, 0, "ok", ok63, {"z"}, 0, 0, 0, 1};
    g.build(v);
    auto l = LinuxGuest(g.mem(), g.offsets(), g.init_task_va()).list_processes(g.cr3());
    ASSERT_TRUE(l.ok()) << l.error().message();
    EXPECT_EQ((*l)[1].exe, "");
    EXPECT_EQ((*l)[1].argv, std::vector<std::string>{"x"});
    EXPECT_EQ((*l)[2].exe, "");
    EXPECT_EQ((*l)[3].exe, ok63);
}

TEST(BridgeLinuxModelDetails, HostileArgRanges) {
    DetailGuest d;
    const LinuxOffsets& o = d.g.offsets();
    const std::uint64_t mm = d.g.addrs()[3].mm;
    const std::uint64_t start = d.g.addrs()[3].arg_start;

    d.g.wu64(mm + o.mm_arg_end, start - 1);  // arg_end < arg_start
    EXPECT_TRUE(d.get(3).argv.empty());

    d.g.wu64(mm + o.mm_arg_end, start + (1ULL << 30));  // 1 GiB: first 4 KiB page only
    Process p = d.get(3);
    EXPECT_TRUE(p.argv_truncated);
    ASSERT_GE(p.argv.size(), 4U);
    EXPECT_EQ(p.argv[0], "/tmp/canary/vmi-canary-ab1");

    d.g.wu64(mm + o.mm_arg_start, 0xffff'ffff'ffff'f000ULL);  // kernel address
    d.g.wu64(mm + o.mm_arg_end, 0xffff'ffff'ffff'ffffULL);
    EXPECT_TRUE(d.get(3).argv.empty());

    d.g.wu64(mm + o.mm_arg_start, 0x1000);  // unmapped in the process
    d.g.wu64(mm + o.mm_arg_end, 0x2000);
    p = d.get(3);
    EXPECT_TRUE(p.argv.empty());
    EXPECT_EQ(p.exe, "/tmp/canary/vmi-canary-ab1");
}

TEST(BridgeLinuxModelDetails, ThreadListCycleIsUnknown) {
    DetailGuest d;
    const LinuxOffsets& o = d.g.offsets();
    const std::uint64_t first = d.g.addrs()[3].task + o.task_thread_node;
    d.g.wu64(first, first);  // loops on itself, never back to signal->thread_head
    EXPECT_EQ(d.get(3).threads, -1);
    EXPECT_EQ(d.get(1).threads, 1);
    d.g.wu64(d.g.addrs()[3].task + o.task_signal, 0x10);
    EXPECT_EQ(d.get(3).threads, -1);
}

}  // namespace
}  // namespace vmi
