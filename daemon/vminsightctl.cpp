// vminsightctl: checks rule files, and talks to a running vminsightd over its control socket.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "control_server.hpp"
#include "policy/policy.hpp"

namespace {

constexpr const char* kUsage =
    "usage: vminsightctl policy check FILE...\n"
    "       vminsightctl [--socket PATH] status [--json]\n"
    "       vminsightctl [--socket PATH] policy reload\n"
    "       vminsightctl [--socket PATH] resume\n"
    "  policy check   validates rule files, loaded together in order (later files may append\n"
    "                 to or override earlier ones); every error as file:line:col: reason;\n"
    "                 says what the kernel module would enforce. Exit 1 on any error.\n"
    "  status         the daemon's VM, rules, alerts and trap counters\n"
    "  policy reload  the daemon loads its rule files again (a bad set is refused whole)\n"
    "  resume         continues a VM a pause_vm rule paused\n"
    "  --socket PATH  the daemon's --control socket (default $VMINSIGHT_SOCKET, else\n"
    "                 /run/vminsight/control.sock)\n";

int usage() {
    std::fputs(kUsage, stderr);
    return 2;
}

int policy_check(const std::vector<std::string>& paths) {
    std::vector<std::filesystem::path> files(paths.begin(), paths.end());
    const auto res = policy::PolicySet::load(files);
    for (const auto& e : res.errors) std::fprintf(stderr, "%s\n", e.str().c_str());
    if (!res) {
        std::fprintf(stderr, "%zu error(s)\n", res.errors.size());
        return 1;
    }
    const auto& set = *res.set;
    std::printf("OK: %zu rules enabled of %zu (exec %zu, syscall %zu, start %zu, exit %zu)\n",
                set.rule_count(), set.rules().size(), set.rules_for(policy::EventType::Exec),
                set.rules_for(policy::EventType::Syscall), set.rules_for(policy::EventType::Start),
                set.rules_for(policy::EventType::Exit));
    // What the module enforces on a VM no scoped policy selects; scoped policies add theirs.
    const policy::Enforcement e = policy::enforcement(set.for_vm(policy::VmIdentity{}));
    if (!e.error.empty()) {
        std::fprintf(stderr, "deny rules cannot be enforced together: %s\n", e.error.c_str());
        return 1;
    }
    if (!e.rules.empty()) {
        std::printf("enforced by the module on every VM (%zu deny rules):", e.rules.size());
        if (!e.deny_syscalls.empty()) {
            std::printf(" deny");
            for (const auto& s : e.deny_syscalls) std::printf(" %s", s.c_str());
            std::printf(";");
        }
        if (e.exec_allow)
            std::printf(" exec allow list of %zu paths", e.exec_paths.size());
        else if (!e.exec_paths.empty())
            std::printf(" exec deny list of %zu paths", e.exec_paths.size());
        std::printf("\n");
    }
    std::vector<std::string> scoped;
    for (const policy::Rule* r : set.active_rules())
        if (r->scope && std::find(scoped.begin(), scoped.end(), r->policy) == scoped.end())
            scoped.push_back(r->policy);
    for (const auto& p : scoped) {
        std::size_t n = 0, deny = 0;
        for (const policy::Rule* r : set.active_rules())
            if (r->policy == p) {
                ++n;
                deny += r->action == policy::Action::Deny && r->mode == policy::Mode::Enforce;
            }
        std::printf("policy '%s': %zu rules (%zu enforced deny) on the VMs it selects\n", p.c_str(),
                    n, deny);
    }
    return 0;
}

void print_status(const nlohmann::json& r) {
    const auto& m = r.value("monitor", nlohmann::json::object());
    std::printf("vm          %s %s (qemu pid %d)\n", r["vm"].value("name", "").c_str(),
                r["vm"].value("uuid", "").c_str(), r.value("qemu_pid", 0));
    std::printf("rules       %zu enabled; alerts %llu, suppressed %llu\n",
                r.value("rules", std::size_t{0}),
                static_cast<unsigned long long>(r.value("alerts", 0ULL)),
                static_cast<unsigned long long>(r.value("alerts_suppressed", 0ULL)));
    std::printf("traps       cr3 %s, syscalls %s; exec control %s\n",
                m.value("cr3_mode", "?").c_str(), m.value("syscall_mode", "?").c_str(),
                m.value("exec_control", "?").c_str());
    std::printf("records     %llu read, %llu lost in the kernel\n",
                static_cast<unsigned long long>(m.value("records_read", 0ULL)),
                static_cast<unsigned long long>(m.value("records_lost_kernel", 0ULL)));
    std::printf("syscalls    %llu trapped, %llu denied\n",
                static_cast<unsigned long long>(m.value("syscalls_trapped", 0ULL)),
                static_cast<unsigned long long>(m.value("syscalls_denied", 0ULL)));
    std::printf("paused      %s\n", r.value("paused_by_rule", false) ? "yes, by a rule" : "no");
    const auto& f = r.value("feed", nlohmann::json());
    if (f.is_object())
        for (const auto& s : f.value("sinks", nlohmann::json::array()))
            std::printf("sink        %-12s %-6s %s  delivered %llu, backlog %llu%s%s\n",
                        s.value("name", "").c_str(), s.value("type", "").c_str(),
                        s.value("up", false) ? "up  " : "DOWN",
                        static_cast<unsigned long long>(s.value("delivered", 0ULL)),
                        static_cast<unsigned long long>(s.value("backlog", 0ULL)),
                        s.value("up", false) ? "" : "; ",
                        s.value("up", false) ? "" : s.value("last_error", "").c_str());
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    const char* env = std::getenv("VMINSIGHT_SOCKET");
    std::string socket = env && *env ? env : "/run/vminsight/control.sock";
    bool json = false;
    std::vector<std::string> words;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--socket" && i + 1 < args.size())
            socket = args[++i];
        else if (args[i] == "--json")
            json = true;
        else if (args[i] == "-h" || args[i] == "--help")
            return std::fputs(kUsage, stdout), 0;
        else
            words.push_back(args[i]);
    }
    if (words.size() >= 2 && words[0] == "policy" && words[1] == "check") {
        if (words.size() < 3) return usage();
        return policy_check({words.begin() + 2, words.end()});
    }
    std::string cmd;
    if (words == std::vector<std::string>{"status"}) cmd = "status";
    if (words == std::vector<std::string>{"policy", "reload"}) cmd = "policy-reload";
    if (words == std::vector<std::string>{"resume"}) cmd = "resume";
    if (cmd.empty()) return usage();
    try {
        const nlohmann::json r = vmid::control_request(socket, {{"cmd", cmd}});
        const bool ok = r.value("ok", false);
        if (json) {
            std::printf("%s\n", r.dump(2).c_str());
        } else if (!ok) {
            std::fprintf(
                stderr, "vminsightctl: %s\n",
                r.value("error", cmd == "policy-reload" ? "refused; the rules in force before stay"
                                                        : "failed")
                    .c_str());
            for (const auto& e : r.value("errors", nlohmann::json::array()))
                std::fprintf(stderr, "%s\n", e.get<std::string>().c_str());
        } else if (cmd == "status") {
            print_status(r);
        } else if (cmd == "policy-reload") {
            std::printf("reloaded: %zu rules\n", r.value("rules", std::size_t{0}));
        } else {
            std::printf("%s\n", r.value("result", "done").c_str());
        }
        return ok ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "vminsightctl: %s\n", e.what());
        return 1;
    }
}
