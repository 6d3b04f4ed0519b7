// SPDX-License-Identifier: GPL-2.0
/*
 * msr_watch.c - records changes of the guest's system-call entry MSRs.
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

void vmi_msr_on_entry(struct vmi_session *s, struct vmi_vcpu_msrs *vm,
		      struct kvm_vcpu *vcpu, u32 idx)
{
	/* Pairs with set_traps' store-release: the layout is in place. */
	u32 mode = smp_load_acquire(&s->msrs.mode);
	u64 now[VMI_MSR_WATCHED];
	struct vmi_record rec;
	u64 rip = 0, cr3 = 0;
	int why, i;

	if (mode != VMI_SYS_PENDING && mode != VMI_SYS_ON)
		return;
	why = vmi_vcpu_entry_msrs(vcpu, &s->layout, now);
	if (why) {
		WRITE_ONCE(s->msrs.fallback, why);
		cmpxchg(&s->msrs.mode, mode, VMI_SYS_REFUSED);
		return;
	}
	if (mode == VMI_SYS_PENDING)
		cmpxchg(&s->msrs.mode, VMI_SYS_PENDING, VMI_SYS_ON);
	for (i = 0; i < VMI_MSR_WATCHED; i++) {
		if (vm->seen && vm->values[i] == now[i])
			continue;
		if (!rip) {
			rip = vmi_vcpu_rip(vcpu);
			cr3 = vmi_vcpu_cr3(vcpu);
		}
		memset(&rec, 0, sizeof(rec));
		rec.type = VMI_REC_MSR;
		rec.flags = VMI_RECF_SAMPLED | (vm->seen ? 0 : VMI_RECF_FIRST);
		rec.vcpu = idx;
		rec.time_ns = ktime_get_ns();
		rec.msr.which = i;
		rec.msr.msr = vmi_msr_numbers[i];
		rec.msr.old_value = vm->seen ? vm->values[i] : 0;
		rec.msr.new_value = now[i];
		rec.msr.rip = rip;
		rec.msr.cr3 = cr3;
		vmi_ring_write(&s->ring, &rec);
		if (vm->seen)
			atomic64_inc(&s->msrs.changes);
		vm->values[i] = now[i];
	}
	if (rip) {
		vm->seen = true;
		vmi_session_notify(s);
	}
}

void vmi_msr_set_mode(struct vmi_session *s, bool on)
{
	if (!on)
		WRITE_ONCE(s->msrs.mode, VMI_SYS_OFF);
	else if (READ_ONCE(s->msrs.mode) != VMI_SYS_REFUSED)
		/* Layout before mode: vmi_msr_on_entry reads them in that order. */
		smp_store_release(&s->msrs.mode, VMI_SYS_PENDING);
}

void vmi_msr_status(struct vmi_session *s, struct vmi_status *out)
{
	out->msr_mode = READ_ONCE(s->msrs.mode);
	out->msr_fallback = READ_ONCE(s->msrs.fallback);
	out->msr_changes = atomic64_read(&s->msrs.changes);
}
