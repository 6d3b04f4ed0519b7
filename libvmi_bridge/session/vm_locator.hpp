// Finds the KVM VM behind a QEMU process and duplicates its VM fd into this process.
#pragma once

#include <sys/types.h>

#include <stdexcept>
#include <string>

#include "unique_fd.hpp"

namespace vmid {

struct LocateError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct LocatedVm {
    UniqueFd pidfd;  // readable when QEMU exits
    UniqueFd vm_fd;  // our duplicate of QEMU's "anon_inode:kvm-vm" fd
    int remote_fd = -1;
};

/// pidfd_open(pid), then the fd in /proc/<pid>/fd linking to "anon_inode:kvm-vm", duplicated
/// with pidfd_getfd (needs ptrace rights over QEMU). Throws LocateError naming the pid.
LocatedVm locate_vm(pid_t qemu_pid);

/// The QEMU process started with `-uuid UUID` (as libvirt starts every domain's), found in
/// `proc` (normally /proc). Throws LocateError when there is none, or more than one.
pid_t find_qemu_by_uuid(const std::string& uuid, const std::string& proc = "/proc");

/// A libvirt domain's QEMU: the pid in libvirt's own pid file (`run_dir`/NAME.pid, root's),
/// if its command line has `-uuid UUID`; without a pid file (another driver layout), the scan
/// above. The pid file is what a local user cannot spoof with a process of their own that
/// merely names the uuid, and reading it never touches other processes' memory.
pid_t find_domain_qemu(const std::string& name, const std::string& uuid,
                       const std::string& run_dir = "/run/libvirt/qemu",
                       const std::string& proc = "/proc");

/// The QEMU process of a VM called `name`: a libvirt domain's (the pid in `run_dir`/NAME.pid)
/// or a bare QEMU started with `-name NAME` or `-name guest=NAME[,...]`, found in `proc`.
/// Throws LocateError when there is none, or more than one.
pid_t find_qemu_by_name(const std::string& name, const std::string& run_dir = "/run/libvirt/qemu",
                        const std::string& proc = "/proc");

}  // namespace vmid
