/* SPDX-License-Identifier: GPL-2.0 */
/*
 * guest_mem.h - read guest virtual memory on the way into the guest.
 *
 * A bounded x86-64 page walk (4 or 5 levels, 2 MiB and 1 GiB pages) over
 * the guest's own page tables, without sleeping and without touching
 * accessed or dirty bits. Guest memory is hostile: every read is checked,
 * nothing loops more than the paging levels and the caller's length.
 */
#ifndef VMI_GUEST_MEM_H
#define VMI_GUEST_MEM_H

#include <linux/types.h>

struct kvm_vcpu;

/* Whether @va is canonical for 4-level (48-bit) or 5-level (57-bit) paging. */
static inline bool vmi_va_canonical(u64 va, bool la57)
{
	unsigned int shift = la57 ? 64 - 57 : 64 - 48;

	return (u64)((s64)(va << shift) >> shift) == va;
}

/* Where virtual addresses are translated: a CR3 and its paging depth. */
struct vmi_aspace {
	struct kvm_vcpu *vcpu;
	u64 cr3;
	bool la57;
};

/* Translate @gva; 0 or -EFAULT (unreadable) / -ENOENT (not mapped). */
int vmi_guest_translate(const struct vmi_aspace *as, u64 gva, u64 *gpa);

/* Copy @len bytes at @gva; 0 or -errno. */
int vmi_guest_read(const struct vmi_aspace *as, u64 gva, void *buf, u32 len);

/*
 * Copy the NUL-terminated string at @gva, at most @max bytes without the
 * NUL. Returns its length copied, or -errno if nothing could be read;
 * *@truncated says it goes on (longer than @max, or unreadable past the
 * bytes returned).
 */
int vmi_guest_read_str(const struct vmi_aspace *as, u64 gva, char *buf,
		       u32 max, bool *truncated);

#endif /* VMI_GUEST_MEM_H */
