// What the module should trap, record and deny, from the daemon's point of view (syscall
// names, executable paths), turned into the module's vmi_syscall_filter.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "policy/policy.hpp"
#include "vminsight.h"

namespace vmid {

struct SyscallPlan {
    std::vector<std::string> trace;          // syscall names to record
    std::vector<std::string> deny_exec;      // execve of these exact paths fails...
    std::vector<std::string> allow_exec;     // ...or of every path but these ('*' ends a prefix)
    std::vector<std::string> deny_syscalls;  // fail for every caller (deny rules)
    bool exec_allow = false;  // allow_exec is in force, even empty (then no path may run)
    int deny_errno = 1;       // EPERM
    // From the guest profile, once known (0: not yet): where `current` is, and the offsets
    // of task_struct.tgid and comm, so each record names its caller.
    std::uint64_t percpu_current = 0;
    std::uint32_t task_tgid = 0, task_comm = 0;

    [[nodiscard]] const std::vector<std::string>& exec_paths() const {
        return exec_allow || !allow_exec.empty() ? allow_exec : deny_exec;
    }
};

/// The plan's denials: the command line's --deny-exec / --allow-exec, and what the
/// enforce-mode deny rules ask (policy::enforcement). Throws std::invalid_argument saying why
/// they cannot be enforced together.
void apply_enforcement(SyscallPlan& plan, const std::vector<std::string>& cli_deny_exec,
                       const std::vector<std::string>& cli_allow_exec,
                       const policy::Enforcement& rules);

/// True when the plan needs any syscall to trap.
bool plan_traps_anything(const SyscallPlan& plan);

/// The module's filter for `plan`: scope all address spaces; each traced syscall captures
/// the argument its ABI entry names (a path, a sockaddr). Throws std::invalid_argument naming
/// the first unknown syscall.
vmi_syscall_filter build_filter(const SyscallPlan& plan);

}  // namespace vmid
