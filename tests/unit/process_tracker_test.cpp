#include "process_tracker.hpp"

#include <vector>

#include <gtest/gtest.h>

namespace {

struct CaptureSink final : vmid::EventSink {
    std::vector<nlohmann::json> events;
    void emit(const nlohmann::json& e) override { events.push_back(e); }
    std::vector<std::string> actions() const {
        std::vector<std::string> out;
        for (const auto& e : events)
            out.push_back(e["event"]["action"].get<std::string>() + ":" +
                          std::to_string(e["process"]["pid"].get<int>()));
        return out;
    }
};

vmid::GuestProcess proc(int pid, int ppid, const char* comm, std::uint64_t pgd) {
    vmid::GuestProcess p;
    p.task = 0xffff888000000000ULL + static_cast<std::uint64_t>(pid) * 0x1000;
    p.pid = pid;
    p.ppid = ppid;
    p.comm = comm;
    p.pgd = pgd;
    p.start_time_ns = 1000u + static_cast<std::uint64_t>(pid);
    return p;
}

}  // namespace

TEST(ProcessTracker, FirstListingIsSeenLaterOnesStart) {
    CaptureSink sink;
    vmid::ProcessTracker t(sink, "vm1");
    t.apply({proc(1, 0, "init", 0x1000), proc(2, 0, "kthreadd", 0)}, 1);
    t.apply({proc(1, 0, "init", 0x1000), proc(2, 0, "kthreadd", 0),
             proc(42, 1, "vmi-canary-ab", 0x5000)},
            2);
    EXPECT_EQ(sink.actions(),
              (std::vector<std::string>{"process-seen:1", "process-seen:2", "process-started:42"}));
    const auto& e = sink.events.back();
    EXPECT_EQ(e["vm"]["name"], "vm1");
    EXPECT_EQ(e["process"]["name"], "vmi-canary-ab");
    EXPECT_EQ(e["process"]["ppid"], 1);
    EXPECT_EQ(e["process"]["cr3"], "0x5000");
}

TEST(ProcessTracker, ExitNeedsTwoListingsInARow) {
    CaptureSink sink;
    vmid::ProcessTracker t(sink, "vm1");
    t.apply({proc(1, 0, "init", 0x1000), proc(7, 1, "sh", 0x7000)}, 1);
    t.apply({proc(1, 0, "init", 0x1000)}, 2);                            // one torn walk
    t.apply({proc(1, 0, "init", 0x1000), proc(7, 1, "sh", 0x7000)}, 3);  // back again
    t.apply({proc(1, 0, "init", 0x1000)}, 4);
    EXPECT_EQ(sink.events.size(), 2u);
    t.apply({proc(1, 0, "init", 0x1000)}, 5);
    ASSERT_EQ(sink.events.size(), 3u);
    EXPECT_EQ(sink.actions().back(), "process-exited:7");
    EXPECT_EQ(t.resolve(0x7000), nullptr);
}

TEST(ProcessTracker, ResolvesCr3IncludingKptiUserAndPcidBits) {
    CaptureSink sink;
    vmid::ProcessTracker t(sink, "vm1");
    t.apply({proc(1, 0, "init", 0x1000), proc(9, 1, "nginx", 0x24000)}, 1);
    ASSERT_NE(t.resolve(0x24000), nullptr);
    EXPECT_EQ(t.resolve(0x24000)->pid, 9);
    EXPECT_EQ(t.resolve(0x25000 | 0x3)->pid, 9);  // KPTI user PGD (+4 KiB) with PCID 3
    EXPECT_EQ(t.resolve(0x99000), nullptr);
    EXPECT_EQ(t.stats().cr3_resolved, 3u);
    EXPECT_EQ(t.stats().cr3_unresolved, 1u);
}

TEST(ProcessTracker, PidReuseIsANewProcess) {
    CaptureSink sink;
    vmid::ProcessTracker t(sink, "vm1");
    auto a = proc(5, 1, "old", 0x5000);
    auto b = a;
    b.comm = "new";
    b.start_time_ns += 77;  // same task slot and pid, later start: another process
    t.apply({a}, 1);
    t.apply({b}, 2);
    t.apply({b}, 3);
    EXPECT_EQ(sink.actions(), (std::vector<std::string>{"process-seen:5", "process-started:5",
                                                        "process-exited:5"}));
}

TEST(ProcessTracker, GuestBytesCannotBreakTheJsonLine) {
    CaptureSink sink;
    vmid::ProcessTracker t(sink, "vm1");
    t.apply({proc(3, 1, "a\"b\n\xff", 0x3000)}, 1);
    const std::string line =
        sink.events[0].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    EXPECT_EQ(line.find('\n'), std::string::npos);
    EXPECT_TRUE(nlohmann::json::accept(line));
}

TEST(ProcessTracker, EventsCarryWhatTheGuestLetUsReadAndOmitTheRest) {
    CaptureSink sink;
    vmid::ProcessTracker t(sink, "vm1");
    auto known = proc(10, 1, "nginx", 0xa000);
    known.exe = "/usr/sbin/nginx";
    known.args = {"nginx", "-g", "daemon off;"};
    known.uid = 33;
    known.euid = 0;
    known.gid = 33;
    known.threads = 4;
    auto unknown = proc(11, 1, "odd", 0xb000);  // cred, exe, args unreadable
    t.apply({known, unknown}, 1);
    const auto& a = sink.events[0]["process"];
    EXPECT_EQ(a["exe"], "/usr/sbin/nginx");
    EXPECT_EQ(a["args"], (nlohmann::json{"nginx", "-g", "daemon off;"}));
    EXPECT_EQ(a["uid"], 33);
    EXPECT_EQ(a["euid"], 0);
    EXPECT_EQ(a["threads"], 4);
    const auto& b = sink.events[1]["process"];
    for (const char* field : {"exe", "args", "uid", "euid", "gid", "threads"})
        EXPECT_FALSE(b.contains(field)) << field;
}

TEST(ProcessTracker, DetachIsOneEventNotFakeExits) {
    CaptureSink sink;
    vmid::ProcessTracker t(sink, "vm1");
    t.apply({proc(1, 0, "init", 0x1000), proc(2, 1, "sh", 0x2000)}, 1);
    t.finish(2, "daemon-stopped");
    ASSERT_EQ(sink.events.size(), 3u);
    EXPECT_EQ(sink.events.back()["event"]["action"], "vm-detached");
    EXPECT_EQ(sink.events.back()["event"]["reason"], "daemon-stopped");
    EXPECT_EQ(t.size(), 0u);
    EXPECT_EQ(t.resolve(0x2000), nullptr);
}

TEST(ProcessTracker, ExecIsTheGuestsExecCountNewNameAloneIsRename) {
    CaptureSink sink;
    vmid::ProcessTracker t(sink, "vm1");
    auto child = proc(93, 91, "vmi-canary-a2", 0x5000);  // forked, not yet exec'd
    t.apply({child}, 1);
    child.pgd = 0x9000;  // mid-execve: new mm, old name, exec not counted yet
    child.comm = "vmi-canary-a2";
    t.apply({child}, 2);
    child.comm = "vmi-canary-a3";
    child.exec_id = 1;  // execve done
    t.apply({child}, 3);
    child.comm = "worker";  // prctl(PR_SET_NAME): same exec count
    t.apply({child}, 4);
    t.apply({child}, 5);  // nothing changed: no event
    EXPECT_EQ(sink.actions(), (std::vector<std::string>{"process-seen:93", "process-exec:93",
                                                        "process-renamed:93"}));
    EXPECT_EQ(sink.events[1]["process"]["name"], "vmi-canary-a3");
    EXPECT_EQ(sink.events[1]["process"]["previous_name"], "vmi-canary-a2");
    EXPECT_EQ(sink.events[1]["process"]["cr3"], "0x9000");
    ASSERT_NE(t.resolve(0x9000), nullptr);  // bit 12 set: a 4 KiB-aligned PGD (no PTI)
    EXPECT_EQ(t.resolve(0x9000)->comm, "worker");
    EXPECT_EQ(t.resolve(0x5000), nullptr);
}

TEST(ProcessTracker, KernelThreadThatExecsInitIsAnExec) {
    CaptureSink sink;
    vmid::ProcessTracker t(sink, "vm1");
    auto init = proc(1, 0, "swapper/0", 0);
    t.apply({init}, 1);
    init.comm = "init";
    init.pgd = 0x1000;
    init.exec_id = 1;
    t.apply({init}, 2);
    EXPECT_EQ(sink.actions(), (std::vector<std::string>{"process-seen:1", "process-exec:1"}));
}

TEST(ProcessTracker, EventsNameTheParentAndAncestors) {
    CaptureSink sink;
    vmid::ProcessTracker t(sink, "vm1");
    auto sshd = proc(300, 1, "sshd", 0x3000);
    sshd.exe = "/usr/sbin/sshd";
    t.apply({proc(1, 0, "systemd", 0x1000), sshd, proc(301, 300, "bash", 0x4000)}, 1);
    t.apply({proc(1, 0, "systemd", 0x1000), sshd, proc(301, 300, "bash", 0x4000),
             proc(302, 301, "nc", 0x5000)},
            2);
    const auto& nc = sink.events.back()["process"];
    EXPECT_EQ(nc["parent"], (nlohmann::json{{"pid", 301}, {"name", "bash"}}));
    EXPECT_EQ(nc["ancestors"], (nlohmann::json{"bash", "sshd", "systemd"}));
    const auto& bash = sink.events[2]["process"];
    EXPECT_EQ(bash["parent"]["exe"], "/usr/sbin/sshd");
    nlohmann::json lone = nlohmann::json::object();
    t.add_lineage(lone, 999);  // unknown parent: nothing made up
    EXPECT_TRUE(lone.empty());
}

TEST(ProcessTracker, AGuestsCyclicParentChainIsBounded) {
    CaptureSink sink;
    vmid::ProcessTracker t(sink, "vm1");
    // 10 -> 11 -> 10 ...: a guest that rewrites its task list can do this.
    t.apply({proc(10, 11, "a", 0x1000), proc(11, 10, "b", 0x2000)}, 1);
    nlohmann::json p = nlohmann::json::object();
    t.add_lineage(p, 11);
    EXPECT_EQ(p["ancestors"].size(), 8u);
    EXPECT_EQ(p["ancestors"][0], "b");
    EXPECT_EQ(p["ancestors"][1], "a");
}
