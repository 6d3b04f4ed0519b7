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
#include "libvirt/connection.hpp"
#include "policy/policy.hpp"

namespace {

constexpr const char* kUsage =
    "usage: vminsightctl policy check FILE...\n"
    "       vminsightctl [--connect URI] enable DOMAIN [--policy NAME] [--label KEY=VALUE]...\n"
    "       vminsightctl [--connect URI] disable DOMAIN\n"
    "       vminsightctl [--socket PATH] [--json] status | domains | stats\n"
    "       vminsightctl [--socket PATH] [--json] ps DOMAIN\n"
    "       vminsightctl [--socket PATH] events --follow [--domain DOMAIN] [--filter "
    "KEY=VALUE]...\n"
    "       vminsightctl [--socket PATH] policy reload\n"
    "       vminsightctl [--socket PATH] resume [DOMAIN]\n"
    "  policy check   validates rule files, loaded together in order (later files may append\n"
    "                 to or override earlier ones); every error as file:line:col: reason;\n"
    "                 says what the kernel module would enforce. Exit 1 on any error.\n"
    "  enable         turns monitoring of a libvirt domain on, in its own metadata (live and\n"
    "                 persistent); --policy names the policy it is judged by, --label adds\n"
    "                 metadata a policy's scope can select on. The daemon attaches at once\n"
    "                 if the domain runs, and whenever it starts.\n"
    "  disable        turns it off (the daemon detaches)\n"
    "  status         what the daemon watches: libvirt, domains attached, rules, feed sinks\n"
    "  domains        every libvirt domain: monitored or not, attached, events/s, losses\n"
    "  ps             the processes of an attached domain, as last listed\n"
    "  events         the live event stream, one JSON line per event; --domain and --filter\n"
    "                 (dotted field = value, e.g. event.action=exec) select\n"
    "  stats          every attached VM's counters (module, traps, alerts) and the feed's\n"
    "  policy reload  the daemon loads its rule files again (a bad set is refused whole)\n"
    "  resume         continues a VM a pause_vm rule paused\n"
    "  --socket PATH  the daemon's --control socket (default $VMINSIGHT_SOCKET, else\n"
    "                 /run/vminsight/control.sock)\n"
    "  --connect URI  libvirt (default $LIBVIRT_DEFAULT_URI, else qemu:///system)\n"
    "  --json         the daemon's reply as JSON, for scripts\n";

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
    std::printf(
        "OK: %zu rules enabled of %zu (exec %zu, syscall %zu, start %zu, exit %zu, tamper %zu)\n",
        set.rule_count(), set.rules().size(), set.rules_for(policy::EventType::Exec),
        set.rules_for(policy::EventType::Syscall), set.rules_for(policy::EventType::Start),
        set.rules_for(policy::EventType::Exit), set.rules_for(policy::EventType::Tamper));
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

using nlohmann::json;

unsigned long long u64(const json& j, const char* k) { return j.value(k, 0ULL); }

void print_vm(const json& r) {
    const auto& m = r.value("monitor", json::object());
    const auto& vm = r.value("vm", json::object());
    std::printf("vm          %s %s (qemu pid %d)%s%s\n", vm.value("name", "").c_str(),
                vm.value("uuid", "").c_str(), r.value("qemu_pid", 0),
                vm.value("policy", "").empty() ? "" : ", policy ", vm.value("policy", "").c_str());
    std::printf("rules       %zu enabled; alerts %llu, suppressed %llu\n",
                r.value("rules", std::size_t{0}), u64(r, "alerts"), u64(r, "alerts_suppressed"));
    std::printf("traps       cr3 %s, syscalls %s, entry MSRs %s; exec control %s\n",
                m.value("cr3_mode", "?").c_str(), m.value("syscall_mode", "?").c_str(),
                m.value("msr_watch_mode", "?").c_str(), m.value("exec_control", "?").c_str());
    std::printf("tamper      %llu findings; %llu entry-MSR writes intercepted\n",
                u64(m, "tamper_findings"), u64(m, "msr_writes_intercepted"));
    std::printf("records     %llu read, %llu lost in the kernel\n", u64(m, "records_read"),
                u64(m, "records_lost_kernel"));
    std::printf("syscalls    %llu trapped, %llu denied\n", u64(m, "syscalls_trapped"),
                u64(m, "syscalls_denied"));
    std::printf("paused      %s\n", r.value("paused_by_rule", false) ? "yes, by a rule" : "no");
}

void print_feed(const json& r) {
    const auto& f = r.value("feed", json());
    if (!f.is_object()) return;
    for (const auto& s : f.value("sinks", json::array()))
        std::printf("sink        %-12s %-6s %s  delivered %llu, backlog %llu%s%s\n",
                    s.value("name", "").c_str(), s.value("type", "").c_str(),
                    s.value("up", false) ? "up  " : "DOWN", u64(s, "delivered"), u64(s, "backlog"),
                    s.value("up", false) ? "" : "; ",
                    s.value("up", false) ? "" : s.value("last_error", "").c_str());
}

void print_status(const json& r) {
    if (!r.contains("vms")) {  // one VM (--qemu-pid)
        print_vm(r);
        print_feed(r);
        return;
    }
    const auto& lv = r.value("libvirt", json::object());
    std::printf("libvirt     %s (%s)\n", lv.value("uri", "").c_str(),
                lv.value("state", "").c_str());
    std::printf("domains     %s\n", r.value("summary", "").c_str());
    std::printf("rules       %zu loaded\n", r.value("rules", std::size_t{0}));
    print_feed(r);
    for (const auto& vm : r["vms"]) {
        std::printf("\n");
        print_vm(vm);
    }
}

// A table: columns as wide as their widest cell, the last one free.
void print_table(const std::vector<std::vector<std::string>>& rows) {
    std::vector<std::size_t> width;
    for (const auto& row : rows)
        for (std::size_t i = 0; i < row.size(); ++i) {
            if (width.size() <= i) width.push_back(0);
            width[i] = std::max(width[i], row[i].size());
        }
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t i = 0; i < row.size(); ++i) {
            line += row[i];
            if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
        }
        std::printf("%s\n", line.c_str());
    }
}

// Guest strings may hold anything: shown without control characters.
std::string printable(std::string s) {
    for (char& c : s)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    return s;
}

void print_domains(const json& r) {
    std::vector<std::vector<std::string>> rows = {
        {"NAME", "STATE", "MONITOR", "POLICY", "ATTACHED", "EVENTS", "EVENTS/S", "LOST", "NOTE"}};
    for (const auto& d : r.value("domains", json::array())) {
        char rate[32] = "-";
        if (d.contains("events_per_s"))
            std::snprintf(rate, sizeof rate, "%.1f", d["events_per_s"].get<double>());
        const bool att = d.value("attached", false);
        // Names and errors come from domain XML other users may write: shown printable.
        std::string note = printable(d.value("attach_error", d.value("metadata_error", "")));
        rows.push_back({printable(d.value("name", "")), d.value("state", ""),
                        d.value("monitoring", false) ? "on" : "off",
                        d.value("policy", "").empty() ? "-" : printable(d.value("policy", "")),
                        att ? "yes" : "no", att ? std::to_string(u64(d, "events")) : "-", rate,
                        att ? std::to_string(u64(d, "records_lost")) : "-", note});
    }
    print_table(rows);
}

void print_ps(const json& r) {
    std::vector<std::vector<std::string>> rows = {{"PID", "PPID", "UID", "COMM", "EXE", "ARGS"}};
    for (const auto& p : r.value("processes", json::array())) {
        std::string args;
        for (const auto& a : p.value("args", json::array()))
            args += (args.empty() ? "" : " ") + a.get<std::string>();
        rows.push_back(
            {std::to_string(p.value("pid", 0)), std::to_string(p.value("ppid", 0)),
             p.contains("uid") ? std::to_string(p["uid"].get<long long>()) : "-",
             printable(p.value("comm", "")),
             p.value("kernel_thread", false) ? "[kernel]" : printable(p.value("exe", "")),
             printable(args)});
    }
    print_table(rows);
}

void print_stats(const json& r) {
    for (const auto& vm : r.value("vms", json::array())) {
        std::printf("%s (%s)\n", vm["vm"].value("name", "").c_str(),
                    vm["vm"].value("uuid", "").c_str());
        std::printf("  %-26s %llu\n", "events", u64(vm, "events"));
        const json mon = vm.value("monitor", json::object());
        for (const auto& [k, v] : mon.items())
            if (v.is_number()) std::printf("  %-26s %s\n", k.c_str(), v.dump().c_str());
    }
    print_feed(r);
}

int libvirt_toggle(const std::string& uri, const std::vector<std::string>& words) {
    namespace lv = vmid::libvirt;
    if (words.size() < 2) return usage();
    lv::MonitorSetting s;
    s.enabled = words[0] == "enable";
    for (std::size_t i = 2; i < words.size(); ++i) {
        if (s.enabled && words[i] == "--policy" && i + 1 < words.size()) {
            s.policy = words[++i];
        } else if (s.enabled && words[i] == "--label" && i + 1 < words.size()) {
            const std::string& kv = words[++i];
            const auto eq = kv.find('=');
            if (eq == std::string::npos || eq == 0) {
                std::fprintf(stderr, "vminsightctl: --label '%s' is not KEY=VALUE\n", kv.c_str());
                return 2;
            }
            s.labels[kv.substr(0, eq)] = kv.substr(eq + 1);
        } else {
            return usage();
        }
    }
    try {
        const auto conn = lv::connect(uri, /*read_only=*/false);
        const auto dom = lv::lookup(conn.get(), words[1]);
        if (!s.enabled) {  // keep the rest of the setting, so enable restores it
            try {
                if (auto cur = lv::read_monitor(dom.get())) {
                    s = *cur;
                    s.enabled = false;
                }
            } catch (const lv::MetadataError&) {
                // replaced by a valid "off"
            }
        }
        const std::string where = lv::write_monitor(dom.get(), s);
        std::printf("%s: monitoring %s (%s)\n", words[1].c_str(), s.enabled ? "on" : "off",
                    where.c_str());
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "vminsightctl: %s\n", e.what());
        return 1;
    }
}

int follow_events(const std::string& socket, const std::vector<std::string>& words) {
    json req = {{"cmd", "events"}, {"filter", json::array()}};
    bool follow = false;
    for (std::size_t i = 1; i < words.size(); ++i) {
        if (words[i] == "--follow" || words[i] == "-f")
            follow = true;
        else if (words[i] == "--domain" && i + 1 < words.size())
            req["domain"] = words[++i];
        else if (words[i] == "--filter" && i + 1 < words.size())
            req["filter"].push_back(words[++i]);
        else
            return usage();
    }
    if (!follow) {
        std::fprintf(stderr,
                     "vminsightctl: events needs --follow (past events are in the feed's sinks)\n");
        return 2;
    }
    bool first = true;
    int rc = 0;
    vmid::control_stream(socket, req, [&](const json& line) {
        if (first) {
            first = false;
            if (!line.value("ok", false)) {
                std::fprintf(stderr, "vminsightctl: %s\n", line.value("error", "refused").c_str());
                rc = 1;
                return false;
            }
            return true;
        }
        std::printf("%s\n", line.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
        std::fflush(stdout);
        return true;
    });
    return rc;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    const char* env = std::getenv("VMINSIGHT_SOCKET");
    std::string socket = env && *env ? env : "/run/vminsight/control.sock";
    const char* uri_env = std::getenv("LIBVIRT_DEFAULT_URI");
    std::string uri = uri_env && *uri_env ? uri_env : "qemu:///system";
    bool json_out = false;
    std::vector<std::string> words;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--socket" && i + 1 < args.size())
            socket = args[++i];
        else if (args[i] == "--connect" && i + 1 < args.size())
            uri = args[++i];
        else if (args[i] == "--json")
            json_out = true;
        else if (args[i] == "-h" || args[i] == "--help")
            return std::fputs(kUsage, stdout), 0;
        else
            words.push_back(args[i]);
    }
    if (words.empty()) return usage();
    if (words.size() >= 2 && words[0] == "policy" && words[1] == "check") {
        if (words.size() < 3) return usage();
        return policy_check({words.begin() + 2, words.end()});
    }
    if (words[0] == "enable" || words[0] == "disable") return libvirt_toggle(uri, words);
    try {
        if (words[0] == "events") return follow_events(socket, words);
        json req;
        if (words == std::vector<std::string>{"status"}) req = {{"cmd", "status"}};
        if (words == std::vector<std::string>{"domains"}) req = {{"cmd", "domains"}};
        if (words == std::vector<std::string>{"stats"}) req = {{"cmd", "stats"}};
        if (words == std::vector<std::string>{"policy", "reload"}) req = {{"cmd", "policy-reload"}};
        if (words[0] == "resume" && words.size() <= 2)
            req = {{"cmd", "resume"}, {"domain", words.size() == 2 ? words[1] : ""}};
        if (words[0] == "ps" && words.size() <= 2)
            req = {{"cmd", "ps"}, {"domain", words.size() == 2 ? words[1] : ""}};
        if (req.is_null()) return usage();
        const std::string cmd = req["cmd"];
        const json r = vmid::control_request(socket, req);
        const bool ok = r.value("ok", false);
        if (json_out) {
            std::printf("%s\n", r.dump(2, ' ', false, json::error_handler_t::replace).c_str());
        } else if (!ok) {
            std::fprintf(
                stderr, "vminsightctl: %s\n",
                r.value("error", cmd == "policy-reload" ? "refused; the rules in force before stay"
                                                        : "failed")
                    .c_str());
            for (const auto& e : r.value("errors", json::array()))
                std::fprintf(stderr, "%s\n", e.get<std::string>().c_str());
        } else if (cmd == "status") {
            print_status(r);
        } else if (cmd == "domains") {
            print_domains(r);
        } else if (cmd == "ps") {
            print_ps(r);
        } else if (cmd == "stats") {
            print_stats(r);
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
