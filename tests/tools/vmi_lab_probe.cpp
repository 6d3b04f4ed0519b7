// vmi-lab-probe: drives vminsight.ko directly for the lab's robustness scenario.
//   cycle PID N     attach, trap CR3 writes, every syscall and entry-MSR writes, read,
//                   detach: N times, under guest load
//   overflow PID    a one-page ring nobody reads until it overflows; then, with QEMU stopped,
//                   check that every record is accounted for: read, or counted lost
//   trace PID MS    trap every syscall for MS milliseconds, print each record (kernel check)
//   pause PID N     trap every syscall; N times stop QEMU (SIGSTOP), as a save or migration
//                   does, and go on: reports the SYSRETs completed on the way out
//   filter PID      change the filter of a live session six times (openat only, getppid only,
//                   scope ONLY an address space nobody has, scope all but that one, getppid
//                   denied for that one, then for all) and check that the records after
//                   each change follow it exactly
//   linger PID      trap every syscall, stop QEMU (SIGSTOP) and detach: the session must
//                   linger (module busy) until QEMU is continued and its vCPU drops its traps
// Prints one JSON line with the figures; exits non-zero when an invariant breaks.
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <variant>

#include <nlohmann/json.hpp>

#include "kmod_session.hpp"
#include "kvm_layout.hpp"
#include "vm_locator.hpp"

namespace {

using Clock = std::chrono::steady_clock;

// KVM's private layout from BTF, which every trap needs.
vmi_kvm_layout kvm_layout() {
    auto layout = vmid::resolve_kvm_layout();
    if (auto* why = std::get_if<std::string>(&layout))
        throw std::runtime_error("no KVM layout: " + *why);
    return std::get<vmi_kvm_layout>(layout);
}

// CR3 exiting and every syscall trapped, with paths captured: the heaviest load the module
// can be put under, so attach, detach and overflow are tested mid-syscall.
// `more`: further traps, e.g. VMI_TRAP_MSR (entry-MSR write intercepts).
void request_traps(vmid::KmodSession& s, std::uint32_t more = 0) {
    vmi_syscall_filter f{};
    for (auto& w : f.trace) w = ~0ULL;
    f.capture[257] = VMI_CAPTURE_STRING | 2;  // openat: path
    f.capture[59] = VMI_CAPTURE_STRING | 1;   // execve: path
    s.set_filter(f);
    s.set_traps(VMI_TRAP_CR3 | VMI_TRAP_SYSCALL | more, kvm_layout());
}

// Wait (bounded) until the ring has records, by poll() on the session like the daemon.
bool wait_records(const vmid::KmodSession& s, int timeout_ms) {
    pollfd p{s.fd(), POLLIN, 0};
    return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

// Entry-MSR write intercepts are armed too, so every detach also gives them back.
int cycle(pid_t pid, int n) {
    std::uint64_t records = 0, syscalls = 0;
    int with_records = 0, with_syscalls = 0, with_msr_intercept = 0;
    const auto t0 = Clock::now();
    for (int i = 0; i < n; ++i) {
        vmid::LocatedVm vm = vmid::locate_vm(pid);
        vmid::KmodSession s("/dev/vminsight", vm.vm_fd.get(), 1);
        request_traps(s, VMI_TRAP_MSR);
        // Read until the guest's syscalls show up (bounded), then detach under them.
        std::uint64_t sys = 0, got = 0;
        const auto until = Clock::now() + std::chrono::seconds(2);
        while (!sys && Clock::now() < until && wait_records(s, 500))
            got += s.ring().drain([&](const vmi_record& r) { sys += r.type == VMI_REC_SYSCALL; });
        records += got;
        with_records += got > 0;
        syscalls += sys;
        with_syscalls += sys > 0;
        const vmi_status st = s.status();
        if (st.records < s.ring().consumed()) {
            std::printf("{\"error\":\"status counts fewer records than were read\"}\n");
            return 1;
        }
        with_msr_intercept += st.msr_mode == VMI_MSR_INTERCEPT;
    }
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    std::printf("%s\n", nlohmann::json{{"cycles", n},
                                       {"cycles_with_records", with_records},
                                       {"cycles_with_syscalls", with_syscalls},
                                       {"cycles_with_msr_intercept", with_msr_intercept},
                                       {"records", records},
                                       {"syscall_records", syscalls},
                                       {"seconds", secs}}
                            .dump()
                            .c_str());
    // The guest is busy: most cycles see its switches and its syscalls.
    return with_records * 2 >= n && with_syscalls * 2 >= n && with_msr_intercept * 2 >= n ? 0 : 1;
}

// Overflow, then a quiescent point (QEMU stopped) where every record must be accounted for:
// each sequence number was either read or counted lost, and the kernel's counters agree.
int overflow(pid_t pid) {
    vmid::LocatedVm vm = vmid::locate_vm(pid);
    vmid::KmodSession s("/dev/vminsight", vm.vm_fd.get(), 1);  // 32 records
    request_traps(s);
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (s.status().lost < 1000 && Clock::now() < deadline)  // nobody reads: the ring fills
        std::this_thread::sleep_for(std::chrono::milliseconds(50));

    // Stop the guest; wait until its vCPUs make no more records (two equal readings).
    if (::kill(pid, SIGSTOP) != 0) throw std::runtime_error("SIGSTOP qemu failed");
    vmi_status before = s.status(), after = before;
    for (int i = 0; i < 100; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        after = s.status();
        if (after.records == before.records && after.lost == before.lost) break;
        before = after;
    }
    std::uint64_t read = 0, last_seq = 0;
    s.ring().drain([&](const vmi_record& r) {
        ++read;
        last_seq = r.seq;
    });
    const vmi_status st = s.status();
    const std::uint64_t gaps = s.ring().seq_gaps();
    const std::uint64_t header_lost = s.ring().kernel_lost();
    ::kill(pid, SIGCONT);

    // Resumed: the next record read must jump the sequence by exactly the losses so far.
    std::uint64_t resumed_gaps = 0;
    bool resumed = false;
    if (wait_records(s, 10000)) {
        s.ring().drain([](const vmi_record&) {}, 1);
        const vmi_status now = s.status();
        resumed_gaps = s.ring().seq_gaps();
        resumed = now.lost == st.lost ? resumed_gaps == st.lost : resumed_gaps >= st.lost;
    }

    // Each invariant separately, so a failure says which one broke.
    const nlohmann::json checks = {
        {"all_written_were_read", st.records == read},
        {"every_seq_read_or_gap", read + gaps == last_seq + 1},
        {"gaps_are_losses", gaps <= st.lost},
        {"header_equals_status", header_lost == st.lost},
        {"quiescent", st.records + st.lost == before.records + before.lost},
        {"overflowed", st.lost >= 1000},
        {"resume_jumps_by_losses", resumed},
    };
    bool exact = true;
    for (const auto& [name, ok] : checks.items()) exact = exact && ok.get<bool>();
    std::printf("%s\n", nlohmann::json{{"capacity", s.ring().capacity()},
                                       {"records_written", st.records},
                                       {"lost", st.lost},
                                       {"lost_seen_as_gaps", gaps},
                                       {"gaps_after_resume", resumed_gaps},
                                       {"read", read},
                                       {"checks", checks},
                                       {"exact", exact}}
                            .dump()
                            .c_str());
    return exact ? 0 : 1;
}

// Every thread of `pid` stopped (so no vCPU is inside KVM_RUN).
bool all_stopped(pid_t pid) {
    for (const auto& t :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
        std::ifstream f(t.path() / "stat");
        std::string line;
        std::getline(f, line);
        const auto close = line.rfind(')');
        if (close == std::string::npos || close + 2 >= line.size() || line[close + 2] != 'T')
            return false;
    }
    return true;
}

int pause_check(pid_t pid, int n) {
    vmid::LocatedVm vm = vmid::locate_vm(pid);
    vmid::KmodSession s("/dev/vminsight", vm.vm_fd.get(), 64);
    request_traps(s);
    for (int i = 0; i < n; ++i) {
        s.ring().drain([](const vmi_record&) {});
        std::this_thread::sleep_for(std::chrono::milliseconds(3 + i % 7));
        if (::kill(pid, SIGSTOP) != 0) throw std::runtime_error("SIGSTOP qemu failed");
        const auto until = Clock::now() + std::chrono::seconds(5);
        while (!all_stopped(pid) && Clock::now() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        ::kill(pid, SIGCONT);
    }
    const vmi_status st = s.status();
    std::printf("%s\n", nlohmann::json{{"pauses", n},
                                       {"syscalls", st.syscalls},
                                       {"sysrets", st.sysrets},
                                       {"sysrets_early", st.sysrets_early},
                                       {"exit_probe_missed", st.exit_probe_missed}}
                            .dump()
                            .c_str());
    return st.syscalls > 0 && st.exit_probe_missed == 0 ? 0 : 1;
}

// Read from the current tail until `want_cr3_records` address-space switches (and, with
// `until_syscalls`, a syscall record) were seen or the deadline passes; counts syscall
// records by number into `nrs`.
struct Seen {
    std::map<std::uint64_t, std::uint64_t> nrs;
    std::uint64_t syscalls = 0, cr3 = 0, denied = 0;
};

Seen read_for(vmid::KmodSession& s, int seconds, std::uint64_t want_cr3_records,
              bool until_syscalls) {
    Seen seen;
    const auto until = Clock::now() + std::chrono::seconds(seconds);
    while ((seen.cr3 < want_cr3_records || (until_syscalls && !seen.syscalls)) &&
           Clock::now() < until) {
        if (!wait_records(s, 500)) continue;
        s.ring().drain([&](const vmi_record& r) {
            if (r.type == VMI_REC_SYSCALL) {
                ++seen.syscalls;
                ++seen.nrs[r.sys.nr];
                seen.denied += (r.flags & VMI_RECF_DENIED) != 0;
            }
            seen.cr3 += r.type == VMI_REC_CR3;
        });
    }
    return seen;
}

int filter_switch(pid_t pid) {
    vmid::LocatedVm vm = vmid::locate_vm(pid);
    vmid::KmodSession s("/dev/vminsight", vm.vm_fd.get(), 256);
    auto only = [](std::initializer_list<unsigned> nrs, __u32 scope, std::uint64_t cr3) {
        vmi_syscall_filter f{};
        for (unsigned nr : nrs) f.trace[nr / 64] |= 1ULL << (nr % 64);
        f.scope = scope;
        f.nr_cr3 = cr3 ? 1 : 0;
        f.cr3[0] = cr3;
        return f;
    };
    // getppid traced and denied: for every process, or only for one no process is.
    auto deny_getppid = [&](std::uint64_t only_cr3) {
        vmi_syscall_filter f = only({110}, VMI_SCOPE_ALL, 0);
        f.deny[110 / 64] |= 1ULL << (110 % 64);
        f.nr_deny_cr3 = only_cr3 ? 1 : 0;
        f.deny_cr3[0] = only_cr3;
        return f;
    };
    // An address space no process has: page-table pages are never at guest-physical 4 KiB.
    // (The guest's probe ignores what getppid returns: denying it is harmless there.)
    constexpr std::uint64_t kNobody = 0x1000;
    const struct {
        const char* name;
        vmi_syscall_filter filter;
        bool want_syscalls;
        unsigned only_nr;
        bool denied = false;  // every record of this step is DENIED (else none is)
    } steps[] = {
        {"openat-only", only({257}, VMI_SCOPE_ALL, 0), true, 257},
        {"getppid-only", only({110}, VMI_SCOPE_ALL, 0), true, 110},
        {"scope-only-nobody", only({110, 257}, VMI_SCOPE_ONLY, kNobody), false, 0},
        {"scope-except-nobody", only({110}, VMI_SCOPE_EXCEPT, kNobody), true, 110},
        {"deny-for-nobody", deny_getppid(kNobody), true, 110, false},
        {"deny-for-all", deny_getppid(0), true, 110, true},
    };
    s.set_traps(VMI_TRAP_CR3 | VMI_TRAP_SYSCALL, kvm_layout());
    nlohmann::json report = nlohmann::json::object();
    bool ok = true;
    for (const auto& st : steps) {
        s.set_filter(st.filter);
        // Records before this point were made under the previous filter: skip them.
        s.ring().drain([](const vmi_record&) {});
        // Enough guest activity (address-space switches), and the syscalls it should record.
        const Seen seen = read_for(s, 30, 60, st.want_syscalls);
        bool good = seen.cr3 >= 60 && seen.denied == (st.denied ? seen.syscalls : 0) &&
                    (st.want_syscalls ? seen.syscalls > 0 : seen.syscalls == 0);
        for (const auto& [nr, n] : seen.nrs) good = good && nr == st.only_nr;
        nlohmann::json nrs = nlohmann::json::object();
        for (const auto& [nr, n] : seen.nrs) nrs[std::to_string(nr)] = n;
        report[st.name] = {{"ok", good},
                           {"cr3_records", seen.cr3},
                           {"syscall_records", nrs},
                           {"denied", seen.denied}};
        ok = ok && good;
    }
    const vmi_status st = s.status();
    report["sys_mode"] = st.sys_mode;
    std::printf("%s\n", report.dump().c_str());
    return ok && st.sys_mode == VMI_SYS_ON ? 0 : 1;
}

int linger(pid_t pid) {
    vmi_status st{};
    {
        vmid::LocatedVm vm = vmid::locate_vm(pid);
        vmid::KmodSession s("/dev/vminsight", vm.vm_fd.get(), 64);
        request_traps(s);
        std::uint64_t sys = 0;
        const auto until = Clock::now() + std::chrono::seconds(10);
        while (!sys && Clock::now() < until && wait_records(s, 500))
            s.ring().drain([&](const vmi_record& r) { sys += r.type == VMI_REC_SYSCALL; });
        if (::kill(pid, SIGSTOP) != 0) throw std::runtime_error("SIGSTOP qemu failed");
        // kill() returns before the threads stop: a vCPU still running would disarm.
        const auto stop_by = Clock::now() + std::chrono::seconds(5);
        while (!all_stopped(pid) && Clock::now() < stop_by)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        st = s.status();
    }  // detach with the vCPU stopped, its traps armed
    std::printf("%s\n", nlohmann::json{{"sys_armed_vcpus_at_detach", st.sys_armed_vcpus},
                                       {"syscalls", st.syscalls}}
                            .dump()
                            .c_str());
    return st.sys_armed_vcpus > 0 && st.syscalls > 0 ? 0 : 1;
}

// Every record as a JSON line: the raw kernel view, without the daemon's decoding.
int trace(pid_t pid, int ms) {
    vmid::LocatedVm vm = vmid::locate_vm(pid);
    vmid::KmodSession s("/dev/vminsight", vm.vm_fd.get(), 64);
    request_traps(s);
    const auto deadline = Clock::now() + std::chrono::milliseconds(ms);
    while (Clock::now() < deadline) {
        wait_records(s, 100);
        s.ring().drain([](const vmi_record& r) {
            nlohmann::json j{
                {"type", r.type}, {"flags", r.flags}, {"vcpu", r.vcpu}, {"seq", r.seq}};
            if (r.type == VMI_REC_SYSCALL)
                j.update({{"nr", r.sys.nr},
                          {"args", r.sys.args},
                          {"cr3", r.sys.cr3},
                          {"rip", r.sys.rip},
                          {"tgid", r.sys.tgid}});
            else if (r.type == VMI_REC_SYSRET)
                j.update({{"nr", r.sysret.nr},
                          {"ret", (std::int64_t)r.sysret.ret},
                          {"entry_seq", r.sysret.entry_seq}});
            else if (r.type == VMI_REC_DATA)
                j.update({{"arg", r.data.arg},
                          {"bytes",
                           std::string(reinterpret_cast<const char*>(r.data.bytes), r.data.len)}});
            std::printf("%s\n",
                        j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
        });
    }
    const vmi_status st = s.status();
    std::printf("%s\n", nlohmann::json{{"status",
                                        {{"sys_mode", st.sys_mode},
                                         {"sys_fallback", st.sys_fallback},
                                         {"syscalls", st.syscalls},
                                         {"sysrets", st.sysrets},
                                         {"retried", st.retried},
                                         {"faults", st.capture_faults},
                                         {"unmatched", st.unmatched},
                                         {"lost", st.lost},
                                         {"records", st.records}}}}
                            .dump()
                            .c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const std::string cmd = argc > 1 ? argv[1] : "";
        if (cmd == "cycle" && argc == 4) return cycle(std::stoi(argv[2]), std::stoi(argv[3]));
        if (cmd == "overflow" && argc == 3) return overflow(std::stoi(argv[2]));
        if (cmd == "trace" && argc == 4) return trace(std::stoi(argv[2]), std::stoi(argv[3]));
        if (cmd == "linger" && argc == 3) return linger(std::stoi(argv[2]));
        if (cmd == "filter" && argc == 3) return filter_switch(std::stoi(argv[2]));
        if (cmd == "pause" && argc == 4) return pause_check(std::stoi(argv[2]), std::stoi(argv[3]));
        std::fprintf(stderr,
                     "usage: vmi-lab-probe cycle PID N | overflow PID | trace PID MS | linger PID "
                     "| pause PID N\n");
        return 2;
    } catch (const std::exception& e) {
        std::printf("{\"error\":\"%s\"}\n", e.what());
        return 1;
    }
}
