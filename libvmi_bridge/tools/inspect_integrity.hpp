// `vminsight-inspect integrity`: one integrity sweep of a snapshot (absolute rules), or of a
// snapshot against the baseline of an earlier snapshot of the same boot (--against).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vmi/elf_core_memory.hpp"
#include "vmi/guest_memory.hpp"
#include "vmi/kernel_discovery.hpp"

namespace vmi::tools {

struct IntegrityArgs {
    std::string snapshot;
    std::string against;              // baseline snapshot; empty = absolute rules only
    std::vector<std::uint64_t> cr3s;  // --cr3 values (raw images)
    bool json = false;
    bool la57 = false;
};

/// Runs the sweep on `mem` (profiled with `cr3`); prints findings. Returns the exit status
/// (0 no critical finding, 3 critical findings), or -1 with `error` set when this CR3 does not
/// work (the caller tries the next).
int inspect_integrity(GuestMemory& mem, std::uint64_t cr3, const GuestKernelProfile& prof,
                      const std::vector<VcpuState>& vcpus, const IntegrityArgs& a,
                      std::string& error);

}  // namespace vmi::tools
