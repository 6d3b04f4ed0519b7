// Address translation: kernel and process page tables, pids to page tables, kernel symbols.
#include "instance.hpp"
#include "vmi/linux_model.hpp"
#include "vmi/page_walker.hpp"

namespace vmi_capi {

// pid and page table are all a lookup needs: skip exe, argv and thread counts.
const vmi::ListOptions kTasksOnly{false, false, false, {}};

std::uint64_t kernel_dtb(const vmi_instance& vmi) { return vmi::kernel_pgd_from_cr3(vmi.cr3); }

vmi::Result<std::uint64_t> pid_dtb(vmi_instance& vmi, vmi_pid_t pid) {
    if (pid == 0) return kernel_dtb(vmi);
    // A fresh walk each time: processes come and go (LibVMI caches; a stale page table is worse).
    vmi::LinuxGuest guest(*vmi.mem, vmi.profile.offsets, vmi.profile.init_task_va);
    auto procs = guest.list_processes(vmi.cr3, kTasksOnly);
    if (!procs) return procs.error();
    for (const vmi::Process& p : *procs) {
        if (p.pid != pid) continue;
        if (p.pgd_pa == 0)
            return vmi::Error{vmi::Fault::kNotFound, "pid " + std::to_string(pid) +
                                                         " has no address space (kernel thread)"};
        return p.pgd_pa;
    }
    return vmi::Error{vmi::Fault::kNotFound, "no process with pid " + std::to_string(pid)};
}

vmi::Result<const vmi::KernelSymbols*> symbols(vmi_instance& vmi) {
    if (vmi.symbols) return &*vmi.symbols;
    if (vmi.symbols_failed)
        return vmi::Error{vmi::Fault::kNotFound, "the guest's kallsyms were not found"};
    auto ks = vmi::discover_kernel_symbols(*vmi.mem, vmi.cr3, vmi.profile);
    if (!ks) {
        vmi.symbols_failed = true;
        return vmi::Error{ks.error().fault, "kallsyms: " + ks.error().message()};
    }
    vmi.symbols.emplace(std::move(*ks));
    return &*vmi.symbols;
}

vmi::Result<std::uint64_t> ksym(vmi_instance& vmi, const char* name) {
    if (!name) return vmi::Error{vmi::Fault::kInvalidFormat, "no symbol name"};
    auto ks = symbols(vmi);
    if (!ks) return ks.error();
    const auto found = (*ks)->lookup(name);
    if (found.empty())
        return vmi::Error{vmi::Fault::kNotFound, std::string("no kernel symbol ") + name};
    return found.front().address;
}

}  // namespace vmi_capi

using vmi_capi::fail;
using vmi_capi::guarded;

extern "C" {

status_t vmi_pagetable_lookup(vmi_instance_t vmi, addr_t dtb, addr_t vaddr, addr_t* paddr) {
    if (!vmi || !paddr) return fail("vmi_pagetable_lookup: null argument");
    return guarded([&]() -> status_t {
        auto pa = vmi::translate(*vmi->mem, dtb, vaddr, false);
        if (!pa) return fail(pa.error());
        *paddr = *pa;
        return VMI_SUCCESS;
    });
}

status_t vmi_translate_kv2p(vmi_instance_t vmi, addr_t vaddr, addr_t* paddr) {
    if (!vmi) return fail("vmi_translate_kv2p: no instance");
    return vmi_pagetable_lookup(vmi, vmi_capi::kernel_dtb(*vmi), vaddr, paddr);
}

status_t vmi_translate_uv2p(vmi_instance_t vmi, addr_t vaddr, vmi_pid_t pid, addr_t* paddr) {
    if (!vmi || !paddr) return fail("vmi_translate_uv2p: null argument");
    return guarded([&]() -> status_t {
        auto dtb = vmi_capi::pid_dtb(*vmi, pid);
        if (!dtb) return fail(dtb.error());
        return vmi_pagetable_lookup(vmi, *dtb, vaddr, paddr);
    });
}

status_t vmi_translate_ksym2v(vmi_instance_t vmi, const char* symbol, addr_t* vaddr) {
    if (!vmi || !vaddr) return fail("vmi_translate_ksym2v: null argument");
    return guarded([&]() -> status_t {
        auto va = vmi_capi::ksym(*vmi, symbol);
        if (!va) return fail(va.error());
        *vaddr = *va;
        return VMI_SUCCESS;
    });
}

status_t vmi_pid_to_dtb(vmi_instance_t vmi, vmi_pid_t pid, addr_t* dtb) {
    if (!vmi || !dtb) return fail("vmi_pid_to_dtb: null argument");
    return guarded([&]() -> status_t {
        auto d = vmi_capi::pid_dtb(*vmi, pid);
        if (!d) return fail(d.error());
        *dtb = *d;
        return VMI_SUCCESS;
    });
}

status_t vmi_dtb_to_pid(vmi_instance_t vmi, addr_t dtb, vmi_pid_t* pid) {
    if (!vmi || !pid) return fail("vmi_dtb_to_pid: null argument");
    return guarded([&]() -> status_t {
        vmi::LinuxGuest guest(*vmi->mem, vmi->profile.offsets, vmi->profile.init_task_va);
        auto procs = guest.list_processes(vmi->cr3, vmi_capi::kTasksOnly);
        if (!procs) return fail(procs.error());
        const vmi::Process* p = vmi::find_by_cr3(*procs, dtb);
        if (!p) return fail("no process runs with that page table");
        *pid = p->pid;
        return VMI_SUCCESS;
    });
}

}  // extern "C"
