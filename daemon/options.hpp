// vminsightd command line.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace vmid {

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Options {
    pid_t qemu_pid = 0;
    std::string vm_name;
    std::string device = "/dev/vminsight";
    std::string guest_kernel;  // optional vmlinux ELF; empty: from guest memory
    std::string output = "-";
    std::uint32_t ring_pages = 0;
    bool cr3_exiting = true;  // exact CR3 records where the module can arm it
    std::chrono::milliseconds rescan_interval{500};
    std::chrono::milliseconds rescan_min_gap{20};
    // Syscall traps: names to record; paths execve may not run (or, with allow_exec, the
    // only ones it may); the errno a denied call returns.
    std::vector<std::string> syscalls;
    std::vector<std::string> deny_exec, allow_exec;
    int deny_errno = 1;  // EPERM
    // Rule files (Falco-style YAML), loaded in order; alerts follow the events they match.
    std::vector<std::string> policies;
};

/// Throws UsageError with a message naming the offending option.
Options parse_options(const std::vector<std::string>& args);
extern const char* const kUsage;

}  // namespace vmid
