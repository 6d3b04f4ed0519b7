// SPDX-License-Identifier: GPL-2.0
/*
 * ring.c - fixed-size record ring with a perf-style header page.
 *
 * The kernel keeps its own copies of head and lost and only publishes them
 * to the shared page, so a reader scribbling on the header can confuse
 * itself but never the kernel. data_tail is read from the shared page and
 * treated as hostile: any value that does not leave room counts as full.
 */
#include <linux/mm.h>
#include <linux/vmalloc.h>
#include <linux/log2.h>

#include "ring.h"

#define VMI_RING_DEFAULT_PAGES 256	/* 1 MiB: 8192 records */
#define VMI_RING_MAX_PAGES 8192		/* 32 MiB */

int vmi_ring_init(struct vmi_ring *ring, u32 data_pages)
{
	if (!data_pages)
		data_pages = VMI_RING_DEFAULT_PAGES;
	if (!is_power_of_2(data_pages) || data_pages > VMI_RING_MAX_PAGES)
		return -EINVAL;

	ring->size = (size_t)(1 + data_pages) * PAGE_SIZE;
	ring->mem = vmalloc_user(ring->size);
	if (!ring->mem)
		return -ENOMEM;

	ring->hdr = ring->mem;
	ring->records = ring->mem + PAGE_SIZE;
	ring->nr_records = (u64)data_pages * PAGE_SIZE / VMI_RECORD_SIZE;
	ring->head = 0;
	ring->lost = 0;
	ring->tail_cache = 0;
	raw_spin_lock_init(&ring->lock);

	ring->hdr->version = VMI_ABI_VERSION;
	ring->hdr->record_size = VMI_RECORD_SIZE;
	ring->hdr->data_offset = PAGE_SIZE;
	ring->hdr->nr_records = ring->nr_records;
	return 0;
}

void vmi_ring_free(struct vmi_ring *ring)
{
	vfree(ring->mem);
	ring->mem = NULL;
}

int vmi_ring_mmap(struct vmi_ring *ring, struct vm_area_struct *vma)
{
	/* A shorter mapping lets a reader map the header alone first. */
	if (vma->vm_pgoff != 0 || vma->vm_end - vma->vm_start > ring->size)
		return -EINVAL;
	/* A private copy would hide the reader's tail from us. */
	if (!(vma->vm_flags & VM_SHARED) || (vma->vm_flags & VM_EXEC))
		return -EPERM;
	return remap_vmalloc_range(vma, ring->mem, 0);
}

bool vmi_ring_write_n(struct vmi_ring *ring, struct vmi_record *recs,
		      unsigned int n)
{
	unsigned long flags;
	unsigned int i;
	u64 tail;
	bool ok;

	raw_spin_lock_irqsave(&ring->lock, flags);
	/*
	 * Re-read the reader's tail only when the cached one says full, so
	 * the shared cache line is not pulled over on every record.
	 */
	ok = ring->head + n - ring->tail_cache <= ring->nr_records;
	if (!ok) {
		/* Pairs with the reader's store-release: it is done with those slots. */
		tail = smp_load_acquire(&ring->hdr->data_tail);
		ring->tail_cache = tail;
		ok = ring->head + n - tail <= ring->nr_records;
	}
	for (i = 0; i < n; i++) {
		recs[i].seq = ring->head + ring->lost;
		if (ok) {
			ring->records[ring->head & (ring->nr_records - 1)] = recs[i];
			ring->head++;
		} else {
			ring->lost++;
		}
	}
	if (ok)
		/* Record contents before the new head. */
		smp_store_release(&ring->hdr->data_head, ring->head);
	else
		WRITE_ONCE(ring->hdr->lost, ring->lost);
	raw_spin_unlock_irqrestore(&ring->lock, flags);
	return ok;
}

bool vmi_ring_write(struct vmi_ring *ring, struct vmi_record *rec)
{
	return vmi_ring_write_n(ring, rec, 1);
}

bool vmi_ring_has_data(struct vmi_ring *ring)
{
	return READ_ONCE(ring->head) != READ_ONCE(ring->hdr->data_tail);
}
