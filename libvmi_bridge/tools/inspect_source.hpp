// Where vminsight-inspect reads guest memory from: a snapshot file (QEMU ELF dump or raw
// image) or a running VM (QEMU's pid, through vminsight.ko), and the CR3 values to try.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "live_guest.hpp"
#include "vmi/elf_core_memory.hpp"
#include "vmi/guest_memory.hpp"

namespace inspect {

struct Source {
    std::string label;  // the snapshot path, or "qemu pid N": prefixes every error
    vmi::GuestMemory* mem = nullptr;
    std::vector<std::uint64_t> cr3s;    // to try in order; never empty
    std::vector<vmi::VcpuState> vcpus;  // an ELF dump's vCPU notes (integrity); else empty
    std::unique_ptr<vmi::GuestMemory> snapshot;
    std::unique_ptr<vmid::LiveGuest> live;
};

/// A snapshot file; `cr3s` overrides the CR3 values of an ELF dump's QEMU notes (and is
/// required for a raw image). Throws std::runtime_error with the reason.
Source open_snapshot(const std::string& path, std::vector<std::uint64_t> cr3s);

/// The VM of QEMU process `qemu_pid`, live: needs root and vminsight.ko, and no other session
/// on the VM (vminsightd). `cr3s` overrides the CR3 values the module reports. Throws
/// std::runtime_error with the reason.
Source open_live(pid_t qemu_pid, std::vector<std::uint64_t> cr3s);

}  // namespace inspect
