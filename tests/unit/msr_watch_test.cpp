// MsrWatch: what the module's MSR records say about the guest's system-call entry.
#include <gtest/gtest.h>

#include "msr_watch.hpp"

namespace {

using vmid::MsrWatch;

constexpr std::uint64_t kEntry = 0xffffffff81a00080ULL, kHook = 0xffffffffc0a01000ULL;
constexpr std::uint64_t kEfer = 0xd01;  // LME | LMA | SCE | NXE

vmi_record msr(std::uint32_t vcpu, std::uint32_t which, std::uint64_t old_value,
               std::uint64_t new_value, bool first = false) {
    vmi_record r{};
    r.type = VMI_REC_MSR;
    r.flags = VMI_RECF_SAMPLED | (first ? VMI_RECF_FIRST : 0);
    r.vcpu = vcpu;
    r.msr.which = which;
    r.msr.msr = which == VMI_MSR_LSTAR ? 0xc0000082 : 0;
    r.msr.old_value = old_value;
    r.msr.new_value = new_value;
    r.msr.rip = 0xffffffff81000000ULL;
    return r;
}

TEST(MsrWatch, ARedirectedLstarIsAFindingOnEveryVcpuThatShowsIt) {
    MsrWatch w;
    EXPECT_FALSE(w.feed(msr(0, VMI_MSR_LSTAR, 0, kEntry, true)));
    EXPECT_FALSE(w.feed(msr(1, VMI_MSR_LSTAR, 0, kEntry, true)));
    const auto f = w.feed(msr(1, VMI_MSR_LSTAR, kEntry, kHook));
    ASSERT_TRUE(f);
    EXPECT_EQ(f->target, "LSTAR");
    EXPECT_EQ(f->msr, 0xc0000082u);
    EXPECT_EQ(f->expected, kEntry);
    EXPECT_EQ(f->actual, kHook);
    EXPECT_EQ(f->previous, kEntry);
    EXPECT_EQ(f->vcpu, 1u);
    // The rootkit's first sight on another vCPU is judged against the legitimate value too.
    const auto g = w.feed(msr(2, VMI_MSR_LSTAR, 0, kHook, true));
    ASSERT_TRUE(g);
    EXPECT_EQ(g->previous, 0u);
    // Restored: quiet again.
    EXPECT_FALSE(w.feed(msr(1, VMI_MSR_LSTAR, kHook, kEntry)));
    EXPECT_EQ(w.seen(), 5u);
}

TEST(MsrWatch, AVcpuComingUpThroughZeroIsNotAFinding) {
    MsrWatch w;
    EXPECT_FALSE(w.feed(msr(0, VMI_MSR_LSTAR, 0, kEntry, true)));
    // Hotplug or reset: a vCPU first seen before the kernel set it up, then set up.
    EXPECT_FALSE(w.feed(msr(3, VMI_MSR_LSTAR, 0, 0, true)));
    EXPECT_FALSE(w.feed(msr(3, VMI_MSR_LSTAR, 0, kEntry)));
    EXPECT_FALSE(w.feed(msr(0, VMI_MSR_LSTAR, kEntry, 0)));  // reset
    EXPECT_FALSE(w.feed(msr(0, VMI_MSR_LSTAR, 0, kEntry)));
}

TEST(MsrWatch, SysenterEspIsPerVcpu) {
    MsrWatch w;
    EXPECT_FALSE(w.feed(msr(0, VMI_MSR_SYSENTER_ESP, 0, 0xfffffe0000001000ULL, true)));
    EXPECT_FALSE(w.feed(msr(1, VMI_MSR_SYSENTER_ESP, 0, 0xfffffe0000040000ULL, true)));
    EXPECT_TRUE(w.feed(msr(1, VMI_MSR_SYSENTER_ESP, 0xfffffe0000040000ULL, 0x1000)));
}

// Seen in the lab after CPU hotplug: the VMCB held 32 bits of SYSENTER_ESP/EIP (as KVM writes
// them), then all 64 the guest wrote. The same low half is the same value on AMD.
TEST(MsrWatch, SysenterIsJudgedOnItsLow32Bits) {
    MsrWatch w;
    EXPECT_FALSE(w.feed(msr(0, VMI_MSR_SYSENTER_ESP, 0, 0x7e3a0000ULL, true)));
    EXPECT_FALSE(w.feed(msr(0, VMI_MSR_SYSENTER_ESP, 0x7e3a0000ULL, 0xfffffe657e3a0000ULL)));
    EXPECT_FALSE(w.feed(msr(0, VMI_MSR_SYSENTER_EIP, 0, 0xa3201ff0ULL, true)));
    EXPECT_FALSE(w.feed(msr(0, VMI_MSR_SYSENTER_EIP, 0xa3201ff0ULL, 0xffffffffa3201ff0ULL)));
    const auto f = w.feed(msr(0, VMI_MSR_SYSENTER_EIP, 0xa3201ff0ULL, 0xffffffffc0a01000ULL));
    ASSERT_TRUE(f);
    EXPECT_EQ(f->target, "SYSENTER_EIP");
}

TEST(MsrWatch, EferIsJudgedOnNxAndSceOnly) {
    MsrWatch w;
    EXPECT_FALSE(w.feed(msr(0, VMI_MSR_EFER, 0, kEfer, true)));
    EXPECT_FALSE(w.feed(msr(0, VMI_MSR_EFER, kEfer, kEfer | (1 << 12))));       // SVME: nested VMs
    const auto f = w.feed(msr(0, VMI_MSR_EFER, kEfer, kEfer & ~(1ULL << 11)));  // NX off
    ASSERT_TRUE(f);
    EXPECT_EQ(f->target, "EFER");
}

TEST(MsrWatch, OtherRecordsAndUnknownMsrsAreCountedNotJudged) {
    MsrWatch w;
    vmi_record cr3{};
    cr3.type = VMI_REC_CR3;
    EXPECT_FALSE(w.feed(cr3));
    EXPECT_FALSE(w.feed(msr(0, VMI_MSR_WATCHED, 0, 1, true)));
    EXPECT_EQ(w.malformed(), 2u);
    EXPECT_EQ(w.seen(), 0u);
}

// An intercepted WRMSR: the record carries the writer's RIP and what EDX:EAX held.
vmi_record wrmsr(std::uint32_t vcpu, std::uint32_t which, std::uint64_t old_value,
                 std::uint64_t new_value, std::uint64_t writer, bool faulted = false) {
    vmi_record r = msr(vcpu, which, old_value, new_value);
    r.flags = VMI_RECF_INTERCEPTED | (faulted ? VMI_RECF_FAULT : 0);
    r.msr.rip = writer;
    r.msr.written = new_value;
    return r;
}

TEST(MsrWatch, AnInterceptedLstarWriteNamesItsWriter) {
    constexpr std::uint64_t kWriter = 0xffffffffc0a02345ULL;
    MsrWatch w;
    EXPECT_FALSE(w.feed(msr(0, VMI_MSR_LSTAR, 0, kEntry, true)));
    const auto f = w.feed(wrmsr(0, VMI_MSR_LSTAR, kEntry, kHook, kWriter));
    ASSERT_TRUE(f);
    EXPECT_TRUE(f->intercepted);
    EXPECT_EQ(f->rip, kWriter);
    EXPECT_EQ(f->written, kHook);
    EXPECT_EQ(f->actual, kHook);
    const nlohmann::json t = vmid::msr_tamper_fields(*f);
    EXPECT_EQ(t["kind"], "msr_hook");
    EXPECT_EQ(t["target"], "LSTAR");
    EXPECT_EQ(t["writer_rip"], "0xffffffffc0a02345");
    EXPECT_EQ(t["written"], "0xffffffffc0a01000");
    EXPECT_EQ(t["intercepted"], true);
    // The undo is a write too, of the legitimate value: not a finding.
    EXPECT_FALSE(w.feed(wrmsr(0, VMI_MSR_LSTAR, kHook, kEntry, kWriter)));
    EXPECT_EQ(w.intercepted(), 2u);
    EXPECT_EQ(w.faulted(), 0u);
}

TEST(MsrWatch, AFaultedWriteIsCountedAndJudgedOnWhatTheMsrHolds) {
    MsrWatch w;
    EXPECT_FALSE(w.feed(msr(0, VMI_MSR_LSTAR, 0, kEntry, true)));
    // A non-canonical LSTAR: #GP, the MSR keeps the kernel's entry.
    vmi_record r = wrmsr(0, VMI_MSR_LSTAR, kEntry, kEntry, 0xffffffffc0a00010ULL, true);
    r.msr.written = 0x8000000000000000ULL;
    EXPECT_FALSE(w.feed(r));
    EXPECT_EQ(w.faulted(), 1u);
}

TEST(MsrWatch, ASysenterEipWriteIsJudgedOnTheBitsTheCpuKeeps) {
    MsrWatch w;
    EXPECT_FALSE(w.feed(msr(0, VMI_MSR_SYSENTER_EIP, 0, 0x81a01234, true)));
    // The kernel writes its 64-bit address again (CPU bring-up); AMD keeps 32 bits of it.
    vmi_record r = wrmsr(0, VMI_MSR_SYSENTER_EIP, 0x81a01234, 0x81a01234, 0xffffffff81000100ULL);
    r.msr.written = 0xffffffff81a01234ULL;
    EXPECT_FALSE(w.feed(r));
}

TEST(MsrWatch, ASampledFindingSaysSoAndHasNoWriter) {
    MsrWatch w;
    EXPECT_FALSE(w.feed(msr(0, VMI_MSR_LSTAR, 0, kEntry, true)));
    const auto f = w.feed(msr(0, VMI_MSR_LSTAR, kEntry, kHook));
    ASSERT_TRUE(f);
    EXPECT_FALSE(f->intercepted);
    const nlohmann::json t = vmid::msr_tamper_fields(*f);
    EXPECT_FALSE(t.contains("writer_rip"));
    EXPECT_EQ(t["seen"], "at the first VM entry after the write");
}

TEST(MsrWatch, ModeNames) {
    EXPECT_STREQ(vmid::msr_mode_name(VMI_MSR_INTERCEPT), "intercept");
    EXPECT_STREQ(vmid::msr_mode_name(VMI_MSR_SAMPLED), "sampled");
    EXPECT_STREQ(vmid::msr_mode_name(VMI_MSR_PENDING), "pending");
    EXPECT_STREQ(vmid::msr_mode_name(VMI_MSR_REFUSED), "refused");
    EXPECT_STREQ(vmid::msr_mode_name(VMI_MSR_OFF), "off");
    EXPECT_STREQ(vmid::msr_mode_name(99), "unknown");
}

}  // namespace
