// Following libvirt, against its real test driver (test:///default: a running domain "test",
// events, metadata; one shared instance per process, and each test is its own process).
// Only the attachment is a stand-in, since the test driver runs no QEMU.
#include <libvirt/libvirt.h>

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "domain_manager.hpp"
#include "libvirt/connection.hpp"
#include "libvirt/domain_watcher.hpp"
#include "libvirt/run_control.hpp"

namespace lv = vmid::libvirt;
using nlohmann::json;

namespace {

constexpr const char* kUri = "test:///default";

bool run_until(boost::asio::io_context& io, const std::function<bool()>& done,
               std::chrono::seconds limit = std::chrono::seconds(10)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > end) return false;
        io.run_one_for(std::chrono::milliseconds(50));
    }
    return true;
}

struct Recorder final : vmid::EventSink {
    std::vector<json> events;
    void emit(const json& ev) override { events.push_back(ev); }
    std::size_t count(const std::string& action) const {
        std::size_t n = 0;
        for (const auto& e : events) n += e["event"]["action"] == action;
        return n;
    }
};

struct FakeAttachment final : vmid::Attachment {
    std::string name;
    std::vector<std::string>& log;
    bool is_stopped = false;
    FakeAttachment(std::string n, std::vector<std::string>& l) : name(std::move(n)), log(l) {
        log.push_back("attach " + name);
    }
    void stop(const std::string& reason) override {
        if (is_stopped) return;
        is_stopped = true;
        log.push_back("stop " + name + ": " + reason);
    }
    bool stopped() const override { return is_stopped; }
    bool idle() const override { return is_stopped; }
    std::uint64_t events() const override { return 7; }
    std::uint64_t records_lost() override { return 0; }
    json status() override { return {{"vm", {{"name", name}}}}; }
    json processes() const override { return json::array(); }
    std::vector<std::string> apply_rules(const policy::PolicySet&, const std::string&) override {
        return {};
    }
    std::string resume() override { return "resumed"; }
};

lv::MonitorSetting on(std::string policy = "") {
    lv::MonitorSetting s;
    s.enabled = true;
    s.policy = std::move(policy);
    return s;
}

TEST(LibvirtConnection, WritesAndReadsTheSettingLiveAndPersistent) {
    const auto conn = lv::connect(kUri, false);
    const auto dom = lv::lookup(conn.get(), "test");
    EXPECT_FALSE(lv::read_monitor(dom.get()));
    EXPECT_FALSE(lv::describe(dom.get()).monitored());
    EXPECT_EQ(lv::write_monitor(dom.get(), on("web")), "live and persistent");
    const auto info = lv::describe(dom.get());
    EXPECT_TRUE(info.monitored());
    EXPECT_EQ(info.monitor->policy, "web");
    EXPECT_EQ(info.state, "running");
    // The persistent definition has it too: it survives the domain's restart.
    char* cfg = virDomainGetMetadata(dom.get(), VIR_DOMAIN_METADATA_ELEMENT, lv::kMetadataNs,
                                     VIR_DOMAIN_AFFECT_CONFIG);
    ASSERT_NE(cfg, nullptr);
    EXPECT_TRUE(lv::parse_monitor_metadata(cfg).enabled);
    free(cfg);
    // By uuid as well as by name.
    EXPECT_EQ(lv::describe(lv::lookup(conn.get(), info.uuid).get()).name, "test");
}

TEST(LibvirtConnection, ErrorsNameWhatWasAskedFor) {
    const auto conn = lv::connect(kUri, false);
    try {
        lv::lookup(conn.get(), "no-such-vm");
        FAIL() << "no exception";
    } catch (const lv::LibvirtError& e) {
        EXPECT_NE(std::string(e.what()).find("no-such-vm"), std::string::npos);
    }
    try {
        lv::connect("nosuchdriver:///x", true);
        FAIL() << "no exception";
    } catch (const lv::LibvirtError& e) {
        EXPECT_NE(std::string(e.what()).find("nosuchdriver:///x"), std::string::npos);
    }
    // Metadata that is there but malformed: the domain is described, not monitored, and why.
    const auto dom = lv::lookup(conn.get(), "test");
    ASSERT_EQ(
        virDomainSetMetadata(dom.get(), VIR_DOMAIN_METADATA_ELEMENT, "<monitor enable='yes'/>",
                             "vminsight", lv::kMetadataNs, VIR_DOMAIN_AFFECT_LIVE),
        0);
    const auto info = lv::describe(dom.get());
    EXPECT_FALSE(info.monitored());
    EXPECT_NE(info.metadata_error.find("domain test"), std::string::npos) << info.metadata_error;
    EXPECT_NE(info.metadata_error.find("'enable'"), std::string::npos) << info.metadata_error;
}

// pause_vm under libvirt: the domain is suspended and resumed through libvirt itself.
TEST(LibvirtRunControl, SuspendsAndResumesTheDomain) {
    const auto conn = lv::connect(kUri, false);
    const auto dom = lv::lookup(conn.get(), "test");
    const auto state = [&] {
        int st = 0, reason = 0;
        virDomainGetState(dom.get(), &st, &reason, 0);
        return st;
    };
    char uuid[VIR_UUID_STRING_BUFLEN] = {};
    virDomainGetUUIDString(dom.get(), uuid);
    const vmid::RunControl run = lv::domain_run_control(kUri, uuid);
    EXPECT_EQ(run.via, "libvirt");
    run.execute("stop");
    EXPECT_EQ(state(), VIR_DOMAIN_PAUSED);
    run.execute("cont");
    EXPECT_EQ(state(), VIR_DOMAIN_RUNNING);
    const vmid::RunControl gone =
        lv::domain_run_control(kUri, "00000000-0000-0000-0000-0000000000ff");
    EXPECT_THROW(gone.execute("stop"), lv::LibvirtError);
}

// A libvirt call stuck on the domain's job lock does not hold the daemon's loop: the wait is
// bounded, the call finishes on its own thread.
TEST(LibvirtRunControl, ASlowCallIsWaitedForABoundedTime) {
    std::promise<void> release;
    std::shared_future<void> go = release.get_future().share();
    auto finished = std::make_shared<std::promise<void>>();  // outlives the test if need be
    auto done = finished->get_future();
    try {
        lv::run_bounded(
            [go, finished] {
                go.wait();
                finished->set_value();
            },
            std::chrono::milliseconds(100), "libvirt stop");
        FAIL() << "returned while the call was still running";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("libvirt stop: not done after 100 ms"),
                  std::string::npos);
    }
    release.set_value();
    done.wait();  // it completes in the background
    EXPECT_NO_THROW(lv::run_bounded([] {}, std::chrono::milliseconds(1000), "quick"));
    EXPECT_THROW(lv::run_bounded([] { throw lv::LibvirtError("no"); },
                                 std::chrono::milliseconds(1000), "failing"),
                 lv::LibvirtError);
}

class Following : public ::testing::Test {
  protected:
    void SetUp() override {
        rw_ = lv::connect(kUri, false);
        // A second domain, running, never enabled: it must never be attached.
        const char* xml =
            "<domain type='test'><name>other</name><memory>65536</memory>"
            "<os><type>hvm</type></os></domain>";
        other_.reset(virDomainDefineXML(rw_.get(), xml));
        ASSERT_TRUE(other_) << lv::last_error();
        ASSERT_EQ(virDomainCreate(other_.get()), 0) << lv::last_error();
        test_ = lv::lookup(rw_.get(), "test");
    }
    void follow(vmid::DomainManager::AttachFn attach) {
        manager_ = std::make_unique<vmid::DomainManager>(io_, feed_, std::move(attach));
        watcher_ = std::make_unique<lv::DomainWatcher>(
            io_, kUri,
            lv::DomainWatcher::Handlers{[this](const std::vector<lv::DomainInfo>& all) {
                                            ++syncs_;
                                            manager_->synced(all);
                                        },
                                        [this](const lv::DomainInfo& d, const std::string& why) {
                                            whys_.push_back(d.name + " " + why);
                                            manager_->changed(d, why);
                                        },
                                        [this](const std::string& why) { lost_.push_back(why); }});
        watcher_->start();
        ASSERT_TRUE(run_until(io_, [&] { return syncs_ > 0; }))
            << (lost_.empty() ? "" : lost_.front());
    }
    bool seen(const std::string& why) {
        return std::find(whys_.begin(), whys_.end(), why) != whys_.end();
    }
    json domain(const std::string& name) {
        for (const auto& d : manager_->domains())
            if (d["name"] == name) return d;
        return nullptr;
    }

    boost::asio::io_context io_;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_ =
        boost::asio::make_work_guard(io_);
    Recorder feed_;
    lv::Connection rw_;
    lv::Domain test_, other_;
    std::unique_ptr<vmid::DomainManager> manager_;
    std::unique_ptr<lv::DomainWatcher> watcher_;
    std::vector<std::string> log_, whys_, lost_;
    int syncs_ = 0;
};

TEST_F(Following, AttachesWhatIsEnabledAndFollowsItsLifecycle) {
    follow(
        [this](const lv::DomainInfo& d) { return std::make_unique<FakeAttachment>(d.name, log_); });
    EXPECT_TRUE(log_.empty()) << "nothing is enabled yet";
    EXPECT_TRUE(lost_.empty());

    lv::write_monitor(test_.get(), on());
    ASSERT_TRUE(run_until(io_, [&] { return log_.size() == 1; }));
    EXPECT_EQ(log_[0], "attach test");
    EXPECT_TRUE(seen("test metadata"));

    lv::write_monitor(test_.get(), lv::MonitorSetting{});  // disabled
    ASSERT_TRUE(run_until(io_, [&] { return log_.size() == 2; }));
    EXPECT_EQ(log_[1], "stop test: monitoring-disabled");

    lv::write_monitor(test_.get(), on());
    ASSERT_TRUE(run_until(io_, [&] { return log_.size() == 3; }));
    ASSERT_EQ(virDomainDestroy(test_.get()), 0);
    ASSERT_TRUE(run_until(io_, [&] { return log_.size() == 4; }));
    EXPECT_EQ(log_[3], "stop test: domain stopped (destroyed)");
    // Started again: attached again, because the setting is in its persistent definition.
    ASSERT_EQ(virDomainCreate(test_.get()), 0);
    ASSERT_TRUE(run_until(io_, [&] { return log_.size() == 5; }));
    EXPECT_EQ(log_[4], "attach test");
    EXPECT_TRUE(seen("test started"));

    // The other domain ran all along and changed state too, and was never attached.
    ASSERT_EQ(virDomainSuspend(other_.get()), 0);
    ASSERT_TRUE(run_until(io_, [&] { return seen("other paused"); }));
    for (const auto& l : log_) EXPECT_EQ(l.find("other"), std::string::npos) << l;
    const json t = domain("test"), o = domain("other");
    EXPECT_EQ(t["attached"], true);
    EXPECT_EQ(t["monitoring"], true);
    EXPECT_EQ(t["events"], 7);
    EXPECT_EQ(o["attached"], false);
    EXPECT_EQ(o["monitoring"], false);
    EXPECT_EQ(o["state"], "paused");
    EXPECT_EQ(manager_->summary(), "attached to 1 of 1 monitored running domains (2 defined)");
    ASSERT_NE(manager_->attached("test"), nullptr);
    EXPECT_EQ(manager_->attached("other"), nullptr);

    // Undefined while stopped: gone from the list.
    ASSERT_EQ(virDomainDestroy(other_.get()), 0);
    ASSERT_EQ(virDomainUndefine(other_.get()), 0);
    ASSERT_TRUE(run_until(io_, [&] { return domain("other").is_null(); }));

    manager_->stop_all("daemon-stopped");
    EXPECT_EQ(log_.back(), "stop test: daemon-stopped");
}

TEST_F(Following, AnotherPolicyMeansAttachingAfresh) {
    std::vector<std::string> policies;
    follow([&](const lv::DomainInfo& d) {
        policies.push_back(d.monitor->policy);
        return std::make_unique<FakeAttachment>(d.name, log_);
    });
    lv::write_monitor(test_.get(), on("web"));
    ASSERT_TRUE(run_until(io_, [&] { return log_.size() == 1; }));
    lv::write_monitor(test_.get(), on("web"));  // the same setting again: nothing changes
    lv::write_monitor(test_.get(), on("db"));
    ASSERT_TRUE(run_until(io_, [&] { return log_.size() == 3; }));
    EXPECT_EQ(log_[1], "stop test: monitoring-settings-changed");
    EXPECT_EQ(log_[2], "attach test");
    EXPECT_EQ(policies, (std::vector<std::string>{"web", "db"}));
}

TEST_F(Following, AlreadyRunningDomainsAreAttachedAtStart) {
    lv::write_monitor(test_.get(), on());
    follow(
        [this](const lv::DomainInfo& d) { return std::make_unique<FakeAttachment>(d.name, log_); });
    ASSERT_EQ(log_.size(), 1U);
    EXPECT_EQ(log_[0], "attach test");
}

TEST_F(Following, AFailedAttachIsReportedOnceAndRetried) {
    int calls = 0;
    follow([&](const lv::DomainInfo& d) -> std::unique_ptr<vmid::Attachment> {
        if (++calls < 3) throw std::runtime_error("no QEMU process runs with -uuid " + d.uuid);
        return std::make_unique<FakeAttachment>(d.name, log_);
    });
    lv::write_monitor(test_.get(), on());
    ASSERT_TRUE(run_until(io_, [&] { return log_.size() == 1; }));
    EXPECT_EQ(calls, 3);
    EXPECT_EQ(feed_.count("vm-attach-failed"), 1U);
    const json& failed = feed_.events.front();
    EXPECT_EQ(failed["vm"]["name"], "test");
    EXPECT_FALSE(failed["vm"]["uuid"].get<std::string>().empty());
    EXPECT_NE(failed["vminsight"]["error"].get<std::string>().find("-uuid"), std::string::npos);
    EXPECT_FALSE(domain("test").contains("attach_error"));
}

TEST_F(Following, MalformedMetadataIsAnEventNotASilentSkip) {
    follow(
        [this](const lv::DomainInfo& d) { return std::make_unique<FakeAttachment>(d.name, log_); });
    ASSERT_EQ(virDomainSetMetadata(test_.get(), VIR_DOMAIN_METADATA_ELEMENT,
                                   "<monitor enabled='yes' polcy='web'/>", "vminsight",
                                   lv::kMetadataNs, VIR_DOMAIN_AFFECT_LIVE),
              0);
    ASSERT_TRUE(run_until(io_, [&] { return feed_.count("vm-metadata-invalid") == 1; }));
    EXPECT_TRUE(log_.empty());
    EXPECT_NE(domain("test")["metadata_error"].get<std::string>().find("'polcy'"),
              std::string::npos);
}

}  // namespace
