// Kernel integrity of one guest, from outside it (issue 8): when the guest kernel is first
// known, its kallsyms are derived from memory and a baseline is taken (syscall tables, IDT,
// text and rodata page hashes); then every sweep checks the absolute rules and the baseline,
// and the module list against the module address tree, the task list against the task tree
// and the vCPUs. Each finding not reported before becomes one guest-tampered event; a finding
// that goes away (the change undone) may be reported again if it comes back.
// Sweeps run on the monitor's thread: they read a few tables and hash the kernel's text, so
// their cost is reported in every sweep (ms, pages) and in the monitor's stats.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vmi/integrity.hpp"
#include "vmi/kallsyms.hpp"
#include "vmi/kernel_discovery.hpp"
#include "vmi/linux_model.hpp"

namespace vmid {

class GuestIntegrity {
  public:
    /// Derives kallsyms and takes the baseline. Returns why not (a sentence) on failure;
    /// `started()` stays false then and start may be tried again later.
    std::optional<std::string> start(vmi::GuestMemory& mem, std::uint64_t cr3,
                                     const vmi::GuestKernelProfile& prof);
    [[nodiscard]] bool started() const { return baseline_.has_value(); }

    /// One sweep with the vCPUs as last seen; returns the events of new findings (native
    /// JSON without vm, which the caller adds).
    std::vector<nlohmann::json> sweep(std::uint64_t cr3, std::vector<vmi::VcpuView> vcpus);

    /// For each address: "[module]+0x10" inside a listed module, "symbol+0x10" inside kernel
    /// text, else ""; needs the kallsyms start() derived (reads the module list from guest
    /// memory, once for all).
    [[nodiscard]] std::vector<std::string> describe(std::uint64_t cr3,
                                                    std::span<const std::uint64_t> vas) const;

    /// For the monitor's stats.
    [[nodiscard]] nlohmann::json status() const;

  private:
    vmi::GuestMemory* mem_ = nullptr;
    vmi::GuestKernelProfile prof_;
    std::optional<vmi::KernelSymbols> syms_;
    std::optional<vmi::IntegrityBaseline> baseline_;
    std::set<std::string> active_;  // keys of findings seen in the last sweep
    std::string failed_;            // why the baseline could not be taken, if it could not
    std::uint64_t sweeps_ = 0, findings_ = 0, check_failures_ = 0;
    std::string last_check_failure_;  // what the last one said, for the stats
    vmi::IntegrityStats last_{};
    double baseline_ms_ = 0;
    double sweep_ms_total_ = 0, sweep_ms_max_ = 0;
};

/// The native event for one finding.
nlohmann::json tamper_event(const vmi::IntegrityFinding& f);
/// The event's process fields for a process hidden from the task list.
nlohmann::json hidden_process_fields(const vmi::Process& p);

}  // namespace vmid
