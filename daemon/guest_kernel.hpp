// The guest's Linux kernel as the daemon sees it: guest RAM read from QEMU through the
// module's memory map, struct offsets from the guest kernel's BTF, _text and init_task from
// its vmlinux image, and the KASLR slide found in the guest's own page tables on first use.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "kmod_session.hpp"
#include "process_tracker.hpp"
#include "vmi/btf_profile.hpp"
#include "vmi/linux_model.hpp"
#include "vmi/process_memory.hpp"

namespace vmid {

class GuestKernel final : public ProcessSource {
  public:
    /// Throws std::runtime_error naming the file when the profile cannot be built.
    GuestKernel(const KmodSession& session, pid_t qemu_pid, const std::string& vmlinux);

    vmi::Result<std::vector<GuestProcess>> list(std::uint64_t cr3) override;

    /// Slide found, or nothing yet (the guest kernel may not be up).
    [[nodiscard]] std::optional<std::uint64_t> kaslr_slide() const { return slide_; }

  private:
    vmi::Status refresh_memory();
    vmi::Status locate_kernel(std::uint64_t cr3);

    const KmodSession& session_;
    vmi::LinuxOffsets offsets_;
    std::uint64_t sym_text_ = 0, sym_init_task_ = 0;
    vmi::ProcessMemory memory_;
    std::uint64_t memslot_generation_ = ~std::uint64_t{0};
    std::optional<std::uint64_t> slide_;
    std::optional<vmi::LinuxGuest> linux_;
};

}  // namespace vmid
