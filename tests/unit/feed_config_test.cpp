// Feed configuration errors name the field; the feed end to end into a real file; encodings
// that skip events still move the cursor.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "feed/feed.hpp"
#include "feed/record.hpp"

namespace {
using json = nlohmann::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string error_of(const json& j) {
    try {
        feed::parse_feed_config(j, "/etc/vminsight/feed.json");
    } catch (const feed::ConfigError& e) {
        return e.what();
    }
    return "no error";
}

TEST(FeedConfig, ErrorsNameTheFileAndTheField) {
    EXPECT_EQ(error_of(json::array()), "/etc/vminsight/feed.json: (top): must be an object");
    EXPECT_EQ(error_of({{"spool", {{"max_mb", "big"}}}}),
              "/etc/vminsight/feed.json: spool.max_mb: must be a whole number");
    EXPECT_EQ(error_of({{"sinks", {{{"name", "a"}, {"type", "carrier-pigeon"}}}}}),
              "/etc/vminsight/feed.json: sinks[0]: type: 'carrier-pigeon' (stdout, file, http, "
              "syslog, kafka)");
    EXPECT_EQ(error_of({{"sinks", {{{"name", "a"}, {"type", "http"}, {"url", "gopher://x"}}}}}),
              "/etc/vminsight/feed.json: sinks[0]: url: url 'gopher://x': not http:// or https://");
    EXPECT_EQ(error_of({{"sinks",
                         {{{"name", "a"},
                           {"type", "http"},
                           {"url", "http://x/"},
                           {"headers", {{"X-A", "b\r\nInjected: 1"}}}}}}}),
              "/etc/vminsight/feed.json: sinks[0]: headers.X-A: contains a line break or bad name");
    EXPECT_EQ(error_of({{"sinks", {{{"name", "a"}, {"type", "stdout"}, {"encoding", "cef"}}}}}),
              "/etc/vminsight/feed.json: sinks[0].encoding: 'cef' (native, ecs, ocsf, falco)");
    EXPECT_EQ(
        error_of({{"sinks",
                   {{{"name", "a"}, {"type", "stdout"}}, {{"name", "a"}, {"type", "stdout"}}}}}),
        "/etc/vminsight/feed.json: sinks[1].name: 'a' twice");
    EXPECT_EQ(error_of({{"sinks", {{{"name", "../x"}, {"type", "stdout"}}}}}),
              "/etc/vminsight/feed.json: sinks[0].name: '../x' is not [A-Za-z0-9_-], 1 to 64");
    EXPECT_EQ(error_of({{"sinks", {{{"name", "a"}, {"type", "stdout"}, {"colour", "red"}}}}}),
              "/etc/vminsight/feed.json: sinks[0]: colour: unknown key");
    EXPECT_EQ(error_of({{"sinks", {{{"type", "stdout"}}}}}),
              "/etc/vminsight/feed.json: sinks[0].name: missing");
}

TEST(FeedConfig, BatchSizeIsTheSinksOwnElseTheFeedsElseItsTypes) {
    const fs::path file =
        fs::temp_directory_path() / ("vmi-feed-cfg-" + std::to_string(::getpid()));
    const json file_sink = {{"name", "f"}, {"type", "file"}, {"path", file.string()}};
    const json out_sink = {{"name", "o"}, {"type", "stdout"}};
    // Defaults: a file takes big batches (a bigger fdatasync unit), a receiver 500.
    auto c = feed::parse_feed_config({{"sinks", {file_sink, out_sink}}}, "feed.json");
    EXPECT_EQ(c.sinks[0].batch_records, feed::kFileBatchRecords);
    EXPECT_EQ(c.sinks[0].batch_bytes, feed::kFileBatchBytes);
    EXPECT_EQ(c.sinks[1].batch_records, 500U);
    // The feed's batch_records is every sink's, unless a sink sets its own.
    json own = out_sink;
    own["batch_records"] = 50;
    c = feed::parse_feed_config({{"batch_records", 2000}, {"sinks", {file_sink, own}}},
                                "feed.json");
    EXPECT_EQ(c.sinks[0].batch_records, 2000U);
    EXPECT_EQ(c.sinks[1].batch_records, 50U);
    own["batch_records"] = 0;
    EXPECT_EQ(error_of({{"sinks", {own}}}),
              "/etc/vminsight/feed.json: sinks[0].batch_records: must be in [1, 100000]");
    fs::remove(file);
}

TEST(FeedEndToEnd, EventsReachEachSinkInItsEncodingWithStableIds) {
    const fs::path dir = fs::temp_directory_path() / ("vmi-feed-e2e-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    const json cfg = {{"spool", {{"dir", (dir / "spool").string()}}},
                      {"sinks",
                       {{{"name", "ecs"}, {"type", "file"}, {"path", (dir / "ecs.jsonl").string()}},
                        {{"name", "falco"},
                         {"type", "file"},
                         {"encoding", "falco"},
                         {"path", (dir / "falco.jsonl").string()}}}}};
    {
        feed::Feed f(feed::parse_feed_config(cfg, "test"), feed::EncodeContext{"host-a", "0.1.0"});
        for (int i = 0; i < 50; ++i)
            f.publish({{"event", {{"kind", i % 10 == 0 ? "alert" : "event"}, {"action", "x"}}},
                       {"vm", {{"name", "vm1"}}},
                       {"rule", {{"name", "r"}, {"priority", "warning"}}},
                       {"message", "m" + std::to_string(i)}});
        ASSERT_TRUE(f.drain(20s));
        for (const auto& s : f.sinks()) {
            EXPECT_TRUE(s.up) << s.name << ": " << s.last_error;
            EXPECT_EQ(s.backlog, 0u);
        }
    }
    std::vector<json> ecs, falco;
    for (auto [file, into] : {std::pair{"ecs.jsonl", &ecs}, std::pair{"falco.jsonl", &falco}}) {
        std::ifstream in(dir / file);
        for (std::string l; std::getline(in, l);) into->push_back(json::parse(l));
    }
    ASSERT_EQ(ecs.size(), 50u);
    EXPECT_EQ(falco.size(), 5u);  // alerts only; the rest moved the cursor all the same
    std::string spool_id = ecs[0]["event"]["id"].get<std::string>().substr(0, 16);
    for (std::size_t i = 0; i < ecs.size(); ++i) {
        EXPECT_EQ(ecs[i]["event"]["id"], spool_id + "-" + std::to_string(i + 1));
        EXPECT_EQ(ecs[i]["observer"]["hostname"], "host-a");
    }
    // A restart resumes after what each sink acknowledged: nothing is sent twice.
    {
        feed::Feed f(feed::parse_feed_config(cfg, "test"), feed::EncodeContext{"host-a", "0.1.0"});
        f.publish({{"event", {{"kind", "event"}, {"action", "after-restart"}}}});
        ASSERT_TRUE(f.drain(20s));
        EXPECT_EQ(f.spool_id(), spool_id);
    }
    std::ifstream in(dir / "ecs.jsonl");
    std::size_t lines = 0;
    for (std::string l; std::getline(in, l);) ++lines;
    EXPECT_EQ(lines, 51u);
    fs::remove_all(dir);
}

TEST(FeedEndToEnd, PublishedEventsReachTheSpoolSoonAndSyncedOnesSurviveKill9) {
    const fs::path dir =
        fs::temp_directory_path() / ("vmi-feed-kill-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    const json cfg = {
        {"spool", {{"dir", (dir / "spool").string()}}},
        {"sinks", {{{"name", "f"}, {"type", "file"}, {"path", (dir / "out.jsonl").string()}}}}};
    const auto ev = [](int i) {
        return json{{"event", {{"kind", "event"}, {"action", "x"}}},
                    {"message", std::to_string(i)}};
    };
    {  // Queued events go to the spool on the feed's timer, with no sync or more events.
        feed::Feed f(feed::parse_feed_config(cfg, "test"), feed::EncodeContext{"h", "0.1.0"});
        f.publish(ev(-1));
        for (int i = 0; i < 200 && f.spool_stats().appended == 0; ++i)
            std::this_thread::sleep_for(5ms);
        EXPECT_EQ(f.spool_stats().appended, 1u);
    }
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t child = ::fork();
    if (child == 0) {
        ::close(fds[0]);
        feed::Feed f(feed::parse_feed_config(cfg, "test"), feed::EncodeContext{"h", "0.1.0"});
        for (int i = 0; i < 1000; ++i) f.publish(ev(i));
        f.sync();
        (void)!::write(fds[1], "s", 1);                      // reported synced
        for (int i = 1000; i < 1100; ++i) f.publish(ev(i));  // queued, maybe not appended
        ::kill(::getpid(), SIGKILL);
    }
    ::close(fds[1]);
    char c = 0;
    EXPECT_EQ(::read(fds[0], &c, 1), 1);
    ::close(fds[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status));
    feed::Spool s({dir / "spool"});
    const auto recs = s.read(0, 100000, 1U << 30);
    ASSERT_GE(recs.size(), 1001u);  // the first feed's one, and every synced one
    feed::record::View v;
    for (std::size_t i = 0; i < recs.size(); ++i) {
        ASSERT_TRUE(v.decode(recs[i].payload)) << v.error();
        EXPECT_EQ(v.to_json(), ev(static_cast<int>(i) - 1));  // in order, none missing
    }
    fs::remove_all(dir);
}

}  // namespace
