// Kernel integrity sweep over a synthetic guest: a kernel image with kallsyms, a syscall
// table, an IDT, a task list with its process tree, modules on their list and in mod_tree.
// Each check is tampered with the way a rootkit would; the clean guest must give nothing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "bridge_synthetic_kallsyms.hpp"
#include "bridge_test_support.hpp"
#include "vmi/integrity.hpp"
#include "vmi/kernel_discovery.hpp"

namespace vmi {
namespace {

using test::k4K;
using test::KallsymsEncoder;
using test::PageTableBuilder;
using test::SynthSym;

constexpr std::uint64_t kText = 0xffff'ffff'8a00'0000ULL;
constexpr std::uint64_t kImagePa = 0x0100'0000;
constexpr std::uint64_t kImageLen = 0x10'0000;
constexpr std::uint64_t kDirectMap = 0xffff'8880'0000'0000ULL;
constexpr std::uint64_t kHeapPa = 0x0080'0000;
constexpr std::uint64_t kHeapLen = 0x10'0000;

// Image layout (offsets from _text).
constexpr std::uint64_t kSyscallsOff = 0x1000;  // 64 handlers, 0x40 apart
constexpr std::size_t kSyscalls = 64;
constexpr std::uint64_t kVectorsOff = 0x3000;  // 256 IDT handlers, 0x40 apart
constexpr std::uint64_t kEntryOff = 0x7000;    // entry_SYSCALL_64
constexpr std::uint64_t kFuncOff = 0x8000;     // some_func (a chunk of its own)
constexpr std::uint64_t kPatchedOff = 0x9000;  // jump_func: a jump-label site at +0x20
constexpr std::uint64_t kEtextOff = 0x20000;
constexpr std::uint64_t kTableOff = 0x20040;  // sys_call_table
constexpr std::uint64_t kJumpTableOff = 0x20400;
constexpr std::uint64_t kTablesOff = 0x22000;  // kallsyms
constexpr std::uint64_t kErodataOff = 0x40000;
constexpr std::uint64_t kInitTaskOff = 0x50000;
constexpr std::uint64_t kModulesOff = 0x52000;
constexpr std::uint64_t kModTreeOff = 0x52100;
constexpr std::uint64_t kPidNsOff = 0x52200;         // init_pid_ns
constexpr std::uint64_t kPerCpuOffsetOff = 0x52400;  // __per_cpu_offset[]
constexpr std::uint64_t kNrCpuIdsOff = 0x52500;      // nr_cpu_ids
constexpr std::uint64_t kIdtOff = 0x53000;
constexpr std::uint64_t kProtOff = 0x54000;      // tcp_prot (writable data)
constexpr std::uint64_t kRawProtOff = 0xfeff0;   // raw_prot: its last member is past the image
constexpr std::uint64_t kInitTextOff = 0x80000;  // _sinittext: freed after boot
constexpr std::uint64_t kModuleText = 0xffff'ffff'c010'0000ULL;

std::string name3(const char* prefix, std::size_t i) {
    char b[48];
    std::snprintf(b, sizeof b, "%s%03zu", prefix, i);
    return b;
}

std::vector<SynthSym> symbols() {
    std::vector<SynthSym> s = {
        {0, 'A', "fixed_percpu_data", true},
        {0x2c000, 'A', "current_task", true},
        {kText, 'T', "_text"},
        {kText, 'T', "_stext"},
    };
    for (std::size_t i = 0; i < kSyscalls; ++i) {
        s.push_back({kText + kSyscallsOff + i * 0x40, 'T', name3("__x64_sys_f", i)});
    }
    for (std::size_t v = 0; v < 256; ++v) {
        s.push_back({kText + kVectorsOff + v * 0x40, 'T', name3("asm_vec_", v)});
    }
    s.push_back({kText + kEntryOff, 'T', "entry_SYSCALL_64"});
    s.push_back({kText + kFuncOff, 'T', "some_func"});
    s.push_back({kText + kFuncOff + 0x40, 'T', "next_func"});
    s.push_back({kText + kPatchedOff, 'T', "jump_func"});
    s.push_back({kText + kEtextOff, 'T', "_etext"});
    s.push_back({kText + kEtextOff, 'D', "__start_rodata"});
    s.push_back({kText + kTableOff, 'D', "sys_call_table"});
    s.push_back({kText + kTableOff + kSyscalls * 8, 'D', "rodata_after_table"});
    s.push_back({kText + kJumpTableOff, 'D', "__start___jump_table"});
    s.push_back({kText + kJumpTableOff + 16, 'D', "__stop___jump_table"});
    s.push_back({kText + kErodataOff, 'D', "__end_rodata"});
    s.push_back({kText + kInitTaskOff, 'D', "init_task"});
    s.push_back({kText + kModulesOff, 'D', "modules"});
    s.push_back({kText + kModTreeOff, 'd', "mod_tree"});
    s.push_back({kText + kPidNsOff, 'D', "init_pid_ns"});
    s.push_back({kText + kPerCpuOffsetOff, 'D', "__per_cpu_offset"});
    s.push_back({kText + kNrCpuIdsOff, 'D', "nr_cpu_ids"});
    s.push_back({kText + kIdtOff, 'b', "idt_table"});
    s.push_back({kText + kProtOff, 'D', "tcp_prot"});
    s.push_back({kText + kInitTextOff, 'T', "_sinittext"});
    s.push_back({kText + kInitTextOff, 'T', "early_idt_handler_array"});
    s.push_back({kText + kRawProtOff, 'D', "raw_prot"});  // kallsyms is sorted by address
    s.push_back({kText + 0xff000, 'B', "_end"});
    return s;
}

LinuxOffsets offsets() {
    LinuxOffsets o;
    o.task_struct_size = 0x200;
    o.task_tasks = 24;
    o.task_pid = 48;
    o.task_tgid = 52;
    o.task_mm = 64;
    o.task_comm = 80;
    o.task_comm_size = 16;
    o.has_children = true;
    o.task_children = 128;
    o.task_sibling = 144;
    o.percpu_current_task = 0x100;
    o.has_pid_hash = true;  // 6.1's layouts, in a smaller task_struct
    o.pidns_idr = 8;
    o.idr_rt = 0;
    o.xarray_xa_head = 8;
    o.xa_node_shift = 0;
    o.xa_node_slots = 40;
    o.xa_chunk = 64;
    o.pid_tasks = 16;
    o.task_pid_links = 0x100;
    o.hlist_first = 0;
    o.has_runqueues = true;
    o.percpu_runqueues = 0x2000;
    o.rq_cfs_tasks = 0x40;
    o.rq_curr = 0x80;
    o.task_se_group_node = 0x120;
    o.has_modules = true;
    o.module_struct_size = 0x300;
    o.module_state = 0;
    o.module_list = 8;
    o.module_name = 24;
    o.module_name_size = 56;
    o.module_base = 0x140;
    o.module_size_count = 1;
    o.module_sizes[0] = 0x148;
    o.has_mod_tree = true;
    o.mod_tree_root = 0;
    o.latch_tree_tree = 8;
    o.mtn_mod = 0;
    o.mtn_node = 8;
    // udp_prot is not in this kernel's kallsyms: skipped. raw_prot is added by its test.
    const std::vector<NamedMember> proto = {
        {"close", 0}, {"recvmsg", 8}, {"getsockopt", 0x10}, {"ioctl", 0x18}};
    o.fn_pointer_objects = {{"tcp_prot", "proto", 0x40, proto}, {"udp_prot", "proto", 0x40, proto}};
    return o;
}

struct Task {
    std::int32_t pid;
    const char* comm;
    std::size_t parent;
    bool user;
};

class IntegrityGuest {
  public:
    IntegrityGuest() : pt_(mem_, false, 0x20'0000), off_(offsets()) {
        pt_.map_range(kText, kImagePa, kImageLen);
        for (std::uint64_t o = 0; o < kImageLen; o += k4K) mem_.map_page(kImagePa + o);
        pt_.map_range(kDirectMap + kHeapPa, kHeapPa, kHeapLen);
        for (std::uint64_t o = 0; o < kHeapLen; o += k4K) mem_.map_page(kHeapPa + o);
        // Text: deterministic non-zero bytes.
        std::mt19937_64 rng(1);
        std::vector<std::byte> text(kEtextOff);
        for (auto& b : text) b = static_cast<std::byte>(rng() | 1);
        mem_.write(kImagePa, text);
        auto blob = KallsymsEncoder::build(symbols(), kText);
        if (blob.bytes.size() > kErodataOff - kTablesOff) throw std::length_error("kallsyms");
        mem_.write(kImagePa + kTablesOff, blob.bytes);
        for (std::size_t i = 0; i < kSyscalls; ++i) {
            w64(kText + kTableOff + i * 8, kText + kSyscallsOff + i * 0x40);
        }
        for (std::size_t v = 0; v < 256; ++v) set_gate(v, kText + kVectorsOff + v * 0x40);
        w64(kText + kProtOff, kText + kFuncOff);             // close: some_func
        w64(kText + kProtOff + 8, kText + kFuncOff + 0x40);  // recvmsg: next_func
        w64(kText + kProtOff + 0x10, kText + kPatchedOff);   // getsockopt: jump_func
        // Reserved vectors keep their early boot stubs, as on Debian's 6.1.
        for (std::size_t v = 20; v < 32; ++v) set_gate(v, kText + kInitTextOff + v * 9);
        // One jump-label entry: code at jump_func+0x20, relative to the entry.
        const std::uint64_t entry = kText + kJumpTableOff;
        const auto rel = static_cast<std::int32_t>(kText + kPatchedOff + 0x20 - entry);
        mem_.write_u32(pa(entry), static_cast<std::uint32_t>(rel));
        build_tasks({{0, "swapper/0", 0, false},
                     {1, "init", 0, true},
                     {2, "kthreadd", 0, false},
                     {100, "sh", 1, true},
                     {101, "worker", 1, true}});
        build_pid_hash({0, 1, 2, 100, 101});
        build_runqueues({1, 3}, 3);
        build_modules({"kvm", "rootkit"});
        prof_.text_va = kText;
        prof_.init_task_va = kText + kInitTaskOff;
        prof_.offsets = off_;
        auto ks = discover_kernel_symbols(mem_, pt_.cr3(), prof_);
        if (!ks) throw std::runtime_error(ks.error().message());
        syms_.emplace(std::move(*ks));
    }

    static std::uint64_t pa(std::uint64_t va) {
        return va >= kText ? kImagePa + (va - kText) : kHeapPa + (va - kDirectMap - kHeapPa);
    }
    static std::uint64_t heap(std::uint64_t off) { return kDirectMap + kHeapPa + off; }
    void w64(std::uint64_t va, std::uint64_t v) { mem_.write_u64(pa(va), v); }
    std::uint64_t r64(std::uint64_t va) { return *mem_.read_u64(pa(va)); }
    BufferMemory& mem() { return mem_; }

    void set_gate(std::size_t v, std::uint64_t handler) {
        const std::uint64_t g = kText + kIdtOff + v * 16;
        const std::uint64_t lo = (handler & 0xffff) | (0x10ULL << 16) | (0x8e00ULL << 32) |
                                 (((handler >> 16) & 0xffff) << 48);
        w64(g, lo);
        w64(g + 8, handler >> 32);
    }

    [[nodiscard]] std::uint64_t task(std::size_t i) const { return tasks_.at(i); }
    [[nodiscard]] std::uint64_t module(std::size_t i) const { return heap(0x40000 + i * 0x1000); }
    static std::uint64_t modules_head() { return kText + kModulesOff; }

    // Unlinks task i from the task list (as a rootkit's list_del does).
    void unlink_task(std::size_t i) {
        const std::uint64_t node = task(i) + off_.task_tasks;
        const std::uint64_t next = r64(node), prev = r64(node + 8);
        w64(prev, next);
        w64(next + 8, prev);
    }
    // Unlinks task i from its parent's children list too.
    void unlink_sibling(std::size_t i) {
        const std::uint64_t node = task(i) + off_.task_sibling;
        const std::uint64_t next = r64(node), prev = r64(node + 8);
        w64(prev, next);
        w64(next + 8, prev);
    }
    // The PID hash: init_pid_ns.idr's head, a root node (shift 6) and leaf nodes (shift 0),
    // one struct pid per task but the idle task.
    static std::uint64_t pid_ns() { return kText + kPidNsOff; }
    static std::uint64_t xa_head() { return pid_ns() + 8 + 0 + 8; }
    static std::uint64_t pid_root() { return heap(0x80000); }
    static std::uint64_t pid_leaf(std::size_t k) { return heap(0x81000 + k * 0x1000); }
    static std::uint64_t pid_struct(std::size_t i) { return heap(0x70000 + i * 0x40); }
    static std::uint64_t slot(std::uint64_t node, std::size_t i) { return node + 40 + i * 8; }
    // Two CPUs: CPU 0 queues tasks `queued` (its CFS list) and runs `running`; CPU 1 idles.
    static constexpr std::uint32_t kCpus = 2;
    static std::uint64_t runqueue(std::uint32_t cpu) {
        return heap(0xc0000 + cpu * 0x10000) + offsets().percpu_runqueues;
    }
    void build_runqueues(const std::vector<std::size_t>& queued, std::size_t running) {
        mem_.write_u32(pa(kText + kNrCpuIdsOff), kCpus);
        for (std::uint32_t c = 0; c < kCpus; ++c) {
            w64(kText + kPerCpuOffsetOff + 8 * c, heap(0xc0000 + c * 0x10000));
            const std::uint64_t head = runqueue(c) + off_.rq_cfs_tasks;
            std::vector<std::uint64_t> nodes{head};
            if (c == 0) {
                for (std::size_t i : queued) nodes.push_back(task(i) + off_.task_se_group_node);
            }
            for (std::size_t k = 0; k < nodes.size(); ++k) {
                w64(nodes[k], nodes[(k + 1) % nodes.size()]);
                w64(nodes[k] + 8, nodes[(k + nodes.size() - 1) % nodes.size()]);
            }
            w64(runqueue(c) + off_.rq_curr, c == 0 ? task(running) : task(0));
        }
    }
    void unlink_module(std::size_t i) {
        const std::uint64_t node = module(i) + off_.module_list;
        const std::uint64_t next = r64(node), prev = r64(node + 8);
        w64(prev, next);
        w64(next + 8, prev);
    }

    IntegrityContext context() {
        IntegrityContext c;
        c.mem = &mem_;
        c.cr3 = pt_.cr3();
        c.symbols = &*syms_;
        c.offsets = &off_;
        c.init_task_va = kText + kInitTaskOff;
        auto mods = list_modules(mem_, pt_.cr3(), off_, modules_head());
        if (mods) {
            c.modules = std::move(*mods);
            c.modules_known = true;
        }
        return c;
    }
    LinuxOffsets& off() { return off_; }

  private:
    void build_tasks(const std::vector<Task>& ts) {
        for (std::size_t i = 0; i < ts.size(); ++i) {
            tasks_.push_back(i == 0 ? kText + kInitTaskOff : heap(0x1000 + i * 0x1000));
        }
        for (std::size_t i = 0; i < ts.size(); ++i) {
            const std::uint64_t t = tasks_[i];
            mem_.write_u32(pa(t + off_.task_pid), static_cast<std::uint32_t>(ts[i].pid));
            mem_.write_u32(pa(t + off_.task_tgid), static_cast<std::uint32_t>(ts[i].pid));
            std::string comm = ts[i].comm;
            comm.resize(16, '\0');
            mem_.write(pa(t + off_.task_comm), std::as_bytes(std::span(comm)));
            if (ts[i].user) w64(t + off_.task_mm, heap(0x30000 + i * 0x100));
            const std::uint64_t next = tasks_[(i + 1) % ts.size()];
            const std::uint64_t prev = tasks_[(i + ts.size() - 1) % ts.size()];
            w64(t + off_.task_tasks, next + off_.task_tasks);
            w64(t + off_.task_tasks + 8, prev + off_.task_tasks);
        }
        // children lists: each parent's children are linked through their sibling nodes.
        for (std::size_t p = 0; p < ts.size(); ++p) {
            std::vector<std::uint64_t> nodes{tasks_[p] + off_.task_children};
            for (std::size_t c = 1; c < ts.size(); ++c) {
                if (ts[c].parent == p) nodes.push_back(tasks_[c] + off_.task_sibling);
            }
            for (std::size_t k = 0; k < nodes.size(); ++k) {
                w64(nodes[k], nodes[(k + 1) % nodes.size()]);
                w64(nodes[k] + 8, nodes[(k + nodes.size() - 1) % nodes.size()]);
            }
        }
        for (std::size_t i = 1; i < ts.size(); ++i) {  // leaf tasks: empty children lists
            const std::uint64_t c = tasks_[i] + off_.task_children;
            if (r64(c) == 0) {
                w64(c, c);
                w64(c + 8, c);
            }
        }
    }

    void build_pid_hash(const std::vector<std::uint64_t>& pids) {
        w64(xa_head(), pid_root() | 2);
        mem_.write(pa(pid_root()), std::vector<std::byte>{std::byte{6}});  // shift
        for (std::size_t i = 1; i < tasks_.size(); ++i) {
            const std::uint64_t nr = pids.at(i);
            const std::uint64_t leaf = pid_leaf(nr / 64);
            w64(slot(pid_root(), nr / 64), leaf | 2);
            w64(slot(leaf, nr % 64), pid_struct(i));
            w64(pid_struct(i) + off_.pid_tasks, tasks_[i] + off_.task_pid_links);
            w64(tasks_[i] + off_.task_pid_links + 8, pid_struct(i) + off_.pid_tasks);
        }
    }

    void build_modules(const std::vector<std::string>& names) {
        std::vector<std::uint64_t> nodes{modules_head()};
        for (std::size_t i = 0; i < names.size(); ++i) {
            nodes.push_back(module(i) + off_.module_list);
        }
        for (std::size_t k = 0; k < nodes.size(); ++k) {
            w64(nodes[k], nodes[(k + 1) % nodes.size()]);
            w64(nodes[k] + 8, nodes[(k + nodes.size() - 1) % nodes.size()]);
        }
        std::uint64_t prev_rb = 0;
        for (std::size_t i = 0; i < names.size(); ++i) {
            const std::uint64_t m = module(i);
            std::string n = names[i];
            n.resize(off_.module_name_size, '\0');
            mem_.write(pa(m + off_.module_name), std::as_bytes(std::span(n)));
            w64(m + off_.module_base, kModuleText + i * 0x10'0000);
            mem_.write_u32(pa(m + off_.module_sizes[0]), 0x8000);
            // mod_tree_node at module+0x180: {mod, latch node[0] (rb_node), node[1]}.
            const std::uint64_t mtn = m + 0x180, rb = mtn + off_.mtn_node;
            w64(mtn + off_.mtn_mod, m);
            if (prev_rb == 0) {
                w64(kText + kModTreeOff + off_.mod_tree_root + off_.latch_tree_tree, rb);
            } else {
                w64(prev_rb + 8, rb);  // rb_right of the previous module
            }
            prev_rb = rb;
        }
    }

    BufferMemory mem_;
    PageTableBuilder pt_;
    LinuxOffsets off_;
    GuestKernelProfile prof_;
    std::optional<KernelSymbols> syms_;
    std::vector<std::uint64_t> tasks_;
};

std::string dump(const IntegrityReport& r) {
    std::string s;
    for (const auto& f : r.findings) {
        s += std::string(to_string(f.severity)) + " " + std::string(to_string(f.kind)) + " " +
             f.message + "\n";
    }
    return s;
}

std::vector<IntegrityFinding> of_kind(const IntegrityReport& r, FindingKind k) {
    std::vector<IntegrityFinding> out;
    std::copy_if(r.findings.begin(), r.findings.end(), std::back_inserter(out),
                 [k](const IntegrityFinding& f) { return f.kind == k; });
    return out;
}

TEST(BridgeIntegrity, CleanGuestHasNoFindings) {
    IntegrityGuest g;
    const auto ctx = g.context();
    auto base = take_integrity_baseline(ctx);
    ASSERT_TRUE(base.ok()) << base.error().message();
    EXPECT_EQ(base->syscalls.size(), kSyscalls);
    EXPECT_EQ(base->idt.size(), 256U);
    EXPECT_EQ(base->text.pages.size(), kEtextOff / k4K);
    EXPECT_GT(base->stats.pages_read, base->text.pages.size());
    const auto abs = sweep_integrity(ctx, nullptr);
    EXPECT_TRUE(abs.findings.empty()) << dump(abs);
    const auto rel = sweep_integrity(ctx, &*base);
    EXPECT_TRUE(rel.findings.empty()) << dump(rel);
    EXPECT_GT(rel.stats.pages_read, 0U);
    EXPECT_GT(rel.stats.bytes_read, 0U);
}

TEST(BridgeIntegrity, SyscallHookIntoAModuleIsCritical) {
    IntegrityGuest g;
    auto ctx = g.context();
    auto base = take_integrity_baseline(ctx);
    ASSERT_TRUE(base.ok());
    g.w64(kText + kTableOff + 5 * 8, kModuleText + 0x1234);  // "kvm" module text
    ctx = g.context();
    const IntegrityBaseline* with = &*base;
    for (const IntegrityBaseline* b : {static_cast<const IntegrityBaseline*>(nullptr), with}) {
        const auto rep = sweep_integrity(ctx, b);
        const auto f = of_kind(rep, FindingKind::kSyscallHook);
        ASSERT_EQ(f.size(), 1U) << dump(rep);
        EXPECT_EQ(f[0].severity, Severity::kCritical);
        EXPECT_EQ(f[0].index, 5);
        EXPECT_EQ(f[0].check, "sys_call_table");
        EXPECT_EQ(f[0].actual, kModuleText + 0x1234);
        EXPECT_EQ(f[0].actual_symbol, "[kvm]+0x1234");
        if (b != nullptr) {
            EXPECT_EQ(f[0].expected_symbol, "__x64_sys_f005+0x0");
            // The table's bytes in rodata changed too: said once, by the table check.
            EXPECT_TRUE(of_kind(rep, FindingKind::kTextModified).empty()) << dump(rep);
        }
    }
}

TEST(BridgeIntegrity, SyscallHookOutsideEverythingAndRedirectsInsideText) {
    IntegrityGuest g;
    auto ctx = g.context();
    auto base = take_integrity_baseline(ctx);
    ASSERT_TRUE(base.ok());
    g.w64(kText + kTableOff + 9 * 8, 0xffff'c900'0000'1000ULL);         // vmalloc space
    g.w64(kText + kTableOff + 7 * 8, kText + kSyscallsOff + 8 * 0x40);  // another handler
    g.w64(kText + kTableOff + 11 * 8, kText + kFuncOff);                // not a handler
    const auto abs = sweep_integrity(ctx, nullptr);
    auto f = of_kind(abs, FindingKind::kSyscallHook);
    ASSERT_EQ(f.size(), 2U) << dump(abs);  // absolute rules cannot see the redirect
    EXPECT_EQ(f[0].index, 9);
    EXPECT_EQ(f[0].severity, Severity::kCritical);
    EXPECT_NE(f[0].message.find("outside kernel text"), std::string::npos) << f[0].message;
    EXPECT_EQ(f[1].index, 11);
    EXPECT_EQ(f[1].severity, Severity::kWarning);
    const auto rel = sweep_integrity(ctx, &*base);
    f = of_kind(rel, FindingKind::kSyscallHook);
    ASSERT_EQ(f.size(), 3U) << dump(rel);
    EXPECT_EQ(f[0].index, 7);
    EXPECT_EQ(f[0].severity, Severity::kCritical);
    EXPECT_EQ(f[0].name, "__x64_sys_f007");  // the entry's own handler
    EXPECT_EQ(f[0].actual_symbol, "__x64_sys_f008+0x0");
    EXPECT_EQ(f[0].expected_symbol, "__x64_sys_f007+0x0");
    EXPECT_EQ(f[2].severity, Severity::kCritical);  // 11: changed since the baseline
}

TEST(BridgeIntegrity, HookedLastEntryIsCheckedAtTheBaselineLength) {
    IntegrityGuest g;
    auto ctx = g.context();
    auto base = take_integrity_baseline(ctx);
    ASSERT_TRUE(base.ok());
    g.w64(kText + kTableOff + (kSyscalls - 1) * 8, 0xffff'c900'0000'1000ULL);
    const auto rep = sweep_integrity(ctx, &*base);
    const auto f = of_kind(rep, FindingKind::kSyscallHook);
    ASSERT_EQ(f.size(), 1U) << dump(rep);
    EXPECT_EQ(f[0].index, static_cast<std::int64_t>(kSyscalls - 1));
}

TEST(BridgeIntegrity, IdtHandlerOutsideTextIsCritical) {
    IntegrityGuest g;
    auto ctx = g.context();
    auto base = take_integrity_baseline(ctx);
    ASSERT_TRUE(base.ok());
    g.set_gate(14, 0xffff'ffff'c0f0'0000ULL);
    g.set_gate(3, kText + kVectorsOff + 4 * 0x40);
    g.set_gate(40, kText + kInitTextOff + 40 * 9);  // an early stub, but not an exception
    const auto abs = sweep_integrity(ctx, nullptr);
    auto f = of_kind(abs, FindingKind::kIdtHook);
    ASSERT_EQ(f.size(), 2U) << dump(abs);
    EXPECT_EQ(f[0].index, 14);
    EXPECT_EQ(f[0].severity, Severity::kCritical);
    EXPECT_EQ(f[1].index, 40);
    const auto rel = sweep_integrity(ctx, &*base);
    f = of_kind(rel, FindingKind::kIdtHook);
    ASSERT_EQ(f.size(), 3U) << dump(rel);
    EXPECT_EQ(f[0].index, 3);
    EXPECT_EQ(f[0].expected_symbol, "asm_vec_003+0x0");
    EXPECT_EQ(f[0].actual_symbol, "asm_vec_004+0x0");
}

TEST(BridgeIntegrity, SyscallMsrsAreCheckedAgainstTheEntrySymbols) {
    IntegrityGuest g;
    auto ctx = g.context();
    VcpuView ok;
    ok.lstar = kText + kEntryOff;
    VcpuView bad;
    bad.lstar = kModuleText + 0x10;
    ctx.vcpus = {ok, bad};
    const auto rep = sweep_integrity(ctx, nullptr);
    const auto f = of_kind(rep, FindingKind::kMsrHook);
    ASSERT_EQ(f.size(), 1U) << dump(rep);
    EXPECT_EQ(f[0].check, "LSTAR");
    EXPECT_EQ(f[0].index, 1);
    EXPECT_EQ(f[0].severity, Severity::kCritical);
    EXPECT_EQ(f[0].expected_symbol, "entry_SYSCALL_64+0x0");
    EXPECT_EQ(f[0].actual_symbol, "[kvm]+0x10");
}

TEST(BridgeIntegrity, ChangedTextByteIsNamedBySymbol) {
    IntegrityGuest g;
    auto ctx = g.context();
    auto base = take_integrity_baseline(ctx);
    ASSERT_TRUE(base.ok());
    const std::uint64_t at = IntegrityGuest::pa(kText + kFuncOff + 0x10);
    std::byte b{};
    ASSERT_TRUE(g.mem().read_phys(at, std::span(&b, 1)));
    b ^= std::byte{0xff};
    g.mem().write(at, std::span(&b, 1));
    const auto rep = sweep_integrity(ctx, &*base);
    const auto f = of_kind(rep, FindingKind::kTextModified);
    ASSERT_EQ(f.size(), 1U) << dump(rep);
    EXPECT_EQ(f[0].name, "some_func");
    EXPECT_EQ(f[0].check, "text");
    EXPECT_EQ(f[0].actual, kText + kFuncOff);
    EXPECT_NE(f[0].message.find("some_func"), std::string::npos) << f[0].message;
    EXPECT_EQ(f[0].message.find("next_func"), std::string::npos) << f[0].message;
}

TEST(BridgeIntegrity, ChangedRodataIsFoundAndJumpLabelSitesAreNot) {
    IntegrityGuest g;
    auto ctx = g.context();
    auto base = take_integrity_baseline(ctx);
    ASSERT_TRUE(base.ok());
    // A static key flipped: the kernel rewrites the 5-byte site itself.
    const std::vector<std::byte> jmp = {std::byte{0xe9}, std::byte{1}, std::byte{2}, std::byte{3},
                                        std::byte{4}};
    g.mem().write(IntegrityGuest::pa(kText + kPatchedOff + 0x20), jmp);
    auto rep = sweep_integrity(ctx, &*base);
    EXPECT_TRUE(rep.findings.empty()) << dump(rep);
    // The same bytes one past the site are a change.
    g.mem().write(IntegrityGuest::pa(kText + kPatchedOff + 0x21), jmp);
    rep = sweep_integrity(ctx, &*base);
    EXPECT_EQ(of_kind(rep, FindingKind::kTextModified).size(), 1U) << dump(rep);
    // rodata (the string table area after the syscall table).
    g.w64(kText + kTableOff + kSyscalls * 8 + 0x100, 0x4141414141414141ULL);
    rep = sweep_integrity(ctx, &*base);
    const auto f = of_kind(rep, FindingKind::kTextModified);
    ASSERT_EQ(f.size(), 2U) << dump(rep);
    EXPECT_EQ(f[1].check, "rodata");
    EXPECT_EQ(f[1].name, "rodata_after_table");
}

TEST(BridgeIntegrity, ModuleUnlinkedFromTheListIsHidden) {
    IntegrityGuest g;
    g.unlink_module(1);
    const auto ctx = g.context();
    ASSERT_EQ(ctx.modules.size(), 1U);
    const auto rep = sweep_integrity(ctx, nullptr);
    const auto f = of_kind(rep, FindingKind::kHiddenModule);
    ASSERT_EQ(f.size(), 1U) << dump(rep);
    EXPECT_EQ(f[0].name, "rootkit");
    EXPECT_EQ(f[0].severity, Severity::kCritical);
    EXPECT_EQ(f[0].actual, g.module(1));
}

TEST(BridgeIntegrity, UnloadingModuleOffTheListIsOnlyAWarning) {
    IntegrityGuest g;
    g.unlink_module(1);
    g.mem().write_u32(IntegrityGuest::pa(g.module(1)), 2);  // MODULE_STATE_GOING
    const auto rep = sweep_integrity(g.context(), nullptr);
    const auto f = of_kind(rep, FindingKind::kHiddenModule);
    ASSERT_EQ(f.size(), 1U) << dump(rep);
    EXPECT_EQ(f[0].severity, Severity::kWarning);
}

TEST(BridgeIntegrity, ModTreeLoopIsAFailedCheckNotAHang) {
    IntegrityGuest g;
    const std::uint64_t rb1 = g.module(1) + 0x180 + 8;
    g.w64(rb1 + 16, g.module(0) + 0x180 + 8);  // rb_left of the second points at the first
    const auto rep = sweep_integrity(g.context(), nullptr);
    const auto f = of_kind(rep, FindingKind::kCheckFailed);
    ASSERT_EQ(f.size(), 1U) << dump(rep);
    EXPECT_EQ(f[0].check, "modules");
    EXPECT_TRUE(of_kind(rep, FindingKind::kHiddenModule).empty());
}

TEST(BridgeIntegrity, TaskUnlinkedFromTheListIsFoundInTheProcessTree) {
    IntegrityGuest g;
    g.unlink_task(3);
    const auto rep = sweep_integrity(g.context(), nullptr);
    const auto f = of_kind(rep, FindingKind::kHiddenTask);
    ASSERT_EQ(f.size(), 1U) << dump(rep);
    EXPECT_EQ(f[0].index, 100);
    EXPECT_EQ(f[0].name, "sh");
    EXPECT_EQ(f[0].severity, Severity::kCritical);
    EXPECT_NE(f[0].message.find("process tree"), std::string::npos);
}

// A vCPU whose per-CPU current_task is task `i` (and whose CR3 is nobody's).
VcpuView running_on_vcpu(IntegrityGuest& g, std::size_t i) {
    VcpuView v;
    v.cr3 = 0x1234000;
    v.gs_base = IntegrityGuest::heap(0x60000);
    g.w64(v.gs_base + g.off().percpu_current_task, g.task(i));
    return v;
}

TEST(BridgeIntegrity, HiddenTaskRunningOnAVcpuIsFoundWithoutTheTree) {
    IntegrityGuest g;
    g.unlink_task(4);
    g.off().has_children = false;
    g.off().has_pid_hash = false;
    auto ctx = g.context();
    ctx.vcpus = {running_on_vcpu(g, 4)};
    const auto rep = sweep_integrity(ctx, nullptr);
    const auto f = of_kind(rep, FindingKind::kHiddenTask);
    ASSERT_EQ(f.size(), 2U) << dump(rep);
    EXPECT_EQ(f[0].index, 101);
    EXPECT_NE(f[0].message.find("vCPU 0"), std::string::npos);
    EXPECT_EQ(f[1].severity, Severity::kWarning);  // its address space is nobody's on the list
}

// An auto-reaped child releases itself (off the list) before its last schedule(): a task
// with PF_EXITING running on a vCPU is not hidden.
TEST(BridgeIntegrity, ExitingTaskOffTheListIsNotHidden) {
    IntegrityGuest g;
    g.unlink_task(4);
    g.off().has_children = false;
    g.off().has_pid_hash = false;
    g.off().task_flags = 0x1f0;
    g.w64(g.task(4) + 0x1f0, 0x4);  // PF_EXITING
    auto ctx = g.context();
    ctx.vcpus = {running_on_vcpu(g, 4)};
    const auto rep = sweep_integrity(ctx, nullptr);
    EXPECT_TRUE(of_kind(rep, FindingKind::kHiddenTask).empty()) << dump(rep);
}

TEST(BridgeIntegrity, TaskOffTheListAndTheTreeIsFoundInThePidHash) {
    IntegrityGuest g;
    g.unlink_task(3);
    g.unlink_sibling(3);
    const auto rep = sweep_integrity(g.context(), nullptr);
    EXPECT_TRUE(of_kind(rep, FindingKind::kCheckFailed).empty()) << dump(rep);
    const auto f = of_kind(rep, FindingKind::kHiddenTask);
    ASSERT_EQ(f.size(), 1U) << dump(rep);
    EXPECT_EQ(f[0].index, 100);
    EXPECT_EQ(f[0].name, "sh");
    EXPECT_EQ(f[0].actual, g.task(3));
    EXPECT_EQ(f[0].severity, Severity::kCritical);
    EXPECT_NE(f[0].message.find("is in the PID hash but is not on the task list"),
              std::string::npos)
        << f[0].message;
    // Without the PID hash's layout the view is skipped: nothing else sees it (it is not
    // queued to run either), nothing fails.
    g.off().has_pid_hash = false;
    g.build_runqueues({1}, 1);
    const auto skipped = sweep_integrity(g.context(), nullptr);
    EXPECT_TRUE(skipped.findings.empty()) << dump(skipped);
}

// Guest memory that the guest changes once, when a sweep reads a given page for the nth time:
// the guest running on while it is read.
class ChangingMemory final : public GuestMemory {
  public:
    ChangingMemory(GuestMemory& backing, std::uint64_t trigger_pa, std::function<void()> change,
                   int nth = 1)
        : backing_(&backing), trigger_(trigger_pa / k4K), change_(std::move(change)), left_(nth) {}
    Status read_phys(std::uint64_t gpa, std::span<std::byte> out) override {
        if (change_ && !out.empty() && gpa / k4K <= trigger_ &&
            (gpa + out.size() - 1) / k4K >= trigger_ && --left_ == 0) {
            std::exchange(change_, nullptr)();
        }
        return backing_->read_phys(gpa, out);
    }

  private:
    GuestMemory* backing_;
    std::uint64_t trigger_;
    std::function<void()> change_;
    int left_;
};

// A walk that meets the list mid-change (here a node that list_del_init left pointing at
// itself) is tried again on fresh pages: the check still runs, nothing is reported.
TEST(BridgeIntegrity, TaskListChangingUnderTheWalkIsWalkedAgain) {
    IntegrityGuest g;
    const std::uint64_t node = g.task(3) + g.off().task_tasks;
    const std::uint64_t next = g.r64(node);
    g.w64(node, node);  // the first walk loops at task 3
    ChangingMemory mem(
        g.mem(), IntegrityGuest::pa(node), [&] { g.w64(node, next); }, 2);
    auto ctx = g.context();
    ctx.mem = &mem;
    const auto rep = sweep_integrity(ctx, nullptr);
    EXPECT_TRUE(rep.findings.empty()) << dump(rep);
    // Broken for good, it is a check that could not run, not a finding.
    g.w64(node, node);
    const auto broken = sweep_integrity(g.context(), nullptr);
    const auto failed = of_kind(broken, FindingKind::kCheckFailed);
    ASSERT_EQ(failed.size(), 1U) << dump(broken);
    EXPECT_NE(failed[0].message.find("task list could not be walked"), std::string::npos);
    EXPECT_TRUE(of_kind(broken, FindingKind::kHiddenTask).empty()) << dump(broken);
}

// A process forked while the sweep reads: off the list when the list is read, linked by the
// time the PID hash is. The confirming second list read must see the guest as it is then,
// not the pages the first read cached (it did, and a busy guest raised false findings).
TEST(BridgeIntegrity, TaskLinkedWhileTheSweepReadsIsNotHidden) {
    IntegrityGuest g;
    g.off().has_children = false;  // the list and the PID hash only
    const std::uint64_t node = g.task(3) + g.off().task_tasks;
    g.unlink_task(3);  // its own next/prev still name its place
    ChangingMemory mem(g.mem(), IntegrityGuest::pa(IntegrityGuest::pid_root()), [&] {
        g.w64(g.r64(node + 8), node);  // prev->next
        g.w64(g.r64(node) + 8, node);  // next->prev
    });
    auto ctx = g.context();
    ctx.mem = &mem;
    const auto rep = sweep_integrity(ctx, nullptr);
    EXPECT_TRUE(of_kind(rep, FindingKind::kHiddenTask).empty()) << dump(rep);
    // The same guest hidden throughout is found: the change above is what clears it.
    IntegrityGuest h;
    h.off().has_children = false;
    h.unlink_task(3);
    const auto hidden = of_kind(sweep_integrity(h.context(), nullptr), FindingKind::kHiddenTask);
    ASSERT_EQ(hidden.size(), 1U);
    EXPECT_EQ(hidden[0].index, 100);
}

// A runnable task unlinked from the list, the tree and the PID hash is still on its CPU's
// run queue; running, it is rq.curr too. Either is enough.
TEST(BridgeIntegrity, TaskHiddenFromEveryListIsFoundOnItsRunQueue) {
    for (const bool running : {false, true}) {
        IntegrityGuest g;
        g.unlink_task(3);
        g.unlink_sibling(3);
        g.w64(IntegrityGuest::slot(IntegrityGuest::pid_leaf(100 / 64), 100 % 64), 0);
        g.build_runqueues(running ? std::vector<std::size_t>{1} : std::vector<std::size_t>{1, 3},
                          running ? 3 : 1);
        const auto rep = sweep_integrity(g.context(), nullptr);
        EXPECT_TRUE(of_kind(rep, FindingKind::kCheckFailed).empty()) << dump(rep);
        const auto f = of_kind(rep, FindingKind::kHiddenTask);
        ASSERT_EQ(f.size(), 1U) << dump(rep);
        EXPECT_EQ(f[0].index, 100);
        EXPECT_EQ(f[0].actual, g.task(3));
        EXPECT_NE(f[0].message.find("is on the run queue of CPU 0"), std::string::npos)
            << f[0].message;
        g.off().has_runqueues = false;  // nothing else sees it
        EXPECT_TRUE(
            of_kind(sweep_integrity(g.context(), nullptr), FindingKind::kHiddenTask).empty());
    }
}

// Hostile run queues: a failed check, never a crash, a hang or a finding.
TEST(BridgeIntegrity, HostileRunQueuesAreAFailedCheckNotAHang) {
    using G = IntegrityGuest;
    struct Case {
        const char* what;
        std::function<void(G&)> tamper;
    };
    const std::vector<Case> cases = {
        {"nr_cpu_ids", [](G& g) { g.mem().write_u32(G::pa(kText + kNrCpuIdsOff), 1U << 30); }},
        {"loop",
         [](G& g) {  // a CFS list whose last node points back at its first
             const std::uint64_t first = g.task(1) + g.off().task_se_group_node;
             g.w64(g.task(3) + g.off().task_se_group_node, first);
         }},
        {"wild", [](G& g) { g.w64(G::runqueue(1) + g.off().rq_cfs_tasks, 0x1234); }},
    };
    for (const Case& c : cases) {
        G g;
        c.tamper(g);
        const auto rep = sweep_integrity(g.context(), nullptr);
        EXPECT_TRUE(of_kind(rep, FindingKind::kHiddenTask).empty()) << c.what << "\n" << dump(rep);
        const auto failed = of_kind(rep, FindingKind::kCheckFailed);
        ASSERT_EQ(failed.size(), 1U) << c.what << "\n" << dump(rep);
        EXPECT_NE(failed[0].message.find("run queues"), std::string::npos) << failed[0].message;
    }
}

// A thread of a hidden group is found through the hash too: reported once, as its leader.
TEST(BridgeIntegrity, PidHashReportsAHiddenGroupOnceAsItsLeader) {
    IntegrityGuest g;
    g.unlink_task(4);
    g.unlink_sibling(4);
    // A thread of 101 (pid 102): a copy of its leader's task_struct with its own pid.
    const std::uint64_t thread = IntegrityGuest::heap(0x9000);
    for (std::uint64_t o = 0; o < 0x200; o += 8) g.w64(thread + o, g.r64(g.task(4) + o));
    g.mem().write_u32(IntegrityGuest::pa(thread + g.off().task_pid), 102);
    const std::uint64_t pid = IntegrityGuest::pid_struct(9);
    g.w64(pid + g.off().pid_tasks, thread + g.off().task_pid_links);
    // Before its leader in the leaf: the leader must still stand for the group.
    g.w64(IntegrityGuest::slot(IntegrityGuest::pid_leaf(1), 101 % 64), pid);
    g.w64(IntegrityGuest::slot(IntegrityGuest::pid_leaf(1), 102 % 64),
          IntegrityGuest::pid_struct(4));
    const auto rep = sweep_integrity(g.context(), nullptr);
    const auto f = of_kind(rep, FindingKind::kHiddenTask);
    ASSERT_EQ(f.size(), 1U) << dump(rep);
    EXPECT_EQ(f[0].index, 101);
    EXPECT_EQ(f[0].actual, g.task(4));
}

// Hostile xarrays: each is a failed check (or ignored), never a crash, a hang or a finding.
TEST(BridgeIntegrity, HostilePidHashIsAFailedCheckNotAHang) {
    using G = IntegrityGuest;
    const std::uint64_t wild = 0xffff'dead'beef'0000ULL;
    struct Case {
        const char* what;
        std::function<void(G&)> tamper;
        bool fails;
    };
    const std::vector<Case> cases = {
        {"leaf slot back to the root (cycle)",
         [](G& g) { g.w64(G::slot(G::pid_leaf(0), 5), G::pid_root() | 2); }, true},
        {"root slot to itself", [](G& g) { g.w64(G::slot(G::pid_root(), 9), G::pid_root() | 2); },
         true},
        {"two parents for one leaf",
         [](G& g) { g.w64(G::slot(G::pid_root(), 2), G::pid_leaf(0) | 2); }, true},
        {"wild node pointer", [wild](G& g) { g.w64(G::slot(G::pid_root(), 3), wild | 2); }, true},
        {"non-canonical node pointer",
         [](G& g) { g.w64(G::slot(G::pid_root(), 3), 0x8000'0000'0000'1002ULL); }, true},
        {"absurd root shift",
         [](G& g) { g.mem().write(G::pa(G::pid_root()), std::vector<std::byte>{std::byte{200}}); },
         true},
        {"leaf with the root's shift",
         [](G& g) { g.mem().write(G::pa(G::pid_leaf(1)), std::vector<std::byte>{std::byte{6}}); },
         true},
        {"wild head", [wild](G& g) { g.w64(G::xa_head(), wild | 2); }, true},
        {"wild pid pointers are ignored",
         [wild](G& g) {
             g.w64(G::slot(G::pid_leaf(0), 7), wild);
             g.w64(G::slot(G::pid_leaf(0), 8), 0x41);   // a value entry
             g.w64(G::slot(G::pid_leaf(0), 9), 0x402);  // a retry entry
             g.w64(G::pid_struct(1) + 16, wild);        // pid->tasks[PIDTYPE_PID].first
         },
         false},
    };
    for (const Case& c : cases) {
        IntegrityGuest g;
        c.tamper(g);
        const auto rep = sweep_integrity(g.context(), nullptr);
        EXPECT_TRUE(of_kind(rep, FindingKind::kHiddenTask).empty()) << c.what << "\n" << dump(rep);
        const auto failed = of_kind(rep, FindingKind::kCheckFailed);
        EXPECT_EQ(failed.size(), c.fails ? 1U : 0U) << c.what << "\n" << dump(rep);
        if (!failed.empty()) {
            EXPECT_EQ(failed[0].check, "tasks");
            EXPECT_NE(failed[0].message.find("PID hash"), std::string::npos) << failed[0].message;
        }
    }
}

std::vector<IntegrityFinding> pointer_hooks(const IntegrityContext& ctx,
                                            const IntegrityBaseline* base) {
    return of_kind(sweep_integrity(ctx, base), FindingKind::kPointerHook);
}

TEST(BridgeIntegrity, KernelPointerIntoAModuleIsCritical) {
    IntegrityGuest g;
    const auto ctx = g.context();
    auto base = take_integrity_baseline(ctx);
    ASSERT_TRUE(base.ok());
    ASSERT_EQ(base->fn_pointers.size(), 4U);  // tcp_prot's; udp_prot is not in kallsyms
    EXPECT_EQ(base->fn_pointers[2].name, "tcp_prot.getsockopt");
    EXPECT_EQ(base->fn_pointers[2].value, kText + kPatchedOff);
    g.w64(kText + kProtOff + 0x10, kModuleText + 0x10'0000 + 0x80);  // into "rootkit"
    const IntegrityBaseline* with = &*base;
    for (const IntegrityBaseline* b : {static_cast<const IntegrityBaseline*>(nullptr), with}) {
        const auto f = pointer_hooks(ctx, b);
        ASSERT_EQ(f.size(), 1U);
        EXPECT_EQ(f[0].severity, Severity::kCritical);
        EXPECT_EQ(f[0].check, "kernel_pointers");
        EXPECT_EQ(f[0].name, "tcp_prot.getsockopt");
        EXPECT_EQ(f[0].actual, kModuleText + 0x10'0080);
        EXPECT_EQ(f[0].actual_symbol, "[rootkit]+0x80");
        EXPECT_NE(f[0].message.find("module code [rootkit]+0x80"), std::string::npos)
            << f[0].message;
        if (b != nullptr) {
            EXPECT_EQ(f[0].expected, kText + kPatchedOff);
            EXPECT_EQ(f[0].expected_symbol, "jump_func+0x0");
            EXPECT_NE(f[0].message.find("(was jump_func+0x0)"), std::string::npos);
        }
    }
    // Put back: nothing, with or without the baseline.
    g.w64(kText + kProtOff + 0x10, kText + kPatchedOff);
    EXPECT_TRUE(pointer_hooks(ctx, &*base).empty());
}

TEST(BridgeIntegrity, KernelPointerChangedWithinTextNeedsTheBaseline) {
    IntegrityGuest g;
    const auto ctx = g.context();
    auto base = take_integrity_baseline(ctx);
    ASSERT_TRUE(base.ok());
    g.w64(kText + kProtOff + 8, kText + kFuncOff + 0x10);  // recvmsg: into some_func
    g.w64(kText + kProtOff, 0);                            // close: cleared
    g.w64(kText + kProtOff + 0x18, kText + kFuncOff);      // ioctl: was NULL
    EXPECT_TRUE(pointer_hooks(ctx, nullptr).empty());      // all in text: absolute rules are quiet
    const auto f = pointer_hooks(ctx, &*base);
    ASSERT_EQ(f.size(), 3U);
    EXPECT_EQ(f[0].name, "tcp_prot.close");
    EXPECT_EQ(f[0].severity, Severity::kWarning);
    EXPECT_EQ(f[0].actual, 0U);
    EXPECT_EQ(f[0].expected_symbol, "some_func+0x0");
    EXPECT_EQ(f[1].name, "tcp_prot.recvmsg");
    EXPECT_EQ(f[1].severity, Severity::kCritical);
    EXPECT_EQ(f[1].expected_symbol, "next_func+0x0");
    EXPECT_EQ(f[1].actual_symbol, "some_func+0x10");
    EXPECT_EQ(f[1].message, "tcp_prot.recvmsg changed from next_func+0x0 to some_func+0x10");
    EXPECT_EQ(f[2].name, "tcp_prot.ioctl");
    EXPECT_EQ(f[2].severity, Severity::kCritical);
    EXPECT_EQ(f[2].message, "tcp_prot.ioctl changed from NULL to some_func+0x0");
}

TEST(BridgeIntegrity, KernelPointerHookedBeforeAttachIsStillFound) {
    IntegrityGuest g;
    g.w64(kText + kProtOff + 8, 0xffff'c900'0000'2000ULL);  // vmalloc space, no module
    const auto ctx = g.context();
    auto base = take_integrity_baseline(ctx);
    ASSERT_TRUE(base.ok());
    const auto f = pointer_hooks(ctx, &*base);
    ASSERT_EQ(f.size(), 1U);
    EXPECT_EQ(f[0].name, "tcp_prot.recvmsg");
    EXPECT_EQ(f[0].severity, Severity::kCritical);
    EXPECT_TRUE(f[0].actual_symbol.empty());
    EXPECT_NE(f[0].message.find("outside kernel text and every listed module"), std::string::npos)
        << f[0].message;
}

TEST(BridgeIntegrity, UnreadableOrHostilePointerObjectsAreFailedChecks) {
    IntegrityGuest g;
    // raw_prot runs past the mapped image; a bogus layout asks for a member 1 TiB in.
    g.off().fn_pointer_objects.push_back({"raw_prot", "proto", 0x1040, {{"close", 0x1018}}});
    g.off().fn_pointer_objects.push_back({"init_task", "proto", 0x40, {{"x", 1ULL << 40}}});
    const auto ctx = g.context();
    auto base = take_integrity_baseline(ctx);
    ASSERT_TRUE(base.ok());
    EXPECT_EQ(base->fn_pointers.size(), 4U);  // tcp_prot's only
    g.w64(kText + kProtOff + 0x10, kModuleText + 0x40);
    const auto rep = sweep_integrity(ctx, &*base);
    std::vector<std::string> failed;
    for (const auto& f : of_kind(rep, FindingKind::kCheckFailed)) {
        if (f.check == "kernel_pointers") failed.push_back(f.message);
    }
    ASSERT_EQ(failed.size(), 2U) << dump(rep);
    EXPECT_NE(failed[0].find("raw_prot unreadable"), std::string::npos) << failed[0];
    EXPECT_NE(failed[1].find("init_task unreadable"), std::string::npos) << failed[1];
    const auto f = of_kind(rep, FindingKind::kPointerHook);  // the readable object still counts
    ASSERT_EQ(f.size(), 1U) << dump(rep);
    EXPECT_EQ(f[0].actual_symbol, "[kvm]+0x40");
    // Without a layout for them, nothing is checked and nothing fails.
    g.off().fn_pointer_objects.clear();
    const auto none = sweep_integrity(g.context(), &*base);
    EXPECT_TRUE(of_kind(none, FindingKind::kPointerHook).empty());
}

TEST(BridgeIntegrity, MissingSymbolsAreFailedChecks) {
    IntegrityGuest g;
    auto ctx = g.context();
    ctx.modules_known = false;
    ctx.init_task_va = 0;
    const auto rep = sweep_integrity(ctx, nullptr);
    EXPECT_EQ(of_kind(rep, FindingKind::kCheckFailed).size(), 2U) << dump(rep);
    IntegrityContext empty;
    const auto none = sweep_integrity(empty, nullptr);
    ASSERT_EQ(none.findings.size(), 1U);
    EXPECT_FALSE(take_integrity_baseline(empty).ok());
}

TEST(BridgeIntegrity, RandomCorruptionNeverCrashes) {
    IntegrityGuest g;
    auto ctx = g.context();
    auto base = take_integrity_baseline(ctx);
    ASSERT_TRUE(base.ok());
    std::mt19937_64 rng(99);
    // Words of the tables, the task structs, the modules and the tree.
    const std::vector<std::pair<std::uint64_t, std::uint64_t>> areas = {
        {kText + kTableOff, kSyscalls * 8},
        {kText + kIdtOff, 4096},
        {kText + kInitTaskOff, 0x200},
        {kText + kModulesOff, 0x200},
        {IntegrityGuest::heap(0x1000), 0x5000},
        {IntegrityGuest::heap(0x40000), 0x2000},
        {IntegrityGuest::heap(0x70000), 0x200},
        {IntegrityGuest::heap(0x80000), 0x3000},
        {kText + kPidNsOff, 0x20},
        {kText + kProtOff, 0x40},
    };
    const std::uint64_t values[] = {0,
                                    1,
                                    0xffff'ffff'ffff'ffffULL,
                                    kText + kInitTaskOff,
                                    IntegrityGuest::heap(0x1000),
                                    0xdead'beef'0000ULL};
    for (int round = 0; round < 300; ++round) {
        const auto& [start, len] = areas[rng() % areas.size()];
        const std::uint64_t at = start + (rng() % (len / 8)) * 8;
        const std::uint64_t v = rng() % 2 ? values[rng() % std::size(values)] : rng();
        g.w64(at, v);
        const auto c = g.context();
        const auto rep = sweep_integrity(c, &*base);
        EXPECT_LT(rep.findings.size(), 4096U);
    }
}

}  // namespace
}  // namespace vmi
