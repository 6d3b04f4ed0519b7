#include "syscall_filter.hpp"

#include <stdexcept>

#include "vmi/syscall_abi.hpp"

namespace vmid {

bool plan_traps_anything(const SyscallPlan& plan) {
    return !plan.trace.empty() || !plan.deny_exec.empty() || !plan.allow_exec.empty();
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
    if (!plan.allow_exec.empty())
        f.exec_mode = VMI_EXEC_ALLOW_LISTED;
    else if (!plan.deny_exec.empty())
        f.exec_mode = VMI_EXEC_DENY_LISTED;
    return f;
}

}  // namespace vmid
