// Guest RAM mapped in another host process (QEMU), read with process_vm_readv(2).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <shared_mutex>
#include <span>
#include <vector>

#include "vmi/guest_memory.hpp"

namespace vmi {

/// One KVM memslot: guest-physical range [gpa, gpa+size) lives at host virtual address hva in
/// the VMM process.
struct Memslot {
    std::uint64_t gpa = 0;
    std::uint64_t size = 0;
    std::uint64_t hva = 0;
};

/// Needs ptrace access to the VMM (same uid and ptrace_scope permitting, or CAP_SYS_PTRACE).
class ProcessMemory final : public GuestMemory {
  public:
    /// Throws std::invalid_argument if the slots are invalid (see set_memslots).
    ProcessMemory(pid_t pid, std::vector<Memslot> slots);

    /// Splits the read at slot and host-page boundaries and issues batched process_vm_readv
    /// calls. Any byte outside every slot -> kUnmapped; a short or failed syscall -> kReadFailed.
    /// Thread-safe against concurrent set_memslots().
    Status read_phys(std::uint64_t gpa, std::span<std::byte> out) override;

    /// Writes guest-physical bytes into the VMM with process_vm_writev(2), page by page, behind
    /// the guest's back (no vCPU is stopped). Stops at the first byte outside every slot
    /// (kUnmapped) or the first failing page (kReadFailed, the errno text); `written` (if not
    /// null) gets the bytes written before that.
    Status write_phys(std::uint64_t gpa, std::span<const std::byte> in,
                      std::size_t* written = nullptr);

    /// Replaces the slot map atomically (memslots change when the guest remaps RAM).
    /// Rejects empty, wrapping or overlapping slots with kInvalidFormat and keeps the old map.
    Status set_memslots(std::vector<Memslot> slots);

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }

  private:
    pid_t pid_;
    mutable std::shared_mutex mu_;
    std::vector<Memslot> slots_;  // sorted by gpa, non-overlapping
};

}  // namespace vmi
