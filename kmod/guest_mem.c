// SPDX-License-Identifier: GPL-2.0
/*
 * guest_mem.c - guest page walks and reads for the syscall traps.
 */
#include <linux/bits.h>
#include <linux/errno.h>
#include <linux/minmax.h>
#include <linux/string.h>

#include "guest_mem.h"
#include "kvm_shim.h"

#define VMI_PTE_PRESENT BIT_ULL(0)
#define VMI_PTE_LARGE BIT_ULL(7)
#define VMI_PTE_ADDR GENMASK_ULL(51, 12)
#define VMI_PAGE_SIZE 4096u

int vmi_guest_translate(const struct vmi_aspace *as, u64 gva, u64 *gpa)
{
	u64 table = as->cr3 & VMI_PTE_ADDR;
	int level = as->la57 ? 5 : 4;
	unsigned int shift;
	u64 pte, mask;

	if (!vmi_va_canonical(gva, as->la57))
		return -ENOENT;
	for (; level >= 1; level--) {
		shift = 12 + 9 * (level - 1);
		if (vmi_vcpu_read_gpa(as->vcpu, table + ((gva >> shift) & 511) * 8,
				      &pte, sizeof(pte)))
			return -EFAULT;
		if (!(pte & VMI_PTE_PRESENT))
			return -ENOENT;
		/* 1 GiB (level 3) and 2 MiB (level 2) pages; PS is reserved above. */
		if (level == 1 || (level <= 3 && (pte & VMI_PTE_LARGE))) {
			mask = BIT_ULL(shift) - 1;
			*gpa = (pte & VMI_PTE_ADDR & ~mask) | (gva & mask);
			return 0;
		}
		if (pte & VMI_PTE_LARGE)
			return -ENOENT;
		table = pte & VMI_PTE_ADDR;
	}
	return -ENOENT;
}

int vmi_guest_read(const struct vmi_aspace *as, u64 gva, void *buf, u32 len)
{
	u8 *out = buf;
	u32 chunk;
	u64 gpa;
	int ret;

	while (len) {
		chunk = min_t(u32, len, VMI_PAGE_SIZE - (gva & (VMI_PAGE_SIZE - 1)));
		ret = vmi_guest_translate(as, gva, &gpa);
		if (!ret)
			ret = vmi_vcpu_read_gpa(as->vcpu, gpa, out, chunk);
		if (ret)
			return ret;
		out += chunk;
		gva += chunk;
		len -= chunk;
	}
	return 0;
}

int vmi_guest_read_str(const struct vmi_aspace *as, u64 gva, char *buf,
		       u32 max, bool *truncated)
{
	u32 got = 0, chunk;
	char *nul;
	int ret;

	*truncated = false;
	while (got < max) {
		chunk = min_t(u32, max - got,
			      VMI_PAGE_SIZE - (gva & (VMI_PAGE_SIZE - 1)));
		ret = vmi_guest_read(as, gva, buf + got, chunk);
		if (ret) {
			if (!got)
				return ret;
			*truncated = true;
			return got;
		}
		nul = memchr(buf + got, 0, chunk);
		if (nul)
			return got + (nul - (buf + got));
		got += chunk;
		gva += chunk;
	}
	/* Full: truncated unless the very next byte ends it. */
	*truncated = true;
	return got;
}
