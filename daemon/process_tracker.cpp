#include "process_tracker.hpp"

#include <algorithm>

#include <unordered_set>

#include "event_fields.hpp"
#include "vmi/page_walker.hpp"

namespace vmid {

ProcessTracker::ProcessTracker(EventSink& sink, std::string vm_name)
    : sink_(sink), vm_name_(std::move(vm_name)) {}

const GuestProcess* ProcessTracker::owner(std::uint64_t cr3) const {
    // Exact first (without PTI a PGD is only 4 KiB aligned, so bit 12 can be real); then a
    // KPTI user CR3, whose PGD is the kernel one (mm->pgd) plus 4 KiB.
    auto it = by_pgd_.find(vmi::pgd_from_cr3(cr3));
    if (it == by_pgd_.end()) it = by_pgd_.find(vmi::kernel_pgd_from_cr3(cr3));
    return it == by_pgd_.end() ? nullptr : &known_.at(it->second).proc;
}

const GuestProcess* ProcessTracker::by_task(std::uint64_t task) const {
    auto it = by_task_.find(task);
    return it == by_task_.end() ? nullptr : &known_.at(it->second).proc;
}

const GuestProcess* ProcessTracker::resolve(std::uint64_t cr3) {
    const GuestProcess* p = owner(cr3);
    if (!p) {
        ++stats_.cr3_unresolved;
        const std::uint64_t pgd = vmi::pgd_from_cr3(cr3);
        if (auto u = stats_.unowned.find(pgd); u != stats_.unowned.end())
            ++u->second;
        else if (stats_.unowned.size() < TrackerStats::kMaxUnowned)
            stats_.unowned.emplace(pgd, 1);
        return nullptr;
    }
    ++stats_.cr3_resolved;
    return p;
}

void ProcessTracker::emit(const char* action, const Entry& e, std::uint64_t host_time_ns,
                          const std::string& previous_name) {
    const GuestProcess& p = e.proc;
    nlohmann::json ev = {
        {"@timestamp", utc_now()},
        {"event", {{"kind", "event"}, {"category", "process"}, {"action", action}}},
        {"vm", {{"name", vm_name_}}},
        {"process",
         {{"pid", p.pid},
          {"ppid", p.ppid},
          {"name", p.comm},
          {"cr3", hex(p.pgd)},
          {"task", hex(p.task)},
          {"start_time_ns", p.start_time_ns},
          {"kernel_thread", p.kernel_thread}}},
        {"vminsight", {{"host_time_ns", host_time_ns}, {"first_seen_host_ns", e.first_seen_ns}}},
    };
    if (!previous_name.empty()) ev["process"]["previous_name"] = previous_name;
    // Facts the guest may not let us read are left out rather than guessed.
    auto& proc = ev["process"];
    if (!p.exe.empty()) proc["exe"] = p.exe;
    if (!p.kernel_thread && !p.args.empty()) proc["args"] = p.args;
    if (p.uid >= 0) proc["uid"] = p.uid;
    if (p.euid >= 0) proc["euid"] = p.euid;
    if (p.gid >= 0) proc["gid"] = p.gid;
    if (p.threads >= 0) proc["threads"] = p.threads;
    if (!p.kernel_thread) add_lineage(proc, p.ppid);
    sink_.emit(ev);
}

void ProcessTracker::add_lineage(nlohmann::json& process, std::int32_t ppid) const {
    auto it = by_pid_.find(ppid);
    if (ppid <= 0 || it == by_pid_.end()) return;
    nlohmann::json parent = {{"pid", ppid}, {"name", it->second.comm}};
    if (!it->second.exe.empty()) parent["exe"] = it->second.exe;
    process["parent"] = std::move(parent);
    // A guest can make ppid chains cycle: bounded, and stops at pid 0 or an unknown pid.
    nlohmann::json names = nlohmann::json::array();
    for (int depth = 0; depth < kMaxAncestors && it != by_pid_.end(); ++depth) {
        names.push_back(it->second.comm);
        if (it->second.ppid <= 0 || it->second.ppid == it->first) break;
        it = by_pid_.find(it->second.ppid);
    }
    process["ancestors"] = std::move(names);
}

void ProcessTracker::apply(const std::vector<GuestProcess>& list, std::uint64_t host_time_ns) {
    ++stats_.scans;
    const char* start_action = first_listing_ ? "process-seen" : "process-started";
    by_pid_.clear();
    for (const GuestProcess& p : list) by_pid_[p.pid] = Kin{p.ppid, p.comm, p.exe};
    std::unordered_set<Key, KeyHash> present;
    present.reserve(list.size());
    for (const GuestProcess& p : list) {
        const Key key{p.task, p.start_time_ns};
        present.insert(key);
        auto [it, inserted] = known_.try_emplace(key);
        Entry& e = it->second;
        if (inserted) {
            e.proc = p;
            e.first_seen_ns = host_time_ns;
            e.proc.first_seen_host_ns = host_time_ns;
            emit(start_action, e, host_time_ns);
        } else {
            e.misses = 0;
            // The guest counts execs itself (self_exec_id, bumped right after the new name is
            // set), so a listing taken mid-exec (new mm, old name) is no exec yet. A new name
            // with the same count is prctl(PR_SET_NAME).
            const bool exec = p.exec_id != e.proc.exec_id;
            const bool renamed = !exec && p.comm != e.proc.comm;
            if (e.proc.pgd != p.pgd) by_pgd_.erase(e.proc.pgd);
            const std::string previous = e.proc.comm;
            e.proc = p;
            e.proc.first_seen_host_ns = e.first_seen_ns;
            if (exec)
                emit("process-exec", e, host_time_ns, previous);
            else if (renamed)
                emit("process-renamed", e, host_time_ns, previous);
        }
        if (p.pgd) by_pgd_[p.pgd] = key;
        by_task_[p.task] = key;
    }
    for (auto it = known_.begin(); it != known_.end();) {
        Entry& e = it->second;
        if (present.contains(it->first) || ++e.misses < 2) {
            ++it;
            continue;
        }
        emit("process-exited", e, host_time_ns);
        const auto pg = by_pgd_.find(e.proc.pgd);
        if (pg != by_pgd_.end() && pg->second == it->first) by_pgd_.erase(pg);
        const auto tk = by_task_.find(e.proc.task);
        if (tk != by_task_.end() && tk->second == it->first) by_task_.erase(tk);
        it = known_.erase(it);
    }
    first_listing_ = false;
}

void ProcessTracker::finish(std::uint64_t host_time_ns, const std::string& reason) {
    // The processes did not exit: we stop watching. One event says so for all of them.
    known_.clear();
    by_pid_.clear();
    by_pgd_.clear();
    by_task_.clear();
    sink_.emit(
        {{"@timestamp", utc_now()},
         {"event",
          {{"kind", "event"}, {"category", "host"}, {"action", "vm-detached"}, {"reason", reason}}},
         {"vm", {{"name", vm_name_}}},
         {"vminsight", {{"host_time_ns", host_time_ns}}}});
}

std::vector<GuestProcess> ProcessTracker::processes() const {
    std::vector<GuestProcess> out;
    out.reserve(known_.size());
    for (const auto& [key, e] : known_) out.push_back(e.proc);
    std::sort(out.begin(), out.end(),
              [](const GuestProcess& a, const GuestProcess& b) { return a.pid < b.pid; });
    return out;
}

}  // namespace vmid
