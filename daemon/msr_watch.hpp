// Judges the module's MSR records (VMI_TRAP_MSR): the guest's system-call entry MSRs as each
// vCPU had them at VM entries. The legitimate value of each is the first non-zero one any
// vCPU showed (the guest kernel sets them once per CPU at boot and never again); a vCPU that
// later shows another is a hijacked entry. A vCPU coming up (reset, hotplug) passes through
// zero and then the legitimate value: not a finding. SYSENTER_ESP is a per-CPU stack, so its
// legitimate value is per vCPU. EFER is judged on the bits whose loss weakens the kernel (NX,
// SCE), since a guest running its own VMs legitimately flips SVME.
// Where the module intercepts the writes (msr_mode "intercept"), a record is the WRMSR itself:
// it carries the written value and the RIP of the instruction, so a finding names the code
// that made the write; elsewhere records are samples taken at VM entries.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "vminsight.h"

namespace vmid {

struct MsrFinding {
    std::string target;  // "LSTAR", "CSTAR", "SYSENTER_CS", "SYSENTER_ESP", "SYSENTER_EIP", "EFER"
    std::uint32_t msr = 0;
    std::uint64_t expected = 0, actual = 0, previous = 0;
    std::uint32_t vcpu = 0;
    std::uint64_t rip = 0, cr3 = 0;  // where the vCPU was at the entry that showed it
    // The module intercepted the WRMSR: rip is the writer's, written its EDX:EAX (the CPU may
    // keep fewer bits: actual is what the MSR holds).
    bool intercepted = false;
    std::uint64_t written = 0;
};

class MsrWatch {
  public:
    /// A finding for `rec` (a VMI_REC_MSR record), if it shows tampering.
    std::optional<MsrFinding> feed(const vmi_record& rec);
    /// Records judged, and records that were not MSR records or were out of range.
    [[nodiscard]] std::uint64_t seen() const { return seen_; }
    [[nodiscard]] std::uint64_t malformed() const { return malformed_; }
    /// Of seen(): guest WRMSRs the module intercepted, and those that faulted (#GP).
    [[nodiscard]] std::uint64_t intercepted() const { return intercepted_; }
    [[nodiscard]] std::uint64_t faulted() const { return faulted_; }

  private:
    std::array<std::uint64_t, VMI_MSR_WATCHED> legit_{};         // VM-wide, 0: none yet
    std::map<std::uint32_t, std::uint64_t> legit_sysenter_esp_;  // per vCPU
    std::uint64_t seen_ = 0, malformed_ = 0, intercepted_ = 0, faulted_ = 0;
};

/// The name the module's enum vmi_watched_msr value has, or "" if out of range.
std::string watched_msr_name(std::uint32_t which);

/// vminsight.tamper of the guest-tampered event for `f`: the finding, and for an intercepted
/// write the writer's RIP (writer_rip) and the written value.
nlohmann::json msr_tamper_fields(const MsrFinding& f);

/// How the module watches the entry MSRs (enum vmi_msr_mode): "off", "pending", "sampled",
/// "refused", "intercept", or "unknown".
const char* msr_mode_name(std::uint32_t mode);

}  // namespace vmid
