// SPDX-License-Identifier: GPL-2.0
/*
 * session.c - attach, detach, the session file, and CR3 change records.
 * Syscall traps are in syscall.c.
 *
 * Sessions live in an RCU hash keyed by struct kvm: the VM-entry probe
 * looks up its VM without locks; attach and detach serialise on a mutex.
 * The kvm_entry probe is registered while at least one session exists, so
 * a host with nothing attached pays nothing.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/anon_inodes.h>
#include <linux/delay.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/hashtable.h>
#include <linux/irq_work.h>
#include <linux/ktime.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/wait.h>

#include "kvm_shim.h"
#include "ring.h"
#include "session.h"
#include "trace.h"

/* Permanent refusals; a CR3 mismatch may be a vCPU mid-reset: retry it. */
static bool vmi_cr3_refusal_is_final(int why)
{
	return why != VMI_CR3_MISMATCH;
}

/* In the vCPU's thread at VM entry: keep its CR3 exiting as the session wants. */
static void vmi_session_cr3_exiting(struct vmi_session *s,
				    struct vmi_vcpu_state *st,
				    struct kvm_vcpu *vcpu)
{
	/* Pairs with set_traps' store-release: the layout is in place. */
	u32 mode = smp_load_acquire(&s->cr3_mode);
	bool want = !READ_ONCE(s->detaching) &&
		    (mode == VMI_CR3_PENDING || mode == VMI_CR3_EXITING);
	int why;

	st->cr3_exiting_now = false;
	if (!want && !st->cr3_exiting)
		return;
	/* Also re-asserts the intercept should KVM ever clear it. */
	why = vmi_vcpu_cr3_exiting(vcpu, &s->layout, want, &st->cr3_exiting_now);
	if (why) {
		WRITE_ONCE(s->cr3_fallback, why);
		if (want && vmi_cr3_refusal_is_final(why))
			cmpxchg(&s->cr3_mode, mode, VMI_CR3_FALLBACK);
		return;
	}
	if (want != st->cr3_exiting) {
		st->cr3_exiting = want;
		if (want)
			atomic_inc(&s->cr3_armed);
		else
			atomic_dec(&s->cr3_armed);
	}
	if (want && mode == VMI_CR3_PENDING)
		cmpxchg(&s->cr3_mode, VMI_CR3_PENDING, VMI_CR3_EXITING);
}

static DEFINE_HASHTABLE(vmi_sessions, 6);
static DEFINE_MUTEX(vmi_sessions_lock);
static unsigned int vmi_nr_sessions;
/* Reaps detached sessions; destroyed at module exit, after the last. */
static struct workqueue_struct *vmi_wq;

/* Under rcu_read_lock() (the probe) or vmi_sessions_lock (attach). */
static struct vmi_session *vmi_session_find(struct kvm *kvm)
{
	struct vmi_session *s;

	hash_for_each_possible_rcu(vmi_sessions, s, node, (unsigned long)kvm,
				   lockdep_is_held(&vmi_sessions_lock))
		if (s->kvm == kvm)
			return s;
	return NULL;
}

void vmi_session_on_vm_entry(struct kvm_vcpu *vcpu)
{
	struct vmi_record rec = { .type = VMI_REC_CR3,
				  .flags = VMI_RECF_SAMPLED };
	struct vmi_vcpu_state *st;
	struct vmi_session *s;
	bool written;
	u64 cr3, old;
	u32 idx;

	rcu_read_lock();
	s = vmi_session_find(vmi_vcpu_kvm(vcpu));
	if (!s)
		goto out;
	idx = vmi_vcpu_index(vcpu);
	/* A nested (L2) guest's CR3 belongs to no process of this VM. */
	if (idx >= s->max_vcpus || vmi_vcpu_in_nested_guest(vcpu))
		goto out;
	st = &s->vcpus[idx];
	vmi_session_cr3_exiting(s, st, vcpu);
	/* Even when detaching: a trapped SYSRET must be completed. */
	vmi_sys_on_entry(s, st, vcpu);
	/* Likewise, to give MSR write intercepts back. */
	vmi_msr_on_entry(s, &st->msrs, vcpu, idx);
	if (READ_ONCE(s->detaching))
		goto out;
	WRITE_ONCE(st->samples, st->samples + 1);
	cr3 = vmi_vcpu_cr3(vcpu);
	old = st->last_cr3;
	if (!((old ^ cr3) & VMI_CR3_AS_MASK))
		goto out;
	WRITE_ONCE(st->last_cr3, cr3);

	if (st->cr3_exiting_now)
		rec.flags &= ~VMI_RECF_SAMPLED;	/* every write exits: exact */
	rec.vcpu = idx;
	rec.time_ns = ktime_get_ns();
	rec.cr3.old_cr3 = old;
	rec.cr3.new_cr3 = cr3;
	written = vmi_ring_write(&s->ring, &rec);
	trace_vminsight_cr3(&rec, vmi_kvm_owner_pid(s->kvm), !written);
	vmi_session_notify(s);
out:
	rcu_read_unlock();
}

void vmi_session_on_userspace_exit(struct kvm_vcpu *vcpu)
{
	struct vmi_session *s;
	u32 idx;

	rcu_read_lock();
	s = vmi_session_find(vmi_vcpu_kvm(vcpu));
	idx = vmi_vcpu_index(vcpu);
	if (s && idx < s->max_vcpus && !vmi_vcpu_in_nested_guest(vcpu))
		vmi_sys_on_userspace_exit(s, &s->vcpus[idx], vcpu);
	rcu_read_unlock();
}

void vmi_session_notify(struct vmi_session *s)
{
	irq_work_queue(&s->wake);
}

static void vmi_session_wake(struct irq_work *work)
{
	struct vmi_session *s = container_of(work, struct vmi_session, wake);

	wake_up_interruptible(&s->wq);
}

static void vmi_session_free(struct vmi_session *s)
{
	irq_work_sync(&s->wake);
	vmi_sys_free(&s->sys);
	vmi_ring_free(&s->ring);
	kvfree(s->vcpus);
	if (s->kvm)
		vmi_kvm_put(s->kvm);
	kfree(s);
}

static int vmi_session_publish(struct vmi_session *s)
{
	int ret = 0;

	mutex_lock(&vmi_sessions_lock);
	if (vmi_session_find(s->kvm)) {
		ret = -EBUSY;	/* one session per VM */
		goto out;
	}
	if (!vmi_nr_sessions) {
		ret = vmi_kvm_entry_probe_register(vmi_session_on_vm_entry);
		if (ret)
			goto out;
		ret = vmi_kvm_userspace_exit_probe_register(vmi_session_on_userspace_exit);
		if (ret) {
			pr_err("cannot probe kvm_arch_vcpu_ioctl_run: %d\n", ret);
			vmi_kvm_entry_probe_unregister();
			goto out;
		}
	}
	vmi_nr_sessions++;
	hash_add_rcu(vmi_sessions, &s->node, (unsigned long)s->kvm);
out:
	mutex_unlock(&vmi_sessions_lock);
	return ret;
}

static void vmi_session_unpublish(struct vmi_session *s)
{
	mutex_lock(&vmi_sessions_lock);
	hash_del_rcu(&s->node);
	if (!--vmi_nr_sessions) {
		vmi_kvm_userspace_exit_probe_unregister();
		vmi_kvm_entry_probe_unregister();	/* waits for probes */
	}
	mutex_unlock(&vmi_sessions_lock);
	/* A probe that found this session has finished with it. */
	synchronize_rcu();
}

/* Nothing left that would crash the guest without the probe. */
static bool vmi_session_disarmed(struct vmi_session *s)
{
	return !atomic_read(&s->sys.armed) || vmi_kvm_is_orphaned(s->kvm);
}

static void vmi_session_end(struct vmi_session *s)
{
	vmi_session_unpublish(s);
	vmi_session_free(s);
}

/*
 * A detached session whose vCPUs still trap syscalls: an idle vCPU disarms
 * at its next entry, whenever that is. Holds a module reference meanwhile.
 */
static void vmi_session_reap(struct work_struct *work)
{
	struct vmi_session *s = container_of(to_delayed_work(work),
					     struct vmi_session, reap);

	if (!vmi_session_disarmed(s)) {
		vmi_kvm_kick_vcpus(s->kvm);
		queue_delayed_work(vmi_wq, &s->reap, HZ / 10);
		return;
	}
	vmi_session_end(s);
	/* Module exit destroys vmi_wq, which waits for this to return. */
	module_put(THIS_MODULE);
}

/*
 * Give every vCPU its intercepts and EFER back before the probe goes: each
 * restores its own at its next entry, which kicks hasten. CR3 exiting and
 * MSR write intercepts left on an idle vCPU are harmless (KVM handles those
 * exits, only slower); a syscall trap is not, so such a session lingers
 * until the vCPU has run.
 */
static int vmi_session_release(struct inode *inode, struct file *file)
{
	struct vmi_session *s = file->private_data;
	int tries;

	WRITE_ONCE(s->detaching, true);
	for (tries = 0; tries < 50; tries++) {
		if (vmi_kvm_is_orphaned(s->kvm) ||
		    (!atomic_read(&s->cr3_armed) && !atomic_read(&s->sys.armed) &&
		     !atomic_read(&s->msrs.armed)))
			break;
		vmi_kvm_kick_vcpus(s->kvm);
		msleep(20);
	}
	if (atomic_read(&s->cr3_armed) && !vmi_kvm_is_orphaned(s->kvm))
		pr_info("detached with CR3 exiting left on %d idle vCPUs\n",
			atomic_read(&s->cr3_armed));
	if (atomic_read(&s->msrs.armed) && !vmi_kvm_is_orphaned(s->kvm))
		pr_info("detached with MSR write intercepts left on %d idle vCPUs\n",
			atomic_read(&s->msrs.armed));
	if (!vmi_session_disarmed(s)) {
		pr_info("detach waits for %d idle vCPUs to drop syscall traps\n",
			atomic_read(&s->sys.armed));
		__module_get(THIS_MODULE);
		queue_delayed_work(vmi_wq, &s->reap, HZ / 10);
		return 0;
	}
	vmi_session_end(s);
	return 0;
}

static int vmi_session_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct vmi_session *s = file->private_data;

	return vmi_ring_mmap(&s->ring, vma);
}

static __poll_t vmi_session_poll(struct file *file, poll_table *wait)
{
	struct vmi_session *s = file->private_data;
	__poll_t mask = 0;

	poll_wait(file, &s->wq, wait);
	if (vmi_ring_has_data(&s->ring))
		mask |= EPOLLIN | EPOLLRDNORM;
	if (vmi_kvm_is_orphaned(s->kvm))
		mask |= EPOLLHUP;
	return mask;
}

static long vmi_session_status(struct vmi_session *s, void __user *arg)
{
	struct vmi_status st = {};
	unsigned long flags;
	u32 i;

	raw_spin_lock_irqsave(&s->ring.lock, flags);
	st.records = s->ring.head;
	st.lost = s->ring.lost;
	raw_spin_unlock_irqrestore(&s->ring.lock, flags);
	for (i = 0; i < s->max_vcpus; i++)
		st.cr3_samples += READ_ONCE(s->vcpus[i].samples);
	vmi_sys_status(s, &st);
	vmi_msr_status(s, &st);
	st.exit_probe_missed = vmi_kvm_userspace_exit_probe_missed();
	st.cr3_mode = READ_ONCE(s->cr3_mode);
	st.cr3_fallback = READ_ONCE(s->cr3_fallback);
	st.cr3_armed_vcpus = atomic_read(&s->cr3_armed);
	st.nr_vcpus = vmi_kvm_online_vcpus(s->kvm);
	if (vmi_kvm_is_orphaned(s->kvm))
		st.flags |= VMI_STATUS_VM_DEAD;
	return copy_to_user(arg, &st, sizeof(st)) ? -EFAULT : 0;
}

static long vmi_session_memslots(struct vmi_session *s, void __user *arg)
{
	struct vmi_memslots req;
	struct vmi_memslot *slots;
	u32 max, n;
	long ret = 0;

	if (copy_from_user(&req, arg, sizeof(req)))
		return -EFAULT;
	if (req.reserved)
		return -EINVAL;
	max = min_t(u32, req.count, vmi_kvm_max_memslots());
	slots = kvcalloc(max ?: 1, sizeof(*slots), GFP_KERNEL);
	if (!slots)
		return -ENOMEM;
	n = vmi_kvm_memslots(s->kvm, slots, max, &req.generation);
	if (copy_to_user(u64_to_user_ptr(req.slots), slots,
			 (size_t)min(n, max) * sizeof(*slots)))
		ret = -EFAULT;
	req.count = n;
	if (!ret && copy_to_user(arg, &req, sizeof(req)))
		ret = -EFAULT;
	kvfree(slots);
	return ret;
}

/*
 * Turn CR3 exiting (VMI_TRAP_CR3), syscall traps (VMI_TRAP_SYSCALL) and the
 * MSR watch (VMI_TRAP_MSR) on or off. vCPUs follow at their next VM entry.
 * The layout is fixed by the first request: vCPUs may be using it to disarm
 * while a later one arrives.
 */
static long vmi_session_set_traps(struct vmi_session *s, void __user *arg)
{
	struct vmi_traps req;
	long ret = 0;

	if (copy_from_user(&req, arg, sizeof(req)))
		return -EFAULT;
	if (req.flags & ~(VMI_TRAP_CR3 | VMI_TRAP_SYSCALL | VMI_TRAP_MSR) ||
	    req.reserved ||
	    req.layout.reserved ||
	    memchr_inv(req.layout.reserved2, 0, sizeof(req.layout.reserved2)))
		return -EINVAL;

	mutex_lock(&vmi_sessions_lock);
	if (!s->layout.vendor) {
		s->layout = req.layout;
	} else if (memcmp(&s->layout, &req.layout, sizeof(req.layout))) {
		ret = -EBUSY;
		goto out;
	}
	if (!(req.flags & VMI_TRAP_CR3))
		WRITE_ONCE(s->cr3_mode, VMI_CR3_SAMPLED);
	else if (READ_ONCE(s->cr3_mode) != VMI_CR3_FALLBACK)
		/* Layout before mode: the probe reads them in that order. */
		smp_store_release(&s->cr3_mode, VMI_CR3_PENDING);
	if (!(req.flags & VMI_TRAP_SYSCALL))
		WRITE_ONCE(s->sys.mode, VMI_SYS_OFF);
	else if (READ_ONCE(s->sys.mode) != VMI_SYS_REFUSED)
		/* Likewise for syscall traps. */
		smp_store_release(&s->sys.mode, VMI_SYS_PENDING);
	vmi_msr_set_mode(s, req.flags & VMI_TRAP_MSR);
out:
	mutex_unlock(&vmi_sessions_lock);
	return ret;
}

static long vmi_session_ioctl(struct file *file, unsigned int cmd,
			      unsigned long arg)
{
	struct vmi_session *s = file->private_data;

	switch (cmd) {
	case VMI_IOC_STATUS:
		return vmi_session_status(s, (void __user *)arg);
	case VMI_IOC_MEMSLOTS:
		return vmi_session_memslots(s, (void __user *)arg);
	case VMI_IOC_SET_TRAPS:
		return vmi_session_set_traps(s, (void __user *)arg);
	case VMI_IOC_SET_FILTER:
		return vmi_sys_set_filter(s, (void __user *)arg);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations vmi_session_fops = {
	.owner = THIS_MODULE,
	.release = vmi_session_release,
	.mmap = vmi_session_mmap,
	.poll = vmi_session_poll,
	.unlocked_ioctl = vmi_session_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct vmi_session *vmi_session_alloc(const struct vmi_attach *a)
{
	struct vmi_session *s;
	struct file *vm_file;
	int ret;

	s = kzalloc(sizeof(*s), GFP_KERNEL);
	if (!s)
		return ERR_PTR(-ENOMEM);
	init_waitqueue_head(&s->wq);
	s->wake = IRQ_WORK_INIT_LAZY(vmi_session_wake);
	INIT_DELAYED_WORK(&s->reap, vmi_session_reap);
	atomic_set(&s->cr3_armed, 0);
	atomic_set(&s->msrs.armed, 0);
	vmi_sys_init(&s->sys);

	ret = vmi_ring_init(&s->ring, a->data_pages);
	if (ret)
		goto fail;

	vm_file = fget(a->vm_fd);
	if (!vm_file) {
		ret = -EBADF;
		goto fail;
	}
	s->kvm = vmi_kvm_get_from_file(vm_file);
	fput(vm_file);
	if (IS_ERR(s->kvm)) {
		ret = PTR_ERR(s->kvm);
		s->kvm = NULL;
		goto fail;
	}
	s->max_vcpus = vmi_kvm_max_vcpus(s->kvm);
	s->vcpus = kvcalloc(s->max_vcpus, sizeof(*s->vcpus), GFP_KERNEL);
	if (!s->vcpus) {
		ret = -ENOMEM;
		goto fail;
	}
	return s;
fail:
	vmi_session_free(s);
	return ERR_PTR(ret);
}

int vmi_session_attach(const struct vmi_attach *a)
{
	struct vmi_session *s;
	int fd, ret;

	if (a->flags || a->reserved)
		return -EINVAL;
	s = vmi_session_alloc(a);
	if (IS_ERR(s))
		return PTR_ERR(s);
	ret = vmi_session_publish(s);
	if (ret) {
		vmi_session_free(s);
		return ret;
	}
	fd = anon_inode_getfd("[vminsight-session]", &vmi_session_fops, s,
			      O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		vmi_session_unpublish(s);
		vmi_session_free(s);
	}
	return fd;
}

int vmi_sessions_init(void)
{
	vmi_wq = alloc_workqueue("vminsight", 0, 0);
	return vmi_wq ? 0 : -ENOMEM;
}

void vmi_sessions_exit(void)
{
	/*
	 * Session files pin the module, so only a forced unload (rmmod -f,
	 * unsupported) gets here with sessions. At least stop the probe from
	 * jumping into freed module text on the next VM entry.
	 */
	mutex_lock(&vmi_sessions_lock);
	if (vmi_nr_sessions) {
		pr_err("forced unload with %u sessions attached\n",
		       vmi_nr_sessions);
		vmi_kvm_userspace_exit_probe_unregister();
		vmi_kvm_entry_probe_unregister();
		vmi_nr_sessions = 0;
	}
	mutex_unlock(&vmi_sessions_lock);
	destroy_workqueue(vmi_wq);
}
