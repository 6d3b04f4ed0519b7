// Linux guest model: lists processes by walking init_task.tasks in guest memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vmi/btf_profile.hpp"
#include "vmi/guest_memory.hpp"
#include "vmi/result.hpp"

namespace vmi {

/// One thread-group leader as seen in guest memory.
struct Process {
    std::uint64_t task_va = 0;  // struct task_struct*
    std::int32_t pid = 0;       // tgid (the user-visible PID)
    std::int32_t ppid = -1;     // real_parent->tgid; -1 if real_parent was unreadable
    std::string comm;           // <= 16 chars, non-printables replaced by '?'
    std::uint64_t mm_va = 0;    // struct mm_struct*; 0 for kernel threads
    std::uint64_t pgd_pa = 0;   // physical address of mm->pgd; 0 if no mm or unreadable
    std::uint64_t start_time_ns = 0;
    std::uint64_t exec_id = 0;  // self_exec_id: changes exactly when the task execs
    std::uint32_t flags = 0;    // PF_* flags
    std::int64_t uid = -1;      // cred->uid; -1 if the offsets lack cred or it was unreadable
    std::int64_t euid = -1;     // cred->euid; -1 if unknown
    std::int64_t gid = -1;      // cred->gid; -1 if unknown
    /// Absolute path of mm->exe_file, walked up through dentries (and mounts when the BTF has
    /// struct mount). Empty if unknown: kernel thread, offsets missing, unreadable or hostile
    /// dentries (cycle, name too long, path deeper than kMaxPathDepth).
    std::string exe;
    /// mm->arg_start..arg_end read through the process's own page tables (pgd_pa), at most
    /// kMaxArgBytes, split at NULs. Empty if unknown. A readable prefix of a longer or
    /// partly paged-out range gives the arguments in that prefix (argv_truncated = true).
    std::vector<std::string> argv;
    bool argv_truncated = false;
    std::int32_t threads = -1;  // tasks in the thread group; -1 if unknown
    /// process_entity_id(ListOptions::vm_name, task_va, start_time_ns) (entity_id.hpp);
    /// empty when the listing had no VM name.
    std::string entity_id;
};

/// What list_processes() reads besides the task list itself.
struct ListOptions {
    bool exe = true;
    bool argv = true;
    bool threads = true;
    /// The VM's name: when set, each Process gets its entity_id.
    std::string vm_name;
};

class LinuxGuest {
  public:
    /// Hard cap on list entries: a real guest has far fewer processes than this.
    static constexpr std::size_t kMaxTasks = std::size_t{1} << 16;
    /// comm is TASK_COMM_LEN (16) bytes; never read more whatever BTF says.
    static constexpr std::size_t kMaxComm = 16;
    /// Bounds on what a guest can make one listing read or keep.
    static constexpr std::size_t kMaxPathDepth = 64;           // dentries + mount crossings
    static constexpr std::size_t kMaxPathLen = 4096;           // PATH_MAX
    static constexpr std::size_t kMaxNameLen = 255;            // NAME_MAX
    static constexpr std::size_t kMaxArgBytes = 4096;          // per process
    static constexpr std::size_t kMaxThreads = 1U << 14;       // per process
    static constexpr std::size_t kMaxThreadSteps = 1U << 18;   // per listing
    static constexpr std::size_t kMaxDetailBytes = 32U << 20;  // exe + argv, per listing

    /// `mem` must outlive this object. `init_task_va` is the slid address of init_task.
    /// `max_tasks` lowers the list bound (clamped to kMaxTasks).
    LinuxGuest(GuestMemory& mem, LinuxOffsets offsets, std::uint64_t init_task_va,
               bool la57 = false, std::size_t max_tasks = kMaxTasks);

    /// Walks the circular init_task.tasks list (init_task itself comes first, pid 0), reading
    /// kernel memory through kernel_pgd_from_cr3(any_cr3). Bounded by max_tasks entries.
    /// Errors: the list's own faults (unreadable task, bad `next` pointer -> kBadPointer, a loop
    /// not through the head -> kCycle, too long -> kLimitExceeded, offsets spanning more than
    /// 64 KiB -> kInvalidFormat). Faults on a task's secondary pointers (real_parent, mm,
    /// mm->pgd) do not abort the walk: a process may be exiting while we read; those fields
    /// are set to their "unknown" values (ppid -1, pgd_pa 0).
    ///
    /// Each call reads guest memory through its own PageCache, dropped at the end: nothing is
    /// remembered from one listing to the next, so a live guest is never shown stale data.
    /// exe, argv and threads (per `opts`) never fail the listing; see Process for bounds.
    [[nodiscard]] Result<std::vector<Process>> list_processes(std::uint64_t any_cr3,
                                                              const ListOptions& opts = {}) const;

    /// One task_struct at `task_va`, read as list_processes() reads each entry, whether or
    /// not it is on the task list (a process a rootkit unlinked). Same bounds and errors.
    [[nodiscard]] Result<Process> read_process(std::uint64_t any_cr3, std::uint64_t task_va,
                                               const ListOptions& opts = {}) const;

  private:
    struct Budgets;
    [[nodiscard]] Result<std::vector<std::byte>> task_buffer() const;
    Result<Process> read_task(GuestMemory& mem, std::uint64_t kcr3, std::uint64_t task,
                              std::span<std::byte> buf, const ListOptions& opts, Budgets& budget,
                              std::uint64_t* next) const;

    GuestMemory* mem_;
    LinuxOffsets off_;
    std::uint64_t init_task_va_;
    bool la57_;
    std::size_t max_tasks_;
};

/// The process whose address space `cr3` belongs to, or nullptr. Prefers an exact match of
/// pgd_from_cr3(cr3); otherwise matches with bit 12 cleared on both sides, which pairs a KPTI
/// user CR3 (kernel PGD + 4 KiB) with mm->pgd.
const Process* find_by_cr3(std::span<const Process> processes, std::uint64_t cr3);

/// Replaces bytes outside printable ASCII with '?' and stops at the first NUL.
std::string sanitize_comm(std::span<const std::byte> raw);

}  // namespace vmi
