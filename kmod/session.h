/* SPDX-License-Identifier: GPL-2.0 */
/*
 * session.h - one attachment of vminsight.ko to one VM.
 *
 * A session is an anonymous file returned by VMI_IOC_ATTACH: its lifetime
 * is the file's. It holds a reference on the VM (so the VM outlives QEMU
 * until the daemon lets go) and on this module (so rmmod fails with EBUSY
 * instead of pulling probes from under an attached VM).
 */
#ifndef VMI_SESSION_H
#define VMI_SESSION_H

#include <linux/types.h>

struct kvm;
struct kvm_vcpu;
struct vmi_attach;

/* Attach to the VM behind attach->vm_fd; returns a session fd or -errno. */
int vmi_session_attach(const struct vmi_attach *attach);

/* Called for every VM entry of every VM while any session exists. */
void vmi_session_on_vm_entry(struct kvm_vcpu *vcpu);

/* Module exit: every session file is closed by now (module refcount). */
void vmi_sessions_exit(void);

#endif /* VMI_SESSION_H */
