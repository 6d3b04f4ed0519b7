// The guest's Linux kernel as the daemon sees it: guest RAM read from QEMU through the
// module's memory map; struct offsets from the kernel's own BTF and init_task found in guest
// memory (zero configuration), or, for kernels without BTF in memory, from a vmlinux file.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include <nlohmann/json.hpp>
#include <string>

#include "kmod_session.hpp"
#include "process_tracker.hpp"
#include "vmi/btf_profile.hpp"
#include "vmi/kernel_discovery.hpp"
#include "vmi/linux_model.hpp"
#include "vmi/process_memory.hpp"
#include "vmi/profile_file.hpp"

namespace vmid {

class GuestKernel final : public ProcessSource {
  public:
    /// `vmlinux` may be empty: the profile then comes from guest memory. With a file, throws
    /// std::runtime_error naming it when the profile cannot be built.
    /// `profile` (may be null): struct layouts from a BTF or ISF file for discovery.
    GuestKernel(const KmodSession& session, pid_t qemu_pid, const std::string& vmlinux,
                std::shared_ptr<const vmi::KernelProfileFile> profile = nullptr);

    vmi::Result<std::vector<GuestProcess>> list(std::uint64_t cr3) override;

    /// The guest kernel's struct offsets, once the profile is known.
    [[nodiscard]] const vmi::LinuxOffsets* offsets() const { return linux_ ? &offsets_ : nullptr; }

    /// The zero-config profile, once found (not with a vmlinux file).
    [[nodiscard]] const vmi::GuestKernelProfile* profile() const {
        return profile_ ? &*profile_ : nullptr;
    }
    /// Guest RAM as this object reads it (the memory map kept current by list()).
    [[nodiscard]] vmi::GuestMemory& memory() { return memory_; }

    /// How the profile was found, once it was (for the attach report).
    [[nodiscard]] const std::optional<nlohmann::json>& profile_report() const { return report_; }

  private:
    vmi::Status refresh_memory();
    vmi::Status locate_kernel(std::uint64_t cr3);
    vmi::Status locate_from_file(std::uint64_t cr3);
    vmi::Status discover(std::uint64_t cr3);

    const KmodSession& session_;
    bool from_file_ = false;
    vmi::LinuxOffsets offsets_;
    std::uint64_t sym_text_ = 0, sym_init_task_ = 0;
    std::chrono::steady_clock::time_point next_discovery_{};
    vmi::ProcessMemory memory_;
    std::uint64_t memslot_generation_ = ~std::uint64_t{0};
    std::optional<vmi::LinuxGuest> linux_;
    std::optional<nlohmann::json> report_;
    std::optional<vmi::GuestKernelProfile> profile_;
    std::shared_ptr<const vmi::KernelProfileFile> profile_file_;
};

}  // namespace vmid
