// SPDX-License-Identifier: GPL-2.0
/*
 * syscall.c - syscall traps: the filter, records, deny and SYSRET.
 *
 * Everything here but the filter ioctl runs in a vCPU's thread right before
 * it enters the guest, with interrupts off: no sleeping, no allocation, and
 * every guest read bounded (guest_mem.c). Whatever the filter or the
 * session's state, a trapped SYSRET is always completed: leaving its #UD to
 * the guest would crash it.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bitmap.h>
#include <linux/errno.h>
#include <linux/hash.h>
#include <linux/ktime.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "guest_mem.h"
#include "kvm_shim.h"
#include "session.h"
#include "trace.h"

#define VMI_NR_EXECVE 59
#define VMI_NR_EXECVEAT 322
/* A path and an argv vector, each at most VMI_CAPTURE_MAX bytes. */
#define VMI_MAX_DATA_RECORDS (2 * DIV_ROUND_UP(VMI_CAPTURE_MAX, VMI_DATA_BYTES))
#define VMI_ARGV_MAX 32
#define VMI_PENDING_PROBES 4

/* The kernel's copy of a struct vmi_syscall_filter. */
struct vmi_filter {
	u32 scope, nr_cr3, nr_deny_cr3, exec_mode;
	int deny_errno;
	bool traps;			/* anything to trap at all */
	DECLARE_BITMAP(trace, VMI_NR_SYSCALLS);
	DECLARE_BITMAP(deny, VMI_NR_SYSCALLS);
	u64 cr3[VMI_FILTER_MAX_CR3];
	u64 deny_cr3[VMI_FILTER_MAX_DENY_CR3];
	u8 capture[VMI_NR_SYSCALLS];
	u64 percpu_current;
	u32 task_tgid, task_comm;
	u32 exec_paths_len;
	char exec_paths[];
};

/* An argument value read at the SYSCALL. */
struct vmi_value {
	u16 arg, flags;
	u32 len;
	u8 bytes[VMI_CAPTURE_MAX];
};

static bool vmi_cr3_in(const u64 *set, u32 n, u64 cr3)
{
	u32 i;

	for (i = 0; i < n; i++)
		if (!((set[i] ^ cr3) & VMI_CR3_AS_MASK))
			return true;
	return false;
}

static bool vmi_filter_in_scope(const struct vmi_filter *f, u64 cr3)
{
	switch (f->scope) {
	case VMI_SCOPE_ONLY:
		return vmi_cr3_in(f->cr3, f->nr_cr3, cr3);
	case VMI_SCOPE_EXCEPT:
		return !vmi_cr3_in(f->cr3, f->nr_cr3, cr3);
	default:
		return true;
	}
}

/* Match of @path against the filter's list: exact, or a prefix ending in '*'. */
static bool vmi_filter_lists_path(const struct vmi_filter *f, const u8 *path,
				  u32 len)
{
	const char *p = f->exec_paths, *end = p + f->exec_paths_len;
	size_t n;

	while (p < end) {
		n = strnlen(p, end - p);
		if (n == len && !memcmp(p, path, len))
			return true;
		if (n && p[n - 1] == '*' && n - 1 <= len &&
		    !memcmp(p, path, n - 1))
			return true;
		p += n + 1;
	}
	return false;
}

void vmi_sys_init(struct vmi_session_sys *sys)
{
	RCU_INIT_POINTER(sys->filter, NULL);
	atomic_set(&sys->armed, 0);
	raw_spin_lock_init(&sys->pending_lock);
}

void vmi_sys_free(struct vmi_session_sys *sys)
{
	/* No probe runs any more: nobody else can see the filter. */
	kfree(rcu_dereference_protected(sys->filter, true));
}

static struct vmi_filter *vmi_filter_build(const struct vmi_syscall_filter *u)
{
	struct vmi_filter *f;
	int errno_max = 4095;

	if (u->scope > VMI_SCOPE_EXCEPT || u->nr_cr3 > VMI_FILTER_MAX_CR3 ||
	    u->nr_deny_cr3 > VMI_FILTER_MAX_DENY_CR3 ||
	    u->exec_mode > VMI_EXEC_ALLOW_LISTED || u->deny_errno < 0 ||
	    u->deny_errno > errno_max ||
	    u->exec_paths_len > VMI_EXEC_PATHS_MAX ||
	    memchr_inv(u->reserved, 0, sizeof(u->reserved)))
		return ERR_PTR(-EINVAL);
	f = kzalloc(struct_size(f, exec_paths, u->exec_paths_len), GFP_KERNEL);
	if (!f)
		return ERR_PTR(-ENOMEM);
	f->scope = u->scope;
	f->nr_cr3 = u->nr_cr3;
	f->nr_deny_cr3 = u->nr_deny_cr3;
	f->exec_mode = u->exec_mode;
	f->deny_errno = u->deny_errno ?: EPERM;
	bitmap_from_arr64(f->trace, u->trace, VMI_NR_SYSCALLS);
	bitmap_from_arr64(f->deny, u->deny, VMI_NR_SYSCALLS);
	memcpy(f->cr3, u->cr3, sizeof(f->cr3));
	memcpy(f->deny_cr3, u->deny_cr3, sizeof(f->deny_cr3));
	memcpy(f->capture, u->capture, sizeof(f->capture));
	f->percpu_current = u->percpu_current;
	f->task_tgid = u->task_tgid;
	f->task_comm = u->task_comm;
	f->traps = f->exec_mode != VMI_EXEC_ANY ||
		   !bitmap_empty(f->trace, VMI_NR_SYSCALLS) ||
		   !bitmap_empty(f->deny, VMI_NR_SYSCALLS);
	f->exec_paths_len = u->exec_paths_len;
	if (u->exec_paths_len &&
	    copy_from_user(f->exec_paths, u64_to_user_ptr(u->exec_paths),
			   u->exec_paths_len)) {
		kfree(f);
		return ERR_PTR(-EFAULT);
	}
	return f;
}

long vmi_sys_set_filter(struct vmi_session *s, const void __user *arg)
{
	struct vmi_syscall_filter *u;
	struct vmi_filter *f, *old;

	u = memdup_user(arg, sizeof(*u));
	if (IS_ERR(u))
		return PTR_ERR(u);
	f = vmi_filter_build(u);
	kfree(u);
	if (IS_ERR(f))
		return PTR_ERR(f);
	old = xchg((struct vmi_filter __force **)&s->sys.filter, f);
	/*
	 * Once this returns no vCPU uses the old filter: every record written
	 * after it follows the new one (userspace can draw the line at head).
	 */
	synchronize_rcu();
	kfree(old);
	return 0;
}

void vmi_sys_status(struct vmi_session *s, struct vmi_status *out)
{
	struct vmi_vcpu_sys *vs;
	unsigned long flags;
	u32 i;

	out->sys_mode = READ_ONCE(s->sys.mode);
	out->sys_fallback = READ_ONCE(s->sys.fallback);
	out->sys_armed_vcpus = atomic_read(&s->sys.armed);
	for (i = 0; i < s->max_vcpus; i++) {
		vs = &s->vcpus[i].sys;
		out->syscalls += READ_ONCE(vs->syscalls);
		out->sysrets += READ_ONCE(vs->sysrets);
		out->denied += READ_ONCE(vs->denied);
		out->retried += READ_ONCE(vs->retried);
		out->capture_faults += READ_ONCE(vs->faults);
		out->sysrets_early += READ_ONCE(vs->early);
	}
	raw_spin_lock_irqsave(&s->sys.pending_lock, flags);
	out->unmatched = s->sys.unmatched;
	raw_spin_unlock_irqrestore(&s->sys.pending_lock, flags);
}

/* Pending calls: a small open-addressed table; the oldest guess loses. */
static u32 vmi_pending_hash(u64 cr3, u64 rsp, u64 rip)
{
	return hash_64((cr3 & VMI_CR3_AS_MASK) ^ rsp ^ (rip << 1),
		       ilog2(VMI_PENDING_SLOTS));
}

static bool vmi_pending_is(const struct vmi_pending *p, u64 cr3, u64 rsp,
			   u64 rip)
{
	return p->rsp == rsp && p->rip == rip &&
	       !((p->cr3 ^ cr3) & VMI_CR3_AS_MASK);
}

static void vmi_pending_add(struct vmi_session_sys *sys,
			    const struct vmi_pending *add)
{
	u32 h = vmi_pending_hash(add->cr3, add->rsp, add->rip), i;
	struct vmi_pending *slot = &sys->pending[h], *p;
	unsigned long flags;

	raw_spin_lock_irqsave(&sys->pending_lock, flags);
	for (i = 0; i < VMI_PENDING_PROBES; i++) {
		p = &sys->pending[(h + i) % VMI_PENDING_SLOTS];
		if (!p->rip || vmi_pending_is(p, add->cr3, add->rsp, add->rip)) {
			slot = p;
			break;
		}
	}
	/* A call that never came back by SYSRET (IRET, execve, exit). */
	if (slot->rip && !vmi_pending_is(slot, add->cr3, add->rsp, add->rip))
		sys->unmatched++;
	*slot = *add;
	raw_spin_unlock_irqrestore(&sys->pending_lock, flags);
}

static bool vmi_pending_take(struct vmi_session_sys *sys, u64 cr3, u64 rsp,
			     u64 rip, struct vmi_pending *out)
{
	u32 h = vmi_pending_hash(cr3, rsp, rip), i;
	struct vmi_pending *p;
	unsigned long flags;
	bool found = false;

	raw_spin_lock_irqsave(&sys->pending_lock, flags);
	for (i = 0; i < VMI_PENDING_PROBES; i++) {
		p = &sys->pending[(h + i) % VMI_PENDING_SLOTS];
		if (p->rip && vmi_pending_is(p, cr3, rsp, rip)) {
			*out = *p;
			memset(p, 0, sizeof(*p));
			found = true;
			break;
		}
	}
	raw_spin_unlock_irqrestore(&sys->pending_lock, flags);
	return found;
}

/*
 * The guest's current task: a per-CPU pointer. Under KPTI the per-CPU area
 * and task structs are not mapped in the user page tables; the kernel's
 * sit 4 KiB below them.
 */
static u64 vmi_current_task(const struct vmi_filter *f, struct vmi_aspace *as,
			    const struct vmi_regs *r)
{
	u64 task = 0, va = r->kernel_gs_base + f->percpu_current;

	if (!f->percpu_current || !r->kernel_gs_base)
		return 0;
	if (vmi_guest_read(as, va, &task, sizeof(task)) &&
	    (as->cr3 & BIT_ULL(12))) {
		as->cr3 &= ~BIT_ULL(12);
		if (vmi_guest_read(as, va, &task, sizeof(task)))
			task = 0;
	}
	return task;
}

/* Who is calling: the task's tgid and comm, read now, before it can exit. */
static void vmi_caller(const struct vmi_filter *f, struct vmi_aspace *as,
		       u64 task, struct vmi_record_syscall *sys)
{
	sys->tgid = -1;
	if (!task)
		return;
	if (f->task_tgid &&
	    vmi_guest_read(as, task + f->task_tgid, &sys->tgid, sizeof(sys->tgid)))
		sys->tgid = -1;
	if (f->task_comm &&
	    vmi_guest_read(as, task + f->task_comm, sys->comm, sizeof(sys->comm)))
		memset(sys->comm, 0, sizeof(sys->comm));
	sys->comm[sizeof(sys->comm) - 1] = 0;
}

/* Read the argument @spec names (uapi VMI_CAPTURE_*). */
static void vmi_capture(const struct vmi_aspace *as, u8 spec, const u64 *args,
			struct vmi_value *v)
{
	u32 ptr = VMI_CAPTURE_PTR(spec), len_arg = VMI_CAPTURE_LEN(spec);
	bool truncated = false;
	u64 want;
	int ret;

	v->arg = ptr - 1;
	v->flags = 0;
	v->len = 0;
	if (spec & VMI_CAPTURE_STRING) {
		ret = vmi_guest_read_str(as, args[ptr - 1], v->bytes,
					 VMI_CAPTURE_MAX, &truncated);
	} else {
		want = len_arg && len_arg <= 6 ? args[len_arg - 1] : VMI_CAPTURE_MAX;
		truncated = want > VMI_CAPTURE_MAX;
		want = min_t(u64, want, VMI_CAPTURE_MAX);
		ret = vmi_guest_read(as, args[ptr - 1], v->bytes, want);
		if (!ret)
			ret = want;
	}
	if (ret < 0) {
		v->flags = VMI_RECF_FAULT;
		return;
	}
	v->len = ret;
	if (truncated)
		v->flags = VMI_RECF_TRUNCATED;
}

/*
 * Read the argv vector at @vec: its strings, each with its NUL, one after
 * the other. Bounded by VMI_ARGV_MAX pointers and VMI_CAPTURE_MAX bytes.
 */
static void vmi_capture_argv(const struct vmi_aspace *as, u16 arg, u64 vec,
			     struct vmi_value *v)
{
	bool truncated = false;
	u64 ptr;
	u32 i;
	int ret;

	v->arg = arg;
	v->flags = VMI_RECF_ARGV;
	v->len = 0;
	for (i = 0; i < VMI_ARGV_MAX; i++) {
		if (vmi_guest_read(as, vec + i * sizeof(ptr), &ptr, sizeof(ptr)))
			break;
		if (!ptr)
			return;
		if (v->len >= VMI_CAPTURE_MAX - 1)
			break;
		ret = vmi_guest_read_str(as, ptr, v->bytes + v->len,
					 VMI_CAPTURE_MAX - 1 - v->len, &truncated);
		if (ret < 0)
			break;
		v->len += ret;
		v->bytes[v->len++] = 0;
		if (truncated)
			break;
	}
	/* Cut short: past the bounds, or guest memory that could not be read. */
	v->flags |= v->len ? VMI_RECF_TRUNCATED : VMI_RECF_FAULT;
}

/* Split @v into DATA records at @recs; returns how many. */
static u32 vmi_value_records(const struct vmi_value *v, struct vmi_record *recs,
			     u32 vcpu, u64 now)
{
	u32 n = 0, off = 0, chunk;

	do {
		chunk = min_t(u32, v->len - off, VMI_DATA_BYTES);
		memset(&recs[n], 0, sizeof(recs[n]));
		recs[n].type = VMI_REC_DATA;
		recs[n].vcpu = vcpu;
		recs[n].time_ns = now;
		recs[n].data.arg = v->arg;
		recs[n].data.len = chunk;
		recs[n].data.offset = off;
		memcpy(recs[n].data.bytes, v->bytes + off, chunk);
		off += chunk;
		/* The flags describe the value: they go on its last slice. */
		recs[n].flags = v->flags & VMI_RECF_ARGV;
		if (off == v->len)
			recs[n].flags = v->flags;
		n++;
	} while (off < v->len);
	return n;
}

/* KVM has just emulated a SYSCALL: record, deny or let it run. */
static void vmi_sys_entered(struct vmi_session *s, struct vmi_vcpu_sys *vs,
			    struct kvm_vcpu *vcpu, const struct vmi_filter *f)
{
	struct vmi_record recs[1 + VMI_MAX_DATA_RECORDS];
	struct vmi_record *rec = &recs[0];
	struct vmi_aspace as = { .vcpu = vcpu }, kas;
	bool traced, deny, exec_check, listed, deny_listed;
	struct vmi_pending pending;
	struct vmi_value val;
	struct vmi_regs r;
	u32 n = 1, idx;
	u64 args[6], nr;
	u8 spec;

	vmi_vcpu_regs(vcpu, &s->layout, &r);
	WRITE_ONCE(vs->syscalls, vs->syscalls + 1);
	if (!f || READ_ONCE(s->detaching) || !vmi_filter_in_scope(f, r.cr3))
		return;
	nr = r.rax;
	if (nr >= VMI_NR_SYSCALLS)
		return;
	traced = test_bit(nr, f->trace);
	deny = test_bit(nr, f->deny) &&
	       (!f->nr_deny_cr3 || vmi_cr3_in(f->deny_cr3, f->nr_deny_cr3, r.cr3));
	exec_check = f->exec_mode != VMI_EXEC_ANY &&
		     (nr == VMI_NR_EXECVE || nr == VMI_NR_EXECVEAT);
	if (!traced && !deny && !exec_check)
		return;

	args[0] = r.rdi;
	args[1] = r.rsi;
	args[2] = r.rdx;
	args[3] = r.r10;
	args[4] = r.r8;
	args[5] = r.r9;
	as.cr3 = r.cr3;
	as.la57 = r.la57;
	idx = vmi_vcpu_index(vcpu);
	memset(rec, 0, sizeof(*rec));
	rec->type = VMI_REC_SYSCALL;
	rec->vcpu = idx;
	rec->time_ns = ktime_get_ns();

	spec = f->capture[nr];
	if (exec_check)
		spec = (spec & VMI_CAPTURE_ARGV) | VMI_CAPTURE_STRING |
		       (nr == VMI_NR_EXECVE ? 1 : 2);
	if (VMI_CAPTURE_PTR(spec) && VMI_CAPTURE_PTR(spec) <= 6) {
		vmi_capture(&as, spec, args, &val);
		if (val.flags & VMI_RECF_FAULT)
			WRITE_ONCE(vs->faults, vs->faults + 1);
		n += vmi_value_records(&val, &recs[1], idx, rec->time_ns);
		if (exec_check) {
			/* Unreadable or cut paths are not on an allow list. */
			listed = !val.flags &&
				 vmi_filter_lists_path(f, val.bytes, val.len);
			deny_listed = f->exec_mode == VMI_EXEC_DENY_LISTED;
			if (listed == deny_listed)
				deny = true;
		}
		/* argv follows the path; @val is free again. */
		if ((spec & VMI_CAPTURE_ARGV) && VMI_CAPTURE_PTR(spec) < 6) {
			vmi_capture_argv(&as, VMI_CAPTURE_PTR(spec),
					 args[VMI_CAPTURE_PTR(spec)], &val);
			if (val.flags & VMI_RECF_FAULT)
				WRITE_ONCE(vs->faults, vs->faults + 1);
			n += vmi_value_records(&val, &recs[n], idx,
					       rec->time_ns);
		}
	}
	/* The kernel-side reads may switch @as to the kernel's page tables. */
	kas = as;
	rec->task = vmi_current_task(f, &kas, &r);
	vmi_caller(f, &kas, rec->task, &rec->sys);
	/* A denied call goes straight back to user mode; it never ran. */
	if (deny && vmi_vcpu_sysret(vcpu, &s->layout, true,
				    -(s64)f->deny_errno)) {
		rec->flags |= VMI_RECF_DENIED;
		WRITE_ONCE(vs->denied, vs->denied + 1);
	} else if (!traced) {
		return;
	}

	rec->sys.nr = nr;
	memcpy(rec->sys.args, args, sizeof(args));
	rec->sys.cr3 = r.cr3;
	rec->sys.rip = r.rcx;
	rec->sys.data_records = n - 1;
	if (!vmi_ring_write_n(&s->ring, recs, n)) {
		trace_vminsight_syscall(rec, vmi_kvm_owner_pid(s->kvm), true);
		return;
	}
	trace_vminsight_syscall(rec, vmi_kvm_owner_pid(s->kvm), false);
	vmi_session_notify(s);
	if (rec->flags & VMI_RECF_DENIED)
		return;
	pending.cr3 = r.cr3;
	pending.rsp = r.rsp;
	pending.rip = r.rcx;
	pending.nr = nr;
	pending.seq = rec->seq;
	vmi_pending_add(&s->sys, &pending);
}

/* Is the instruction at @rip a SYSRET? 1: yes, 0: no, -errno: unreadable. */
static int vmi_sysret_at(struct vmi_vcpu_sys *vs, struct kvm_vcpu *vcpu,
			 const struct vmi_regs *r, bool *wide)
{
	struct vmi_aspace as = { .vcpu = vcpu, .cr3 = r->cr3, .la57 = r->la57 };
	u8 insn[3];
	u64 gpa;
	int ret;

	/* One SYSRET site per kernel: re-check its bytes, skip the walk. */
	if (vs->sysret_rip == r->rip && vs->sysret_gpa &&
	    !vmi_vcpu_read_gpa(vcpu, vs->sysret_gpa, insn, sizeof(insn))) {
		ret = 0;
	} else {
		ret = vmi_guest_read(&as, r->rip, insn, sizeof(insn));
		if (ret)
			return ret;
		if (((r->rip + sizeof(insn) - 1) ^ r->rip) >> PAGE_SHIFT ||
		    vmi_guest_translate(&as, r->rip, &gpa))
			gpa = 0;
		vs->sysret_rip = r->rip;
		vs->sysret_gpa = gpa;
	}
	/* SYSRETQ is REX.W 0F 07, SYSRETL plain 0F 07. */
	if ((insn[0] & 0xf8) == 0x48 && insn[1] == 0x0f && insn[2] == 0x07) {
		*wide = true;
		return 1;
	}
	*wide = false;
	return insn[0] == 0x0f && insn[1] == 0x07;
}

/*
 * KVM is about to inject #UD at CPL 0: a SYSRET we trapped, or a genuine
 * fault (BUG() is UD2). Returns true if traps must stay off for this entry.
 */
static bool vmi_sys_ud_kernel(struct vmi_session *s, struct vmi_vcpu_sys *vs,
			      struct kvm_vcpu *vcpu, const struct vmi_filter *f)
{
	struct vmi_record rec = { .type = VMI_REC_SYSRET };
	struct vmi_aspace as = { .vcpu = vcpu };
	struct vmi_pending pending;
	struct vmi_regs r;
	bool wide, written;
	int ret;

	vmi_vcpu_regs(vcpu, &s->layout, &r);
	if (!r.sce)
		return false;	/* the guest turned SYSCALL off: #UD is right */
	ret = vmi_sysret_at(vs, vcpu, &r, &wide);
	if (ret < 0) {
		/* Cannot tell: run it again with SYSRET enabled. */
		vmi_vcpu_retry_natively(vcpu, &s->layout);
		WRITE_ONCE(vs->retried, vs->retried + 1);
		return true;
	}
	if (!ret || !vmi_vcpu_sysret(vcpu, &s->layout, wide, r.rax))
		return false;	/* the guest's own #UD (or #GP-worthy SYSRET) */
	WRITE_ONCE(vs->sysrets, vs->sysrets + 1);
	if (!f || !wide || READ_ONCE(s->detaching) ||
	    !vmi_pending_take(&s->sys, r.cr3, r.rsp, r.rcx, &pending))
		return false;
	as.cr3 = r.cr3;
	as.la57 = r.la57;
	rec.vcpu = vmi_vcpu_index(vcpu);
	rec.time_ns = ktime_get_ns();
	rec.task = vmi_current_task(f, &as, &r);
	rec.sysret.nr = pending.nr;
	rec.sysret.ret = r.rax;
	rec.sysret.cr3 = r.cr3;
	rec.sysret.rip = r.rcx;
	rec.sysret.rsp = r.rsp;
	rec.sysret.entry_seq = pending.seq;
	written = vmi_ring_write_n(&s->ring, &rec, 1);
	trace_vminsight_sysret(&rec, vmi_kvm_owner_pid(s->kvm), !written);
	vmi_session_notify(s);
	return false;
}

void vmi_sys_on_userspace_exit(struct vmi_session *s,
			       struct vmi_vcpu_state *st,
			       struct kvm_vcpu *vcpu)
{
	struct vmi_vcpu_sys *vs = &st->sys;
	u64 exits = vmi_vcpu_exits(vcpu);

	if (!vs->active || exits == vs->exits_seen)
		return;
	/*
	 * Intel: the VMCS is not loaded here. Dropping the #UD queued at the
	 * SYSRET site seen before is enough: the vCPU runs SYSRET again, trapped
	 * here or natively on a host where it is restored.
	 */
	if (!vmi_vcpu_state_loaded(&s->layout)) {
		if (vs->sysret_rip &&
		    vmi_vcpu_drop_queued_ud_at(vcpu, vs->sysret_rip))
			WRITE_ONCE(vs->early, vs->early + 1);
		return;
	}
	if (vmi_vcpu_trap_exit(vcpu, &s->layout) != VMI_EXIT_UD_KERNEL)
		return;
	/* This exit is dealt with: the next entry must not see it again. */
	vs->exits_seen = exits;
	vmi_sys_ud_kernel(s, vs, vcpu, rcu_dereference(s->sys.filter));
	WRITE_ONCE(vs->early, vs->early + 1);
}

void vmi_sys_on_entry(struct vmi_session *s, struct vmi_vcpu_state *st,
		      struct kvm_vcpu *vcpu)
{
	struct vmi_session_sys *sys = &s->sys;
	struct vmi_vcpu_sys *vs = &st->sys;
	/* Pairs with set_traps' store-release: the layout is in place. */
	u32 mode = smp_load_acquire(&sys->mode);
	const struct vmi_filter *f = rcu_dereference(sys->filter);
	u64 exits = vmi_vcpu_exits(vcpu);
	bool want, active, keep_off = false;
	int why;

	if (vs->active && exits != vs->exits_seen) {
		switch (vmi_vcpu_trap_exit(vcpu, &s->layout)) {
		case VMI_EXIT_SYSCALL:
			vmi_sys_entered(s, vs, vcpu, f);
			break;
		case VMI_EXIT_UD_KERNEL:
			keep_off = vmi_sys_ud_kernel(s, vs, vcpu, f);
			break;
		default:
			break;
		}
	}
	vs->exits_seen = exits;

	want = !keep_off && !READ_ONCE(s->detaching) && f &&
	       (mode == VMI_SYS_PENDING || mode == VMI_SYS_ON) &&
	       f->traps &&
	       vmi_filter_in_scope(f, vmi_vcpu_cr3(vcpu));
	if (!want && !vs->active)
		return;
	why = vmi_vcpu_syscall_exiting(vcpu, &s->layout, want, &active);
	if (why) {
		WRITE_ONCE(sys->fallback, why);
		if (want && why != VMI_CR3_MISMATCH)
			cmpxchg(&sys->mode, mode, VMI_SYS_REFUSED);
		active = false;
	}
	if (active != vs->active) {
		vs->active = active;
		if (active)
			atomic_inc(&sys->armed);
		else
			atomic_dec(&sys->armed);
	}
	if (active && mode == VMI_SYS_PENDING)
		cmpxchg(&sys->mode, VMI_SYS_PENDING, VMI_SYS_ON);
}
