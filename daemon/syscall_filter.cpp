#include "syscall_filter.hpp"

#include <stdexcept>

#include "vmi/syscall_abi.hpp"

namespace vmid {

void apply_enforcement(SyscallPlan& plan, const std::vector<std::string>& cli_deny_exec,
                       const std::vector<std::string>& cli_allow_exec,
                       const policy::Enforcement& rules) {
    if (!rules.error.empty()) throw std::invalid_argument(rules.error);
    for (const auto& name : rules.deny_syscalls) {
        const auto nr = vmi::syscall_number(name);
        if (!nr || *nr >= VMI_NR_SYSCALLS)
            throw std::invalid_argument("deny rule: syscall '" + name +
                                        "' is unknown or past what the module can trap");
    }
    plan.deny_syscalls = rules.deny_syscalls;
    plan.deny_exec = cli_deny_exec;
    plan.allow_exec = cli_allow_exec;
    plan.exec_allow = false;
    if (!rules.exec_allow) {
        plan.deny_exec.insert(plan.deny_exec.end(), rules.exec_paths.begin(),
                              rules.exec_paths.end());
        if (!plan.allow_exec.empty() && !rules.exec_paths.empty())
            throw std::invalid_argument(
                "--allow-exec and the exec deny rules cannot be enforced together");
        return;
    }
    if (!cli_allow_exec.empty() || !cli_deny_exec.empty())
        throw std::invalid_argument(
            "--allow-exec/--deny-exec and an allow-list rule cannot be enforced together");
    plan.allow_exec = rules.exec_paths;
    plan.exec_allow = true;
}

bool plan_traps_anything(const SyscallPlan& plan) {
    return !plan.trace.empty() || !plan.deny_exec.empty() || !plan.allow_exec.empty() ||
           plan.exec_allow || !plan.deny_syscalls.empty();
}

vmi_syscall_filter build_filter(const SyscallPlan& plan) {
    vmi_syscall_filter f{};
    f.scope = VMI_SCOPE_ALL;
    f.deny_errno = plan.deny_errno;
    f.percpu_current = plan.percpu_current;
    f.task_tgid = plan.task_tgid;
    f.task_comm = plan.task_comm;
    for (const std::string& name : plan.trace) {
        const auto nr = vmi::syscall_number(name);
        if (!nr) throw std::invalid_argument("unknown syscall '" + name + "'");
        if (*nr >= VMI_NR_SYSCALLS)
            throw std::invalid_argument("syscall '" + name + "' (" + std::to_string(*nr) +
                                        ") is past what the module can trap");
        f.trace[*nr / 64] |= 1ULL << (*nr % 64);
        if (const auto spec = vmi::syscall_capture(*nr)) {
            auto byte = static_cast<std::uint8_t>(spec->arg + 1);
            if (spec->kind == vmi::CaptureSpec::Kind::kString)
                byte |= VMI_CAPTURE_STRING;
            else
                byte |= static_cast<std::uint8_t>((spec->len_arg + 1) << 4);
            // execve's argv follows its path, so rules see the command line of every exec.
            if (name == "execve" || name == "execveat") byte |= VMI_CAPTURE_ARGV;
            f.capture[*nr] = byte;
        }
    }
    for (const std::string& name : plan.deny_syscalls) {
        const auto nr = vmi::syscall_number(name);
        if (!nr || *nr >= VMI_NR_SYSCALLS)
            throw std::invalid_argument("cannot deny syscall '" + name + "'");
        f.deny[*nr / 64] |= 1ULL << (*nr % 64);
    }
    if (plan.exec_allow || !plan.allow_exec.empty())
        f.exec_mode = VMI_EXEC_ALLOW_LISTED;
    else if (!plan.deny_exec.empty())
        f.exec_mode = VMI_EXEC_DENY_LISTED;
    return f;
}

}  // namespace vmid
