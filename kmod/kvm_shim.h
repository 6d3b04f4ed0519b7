/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kvm_shim.h - every dependency on KVM internals, behind one small API.
 *
 * The rest of vminsight.ko never touches struct kvm or struct kvm_vcpu
 * fields directly; a new kernel means revisiting kvm_shim.c only.
 * Supported: Debian's 6.1 and 6.12 kernels.
 */
#ifndef VMI_KVM_SHIM_H
#define VMI_KVM_SHIM_H

#include <linux/types.h>

struct file;
struct kvm;
struct kvm_vcpu;
struct vmi_kvm_layout;
struct vmi_memslot;

/* Largest vCPU index + 1 this VM can have; sizes per-vCPU state. */
u32 vmi_kvm_max_vcpus(struct kvm *kvm);
/* Most memslots vmi_kvm_memslots() can report. */
u32 vmi_kvm_max_memslots(void);

/* Take a reference on the VM behind a KVM VM file, or ERR_PTR. */
struct kvm *vmi_kvm_get_from_file(struct file *file);
void vmi_kvm_put(struct kvm *kvm);

/* True when the caller's reference is the last one: QEMU is gone. */
bool vmi_kvm_is_orphaned(struct kvm *kvm);
u32 vmi_kvm_online_vcpus(struct kvm *kvm);
/* The VM owner's (QEMU's) pid, for humans reading traces. */
pid_t vmi_kvm_owner_pid(struct kvm *kvm);

/*
 * Copy up to @max user memslots of address space 0 into @out; returns how
 * many exist (may exceed @max) and stores the memslot generation. KVM's
 * private slots (APIC page, TSS) are not guest RAM and are left out.
 */
u32 vmi_kvm_memslots(struct kvm *kvm, struct vmi_memslot *out, u32 max,
		     u64 *generation);

/* vCPU accessors, valid in the vCPU's own thread (tracepoint context). */
struct kvm *vmi_vcpu_kvm(struct kvm_vcpu *vcpu);
u32 vmi_vcpu_index(struct kvm_vcpu *vcpu);
u64 vmi_vcpu_cr3(struct kvm_vcpu *vcpu);
/* True while the vCPU runs a nested (L2) guest: its CR3 is not the VM's. */
bool vmi_vcpu_in_nested_guest(struct kvm_vcpu *vcpu);

/* Make every vCPU of the VM enter KVM's run loop again soon. */
void vmi_kvm_kick_vcpus(struct kvm *kvm);

/*
 * CR3-write exiting for one vCPU, from its own thread at VM entry (never in
 * a nested guest). @layout comes from userspace and is validated here.
 * Exiting is only ever on while the guest runs in long mode with paging:
 * @active says whether it is on now. Returns 0 or a positive enum
 * vmi_cr3_fallback reason.
 */
int vmi_vcpu_cr3_exiting(struct kvm_vcpu *vcpu,
			 const struct vmi_kvm_layout *layout, bool on,
			 bool *active);

/* VM exits the vCPU has taken so far; tells a new exit from a re-entry. */
u64 vmi_vcpu_exits(struct kvm_vcpu *vcpu);

/*
 * Syscall traps. With EFER.SCE clear in the EFER the guest runs with (AMD:
 * the VMCB's; Intel: the VMCS's guest EFER, loaded at entry), but set in
 * the EFER it reads, the guest's SYSCALL and SYSRET raise #UD, which KVM
 * intercepts on both vendors: KVM's emulator runs SYSCALL, but not SYSRET, which
 * vmi_vcpu_sysret() runs instead. Like vmi_vcpu_cr3_exiting(): from the
 * vCPU's thread at VM entry; returns 0 or an enum vmi_cr3_fallback reason.
 * Traps are on only in long mode with the guest's own SCE set, and never
 * while the guest uses SVM or VMX itself (nested exits reload EFER).
 */
int vmi_vcpu_syscall_exiting(struct kvm_vcpu *vcpu,
			     const struct vmi_kvm_layout *layout, bool on,
			     bool *active);

/* What the last exit of a vCPU with syscall traps on was. */
enum vmi_trap_exit {
	VMI_EXIT_OTHER = 0,
	VMI_EXIT_SYSCALL,	/* KVM emulated a SYSCALL: kernel entry now */
	VMI_EXIT_UD_KERNEL,	/* KVM queued #UD at CPL 0: maybe SYSRET */
};

enum vmi_trap_exit vmi_vcpu_trap_exit(struct kvm_vcpu *vcpu,
				      const struct vmi_kvm_layout *layout);

/*
 * The guest's system-call entry MSRs at this VM entry, in enum
 * vmi_watched_msr order (EFER as the guest sees it). AMD only: VMSAVE keeps
 * them in the VMCB after every exit. Returns 0 or an enum vmi_cr3_fallback
 * reason.
 */
int vmi_vcpu_entry_msrs(struct kvm_vcpu *vcpu,
			const struct vmi_kvm_layout *layout, u64 *values);

/*
 * Make the guest's writes of LSTAR, CSTAR and SYSENTER_CS/ESP/EIP exit (AMD:
 * write-intercept bits in the vCPU's MSR permission map, which KVM clears
 * for them; KVM handles the exits itself). EFER writes always exit. From
 * the vCPU's thread at VM entry, never in a nested guest; on only in long
 * mode, and not while the guest runs VMs itself. @owned (bits by enum
 * vmi_watched_msr) is the set of intercepts this module turned on, and the
 * only ones it turns off again (all of them when !@on): KVM's own stay.
 * A bit KVM cleared again is set again. @active says whether writes exit
 * now. Returns 0 or an enum vmi_cr3_fallback reason (VMI_CR3_NO_VENDOR on
 * Intel: not done there yet).
 */
int vmi_vcpu_msr_intercept(struct kvm_vcpu *vcpu,
			   const struct vmi_kvm_layout *layout, bool on,
			   u8 *owned, bool *active);

/* A guest WRMSR that exited, seen at the VM entry after it. */
struct vmi_msr_write {
	u32 msr;		/* ECX */
	u64 value;		/* EDX:EAX */
	u64 rip;		/* of the WRMSR instruction */
	bool done;		/* KVM completed it (else it injected #GP) */
};

/* Whether the vCPU's last exit was a WRMSR; call once per new exit. */
bool vmi_vcpu_msr_write_exit(struct kvm_vcpu *vcpu,
			     const struct vmi_kvm_layout *layout,
			     struct vmi_msr_write *w);

/* Guest RIP at VM entry. */
u64 vmi_vcpu_rip(struct kvm_vcpu *vcpu);

/* Guest registers at VM entry. */
struct vmi_regs {
	u64 rax, rdi, rsi, rdx, r10, r8, r9, rcx, r11, rsp, rip, cr3;
	u64 kernel_gs_base;	/* the guest's per-CPU base while in user mode */
	bool la57;		/* 5-level paging */
	bool sce;		/* the guest's own EFER.SCE */
};

void vmi_vcpu_regs(struct kvm_vcpu *vcpu, const struct vmi_kvm_layout *layout,
		   struct vmi_regs *regs);

/*
 * Do what SYSRET (@wide: SYSRETQ) does from the current state: RIP from
 * RCX, RFLAGS from R11, user CS and SS from STAR, CPL 3; RAX becomes @rax.
 * Drops the #UD KVM was about to inject. Returns false, changing nothing,
 * if SYSRET itself would fault (RCX not canonical).
 */
bool vmi_vcpu_sysret(struct kvm_vcpu *vcpu,
		     const struct vmi_kvm_layout *layout, bool wide, u64 rax);

/*
 * Drop the #UD KVM was about to inject and let the vCPU run the same
 * instruction again with the guest's own EFER.SCE: a SYSRET then runs
 * natively, a genuine #UD faults again. The caller leaves traps off for
 * this entry.
 */
void vmi_vcpu_retry_natively(struct kvm_vcpu *vcpu,
			     const struct vmi_kvm_layout *layout);

/*
 * Outside VM entry (the vCPU not loaded): drop a #UD KVM queued at @rip, so
 * the vCPU runs that instruction again. Returns whether it did.
 */
bool vmi_vcpu_drop_queued_ud_at(struct kvm_vcpu *vcpu, u64 rip);

/*
 * Whether the vendor's guest state can be read and changed outside VM entry
 * (AMD: the VMCB is memory; Intel: VMCS fields need the VMCS loaded).
 */
bool vmi_vcpu_state_loaded(const struct vmi_kvm_layout *layout);

/* Read guest-physical memory without sleeping; 0 or -errno. */
int vmi_vcpu_read_gpa(struct kvm_vcpu *vcpu, u64 gpa, void *buf, u32 len);

/*
 * Return probe on KVM_RUN, in the vCPU's thread after it left the guest for
 * userspace (QEMU), where a save or migration may read its state. The vCPU
 * is not loaded; interrupts may be off.
 */
typedef void (*vmi_userspace_exit_probe_t)(struct kvm_vcpu *vcpu);
int vmi_kvm_userspace_exit_probe_register(vmi_userspace_exit_probe_t probe);
void vmi_kvm_userspace_exit_probe_unregister(void);
/* Returns missed for lack of instances (more vCPUs in KVM_RUN than planned). */
unsigned long vmi_kvm_userspace_exit_probe_missed(void);

/* Tracepoint on every VM entry. */
typedef void (*vmi_entry_probe_t)(struct kvm_vcpu *vcpu);
int vmi_kvm_entry_probe_register(vmi_entry_probe_t probe);
void vmi_kvm_entry_probe_unregister(void);

#endif /* VMI_KVM_SHIM_H */
