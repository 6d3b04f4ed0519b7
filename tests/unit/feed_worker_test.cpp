// The sink worker's pipeline: the next batch is read and prepared (encoded) while one is sent,
// and what was read ahead never changes what is delivered: after a failed send or a purge,
// delivery goes on from the cursor, in order. The sink here is scripted, to hold a send
// while the test looks at the read-ahead; real receivers are in feed_sink_test.cpp.
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "feed/sink.hpp"
#include "feed/spool.hpp"
#include "support/test_dir.hpp"

namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A directory of the test's own.
struct Dir : vmi_test::TestDir {
    Dir() : TestDir("vmi-worker") {}
};

// A sink whose sends the test scripts: `on_send(first seq, call number)` gives the result.
// It records every batch prepared and every record sent, and lets the test wait for either.
class ScriptedSink : public feed::Sink {
  public:
    using Script = std::function<feed::SendResult(std::span<const feed::RecordView>, int call)>;
    explicit ScriptedSink(Script s) : script_(std::move(s)) {}

    [[nodiscard]] std::string_view kind() const override { return "scripted"; }
    feed::SendResult send(const feed::Delivery&) override {
        ADD_FAILURE() << "the worker sent a batch it did not prepare";
        return {};
    }
    bool prepare(const feed::Delivery& d, feed::PreparedBatch& p) override {
        p.records.assign(d.records.begin(), d.records.end());
        {
            std::lock_guard lk(mu_);
            prepared_.push_back(d.records.front().seq);
        }
        cv_.notify_all();
        return true;
    }
    feed::SendResult send_prepared(const feed::Delivery& d, const feed::PreparedBatch& p) override {
        EXPECT_EQ(p.records.size(), d.records.size());
        int call = 0;
        {
            std::lock_guard lk(mu_);
            call = ++calls_;
        }
        const feed::SendResult r = script_(p.records, call);
        {
            std::lock_guard lk(mu_);
            for (std::size_t i = 0; i < r.accepted && i < p.records.size(); ++i)
                accepted_.push_back(p.records[i].seq);
            sends_.push_back(p.records.front().seq);
        }
        cv_.notify_all();
        return r;
    }

    // Waits until `n` batches were prepared; false after 10 s.
    bool wait_prepared(std::size_t n) {
        std::unique_lock lk(mu_);
        return cv_.wait_for(lk, 10s, [&] { return prepared_.size() >= n; });
    }
    std::vector<std::uint64_t> accepted() {
        std::lock_guard lk(mu_);
        return accepted_;
    }
    std::vector<std::uint64_t> sends() {  // the first seq of each batch sent
        std::lock_guard lk(mu_);
        return sends_;
    }

  private:
    Script script_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<std::uint64_t> prepared_, accepted_, sends_;
    int calls_ = 0;
};

feed::WorkerOptions opts() {
    feed::WorkerOptions w;
    w.batch_records = 10;
    w.backoff_min = 1ms;
    w.backoff_max = 10ms;
    w.idle_wait = 20ms;
    return w;
}

std::vector<std::uint64_t> seqs(std::uint64_t from, std::uint64_t to) {
    std::vector<std::uint64_t> v;
    for (std::uint64_t s = from; s <= to; ++s) v.push_back(s);
    return v;
}

feed::SendResult all(std::span<const feed::RecordView> b) { return {b.size(), 0, {}, {}}; }

TEST(FeedWorker, TheNextBatchIsPreparedWhileOneIsSent) {
    Dir d;
    feed::Spool spool({d.path});
    for (int i = 0; i < 30; ++i) spool.append("event " + std::to_string(i));
    ScriptedSink* sink = nullptr;
    bool overlapped = false;
    auto owned = std::make_unique<ScriptedSink>([&](auto b, int call) {
        // The first send waits for the second batch: it comes only if it is read and
        // prepared while this send is still going on.
        if (call == 1) overlapped = sink->wait_prepared(2);
        return all(b);
    });
    sink = owned.get();
    feed::SinkWorker w(spool, "t", std::move(owned), opts());
    ASSERT_TRUE(w.drain(10s));
    EXPECT_TRUE(overlapped) << "batch 2 was not prepared while batch 1 was being sent";
    EXPECT_EQ(sink->accepted(), seqs(1, 30));
}

TEST(FeedWorker, AFailedSendDropsWhatWasReadAheadAndGoesOnFromTheCursor) {
    Dir d;
    feed::Spool spool({d.path});
    for (int i = 0; i < 35; ++i) spool.append("event " + std::to_string(i));
    ScriptedSink* sink = nullptr;
    auto owned = std::make_unique<ScriptedSink>([&](auto b, int call) -> feed::SendResult {
        if (call == 1) {
            // Batch 11..20 is ready behind this one when the receiver takes 4 and fails.
            EXPECT_TRUE(sink->wait_prepared(2));
            return {4, 0, "receiver went away", {}};
        }
        return all(b);
    });
    sink = owned.get();
    feed::SinkWorker w(spool, "t", std::move(owned), opts());
    ASSERT_TRUE(w.drain(10s));
    // Each record acknowledged once, in order; the retry starts at the first not taken.
    EXPECT_EQ(sink->accepted(), seqs(1, 35));
    const auto sends = sink->sends();
    ASSERT_GE(sends.size(), 2U);
    EXPECT_EQ(sends[0], 1U);
    EXPECT_EQ(sends[1], 5U) << "the batch read ahead (from 11) was sent before the retry";
    const auto st = w.status();
    EXPECT_EQ(st.delivered, 35U);
    EXPECT_EQ(st.failures, 1U);
    EXPECT_TRUE(st.up);
}

TEST(FeedWorker, RecordsPurgedWhileReadAheadAreNotSent) {
    Dir d;
    feed::SpoolOptions so{d.path};
    so.segment_bytes = 1000;  // about 8 records of 116 bytes each
    so.max_bytes = 6000;
    feed::Spool spool(so);
    const std::string payload(100, 'x');
    for (int i = 0; i < 20; ++i) spool.append(payload);
    std::mutex gate_mu;
    std::condition_variable gate_cv;
    bool gate_open = false, sending = false;
    ScriptedSink* sink = nullptr;
    auto owned = std::make_unique<ScriptedSink>([&](auto b, int call) {
        if (call == 1) {  // held, with 11..20 read ahead, until the test has purged them
            std::unique_lock lk(gate_mu);
            sending = true;
            gate_cv.notify_all();
            EXPECT_TRUE(gate_cv.wait_for(lk, 10s, [&] { return gate_open; }));
        }
        return all(b);
    });
    sink = owned.get();
    feed::SinkWorker w(spool, "t", std::move(owned), opts());
    {
        // 1..10 is being sent (a purge before that would rightly skip it too).
        std::unique_lock lk(gate_mu);
        ASSERT_TRUE(gate_cv.wait_for(lk, 10s, [&] { return sending; }));
    }
    ASSERT_TRUE(sink->wait_prepared(2));
    // Past the cap: the oldest segments go, this sink's cursor is moved past them.
    std::uint64_t purged_to = 0;
    for (int i = 0; i < 60; ++i) {
        feed::Purge p;
        spool.append(payload, &p);
        if (!p.sinks.empty()) purged_to = p.last_seq;
    }
    ASSERT_GT(purged_to, 20U) << "the test's appends did not purge the batch read ahead";
    {
        std::lock_guard lk(gate_mu);
        gate_open = true;
    }
    gate_cv.notify_all();
    ASSERT_TRUE(w.drain(10s));
    // 1..10 was already being sent; then delivery resumes after the purged records.
    std::vector<std::uint64_t> want = seqs(1, 10);
    for (std::uint64_t s = purged_to + 1; s <= 80; ++s) want.push_back(s);
    EXPECT_EQ(sink->accepted(), want);
    EXPECT_GT(spool.stats().purged_records, 0U);
}

TEST(FeedWorker, ACursorThatCannotBeWrittenIsReportedAndNothingIsResent) {
    Dir d;
    std::uint64_t kept = 0;
    {
        feed::Spool spool({d.path});
        for (int i = 0; i < 30; ++i) spool.append("event " + std::to_string(i));
        // The cursor's temporary file cannot be created (as on a full disk).
        fs::create_directories(d.path / "t.cursor.tmp");
        auto owned = std::make_unique<ScriptedSink>([](auto b, int) { return all(b); });
        ScriptedSink* sink = owned.get();
        feed::SinkWorker w(spool, "t", std::move(owned), opts());
        ASSERT_TRUE(w.drain(10s));
        EXPECT_EQ(sink->accepted(), seqs(1, 30)) << "an acknowledged batch was sent again";
        EXPECT_NE(w.status().last_error.find("t.cursor.tmp"), std::string::npos)
            << w.status().last_error;
        // Once it can be written again, the next batch's commit persists it.
        fs::remove(d.path / "t.cursor.tmp");
        for (int i = 0; i < 5; ++i) spool.append("later " + std::to_string(i));
        ASSERT_TRUE(w.drain(10s));
        EXPECT_EQ(sink->accepted(), seqs(1, 35));
    }
    feed::Spool reopened({d.path});
    kept = reopened.cursor("t");
    EXPECT_EQ(kept, 36U);
}

}  // namespace
