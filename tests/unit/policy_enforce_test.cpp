// Deny rules as the module enforces them, policy scoping by VM, and policy-level mode.
#include <gtest/gtest.h>

#include <string>

#include "policy/policy.hpp"
#include "policy_test_support.hpp"

namespace {

using policy_test::join_errors;
using policy_test::load_ok;

std::string deny_rule(std::string_view name, std::string_view cond, std::string_view extra = "") {
    std::string y = "- rule: " + std::string(name) + "\n  condition: '" + std::string(cond) +
                    "'\n  output: o\n  priority: critical\n  action: deny\n";
    y += extra;
    return y;
}

std::string load_error(std::string_view yaml) {
    auto res = policy::PolicySet::load_string(yaml, "deny.yaml");
    EXPECT_FALSE(res) << "loaded: " << yaml;
    return join_errors(res.errors);
}

TEST(PolicyEnforce, SyscallDenyNamesItsSyscalls) {
    auto set = load_ok(deny_rule("no modules",
                                 "evt.type = syscall and syscall.name in (init_module, "
                                 "finit_module)"));
    const auto* r = set.find_rule("no modules");
    ASSERT_TRUE(r && r->kernel_deny);
    EXPECT_EQ(r->kernel_deny->syscalls, (std::vector<std::string>{"init_module", "finit_module"}));
    EXPECT_TRUE(r->kernel_deny->exec_paths.empty());
    // syscall.name alone implies a syscall event.
    auto bare = load_ok(deny_rule("bare", "syscall.name = ptrace"));
    EXPECT_EQ(bare.find_rule("bare")->kernel_deny->syscalls, std::vector<std::string>{"ptrace"});
}

TEST(PolicyEnforce, ExecDenyListWithPrefixesFromStartswith) {
    auto set =
        load_ok("- list: tmp\n  items: [/tmp/, /dev/shm/]\n" +
                deny_rule("no tmp exec", "evt.type = exec and proc.exe startswith (tmp)") +
                deny_rule("no miner", "syscall.name = execve and syscall.path = /usr/bin/xmrig"));
    const auto* tmp = set.find_rule("no tmp exec");
    ASSERT_TRUE(tmp && tmp->kernel_deny);
    EXPECT_EQ(tmp->kernel_deny->exec_paths, (std::vector<std::string>{"/tmp/*", "/dev/shm/*"}));
    EXPECT_FALSE(tmp->kernel_deny->exec_allow);
    EXPECT_TRUE(tmp->kernel_deny->syscalls.empty());
    const auto* miner = set.find_rule("no miner");
    EXPECT_EQ(miner->kernel_deny->exec_paths, std::vector<std::string>{"/usr/bin/xmrig"});

    const policy::Enforcement e = policy::enforcement(set);
    EXPECT_TRUE(e.error.empty()) << e.error;
    EXPECT_FALSE(e.exec_allow);
    EXPECT_EQ(e.exec_paths, (std::vector<std::string>{"/dev/shm/*", "/tmp/*", "/usr/bin/xmrig"}));
    EXPECT_EQ(e.rules.size(), 2u);
}

TEST(PolicyEnforce, AllowListIsNegatedExecTest) {
    auto set =
        load_ok(deny_rule("allow",
                          "evt.type = exec and not (proc.exe in (/bin/sh, /bin/ls) or proc.exe "
                          "startswith /opt/app/)"));
    const auto* r = set.find_rule("allow");
    ASSERT_TRUE(r && r->kernel_deny);
    EXPECT_TRUE(r->kernel_deny->exec_allow);
    EXPECT_EQ(r->kernel_deny->exec_paths,
              (std::vector<std::string>{"/bin/sh", "/bin/ls", "/opt/app/*"}));
}

TEST(PolicyEnforce, AllowListsIntersectAndDenyListsCutThem) {
    auto set =
        load_ok(deny_rule("a", "evt.type = exec and not proc.exe in (/bin/sh, /bin/ls, /bin/cat)") +
                deny_rule("b", "evt.type = exec and not proc.exe in (/bin/sh, /bin/ls, /bin/ps)") +
                deny_rule("c", "evt.type = exec and proc.exe = /bin/ls"));
    const policy::Enforcement e = policy::enforcement(set);
    ASSERT_TRUE(e.error.empty()) << e.error;
    EXPECT_TRUE(e.exec_allow);
    EXPECT_EQ(e.exec_paths, std::vector<std::string>{"/bin/sh"});
}

TEST(PolicyEnforce, ConflictsThatCannotBeEnforcedAreReported) {
    auto set = load_ok(deny_rule("a", "evt.type = exec and not proc.exe startswith /usr/") +
                       deny_rule("b", "evt.type = exec and proc.exe = /usr/bin/nc"));
    const policy::Enforcement e = policy::enforcement(set);
    EXPECT_NE(e.error.find("/usr/bin/nc"), std::string::npos) << e.error;
    EXPECT_TRUE(e.empty());
}

TEST(PolicyEnforce, MonitorModeAndDisabledRulesAreNotEnforced) {
    auto set = load_ok(deny_rule("m", "syscall.name = ptrace", "  mode: monitor\n") +
                       deny_rule("off", "syscall.name = kexec_load", "  enabled: false\n"));
    const policy::Enforcement e = policy::enforcement(set);
    EXPECT_TRUE(e.empty());
    EXPECT_TRUE(e.rules.empty());
}

TEST(PolicyEnforce, UnenforceableConditionsNameTheField) {
    EXPECT_NE(load_error(deny_rule("x", "evt.type = exec and proc.pname = sshd"))
                  .find("deny.yaml:2:14: rule 'x': action deny: 'proc.pname =' cannot be "
                        "checked by the module"),
              std::string::npos);
    EXPECT_NE(load_error(deny_rule("x", "syscall.name = openat and syscall.path = /etc/shadow"))
                  .find("paths only for execve"),
              std::string::npos);
    EXPECT_NE(load_error(deny_rule("x", "evt.type = exec or syscall.name = ptrace")).find("'or'"),
              std::string::npos);
    EXPECT_NE(load_error(deny_rule("x", "evt.type = start")).find("exec or syscall"),
              std::string::npos);
    EXPECT_NE(load_error(deny_rule("x", "evt.type = syscall")).find("must name its syscalls"),
              std::string::npos);
    EXPECT_NE(load_error(deny_rule("x",
                                   "evt.type = exec and proc.exe in (/a) and proc.exe "
                                   "startswith /b"))
                  .find("more than one executable test"),
              std::string::npos);
    // Exceptions are conditions too: the module cannot check them.
    EXPECT_NE(load_error(deny_rule("x", "syscall.name = ptrace",
                                   "  exceptions:\n    - name: dbg\n      fields: proc.name\n"
                                   "      values: [gdb]\n"))
                  .find("'proc.name in' under 'not'"),
              std::string::npos);
}

const char* kScoped = R"(
- rule: everywhere
  condition: evt.type = exec
  output: o
  priority: notice
- policy: web
  vms: ["web-*"]
  mode: monitor
- rule: web only
  condition: evt.type = exec and proc.exe = /usr/bin/nc
  output: o
  priority: critical
  action: deny
- policy: by-uuid
  uuids: [6F2C1B2A-0000-4000-8000-000000000001]
  metadata: {tier: "prod*"}
- rule: prod uuid
  condition: syscall.name = ptrace
  output: o
  priority: critical
  action: deny
)";

TEST(PolicyEnforce, AVmThatNamesAPolicyGetsOnlyThatOne) {
    auto set = load_ok(kScoped);
    EXPECT_TRUE(set.defines_policy("web"));
    EXPECT_FALSE(set.defines_policy("db"));
    // Named by the domain's own metadata: its scope still has to match ...
    policy::VmIdentity web{"web-01", "", {}, "web"};
    EXPECT_EQ(set.for_vm(web).rule_count(), 2u);
    // ... and the other named policies do not apply even where their scope would.
    policy::VmIdentity db{
        "db-01", "6f2c1b2a-0000-4000-8000-000000000001", {{"tier", "prod"}}, "web"};
    auto for_db = set.for_vm(db);
    EXPECT_EQ(for_db.rule_count(), 1u);  // only the rule outside any policy
    EXPECT_TRUE(policy::enforcement(for_db).deny_syscalls.empty());
    db.policy = "by-uuid";
    EXPECT_EQ(policy::enforcement(set.for_vm(db)).deny_syscalls,
              std::vector<std::string>{"ptrace"});
}

TEST(PolicyEnforce, PoliciesScopeRulesToVms) {
    auto set = load_ok(kScoped);
    const auto* web = set.find_rule("web only");
    ASSERT_TRUE(web && web->scope);
    EXPECT_EQ(web->policy, "web");
    EXPECT_EQ(web->mode, policy::Mode::Monitor);  // the policy's mode wins over the rule's
    EXPECT_EQ(set.find_rule("everywhere")->scope, nullptr);

    policy::VmIdentity w{"web-01", "", {}, {}};
    auto for_web = set.for_vm(w);
    EXPECT_EQ(for_web.rule_count(), 2u);
    EXPECT_TRUE(policy::enforcement(for_web).empty());  // monitor: nothing enforced

    policy::VmIdentity db{
        "db-01", "6f2c1b2a-0000-4000-8000-000000000001", {{"tier", "prod-eu"}}, {}};
    auto for_db = set.for_vm(db);
    EXPECT_EQ(for_db.rule_count(), 2u);
    EXPECT_EQ(for_db.find_rule("prod uuid")->name, "prod uuid");  // rules() is the whole file
    EXPECT_EQ(policy::enforcement(for_db).deny_syscalls, std::vector<std::string>{"ptrace"});
    // The subset evaluates like the whole, for the rules it keeps.
    policy::Event e;
    e.type = policy::EventType::Exec;
    e.proc.exe = "/usr/bin/nc";
    EXPECT_EQ(for_web.evaluate(e).size(), 2u);
    EXPECT_EQ(for_db.evaluate(e).size(), 1u);

    // Scoping a scoped set again keeps the rules and their owner.
    auto again = for_db.for_vm(db);
    EXPECT_EQ(again.rule_count(), 2u);
    ASSERT_NE(again.find_rule("prod uuid"), nullptr);
    EXPECT_EQ(again.rules().size(), set.rules().size());

    db.metadata["tier"] = "staging";
    EXPECT_EQ(set.for_vm(db).rule_count(), 1u);
    EXPECT_EQ(set.for_vm(policy::VmIdentity{"other", "", {}, {}}).rule_count(), 1u);
}

TEST(PolicyEnforce, PolicyItemErrors) {
    EXPECT_NE(load_error("- policy: p\n  vms: [\"[a-\"]\n").find("bad glob"), std::string::npos);
    EXPECT_NE(load_error("- policy: p\n  mode: loud\n").find("deny.yaml:2:9: bad mode 'loud'"),
              std::string::npos);
    EXPECT_NE(load_error("- policy: p\n  hosts: [a]\n").find("unknown key 'hosts' in policy"),
              std::string::npos);
    EXPECT_NE(load_error("- policy: p\n  metadata: [a]\n").find("mapping"), std::string::npos);
}

TEST(PolicyEnforce, PolicyCoversOnlyTheRestOfItsFile) {
    auto set = load_ok(std::string(kScoped) +
                       "- rule: late\n  condition: evt.type = exit\n"
                       "  output: o\n  priority: notice\n");
    EXPECT_NE(set.find_rule("late")->scope, nullptr);  // same file: still under by-uuid
}

}  // namespace

namespace {

TEST(PolicyDedup, IdenticalAlertsInTheWindowAreHeldAndCounted) {
    auto set = load_ok(
        "- rule: r\n  condition: evt.type = exec\n  output: 'exec %proc.name'\n"
        "  priority: notice\n  dedup: 30s\n- rule: plain\n  condition: evt.type = exec\n"
        "  output: o\n  priority: notice\n");
    policy::Deduplicator d;
    policy::Event a;
    a.type = policy::EventType::Exec;
    a.proc.name = "nc";
    policy::Event b = a;
    b.proc.name = "sh";
    const std::uint64_t s = 1'000'000'000;
    std::uint64_t held = 99;
    auto one = [&](const policy::Event& e) { return set.evaluate(e).at(0); };
    EXPECT_TRUE(d.allow(one(a), 0, &held));
    EXPECT_EQ(held, 0u);
    EXPECT_FALSE(d.allow(one(a), 10 * s));
    EXPECT_FALSE(d.allow(one(a), 29 * s));
    EXPECT_TRUE(d.allow(one(b), 29 * s));  // another output: its own window
    EXPECT_TRUE(d.allow(one(a), 30 * s, &held));
    EXPECT_EQ(held, 2u);  // the next one reported says how many were held back
    EXPECT_EQ(d.suppressed_total(), 2u);
    // Rules without dedup always pass.
    const auto plain = set.evaluate(a).at(1);
    EXPECT_TRUE(d.allow(plain, 0));
    EXPECT_TRUE(d.allow(plain, 0));
}

TEST(PolicyDedup, WindowsAreBounded) {
    auto set = load_ok(
        "- rule: r\n  condition: evt.type = exec\n  output: 'exec %proc.pid'\n"
        "  priority: notice\n  dedup: 1h\n");
    policy::Deduplicator d;
    policy::Event e;
    e.type = policy::EventType::Exec;
    for (std::int64_t pid = 0; pid < 20000; ++pid) {
        e.proc.pid = pid;
        EXPECT_TRUE(d.allow(set.evaluate(e).at(0), static_cast<std::uint64_t>(pid)));
    }
    // The first windows were forgotten to stay within the bound: allowed again.
    e.proc.pid = 0;
    EXPECT_TRUE(d.allow(set.evaluate(e).at(0), 20000));
    e.proc.pid = 19999;
    EXPECT_FALSE(d.allow(set.evaluate(e).at(0), 20001));
}

TEST(PolicyDedup, BadWindowIsAnError) {
    EXPECT_NE(load_error("- rule: r\n  condition: evt.type = exec\n  output: o\n"
                         "  priority: notice\n  dedup: soon\n")
                  .find("deny.yaml:5:10: bad dedup window 'soon'"),
              std::string::npos);
}

}  // namespace
