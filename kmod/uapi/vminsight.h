/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * vminsight.h - the only contract between vminsight.ko and userspace.
 *
 * Userspace opens /dev/vminsight (root only) and issues VMI_IOC_ATTACH with
 * a file descriptor of a QEMU process's KVM VM (obtained with pidfd_getfd).
 * The ioctl returns a new "session" file descriptor:
 *   - mmap(session, offset 0) maps the ring: one header page (struct
 *     vmi_ring_header) followed by the data pages, an array of fixed-size
 *     struct vmi_record. Any length up to data_offset + nr_records *
 *     record_size is accepted, so a reader can map the header page alone
 *     to learn the geometry, then map the whole ring;
 *   - poll(session) reports POLLIN when records are waiting (woken lazily,
 *     within a tick, so recording never costs the vCPU an extra exit), and
 *     POLLHUP once the VM has no other user; nothing wakes a sleeper when
 *     QEMU dies, so watch QEMU's pidfd or poll with a timeout;
 *   - ioctls on it query status and the guest memory map;
 *   - the session ends (detach) when the last reference goes: close() and
 *     munmap() of every ring mapping, which holds the file too.
 *
 * CR3 records mark a change of address space: values that differ only in
 * PCID (bits 0-11) or KPTI's bit 12 are not recorded; records carry the raw
 * CR3. Entries of a nested (L2) guest are not recorded.
 *
 * A SYSCALL record and the DATA records it announces are written in one
 * step: they are adjacent in the ring, or all counted as lost.
 *
 * Ring protocol (single producer side in the kernel, single consumer):
 * data_head and data_tail count records since attach and never wrap. The
 * kernel writes a record into slot (head % nr_records), then publishes it
 * with a store-release of data_head. The reader load-acquires data_head,
 * reads records [data_tail, data_head), then store-releases data_tail. When
 * head - tail == nr_records the kernel drops the record and increments lost.
 *
 * Both sides compile this file; tests pin its layout.
 */
#ifndef _UAPI_VMINSIGHT_H
#define _UAPI_VMINSIGHT_H

#include <linux/const.h>
#include <linux/types.h>
#include <linux/ioctl.h>

#define VMI_ABI_VERSION 2
#define VMI_DEVICE_PATH "/dev/vminsight"

/* Record types. */
enum vmi_record_type {
	VMI_REC_NONE = 0,
	VMI_REC_CR3 = 1,	/* a vCPU's CR3 differs from the last one seen */
	VMI_REC_SYSCALL = 2,	/* a 64-bit SYSCALL entered the kernel or was denied */
	VMI_REC_SYSRET = 3,	/* a traced syscall returned to user mode */
	VMI_REC_DATA = 4,	/* bytes of an argument of the SYSCALL just before */
	VMI_REC_MSR = 5,	/* a system-call entry MSR differs from the last seen */
};

/*
 * Record flags. SAMPLED: the CR3 was seen at a natural VM entry rather than
 * at the write itself, so writes between two entries were missed.
 */
#define VMI_RECF_SAMPLED _BITUL(0)
#define VMI_RECF_DENIED _BITUL(1)	/* SYSCALL: never ran; the guest saw ret */
#define VMI_RECF_TRUNCATED _BITUL(2)	/* DATA: the value goes on past these */
/* DATA: guest memory could not be read; MSR: the write faulted (#GP). */
#define VMI_RECF_FAULT _BITUL(3)
#define VMI_RECF_COMPAT _BITUL(4)	/* SYSRET: to 32-bit code (SYSRETL) */
#define VMI_RECF_ARGV _BITUL(5)	/* DATA: argv strings, each NUL-terminated */
#define VMI_RECF_FIRST _BITUL(6)	/* MSR: the vCPU's first value seen */
/* MSR: a guest WRMSR that exited, recorded as it happened (not SAMPLED). */
#define VMI_RECF_INTERCEPTED _BITUL(7)

struct vmi_record_cr3 {
	__u64 old_cr3;		/* 0 on a vCPU's first record */
	__u64 new_cr3;
};

/*
 * SYSCALL records are written when the guest kernel is about to run the
 * call (KVM has just emulated the SYSCALL instruction), so arguments are
 * the caller's. A traced call that returns with SYSRET gets a SYSRET record
 * naming it; calls that return otherwise (IRET after a signal, a successful
 * execve, exit) have none. A denied call returns -deny_errno of the filter.
 * The caller's tgid and comm are read at the call (see the filter's task
 * offsets), so short-lived processes are named too.
 */
struct vmi_record_syscall {
	__u64 nr;		/* RAX at the SYSCALL */
	__u64 args[6];		/* RDI, RSI, RDX, R10, R8, R9 */
	__u64 cr3;		/* the caller's address space */
	__u64 rip;		/* user RIP after the SYSCALL instruction */
	__s32 tgid;		/* the caller's process id; -1: not read */
	__u32 data_records;	/* VMI_REC_DATA records right after this */
	char comm[16];		/* the caller's name at the call; "": not read */
};

struct vmi_record_sysret {
	__u64 nr;		/* of the matching SYSCALL record */
	__u64 ret;		/* RAX: the return value */
	__u64 cr3;
	__u64 rip;		/* RCX: where user mode resumes */
	__u64 rsp;
	__u64 entry_seq;	/* seq of the matching SYSCALL record */
	__u64 reserved[6];
};

#define VMI_DATA_BYTES 88

/* A slice of an argument's value, read from guest memory at the SYSCALL. */
/*
 * The MSRs the guest kernel's system-call entry depends on (VMI_TRAP_MSR).
 * Where it can (msr_mode VMI_MSR_INTERCEPT, AMD), the module makes the
 * guest's writes of them exit: every WRMSR of one, even of the value it
 * already has and even one that faults, is an INTERCEPTED record carrying
 * the written value and the RIP of the WRMSR. Besides, and alone elsewhere
 * (VMI_MSR_SAMPLED), the values are compared at every VM entry of the vCPU,
 * so a change made otherwise (e.g. by the VMM) is recorded at the first
 * entry after it (a change and its undo between two entries is not seen);
 * such records are SAMPLED.
 */
enum vmi_watched_msr {
	VMI_MSR_LSTAR = 0,	/* 64-bit SYSCALL entry */
	VMI_MSR_CSTAR = 1,	/* compat SYSCALL entry */
	VMI_MSR_SYSENTER_CS = 2,
	VMI_MSR_SYSENTER_ESP = 3,
	VMI_MSR_SYSENTER_EIP = 4,
	VMI_MSR_EFER = 5,	/* the guest's own view */
	VMI_MSR_WATCHED = 6,
};

struct vmi_record_msr {
	__u32 which;		/* enum vmi_watched_msr */
	__u32 msr;		/* its architectural number, e.g. 0xc0000082 */
	__u64 old_value;	/* 0 with VMI_RECF_FIRST */
	__u64 new_value;	/* what the MSR holds now */
	__u64 rip;		/* guest RIP at the entry that saw it, or
				 * (INTERCEPTED) that of the WRMSR
				 */
	__u64 cr3;
	/*
	 * With VMI_RECF_INTERCEPTED: EDX:EAX of the WRMSR (the CPU may keep
	 * fewer bits: AMD keeps 32 of SYSENTER_EIP/ESP, see new_value).
	 * Added in place of reserved room (0 in older modules).
	 */
	__u64 written;
};

struct vmi_record_data {
	__u16 arg;		/* argument index (0-5) the value is at */
	__u16 len;		/* valid bytes in this record */
	__u32 offset;		/* of bytes[0] in the value */
	__u8 bytes[VMI_DATA_BYTES];
};

/* Fixed-size record: 32-byte header, 96-byte payload. */
struct vmi_record {
	__u16 type;		/* enum vmi_record_type */
	__u16 flags;		/* VMI_RECF_* */
	__u32 vcpu;		/* vCPU index in the VM */
	__u64 seq;		/* per-session sequence, counts lost ones too */
	__u64 time_ns;		/* CLOCK_MONOTONIC of the host */
	__u64 task;		/* SYSCALL, SYSRET: guest task (percpu_current) */
	union {
		struct vmi_record_cr3 cr3;
		struct vmi_record_syscall sys;
		struct vmi_record_sysret sysret;
		struct vmi_record_data data;
		struct vmi_record_msr msr;
		__u64 raw[12];
	};
};

#define VMI_RECORD_SIZE 128

/* The header page at offset 0 of the session mapping. */
struct vmi_ring_header {
	__u32 version;		/* VMI_ABI_VERSION */
	__u32 record_size;	/* VMI_RECORD_SIZE */
	__u64 data_offset;	/* bytes from the mapping start to record 0 */
	__u64 nr_records;	/* ring capacity, a power of two */
	__u64 reserved0[5];
	/* written by the kernel only; own cache line */
	__u64 data_head;
	__u64 lost;		/* records dropped because the ring was full */
	__u64 reserved1[6];
	/* written by userspace only; own cache line */
	__u64 data_tail;
	__u64 reserved2[7];
};

struct vmi_attach {
	__s32 vm_fd;		/* fd of a KVM VM ("anon_inode:kvm-vm") */
	__u32 data_pages;	/* ring data pages, power of two; 0: default */
	__u32 flags;		/* none defined yet, must be 0 */
	__u32 reserved;
};

/* Session state flags. */
#define VMI_STATUS_VM_DEAD _BITUL(0)	/* only this session holds the VM */

/* How CR3 changes are seen (vmi_status.cr3_mode). */
enum vmi_cr3_mode {
	VMI_CR3_SAMPLED = 0,	/* at natural VM entries (records SAMPLED) */
	VMI_CR3_PENDING = 1,	/* exiting requested, no vCPU armed yet */
	VMI_CR3_EXITING = 2,	/* every CR3 write exits: exact records */
	VMI_CR3_FALLBACK = 3,	/* exiting refused: see cr3_fallback */
};

/* Why CR3 exiting was refused (vmi_status.cr3_fallback). */
enum vmi_cr3_fallback {
	VMI_CR3_OK = 0,
	VMI_CR3_NO_VENDOR = 1,	/* this CPU's KVM flavour is not supported */
	VMI_CR3_BAD_LAYOUT = 2,	/* the offsets handed over are implausible */
	VMI_CR3_BAD_VMCB = 3,	/* the VMCB pointer is not a VMCB page */
	VMI_CR3_NO_NPT = 4,	/* no nested paging: KVM traps CR3 itself */
	VMI_CR3_MISMATCH = 5,	/* VMCB CR3 differs from KVM's: wrong struct */
	VMI_CR3_BAD_MSRPM = 6,	/* MSR: the MSR permission map is not KVM's */
};

/* How syscalls are trapped (vmi_status.sys_mode). */
enum vmi_sys_mode {
	VMI_SYS_OFF = 0,	/* not requested */
	VMI_SYS_PENDING = 1,	/* requested, no vCPU armed yet */
	VMI_SYS_ON = 2,		/* SYSCALL and SYSRET trap where the filter says */
	VMI_SYS_REFUSED = 3,	/* see sys_fallback (enum vmi_cr3_fallback) */
};

/*
 * How the entry MSRs are watched (vmi_status.msr_mode). The first four
 * values are those of enum vmi_sys_mode, which older modules reported.
 */
enum vmi_msr_mode {
	VMI_MSR_OFF = 0,	/* not requested */
	VMI_MSR_PENDING = 1,	/* requested, no vCPU seen yet */
	VMI_MSR_SAMPLED = 2,	/* compared at VM entries only: see msr_fallback */
	VMI_MSR_REFUSED = 3,	/* see msr_fallback (enum vmi_cr3_fallback) */
	VMI_MSR_INTERCEPT = 4,	/* writes exit and are recorded as they happen */
};

struct vmi_status {
	__u64 records;		/* records written to the ring */
	__u64 lost;		/* records dropped */
	__u64 cr3_samples;	/* VM entries examined */
	__u32 nr_vcpus;		/* vCPUs the VM has now */
	__u32 flags;		/* VMI_STATUS_* */
	__u32 cr3_mode;		/* enum vmi_cr3_mode */
	__u32 cr3_fallback;	/* enum vmi_cr3_fallback */
	__u32 cr3_armed_vcpus;	/* vCPUs whose CR3 writes exit */
	__u32 sys_mode;		/* enum vmi_sys_mode */
	__u32 sys_fallback;	/* enum vmi_cr3_fallback */
	__u32 sys_armed_vcpus;	/* vCPUs whose SYSCALLs trap right now */
	__u64 syscalls;		/* SYSCALLs trapped, recorded or not */
	__u64 sysrets;		/* SYSRETs emulated */
	__u64 denied;		/* calls denied */
	__u64 retried;		/* SYSRETs left to run natively (unreadable) */
	__u64 capture_faults;	/* argument values that could not be read */
	__u64 unmatched;	/* traced calls whose SYSRET lost its match */
	__u64 sysrets_early;	/* of sysrets: done before a return to QEMU */
	__u64 exit_probe_missed;	/* returns to userspace not looked at */
	__u32 msr_mode;		/* enum vmi_msr_mode, for VMI_TRAP_MSR */
	__u32 msr_fallback;	/* enum vmi_cr3_fallback: why not intercepted */
	__u64 msr_changes;	/* MSR records after each vCPU's first */
};

/*
 * Offsets into KVM's private vCPU structs, resolved by userspace from the
 * vendor module's BTF (/sys/kernel/btf/kvm_amd). The module checks each at
 * run time against what KVM itself reports and refuses what does not fit.
 */
#define VMI_VENDOR_AMD 1
#define VMI_VENDOR_INTEL 2

struct vmi_kvm_layout {
	__u32 vendor;		/* VMI_VENDOR_* */
	__u32 reserved;
	__u64 svm_vmcb;		/* AMD: offsetof(struct vcpu_svm, vmcb) */
	__u64 vmx_loaded_vmcs;	/* Intel: offsetof(struct vcpu_vmx, loaded_vmcs) */
	__u64 vmx_controls;	/* Intel: offsetof(struct loaded_vmcs, controls_shadow) */
	__u64 vmx_seg_cache;	/* Intel: offsetof(struct vcpu_vmx, segment_cache) */
	__u64 reserved2[3];
};

/* Traps requested with VMI_IOC_SET_TRAPS. */
#define VMI_TRAP_CR3 _BITUL(0)	/* make CR3 writes exit: exact records */
#define VMI_TRAP_SYSCALL _BITUL(1)	/* trap syscalls as VMI_IOC_SET_FILTER says */
#define VMI_TRAP_MSR _BITUL(2)	/* record writes and changes of the entry MSRs */

struct vmi_traps {
	__u32 flags;		/* VMI_TRAP_* */
	__u32 reserved;
	struct vmi_kvm_layout layout;
};

/*
 * Which syscalls are trapped, recorded and denied (VMI_IOC_SET_FILTER), for
 * which address spaces. Replaced as a whole at any time, without detaching:
 * records written after the ioctl returns (past data_head then) follow the
 * new filter; vCPUs arm or disarm at their next VM entry. An empty filter traps nothing, so a
 * quiet policy costs the guest nothing.
 *
 * Syscalls trap only in address spaces inside the scope (CR3 values are
 * compared without PCID and KPTI bits); deny acts inside the scope too.
 */
#define VMI_NR_SYSCALLS 512
#define VMI_FILTER_MAX_CR3 32
#define VMI_FILTER_MAX_DENY_CR3 16
#define VMI_EXEC_PATHS_MAX 4096
#define VMI_CAPTURE_MAX 256

enum vmi_scope {
	VMI_SCOPE_ALL = 0,	/* every address space */
	VMI_SCOPE_ONLY = 1,	/* only those in cr3[] */
	VMI_SCOPE_EXCEPT = 2,	/* all but those in cr3[] */
};

/*
 * Load-time execution control on execve/execveat's path, as passed. A path
 * in exec_paths ending in '*' matches every path starting with what precedes
 * the '*'.
 */
enum vmi_exec_mode {
	VMI_EXEC_ANY = 0,
	VMI_EXEC_DENY_LISTED = 1,	/* deny the paths in exec_paths */
	VMI_EXEC_ALLOW_LISTED = 2,	/* deny all other paths */
};

/*
 * capture[nr]: which argument's value follows the record as DATA records.
 * Bits 0-2: argument index + 1 of a pointer (0: nothing); bit 3: a
 * NUL-terminated string, else a buffer whose length is in the argument at
 * bits 4-6 (index + 1). At most VMI_CAPTURE_MAX bytes are read.
 */
#define VMI_CAPTURE_PTR(c) ((c) & 0x7)
#define VMI_CAPTURE_STRING 0x08
#define VMI_CAPTURE_LEN(c) (((c) >> 4) & 0x7)
/*
 * Bit 7: the argument after the pointer is an argv-style vector (execve's
 * argv); its strings follow too, as VMI_RECF_ARGV DATA records (at most 32
 * strings, VMI_CAPTURE_MAX bytes).
 */
#define VMI_CAPTURE_ARGV 0x80

struct vmi_syscall_filter {
	__u32 scope;		/* enum vmi_scope over cr3[] */
	__u32 nr_cr3;		/* entries used in cr3[] */
	__u32 nr_deny_cr3;	/* 0: deny[] holds for the whole scope */
	__u32 exec_mode;	/* enum vmi_exec_mode */
	__s32 deny_errno;	/* positive errno of denied calls; 0: EPERM */
	__u32 exec_paths_len;	/* bytes at exec_paths */
	__u64 exec_paths;	/* user pointer: NUL-terminated paths in a row */
	__u64 trace[VMI_NR_SYSCALLS / 64];	/* numbers to record */
	__u64 deny[VMI_NR_SYSCALLS / 64];	/* numbers to deny */
	__u64 cr3[VMI_FILTER_MAX_CR3];
	__u64 deny_cr3[VMI_FILTER_MAX_DENY_CR3];	/* deny only for these */
	__u8 capture[VMI_NR_SYSCALLS];
	/*
	 * Where the guest kernel keeps its current task pointer: an offset into
	 * its per-CPU area (GS base in kernel mode; from the kernel's BTF, e.g.
	 * the per-CPU variable current_task). 0: records carry no task.
	 */
	__u64 percpu_current;
	__u32 task_tgid;	/* offsetof(struct task_struct, tgid); 0: skip */
	__u32 task_comm;	/* offsetof(struct task_struct, comm); 0: skip */
	__u64 reserved[2];
};

/* One guest-physical range backed by QEMU's memory (KVM memslot). */
struct vmi_memslot {
	__u64 gpa;		/* guest-physical start */
	__u64 size;		/* bytes */
	__u64 hva;		/* start in the VM owner's (QEMU's) address space */
	__u32 flags;		/* KVM_MEM_* of the slot */
	__u32 reserved;
};

struct vmi_memslots {
	__u32 count;		/* in: entries at slots; out: slots present */
	__u32 reserved;
	__u64 generation;	/* changes whenever the memory map changes */
	__u64 slots;		/* user pointer to struct vmi_memslot[count] */
};

#define VMI_IOC_MAGIC 0xB7
/* On /dev/vminsight: returns a session fd. */
#define VMI_IOC_ATTACH		_IOW(VMI_IOC_MAGIC, 0x01, struct vmi_attach)
/* On a session fd. */
#define VMI_IOC_STATUS		_IOR(VMI_IOC_MAGIC, 0x10, struct vmi_status)
#define VMI_IOC_MEMSLOTS	_IOWR(VMI_IOC_MAGIC, 0x11, struct vmi_memslots)
#define VMI_IOC_SET_TRAPS	_IOW(VMI_IOC_MAGIC, 0x12, struct vmi_traps)
#define VMI_IOC_SET_FILTER	_IOW(VMI_IOC_MAGIC, 0x13, struct vmi_syscall_filter)

#endif /* _UAPI_VMINSIGHT_H */
