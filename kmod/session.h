/* SPDX-License-Identifier: GPL-2.0 */
/*
 * session.h - one attachment of vminsight.ko to one VM.
 *
 * A session is an anonymous file returned by VMI_IOC_ATTACH. It holds a
 * reference on the VM (so the VM outlives QEMU until the daemon lets go)
 * and on this module (so rmmod fails with EBUSY instead of pulling probes
 * from under an attached VM). When the file goes, the session lingers
 * until every vCPU has dropped its traps: a SYSRET trapped with nobody left
 * to run it would kill the guest.
 */
#ifndef VMI_SESSION_H
#define VMI_SESSION_H

#include <linux/atomic.h>
#include <linux/irq_work.h>
#include <linux/list.h>
#include <linux/types.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "msr_watch.h"
#include "ring.h"
#include "syscall.h"
#include "uapi/vminsight.h"

struct kvm;
struct kvm_vcpu;

/*
 * Address-space identity of a CR3: PCID (bits 0-11) and KPTI's bit 12 vary
 * per CPU and per kernel entry without a process switch.
 */
#define VMI_CR3_AS_MASK (~(u64)0x1fff)

/* Written only by its vCPU's thread; one cache line each, no false sharing. */
struct vmi_vcpu_state {
	u64 last_cr3;
	u64 samples;
	bool cr3_exiting;		/* validated and wanted (counted in armed) */
	bool cr3_exiting_now;		/* its CR3 writes exit right now */
	struct vmi_vcpu_sys sys;
	struct vmi_vcpu_msrs msrs;
} ____cacheline_aligned;

struct vmi_session {
	struct hlist_node node;
	struct kvm *kvm;
	struct vmi_ring ring;
	struct vmi_vcpu_state *vcpus;	/* indexed by vCPU index */
	u32 max_vcpus;
	wait_queue_head_t wq;
	struct irq_work wake;		/* lazy: no self-IPI right before entry */
	struct delayed_work reap;	/* detached, waiting for vCPUs to disarm */

	/* Traps: requested by VMI_IOC_SET_TRAPS, armed per vCPU. */
	struct vmi_kvm_layout layout;	/* set once, before a mode leaves 0 */
	u32 cr3_mode;			/* enum vmi_cr3_mode */
	u32 cr3_fallback;		/* enum vmi_cr3_fallback */
	atomic_t cr3_armed;		/* vCPUs with cr3_exiting */
	struct vmi_session_sys sys;
	struct vmi_session_msrs msrs;
	bool detaching;			/* disarm, record nothing */
};

/* Attach to the VM behind attach->vm_fd; returns a session fd or -errno. */
int vmi_session_attach(const struct vmi_attach *attach);

/* Called for every VM entry of every VM while any session exists. */
void vmi_session_on_vm_entry(struct kvm_vcpu *vcpu);
/* Called for every return of KVM_RUN to userspace, likewise. */
void vmi_session_on_userspace_exit(struct kvm_vcpu *vcpu);

/* Wake readers soon (lazily); callable from the entry probe. */
void vmi_session_notify(struct vmi_session *s);

/* Module init and exit. */
int vmi_sessions_init(void);
void vmi_sessions_exit(void);

#endif /* VMI_SESSION_H */
