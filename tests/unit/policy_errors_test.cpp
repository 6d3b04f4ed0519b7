// Policy validation: every error kind with its file:line:col, and reload atomicity.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "policy_test_support.hpp"

namespace {

using policy::PolicySet;
using policy_test::join_errors;

std::vector<policy::Diagnostic> errors_of(std::string_view yaml) {
    return PolicySet::load_string(yaml, "t.yaml").errors;
}

// Expects exactly one error "t.yaml:line:col: message..." starting with `prefix`.
void expect_one(std::string_view yaml, int line, int col, std::string_view prefix) {
    const auto errs = errors_of(yaml);
    ASSERT_EQ(errs.size(), 1u) << join_errors(errs);
    EXPECT_EQ(errs[0].file, "t.yaml");
    EXPECT_EQ(errs[0].line, line) << errs[0].str();
    EXPECT_EQ(errs[0].col, col) << errs[0].str();
    EXPECT_TRUE(errs[0].message.starts_with(prefix)) << errs[0].str();
}

constexpr std::string_view kTail = "  output: o\n  priority: debug\n";

std::string rule(std::string_view cond) {
    return "- rule: r\n  desc: d\n  condition: " + std::string(cond) + "\n" + std::string(kTail);
}

TEST(PolicyErrors, UnknownField) {
    expect_one(rule("evt.type = exec and proc.nam = bash"), 3, 34, "unknown field 'proc.nam'");
}

TEST(PolicyErrors, UnknownFieldInOutput) {
    expect_one(
        "- rule: r\n  desc: d\n  condition: evt.type = exec\n  output: \"x %proc.foo y\"\n"
        "  priority: debug\n",
        4, 14, "unknown field 'proc.foo' in output");
}

TEST(PolicyErrors, TypeMismatchStringOpOnNumber) {
    expect_one(rule("proc.pid startswith 1"), 3, 23, "type mismatch: operator 'startswith'");
}

TEST(PolicyErrors, TypeMismatchNumberOpOnString) {
    expect_one(rule("proc.name > 3"), 3, 24, "type mismatch: operator '>' needs a number");
}

TEST(PolicyErrors, TypeMismatchNumberValue) {
    expect_one(rule("proc.uid = root"), 3, 25, "type mismatch: 'proc.uid' is a number");
}

TEST(PolicyErrors, UnknownMacro) {
    expect_one(rule("evt.type = exec and is_shell"), 3, 34, "unknown macro 'is_shell'");
}

TEST(PolicyErrors, UnknownListForNumberField) {
    expect_one(rule("proc.uid in (0, admin_uids)"), 3, 30, "unknown list 'admin_uids'");
}

TEST(PolicyErrors, AppendToUnknownListMacroRule) {
    expect_one("- list: nope\n  items: [a]\n  append: true\n", 1, 9,
               "cannot append to or override undefined list 'nope'");
    expect_one("- macro: nope\n  condition: proc.pid = 1\n  append: true\n", 1, 10,
               "cannot append to or override undefined macro 'nope'");
    expect_one("- rule: nope\n  condition: and proc.pid = 1\n  append: true\n", 1, 9,
               "cannot append to or override undefined rule 'nope'");
}

TEST(PolicyErrors, MacroCycle) {
    expect_one(
        "- macro: a\n  condition: b and proc.pid = 1\n"
        "- macro: b\n  condition: proc.pid = 2 or a\n" +
            rule("a"),
        4, 30, "macro cycle: a -> b -> a");
}

TEST(PolicyErrors, SelfReferencingMacro) {
    expect_one("- macro: a\n  condition: a\n", 2, 14, "macro cycle: a -> a");
}

TEST(PolicyErrors, BadRegex) {
    expect_one(rule("proc.name regex \"(unclosed\""), 3, 30, "bad regex '(unclosed'");
}

TEST(PolicyErrors, BadGlob) {
    expect_one(rule("proc.name glob \"[abc\""), 3, 29, "bad glob '[abc'");
}

TEST(PolicyErrors, BadPriority) {
    expect_one(
        "- rule: r\n  desc: d\n  condition: evt.type = exec\n  output: o\n"
        "  priority: urgent\n",
        5, 13, "bad priority 'urgent'");
}

TEST(PolicyErrors, BadActionModeRateLimit) {
    const auto errs = errors_of(
        "- rule: r\n  desc: d\n  condition: evt.type = exec\n  output: o\n"
        "  priority: debug\n  action: kill\n  mode: strict\n  rate_limit: fast\n");
    ASSERT_EQ(errs.size(), 3u) << join_errors(errs);
    EXPECT_EQ(errs[0].str(), "t.yaml:6:11: bad action 'kill' (alert, deny, pause_vm, dump_memory)");
    EXPECT_EQ(errs[1].str(), "t.yaml:7:9: bad mode 'strict' (enforce, monitor)");
    EXPECT_TRUE(errs[2].str().starts_with("t.yaml:8:15: bad rate_limit 'fast'"));
}

TEST(PolicyErrors, DuplicateRuleMacroList) {
    expect_one(rule("evt.type = exec") + rule("evt.type = exit"), 6, 9,
               "duplicate rule 'r' (first defined at t.yaml:1:3)");
    expect_one("- macro: m\n  condition: proc.pid = 1\n- macro: m\n  condition: proc.pid = 2\n", 3,
               10, "duplicate macro 'm'");
    expect_one("- list: l\n  items: [a]\n- list: l\n  items: [b]\n", 3, 9, "duplicate list 'l'");
}

TEST(PolicyErrors, YamlSyntax) {
    expect_one("- rule: r\n  condition: [unclosed\n  output: x\n", 3, 9,
               "YAML: end of sequence flow not found");
    expect_one("- rule: r\n  desc: d\n - x\n", 3, 2, "YAML: end of sequence not found");
}

TEST(PolicyErrors, SyntaxErrorsInConditions) {
    expect_one(rule("(proc.pid = 1"), 3, 26, "expected ')' (at end)");
    expect_one(rule("proc.pid = 1 proc.pid = 2"), 3, 27, "unexpected 'proc.pid'");
    expect_one(rule("proc.name bash"), 3, 24, "expected an operator after 'proc.name'");
    expect_one(rule("proc.name in bash"), 3, 27, "'in' needs a parenthesised list");
    expect_one(rule("proc.name ! bash"), 3, 24, "unexpected '!'");
    expect_one(rule("proc.name = \"open"), 3, 26, "unterminated string");
    expect_one(rule("proc.name = bash and"), 3, 31, "unexpected end of condition");
    expect_one(rule("proc.args[x] = 1"), 3, 14, "bad index in 'proc.args[x]'");
    expect_one(rule("proc.name[1] = a"), 3, 14, "field 'proc.name' does not take an index");
    expect_one(rule("evt.type = boot"), 3, 25, "unknown event type 'boot'");
}

TEST(PolicyErrors, StructureErrors) {
    expect_one(
        "- rule: r\n  desc: d\n  conditon: x\n  condition: evt.type = exec\n" + std::string(kTail),
        3, 3, "unknown key 'conditon' in rule");
    expect_one("- rule: r\n  desc: d\n  output: o\n  priority: debug\n", 1, 9,
               "rule 'r' has no 'condition'");
    expect_one("- foo: bar\n", 1, 3, "expected a rule, macro, list or policy item");
    expect_one("rule: r\n", 1, 1, "a rule file must be a list");
    expect_one("- rule: r\n  desc: d\n  condition: evt.type = exec\n" + std::string(kTail) +
                   "  enabled: maybe\n",
               6, 12, "'enabled' must be true or false");
    expect_one("- rule: r\n  desc: d\n  condition: evt.type = exec\n" + std::string(kTail) +
                   "- rule: r\n  priority: error\n  override:\n    priority: append\n",
               9, 5, "'priority' cannot be overridden with append");
    expect_one("- rule: r\n  desc: d\n  condition: evt.type = exec\n" + std::string(kTail) +
                   "- rule: r\n  priority: error\n  append: true\n",
               7, 13, "'priority' cannot be appended");
}

TEST(PolicyErrors, ExceptionErrors) {
    const std::string base = "- rule: r\n  desc: d\n  condition: evt.type = exec\n" +
                             std::string(kTail) + "  exceptions:\n";
    expect_one(base + "    - name: e\n      fields: [proc.nope]\n      values: []\n", 8, 16,
               "unknown field 'proc.nope'");
    expect_one(base +
                   "    - name: e\n      fields: [proc.name, proc.pid]\n      values:\n"
                   "        - [a]\n",
               10, 12, "exception 'e': 1 values for 2 fields");
    expect_one(base + "    - name: e\n      fields: [proc.pid]\n      values:\n        - [abc]\n",
               10, 12, "exception 'e': type mismatch");
    expect_one(base +
                   "    - name: e\n      fields: [proc.name]\n      comps: [~=]\n"
                   "      values: []\n",
               9, 15, "bad comparison operator '~='");
}

TEST(PolicyErrors, ErrorsInsideFoldedConditionPointAtTheToken) {
    const auto errs = errors_of(
        "- rule: r\n  desc: d\n  condition: >\n    evt.type = exec and\n"
        "    proc.name = a and\n    proc.pid contains 3\n" +
        std::string(kTail));
    ASSERT_EQ(errs.size(), 1u) << join_errors(errs);
    EXPECT_EQ(errs[0].line, 6);
    EXPECT_EQ(errs[0].col, 14);
}

TEST(PolicyErrors, ErrorInAppendedConditionPointsAtTheAppend) {
    const auto errs = errors_of(rule("evt.type = exec") +
                                "- rule: r\n  condition: and proc.bad = 1\n  append: true\n");
    ASSERT_EQ(errs.size(), 1u) << join_errors(errs);
    EXPECT_EQ(errs[0].str(), "t.yaml:7:18: unknown field 'proc.bad'");
}

TEST(PolicyErrors, AllErrorsReportedSortedByPosition) {
    const auto errs = errors_of(rule("proc.bad = 1") + "- rule: s\n  desc: d\n  condition: nope\n" +
                                std::string(kTail) + "- macro: m\n  condition: x.y = 1\n");
    ASSERT_EQ(errs.size(), 3u) << join_errors(errs);
    EXPECT_EQ(errs[0].line, 3);
    EXPECT_EQ(errs[1].line, 8);
    EXPECT_EQ(errs[2].line, 12);
}

TEST(PolicyErrors, CheckFileAndMissingFile) {
    const std::string path = ::testing::TempDir() + "/policy_bad.yaml";
    {
        std::ofstream f(path);
        f << rule("proc.bad = 1");
    }
    const auto errs = policy::check(path);
    ASSERT_EQ(errs.size(), 1u);
    EXPECT_EQ(errs[0].str(), path + ":3:14: unknown field 'proc.bad'");
    const auto missing = policy::check(std::filesystem::path("/nonexistent/x.yaml"));
    ASSERT_EQ(missing.size(), 1u);
    EXPECT_EQ(missing[0].str(), "/nonexistent/x.yaml: cannot read file");
}

TEST(PolicyErrors, ReloadIsAtomic) {
    const std::string path = ::testing::TempDir() + "/policy_reload.yaml";
    {
        std::ofstream f(path);
        f << rule("evt.type = exec and proc.name = bash");
    }
    auto first = PolicySet::load(path);
    ASSERT_TRUE(first) << join_errors(first.errors);
    PolicySet active = *first.set;
    const auto e = policy_test::exec_event("bash", "/bin/bash", {"bash"});
    EXPECT_TRUE(active.matches_any(e));

    // A file with one good rule and one bad one: no partial set comes back.
    {
        std::ofstream f(path);
        f << rule("evt.type = exec and proc.name = zsh") << "- rule: broken\n  desc: d\n"
          << "  condition: proc.nope = 1\n"
          << kTail;
    }
    auto second = PolicySet::load(path);
    EXPECT_FALSE(second);
    EXPECT_FALSE(second.set.has_value());
    ASSERT_EQ(second.errors.size(), 1u);
    if (second) active = *second.set;
    // The old set is still in use and still works.
    EXPECT_TRUE(active.matches_any(e));
    EXPECT_EQ(active.rule_count(), 1u);

    // A fixed file replaces it.
    {
        std::ofstream f(path);
        f << rule("evt.type = exec and proc.name = zsh");
    }
    auto third = PolicySet::load(path);
    ASSERT_TRUE(third);
    PolicySet old = active;
    active = *third.set;
    EXPECT_FALSE(active.matches_any(e));
    EXPECT_TRUE(old.matches_any(e));  // sets are independent values
}

}  // namespace
