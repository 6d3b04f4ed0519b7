// SPDX-License-Identifier: GPL-2.0
/*
 * msr_watch.c - records writes and changes of the guest's system-call entry
 * MSRs.
 */
#include <asm/msr-index.h>
#include <linux/atomic.h>
#include <linux/compiler.h>
#include <linux/ktime.h>

#include "kvm_shim.h"
#include "msr_watch.h"
#include "ring.h"
#include "session.h"

static const u32 vmi_msr_numbers[VMI_MSR_WATCHED] = {
	[VMI_MSR_LSTAR] = MSR_LSTAR,
	[VMI_MSR_CSTAR] = MSR_CSTAR,
	[VMI_MSR_SYSENTER_CS] = MSR_IA32_SYSENTER_CS,
	[VMI_MSR_SYSENTER_ESP] = MSR_IA32_SYSENTER_ESP,
	[VMI_MSR_SYSENTER_EIP] = MSR_IA32_SYSENTER_EIP,
	[VMI_MSR_EFER] = MSR_EFER,
};

/* enum vmi_watched_msr of an MSR number, or VMI_MSR_WATCHED. */
static int vmi_msr_which(u32 msr)
{
	int i;

	for (i = 0; i < VMI_MSR_WATCHED; i++)
		if (vmi_msr_numbers[i] == msr)
			break;
	return i;
}

/* Refusals that stay; a CR3 mismatch may be a vCPU mid-reset: retry it. */
static bool vmi_msr_refusal_is_final(int why)
{
	return why != VMI_CR3_MISMATCH;
}

/*
 * Keep the vCPU's write intercepts as the session wants them: on while the
 * watch intercepts (or is about to), given back otherwise, detach included.
 */
static void vmi_msr_arm(struct vmi_session *s, struct vmi_vcpu_msrs *vm,
			struct kvm_vcpu *vcpu, u32 mode, bool want)
{
	bool was = vm->owned;
	int why;

	vm->active = false;
	if (!want && !vm->owned)
		return;
	why = vmi_vcpu_msr_intercept(vcpu, &s->layout, want, &vm->owned,
				     &vm->active);
	if (was != !!vm->owned) {
		if (vm->owned)
			atomic_inc(&s->msrs.armed);
		else
			atomic_dec(&s->msrs.armed);
	}
	if (why) {
		if (!want)
			return;
		WRITE_ONCE(s->msrs.fallback, why);
		/* Entry sampling goes on alone, for every vCPU. */
		if (vmi_msr_refusal_is_final(why))
			cmpxchg(&s->msrs.mode, mode, VMI_MSR_SAMPLED);
		return;
	}
	if (vm->active && mode == VMI_MSR_PENDING)
		cmpxchg(&s->msrs.mode, VMI_MSR_PENDING, VMI_MSR_INTERCEPT);
}

static void vmi_msr_record(struct vmi_session *s, struct vmi_vcpu_msrs *vm,
			   u32 idx, int i, u64 now, u16 flags, u64 rip,
			   u64 cr3, u64 written)
{
	struct vmi_record rec;

	memset(&rec, 0, sizeof(rec));
	rec.type = VMI_REC_MSR;
	rec.flags = flags | (vm->seen ? 0 : VMI_RECF_FIRST);
	rec.vcpu = idx;
	rec.time_ns = ktime_get_ns();
	rec.msr.which = i;
	rec.msr.msr = vmi_msr_numbers[i];
	rec.msr.old_value = vm->seen ? vm->values[i] : 0;
	rec.msr.new_value = now;
	rec.msr.rip = rip;
	rec.msr.cr3 = cr3;
	rec.msr.written = written;
	vmi_ring_write(&s->ring, &rec);
	if (vm->seen)
		atomic64_inc(&s->msrs.changes);
	vm->values[i] = now;
}

void vmi_msr_on_entry(struct vmi_session *s, struct vmi_vcpu_msrs *vm,
		      struct kvm_vcpu *vcpu, u32 idx)
{
	/* Pairs with set_traps' store-release: the layout is in place. */
	u32 mode = smp_load_acquire(&s->msrs.mode);
	bool on = !READ_ONCE(s->detaching) &&
		  (mode == VMI_MSR_PENDING || mode == VMI_MSR_SAMPLED ||
		   mode == VMI_MSR_INTERCEPT);
	u64 now[VMI_MSR_WATCHED], exits = vmi_vcpu_exits(vcpu);
	struct vmi_msr_write w;
	int wrote = VMI_MSR_WATCHED;
	u64 rip = 0, cr3 = 0;
	bool recorded = false;
	int why, i;

	/* A new exit while writes exited: maybe one of them. */
	if (on && vm->active && exits != vm->exits_seen &&
	    vmi_vcpu_msr_write_exit(vcpu, &s->layout, &w))
		wrote = vmi_msr_which(w.msr);
	vm->exits_seen = exits;
	vmi_msr_arm(s, vm, vcpu, mode, on && mode != VMI_MSR_SAMPLED);
	if (!on)
		return;
	why = vmi_vcpu_entry_msrs(vcpu, &s->layout, now);
	if (why) {
		if (vmi_msr_refusal_is_final(why)) {
			WRITE_ONCE(s->msrs.fallback, why);
			cmpxchg(&s->msrs.mode, mode, VMI_MSR_REFUSED);
		}
		return;
	}
	for (i = 0; i < VMI_MSR_WATCHED; i++) {
		if (i != wrote && vm->seen && vm->values[i] == now[i])
			continue;
		if (!recorded) {
			rip = vmi_vcpu_rip(vcpu);
			cr3 = vmi_vcpu_cr3(vcpu);
		}
		if (i == wrote)
			vmi_msr_record(s, vm, idx, i, now[i],
				       VMI_RECF_INTERCEPTED |
				       (w.done ? 0 : VMI_RECF_FAULT),
				       w.rip, cr3, w.value);
		else
			vmi_msr_record(s, vm, idx, i, now[i], VMI_RECF_SAMPLED,
				       rip, cr3, 0);
		recorded = true;
	}
	if (recorded) {
		vm->seen = true;
		vmi_session_notify(s);
	}
}

void vmi_msr_set_mode(struct vmi_session *s, bool on)
{
	if (!on)
		WRITE_ONCE(s->msrs.mode, VMI_MSR_OFF);
	else if (READ_ONCE(s->msrs.mode) == VMI_MSR_OFF)
		/* Layout before mode: vmi_msr_on_entry reads them in that order. */
		smp_store_release(&s->msrs.mode, VMI_MSR_PENDING);
}

void vmi_msr_status(struct vmi_session *s, struct vmi_status *out)
{
	out->msr_mode = READ_ONCE(s->msrs.mode);
	out->msr_fallback = READ_ONCE(s->msrs.fallback);
	out->msr_changes = atomic64_read(&s->msrs.changes);
}
