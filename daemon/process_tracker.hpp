// Turns successive views of the guest's process list into process events, and names the
// process behind a CR3. Pure logic: the guest is reached through a ProcessSource.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "event_sink.hpp"
#include "vmi/result.hpp"

namespace vmid {

struct GuestProcess {
    std::uint64_t task = 0;  // task_struct address (guest virtual)
    std::int32_t pid = 0;    // tgid
    std::int32_t ppid = 0;
    std::string comm;
    std::uint64_t pgd = 0;            // guest-physical mm->pgd, 0 for kernel threads
    std::uint64_t start_time_ns = 0;  // guest boot-relative
    bool kernel_thread = false;
    std::uint64_t exec_id = 0;  // the guest's self_exec_id: +1 per execve
    // Unknown values: -1 for numbers, empty for exe (kernel threads have neither exe nor args).
    std::int64_t uid = -1, euid = -1, gid = -1;
    std::string exe;
    std::vector<std::string> args;
    std::int32_t threads = -1;
    std::uint64_t first_seen_host_ns = 0;  // set by the tracker: the listing that first had it
};

class ProcessSource {
  public:
    virtual ~ProcessSource() = default;
    /// Lists the guest's processes, reading kernel memory through `cr3`'s page tables.
    virtual vmi::Result<std::vector<GuestProcess>> list(std::uint64_t cr3) = 0;
};

struct TrackerStats {
    std::uint64_t scans = 0, failed_scans = 0, cr3_resolved = 0, cr3_unresolved = 0;
    /// Address spaces no listed process owns (the kernel's own, exiting ones), with
    /// counts; bounded, so a hostile guest cannot grow it.
    std::unordered_map<std::uint64_t, std::uint64_t> unowned;
    static constexpr std::size_t kMaxUnowned = 16;
};

class ProcessTracker {
  public:
    ProcessTracker(EventSink& sink, std::string vm_name);

    /// Name the process whose address space `cr3` is; nullptr if none known (yet).
    const GuestProcess* resolve(std::uint64_t cr3);
    /// Same, without counting it in the stats.
    [[nodiscard]] const GuestProcess* owner(std::uint64_t cr3) const;
    /// The process one of whose threads is the task_struct at `task`; nullptr if none known.
    /// Listings hold thread-group leaders; other threads are named through `cr3`.
    [[nodiscard]] const GuestProcess* by_task(std::uint64_t task) const;

    /// Apply one complete listing. New processes become events ("seen" on the first listing,
    /// "start" later); a new address space is an exec, a new name alone a rename; a process is
    /// reported gone only after two listings in a row miss it, so one torn walk of a live list
    /// never invents an exit.
    void apply(const std::vector<GuestProcess>& list, std::uint64_t host_time_ns);
    void scan_failed() { ++stats_.failed_scans; }
    /// Adds the parent (pid, name, exe) and the ancestors' names, nearest first, of the
    /// process whose parent is `ppid` to an event's "process" object, from the last listing.
    void add_lineage(nlohmann::json& process, std::int32_t ppid) const;

    /// Stop tracking (the VM is gone or we detach): one vm-detached event, no per-process ones.
    void finish(std::uint64_t host_time_ns, const std::string& reason);

    [[nodiscard]] const TrackerStats& stats() const noexcept { return stats_; }
    [[nodiscard]] std::size_t size() const noexcept { return known_.size(); }
    /// The processes of the last listing, by pid.
    [[nodiscard]] std::vector<GuestProcess> processes() const;

  private:
    struct Key {
        std::uint64_t task, start;
        bool operator==(const Key&) const = default;
    };
    struct KeyHash {
        std::size_t operator()(const Key& k) const noexcept { return k.task * 31 ^ k.start; }
    };
    struct Entry {
        GuestProcess proc;
        std::uint64_t first_seen_ns = 0;
        unsigned misses = 0;
    };
    void emit(const char* action, const Entry& e, std::uint64_t host_time_ns,
              const std::string& previous_name = {});

    EventSink& sink_;
    std::string vm_name_;
    std::unordered_map<Key, Entry, KeyHash> known_;
    std::unordered_map<std::uint64_t, Key> by_pgd_;
    std::unordered_map<std::uint64_t, Key> by_task_;
    // The last listing by pid, for parents and ancestors.
    struct Kin {
        std::int32_t ppid = 0;
        std::string comm, exe;
    };
    std::unordered_map<std::int32_t, Kin> by_pid_;
    static constexpr int kMaxAncestors = 8;
    bool first_listing_ = true;
    TrackerStats stats_;
};

}  // namespace vmid
