/* SPDX-License-Identifier: GPL-2.0 */
/*
 * msr_watch.h - VMI_TRAP_MSR: changes of the guest's system-call entry MSRs.
 *
 * A rootkit that redirects LSTAR (or the SYSENTER/compat entries, or clears
 * EFER.NX) blinds every in-guest agent. The values are compared at each VM
 * entry of a vCPU, against the last ones it had; a difference becomes a
 * VMI_REC_MSR record. The writes themselves do not exit: the cost is a few
 * loads per entry, and a change is seen at the first entry after it.
 */
#ifndef VMI_MSR_WATCH_H
#define VMI_MSR_WATCH_H

#include <linux/atomic.h>
#include <linux/types.h>

#include "uapi/vminsight.h"

struct kvm_vcpu;
struct vmi_session;

/* Per vCPU, written by its own thread only. */
struct vmi_vcpu_msrs {
	bool seen;			/* values[] holds its last values */
	u64 values[VMI_MSR_WATCHED];
};

struct vmi_session_msrs {
	u32 mode;			/* enum vmi_sys_mode */
	u32 fallback;			/* enum vmi_cr3_fallback */
	atomic64_t changes;		/* records after each vCPU's first */
};

/* In the vCPU's thread at VM entry, under rcu_read_lock(). */
void vmi_msr_on_entry(struct vmi_session *s, struct vmi_vcpu_msrs *vm,
		      struct kvm_vcpu *vcpu, u32 idx);

/* VMI_IOC_SET_TRAPS: watch (@on) or stop; the layout is already set. */
void vmi_msr_set_mode(struct vmi_session *s, bool on);

/* Fill the msr_* fields of a status report. */
void vmi_msr_status(struct vmi_session *s, struct vmi_status *out);

#endif /* VMI_MSR_WATCH_H */
