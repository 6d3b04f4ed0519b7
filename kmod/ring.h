/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ring.h - the per-session record ring shared with userspace by mmap.
 */
#ifndef VMI_RING_H
#define VMI_RING_H

#include <linux/spinlock.h>
#include <linux/types.h>

#include "uapi/vminsight.h"

struct vm_area_struct;

struct vmi_ring {
	void *mem;			/* vmalloc_user: header page + data */
	struct vmi_ring_header *hdr;
	struct vmi_record *records;
	u64 nr_records;			/* power of two */
	size_t size;			/* bytes mapped */
	raw_spinlock_t lock;		/* producers (vCPUs), IRQs off; RT-safe */
	u64 head;			/* authoritative, never read back */
	u64 lost;			/* likewise */
	u64 tail_cache;			/* last data_tail read */
};

int vmi_ring_init(struct vmi_ring *ring, u32 data_pages);
void vmi_ring_free(struct vmi_ring *ring);
int vmi_ring_mmap(struct vmi_ring *ring, struct vm_area_struct *vma);

/*
 * Reserve a slot, fill it with @rec (seq is assigned here) and publish it.
 * Returns false when the ring was full and the record was counted as lost.
 * Callable from any context.
 */
bool vmi_ring_write(struct vmi_ring *ring, struct vmi_record *rec);
/* The same for @n records written together: all of them, or all lost. */
bool vmi_ring_write_n(struct vmi_ring *ring, struct vmi_record *recs,
		      unsigned int n);
bool vmi_ring_has_data(struct vmi_ring *ring);

#endif /* VMI_RING_H */
