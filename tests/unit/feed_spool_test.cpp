// The spool on a real filesystem: appends, reads, cursors, restarts, torn tails, the cap.
#include "feed/spool.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

namespace {
namespace fs = std::filesystem;

class SpoolTest : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() /
               ("vmi-spool-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }
    feed::SpoolOptions opts(std::uint64_t seg = 1 << 20, std::uint64_t max = 1 << 30) {
        feed::SpoolOptions o;
        o.dir = dir_;
        o.segment_bytes = seg;
        o.max_bytes = max;
        return o;
    }
    static std::string ev(int i) { return "{\"n\":" + std::to_string(i) + "}"; }
    fs::path dir_;
};

TEST_F(SpoolTest, AppendsAreReadBackInOrder) {
    feed::Spool s(opts());
    EXPECT_EQ(s.next_seq(), 1u);
    for (int i = 0; i < 100; ++i) EXPECT_EQ(s.append(ev(i)), static_cast<std::uint64_t>(i + 1));
    auto r = s.read(1, 1000, 1 << 20);
    ASSERT_EQ(r.size(), 100u);
    EXPECT_EQ(r[0].seq, 1u);
    EXPECT_EQ(r[99].payload, ev(99));
    r = s.read(51, 10, 1 << 20);
    ASSERT_EQ(r.size(), 10u);
    EXPECT_EQ(r[0].payload, ev(50));
    EXPECT_TRUE(s.read(101, 10, 1 << 20).empty());
    EXPECT_EQ(fs::status(dir_).permissions() & fs::perms::all, fs::perms::owner_all);
}

TEST_F(SpoolTest, ARestartKeepsRecordsIdAndCursors) {
    std::string id;
    {
        feed::Spool s(opts(256));  // several segments
        id = s.id();
        for (int i = 0; i < 50; ++i) s.append(ev(i));
        EXPECT_EQ(s.cursor("http"), 1u);
        s.commit("http", 21);
        s.sync();
    }
    feed::Spool s(opts(256));
    EXPECT_EQ(s.id(), id);  // event ids stay the same across restarts
    EXPECT_EQ(s.next_seq(), 51u);
    EXPECT_EQ(s.cursor("http"), 21u);
    EXPECT_EQ(s.read(21, 1, 1 << 20).at(0).payload, ev(20));
    EXPECT_EQ(s.append(ev(50)), 51u);
}

TEST_F(SpoolTest, ATornTailIsCutAtTheLastWholeRecord) {
    {
        feed::Spool s(opts());
        for (int i = 0; i < 10; ++i) s.append(ev(i));
    }
    // A crash mid-write: half a header and some bytes after the last whole record.
    fs::path seg;
    for (const auto& e : fs::directory_iterator(dir_))
        if (e.path().extension() == ".seg") seg = e.path();
    const auto size = fs::file_size(seg);
    {
        std::ofstream out(seg, std::ios::app | std::ios::binary);
        out << std::string("\x20\x00\x00\x00garbage", 11);
    }
    feed::Spool s(opts());
    EXPECT_EQ(fs::file_size(seg), size);
    EXPECT_EQ(s.stats().truncated_tail_bytes, 11u);
    EXPECT_EQ(s.next_seq(), 11u);
    EXPECT_EQ(s.append(ev(10)), 11u);
    EXPECT_EQ(s.read(1, 100, 1 << 20).size(), 11u);
}

TEST_F(SpoolTest, ACorruptRecordEndsTheSegmentThere) {
    {
        feed::Spool s(opts());
        for (int i = 0; i < 10; ++i) s.append(ev(i));
    }
    fs::path seg;
    for (const auto& e : fs::directory_iterator(dir_))
        if (e.path().extension() == ".seg") seg = e.path();
    {  // flip a payload byte of record 6 (records are 16 + 7 bytes here)
        std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(5 * 23 + 16 + 2);
        f.put('X');
    }
    feed::Spool s(opts());
    EXPECT_EQ(s.next_seq(), 6u);  // records 1-5 kept; 6 failed its CRC
    EXPECT_EQ(s.read(1, 100, 1 << 20).size(), 5u);
}

TEST_F(SpoolTest, ConsumedSegmentsAreDeleted) {
    feed::Spool s(opts(200));
    s.cursor("a");
    s.cursor("b");
    for (int i = 0; i < 100; ++i) s.append(ev(i));
    const auto segs = s.stats().segments;
    EXPECT_GT(segs, 5u);
    s.commit("a", 101);
    EXPECT_EQ(s.stats().segments, segs);  // b still needs them
    s.commit("b", 90);
    EXPECT_LT(s.stats().segments, segs);
    EXPECT_LE(s.first_seq(), 90u);
    EXPECT_EQ(s.read(90, 1, 1 << 20).at(0).seq, 90u);
}

TEST_F(SpoolTest, TheCapPurgesTheOldestAndSaysWhoLostWhat) {
    feed::Spool s(opts(240, 1000));
    s.cursor("slow");
    feed::Purge p;
    std::uint64_t purged = 0;
    for (int i = 0; i < 200; ++i) {
        feed::Purge one;
        s.append(ev(i), &one);
        if (!one.sinks.empty()) {
            EXPECT_EQ(one.sinks, std::vector<std::string>{"slow"});
            purged += one.last_seq - one.first_seq + 1;
            p = one;
        }
    }
    EXPECT_LE(s.stats().bytes, 1000u);
    EXPECT_GT(purged, 0u);
    EXPECT_EQ(s.stats().purged_records, purged);
    EXPECT_EQ(s.cursor("slow"), s.first_seq());  // moved past what is gone
    EXPECT_EQ(p.last_seq + 1, s.first_seq());
    // Everything kept is readable and contiguous up to the newest.
    const auto r = s.read(0, 1000, 1 << 20);
    EXPECT_EQ(r.front().seq, s.first_seq());
    EXPECT_EQ(r.back().seq, 200u);
}

TEST_F(SpoolTest, BadInputIsRefusedWithTheReason) {
    feed::Spool s(opts());
    EXPECT_THROW(s.append(std::string(2 << 20, 'x')), feed::SpoolError);
    EXPECT_THROW(s.cursor("../etc"), feed::SpoolError);
    EXPECT_THROW(s.commit("never-registered", 1), feed::SpoolError);
    EXPECT_TRUE(feed::valid_sink_name("http-siem_1"));
    EXPECT_FALSE(feed::valid_sink_name(""));
}

TEST_F(SpoolTest, InterleavedReadersEachGetTheirOwnRecords) {
    feed::Spool s(opts(1 << 20));  // one big segment: reads resume from remembered places
    for (int i = 0; i < 2000; ++i) s.append(ev(i));
    std::uint64_t a = 1, b = 900, c = 1;
    for (int round = 0; round < 120; ++round) {
        for (auto [next, n] : {std::pair{&a, 10}, std::pair{&b, 7}, std::pair{&c, 3}}) {
            const auto r = s.read(*next, static_cast<std::size_t>(n), 1 << 20);
            for (const auto& rec : r) {
                ASSERT_EQ(rec.seq, *next);
                ASSERT_EQ(rec.payload, ev(static_cast<int>(rec.seq) - 1));
                ++*next;
            }
        }
    }
    EXPECT_EQ(a, 1201u);
    EXPECT_EQ(b, 1740u);
    EXPECT_EQ(c, 361u);
    // A reader going back (a retried batch) still gets the right records.
    EXPECT_EQ(s.read(5, 1, 1 << 20).at(0).payload, ev(4));
}

TEST_F(SpoolTest, ABatchIsAppendedInOrderWithOneWrite) {
    feed::Spool s(opts(300));  // small segments: batches land whole in one each
    EXPECT_EQ(s.append(ev(0)), 1u);
    std::vector<std::string> payloads;
    for (int i = 1; i <= 50; ++i) payloads.push_back(ev(i));
    const std::vector<std::string_view> views(payloads.begin(), payloads.end());
    EXPECT_EQ(s.append_batch(views), 2u);
    EXPECT_EQ(s.append_batch(std::span(views).subspan(0, 3)), 52u);
    EXPECT_EQ(s.append_batch({}), 55u);  // nothing: the next seq, nothing written
    EXPECT_EQ(s.next_seq(), 55u);
    EXPECT_EQ(s.stats().appended, 54u);
    const auto r = s.read(1, 1000, 1 << 20);
    ASSERT_EQ(r.size(), 54u);
    for (std::size_t i = 0; i < 51; ++i) EXPECT_EQ(r[i].payload, ev(static_cast<int>(i)));
    EXPECT_EQ(r[53].payload, ev(3));
    // A batch with one record too long is refused whole: nothing of it is written.
    const std::string too_long(2 << 20, 'x');
    const std::vector<std::string_view> bad = {views[0], too_long};
    EXPECT_THROW(s.append_batch(bad), feed::SpoolError);
    EXPECT_EQ(s.next_seq(), 55u);
}

TEST_F(SpoolTest, ATornBatchIsCutAtTheLastWholeRecordAndSyncedBatchesSurvive) {
    {
        feed::Spool s(opts());
        std::vector<std::string> payloads;
        for (int i = 0; i < 20; ++i) payloads.push_back(ev(i));
        s.append_batch(std::vector<std::string_view>(payloads.begin(), payloads.end()));
        s.sync();
    }
    // A crash in the middle of the next batch's write: its first record whole, then half of
    // the second.
    fs::path seg;
    for (const auto& e : fs::directory_iterator(dir_))
        if (e.path().extension() == ".seg") seg = e.path();
    const auto size = fs::file_size(seg);
    {
        feed::Spool s(opts());
        s.append_batch(std::vector<std::string_view>{ev(20), ev(21)});
    }
    const auto full = fs::file_size(seg);
    fs::resize_file(seg, full - 10);
    feed::Spool s(opts());
    EXPECT_EQ(s.stats().truncated_tail_bytes, full - 10 - size - (16 + ev(20).size()));
    EXPECT_EQ(s.next_seq(), 22u);  // 20 synced, and the one whole record of the torn batch
    const auto r = s.read(1, 100, 1 << 20);
    ASSERT_EQ(r.size(), 21u);
    EXPECT_EQ(r.back().payload, ev(20));
}

TEST_F(SpoolTest, ReadsSpanManyWindowsAndSegments) {
    // Records larger than the read window, and many small ones across it.
    feed::Spool s(opts(1 << 20));
    const std::string big(300 << 10, 'b');
    s.append(ev(0));
    s.append(big);
    for (int i = 0; i < 30000; ++i) s.append(ev(i));
    s.append(big);
    std::uint64_t next = 1;
    std::size_t n = 0;
    for (;;) {
        const auto r = s.read(next, 777, 1 << 20);
        if (r.empty()) break;
        for (const auto& rec : r) {
            ASSERT_EQ(rec.seq, next++);
            if (rec.seq == 2 || rec.seq == 30003) {
                ASSERT_EQ(rec.payload, big);
            } else if (rec.seq > 2) {
                ASSERT_EQ(rec.payload, ev(static_cast<int>(rec.seq) - 3));
            }
            ++n;
        }
    }
    EXPECT_EQ(n, 30003u);
}

TEST_F(SpoolTest, WaitForWakesOnAppend) {
    feed::Spool s(opts());
    EXPECT_FALSE(s.wait_for(1, std::chrono::milliseconds(1)));
    std::thread t([&] { s.append(ev(1)); });
    EXPECT_TRUE(s.wait_for(1, std::chrono::seconds(10)));
    t.join();
}

}  // namespace
