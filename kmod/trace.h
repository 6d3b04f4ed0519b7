/* SPDX-License-Identifier: GPL-2.0 */
/*
 * trace.h - a tracepoint mirror of the ring's records, so perf and
 * trace-cmd can watch what vminsight.ko sees (events/vminsight/).
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM vminsight

#if !defined(VMI_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define VMI_TRACE_H

#include <linux/tracepoint.h>

#include "uapi/vminsight.h"

TRACE_EVENT(vminsight_cr3,
	    TP_PROTO(const struct vmi_record *rec, pid_t vm_pid, bool lost),
	    TP_ARGS(rec, vm_pid, lost),
	    TP_STRUCT__entry(__field(pid_t, vm_pid)
			     __field(u32, vcpu)
			     __field(u64, seq)
			     __field(u64, old_cr3)
			     __field(u64, new_cr3)
			     __field(u16, flags)
			     __field(bool, lost)),
	    TP_fast_assign(__entry->vm_pid = vm_pid;
			   __entry->vcpu = rec->vcpu;
			   __entry->seq = rec->seq;
			   __entry->old_cr3 = rec->cr3.old_cr3;
			   __entry->new_cr3 = rec->cr3.new_cr3;
			   __entry->flags = rec->flags;
			   __entry->lost = lost;),
	    TP_printk("vm %d vcpu %u seq %llu cr3 0x%llx -> 0x%llx%s%s",
		      __entry->vm_pid, __entry->vcpu, __entry->seq,
		      __entry->old_cr3, __entry->new_cr3,
		      __entry->flags & VMI_RECF_SAMPLED ? " sampled" : "",
		      __entry->lost ? " lost" : "")
);

TRACE_EVENT(vminsight_syscall,
	    TP_PROTO(const struct vmi_record *rec, pid_t vm_pid, bool lost),
	    TP_ARGS(rec, vm_pid, lost),
	    TP_STRUCT__entry(__field(pid_t, vm_pid)
			     __field(u32, vcpu)
			     __field(u64, seq)
			     __field(u64, nr)
			     __array(u64, args, 6)
			     __field(u64, cr3)
			     __field(u64, rip)
			     __field(u16, flags)
			     __field(bool, lost)),
	    TP_fast_assign(__entry->vm_pid = vm_pid;
			   __entry->vcpu = rec->vcpu;
			   __entry->seq = rec->seq;
			   __entry->nr = rec->sys.nr;
			   memcpy(__entry->args, rec->sys.args,
				  sizeof(__entry->args));
			   __entry->cr3 = rec->sys.cr3;
			   __entry->rip = rec->sys.rip;
			   __entry->flags = rec->flags;
			   __entry->lost = lost;),
	    TP_printk("vm %d vcpu %u seq %llu nr %llu (0x%llx, 0x%llx, 0x%llx, 0x%llx, 0x%llx, 0x%llx) cr3 0x%llx rip 0x%llx%s%s",
		      __entry->vm_pid, __entry->vcpu, __entry->seq,
		      __entry->nr, __entry->args[0], __entry->args[1],
		      __entry->args[2], __entry->args[3], __entry->args[4],
		      __entry->args[5], __entry->cr3, __entry->rip,
		      __entry->flags & VMI_RECF_DENIED ? " denied" : "",
		      __entry->lost ? " lost" : "")
);

TRACE_EVENT(vminsight_sysret,
	    TP_PROTO(const struct vmi_record *rec, pid_t vm_pid, bool lost),
	    TP_ARGS(rec, vm_pid, lost),
	    TP_STRUCT__entry(__field(pid_t, vm_pid)
			     __field(u32, vcpu)
			     __field(u64, seq)
			     __field(u64, nr)
			     __field(s64, ret)
			     __field(u64, cr3)
			     __field(bool, lost)),
	    TP_fast_assign(__entry->vm_pid = vm_pid;
			   __entry->vcpu = rec->vcpu;
			   __entry->seq = rec->seq;
			   __entry->nr = rec->sysret.nr;
			   __entry->ret = rec->sysret.ret;
			   __entry->cr3 = rec->sysret.cr3;
			   __entry->lost = lost;),
	    TP_printk("vm %d vcpu %u seq %llu nr %llu = %lld cr3 0x%llx%s",
		      __entry->vm_pid, __entry->vcpu, __entry->seq,
		      __entry->nr, __entry->ret, __entry->cr3,
		      __entry->lost ? " lost" : "")
);

#endif /* VMI_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#define TRACE_INCLUDE_FILE trace
#include <trace/define_trace.h>
