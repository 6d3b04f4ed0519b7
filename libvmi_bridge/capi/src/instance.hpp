// What a vmi_instance_t points at, and the helpers every C entry point shares. Internal to
// libvminsight-vmi.so: the C header (vminsight/libvmi.h) only forward-declares it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "live_guest.hpp"
#include "vmi/kallsyms.hpp"
#include "vmi/kernel_discovery.hpp"
#include "vmi/linux_model.hpp"
#include "vmi/result.hpp"
#include "vminsight/libvmi.h"

struct vmi_instance {
    std::string name;                            // the domain as given
    std::unique_ptr<vmid::LiveGuest> live;       // a running VM, or
    std::unique_ptr<vmi::GuestMemory> snapshot;  // a snapshot file
    vmi::GuestMemory* mem = nullptr;             // whichever of the two
    std::vector<std::uint64_t> snapshot_cr3s;    // by vCPU, from the ELF notes
    std::optional<std::uint64_t> config_cr3;     // "cr3=0xHEX" in the config string
    std::uint64_t snapshot_max_pa = 0;           // highest snapshot address + 1 (0: unknown)
    std::uint64_t cr3 = 0;                       // the CR3 the profile was found with
    vmi::GuestKernelProfile profile;
    std::optional<vmi::KernelSymbols> symbols;  // found on first use
    bool symbols_failed = false;
    bool write_allowed = false;
    unsigned pauses = 0;                    // nested vmi_pause_vm calls
    std::optional<std::string> qmp_socket;  // how to pause, if QEMU has one
};

namespace vmi_capi {

/// Records why the current call failed (vmi_vminsight_last_error) and returns VMI_FAILURE.
status_t fail(const std::string& why);
inline status_t fail(const vmi::Error& e) { return fail(e.message()); }

/// Options for walks that need only pids and page tables.
extern const vmi::ListOptions kTasksOnly;

/// The kernel's page table root: the profile's CR3 without PCID bits or the KPTI user bit.
std::uint64_t kernel_dtb(const vmi_instance& vmi);

/// The page table root of process `pid` (0: the kernel), or the reason there is none.
vmi::Result<std::uint64_t> pid_dtb(vmi_instance& vmi, vmi_pid_t pid);

/// The guest's kallsyms, found on first use (kNotFound once it failed).
vmi::Result<const vmi::KernelSymbols*> symbols(vmi_instance& vmi);

/// Address of kernel symbol `name` (the first of that name).
vmi::Result<std::uint64_t> ksym(vmi_instance& vmi, const char* name);

/// Runs `f` and turns any C++ exception into VMI_FAILURE: nothing may unwind into C.
template <class F>
status_t guarded(F&& f) noexcept {
    try {
        return f();
    } catch (const std::exception& e) {
        return fail(e.what());
    } catch (...) {
        return fail("unexpected error");
    }
}

}  // namespace vmi_capi
