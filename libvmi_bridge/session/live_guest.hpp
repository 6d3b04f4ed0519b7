// A running VM opened for introspection from outside the daemon (vminsight-inspect --live, the
// LibVMI-compatible C API): its own vminsight.ko session gives the guest-physical memory map
// (read from QEMU with process_vm_readv) and the CR3 values the vCPUs run with.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "kmod_session.hpp"
#include "vm_locator.hpp"
#include "vmi/process_memory.hpp"

namespace vmid {

/// Why a live VM could not be opened: a sentence naming the QEMU pid.
struct LiveError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class LiveGuest {
  public:
    /// Attaches to the VM of QEMU `qemu_pid` through `device` and waits up to `cr3_wait` for
    /// the first CR3 record (the module samples CR3 at VM entries; an idle guest still takes
    /// timer interrupts). The module allows one session per VM: when vminsightd (or another
    /// tool) holds it, throws LiveError saying so and pointing at `vminsightctl ps`.
    explicit LiveGuest(pid_t qemu_pid,
                       std::chrono::milliseconds cr3_wait = std::chrono::seconds(20),
                       const std::string& device = VMI_DEVICE_PATH);
    LiveGuest(const LiveGuest&) = delete;
    LiveGuest& operator=(const LiveGuest&) = delete;

    [[nodiscard]] pid_t qemu_pid() const noexcept { return pid_; }
    vmi::ProcessMemory& memory() noexcept { return memory_; }
    /// Re-reads the memory map if the module says it changed.
    void refresh_memslots();
    /// Drains the ring, then every distinct CR3 seen so far, the latest of each vCPU first.
    std::vector<std::uint64_t> cr3s();
    /// The last CR3 vCPU `vcpu` ran with at a VM entry the module saw (after draining the
    /// ring), or nullopt if it has not shown one yet.
    std::optional<std::uint64_t> vcpu_cr3(std::uint32_t vcpu);
    [[nodiscard]] std::uint32_t nr_vcpus() const;
    /// Guest RAM in bytes: the sum of the memslots.
    [[nodiscard]] std::uint64_t memory_size() const noexcept { return ram_bytes_; }
    /// One past the highest guest-physical address of any memslot.
    [[nodiscard]] std::uint64_t max_physical_address() const noexcept { return max_gpa_; }

  private:
    void drain();

    pid_t pid_;
    LocatedVm vm_;
    std::unique_ptr<KmodSession> session_;
    vmi::ProcessMemory memory_;
    std::uint64_t generation_ = ~std::uint64_t{0};
    std::uint64_t ram_bytes_ = 0, max_gpa_ = 0;
    std::map<std::uint32_t, std::uint64_t> last_cr3_;  // by vCPU
    std::vector<std::uint64_t> seen_;                  // distinct CR3s, oldest first
};

}  // namespace vmid
