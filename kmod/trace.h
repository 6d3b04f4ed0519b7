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

#endif /* VMI_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#define TRACE_INCLUDE_FILE trace
#include <trace/define_trace.h>
