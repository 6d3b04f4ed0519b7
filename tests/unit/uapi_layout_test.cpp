// Pins the kernel/userspace contract: any change to these numbers breaks the ABI.
#include <cstddef>

#include <gtest/gtest.h>

#include "vminsight.h"

TEST(UapiLayout, RecordIsFixed128Bytes) {
    EXPECT_EQ(sizeof(vmi_record), 128u);
    EXPECT_EQ(VMI_RECORD_SIZE, 128);
    EXPECT_EQ(offsetof(vmi_record, type), 0u);
    EXPECT_EQ(offsetof(vmi_record, flags), 2u);
    EXPECT_EQ(offsetof(vmi_record, vcpu), 4u);
    EXPECT_EQ(offsetof(vmi_record, seq), 8u);
    EXPECT_EQ(offsetof(vmi_record, time_ns), 16u);
    EXPECT_EQ(offsetof(vmi_record, cr3), 32u);
    EXPECT_EQ(offsetof(vmi_record, cr3.old_cr3), 32u);
    EXPECT_EQ(offsetof(vmi_record, cr3.new_cr3), 40u);
    EXPECT_EQ(offsetof(vmi_record, raw), 32u);
    // Syscall records fill the 96-byte payload exactly.
    EXPECT_EQ(sizeof(vmi_record_syscall), 96u);
    EXPECT_EQ(offsetof(vmi_record, sys.nr), 32u);
    EXPECT_EQ(offsetof(vmi_record, sys.args), 40u);
    EXPECT_EQ(offsetof(vmi_record, sys.cr3), 88u);
    EXPECT_EQ(offsetof(vmi_record, sys.tgid), 104u);
    EXPECT_EQ(offsetof(vmi_record, sys.data_records), 108u);
    EXPECT_EQ(offsetof(vmi_record, sys.comm), 112u);
    EXPECT_EQ(sizeof(vmi_record_sysret), 96u);
    EXPECT_EQ(offsetof(vmi_record, sysret.entry_seq), 72u);
    EXPECT_EQ(sizeof(vmi_record_data), 96u);
    EXPECT_EQ(offsetof(vmi_record, data.bytes), 40u);
    // The written value of an intercepted WRMSR came later, in room the payload had.
    EXPECT_EQ(sizeof(vmi_record_msr), 48u);
    EXPECT_EQ(offsetof(vmi_record, msr.new_value), 48u);
    EXPECT_EQ(offsetof(vmi_record, msr.cr3), 64u);
    EXPECT_EQ(offsetof(vmi_record, msr.written), 72u);
    EXPECT_EQ(VMI_RECF_INTERCEPTED, 1u << 7);
    // msr_mode's first values are those of enum vmi_sys_mode older modules reported.
    EXPECT_EQ(VMI_MSR_SAMPLED, VMI_SYS_ON);
    EXPECT_EQ(VMI_MSR_REFUSED, VMI_SYS_REFUSED);
    EXPECT_EQ(VMI_MSR_INTERCEPT, 4);
}

TEST(UapiLayout, RingHeaderKeepsWritersOnSeparateCacheLines) {
    EXPECT_EQ(offsetof(vmi_ring_header, version), 0u);
    EXPECT_EQ(offsetof(vmi_ring_header, record_size), 4u);
    EXPECT_EQ(offsetof(vmi_ring_header, data_offset), 8u);
    EXPECT_EQ(offsetof(vmi_ring_header, nr_records), 16u);
    EXPECT_EQ(offsetof(vmi_ring_header, data_head), 64u);
    EXPECT_EQ(offsetof(vmi_ring_header, lost), 72u);
    EXPECT_EQ(offsetof(vmi_ring_header, data_tail), 128u);
    EXPECT_EQ(sizeof(vmi_ring_header), 192u);
}

TEST(UapiLayout, IoctlStructsAndNumbers) {
    EXPECT_EQ(sizeof(vmi_attach), 16u);
    EXPECT_EQ(sizeof(vmi_status), 136u);
    EXPECT_EQ(offsetof(vmi_status, cr3_mode), 32u);
    EXPECT_EQ(offsetof(vmi_status, cr3_fallback), 36u);
    EXPECT_EQ(offsetof(vmi_status, cr3_armed_vcpus), 40u);
    EXPECT_EQ(offsetof(vmi_status, sys_mode), 44u);
    EXPECT_EQ(offsetof(vmi_status, syscalls), 56u);
    EXPECT_EQ(offsetof(vmi_status, unmatched), 96u);
    EXPECT_EQ(offsetof(vmi_status, sysrets_early), 104u);
    EXPECT_EQ(offsetof(vmi_status, msr_mode), 120u);
    EXPECT_EQ(offsetof(vmi_status, msr_changes), 128u);
    EXPECT_EQ(sizeof(vmi_syscall_filter), 1088u);
    EXPECT_EQ(offsetof(vmi_syscall_filter, exec_paths), 24u);
    EXPECT_EQ(offsetof(vmi_syscall_filter, trace), 32u);
    EXPECT_EQ(offsetof(vmi_syscall_filter, capture), 544u);
    EXPECT_EQ(sizeof(vmi_kvm_layout), 64u);
    EXPECT_EQ(offsetof(vmi_kvm_layout, svm_vmcb), 8u);
    EXPECT_EQ(offsetof(vmi_kvm_layout, vmx_loaded_vmcs), 16u);
    EXPECT_EQ(offsetof(vmi_kvm_layout, vmx_seg_cache), 32u);
    EXPECT_EQ(sizeof(vmi_traps), 72u);
    EXPECT_EQ(offsetof(vmi_traps, layout), 8u);
    EXPECT_EQ(sizeof(vmi_memslot), 32u);
    EXPECT_EQ(sizeof(vmi_memslots), 24u);
    EXPECT_EQ(VMI_IOC_ATTACH, 0x4010B701u);
    EXPECT_EQ(VMI_IOC_STATUS, 0x8088B710u);
    EXPECT_EQ(VMI_IOC_MEMSLOTS, 0xC018B711u);
    EXPECT_EQ(VMI_IOC_SET_TRAPS, 0x4048B712u);
    EXPECT_EQ(VMI_IOC_SET_FILTER, 0x4440B713u);
}
