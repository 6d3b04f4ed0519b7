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

#define VMI_ABI_VERSION 1
#define VMI_DEVICE_PATH "/dev/vminsight"

/* Record types. */
enum vmi_record_type {
	VMI_REC_NONE = 0,
	VMI_REC_CR3 = 1,	/* a vCPU's CR3 differs from the last one seen */
};

/*
 * Record flags. SAMPLED: the CR3 was seen at a natural VM entry rather than
 * at the write itself, so writes between two entries were missed.
 */
#define VMI_RECF_SAMPLED _BITUL(0)

struct vmi_record_cr3 {
	__u64 old_cr3;		/* 0 on a vCPU's first record */
	__u64 new_cr3;
};

/* Fixed-size record: 32-byte header, 96-byte payload. */
struct vmi_record {
	__u16 type;		/* enum vmi_record_type */
	__u16 flags;		/* VMI_RECF_* */
	__u32 vcpu;		/* vCPU index in the VM */
	__u64 seq;		/* per-session sequence, counts lost ones too */
	__u64 time_ns;		/* CLOCK_MONOTONIC of the host */
	__u64 reserved;
	union {
		struct vmi_record_cr3 cr3;
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
	__u32 reserved0;
	__u64 reserved[2];
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
	__u64 reserved2[6];
};

/* Traps requested with VMI_IOC_SET_TRAPS. */
#define VMI_TRAP_CR3 _BITUL(0)	/* make CR3 writes exit: exact records */

struct vmi_traps {
	__u32 flags;		/* VMI_TRAP_* */
	__u32 reserved;
	struct vmi_kvm_layout layout;
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

#endif /* _UAPI_VMINSIGHT_H */
