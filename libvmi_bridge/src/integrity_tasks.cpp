// Hidden tasks by cross-view: the task list (init_task.tasks) against four other routes to
// the same tasks that a rootkit's list_del(&task->tasks) does not touch: the process tree
// (children/sibling lists, and the threads of each group), the PID allocator (every struct
// pid in init_pid_ns.idr and its task), the scheduler (each CPU's run queue), and what each
// vCPU runs (its per-CPU current task, and its CR3).
#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "integrity_internal.hpp"
#include "vmi/page_walker.hpp"

namespace vmi::integrity {

namespace {

constexpr std::size_t kMaxListSteps = 1U << 16;  // entries of one list
constexpr std::size_t kMaxTreeSteps = 1U << 20;  // list entries of one whole tree walk
constexpr int kLiveListAttempts = 3;             // walks of one list that changed under them

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

// A list the guest changes as it is walked (a node unlinked and freed, moved, or left pointing
// at itself by list_del_init): a walk that met a change is tried again, on fresh pages, a few
// times. `out` holds the last walk's entries.
bool walk_live_list(Reader& r, std::uint64_t head, std::vector<std::uint64_t>& out,
                    std::size_t& budget) {
    for (int attempt = 0; attempt < kLiveListAttempts; ++attempt) {
        out.clear();
        if (list_entries(r, head, out, budget)) return true;
        r.refresh();
    }
    return false;
}

// Thread-group leaders on init_task.tasks.
bool task_list(Reader& r, std::unordered_set<std::uint64_t>& tasks) {
    const LinuxOffsets& o = *r.ctx().offsets;
    const std::uint64_t init = r.ctx().init_task_va;
    std::vector<std::uint64_t> nodes;
    std::size_t budget = kMaxListSteps * kLiveListAttempts;  // each walk: kMaxListSteps
    if (!walk_live_list(r, init + o.task_tasks, nodes, budget)) return false;
    tasks.insert(init);
    for (std::uint64_t n : nodes) tasks.insert(n - o.task_tasks);
    return true;
}

// Every task reachable from init_task through children lists and thread groups.
std::vector<std::uint64_t> task_tree(Reader& r) {
    const LinuxOffsets& o = *r.ctx().offsets;
    std::vector<std::uint64_t> out;
    std::unordered_set<std::uint64_t> seen{r.ctx().init_task_va};
    std::vector<std::uint64_t> pending{r.ctx().init_task_va};
    std::size_t budget = kMaxTreeSteps;
    while (!pending.empty() && seen.size() < kMaxTreeTasks) {
        const std::uint64_t t = pending.back();
        pending.pop_back();
        out.push_back(t);
        std::vector<std::uint64_t> nodes;
        list_entries(r, t + o.task_children, nodes,
                     budget);  // a broken list still yields its prefix
        for (std::uint64_t n : nodes) {
            if (n < o.task_sibling) continue;
            if (seen.insert(n - o.task_sibling).second) pending.push_back(n - o.task_sibling);
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
                    pending.push_back(n - o.task_thread_node);
                }
            }
        }
    }
    return out;
}

// The PID allocator: init_pid_ns.idr is an xarray of struct pid* (lib/xarray.c). An entry
// is a pointer, NULL, or internal ((entry & 3) == 2): a node (above 4096; node = entry - 2),
// or a sibling/retry/zero entry (small values: nothing to follow). Each node's shift is its
// parent's less the chunk's bits, down to 0 (leaves): at most 11 levels of 64 slots for a
// 64-bit index, so a walk is bounded by its depth, and a node met twice (a cycle, or two
// parents) is malformed. Returns the tasks behind each pid (tasks[PIDTYPE_PID].first, the
// task's pid_links[PIDTYPE_PID]); `why` says what was malformed ("" if nothing), the tasks
// found before still count.
std::vector<std::uint64_t> pid_hash_tasks(Reader& r, std::string& why) {
    const LinuxOffsets& o = *r.ctx().offsets;
    const bool la57 = r.ctx().la57;
    std::vector<std::uint64_t> out;
    auto bad = [&why](std::string what) {  // the first fault found says it
        if (why.empty()) why = std::move(what);
    };
    if (o.xa_chunk < 4 || o.xa_chunk > 256 || !std::has_single_bit(o.xa_chunk)) {
        bad("has an unknown node size of " + std::to_string(o.xa_chunk) + " slots");
        return out;
    }
    const std::uint64_t ns = r.sym("init_pid_ns");
    if (ns == 0) {
        bad("cannot be read: no symbol init_pid_ns");
        return out;
    }
    auto head = r.u64(ns + o.pidns_idr + o.idr_rt + o.xarray_xa_head);
    if (!head) {
        bad("cannot be read at " + hex(ns));
        return out;
    }
    const auto chunk_shift = static_cast<unsigned>(std::countr_zero(o.xa_chunk));
    const unsigned max_shift = (63 / chunk_shift) * chunk_shift;  // 60 for 64 slots: 11 levels
    constexpr std::uint64_t kInternal = 2, kMaxInternal = 4096;
    auto is_internal = [](std::uint64_t e) { return (e & 3) == kInternal; };
    std::size_t entries = 0;
    auto add_pid = [&](std::uint64_t pid) {  // wild pointers and value entries: no task
        ++entries;
        if (!kernel_ptr(pid, la57)) return;
        auto first = r.u64(pid + o.pid_tasks + o.hlist_first);
        if (!first || !kernel_ptr(*first, la57) || *first < o.task_pid_links) return;
        out.push_back(*first - o.task_pid_links);
    };
    if (*head == 0) return out;
    if (!is_internal(*head)) {  // a lone entry at index 0
        add_pid(*head);
        return out;
    }
    if (*head <= kMaxInternal) return out;
    // Nodes to read, each taken once when first met: the stack holds at most the budget.
    struct Item {
        std::uint64_t node;
        int shift;  // the node's expected shift; -1 for the root (any)
    };
    std::vector<Item> pending;
    std::unordered_set<std::uint64_t> seen;
    auto push = [&](std::uint64_t entry, int shift) {
        const std::uint64_t node = entry - kInternal;
        if (!kernel_ptr(node, la57)) return bad("has a wild node pointer " + hex(entry));
        if (seen.size() >= kMaxPidHashNodes) {
            return bad("has more than " + std::to_string(kMaxPidHashNodes) + " nodes");
        }
        if (!seen.insert(node).second) return bad("reaches node " + hex(node) + " twice");
        pending.push_back({node, shift});
    };
    push(*head, -1);
    std::vector<std::byte> slots(o.xa_chunk * 8);
    while (!pending.empty() && entries <= kMaxPidHashTasks) {
        const Item it = pending.back();
        pending.pop_back();
        std::array<std::byte, 1> shift_byte{};
        if (!r.read(it.node + o.xa_node_shift, shift_byte) ||
            !r.read(it.node + o.xa_node_slots, slots)) {
            bad("has an unreadable node at " + hex(it.node));
            continue;
        }
        const auto shift = static_cast<unsigned>(shift_byte[0]);
        if (shift % chunk_shift != 0 || shift > max_shift ||
            (it.shift >= 0 && shift != static_cast<unsigned>(it.shift))) {
            bad("has node " + hex(it.node) + " with shift " + std::to_string(shift));
            continue;
        }
        for (std::size_t i = 0; i < o.xa_chunk; ++i) {
            std::uint64_t e = 0;
            std::memcpy(&e, slots.data() + i * 8, 8);
            if (e == 0) continue;
            if (!is_internal(e)) {
                add_pid(e);
            } else if (e <= kMaxInternal) {
                continue;  // sibling, retry or zero entry
            } else if (shift == 0) {
                bad("has a node below leaf node " + hex(it.node));
            } else {
                push(e, static_cast<int>(shift - chunk_shift));
            }
        }
    }
    if (entries > kMaxPidHashTasks) {
        bad("has more than " + std::to_string(kMaxPidHashTasks) + " entries");
    }
    return out;
}

// The scheduler's view: every CPU's run queue (the per-CPU `runqueues` at
// __per_cpu_offset[cpu]) lists its queued CFS tasks on rq.cfs_tasks, and names the task it
// runs in rq.curr. CPUs are those below nr_cpu_ids (offline ones have empty queues), at most
// kMaxRunQueueCpus; list entries are bounded as a whole. `why` says what failed ("" if
// nothing); the tasks found before still count.
struct Queued {
    std::uint64_t task = 0;
    std::uint32_t cpu = 0;
};

std::vector<Queued> runqueue_tasks(Reader& r, std::string& why) {
    const LinuxOffsets& o = *r.ctx().offsets;
    const bool la57 = r.ctx().la57;
    std::vector<Queued> out;
    const std::uint64_t offsets = r.sym("__per_cpu_offset");
    const std::uint64_t nr_sym = r.sym("nr_cpu_ids");
    if (offsets == 0 || nr_sym == 0) {
        why = "cannot be read: no symbol __per_cpu_offset or nr_cpu_ids";
        return out;
    }
    std::array<std::byte, 4> nr_raw{};
    if (!r.read(nr_sym, nr_raw)) {
        why = "cannot be read: nr_cpu_ids unreadable";
        return out;
    }
    std::uint32_t nr = 0;
    std::memcpy(&nr, nr_raw.data(), 4);
    if (nr == 0 || nr > kMaxRunQueueCpus) {
        why = "cannot be read: nr_cpu_ids is " + std::to_string(nr);
        return out;
    }
    std::size_t budget = kMaxTreeSteps;
    for (std::uint32_t c = 0; c < nr; ++c) {
        auto base = r.u64(offsets + 8ULL * c);
        if (!base) {
            why = "cannot be read: __per_cpu_offset[" + std::to_string(c) + "] unreadable";
            return out;
        }
        const std::uint64_t rq = *base + o.percpu_runqueues;
        if (!kernel_ptr(rq, la57)) continue;  // not a possible CPU's area
        // The list changes at every enqueue and dequeue.
        std::vector<std::uint64_t> nodes;
        if (!walk_live_list(r, rq + o.rq_cfs_tasks, nodes, budget) && why.empty()) {
            why = "has a broken CFS task list on CPU " + std::to_string(c);
        }
        for (std::uint64_t n : nodes) {
            if (n >= o.task_se_group_node) out.push_back({n - o.task_se_group_node, c});
        }
        if (auto cur = r.u64(rq + o.rq_curr); cur && kernel_ptr(*cur, la57)) {
            out.push_back({*cur, c});
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
enum class View : std::uint8_t { kVcpu, kTree, kPidHash, kRunQueue };

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
    // The PID allocator: a task (its group, once) with a pid but off the task list. The
    // group's leader stands for it when the hash has it (the pid equal to the tgid).
    if (o.has_pid_hash) {
        std::string why;
        const std::vector<std::uint64_t> tasks = pid_hash_tasks(r, why);
        if (!why.empty()) r.failed("tasks", "the PID hash (init_pid_ns.idr) " + why);
        std::unordered_map<std::int32_t, Candidate> groups;
        std::vector<std::int32_t> order;
        for (std::uint64_t t : tasks) {
            auto i = task_info(r, t);
            if (!i || i->tgid <= 0 || listed.tgids.count(i->tgid) != 0 ||
                reported.count(i->tgid) != 0) {
                continue;
            }
            const Candidate k{*i, t, "is in the PID hash", View::kPidHash};
            auto [at, fresh] = groups.try_emplace(i->tgid, k);
            if (fresh) {
                order.push_back(i->tgid);
            } else if (i->pid == i->tgid) {
                at->second = k;
            }
        }
        for (std::int32_t g : order) {
            reported.insert(g);
            found.push_back(groups.at(g));
        }
    }
    // Run queues: a task queued or running on a CPU (the idle tasks of other CPUs are on no
    // list).
    if (o.has_runqueues) {
        std::string why;
        const std::vector<Queued> queued = runqueue_tasks(r, why);
        if (!why.empty()) r.failed("tasks", "the run queues " + why);
        for (const Queued& q : queued) {
            auto i = task_info(r, q.task);
            if (!i || i->tgid <= 0 || listed.tgids.count(i->tgid) != 0 ||
                !reported.insert(i->tgid).second) {
                continue;
            }
            found.push_back({*i, q.task, "is on the run queue of CPU " + std::to_string(q.cpu),
                             View::kRunQueue});
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
    // a task not exiting, still the same task, and still in its view when that is read after
    // the list (Linux links a task into the list, the tree and the PID hash together, and
    // unlinks it from all three together) is hidden. Every re-read is of the guest as it is
    // now, not of the pages cached by the first reads.
    r.refresh();
    Listed again;
    if (!read_listed(r, again)) return r.failed("tasks", "the task list could not be walked again");
    std::unordered_set<std::uint64_t> tree_now;
    std::unordered_set<std::uint64_t> hash_now;
    std::unordered_set<std::uint64_t> queued_now;
    bool tree_read = false;
    bool hash_read = false;
    bool queues_read = false;
    auto still_shown = [&](const Candidate& k) {
        switch (k.view) {
            case View::kVcpu:
                return true;  // a vCPU's current task: seen just now
            case View::kTree:
                if (!tree_read) {
                    for (std::uint64_t t : task_tree(r)) tree_now.insert(t);
                    tree_read = true;
                }
                return tree_now.count(k.task) != 0;
            case View::kPidHash:
                if (!hash_read) {
                    std::string why;  // reported by the first walk
                    for (std::uint64_t t : pid_hash_tasks(r, why)) hash_now.insert(t);
                    hash_read = true;
                }
                return hash_now.count(k.task) != 0;
            case View::kRunQueue:
                if (!queues_read) {
                    std::string why;  // reported by the first walk
                    for (const Queued& q : runqueue_tasks(r, why)) queued_now.insert(q.task);
                    queues_read = true;
                }
                return queued_now.count(k.task) != 0;
        }
        return false;
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
