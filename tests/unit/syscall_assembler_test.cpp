// SyscallAssembler: records from the module become whole calls, with their captured value and
// return, in every order the ring can deliver them; nothing is held without bound.
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "syscall_assembler.hpp"

namespace vmid {
namespace {

vmi_record syscall_rec(std::uint64_t seq, std::uint64_t nr, std::uint32_t data = 0,
                       std::uint64_t t = 1000) {
    vmi_record r{};
    r.type = VMI_REC_SYSCALL;
    r.seq = seq;
    r.time_ns = t;
    r.sys.nr = nr;
    for (int i = 0; i < 6; ++i) r.sys.args[i] = 100 + static_cast<unsigned>(i);
    r.sys.cr3 = 0x1000;
    r.sys.tgid = 321;
    std::memcpy(r.sys.comm, "probe", 6);
    r.sys.rip = 0x401000;
    r.sys.data_records = data;
    return r;
}

vmi_record data_rec(std::uint64_t seq, const std::string& bytes, std::uint32_t offset,
                    std::uint16_t flags = 0) {
    vmi_record r{};
    r.type = VMI_REC_DATA;
    r.seq = seq;
    r.flags = flags;
    r.data.arg = 1;
    r.data.offset = offset;
    r.data.len = static_cast<std::uint16_t>(bytes.size());
    std::memcpy(r.data.bytes, bytes.data(), bytes.size());
    return r;
}

vmi_record sysret_rec(std::uint64_t seq, std::uint64_t entry, std::uint64_t nr, std::int64_t ret) {
    vmi_record r{};
    r.type = VMI_REC_SYSRET;
    r.seq = seq;
    r.time_ns = 2000;
    r.sysret.nr = nr;
    r.sysret.ret = static_cast<std::uint64_t>(ret);
    r.sysret.entry_seq = entry;
    return r;
}

struct Collect {
    std::vector<SyscallCall> calls;
    SyscallAssembler a{[this](SyscallCall&& c) { calls.push_back(std::move(c)); }, 500, 4};
};

TEST(SyscallAssembler, CallWaitsForItsReturn) {
    Collect c;
    EXPECT_TRUE(c.a.feed(syscall_rec(7, 110)));
    EXPECT_TRUE(c.calls.empty());
    EXPECT_TRUE(c.a.feed(sysret_rec(8, 7, 110, 42)));
    ASSERT_EQ(c.calls.size(), 1u);
    EXPECT_EQ(c.calls[0].nr, 110u);
    EXPECT_EQ(c.calls[0].args[3], 103u);
    EXPECT_EQ(c.calls[0].ret, 42);
    EXPECT_EQ(c.calls[0].ret_time_ns, 2000u);
    EXPECT_EQ(c.calls[0].tgid, 321);
    EXPECT_EQ(c.calls[0].comm, "probe");
    EXPECT_FALSE(c.calls[0].denied);
    EXPECT_EQ(c.a.stats().returned, 1u);
}

TEST(SyscallAssembler, DataSlicesJoinInOrder) {
    Collect c;
    const std::string a(VMI_DATA_BYTES, 'a'), b = "/tail";
    c.a.feed(syscall_rec(1, 257, 2));
    c.a.feed(data_rec(2, a, 0));
    c.a.feed(data_rec(3, b, VMI_DATA_BYTES, VMI_RECF_TRUNCATED));
    c.a.feed(sysret_rec(4, 1, 257, -2));
    ASSERT_EQ(c.calls.size(), 1u);
    EXPECT_EQ(c.calls[0].data, a + b);
    EXPECT_EQ(c.calls[0].data_arg, 1);
    EXPECT_TRUE(c.calls[0].data_truncated);
    EXPECT_FALSE(c.calls[0].data_fault);
    EXPECT_EQ(c.calls[0].ret, -2);
}

TEST(SyscallAssembler, ArgvFollowsThePathAsItsOwnValue) {
    Collect c;
    using namespace std::string_literals;
    // "sh\0-c\0" + 90 x's cut short: two argv slices after the path's one.
    const std::string argv = "sh\0-c\0"s + std::string(90, 'x');
    vmi_record path = data_rec(2, "/bin/sh", 0);
    path.data.arg = 0;
    vmi_record a1 = data_rec(3, argv.substr(0, VMI_DATA_BYTES), 0, VMI_RECF_ARGV);
    vmi_record a2 = data_rec(4, argv.substr(VMI_DATA_BYTES), VMI_DATA_BYTES,
                             VMI_RECF_ARGV | VMI_RECF_TRUNCATED);
    c.a.feed(syscall_rec(1, 59, 3));
    c.a.feed(path);
    c.a.feed(a1);
    c.a.feed(a2);
    c.a.feed(sysret_rec(5, 1, 59, -13));
    ASSERT_EQ(c.calls.size(), 1u);
    EXPECT_EQ(c.calls[0].data, "/bin/sh");
    EXPECT_EQ(c.calls[0].data_arg, 0);
    EXPECT_FALSE(c.calls[0].data_truncated);  // the argv's flags are its own
    EXPECT_TRUE(c.calls[0].argv_captured);
    EXPECT_EQ(c.calls[0].argv_arg, 1);
    EXPECT_EQ(c.calls[0].argv, (std::vector<std::string>{"sh", "-c", std::string(90, 'x')}));
    EXPECT_TRUE(c.calls[0].argv_truncated);
    EXPECT_EQ(c.a.stats().malformed, 0u);
}

TEST(SyscallAssembler, DeniedCallIsDoneAtOnce) {
    Collect c;
    vmi_record r = syscall_rec(1, 59, 1);
    r.flags = VMI_RECF_DENIED;
    c.a.feed(r);
    EXPECT_TRUE(c.calls.empty());  // its path is still coming
    c.a.feed(data_rec(2, "/tmp/x", 0));
    ASSERT_EQ(c.calls.size(), 1u);
    EXPECT_TRUE(c.calls[0].denied);
    EXPECT_EQ(c.calls[0].data, "/tmp/x");
    EXPECT_EQ(c.a.held(), 0u);
}

TEST(SyscallAssembler, ReturnsMatchBySequenceNotOrder) {
    Collect c;
    c.a.feed(syscall_rec(1, 0));  // a read that blocks
    c.a.feed(syscall_rec(2, 39));
    c.a.feed(sysret_rec(3, 2, 39, 77));
    c.a.feed(sysret_rec(4, 1, 0, 5));
    ASSERT_EQ(c.calls.size(), 2u);
    EXPECT_EQ(c.calls[0].nr, 39u);
    EXPECT_EQ(c.calls[0].ret, 77);
    EXPECT_EQ(c.calls[1].nr, 0u);
    EXPECT_EQ(c.calls[1].ret, 5);
}

TEST(SyscallAssembler, UnknownOrMismatchedReturnsAreCountedNotApplied) {
    Collect c;
    c.a.feed(syscall_rec(1, 39));
    c.a.feed(sysret_rec(2, 99, 39, 1));  // a call from before we attached
    c.a.feed(sysret_rec(3, 1, 40, 1));   // right seq, wrong number: not its return
    EXPECT_TRUE(c.calls.empty());
    EXPECT_EQ(c.a.stats().orphan_returns, 2u);
}

TEST(SyscallAssembler, CallsWithoutReturnExpireAfterTheHold) {
    Collect c;
    c.a.feed(syscall_rec(1, 59, 0, 1000));  // execve: succeeds without SYSRET
    c.a.feed(syscall_rec(2, 60, 0, 1400));
    c.a.expire(1499);
    EXPECT_TRUE(c.calls.empty());
    c.a.expire(1500);
    ASSERT_EQ(c.calls.size(), 1u);
    EXPECT_EQ(c.calls[0].nr, 59u);
    EXPECT_FALSE(c.calls[0].ret.has_value());
    c.a.flush();
    EXPECT_EQ(c.calls.size(), 2u);
    EXPECT_EQ(c.a.stats().no_return, 2u);
}

TEST(SyscallAssembler, HeldCallsAreBounded) {
    Collect c;  // at most 4 held
    for (std::uint64_t i = 1; i <= 10; ++i) c.a.feed(syscall_rec(i, 0));
    EXPECT_EQ(c.a.held(), 4u);
    ASSERT_EQ(c.calls.size(), 6u);
    EXPECT_EQ(c.calls[0].seq, 1u);  // oldest first
}

TEST(SyscallAssembler, StrayDataAndInterruptedDataAreCounted) {
    Collect c;
    c.a.feed(data_rec(1, "x", 0));  // no call before it
    c.a.feed(syscall_rec(2, 257, 2));
    c.a.feed(data_rec(3, "abc", 0));
    c.a.feed(syscall_rec(4, 39));  // the second slice never came
    EXPECT_EQ(c.a.stats().malformed, 2u);
    c.a.flush();
    ASSERT_EQ(c.calls.size(), 2u);
    EXPECT_EQ(c.calls[0].data, "abc");
}

TEST(SyscallAssembler, OtherRecordsAreNotTaken) {
    Collect c;
    vmi_record r{};
    r.type = VMI_REC_CR3;
    EXPECT_FALSE(c.a.feed(r));
}

}  // namespace
}  // namespace vmid
