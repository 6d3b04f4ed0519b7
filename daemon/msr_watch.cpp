#include "msr_watch.hpp"

#include "event_fields.hpp"

namespace vmid {
namespace {
constexpr std::uint64_t kEferSce = 1ULL << 0, kEferNx = 1ULL << 11;
}

std::string watched_msr_name(std::uint32_t which) {
    switch (which) {
        case VMI_MSR_LSTAR:
            return "LSTAR";
        case VMI_MSR_CSTAR:
            return "CSTAR";
        case VMI_MSR_SYSENTER_CS:
            return "SYSENTER_CS";
        case VMI_MSR_SYSENTER_ESP:
            return "SYSENTER_ESP";
        case VMI_MSR_SYSENTER_EIP:
            return "SYSENTER_EIP";
        case VMI_MSR_EFER:
            return "EFER";
        default:
            return "";
    }
}

const char* msr_mode_name(std::uint32_t mode) {
    switch (mode) {
        case VMI_MSR_OFF:
            return "off";
        case VMI_MSR_PENDING:
            return "pending";
        case VMI_MSR_SAMPLED:
            return "sampled";
        case VMI_MSR_REFUSED:
            return "refused";
        case VMI_MSR_INTERCEPT:
            return "intercept";
        default:
            return "unknown";
    }
}

std::optional<MsrFinding> MsrWatch::feed(const vmi_record& rec) {
    if (rec.type != VMI_REC_MSR || rec.msr.which >= VMI_MSR_WATCHED) {
        ++malformed_;
        return std::nullopt;
    }
    ++seen_;
    const bool intercepted = (rec.flags & VMI_RECF_INTERCEPTED) != 0;
    intercepted_ += intercepted;
    faulted_ += intercepted && (rec.flags & VMI_RECF_FAULT);
    const std::uint32_t which = rec.msr.which;
    std::uint64_t now = rec.msr.new_value;
    // An AMD vCPU keeps 32 bits of SYSENTER_ESP/EIP (SYSENTER is legacy-mode only there): KVM
    // stores them so when it writes the VMCB, hardware may keep all 64 after a guest WRMSR.
    if (which == VMI_MSR_SYSENTER_ESP || which == VMI_MSR_SYSENTER_EIP) now &= 0xffffffffULL;
    if (now == 0) return std::nullopt;  // a vCPU in reset or not yet set up by the kernel
    std::uint64_t& legit =
        which == VMI_MSR_SYSENTER_ESP ? legit_sysenter_esp_[rec.vcpu] : legit_[which];
    if (legit == 0) {
        legit = now;
        return std::nullopt;
    }
    bool tampered = now != legit;
    if (which == VMI_MSR_EFER) tampered = (legit & ~now & (kEferNx | kEferSce)) != 0;
    if (!tampered) return std::nullopt;
    return MsrFinding{watched_msr_name(which),
                      rec.msr.msr,
                      legit,
                      now,
                      (rec.flags & VMI_RECF_FIRST) ? 0 : rec.msr.old_value,
                      rec.vcpu,
                      rec.msr.rip,
                      rec.msr.cr3,
                      intercepted,
                      intercepted ? rec.msr.written : 0};
}

nlohmann::json msr_tamper_fields(const MsrFinding& f) {
    nlohmann::json t = {{"kind", "msr_hook"},      {"target", f.target},
                        {"msr", hex(f.msr)},       {"expected", hex(f.expected)},
                        {"actual", hex(f.actual)}, {"previous", hex(f.previous)},
                        {"vcpu", f.vcpu},          {"rip", hex(f.rip)},
                        {"cr3", hex(f.cr3)},       {"intercepted", f.intercepted}};
    if (f.intercepted) {
        // The WRMSR itself exited: rip is the instruction that made the write.
        t["writer_rip"] = hex(f.rip);
        t["written"] = hex(f.written);
        t["seen"] = "at the write (intercepted WRMSR)";
    } else {
        t["seen"] = "at the first VM entry after the write";
    }
    return t;
}

}  // namespace vmid
