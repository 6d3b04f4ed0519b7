// The pieces around following many VMs: finding a domain's QEMU by its uuid, the options of
// --libvirt mode, and live event following over the control socket.
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include <gtest/gtest.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "control_server.hpp"
#include "event_followers.hpp"
#include "options.hpp"
#include "vm_locator.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

class TempDir {
  public:
    TempDir() : path_(fs::temp_directory_path() / ("vmi-ds-" + std::to_string(::getpid()))) {
        fs::create_directories(path_);
    }
    ~TempDir() { fs::remove_all(path_); }
    const fs::path& path() const { return path_; }

  private:
    fs::path path_;
};

void fake_process(const fs::path& proc, int pid, const std::vector<std::string>& argv) {
    fs::create_directories(proc / std::to_string(pid));
    std::ofstream out(proc / std::to_string(pid) / "cmdline", std::ios::binary);
    for (const auto& a : argv) out << a << '\0';
}

TEST(FindQemuByUuid, FindsTheOneProcessWithThatUuid) {
    TempDir t;
    const std::string uuid = "6f2c1b2a-0000-4000-8000-0000000000aa";
    fake_process(t.path(), 100,
                 {"/usr/bin/qemu-system-x86_64", "-name", "guest=a", "-uuid",
                  "6F2C1B2A-0000-4000-8000-0000000000AA", "-m", "256"});
    fake_process(t.path(), 200,
                 {"/usr/bin/qemu-system-x86_64", "-uuid", "6f2c1b2a-0000-4000-8000-0000000000bb"});
    fake_process(t.path(), 300, {"bash", "-c", "echo -uuid"});  // -uuid as the last word
    fs::create_directories(t.path() / "self");
    EXPECT_EQ(vmid::find_qemu_by_uuid(uuid, t.path()), 100);
    try {
        vmid::find_qemu_by_uuid("6f2c1b2a-0000-4000-8000-0000000000cc", t.path());
        FAIL() << "no exception";
    } catch (const vmid::LocateError& e) {
        EXPECT_NE(std::string(e.what()).find("-uuid 6f2c1b2a-0000-4000-8000-0000000000cc"),
                  std::string::npos);
    }
    fake_process(t.path(), 400, {"qemu", "-uuid", uuid});
    EXPECT_THROW(vmid::find_qemu_by_uuid(uuid, t.path()), vmid::LocateError);
}

TEST(FindQemuByName, LibvirtPidFileThenQemuNameInEitherSpelling) {
    TempDir t;
    const fs::path proc = t.path() / "proc", run = t.path() / "run";
    fs::create_directories(run);
    fake_process(proc, 100, {"qemu-system-x86_64", "-name", "guest=web,debug-threads=on"});
    fake_process(proc, 200, {"qemu-system-x86_64", "-name", "db"});
    fake_process(proc, 300, {"qemu-system-x86_64", "-name"});  // -name as the last word
    std::ofstream(run / "mail.pid") << "4242\n";
    EXPECT_EQ(vmid::find_qemu_by_name("mail", run.string(), proc.string()), 4242);
    EXPECT_EQ(vmid::find_qemu_by_name("web", run.string(), proc.string()), 100);
    EXPECT_EQ(vmid::find_qemu_by_name("db", run.string(), proc.string()), 200);
    EXPECT_THROW(vmid::find_qemu_by_name("guest", run.string(), proc.string()), vmid::LocateError);
    EXPECT_THROW(vmid::find_qemu_by_name("", run.string(), proc.string()), vmid::LocateError);
    fake_process(proc, 400, {"qemu", "-name", "db"});
    EXPECT_THROW(vmid::find_qemu_by_name("db", run.string(), proc.string()), vmid::LocateError);
}

TEST(FindQemuByUuid, LibvirtsPidFileWinsOverAnyProcessNamingTheUuid) {
    TempDir t;
    const fs::path proc = t.path() / "proc", run = t.path() / "run";
    fs::create_directories(run);
    const std::string uuid = "6f2c1b2a-0000-4000-8000-0000000000aa";
    fake_process(proc, 100, {"/usr/bin/qemu-system-x86_64", "-uuid", uuid});
    fake_process(proc, 666, {"sleep", "1d", "-uuid", uuid});  // anyone can name a uuid
    std::ofstream(run / "web.pid") << "100\n";
    EXPECT_EQ(vmid::find_domain_qemu("web", uuid, run.string(), proc.string()), 100);
    // A pid file whose process is not (or no longer) that domain's QEMU is an error ...
    std::ofstream(run / "db.pid") << "666x";
    EXPECT_THROW(vmid::find_domain_qemu("db", uuid, run.string(), proc.string()),
                 vmid::LocateError);
    std::ofstream(run / "db.pid") << "100";
    EXPECT_THROW(vmid::find_domain_qemu("db", "6f2c1b2a-0000-4000-8000-0000000000bb", run.string(),
                                        proc.string()),
                 vmid::LocateError);
    // ... and without one, the scan finds two candidates and refuses to guess.
    EXPECT_THROW(vmid::find_domain_qemu("other", uuid, run.string(), proc.string()),
                 vmid::LocateError);
    EXPECT_THROW(vmid::find_domain_qemu("../web", uuid, run.string(), proc.string()),
                 vmid::LocateError);
}

TEST(LibvirtOptions, ModeAndPolicyDirectories) {
    TempDir t;
    std::ofstream(t.path() / "20-extra.yaml") << "";
    std::ofstream(t.path() / "10-base.yml") << "";
    std::ofstream(t.path() / "README") << "";
    const auto o = vmid::parse_options(
        {"--libvirt", "qemu:///system", "--policy", "/x.yaml", "--policy-dir", t.path().string()});
    EXPECT_EQ(o.libvirt, "qemu:///system");
    EXPECT_EQ(vmid::policy_files(o),
              (std::vector<std::string>{"/x.yaml", (t.path() / "10-base.yml").string(),
                                        (t.path() / "20-extra.yaml").string()}));
    const auto usage_error = [](std::vector<std::string> args) {
        try {
            vmid::parse_options(args);
        } catch (const vmid::UsageError& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    EXPECT_NE(usage_error({}).find("--qemu-pid or --libvirt"), std::string::npos);
    EXPECT_NE(usage_error({"--libvirt", "qemu:///system", "--qemu-pid", "5"}).find("exclude"),
              std::string::npos);
    EXPECT_NE(usage_error({"--libvirt", "qemu:///system", "--vm-name", "a"}).find("--vm-name"),
              std::string::npos);
    EXPECT_NE(usage_error({"--libvirt", "qemu:///system", "--policy-dir", "/no/such/dir"})
                  .find("--policy-dir /no/such/dir"),
              std::string::npos);
}

TEST(EventFilterTest, DomainAndDottedFields) {
    const json ev = {{"event", {{"action", "exec"}}},
                     {"vm", {{"name", "web"}, {"uuid", "u-1"}}},
                     {"process", {{"pid", 42}, {"name", "sh"}}}};
    const auto f = [](json req) { return vmid::EventFilter::from_request(req); };
    EXPECT_TRUE(f({{"cmd", "events"}}).matches(ev));
    EXPECT_TRUE(f({{"domain", "web"}}).matches(ev));
    EXPECT_TRUE(f({{"domain", "u-1"}}).matches(ev));
    EXPECT_FALSE(f({{"domain", "db"}}).matches(ev));
    EXPECT_TRUE(f({{"filter", {"event.action=exec", "process.pid=42"}}}).matches(ev));
    EXPECT_FALSE(f({{"filter", {"event.action=exec", "process.pid=43"}}}).matches(ev));
    EXPECT_FALSE(f({{"filter", {"process.exe=/bin/sh"}}}).matches(ev));
    EXPECT_THROW(f({{"filter", {"no-equals"}}}), std::invalid_argument);
    EXPECT_THROW(f({{"filter", {"=x"}}}), std::invalid_argument);
    EXPECT_THROW(f({{"filter", "event.action=exec"}}), std::invalid_argument);
}

// A real control socket: a follower gets the events its filter selects, in order, and a bad
// filter is refused with the reason.
TEST(EventFollowersTest, StreamsSelectedEventsOverTheControlSocket) {
    TempDir t;
    const std::string sock = (t.path() / "control.sock").string();
    boost::asio::io_context io;
    auto guard = boost::asio::make_work_guard(io);
    vmid::EventFollowers followers;
    vmid::ControlServer server(
        io, sock,
        [](const json&) -> json {
            return {{"ok", true}};
        },
        [&](const json& req, boost::asio::local::stream_protocol::socket s) {
            followers.add(req, std::move(s));
        });
    std::vector<json> got;
    std::atomic<bool> done{false};
    std::thread client([&] {
        vmid::control_stream(
            sock, {{"cmd", "events"}, {"domain", "web"}, {"filter", {"event.action=exec"}}},
            [&](const json& line) {
                got.push_back(line);
                return got.size() < 3;
            });
        done = true;
    });
    const auto until = [&](const std::function<bool()>& f) {
        const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!f() && std::chrono::steady_clock::now() < end)
            io.run_one_for(std::chrono::milliseconds(20));
        return f();
    };
    ASSERT_TRUE(until([&] { return followers.size() == 1; }));
    const auto ev = [](const std::string& vm, const std::string& action, int n) {
        return json{{"vm", {{"name", vm}}}, {"event", {{"action", action}}}, {"n", n}};
    };
    followers.emit(ev("web", "exec", 1));
    followers.emit(ev("db", "exec", 2));
    followers.emit(ev("web", "exit", 3));
    followers.emit(ev("web", "exec", 4));
    ASSERT_TRUE(until([&] { return done.load(); }));
    client.join();
    ASSERT_EQ(got.size(), 3U);
    EXPECT_EQ(got[0]["ok"], true);
    EXPECT_EQ(got[1]["n"], 1);
    EXPECT_EQ(got[2]["n"], 4);
    // The client went away: the follower is dropped at the next event.
    ASSERT_TRUE(until([&] {
        followers.emit(ev("web", "exec", 5));
        return followers.size() == 0;
    }));

    std::vector<json> refused;
    std::atomic<bool> closed{false};
    std::thread bad([&] {
        vmid::control_stream(sock, {{"cmd", "events"}, {"filter", {"nonsense"}}},
                             [&](const json& line) {
                                 refused.push_back(line);
                                 return true;
                             });
        closed = true;  // the error line came, then the daemon closed the connection
    });
    ASSERT_TRUE(until([&] { return closed.load(); }));
    bad.join();
    ASSERT_EQ(refused.size(), 1U);
    EXPECT_EQ(refused[0]["ok"], false);
    EXPECT_NE(refused[0]["error"].get<std::string>().find("nonsense"), std::string::npos);
}

}  // namespace
