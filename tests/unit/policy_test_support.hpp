// Helpers shared by the policy engine tests.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.hpp"

namespace policy_test {

inline std::string join_errors(const std::vector<policy::Diagnostic>& errors) {
    std::string out;
    for (const auto& e : errors) out += e.str() + "\n";
    return out;
}

// Loads YAML that must be valid.
inline policy::PolicySet load_ok(std::string_view yaml) {
    auto res = policy::PolicySet::load_string(yaml, "test.yaml");
    EXPECT_TRUE(res) << join_errors(res.errors);
    return res ? std::move(*res.set) : policy::PolicySet{};
}

// A one-rule policy with the given condition (and optional extra YAML before it).
inline std::string rule_yaml(std::string_view condition, std::string_view prefix = "") {
    std::string y(prefix);
    y += "- rule: r\n  desc: d\n  condition: '";
    for (char c : condition) {
        if (c == '\'') y += '\'';  // YAML single-quote escaping
        y += c;
    }
    y += "'\n  output: out\n  priority: warning\n";
    return y;
}

inline std::vector<std::string> names(const std::vector<policy::Match>& ms) {
    std::vector<std::string> out;
    for (const auto& m : ms) out.push_back(m.rule->name);
    return out;
}

// Event builders.
inline policy::Event exec_event(std::string name, std::string exe, std::vector<std::string> args,
                                std::string parent = "bash") {
    policy::Event e;
    e.type = policy::EventType::Exec;
    e.vm.name = "vm1";
    e.proc.pid = 4242;
    e.proc.ppid = 100;
    e.proc.name = std::move(name);
    e.proc.exe = std::move(exe);
    e.set_args(std::move(args));
    e.proc.uid = 1000;
    e.proc.euid = 1000;
    e.proc.gid = 1000;
    e.proc.pname = parent;
    e.proc.anames = {parent, "sshd", "systemd"};
    return e;
}

inline policy::Event syscall_event(std::string proc_name, std::string syscall,
                                   std::optional<std::string> path = std::nullopt,
                                   std::optional<std::int64_t> flags = std::nullopt) {
    policy::Event e;
    e.type = policy::EventType::Syscall;
    e.vm.name = "vm1";
    e.proc.pid = 777;
    e.proc.name = std::move(proc_name);
    e.proc.uid = 1000;
    e.proc.euid = 1000;
    e.syscall.name = std::move(syscall);
    e.syscall.path = std::move(path);
    e.syscall.flags = flags;
    return e;
}

}  // namespace policy_test
