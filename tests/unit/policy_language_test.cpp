// Policy language: grammar, operators, field types, lists, macros, append/override,
// exceptions, outputs and the evt.type index.
#include <gtest/gtest.h>

#include "policy_test_support.hpp"
#include "src/compile.hpp"

namespace {

using policy::Event;
using policy::EventType;
using policy::PolicySet;
using policy_test::exec_event;
using policy_test::load_ok;
using policy_test::rule_yaml;
using policy_test::syscall_event;

bool fires(std::string_view condition, const Event& e, std::string_view prefix = "") {
    auto set = load_ok(rule_yaml(condition, prefix));
    return set.matches_any(e);
}

Event sample() {
    auto e = exec_event("bash", "/usr/bin/bash", {"bash", "-c", "echo hi"}, "nginx");
    e.vm.uuid = "1234-ABCD";
    e.proc.entity_id = "ent-1";
    return e;
}

TEST(PolicyLanguage, EqualityAndInequalityOnStrings) {
    const auto e = sample();
    EXPECT_TRUE(fires("proc.name = bash", e));
    EXPECT_TRUE(fires("proc.name = \"bash\"", e));
    EXPECT_FALSE(fires("proc.name = sh", e));
    EXPECT_TRUE(fires("proc.name != sh", e));
    EXPECT_FALSE(fires("proc.name != bash", e));
}

TEST(PolicyLanguage, NumberComparisons) {
    const auto e = sample();  // pid 4242
    EXPECT_TRUE(fires("proc.pid = 4242", e));
    EXPECT_TRUE(fires("proc.pid != 1", e));
    EXPECT_TRUE(fires("proc.pid < 5000", e));
    EXPECT_FALSE(fires("proc.pid < 4242", e));
    EXPECT_TRUE(fires("proc.pid <= 4242", e));
    EXPECT_TRUE(fires("proc.pid > 4000", e));
    EXPECT_FALSE(fires("proc.pid > 4242", e));
    EXPECT_TRUE(fires("proc.pid >= 4242", e));
    EXPECT_TRUE(fires("proc.pid = 0x1092", e));  // hex
    EXPECT_TRUE(fires("proc.pid in (1, 2, 4242)", e));
    EXPECT_FALSE(fires("proc.pid in (1, 2)", e));
    EXPECT_TRUE(fires("proc.uid = 1000 and proc.euid = 1000 and proc.gid = 1000", e));
    EXPECT_TRUE(fires("proc.ppid = 100", e));
}

TEST(PolicyLanguage, StringOperators) {
    const auto e = sample();  // cmdline "bash -c echo hi"
    EXPECT_TRUE(fires("proc.cmdline contains echo", e));
    EXPECT_FALSE(fires("proc.cmdline contains ECHO", e));
    EXPECT_TRUE(fires("proc.cmdline icontains ECHO", e));
    EXPECT_TRUE(fires("proc.exe startswith /usr/", e));
    EXPECT_FALSE(fires("proc.exe startswith /bin/", e));
    EXPECT_TRUE(fires("proc.exe endswith /bash", e));
    EXPECT_FALSE(fires("proc.exe endswith /sh", e));
    EXPECT_TRUE(fires("proc.exe glob /usr/*/ba?h", e));
    EXPECT_TRUE(fires("proc.exe glob \"/usr/bin/[a-c]ash\"", e));
    EXPECT_FALSE(fires("proc.exe glob \"/usr/bin/[!b]ash\"", e));
    EXPECT_TRUE(fires("proc.exe regex \"^/usr/bin/(ba|z)sh$\"", e));
    EXPECT_FALSE(fires("proc.exe regex \"^/bin/\"", e));
    EXPECT_TRUE(fires("proc.name in (sh, bash, zsh)", e));
    EXPECT_FALSE(fires("proc.name in (sh, zsh)", e));
    // Any-of value lists for string operators.
    EXPECT_TRUE(fires("proc.exe startswith (/opt/, /usr/)", e));
    EXPECT_TRUE(fires("proc.cmdline contains (nothing, echo)", e));
    EXPECT_FALSE(fires("proc.cmdline contains (nothing, none)", e));
    EXPECT_TRUE(fires("vm.name = vm1 and vm.uuid icontains abcd", e));
    EXPECT_TRUE(fires("proc.entity_id = ent-1", e));
}

TEST(PolicyLanguage, LargeInListUsesHashSet) {
    const auto e = sample();
    EXPECT_TRUE(fires("proc.name in (a, b, c, d, e, f, g, h, bash)", e));
    EXPECT_FALSE(fires("proc.name in (a, b, c, d, e, f, g, h, i)", e));
}

TEST(PolicyLanguage, GlobMatcher) {
    using policy::detail::glob_match;
    EXPECT_TRUE(glob_match("*", ""));
    EXPECT_TRUE(glob_match("a*b*c", "aXXbYYc"));
    EXPECT_FALSE(glob_match("a*b*c", "aXXbYY"));
    EXPECT_TRUE(glob_match("/home/*/.ssh/id_*", "/home/bob/.ssh/id_rsa"));
    EXPECT_TRUE(glob_match("[0-9][0-9]", "42"));
    EXPECT_FALSE(glob_match("[0-9][0-9]", "4a"));
    EXPECT_TRUE(glob_match("\\*", "*"));
    EXPECT_FALSE(glob_match("\\*", "x"));
}

TEST(PolicyLanguage, ExistsAndUnset) {
    auto e = sample();
    e.proc.exe.reset();
    EXPECT_FALSE(fires("proc.exe exists", e));
    EXPECT_TRUE(fires("not proc.exe exists", e));
    EXPECT_TRUE(fires("proc.name exists", e));
    // Comparisons with unset values are false, including !=.
    EXPECT_FALSE(fires("proc.exe = x", e));
    EXPECT_FALSE(fires("proc.exe != x", e));
    EXPECT_FALSE(fires("syscall.port > 0", e));
    EXPECT_FALSE(fires("syscall.port != 0", e));
    EXPECT_TRUE(fires("not syscall.port = 0", e));
    EXPECT_FALSE(fires("syscall.path exists", e));
}

TEST(PolicyLanguage, ListFieldsAndIndexes) {
    auto e = sample();  // args bash -c "echo hi"; anames nginx sshd systemd
    EXPECT_TRUE(fires("proc.args = -c", e));
    EXPECT_TRUE(fires("proc.args[0] = bash", e));
    EXPECT_TRUE(fires("proc.args[2] = \"echo hi\"", e));
    EXPECT_FALSE(fires("proc.args[3] exists", e));
    EXPECT_TRUE(fires("proc.aname[1] = nginx and proc.aname[2] = sshd", e));
    EXPECT_TRUE(fires("proc.aname[3] = systemd", e));
    EXPECT_FALSE(fires("proc.aname[4] exists", e));
    EXPECT_TRUE(fires("proc.aname = sshd", e));
    EXPECT_TRUE(fires("proc.pname = nginx", e));
    e.proc.anames.clear();
    EXPECT_TRUE(fires("proc.aname[1] = nginx", e));  // falls back to pname
    EXPECT_TRUE(fires("proc.aname = nginx", e));

    auto s = syscall_event("gdb", "ptrace");
    s.syscall.args = {16, 1234};
    EXPECT_TRUE(fires("syscall.arg[0] = 16", s));
    EXPECT_TRUE(fires("syscall.arg = 1234", s));
    EXPECT_FALSE(fires("syscall.arg[2] exists", s));
}

TEST(PolicyLanguage, SyscallFieldsAndFlags) {
    auto s = syscall_event("cat", "openat", "/etc/shadow", 01000 | 01);
    s.syscall.nr = 257;
    s.syscall.addr = "10.0.0.1";
    s.syscall.port = 4444;
    EXPECT_TRUE(fires("syscall.name = openat and syscall.nr = 257", s));
    EXPECT_TRUE(fires("syscall.path = /etc/shadow", s));
    EXPECT_TRUE(fires("syscall.flags & O_TRUNC", s));
    EXPECT_TRUE(fires("syscall.flags & (O_RDWR, O_WRONLY)", s));
    EXPECT_FALSE(fires("syscall.flags & O_CREAT", s));
    EXPECT_TRUE(fires("syscall.flags & 0x200", s));
    EXPECT_TRUE(fires("syscall.addr startswith 10. and syscall.port = 4444", s));
}

TEST(PolicyLanguage, EventTypes) {
    auto e = sample();
    EXPECT_TRUE(fires("evt.type = exec", e));
    EXPECT_FALSE(fires("evt.type = exit", e));
    e.type = EventType::Start;
    EXPECT_TRUE(fires("evt.type = fork", e));
    EXPECT_TRUE(fires("evt.type in (start, rename)", e));
    e.type = EventType::Rename;
    e.proc.previous_name = "old";
    EXPECT_TRUE(fires("evt.type = rename and proc.previous_name = old", e));
    e.type = EventType::Cr3;
    EXPECT_TRUE(fires("evt.type = cr3", e));
}

TEST(PolicyLanguage, PrecedenceAndParentheses) {
    const auto e = sample();
    // and binds tighter than or: true or (false and false)
    EXPECT_TRUE(fires("proc.name = bash or proc.name = x and proc.pid = 1", e));
    // (true or false) and false
    EXPECT_FALSE(fires("(proc.name = bash or proc.name = x) and proc.pid = 1", e));
    // not binds tighter than and
    EXPECT_TRUE(fires("not proc.name = x and proc.name = bash", e));
    EXPECT_FALSE(fires("not (proc.name = bash and proc.pid = 4242)", e));
    EXPECT_TRUE(fires("not not proc.name = bash", e));
    EXPECT_TRUE(fires("((proc.name = bash))", e));
    EXPECT_TRUE(fires("proc.name=bash and proc.pid>=4242", e));  // no spaces
}

TEST(PolicyLanguage, ListsAndNestedLists) {
    const std::string lists =
        "- list: a\n  items: [sh]\n"
        "- list: shells\n  items: [a, bash]\n"
        "- list: pids\n  items: [1, 4242]\n";
    const auto e = sample();
    EXPECT_TRUE(fires("proc.name in (shells)", e, lists));
    EXPECT_TRUE(fires("proc.name in (shells, zsh)", e, lists));
    EXPECT_TRUE(fires("proc.pid in (pids)", e, lists));
    // Quoted names are literals, not list references.
    EXPECT_FALSE(fires("proc.name in (\"shells\")", e, lists));
    auto e2 = e;
    e2.proc.name = "sh";
    EXPECT_TRUE(fires("proc.name in (shells)", e2, lists));  // nested list expanded
}

TEST(PolicyLanguage, Macros) {
    const std::string macros =
        "- macro: is_exec\n  condition: evt.type = exec\n"
        "- macro: bash_exec\n  condition: is_exec and proc.name = bash\n";
    const auto e = sample();
    EXPECT_TRUE(fires("bash_exec", e, macros));
    EXPECT_FALSE(fires("not bash_exec", e, macros));
    EXPECT_TRUE(fires("bash_exec and (is_exec or proc.pid = 1)", e, macros));
}

TEST(PolicyLanguage, AppendAndOverrideListsMacrosRules) {
    const auto set = load_ok(R"(
- list: shells
  items: [sh]
- list: shells
  items: [bash]
  append: true
- list: other
  items: [x]
- list: other
  items: [bash]
  override:
    items: replace
- macro: m
  condition: proc.name in (shells)
- macro: m
  condition: and proc.pid = 4242
  append: true
- rule: r
  desc: d
  condition: m
  output: base
  priority: notice
- rule: r
  condition: and proc.name in (other)
  append: true
- rule: r
  priority: critical
  output: "changed %proc.name"
  override:
    priority: replace
    output: replace
- rule: disabled_later
  desc: d
  condition: evt.type = exec
  output: x
  priority: debug
- rule: disabled_later
  enabled: false
)");
    auto e = sample();
    auto ms = set.evaluate(e);
    ASSERT_EQ(ms.size(), 1u);
    EXPECT_EQ(ms[0].rule->name, "r");
    EXPECT_EQ(ms[0].rule->priority, policy::Priority::Critical);
    EXPECT_EQ(ms[0].output, "changed bash");
    e.proc.pid = 1;
    EXPECT_FALSE(set.matches_any(e));
    EXPECT_EQ(set.rule_count(), 1u);
    EXPECT_EQ(set.rules().size(), 2u);
    ASSERT_NE(set.find_rule("disabled_later"), nullptr);
    EXPECT_FALSE(set.find_rule("disabled_later")->enabled);
}

TEST(PolicyLanguage, OverrideConditionAppendAndReplace) {
    const auto set = load_ok(R"(
- macro: m
  condition: proc.name = nope
- macro: m
  condition: proc.name = bash
  override:
    condition: replace
- rule: r
  desc: d
  condition: m
  output: o
  priority: debug
- rule: r
  condition: and proc.pid = 4242
  override:
    condition: append
)");
    auto e = sample();
    EXPECT_TRUE(set.matches_any(e));
    e.proc.pid = 7;
    EXPECT_FALSE(set.matches_any(e));
}

TEST(PolicyLanguage, Exceptions) {
    const auto set = load_ok(R"(
- list: trusted
  items: [apt, dpkg]
- rule: write_bin
  desc: d
  condition: evt.type = syscall and syscall.path startswith /usr/bin/
  output: o
  priority: error
  exceptions:
    - name: pkg
      fields: proc.name
      values: [trusted]
    - name: pair
      fields: [proc.name, syscall.path]
      comps: [=, startswith]
      values:
        - [installer, /usr/bin/tool]
    - name: multi
      fields: [proc.name, syscall.path]
      comps: [in, =]
      values:
        - [[cp, mv], /usr/bin/x]
- rule: write_bin
  exceptions:
    - name: pkg
      values: [rpm]
  append: true
)");
    auto s = syscall_event("vim", "openat", "/usr/bin/ls");
    EXPECT_TRUE(set.matches_any(s));
    for (const char* ok : {"apt", "dpkg", "rpm"}) {
        s.proc.name = ok;
        EXPECT_FALSE(set.matches_any(s)) << ok;
    }
    s.proc.name = "installer";
    s.syscall.path = "/usr/bin/tool-2";
    EXPECT_FALSE(set.matches_any(s));
    s.syscall.path = "/usr/bin/other";
    EXPECT_TRUE(set.matches_any(s));
    s.proc.name = "mv";
    s.syscall.path = "/usr/bin/x";
    EXPECT_FALSE(set.matches_any(s));
    s.syscall.path = "/usr/bin/y";
    EXPECT_TRUE(set.matches_any(s));
}

TEST(PolicyLanguage, RuleAttributesAndOutput) {
    const auto set = load_ok(R"(
- rule: r
  desc: describe
  condition: evt.type = exec
  output: "exec %proc.name args=%proc.args a2=%proc.aname[2] uid=%proc.uid port=%syscall.port 100%% done by %proc.name."
  priority: EMERGENCY
  tags: [T1059, execution]
  action: pause_vm
  mode: monitor
  rate_limit: 10/min
)");
    const auto ms = set.evaluate(sample());
    ASSERT_EQ(ms.size(), 1u);
    EXPECT_EQ(ms[0].output,
              "exec bash args=bash -c echo hi a2=sshd uid=1000 port=<NA> 100% done by bash.");
    const auto& r = *ms[0].rule;
    EXPECT_EQ(r.desc, "describe");
    EXPECT_EQ(r.priority, policy::Priority::Emergency);
    EXPECT_EQ(r.action, policy::Action::PauseVm);
    EXPECT_EQ(r.mode, policy::Mode::Monitor);
    ASSERT_TRUE(r.rate_limit);
    EXPECT_EQ(r.rate_limit->count, 10u);
    EXPECT_EQ(r.rate_limit->period_ns, 60'000'000'000ull);
    EXPECT_EQ(r.tags, (std::vector<std::string>{"T1059", "execution"}));
    EXPECT_EQ(r.line, 2);
    EXPECT_EQ(policy::priority_name(r.priority), "emergency");
    EXPECT_EQ(policy::action_name(r.action), "pause_vm");
}

TEST(PolicyLanguage, DefaultActionIsAlertAndDenyParses) {
    const auto set = load_ok(R"(
- rule: a
  desc: d
  condition: evt.type = exec
  output: o
  priority: info
- rule: b
  desc: d
  condition: evt.type = exec
  output: o
  priority: debug
  action: deny
- rule: c
  desc: d
  condition: evt.type = exec
  output: o
  priority: debug
  action: dump_memory
)");
    const auto ms = set.evaluate(sample());
    ASSERT_EQ(ms.size(), 3u);
    EXPECT_EQ(ms[0].rule->action, policy::Action::Alert);
    EXPECT_EQ(ms[0].rule->priority, policy::Priority::Informational);
    EXPECT_EQ(ms[1].rule->action, policy::Action::Deny);
    EXPECT_EQ(ms[2].rule->action, policy::Action::DumpMemory);
}

TEST(PolicyLanguage, RuleIndexByEventType) {
    const auto set = load_ok(R"(
- macro: spawned
  condition: evt.type = exec
- rule: exec_only
  desc: d
  condition: spawned and proc.name = a
  output: o
  priority: debug
- rule: exec_or_start
  desc: d
  condition: evt.type in (exec, start) and proc.name = a
  output: o
  priority: debug
- rule: syscall_only
  desc: d
  condition: evt.type = syscall or (evt.type = syscall and proc.pid = 1)
  output: o
  priority: debug
- rule: all_but_exit
  desc: d
  condition: not evt.type = exit
  output: o
  priority: debug
- rule: untyped
  desc: d
  condition: proc.name = a
  output: o
  priority: debug
- rule: impossible
  desc: d
  condition: evt.type = exec and evt.type = exit
  output: o
  priority: debug
)");
    EXPECT_EQ(set.rules_for(EventType::Exec), 4u);
    EXPECT_EQ(set.rules_for(EventType::Start), 3u);
    EXPECT_EQ(set.rules_for(EventType::Syscall), 3u);
    EXPECT_EQ(set.rules_for(EventType::Exit), 1u);
    EXPECT_EQ(set.rules_for(EventType::Rename), 2u);
    EXPECT_EQ(set.rule_count(), 6u);
    auto e = sample();
    e.proc.name = "a";
    EXPECT_EQ(policy_test::names(set.evaluate(e)),
              (std::vector<std::string>{"exec_only", "exec_or_start", "all_but_exit", "untyped"}));
}

TEST(PolicyLanguage, SyscallRulesIndexedBySyscallName) {
    const auto set = load_ok(R"(
- macro: opens
  condition: evt.type = syscall and syscall.name in (open, openat)
- rule: open_rule
  desc: d
  condition: opens and syscall.path = /x
  output: o
  priority: debug
- rule: connect_rule
  desc: d
  condition: evt.type = syscall and syscall.name = connect
  output: o
  priority: debug
- rule: either
  desc: d
  condition: evt.type = syscall and (syscall.name = connect or syscall.name = openat)
  output: o
  priority: debug
- rule: any_syscall
  desc: d
  condition: evt.type = syscall and proc.name = a
  output: o
  priority: debug
- rule: not_connect
  desc: d
  condition: evt.type = syscall and not syscall.name = connect
  output: o
  priority: debug
)");
    EXPECT_EQ(set.rules_for(EventType::Syscall), 5u);
    EXPECT_EQ(set.rules_for_syscall("openat"), 4u);  // open_rule either any_syscall not_connect
    EXPECT_EQ(set.rules_for_syscall("open"), 3u);
    EXPECT_EQ(set.rules_for_syscall("connect"), 4u);
    EXPECT_EQ(set.rules_for_syscall("read"), 2u);
    auto s = syscall_event("a", "openat", "/x");
    EXPECT_EQ(policy_test::names(set.evaluate(s)),
              (std::vector<std::string>{"open_rule", "either", "any_syscall", "not_connect"}));
    s.syscall.name.reset();  // unset: only rules without a syscall.name constraint remain
    EXPECT_EQ(policy_test::names(set.evaluate(s)),
              (std::vector<std::string>{"any_syscall", "not_connect"}));
}

TEST(PolicyLanguage, MacroValuesAreSharedWithinOneEvaluation) {
    // The same macro in several rules (memoised per event) gives the same answers as inline.
    const auto set = load_ok(R"(
- macro: m
  condition: proc.name = bash
- rule: a
  desc: d
  condition: evt.type = exec and m
  output: o
  priority: debug
- rule: b
  desc: d
  condition: evt.type = exec and not m
  output: o
  priority: debug
- rule: c
  desc: d
  condition: evt.type = exec and (m or proc.pid = 1)
  output: o
  priority: debug
)");
    auto e = sample();
    EXPECT_EQ(policy_test::names(set.evaluate(e)), (std::vector<std::string>{"a", "c"}));
    e.proc.name = "zsh";
    EXPECT_EQ(policy_test::names(set.evaluate(e)), (std::vector<std::string>{"b"}));
}

TEST(PolicyLanguage, MultipleFilesLoadInOrder) {
    const std::string dir = ::testing::TempDir();
    const std::string a = dir + "/policy_a.yaml", b = dir + "/policy_b.yaml";
    {
        std::FILE* f = std::fopen(a.c_str(), "w");
        ASSERT_NE(f, nullptr);
        std::fputs(rule_yaml("evt.type = exec and proc.name = bash").c_str(), f);
        std::fclose(f);
        f = std::fopen(b.c_str(), "w");
        ASSERT_NE(f, nullptr);
        std::fputs("- rule: r\n  enabled: false\n", f);
        std::fclose(f);
    }
    auto one = PolicySet::load(a);
    ASSERT_TRUE(one) << policy_test::join_errors(one.errors);
    EXPECT_TRUE(one.set->matches_any(sample()));
    auto both = PolicySet::load({a, b});
    ASSERT_TRUE(both) << policy_test::join_errors(both.errors);
    EXPECT_FALSE(both.set->matches_any(sample()));
    EXPECT_TRUE(policy::check({a, b}).empty());
}

TEST(PolicyLanguage, RateLimiter) {
    const auto set = load_ok(R"(
- rule: limited
  desc: d
  condition: evt.type = exec
  output: o
  priority: debug
  rate_limit: 2/s
- rule: unlimited
  desc: d
  condition: evt.type = exec
  output: o
  priority: debug
)");
    const auto& limited = *set.find_rule("limited");
    const auto& unlimited = *set.find_rule("unlimited");
    policy::RateLimiter rl;
    constexpr std::uint64_t kSec = 1'000'000'000;
    EXPECT_TRUE(rl.allow(limited, 10 * kSec));
    EXPECT_TRUE(rl.allow(limited, 10 * kSec));
    EXPECT_FALSE(rl.allow(limited, 10 * kSec));            // burst of 2 used
    EXPECT_TRUE(rl.allow(limited, 10 * kSec + kSec / 2));  // one token back after 0.5 s
    EXPECT_FALSE(rl.allow(limited, 10 * kSec + kSec / 2));
    EXPECT_EQ(rl.dropped(limited), 2u);
    for (int i = 0; i < 100; ++i) EXPECT_TRUE(rl.allow(unlimited, 10 * kSec));
}

TEST(PolicyLanguage, DeepNestingIsRejectedNotCrashing) {
    std::string cond(10000, '(');
    cond += "proc.pid = 1";
    cond += std::string(10000, ')');
    auto res = PolicySet::load_string(rule_yaml(cond), "deep.yaml");
    ASSERT_FALSE(res);
    EXPECT_NE(res.errors[0].message.find("nested too deeply"), std::string::npos);
    std::string ok(100, '(');
    ok += "proc.pid = 4242" + std::string(100, ')');
    EXPECT_TRUE(fires(ok, sample()));
}

TEST(PolicyLanguage, EmptySetAndEmptyFile) {
    PolicySet empty;
    EXPECT_FALSE(empty.matches_any(sample()));
    EXPECT_EQ(empty.rule_count(), 0u);
    auto res = PolicySet::load_string("", "empty.yaml");
    ASSERT_TRUE(res);
    EXPECT_EQ(res.set->rule_count(), 0u);
}

}  // namespace
