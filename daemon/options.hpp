// vminsightd command line.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "vmi/profile_file.hpp"

namespace vmid {

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Options {
    // One VM (its QEMU process), or every domain of a libvirt connection whose VMInsight
    // metadata enables monitoring.
    pid_t qemu_pid = 0;
    std::string libvirt;  // URI, e.g. qemu:///system; empty: --qemu-pid mode
    std::string vm_name;
    std::string device = "/dev/vminsight";
    std::string guest_kernel;  // optional vmlinux ELF; empty: from guest memory
    // --btf FILE / --isf FILE: struct layouts from a profile file (loaded and checked when the
    // options are parsed) instead of the guest's in-memory BTF; init_task is still found in
    // guest memory. Null: zero configuration.
    std::shared_ptr<const vmi::KernelProfileFile> profile;
    std::string output = "-";
    bool output_given = false;  // with a feed, --output is only written when asked for
    std::string feed_config;    // JSON: spool and sinks (feed::parse_feed_config)
    std::string metrics;        // ADDRESS:PORT for Prometheus (GET /metrics); empty: none
    std::uint32_t ring_pages = 0;
    // How long attaching may block while the VM's previous session winds down (one VM: wait;
    // many: 0, the domain manager retries without holding up the others).
    std::chrono::milliseconds attach_busy_wait{3000};
    bool cr3_exiting = true;  // exact CR3 records where the module can arm it
    std::chrono::milliseconds rescan_interval{500};
    // Kernel integrity sweeps (GuestIntegrity); 0: none.
    std::chrono::milliseconds integrity_interval{1000};
    std::chrono::milliseconds rescan_min_gap{20};
    // Syscall traps: names to record; paths execve may not run (or, with allow_exec, the
    // only ones it may); the errno a denied call returns.
    std::vector<std::string> syscalls;
    std::vector<std::string> deny_exec, allow_exec;
    int deny_errno = 1;  // EPERM
    // Rule files (Falco-style YAML), loaded in order; alerts follow the events they match.
    std::vector<std::string> policies;
    // Directories of rule files: every *.yaml / *.yml in each, in name order, after --policy.
    std::vector<std::string> policy_dirs;
    // Who the VM is, for policy scoping (uuid: from QEMU's -uuid when not given).
    std::string vm_uuid;
    std::map<std::string, std::string> vm_metadata;
    // Responses: QEMU's QMP socket for pause_vm (found in its command line when not given);
    // where dump_memory writes and how big a dump may be.
    std::string qmp;
    std::string dump_dir = "/var/lib/vminsight/dumps";
    std::uint64_t dump_max_bytes = 64ULL << 30;
    // The control socket (vminsightctl); empty: none.
    std::string control;
};

/// The rule files to load now: --policy files, then each --policy-dir's. Throws UsageError
/// naming a directory that cannot be read.
std::vector<std::string> policy_files(const Options& opts);

/// Throws UsageError with a message naming the offending option.
Options parse_options(const std::vector<std::string>& args);
extern const char* const kUsage;

}  // namespace vmid
