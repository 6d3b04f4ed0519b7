// SPDX-License-Identifier: GPL-2.0
/*
 * kvm_shim.c - KVM internals used by vminsight.ko (Linux 6.1 and 6.12).
 *
 * Only exported KVM symbols are used: file_is_kvm, kvm_get_kvm,
 * kvm_put_kvm, kvm_vcpu_read_guest_atomic, the kvm_x86_cache_reg static
 * call and the kvm_entry tracepoint. Struct layouts come from the kernel
 * headers the module is built against, except struct vcpu_svm's VMCB
 * pointer, whose offset userspace reads from kvm_amd's BTF.
 */
#include <linux/kprobes.h>
#include <linux/kvm_host.h>
#include <linux/tracepoint.h>
#include <linux/err.h>
#include <linux/mem_encrypt.h>
#include <asm/processor.h>
#include <asm/svm.h>
#include <asm/vmx.h>

#include "guest_mem.h"
#include "kvm_shim.h"
#include "uapi/vminsight.h"

/*
 * KVM's trace.h is private, so the tracepoint is declared here. Both
 * supported kernels (Debian 6.1.1xx and 6.12) pass a force_immediate_exit
 * flag after the vCPU; older 6.1 builds passed only the vCPU, and the
 * unused trailing argument is harmless on x86-64 either way.
 */
extern struct tracepoint __tracepoint_kvm_entry;

static vmi_entry_probe_t entry_probe;

static void vmi_kvm_entry_tp(void *data, struct kvm_vcpu *vcpu,
			     bool force_immediate_exit)
{
	entry_probe(vcpu);
}

int vmi_kvm_entry_probe_register(vmi_entry_probe_t probe)
{
	entry_probe = probe;
	return tracepoint_probe_register(&__tracepoint_kvm_entry,
					 vmi_kvm_entry_tp, NULL);
}

void vmi_kvm_entry_probe_unregister(void)
{
	tracepoint_probe_unregister(&__tracepoint_kvm_entry,
				    vmi_kvm_entry_tp, NULL);
	/* No probe may still run once this returns. */
	tracepoint_synchronize_unregister();
}

u32 vmi_kvm_max_vcpus(struct kvm *kvm)
{
	return kvm->max_vcpus;
}

u32 vmi_kvm_max_memslots(void)
{
	return KVM_USER_MEM_SLOTS;
}

struct kvm *vmi_kvm_get_from_file(struct file *file)
{
	struct kvm *kvm;

	if (!file_is_kvm(file))
		return ERR_PTR(-EINVAL);
	/* The open file pins the VM, so a plain get cannot race its end. */
	kvm = file->private_data;
	kvm_get_kvm(kvm);
	return kvm;
}

void vmi_kvm_put(struct kvm *kvm)
{
	kvm_put_kvm(kvm);
}

bool vmi_kvm_is_orphaned(struct kvm *kvm)
{
	return refcount_read(&kvm->users_count) == 1;
}

pid_t vmi_kvm_owner_pid(struct kvm *kvm)
{
	return kvm->userspace_pid;
}

u32 vmi_kvm_online_vcpus(struct kvm *kvm)
{
	return atomic_read(&kvm->online_vcpus);
}

u32 vmi_kvm_memslots(struct kvm *kvm, struct vmi_memslot *out, u32 max,
		     u64 *generation)
{
	struct kvm_memory_slot *slot;
	struct kvm_memslots *slots;
	u32 n = 0;
	int idx, bkt;

	idx = srcu_read_lock(&kvm->srcu);
	slots = kvm_memslots(kvm);
	/* Mid-update, KVM sets a flag bit in the generation; report it stable. */
	*generation = slots->generation & ~KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS;
	kvm_for_each_memslot(slot, bkt, slots) {
		if (slot->flags & KVM_MEMSLOT_INVALID || slot->id >= KVM_USER_MEM_SLOTS)
			continue;
		if (n < max) {
			out[n].gpa = (u64)slot->base_gfn << PAGE_SHIFT;
			out[n].size = (u64)slot->npages << PAGE_SHIFT;
			out[n].hva = slot->userspace_addr;
			out[n].flags = slot->flags;
			out[n].reserved = 0;
		}
		n++;
	}
	srcu_read_unlock(&kvm->srcu, idx);
	return n;
}

struct kvm *vmi_vcpu_kvm(struct kvm_vcpu *vcpu)
{
	return vcpu->kvm;
}

u32 vmi_vcpu_index(struct kvm_vcpu *vcpu)
{
	return vcpu->vcpu_idx;
}

/*
 * Same logic as KVM's private kvm_read_cr3(). SVM never marks CR3
 * unavailable (its cache_reg would treat CR3 as a bug); VMX with EPT does,
 * and reads it from the loaded VMCS.
 */
u64 vmi_vcpu_cr3(struct kvm_vcpu *vcpu)
{
	if (!test_bit(VCPU_EXREG_CR3, (unsigned long *)&vcpu->arch.regs_avail))
		static_call(kvm_x86_cache_reg)(vcpu, VCPU_EXREG_CR3);
	return vcpu->arch.cr3;
}

bool vmi_vcpu_in_nested_guest(struct kvm_vcpu *vcpu)
{
	return vcpu->arch.hflags & HF_GUEST_MASK;
}

void vmi_kvm_kick_vcpus(struct kvm *kvm)
{
	struct kvm_vcpu *vcpu;
	unsigned long i;

	kvm_for_each_vcpu(i, vcpu, kvm)
		kvm_vcpu_kick(vcpu);
}

/* KVM's private VMCB clean bits (svm.h): intercepts, CR0/3/4 and EFER, segments. */
#define VMI_VMCB_CLEAN_INTERCEPTS BIT(0)
#define VMI_VMCB_CLEAN_CR BIT(5)
#define VMI_VMCB_CLEAN_SEG BIT(8)

/* Segment attributes SYSRET loads (VMCB format): user code and data, DPL 3. */
#define VMI_SVM_ATTR(type, l, db)					\
	((type) | SVM_SELECTOR_S_MASK | (3 << SVM_SELECTOR_DPL_SHIFT) |	\
	 SVM_SELECTOR_P_MASK | ((l) << SVM_SELECTOR_L_SHIFT) |		\
	 ((db) << SVM_SELECTOR_DB_SHIFT) | SVM_SELECTOR_G_MASK)
#define VMI_ATTR_CODE64 VMI_SVM_ATTR(0xb, 1, 0)
#define VMI_ATTR_CODE32 VMI_SVM_ATTR(0xb, 0, 1)
#define VMI_ATTR_DATA VMI_SVM_ATTR(0x3, 0, 1)
/* RFLAGS bits SYSRET takes from R11. */
#define VMI_SYSRET_RFLAGS 0x3c7fd7

/*
 * struct vcpu_svm begins with struct kvm_vcpu and soon after holds the
 * current VMCB pointer; the exact offset comes from kvm_amd's BTF. Trust
 * it only if it lands just past the vCPU, points at a directly mapped page,
 * that page has nested paging on, and its saved CR3 is the one KVM reports.
 */
static struct vmcb *vmi_svm_vmcb(struct kvm_vcpu *vcpu, u64 off, int *why)
{
	struct vmcb *vmcb;

	if (off < sizeof(struct kvm_vcpu) ||
	    off > sizeof(struct kvm_vcpu) + 64 || !IS_ALIGNED(off, 8)) {
		*why = VMI_CR3_BAD_LAYOUT;
		return NULL;
	}
	vmcb = *(struct vmcb **)((u8 *)vcpu + off);
	if (!vmcb || !PAGE_ALIGNED(vmcb) || !virt_addr_valid(vmcb)) {
		*why = VMI_CR3_BAD_VMCB;
		return NULL;
	}
	if (!(vmcb->control.nested_ctl & SVM_NESTED_CTL_NP_ENABLE)) {
		*why = VMI_CR3_NO_NPT;
		return NULL;
	}
	if (vmcb->save.cr3 != vmi_vcpu_cr3(vcpu)) {
		*why = VMI_CR3_MISMATCH;
		return NULL;
	}
	return vmcb;
}

static bool vmi_is_intel(const struct vmi_kvm_layout *layout)
{
	return layout->vendor == VMI_VENDOR_INTEL &&
	       boot_cpu_data.x86_vendor == X86_VENDOR_INTEL;
}

/* The vCPU's current VMCB on an AMD host, or NULL with the reason. */
static struct vmcb *vmi_amd_vmcb(struct kvm_vcpu *vcpu,
				 const struct vmi_kvm_layout *layout, int *why)
{
	if (layout->vendor != VMI_VENDOR_AMD ||
	    (boot_cpu_data.x86_vendor != X86_VENDOR_AMD &&
	     boot_cpu_data.x86_vendor != X86_VENDOR_HYGON)) {
		*why = VMI_CR3_NO_VENDOR;
		return NULL;
	}
	return vmi_svm_vmcb(vcpu, layout->svm_vmcb, why);
}

static int vmi_svm_cr3_exiting(struct kvm_vcpu *vcpu,
			       const struct vmi_kvm_layout *layout, bool on,
			       bool *active)
{
	unsigned long *intercepts;
	struct vmcb *vmcb;
	int why = 0;

	*active = false;
	vmcb = vmi_amd_vmcb(vcpu, layout, &why);
	if (!vmcb)
		return why;
	/*
	 * Firmware, the kernel's decompressor and kexec write CR3 with paging
	 * off, where a lab guest died with the write intercepted; processes
	 * only switch address spaces in long mode.
	 */
	on = on && (vmcb->save.cr0 & X86_CR0_PG) && (vmcb->save.efer & EFER_LMA);
	*active = on;
	intercepts = (unsigned long *)vmcb->control.intercepts;
	if (on == test_bit(INTERCEPT_CR3_WRITE, intercepts))
		return 0;
	/* KVM handles CR3-write exits itself (cr_interception). */
	if (on)
		__set_bit(INTERCEPT_CR3_WRITE, intercepts);
	else
		__clear_bit(INTERCEPT_CR3_WRITE, intercepts);
	vmcb->control.clean &= ~VMI_VMCB_CLEAN_INTERCEPTS;
	return 0;
}

u64 vmi_vcpu_exits(struct kvm_vcpu *vcpu)
{
	return vcpu->stat.exits;
}

static int vmi_svm_syscall_exiting(struct kvm_vcpu *vcpu,
				   const struct vmi_kvm_layout *layout, bool on,
				   bool *active)
{
	u64 guest_efer = vcpu->arch.efer;
	struct vmcb *vmcb;
	u64 efer;
	int why = 0;

	*active = false;
	vmcb = vmi_amd_vmcb(vcpu, layout, &why);
	if (!vmcb)
		return why;
	on = on && (vmcb->save.cr0 & X86_CR0_PG) && (guest_efer & EFER_LMA) &&
	     (guest_efer & EFER_SCE) && !(guest_efer & EFER_SVME);
	*active = on;
	/* KVM rewrites the VMCB's EFER from its own copy on guest writes. */
	efer = vmcb->save.efer & ~EFER_SCE;
	if (!on)
		efer |= guest_efer & EFER_SCE;
	if (efer == vmcb->save.efer)
		return 0;
	vmcb->save.efer = efer;
	vmcb->control.clean &= ~VMI_VMCB_CLEAN_CR;
	return 0;
}

/*
 * After a #UD exit at CPL 0 (@lstar: the guest's SYSCALL entry): KVM queued
 * #UD (pending), or is injecting it now (injected, and in the VMCB or VMCS
 * at VM entry); or the #UD came from user mode and KVM's emulated SYSCALL
 * left the vCPU at the entry point.
 */
static enum vmi_trap_exit vmi_ud_exit_kind(struct kvm_vcpu *vcpu, u64 lstar)
{
	struct kvm_queued_exception *ex = &vcpu->arch.exception;

	if ((ex->pending || ex->injected) && ex->vector == UD_VECTOR)
		return VMI_EXIT_UD_KERNEL;
	if (vcpu->arch.regs[VCPU_REGS_RIP] == lstar)
		return VMI_EXIT_SYSCALL;
	return VMI_EXIT_OTHER;
}

static enum vmi_trap_exit vmi_svm_trap_exit(struct kvm_vcpu *vcpu,
					    const struct vmi_kvm_layout *layout)
{
	struct vmcb *vmcb;
	int why = 0;

	vmcb = vmi_amd_vmcb(vcpu, layout, &why);
	if (!vmcb || vmcb->control.exit_code != SVM_EXIT_EXCP_BASE + UD_VECTOR ||
	    vmcb->save.cpl != 0)
		return VMI_EXIT_OTHER;
	return vmi_ud_exit_kind(vcpu, vmcb->save.lstar);
}

int vmi_vcpu_entry_msrs(struct kvm_vcpu *vcpu,
			const struct vmi_kvm_layout *layout, u64 *values)
{
	struct vmcb *vmcb;
	int why = 0;

	/* VMX keeps them in MSR load lists and the VMCS: not done yet. */
	vmcb = vmi_amd_vmcb(vcpu, layout, &why);
	if (!vmcb)
		return why;
	values[VMI_MSR_LSTAR] = vmcb->save.lstar;
	values[VMI_MSR_CSTAR] = vmcb->save.cstar;
	values[VMI_MSR_SYSENTER_CS] = vmcb->save.sysenter_cs;
	values[VMI_MSR_SYSENTER_ESP] = vmcb->save.sysenter_esp;
	values[VMI_MSR_SYSENTER_EIP] = vmcb->save.sysenter_eip;
	/* Not the VMCB's: syscall traps clear SCE there. */
	values[VMI_MSR_EFER] = vcpu->arch.efer;
	return 0;
}

/*
 * SVM's MSR permission map (AMD APM vol. 2, "MSR Intercepts"; KVM's
 * svm_msrpm_offset() and MSRPM_SIZE): 8 KiB, two bits per MSR (read, then
 * write) for three ranges of 0x2000 MSRs, 2 KiB each. KVM allocates one per
 * vCPU (order 1, so directly mapped) and points vmcb01 at it. KVM passes
 * LSTAR, CSTAR and SYSENTER_CS through (direct_access_msrs, always), and
 * SYSENTER_EIP/ESP too unless the guest claims to be Intel; it always
 * intercepts EFER writes. svm_set_msr() handles all of them when they exit:
 * the VMLOAD/VMSAVE copies in vmcb01 take the value, as the CPU would.
 * The map's contents are read by the CPU at each MSR access and are not
 * covered by the VMCB clean bits (KVM itself changes them on the fly); the
 * permission-map clean bit is cleared anyway when bits change, which is
 * rare and costs nothing.
 */
#define VMI_MSRPM_BYTES (2 * PAGE_SIZE)
#define VMI_VMCB_CLEAN_PERM_MAP BIT(1)

static const u32 vmi_msrpm_ranges[] = { 0, 0xc0000000, 0xc0010000 };

/* The write-intercept bit of @msr in the map, or -1 outside the ranges. */
static long vmi_msrpm_write_bit(u32 msr)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(vmi_msrpm_ranges); i++)
		if (msr - vmi_msrpm_ranges[i] < 0x2000)
			return (i * 0x2000L + msr - vmi_msrpm_ranges[i]) * 2 + 1;
	return -1;
}

/* The guest MSRs whose writes are made to exit, in enum vmi_watched_msr order. */
static const u32 vmi_intercepted_msrs[] = {
	[VMI_MSR_LSTAR] = MSR_LSTAR,
	[VMI_MSR_CSTAR] = MSR_CSTAR,
	[VMI_MSR_SYSENTER_CS] = MSR_IA32_SYSENTER_CS,
	[VMI_MSR_SYSENTER_ESP] = MSR_IA32_SYSENTER_ESP,
	[VMI_MSR_SYSENTER_EIP] = MSR_IA32_SYSENTER_EIP,
};

static bool vmi_msrpm_writes_exit(unsigned long *map, u32 msr)
{
	return test_bit(vmi_msrpm_write_bit(msr), map);
}

/*
 * The vCPU's MSR permission map, through its current VMCB. Trust it only if
 * MSR intercepts are on, it is a directly mapped, page-aligned 8 KiB range,
 * and it says what KVM's own map says: EFER writes exit, FS, GS and kernel
 * GS base writes do not.
 */
static unsigned long *vmi_svm_msrpm(struct vmcb *vmcb, int *why)
{
	u64 pa = __sme_clr(vmcb->control.msrpm_base_pa);
	unsigned long *map;
	u8 *va;

	*why = VMI_CR3_BAD_MSRPM;
	if (!test_bit(INTERCEPT_MSR_PROT,
		      (unsigned long *)vmcb->control.intercepts) ||
	    !pa || !PAGE_ALIGNED(pa))
		return NULL;
	va = __va(pa);
	if (!virt_addr_valid(va) || !virt_addr_valid(va + VMI_MSRPM_BYTES - 1))
		return NULL;
	map = (unsigned long *)va;
	if (!vmi_msrpm_writes_exit(map, MSR_EFER) ||
	    vmi_msrpm_writes_exit(map, MSR_FS_BASE) ||
	    vmi_msrpm_writes_exit(map, MSR_GS_BASE) ||
	    vmi_msrpm_writes_exit(map, MSR_KERNEL_GS_BASE))
		return NULL;
	*why = 0;
	return map;
}

static int vmi_svm_msr_intercept(struct kvm_vcpu *vcpu,
				 const struct vmi_kvm_layout *layout, bool on,
				 u8 *owned, bool *active)
{
	u64 efer = vcpu->arch.efer;
	unsigned long *map;
	struct vmcb *vmcb;
	bool changed = false;
	int why = 0, i;
	long bit;

	*active = false;
	if (!on && !*owned)
		return 0;
	vmcb = vmi_amd_vmcb(vcpu, layout, &why);
	if (!vmcb)
		return why;
	map = vmi_svm_msrpm(vmcb, &why);
	if (!map)
		return why;
	/* As with syscall traps: long mode, and not while the guest runs VMs. */
	on = on && (vmcb->save.cr0 & X86_CR0_PG) && (efer & EFER_LMA) &&
	     !(efer & EFER_SVME);
	for (i = 0; i < ARRAY_SIZE(vmi_intercepted_msrs); i++) {
		bit = vmi_msrpm_write_bit(vmi_intercepted_msrs[i]);
		if (on && !test_bit(bit, map)) {
			/* KVM passes it through (again): ours to give back. */
			__set_bit(bit, map);
			*owned |= BIT(i);
			changed = true;
		} else if (!on && (*owned & BIT(i))) {
			__clear_bit(bit, map);
			changed = true;
		}
	}
	if (!on)
		*owned = 0;
	if (changed)
		vmcb->control.clean &= ~VMI_VMCB_CLEAN_PERM_MAP;
	*active = on;
	return 0;
}

/*
 * At the VM entry after the exit: the VMCB still holds that exit's code,
 * information and RIP (KVM copies its own RIP into the VMCB only after the
 * entry tracepoint); WRMSR left ECX and EDX:EAX as they were.
 */
static bool vmi_svm_msr_write_exit(struct kvm_vcpu *vcpu,
				   const struct vmi_kvm_layout *layout,
				   struct vmi_msr_write *w)
{
	unsigned long *r = vcpu->arch.regs;
	struct vmcb *vmcb;
	int why = 0;

	vmcb = vmi_amd_vmcb(vcpu, layout, &why);
	if (!vmcb || vmcb->control.exit_code != SVM_EXIT_MSR ||
	    vmcb->control.exit_info_1 != 1)
		return false;
	w->msr = (u32)r[VCPU_REGS_RCX];
	w->value = (u32)r[VCPU_REGS_RAX] | (u64)(u32)r[VCPU_REGS_RDX] << 32;
	w->rip = vmcb->save.rip;
	/* KVM moved past the WRMSR, or left RIP on it to inject #GP. */
	w->done = r[VCPU_REGS_RIP] != w->rip;
	return true;
}

int vmi_vcpu_msr_intercept(struct kvm_vcpu *vcpu,
			   const struct vmi_kvm_layout *layout, bool on,
			   u8 *owned, bool *active)
{
	/* VMX keeps its MSR bitmap in struct vcpu_vmx: not done yet. */
	if (vmi_is_intel(layout)) {
		*active = false;
		return VMI_CR3_NO_VENDOR;
	}
	return vmi_svm_msr_intercept(vcpu, layout, on, owned, active);
}

bool vmi_vcpu_msr_write_exit(struct kvm_vcpu *vcpu,
			     const struct vmi_kvm_layout *layout,
			     struct vmi_msr_write *w)
{
	if (vmi_is_intel(layout))
		return false;
	return vmi_svm_msr_write_exit(vcpu, layout, w);
}

u64 vmi_vcpu_rip(struct kvm_vcpu *vcpu)
{
	return vcpu->arch.regs[VCPU_REGS_RIP];
}

/* At VM entry RIP, RSP and RAX are still in KVM's array (SVM copies them). */
void vmi_vcpu_regs(struct kvm_vcpu *vcpu, const struct vmi_kvm_layout *layout,
		   struct vmi_regs *regs)
{
	unsigned long *r = vcpu->arch.regs;
	struct vmcb *vmcb;
	int why = 0;

	regs->rax = r[VCPU_REGS_RAX];
	regs->rdi = r[VCPU_REGS_RDI];
	regs->rsi = r[VCPU_REGS_RSI];
	regs->rdx = r[VCPU_REGS_RDX];
	regs->r10 = r[VCPU_REGS_R10];
	regs->r8 = r[VCPU_REGS_R8];
	regs->r9 = r[VCPU_REGS_R9];
	regs->rcx = r[VCPU_REGS_RCX];
	regs->r11 = r[VCPU_REGS_R11];
	regs->rsp = r[VCPU_REGS_RSP];
	regs->rip = r[VCPU_REGS_RIP];
	regs->cr3 = vmi_vcpu_cr3(vcpu);
	regs->la57 = vcpu->arch.cr4 & X86_CR4_LA57;
	regs->sce = vcpu->arch.efer & EFER_SCE;
	/*
	 * SYSCALL and SYSRET trap before SWAPGS. SVM: VMSAVE keeps it in the
	 * VMCB. VMX: KVM loaded the guest's into the MSR before the entry.
	 */
	if (vmi_is_intel(layout)) {
		rdmsrl(MSR_KERNEL_GS_BASE, regs->kernel_gs_base);
		return;
	}
	vmcb = vmi_amd_vmcb(vcpu, layout, &why);
	regs->kernel_gs_base = vmcb ? vmcb->save.kernel_gs_base : 0;
}

static void vmi_svm_flat_seg(struct vmcb_seg *seg, u16 selector, u16 attrib)
{
	seg->selector = selector;
	seg->attrib = attrib;
	seg->limit = 0xffffffff;
	seg->base = 0;
}

/*
 * Forget the #UD KVM queued: at VM entry it is in the VMCB (undelivered, as
 * far as KVM can tell at the next exit); on the way out to userspace it is
 * only in KVM's queue, which a save or migration would carry along.
 */
static void vmi_drop_queued_ud(struct kvm_vcpu *vcpu)
{
	vcpu->arch.exception.pending = false;
	vcpu->arch.exception.injected = false;
}

static void vmi_vcpu_drop_ud(struct kvm_vcpu *vcpu, struct vmcb *vmcb)
{
	vmcb->control.event_inj = 0;
	vmi_drop_queued_ud(vcpu);
}

static bool vmi_svm_sysret(struct kvm_vcpu *vcpu,
			   const struct vmi_kvm_layout *layout, bool wide,
			   u64 rax)
{
	unsigned long *r = vcpu->arch.regs;
	struct vmcb *vmcb;
	u64 rip = r[VCPU_REGS_RCX];
	int why = 0;
	u16 sel;

	vmcb = vmi_amd_vmcb(vcpu, layout, &why);
	if (!vmcb)
		return false;
	if (!wide)
		rip = (u32)rip;
	else if (!vmi_va_canonical(rip, vcpu->arch.cr4 & X86_CR4_LA57))
		return false;
	sel = vmcb->save.star >> 48;
	vmi_svm_flat_seg(&vmcb->save.cs, (wide ? sel + 16 : sel) | 3,
			 wide ? VMI_ATTR_CODE64 : VMI_ATTR_CODE32);
	vmi_svm_flat_seg(&vmcb->save.ss, (sel + 8) | 3, VMI_ATTR_DATA);
	vmcb->save.cpl = 3;
	vmcb->save.rflags = (r[VCPU_REGS_R11] & VMI_SYSRET_RFLAGS) |
			    X86_EFLAGS_FIXED;
	vmcb->control.clean &= ~VMI_VMCB_CLEAN_SEG;
	/* KVM copies these into the VMCB right after the entry tracepoint. */
	r[VCPU_REGS_RIP] = rip;
	r[VCPU_REGS_RAX] = rax;
	vmi_vcpu_drop_ud(vcpu, vmcb);
	return true;
}

static void vmi_svm_retry_natively(struct kvm_vcpu *vcpu,
				   const struct vmi_kvm_layout *layout)
{
	struct vmcb *vmcb;
	int why = 0;

	vmcb = vmi_amd_vmcb(vcpu, layout, &why);
	if (!vmcb)
		return;
	vmcb->save.efer |= vcpu->arch.efer & EFER_SCE;
	vmcb->control.clean &= ~VMI_VMCB_CLEAN_CR;
	vmi_vcpu_drop_ud(vcpu, vmcb);
}

/*
 * Intel (VMX). At VM entry the vCPU's VMCS is the current one: its fields are
 * read and written with VMREAD/VMWRITE. KVM keeps a shadow of the VMCS
 * execution controls in struct loaded_vmcs (entry, exit, pin, exec,
 * secondary: that order on 6.1 and 6.12) and writes the VMCS through it, so
 * every control changed here is changed in the shadow too; its segment cache
 * in struct vcpu_vmx is invalidated after segments change. Offsets come from
 * kvm_intel's BTF and are checked against the VMCS itself.
 */
#define VMI_VMX_ENTRY 0
#define VMI_VMX_EXIT 1
#define VMI_VMX_EXEC 3

/* SYSRET's segments in VMX access-rights format: user code and data, DPL 3. */
#define VMI_VMX_AR(type, l, db)						\
	((type) | BIT(4) | (3 << 5) | BIT(7) | ((l) << 13) | ((db) << 14) |	\
	 BIT(15))

static bool vmi_vmread(unsigned long field, u64 *val)
{
	bool fail;

	asm volatile("vmread %[field], %[val]\n\t" CC_SET(be)
		     : CC_OUT(be) (fail), [val] "=rm" (*val)
		     : [field] "r" (field));
	return !fail;
}

static bool vmi_vmwrite(unsigned long field, u64 val)
{
	bool fail;

	asm volatile("vmwrite %[val], %[field]\n\t" CC_SET(be)
		     : CC_OUT(be) (fail)
		     : [field] "r" (field), [val] "rm" (val));
	return !fail;
}

/* KVM's controls shadow of the current VMCS, once the layout checks out. */
static u32 *vmi_vmx_controls(struct kvm_vcpu *vcpu,
			     const struct vmi_kvm_layout *layout, int *why)
{
	u64 exec, secondary;
	void *loaded;
	u32 *shadow;

	if (!vmi_is_intel(layout)) {
		*why = VMI_CR3_NO_VENDOR;
		return NULL;
	}
	if (layout->vmx_loaded_vmcs < sizeof(struct kvm_vcpu) ||
	    layout->vmx_loaded_vmcs > sizeof(struct kvm_vcpu) + 4096 ||
	    !IS_ALIGNED(layout->vmx_loaded_vmcs, 8) ||
	    layout->vmx_controls > 256 || !IS_ALIGNED(layout->vmx_controls, 4) ||
	    layout->vmx_seg_cache < sizeof(struct kvm_vcpu) ||
	    layout->vmx_seg_cache > sizeof(struct kvm_vcpu) + 16384) {
		*why = VMI_CR3_BAD_LAYOUT;
		return NULL;
	}
	loaded = *(void **)((u8 *)vcpu + layout->vmx_loaded_vmcs);
	if (!loaded || !virt_addr_valid(loaded)) {
		*why = VMI_CR3_BAD_VMCB;
		return NULL;
	}
	shadow = (u32 *)((u8 *)loaded + layout->vmx_controls);
	if (!vmi_vmread(CPU_BASED_VM_EXEC_CONTROL, &exec) ||
	    (u32)exec != shadow[VMI_VMX_EXEC]) {
		*why = VMI_CR3_MISMATCH;
		return NULL;
	}
	/* Without EPT, KVM traps CR3 (shadow paging) itself. */
	if (!(exec & CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) ||
	    !vmi_vmread(SECONDARY_VM_EXEC_CONTROL, &secondary) ||
	    !(secondary & SECONDARY_EXEC_ENABLE_EPT)) {
		*why = VMI_CR3_NO_NPT;
		return NULL;
	}
	return shadow;
}

static void vmi_vmx_set_control(u32 *shadow, int which, unsigned long field,
				u32 bits, bool on)
{
	u32 val = on ? shadow[which] | bits : shadow[which] & ~bits;

	if (val != shadow[which] && vmi_vmwrite(field, val))
		shadow[which] = val;
}

static int vmi_vmx_cr3_exiting(struct kvm_vcpu *vcpu,
			       const struct vmi_kvm_layout *layout, bool on,
			       bool *active)
{
	bool paging = (vcpu->arch.cr0 & X86_CR0_PG) &&
		      (vcpu->arch.efer & EFER_LMA);
	int why = 0;
	u32 *shadow;

	*active = false;
	shadow = vmi_vmx_controls(vcpu, layout, &why);
	if (!shadow)
		return why;
	/* With paging off KVM may want CR3 exits itself: leave them to it. */
	if (!paging)
		return 0;
	*active = on;
	vmi_vmx_set_control(shadow, VMI_VMX_EXEC, CPU_BASED_VM_EXEC_CONTROL,
			    CPU_BASED_CR3_LOAD_EXITING, on);
	return 0;
}

/*
 * KVM runs a guest whose EFER equals the host's without switching EFER (its
 * SCE is then the host's). Traps need the guest's own EFER loaded at entry,
 * SCE clear, and the host's back at exit; KVM has already written the host
 * value into the VMCS when the CPU can load EFER.
 */
static int vmi_vmx_syscall_exiting(struct kvm_vcpu *vcpu,
				   const struct vmi_kvm_layout *layout, bool on,
				   bool *active)
{
	u64 guest_efer = vcpu->arch.efer, efer, host_efer, now;
	int why = 0;
	u32 *shadow;

	*active = false;
	shadow = vmi_vmx_controls(vcpu, layout, &why);
	if (!shadow)
		return why;
	on = on && (vcpu->arch.cr0 & X86_CR0_PG) && (guest_efer & EFER_LMA) &&
	     (guest_efer & EFER_SCE) && !(vcpu->arch.cr4 & X86_CR4_VMXE);
	if (!(shadow[VMI_VMX_ENTRY] & VM_ENTRY_LOAD_IA32_EFER)) {
		if (!on)
			return 0;
		rdmsrl(MSR_EFER, efer);
		if (!vmi_vmread(HOST_IA32_EFER, &host_efer) || host_efer != efer)
			return VMI_CR3_MISMATCH;
		vmi_vmx_set_control(shadow, VMI_VMX_EXIT, VM_EXIT_CONTROLS,
				    VM_EXIT_LOAD_IA32_EFER, true);
		vmi_vmx_set_control(shadow, VMI_VMX_ENTRY, VM_ENTRY_CONTROLS,
				    VM_ENTRY_LOAD_IA32_EFER, true);
	}
	if (!vmi_vmread(GUEST_IA32_EFER, &now))
		return VMI_CR3_MISMATCH;
	efer = on ? guest_efer & ~EFER_SCE : now | (guest_efer & EFER_SCE);
	if (efer != now && !vmi_vmwrite(GUEST_IA32_EFER, efer))
		return VMI_CR3_MISMATCH;
	*active = on;
	return 0;
}

static enum vmi_trap_exit vmi_vmx_trap_exit(struct kvm_vcpu *vcpu,
					    const struct vmi_kvm_layout *layout)
{
	u64 reason, info, ss_ar, lstar;

	if (!vmi_vmread(VM_EXIT_REASON, &reason) ||
	    (u16)reason != EXIT_REASON_EXCEPTION_NMI ||
	    !vmi_vmread(VM_EXIT_INTR_INFO, &info) ||
	    (info & INTR_INFO_VECTOR_MASK) != UD_VECTOR ||
	    !vmi_vmread(GUEST_SS_AR_BYTES, &ss_ar) || ((ss_ar >> 5) & 3) != 0)
		return VMI_EXIT_OTHER;
	/* The guest's LSTAR is in the MSR: KVM loaded it before the entry. */
	rdmsrl(MSR_LSTAR, lstar);
	return vmi_ud_exit_kind(vcpu, lstar);
}

static bool vmi_vmx_flat_seg(unsigned long selector, u16 sel, u32 ar)
{
	/* GUEST_xS_SELECTOR, _LIMIT, _AR_BYTES and _BASE are 2, 0x800... apart. */
	return vmi_vmwrite(selector, sel) &&
	       vmi_vmwrite(selector + GUEST_ES_LIMIT - GUEST_ES_SELECTOR, 0xffffffff) &&
	       vmi_vmwrite(selector + GUEST_ES_AR_BYTES - GUEST_ES_SELECTOR, ar) &&
	       vmi_vmwrite(selector + GUEST_ES_BASE - GUEST_ES_SELECTOR, 0);
}

static bool vmi_vmx_sysret(struct kvm_vcpu *vcpu,
			   const struct vmi_kvm_layout *layout, bool wide,
			   u64 rax)
{
	unsigned long *r = vcpu->arch.regs;
	u64 rip = r[VCPU_REGS_RCX], star;
	int why = 0;
	u16 sel;

	if (!vmi_vmx_controls(vcpu, layout, &why))
		return false;
	if (!wide)
		rip = (u32)rip;
	else if (!vmi_va_canonical(rip, vcpu->arch.cr4 & X86_CR4_LA57))
		return false;
	rdmsrl(MSR_STAR, star);
	sel = star >> 48;
	if (!vmi_vmx_flat_seg(GUEST_CS_SELECTOR, (wide ? sel + 16 : sel) | 3,
			      wide ? VMI_VMX_AR(0xb, 1, 0) : VMI_VMX_AR(0xb, 0, 1)) ||
	    !vmi_vmx_flat_seg(GUEST_SS_SELECTOR, (sel + 8) | 3,
			      VMI_VMX_AR(0x3, 0, 1)) ||
	    !vmi_vmwrite(GUEST_RFLAGS, (r[VCPU_REGS_R11] & VMI_SYSRET_RFLAGS) |
			 X86_EFLAGS_FIXED))
		return false;
	/* KVM's caches: segments (CPL is SS.DPL on VMX) and RFLAGS. */
	*(u32 *)((u8 *)vcpu + layout->vmx_seg_cache) = 0;
	__clear_bit(VCPU_EXREG_RFLAGS, (unsigned long *)&vcpu->arch.regs_avail);
	/* KVM writes a dirty RIP into the VMCS right after the tracepoint. */
	r[VCPU_REGS_RIP] = rip;
	__set_bit(VCPU_REGS_RIP, (unsigned long *)&vcpu->arch.regs_dirty);
	r[VCPU_REGS_RAX] = rax;
	vmi_vmwrite(VM_ENTRY_INTR_INFO_FIELD, 0);
	vmi_drop_queued_ud(vcpu);
	return true;
}

static void vmi_vmx_retry_natively(struct kvm_vcpu *vcpu,
				   const struct vmi_kvm_layout *layout)
{
	int why = 0;
	u64 efer;

	if (!vmi_vmx_controls(vcpu, layout, &why))
		return;
	if (vmi_vmread(GUEST_IA32_EFER, &efer))
		vmi_vmwrite(GUEST_IA32_EFER, efer | (vcpu->arch.efer & EFER_SCE));
	vmi_vmwrite(VM_ENTRY_INTR_INFO_FIELD, 0);
	vmi_drop_queued_ud(vcpu);
}

/* Vendor dispatch. */
int vmi_vcpu_cr3_exiting(struct kvm_vcpu *vcpu,
			 const struct vmi_kvm_layout *layout, bool on,
			 bool *active)
{
	if (vmi_is_intel(layout))
		return vmi_vmx_cr3_exiting(vcpu, layout, on, active);
	return vmi_svm_cr3_exiting(vcpu, layout, on, active);
}

int vmi_vcpu_syscall_exiting(struct kvm_vcpu *vcpu,
			     const struct vmi_kvm_layout *layout, bool on,
			     bool *active)
{
	if (vmi_is_intel(layout))
		return vmi_vmx_syscall_exiting(vcpu, layout, on, active);
	return vmi_svm_syscall_exiting(vcpu, layout, on, active);
}

enum vmi_trap_exit vmi_vcpu_trap_exit(struct kvm_vcpu *vcpu,
				      const struct vmi_kvm_layout *layout)
{
	if (vmi_is_intel(layout))
		return vmi_vmx_trap_exit(vcpu, layout);
	return vmi_svm_trap_exit(vcpu, layout);
}

bool vmi_vcpu_sysret(struct kvm_vcpu *vcpu,
		     const struct vmi_kvm_layout *layout, bool wide, u64 rax)
{
	if (vmi_is_intel(layout))
		return vmi_vmx_sysret(vcpu, layout, wide, rax);
	return vmi_svm_sysret(vcpu, layout, wide, rax);
}

void vmi_vcpu_retry_natively(struct kvm_vcpu *vcpu,
			     const struct vmi_kvm_layout *layout)
{
	if (vmi_is_intel(layout))
		vmi_vmx_retry_natively(vcpu, layout);
	else
		vmi_svm_retry_natively(vcpu, layout);
}

bool vmi_vcpu_drop_queued_ud_at(struct kvm_vcpu *vcpu, u64 rip)
{
	struct kvm_queued_exception *ex = &vcpu->arch.exception;

	if (!(ex->pending || ex->injected) || ex->vector != UD_VECTOR ||
	    vcpu->arch.regs[VCPU_REGS_RIP] != rip)
		return false;
	vmi_drop_queued_ud(vcpu);
	return true;
}

bool vmi_vcpu_state_loaded(const struct vmi_kvm_layout *layout)
{
	return !vmi_is_intel(layout);
}

/*
 * Guest page tables and argument strings are read on the way into the
 * guest, where nothing may sleep: pages QEMU has not faulted in read as
 * -EFAULT. KVM drops its memslot SRCU lock around the run itself.
 */
int vmi_vcpu_read_gpa(struct kvm_vcpu *vcpu, u64 gpa, void *buf, u32 len)
{
	int idx, ret;

	idx = srcu_read_lock(&vcpu->kvm->srcu);
	ret = kvm_vcpu_read_guest_atomic(vcpu, gpa, buf, len);
	srcu_read_unlock(&vcpu->kvm->srcu, idx);
	return ret;
}

/*
 * The way out of KVM_RUN to userspace. A return probe on the x86 run
 * ioctl: there is no tracepoint with the vCPU there.
 */
static vmi_userspace_exit_probe_t userspace_exit_probe;

static int vmi_run_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	*(struct kvm_vcpu **)ri->data = (struct kvm_vcpu *)regs->di;
	return 0;
}

static int vmi_run_return(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	userspace_exit_probe(*(struct kvm_vcpu **)ri->data);
	return 0;
}

static struct kretprobe vmi_run_probe = {
	.kp.symbol_name = "kvm_arch_vcpu_ioctl_run",
	.entry_handler = vmi_run_entry,
	.handler = vmi_run_return,
	.data_size = sizeof(struct kvm_vcpu *),
	/* One per vCPU thread inside KVM_RUN at once. */
	.maxactive = 1024,
};

int vmi_kvm_userspace_exit_probe_register(vmi_userspace_exit_probe_t probe)
{
	userspace_exit_probe = probe;
	memset(&vmi_run_probe.kp, 0, sizeof(vmi_run_probe.kp));
	vmi_run_probe.kp.symbol_name = "kvm_arch_vcpu_ioctl_run";
	vmi_run_probe.nmissed = 0;
	return register_kretprobe(&vmi_run_probe);
}

void vmi_kvm_userspace_exit_probe_unregister(void)
{
	unregister_kretprobe(&vmi_run_probe);
}

unsigned long vmi_kvm_userspace_exit_probe_missed(void)
{
	return vmi_run_probe.nmissed;
}
