// vCPU registers (what the module records: CR3) and pausing the VM.
#include <signal.h>

#include "instance.hpp"
#include "qmp_client.hpp"

using vmi_capi::fail;
using vmi_capi::guarded;

namespace {

// "stop"/"cont" through QMP, or SIGSTOP/SIGCONT to QEMU (see vmi_pause_vm in the header).
status_t run_state(vmi_instance& v, bool pause) {
    if (!v.live) return VMI_SUCCESS;  // a snapshot never runs
    if (v.qmp_socket) {
        vmid::QmpClient(*v.qmp_socket).execute(pause ? "stop" : "cont");
        return VMI_SUCCESS;
    }
    if (::kill(v.live->qemu_pid(), pause ? SIGSTOP : SIGCONT) != 0)
        return fail("qemu pid " + std::to_string(v.live->qemu_pid()) + ": " +
                    (pause ? "SIGSTOP" : "SIGCONT") + " failed");
    return VMI_SUCCESS;
}

}  // namespace

extern "C" {

status_t vmi_get_vcpureg(vmi_instance_t vmi, uint64_t* value, reg_t reg, unsigned long vcpu) {
    if (!vmi || !value) return fail("vmi_get_vcpureg: null argument");
    if (reg != CR3)
        return fail(
            "vmi_get_vcpureg: only CR3 is available (vminsight.ko records CR3, no other "
            "register state)");
    return guarded([&]() -> status_t {
        if (vmi->live) {
            if (vcpu > 0xffffffffUL) return fail("vmi_get_vcpureg: no such vCPU");
            auto cr3 = vmi->live->vcpu_cr3(static_cast<std::uint32_t>(vcpu));
            if (!cr3)
                return fail("vmi_get_vcpureg: vCPU " + std::to_string(vcpu) +
                            " has shown no CR3 yet");
            *value = *cr3;
            return VMI_SUCCESS;
        }
        if (vcpu >= vmi->snapshot_cr3s.size() || vmi->snapshot_cr3s[vcpu] == 0)
            return fail("vmi_get_vcpureg: the snapshot has no CR3 for vCPU " +
                        std::to_string(vcpu));
        *value = vmi->snapshot_cr3s[vcpu];
        return VMI_SUCCESS;
    });
}

status_t vmi_pause_vm(vmi_instance_t vmi) {
    if (!vmi) return fail("vmi_pause_vm: no instance");
    return guarded([&]() -> status_t {
        if (vmi->pauses == 0 && run_state(*vmi, true) != VMI_SUCCESS) return VMI_FAILURE;
        ++vmi->pauses;
        return VMI_SUCCESS;
    });
}

status_t vmi_resume_vm(vmi_instance_t vmi) {
    if (!vmi) return fail("vmi_resume_vm: no instance");
    return guarded([&]() -> status_t {
        if (vmi->pauses == 0) return fail("vmi_resume_vm: the VM is not paused by this instance");
        if (vmi->pauses == 1 && run_state(*vmi, false) != VMI_SUCCESS) return VMI_FAILURE;
        --vmi->pauses;
        return VMI_SUCCESS;
    });
}

}  // extern "C"
