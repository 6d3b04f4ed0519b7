/* SPDX-License-Identifier: GPL-2.0 */
/*
 * msr_watch.h - VMI_TRAP_MSR: writes and changes of the guest's system-call
 * entry MSRs.
 *
 * A rootkit that redirects LSTAR (or the SYSENTER/compat entries, or clears
 * EFER.NX) blinds every in-guest agent. On AMD the guest's writes of LSTAR,
 * CSTAR and SYSENTER_CS/ESP/EIP are made to exit through the vCPU's MSR
 * permission map (EFER writes exit anyway); at the VM entry after such an
 * exit the write is recorded with its value and the RIP of the WRMSR
 * (VMI_RECF_INTERCEPTED). Besides, and alone where intercepting is not
 * possible (Intel, a map that fails validation), the values are compared at
 * each VM entry against the vCPU's last ones; a difference becomes a SAMPLED
 * VMI_REC_MSR record. The guest pays an exit per write of these MSRs, which
 * a kernel makes once per CPU at boot.
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
	bool active;			/* its entry-MSR writes exit this run */
	u8 owned;			/* intercepts we set, to give back */
	u64 exits_seen;			/* its exit count at the last entry */
	u64 values[VMI_MSR_WATCHED];
};

struct vmi_session_msrs {
	u32 mode;			/* enum vmi_msr_mode */
	u32 fallback;			/* enum vmi_cr3_fallback */
	atomic64_t changes;		/* records after each vCPU's first */
	atomic_t armed;			/* vCPUs with intercepts of ours */
};

/*
 * In the vCPU's thread at VM entry, under rcu_read_lock(); also while the
 * session detaches, to give the intercepts back.
 */
void vmi_msr_on_entry(struct vmi_session *s, struct vmi_vcpu_msrs *vm,
		      struct kvm_vcpu *vcpu, u32 idx);

/* VMI_IOC_SET_TRAPS: watch (@on) or stop; the layout is already set. */
void vmi_msr_set_mode(struct vmi_session *s, bool on);

/* Fill the msr_* fields of a status report. */
void vmi_msr_status(struct vmi_session *s, struct vmi_status *out);

#endif /* VMI_MSR_WATCH_H */
