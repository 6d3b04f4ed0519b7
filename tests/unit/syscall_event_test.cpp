// Syscall calls become events: names, decoded arguments, captured values, outcome, caller.
#include <gtest/gtest.h>

#include "syscall_event.hpp"
#include "syscall_filter.hpp"

namespace vmid {
namespace {

SyscallCall openat_call() {
    SyscallCall c;
    c.seq = 5;
    c.nr = 257;
    c.args = {static_cast<std::uint64_t>(-100), 0x7ff000, 0101 | 02000000, 0600, 0, 0};
    c.cr3 = 0x1000;
    c.tgid = 90;
    c.comm = "vmi-sysprobe";
    c.data_arg = 1;
    c.data = "/tmp/vmi-marker-run2";
    c.ret = 3;
    return c;
}

TEST(SyscallEvent, DecodesArgumentsAndUsesTheCapturedPath) {
    const auto e = syscall_event(openat_call(), nullptr, "vm1");
    EXPECT_EQ(e["event"]["action"], "syscall");
    EXPECT_EQ(e["event"]["outcome"], "success");
    EXPECT_EQ(e["vm"]["name"], "vm1");
    const auto& s = e["syscall"];
    EXPECT_EQ(s["name"], "openat");
    EXPECT_EQ(s["args"]["dirfd"], "AT_FDCWD");
    EXPECT_EQ(s["args"]["path"], "/tmp/vmi-marker-run2");
    EXPECT_EQ(s["args"]["flags"], "O_WRONLY|O_CREAT|O_CLOEXEC");
    EXPECT_EQ(s["args"]["mode"], "0600");
    EXPECT_EQ(s["ret"], 3);
    EXPECT_FALSE(s.contains("error"));
    EXPECT_EQ(e["process"]["pid"], 90);
    EXPECT_EQ(e["process"]["name"], "vmi-sysprobe");
}

TEST(SyscallEvent, UnreadableAndTruncatedValuesAreMarked) {
    SyscallCall c = openat_call();
    c.data_fault = true;
    c.data.clear();
    auto e = syscall_event(c, nullptr, "vm1");
    EXPECT_EQ(e["syscall"]["args"]["path"], "0x7ff000");
    EXPECT_EQ(e["syscall"]["path_unreadable"], true);
    c = openat_call();
    c.data_truncated = true;
    e = syscall_event(c, nullptr, "vm1");
    EXPECT_EQ(e["syscall"]["path_truncated"], true);
}

TEST(SyscallEvent, DeniedAndFailedCalls) {
    SyscallCall c;
    c.nr = 59;
    c.denied = true;
    c.ret = -1;
    c.data_arg = 0;
    c.data = "/tmp/x";
    auto e = syscall_event(c, nullptr, "vm1");
    EXPECT_EQ(e["event"]["action"], "syscall-denied");
    EXPECT_EQ(e["event"]["outcome"], "failure");
    EXPECT_EQ(e["syscall"]["error"], "EPERM");
    EXPECT_EQ(e["syscall"]["denied"], true);
    c = SyscallCall{};
    c.nr = 42;
    c.ret = -111;
    e = syscall_event(c, nullptr, "vm1");
    EXPECT_EQ(e["syscall"]["error"], "ECONNREFUSED");
    EXPECT_EQ(e["syscall"]["args"]["addr"], "0x0");  // not captured: the raw pointer
    c = SyscallCall{};
    c.nr = 500;  // not a syscall: raw arguments, a made-up name
    e = syscall_event(c, nullptr, "vm1");
    EXPECT_EQ(e["syscall"]["name"], "nr500");
    EXPECT_EQ(e["syscall"]["args_raw"].size(), 6u);
    EXPECT_EQ(e["event"]["outcome"], "unknown");
}

TEST(SyscallEvent, LifecycleMeaning) {
    SyscallCall c;
    c.nr = 56;  // clone(SIGCHLD): a fork
    c.args[0] = 17;
    c.ret = 95;
    auto e = syscall_event(c, nullptr, "vm1");
    EXPECT_EQ(e["syscall"]["lifecycle"], "fork");
    EXPECT_EQ(e["syscall"]["child_pid"], 95);
    c.args[0] = 0x10000 | 0x100 | 0x800;  // CLONE_THREAD|CLONE_VM|CLONE_SIGHAND
    e = syscall_event(c, nullptr, "vm1");
    EXPECT_EQ(e["syscall"]["lifecycle"], "thread");
    EXPECT_EQ(e["syscall"]["child_tid"], 95);
    c = SyscallCall{};
    c.nr = 435;  // clone3, its struct captured
    c.data_arg = 0;
    c.data = std::string("\x00\x00\x01\x00\x00\x00\x00\x00", 8);  // CLONE_THREAD
    c.ret = 7;
    e = syscall_event(c, nullptr, "vm1");
    EXPECT_EQ(e["syscall"]["lifecycle"], "thread");
    EXPECT_EQ(e["syscall"]["args"]["args"], "CLONE_THREAD");
    c = SyscallCall{};
    c.nr = 231;  // exit_group(42)
    c.args[0] = 42;
    e = syscall_event(c, nullptr, "vm1");
    EXPECT_EQ(e["syscall"]["lifecycle"], "exit");
    EXPECT_EQ(e["syscall"]["exit_code"], 42);
    c.nr = 59;
    EXPECT_EQ(syscall_event(c, nullptr, "vm1")["syscall"]["lifecycle"], "exec");
    c.nr = 39;  // getpid: no lifecycle meaning
    EXPECT_FALSE(syscall_event(c, nullptr, "vm1")["syscall"].contains("lifecycle"));
}

TEST(SyscallEvent, TheListingAddsToTheCallerOnlyIfItIsTheSameProcess) {
    GuestProcess p;
    p.pid = 90;
    p.ppid = 1;
    p.comm = "renamed";
    p.exe = "/bin/vmi-sysprobe";
    auto e = syscall_event(openat_call(), &p, "vm1");
    EXPECT_EQ(e["process"]["ppid"], 1);
    EXPECT_EQ(e["process"]["exe"], "/bin/vmi-sysprobe");
    EXPECT_EQ(e["process"]["name"], "vmi-sysprobe");  // the name at the call wins
    p.pid = 91;                                       // a stale address-space owner
    e = syscall_event(openat_call(), &p, "vm1");
    EXPECT_EQ(e["process"]["pid"], 90);
    EXPECT_FALSE(e["process"].contains("exe"));
}

TEST(SyscallFilter, BuildsBitmapsCapturesAndExecLists) {
    SyscallPlan plan;
    plan.trace = {"openat", "connect", "getppid"};
    plan.deny_exec = {"/tmp/x"};
    plan.deny_errno = 13;
    const vmi_syscall_filter f = build_filter(plan);
    EXPECT_TRUE(f.trace[257 / 64] & (1ULL << (257 % 64)));
    EXPECT_TRUE(f.trace[110 / 64] & (1ULL << (110 % 64)));
    EXPECT_FALSE(f.trace[0] & 1);
    EXPECT_EQ(f.capture[257], VMI_CAPTURE_STRING | 2);
    EXPECT_EQ(f.capture[42], 2 | (3 << 4));
    EXPECT_EQ(f.capture[110], 0);
    EXPECT_EQ(f.exec_mode, VMI_EXEC_DENY_LISTED);
    EXPECT_EQ(f.deny_errno, 13);
    EXPECT_TRUE(plan_traps_anything(plan));
    EXPECT_FALSE(plan_traps_anything(SyscallPlan{}));
    plan.trace = {"nosuch"};
    EXPECT_THROW(build_filter(plan), std::invalid_argument);
}

TEST(SyscallFilter, ExecveCapturesItsArgv) {
    SyscallPlan plan;
    plan.trace = {"execve", "execveat"};
    const vmi_syscall_filter f = build_filter(plan);
    EXPECT_EQ(f.capture[59], VMI_CAPTURE_STRING | VMI_CAPTURE_ARGV | 1);
    EXPECT_EQ(f.capture[322], VMI_CAPTURE_STRING | VMI_CAPTURE_ARGV | 2);
}

policy::Enforcement rules_from(const char* yaml) {
    auto loaded = policy::PolicySet::load_string(yaml, "t.yaml");
    EXPECT_TRUE(loaded);
    return policy::enforcement(*loaded.set);
}

TEST(SyscallFilter, DenyRulesBecomeTheModulesFilter) {
    const auto e = rules_from(R"(
- rule: no modules
  condition: syscall.name in (init_module, finit_module)
  output: o
  priority: critical
  action: deny
- rule: no tmp
  condition: evt.type = exec and proc.exe startswith /tmp/
  output: o
  priority: critical
  action: deny
)");
    SyscallPlan plan;
    apply_enforcement(plan, {"/usr/bin/nc"}, {}, e);
    const vmi_syscall_filter f = build_filter(plan);
    EXPECT_TRUE(f.deny[175 / 64] & (1ULL << (175 % 64)));  // init_module
    EXPECT_TRUE(f.deny[313 / 64] & (1ULL << (313 % 64)));  // finit_module
    EXPECT_FALSE(f.trace[175 / 64] & (1ULL << (175 % 64)));
    EXPECT_EQ(f.exec_mode, VMI_EXEC_DENY_LISTED);
    EXPECT_EQ(plan.exec_paths(), (std::vector<std::string>{"/usr/bin/nc", "/tmp/*"}));
    EXPECT_TRUE(plan_traps_anything(plan));
    // The command line's allow list and a deny rule on paths cannot both be the module's.
    EXPECT_THROW(apply_enforcement(plan, {}, {"/bin/sh"}, e), std::invalid_argument);
}

TEST(SyscallFilter, AnAllowListRuleIsEnforcedEvenWhenEmpty) {
    const auto e = rules_from(R"(
- rule: nothing runs
  condition: evt.type = exec and not proc.exe in (/bin/sh)
  output: o
  priority: critical
  action: deny
- rule: and not sh either
  condition: evt.type = exec and proc.exe = /bin/sh
  output: o
  priority: critical
  action: deny
)");
    SyscallPlan plan;
    apply_enforcement(plan, {}, {}, e);
    EXPECT_TRUE(plan.exec_allow);
    EXPECT_TRUE(plan.exec_paths().empty());
    EXPECT_EQ(build_filter(plan).exec_mode, VMI_EXEC_ALLOW_LISTED);
    EXPECT_THROW(apply_enforcement(plan, {"/x"}, {}, e), std::invalid_argument);
}

}  // namespace
}  // namespace vmid
