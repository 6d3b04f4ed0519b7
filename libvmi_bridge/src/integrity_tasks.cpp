// Hidden tasks by cross-view: the task list (init_task.tasks) against two other routes to the
// same tasks that a rootkit's list_del(&task->tasks) does not touch: the process tree
// (children/sibling lists, and the threads of each group), and what each vCPU runs (its
// per-CPU current task, and its CR3).
#include <algorithm>
#include <array>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "integrity_internal.hpp"
#include "vmi/page_walker.hpp"

namespace vmi::integrity {

namespace {

constexpr std::size_t kMaxListSteps = 1U << 16;  // entries of one list
constexpr std::size_t kMaxTreeSteps = 1U << 20;  // list entries of one whole tree walk

bool kernel_ptr(std::uint64_t va, bool la57) {
    return va != 0 && (va >> 63) != 0 && is_canonical(va, la57) && (va & 7) == 0;
}

struct TaskInfo {
    std::int32_t pid = -1;
    std::int32_t tgid = -1;
    std::string comm;
    std::uint64_t mm = 0;
};

Result<TaskInfo> task_info(Reader& r, std::uint64_t task) {
    const LinuxOffsets& o = *r.ctx().offsets;
    TaskInfo t;
    std::array<std::byte, 8> pidtgid{};
    if (auto st = r.read(task + o.task_pid, std::span(pidtgid).first(4)); !st) return st.error();
    if (auto st = r.read(task + o.task_tgid, std::span(pidtgid).last(4)); !st) return st.error();
    std::memcpy(&t.pid, pidtgid.data(), 4);
    std::memcpy(&t.tgid, pidtgid.data() + 4, 4);
    std::array<std::byte, 16> comm{};
    const std::size_t n = std::min<std::size_t>(o.task_comm_size, comm.size());
    if (r.read(task + o.task_comm, std::span(comm).first(n))) {
        for (std::size_t i = 0; i < n; ++i) {
            const auto c = static_cast<unsigned char>(comm[i]);
            if (c == 0) break;
            t.comm.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
        }
    }
    t.mm = r.u64(task + o.task_mm).value_or(0);
    return t;
}

// The entries of the circular list at `head` (each entry's list_head address), bounded by
// kMaxListSteps and by `budget` (decremented per entry) and cycle-safe; false on a broken list.
bool list_entries(Reader& r, std::uint64_t head, std::vector<std::uint64_t>& out,
                  std::size_t& budget) {
    const bool la57 = r.ctx().la57;
    std::unordered_set<std::uint64_t> seen;
    auto cur = r.u64(head);
    while (cur && *cur != head) {
        if (!kernel_ptr(*cur, la57) || !seen.insert(*cur).second || seen.size() > kMaxListSteps ||
            budget == 0) {
            return false;
        }
        --budget;
        out.push_back(*cur);
        cur = r.u64(*cur);
    }
    return cur.ok();
}

// Thread-group leaders on init_task.tasks.
bool task_list(Reader& r, std::unordered_set<std::uint64_t>& tasks) {
    const LinuxOffsets& o = *r.ctx().offsets;
    const std::uint64_t init = r.ctx().init_task_va;
    std::vector<std::uint64_t> nodes;
    std::size_t budget = kMaxListSteps;
    if (!list_entries(r, init + o.task_tasks, nodes, budget)) return false;
    tasks.insert(init);
    for (std::uint64_t n : nodes) tasks.insert(n - o.task_tasks);
    return true;
}

// Every task reachable from init_task through children lists and thread groups.
std::vector<std::uint64_t> task_tree(Reader& r) {
    const LinuxOffsets& o = *r.ctx().offsets;
    std::vector<std::uint64_t> out;
    std::unordered_set<std::uint64_t> seen{r.ctx().init_task_va};
    std::vector<std::uint64_t> todo{r.ctx().init_task_va};
    std::size_t budget = kMaxTreeSteps;
    while (!todo.empty() && seen.size() < kMaxTreeTasks) {
        const std::uint64_t t = todo.back();
        todo.pop_back();
        out.push_back(t);
        std::vector<std::uint64_t> nodes;
        list_entries(r, t + o.task_children, nodes,
                     budget);  // a broken list still yields its prefix
        for (std::uint64_t n : nodes) {
            if (n < o.task_sibling) continue;
            if (seen.insert(n - o.task_sibling).second) todo.push_back(n - o.task_sibling);
        }
        if (o.has_threads) {
            auto sig = r.u64(t + o.task_signal);
            std::vector<std::uint64_t> threads;
            if (sig && kernel_ptr(*sig, r.ctx().la57)) {
                list_entries(r, *sig + o.signal_thread_head, threads, budget);
            }
            for (std::uint64_t n : threads) {
                if (n < o.task_thread_node) continue;
                if (seen.insert(n - o.task_thread_node).second) {
                    todo.push_back(n - o.task_thread_node);
                }
            }
        }
    }
    return out;
}

void hidden(Reader& r, const TaskInfo& t, std::uint64_t task, const std::string& how) {
    IntegrityFinding f;
    f.kind = FindingKind::kHiddenTask;
    f.severity = Severity::kCritical;
    f.check = "tasks";
    f.index = t.tgid;
    f.name = t.comm;
    f.actual = task;
    f.message = "process " + std::to_string(t.tgid) + " (" + t.comm + ", task " + hex(task) + ") " +
                how + " but is not on the task list";
    r.add(std::move(f));
}

}  // namespace

namespace {

// The tgids and address spaces of the task list, read now.
struct Listed {
    std::unordered_set<std::int32_t> tgids;
    std::unordered_set<std::uint64_t> mms;
};

bool read_listed(Reader& r, Listed& out) {
    std::unordered_set<std::uint64_t> listed;
    if (!task_list(r, listed)) return false;
    for (std::uint64_t t : listed) {
        if (auto i = task_info(r, t)) {
            out.tgids.insert(i->tgid);
            if (i->mm != 0) out.mms.insert(i->mm);
        }
    }
    return true;
}

// A task on its way out (do_exit set PF_EXITING) may already be off the list while it still
// runs or sits in the tree: an auto-reaped child releases itself before its last schedule().
bool exiting(Reader& r, std::uint64_t task) {
    constexpr std::uint32_t kPfExiting = 0x4;
    const LinuxOffsets& o = *r.ctx().offsets;
    if (o.task_flags == 0) return false;
    std::array<std::byte, 4> f{};
    if (!r.read(task + o.task_flags, f)) return true;  // gone: not a hidden task
    std::uint32_t flags = 0;
    std::memcpy(&flags, f.data(), 4);
    return (flags & kPfExiting) != 0;
}

// The view that showed a candidate, which must still show it when it is confirmed.
enum class View : std::uint8_t { kVcpu, kTree };

struct Candidate {
    TaskInfo info;
    std::uint64_t task = 0;
    std::string how;
    View view = View::kVcpu;
    bool mm_only = false;  // "runs an address space of no listed process"
    std::size_t vcpu = 0;
    std::uint64_t cr3 = 0;
};

}  // namespace

void check_hidden_tasks(Reader& r) {
    const IntegrityContext& ctx = r.ctx();
    const LinuxOffsets& o = *ctx.offsets;
    if (ctx.init_task_va == 0) return r.failed("tasks", "init_task unknown");
    Listed listed;
    if (!read_listed(r, listed)) return r.failed("tasks", "the task list could not be walked");
    std::vector<Candidate> found;
    std::unordered_set<std::int32_t> reported;
    if (o.has_children) {
        for (std::uint64_t t : task_tree(r)) {
            auto i = task_info(r, t);
            if (!i || listed.tgids.count(i->tgid) != 0 || !reported.insert(i->tgid).second) {
                continue;
            }
            found.push_back({*i, t, "is in the process tree", View::kTree});
        }
    }
    // vCPUs: the running task (per-CPU current_task) and its address space.
    for (std::size_t c = 0; c < ctx.vcpus.size(); ++c) {
        const VcpuView& v = ctx.vcpus[c];
        if (o.percpu_current_task == 0 || !kernel_ptr(v.gs_base, ctx.la57)) continue;
        auto cur = r.u64(v.gs_base + o.percpu_current_task);
        if (!cur || !kernel_ptr(*cur, ctx.la57)) continue;
        auto i = task_info(r, *cur);
        if (!i || i->tgid == 0) continue;  // idle tasks of other CPUs are on no list
        if (listed.tgids.count(i->tgid) == 0 && reported.insert(i->tgid).second) {
            found.push_back({*i, *cur, "runs on vCPU " + std::to_string(c)});
        }
        if (i->mm == 0 || listed.mms.count(i->mm) != 0 || v.cr3 == 0) continue;
        // Its mm is nobody's on the list: say so once, with the CR3 it runs on.
        if (reported.insert(-1 - static_cast<std::int32_t>(c)).second) {
            found.push_back({*i, *cur, "", View::kVcpu, true, c, v.cr3});
        }
    }
    if (found.empty()) return;
    // The list was read before the other views: a process forked (or an exec's new address
    // space installed) since is on a list read now. Only what a second read still lacks, of
    // a task not exiting, still the same task, and still in the tree when that is read after
    // the list (Linux links a task into both, and unlinks it from both, together) is hidden.
    Listed again;
    if (!read_listed(r, again)) return r.failed("tasks", "the task list could not be walked again");
    std::unordered_set<std::uint64_t> tree_now;
    bool tree_read = false;
    auto still_shown = [&](const Candidate& k) {
        if (k.view != View::kTree) return true;  // a vCPU's current task: seen just now
        if (!tree_read) {
            for (std::uint64_t t : task_tree(r)) tree_now.insert(t);
            tree_read = true;
        }
        return tree_now.count(k.task) != 0;
    };
    for (const Candidate& k : found) {
        auto now = task_info(r, k.task);
        if (!now || exiting(r, k.task) || now->pid != k.info.pid || now->tgid != k.info.tgid) {
            continue;
        }
        if (!k.mm_only) {
            if (again.tgids.count(k.info.tgid) == 0 && still_shown(k)) {
                hidden(r, k.info, k.task, k.how);
            }
            continue;
        }
        if (now->mm == 0 || now->mm != k.info.mm || again.mms.count(k.info.mm) != 0) continue;
        IntegrityFinding f;
        f.kind = FindingKind::kHiddenTask;
        f.severity = Severity::kWarning;
        f.check = "tasks";
        f.index = k.info.tgid;
        f.name = k.info.comm;
        f.actual = k.cr3;
        f.message = "vCPU " + std::to_string(k.vcpu) + " runs address space " + hex(k.cr3) +
                    " (mm " + hex(k.info.mm) + ") of no listed process";
        r.add(std::move(f));
    }
}

}  // namespace vmi::integrity
