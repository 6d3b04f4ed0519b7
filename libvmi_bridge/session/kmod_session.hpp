// One attachment of vminsight.ko to a VM: the session fd, its mapped ring, its ioctls.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "ring_reader.hpp"
#include "unique_fd.hpp"
#include "vminsight.h"

namespace vmid {

struct KmodError : std::runtime_error {
    using std::runtime_error::runtime_error;
};
/// The VM has a session already (maybe the last one, still winding down): try again later.
struct KmodBusy : KmodError {
    using KmodError::KmodError;
};

struct GuestMemslot {
    std::uint64_t gpa, size, hva;
};

class KmodSession {
  public:
    /// Attaches to the VM behind `vm_fd` through `device` (normally /dev/vminsight). While the
    /// VM's previous session still winds down (EBUSY) it retries for up to `busy_wait`
    /// (blocking); after that, or at once with 0, it throws KmodBusy.
    KmodSession(const std::string& device, int vm_fd, std::uint32_t data_pages = 0,
                std::chrono::milliseconds busy_wait = std::chrono::seconds(3));
    ~KmodSession();
    KmodSession(const KmodSession&) = delete;
    KmodSession& operator=(const KmodSession&) = delete;

    [[nodiscard]] int fd() const noexcept { return session_.get(); }
    /// Detach now: unmap the ring and close the session (the module winds it down). status()
    /// then reports zeros.
    void close();
    [[nodiscard]] bool is_open() const noexcept { return session_.valid(); }
    RingReader& ring() noexcept { return *ring_; }
    [[nodiscard]] vmi_status status() const;
    /// Requests traps (VMI_TRAP_*) with the KVM layout the module needs to set them.
    void set_traps(std::uint32_t flags, const vmi_kvm_layout& layout);
    /// Replaces the syscall filter (VMI_IOC_SET_FILTER); `exec_paths` are the paths its
    /// exec_mode lists.
    void set_filter(vmi_syscall_filter filter, const std::vector<std::string>& exec_paths = {});
    /// The VM's guest-physical memory map; `generation` changes when it does.
    std::vector<GuestMemslot> memslots(std::uint64_t* generation = nullptr) const;

  private:
    UniqueFd session_;
    std::span<std::byte> mapping_;
    std::optional<RingReader> ring_;
};

}  // namespace vmid
