// Sinks against real receivers: a real HTTP(S) server (tests/support/http_receiver.py) the
// test starts, stops and starts again, and real files.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "feed/file_sink.hpp"
#include "feed/http_sink.hpp"
#include "feed/spool.hpp"
#include "support/test_dir.hpp"

namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A directory of the test's own.
struct Dir : vmi_test::TestDir {
    Dir() : TestDir("vmi-feed") {}
};

// Records read from a spool, as a sink is given them.
std::vector<feed::RecordView> views(const std::vector<feed::SpoolRecord>& recs) {
    std::vector<feed::RecordView> v;
    for (const auto& r : recs) v.push_back({r.seq, r.payload});
    return v;
}

// The receiver process; killed (SIGKILL: an outage, not a clean stop) when it goes.
class Receiver {
  public:
    Receiver(const fs::path& dir, std::vector<std::string> extra, int port = 0) : dir_(dir) {
        const fs::path port_file = dir / "port";
        fs::remove(port_file);
        std::vector<std::string> argv = {
            "python3", VMI_HTTP_RECEIVER, "--port-file", port_file,
            "--out",   dir / "got.jsonl", "--port",      std::to_string(port)};
        argv.insert(argv.end(), extra.begin(), extra.end());
        pid_ = ::fork();
        if (pid_ == 0) {
            std::vector<char*> a;
            for (auto& s : argv) a.push_back(s.data());
            a.push_back(nullptr);
            ::execvp("python3", a.data());
            ::_exit(127);
        }
        for (int i = 0; i < 1000 && !fs::exists(port_file); ++i) std::this_thread::sleep_for(10ms);
        std::ifstream(port_file) >> port_;
        EXPECT_GT(port_, 0) << "receiver did not start";
    }
    ~Receiver() { stop(); }
    void stop() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
            pid_ = -1;
        }
    }
    int port() const { return port_; }
    std::vector<nlohmann::json> requests() const {
        std::vector<nlohmann::json> out;
        std::ifstream in(dir_ / "got.jsonl");
        for (std::string l; std::getline(in, l);) out.push_back(nlohmann::json::parse(l));
        return out;
    }

  private:
    fs::path dir_;
    pid_t pid_ = -1;
    int port_ = 0;
};

std::string ev(int i) { return nlohmann::json{{"n", i}}.dump(); }

feed::WorkerOptions fast() {
    feed::WorkerOptions w;
    w.batch_records = 100;
    w.backoff_min = 50ms;
    w.backoff_max = 400ms;
    w.idle_wait = 50ms;
    return w;
}

TEST(FeedHttp, EveryEventArrivesOnceInOrder) {
    Dir d;
    Receiver rx(d.path, {});
    feed::Spool spool({d.path / "spool"});
    for (int i = 0; i < 1000; ++i) spool.append(ev(i));
    feed::HttpSinkOptions o;
    o.url = "http://127.0.0.1:" + std::to_string(rx.port()) + "/ingest";
    o.headers["Authorization"] = "Bearer t0k3n";
    feed::SinkWorker w(spool, "webhook", std::make_unique<feed::HttpSink>(o), fast());
    ASSERT_TRUE(w.drain(30s));
    std::vector<std::string> lines;
    for (const auto& r : rx.requests()) {
        EXPECT_EQ(r["path"], "/ingest");
        EXPECT_EQ(r["auth"], "Bearer t0k3n");
        std::istringstream body(r["body"].get<std::string>());
        for (std::string l; std::getline(body, l);) lines.push_back(l);
    }
    ASSERT_EQ(lines.size(), 1000u);
    for (int i = 0; i < 1000; ++i) EXPECT_EQ(lines[static_cast<std::size_t>(i)], ev(i));
    EXPECT_EQ(w.status().delivered, 1000u);
    EXPECT_EQ(spool.cursor("webhook"), 1001u);  // acknowledged, persisted
}

TEST(FeedHttp, AnOutageLosesNothingAndDuplicatesKeepTheirIds) {
    Dir d;
    auto rx = std::make_unique<Receiver>(d.path, std::vector<std::string>{"--mode", "bulk"});
    const int port = rx->port();
    feed::Spool spool({d.path / "spool"});
    feed::HttpSinkOptions o;
    o.url = "http://127.0.0.1:" + std::to_string(port) + "/_bulk";
    o.format = feed::HttpFormat::ElasticBulk;
    std::mutex mu;
    std::vector<bool> states;
    feed::SinkWorker w(spool, "es", std::make_unique<feed::HttpSink>(o), fast(),
                       [&](const feed::SinkStatus& s) {
                           std::lock_guard lk(mu);
                           states.push_back(s.up);
                       });
    for (int i = 0; i < 300; ++i) spool.append(ev(i));
    ASSERT_TRUE(w.drain(30s));
    rx->stop();  // the receiver dies while events keep coming
    for (int i = 300; i < 600; ++i) spool.append(ev(i));
    for (int i = 0; i < 500 && w.status().up; ++i) std::this_thread::sleep_for(10ms);
    EXPECT_FALSE(w.status().up);
    EXPECT_NE(w.status().last_error.find("connect"), std::string::npos) << w.status().last_error;
    EXPECT_FALSE(w.drain(300ms));
    rx = std::make_unique<Receiver>(d.path, std::vector<std::string>{"--mode", "bulk"}, port);
    ASSERT_TRUE(w.drain(30s));
    EXPECT_TRUE(w.status().up);
    {
        std::lock_guard lk(mu);
        EXPECT_EQ(states, (std::vector<bool>{false, true}));  // down once, up once
    }
    // Every event arrived; any sent twice carried the same _id.
    std::map<std::string, std::set<std::string>> docs_by_id;
    for (const auto& r : rx->requests()) {
        std::istringstream body(r["body"].get<std::string>());
        for (std::string action, doc; std::getline(body, action) && std::getline(body, doc);)
            docs_by_id[nlohmann::json::parse(action)["create"]["_id"]].insert(doc);
    }
    // The first receiver's file holds the first 300: one file, both lives.
    EXPECT_EQ(docs_by_id.size(), 600u);
    for (const auto& [id, docs] : docs_by_id) EXPECT_EQ(docs.size(), 1u) << id;
    EXPECT_TRUE(docs_by_id.count(spool.id() + "-600"));
}

TEST(FeedHttp, RetryAfterIsHonoured) {
    Dir d;
    Receiver rx(d.path, {"--fail-first", "1"});
    feed::Spool spool({d.path / "spool"});
    spool.append(ev(1));
    feed::HttpSinkOptions o;
    o.url = "http://127.0.0.1:" + std::to_string(rx.port()) + "/";
    feed::SinkWorker w(spool, "h", std::make_unique<feed::HttpSink>(o), fast());
    ASSERT_TRUE(w.drain(30s));
    std::ifstream refused(d.path / "got.jsonl.refused");
    std::string l;
    ASSERT_TRUE(std::getline(refused, l));
    const double t_refused = nlohmann::json::parse(l)["t"];
    const double t_taken = rx.requests().at(0)["t"];
    // The receiver said "Retry-After: 1"; our own backoff would have been 50 ms.
    EXPECT_GE(t_taken - t_refused, 0.9);
    EXPECT_EQ(w.status().failures, 1u);
}

TEST(FeedHttp, HttpsVerifiesTheReceiver) {
    Dir d;
    const auto cert = d.path / "cert.pem", key = d.path / "key.pem";
    const std::string cmd =
        "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
        "-addext subjectAltName=DNS:localhost -keyout " +
        key.string() + " -out " + cert.string() + " 2>/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    Receiver rx(d.path, {"--tls-cert", cert, "--tls-key", key, "--mode", "hec"});
    feed::Spool spool({d.path / "spool"});
    spool.append(ev(7));
    const std::string url =
        "https://localhost:" + std::to_string(rx.port()) + "/services/collector";
    {  // Not trusted: refused, nothing delivered.
        feed::HttpSinkOptions o;
        o.url = url;
        o.format = feed::HttpFormat::SplunkHec;
        feed::HttpSink sink(o);
        const auto recs = spool.read(1, 10, 1 << 20);
        const auto r = sink.send({spool.id(), views(recs), {}});
        EXPECT_EQ(r.accepted, 0u);
        EXPECT_NE(r.error.find("TLS handshake"), std::string::npos) << r.error;
    }
    feed::HttpSinkOptions o;
    o.url = url;
    o.format = feed::HttpFormat::SplunkHec;
    o.ca_file = cert;
    o.headers["Authorization"] = "Splunk 1234";
    feed::SinkWorker w(spool, "hec", std::make_unique<feed::HttpSink>(o), fast());
    ASSERT_TRUE(w.drain(30s));
    const auto got = rx.requests();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0]["auth"], "Splunk 1234");
    EXPECT_EQ(nlohmann::json::parse(got[0]["body"].get<std::string>())["event"]["n"], 7);
}

TEST(FeedHttp, BulkItemResultsAreJudgedOneByOne) {
    feed::HttpSinkOptions o;
    o.url = "http://127.0.0.1:1/_bulk";
    o.format = feed::HttpFormat::ElasticBulk;
    feed::HttpSink sink(o);
    auto items = [](std::vector<int> st) {
        nlohmann::json j = {{"errors", true}, {"items", nlohmann::json::array()}};
        for (int s : st) j["items"].push_back({{"create", {{"status", s}}}});
        return j.dump();
    };
    auto r = sink.judge(200, items({201, 409, 201}), 3, "");
    EXPECT_EQ(r.accepted, 3u);
    EXPECT_TRUE(r.error.empty());
    r = sink.judge(200, items({201, 429, 201}), 3, "");
    EXPECT_EQ(r.accepted, 1u);  // the rest again, later
    EXPECT_EQ(r.error, "bulk item 1: status 429");
    r = sink.judge(200, items({201, 400, 400}), 3, "");
    EXPECT_EQ(r.accepted, 1u);
    EXPECT_EQ(r.rejected, 2u);  // documents it will never take: counted, skipped
    r = sink.judge(200, items({400, 201}), 2, "");
    EXPECT_EQ(r.accepted + r.rejected, 1u);  // order kept: a rejected one before an accepted
    r = sink.judge(429, "", 3, "7");
    EXPECT_EQ(r.accepted, 0u);
    EXPECT_EQ(r.retry_after, std::chrono::milliseconds(7000));
    EXPECT_EQ(sink.judge(200, "not json", 3, "").error,
              "bulk response without items from http://127.0.0.1:1/_bulk");
    EXPECT_THROW(feed::parse_url("ftp://x"), std::invalid_argument);
    EXPECT_THROW(feed::parse_url("http://:80/"), std::invalid_argument);
    EXPECT_EQ(feed::parse_url("https://siem.example:8088/x").port, "8088");
}

std::string gunzip(const fs::path& p) {
    gzFile f = gzopen(p.c_str(), "rb");
    std::string out;
    char buf[4096];
    for (int n; (n = gzread(f, buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
    gzclose(f);
    return out;
}

// 2000 events through a file sink rotating every 4 KiB into d/events.jsonl; the .gz files
// it left, in name order.
std::vector<fs::path> write_rotating(const Dir& d, unsigned keep) {
    feed::Spool spool({d.path / "spool"});
    for (int i = 0; i < 2000; ++i) spool.append(ev(i));
    feed::FileSinkOptions o;
    o.path = d.path / "events.jsonl";
    o.rotate_bytes = 4096;
    o.keep = keep;
    {
        feed::SinkWorker w(spool, "file", std::make_unique<feed::FileSink>(o), fast());
        EXPECT_TRUE(w.drain(30s));
    }
    std::vector<fs::path> rotated;
    for (const auto& e : fs::directory_iterator(d.path))
        if (e.path().extension() == ".gz") rotated.push_back(e.path());
    std::sort(rotated.begin(), rotated.end());
    return rotated;
}

TEST(FeedFile, RotatesCompressesAndKeepsEveryLine) {
    Dir d;
    const auto rotated = write_rotating(d, 1000);
    const fs::path current = d.path / "events.jsonl";
    EXPECT_GT(rotated.size(), 3u);
    std::string all;
    for (const auto& p : rotated) all += gunzip(p);
    std::ifstream cur(current);
    all += std::string(std::istreambuf_iterator<char>(cur), {});
    std::string want;
    for (int i = 0; i < 2000; ++i) want += ev(i) + "\n";
    EXPECT_TRUE(all == want) << "rotated files lost, repeated or reordered lines: " << all.size()
                             << " bytes for " << want.size();
    EXPECT_EQ(fs::status(current).permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write);
}

TEST(FeedFile, KeepsOnlyTheNewestRotations) {
    Dir d;
    EXPECT_EQ(write_rotating(d, 2).size(), 2u);
}

// A batch of many lines, of every length from empty to 64 KiB (megabytes: more than one write
// takes), handed over as records alone and as lines back to back: written whole and in order,
// with each line's newline, either way.
TEST(FeedFile, ABatchLargerThanOneWriteIsWrittenWhole) {
    std::vector<feed::SpoolRecord> recs(3000);
    std::string want;
    for (std::size_t i = 0; i < recs.size(); ++i) {
        recs[i].seq = i + 1;
        recs[i].payload.assign(i % 97 == 0 ? (i * 37) % 65536 : i % 50,
                               static_cast<char>('a' + i % 26));
        want += recs[i].payload + "\n";
    }
    const auto v = views(recs);
    for (const std::string_view lines : {std::string_view(), std::string_view(want)}) {
        Dir d;
        feed::FileSinkOptions o;
        o.path = d.path / "events.jsonl";
        o.rotate_bytes = 0;
        feed::FileSink sink(o);
        const feed::SendResult r = sink.send({"0123456789abcdef", v, lines});
        EXPECT_TRUE(r.error.empty()) << r.error;
        EXPECT_EQ(r.accepted, recs.size());
        std::ifstream in(o.path);
        const std::string got{std::istreambuf_iterator<char>(in), {}};
        EXPECT_TRUE(got == want) << got.size() << " bytes for " << want.size();
    }
}

}  // namespace

namespace {

// The test: the receiver is down for 30 s while events keep coming at a steady rate.
// Every event arrives (Elasticsearch _bulk semantics: a resent one is a 409 with the same id),
// and the capture side's append never waits for the receiver.
TEST(FeedHttp, AThirtySecondOutageWhileEventsFlow) {
    Dir d;
    auto rx = std::make_unique<Receiver>(d.path, std::vector<std::string>{"--mode", "bulk"});
    const int port = rx->port();
    feed::Spool spool({d.path / "spool"});
    feed::HttpSinkOptions o;
    o.url = "http://127.0.0.1:" + std::to_string(port) + "/_bulk";
    o.format = feed::HttpFormat::ElasticBulk;
    o.timeout = 1s;
    feed::WorkerOptions wo = fast();
    wo.backoff_max = 2s;
    feed::SinkWorker w(spool, "es", std::make_unique<feed::HttpSink>(o), wo);
    std::atomic<bool> stop{false};
    std::atomic<int> sent{0};
    std::atomic<std::int64_t> worst_append_us{0};
    // A steady producer: 500 events/s (the pacing is the workload, not a synchronisation).
    std::thread producer([&] {
        for (int i = 0; !stop; ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            spool.append(ev(i));
            const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                                std::chrono::steady_clock::now() - t0)
                                .count();
            worst_append_us = std::max<std::int64_t>(worst_append_us, us);
            ++sent;
            std::this_thread::sleep_for(2ms);
        }
    });
    std::this_thread::sleep_for(3s);
    rx->stop();
    const auto down_at = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(30s);
    EXPECT_FALSE(w.status().up);
    EXPECT_GT(w.status().backlog, 1000u);  // it kept coming while the receiver was away
    rx = std::make_unique<Receiver>(d.path, std::vector<std::string>{"--mode", "bulk"}, port);
    std::this_thread::sleep_for(2s);
    stop = true;
    producer.join();
    EXPECT_GE(std::chrono::steady_clock::now() - down_at, 30s);
    ASSERT_TRUE(w.drain(60s)) << w.status().last_error;
    std::map<std::string, std::set<std::string>> docs_by_id;
    for (const auto& r : rx->requests()) {
        std::istringstream body(r["body"].get<std::string>());
        for (std::string action, doc; std::getline(body, action) && std::getline(body, doc);)
            docs_by_id[nlohmann::json::parse(action)["create"]["_id"]].insert(doc);
    }
    EXPECT_EQ(docs_by_id.size(), static_cast<std::size_t>(sent.load()));
    for (const auto& [id, docs] : docs_by_id) EXPECT_EQ(docs.size(), 1u) << id;
    // The capture path (the append) never waited for the dead receiver: a wait would be at
    // least the sink's 1 s timeout.
    EXPECT_LT(worst_append_us.load(), 500'000) << "an append took " << worst_append_us << " us";
    std::printf("30 s outage: %d events, all delivered; worst append %lld us\n", sent.load(),
                static_cast<long long>(worst_append_us.load()));
}

}  // namespace
