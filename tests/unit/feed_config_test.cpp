// Feed configuration errors name the field; the feed end to end into a real file; encodings
// that skip events still move the cursor.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "feed/feed.hpp"

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

}  // namespace
