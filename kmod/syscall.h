/* SPDX-License-Identifier: GPL-2.0 */
/*
 * syscall.h - syscall traps: the filter, records, deny and SYSRET.
 *
 * How it works (AMD): the VMCB's copy of EFER loses SCE while a vCPU runs
 * an address space the filter selects, so SYSCALL and SYSRET raise #UD,
 * which KVM intercepts. KVM's emulator runs SYSCALL; at the next VM entry
 * the vCPU sits at the kernel's entry point with the caller's registers
 * intact, and is recorded (or denied: sent straight back to user mode with
 * an error, the call never runs). A SYSRET's #UD is turned into the SYSRET
 * it stands for, with the return value recorded. The guest's memory is
 * never written, and the EFER it reads back is its own.
 */
#ifndef VMI_SYSCALL_H
#define VMI_SYSCALL_H

#include <linux/atomic.h>
#include <linux/spinlock.h>
#include <linux/types.h>

#include "uapi/vminsight.h"

struct kvm_vcpu;
struct vmi_filter;
struct vmi_session;
struct vmi_vcpu_state;

/* Per vCPU, written by its own thread only. */
struct vmi_vcpu_sys {
	u64 exits_seen;			/* KVM's exit count at the last entry */
	bool active;			/* SYSCALL/SYSRET trapped in the last run */
	bool sysret_wide;		/* the cached SYSRET site is SYSRETQ */
	u64 sysret_rip;			/* a SYSRET site seen, and where it is */
	u64 sysret_gpa;
	u64 syscalls, sysrets, denied, retried, faults, early;
};

/* A traced call waiting for its SYSRET; keyed by the thread's user state. */
struct vmi_pending {
	u64 cr3, rsp, rip;
	u64 nr, seq;
};

#define VMI_PENDING_SLOTS 256

struct vmi_session_sys {
	struct vmi_filter __rcu *filter;
	u32 mode;			/* enum vmi_sys_mode */
	u32 fallback;			/* enum vmi_cr3_fallback */
	atomic_t armed;			/* vCPUs trapping right now */
	raw_spinlock_t pending_lock;
	u64 unmatched;			/* pending entries pushed out */
	struct vmi_pending pending[VMI_PENDING_SLOTS];
};

void vmi_sys_init(struct vmi_session_sys *sys);
void vmi_sys_free(struct vmi_session_sys *sys);

/* VMI_IOC_SET_FILTER: replace the filter. */
long vmi_sys_set_filter(struct vmi_session *s, const void __user *arg);

/* In the vCPU's thread at VM entry, under rcu_read_lock(). */
void vmi_sys_on_entry(struct vmi_session *s, struct vmi_vcpu_state *st,
		      struct kvm_vcpu *vcpu);

/*
 * In the vCPU's thread on its way out to userspace, under rcu_read_lock():
 * complete a trapped SYSRET now, so no #UD of ours sits in KVM's queue
 * where a save or a migration would carry it to a host without us.
 */
void vmi_sys_on_userspace_exit(struct vmi_session *s,
			       struct vmi_vcpu_state *st,
			       struct kvm_vcpu *vcpu);

/* Fill the sys_* fields of a status report. */
void vmi_sys_status(struct vmi_session *s, struct vmi_status *out);

#endif /* VMI_SYSCALL_H */
