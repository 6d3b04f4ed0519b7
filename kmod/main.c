// SPDX-License-Identifier: GPL-2.0
/*
 * main.c - vminsight.ko: the /dev/vminsight control device.
 *
 * vminsight.ko records what KVM guests do (address-space switches and
 * syscalls) into per-VM rings that vminsightd maps. The device is root only;
 * its one ioctl attaches to a VM and returns a session fd (session.c).
 */
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/fs.h>
#include <linux/uaccess.h>

#include "session.h"
#include "uapi/vminsight.h"

static long vmi_dev_ioctl(struct file *file, unsigned int cmd,
			  unsigned long arg)
{
	struct vmi_attach attach;

	switch (cmd) {
	case VMI_IOC_ATTACH:
		if (copy_from_user(&attach, (void __user *)arg, sizeof(attach)))
			return -EFAULT;
		return vmi_session_attach(&attach);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations vmi_dev_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = vmi_dev_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice vmi_dev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "vminsight",
	.fops = &vmi_dev_fops,
	.mode = 0600,
};

static int __init vmi_init(void)
{
	int ret = vmi_sessions_init();

	if (ret)
		return ret;
	ret = misc_register(&vmi_dev);
	if (ret) {
		pr_err("vminsight: cannot register /dev/vminsight: %d\n", ret);
		vmi_sessions_exit();
	}
	return ret;
}

static void __exit vmi_exit(void)
{
	misc_deregister(&vmi_dev);
	vmi_sessions_exit();
}

module_init(vmi_init);
module_exit(vmi_exit);

MODULE_DESCRIPTION("VMInsight: agentless process monitoring of KVM guests");
MODULE_AUTHOR("VMInsight developers");
MODULE_LICENSE("GPL");
MODULE_SOFTDEP("pre: kvm");
