// The spool's binary event record: every JSON value and any guest bytes survive the round
// trip; what it writes back is nlohmann's own text; damaged records are refused with a reason,
// never read out of bounds; sinks send a note in place of a damaged record.
#include <random>

#include <gtest/gtest.h>

#include "feed/encode.hpp"
#include "feed/encoding_sink.hpp"
#include "feed/record.hpp"
#include "feed/record_json.hpp"

namespace {
using json = nlohmann::json;
namespace record = feed::record;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// Every byte a guest can put in a string, and the UTF-8 cases that need care.
std::vector<std::string> guest_strings() {
    std::vector<std::string> s = {
        "",
        "plain",
        std::string("\0", 1),
        std::string("a\0b", 3),
        "\"\\/\b\f\n\r\t\x01\x1f\x7f",
        "h\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80",  // valid 2, 3 and 4 byte sequences
        "\xC0\xAF",                                 // overlong
        "\xED\xA0\x80",                             // a surrogate
        "\xE2\x82",                                 // cut short
        "\xE2\x82x",                                // cut short, then ASCII
        "\xF0\x9F\x98",                             // cut short (4 bytes)
        "\xF4\x90\x80\x80",                         // past U+10FFFF
        "\xF5\x80\x80\x80",
        "\x80x",  // a lone continuation byte
        "\xFF\xFE",
        std::string(70000, 'x'),  // longer than a varint byte or two
    };
    std::string all;
    for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
    s.push_back(all);
    return s;
}

json sample() {
    return json::parse(R"({"@timestamp":"2026-11-26T10:00:00.000001Z",
      "event":{"kind":"event","category":"process","action":"syscall","outcome":"success"},
      "vm":{"name":"web-01","uuid":"6f2c1b2a-0000-4000-8000-000000000001"},
      "process":{"pid":4242,"ppid":1,"name":"nginx","exe":"/usr/sbin/nginx",
        "args":["nginx","-g","daemon off;"],"uid":33,"euid":33,"gid":33,
        "task":"0xffff888001234000","start_time_ns":123456789,"cr3":"0x1234000",
        "parent":{"pid":1,"name":"systemd","exe":"/usr/lib/systemd/systemd"}},
      "syscall":{"name":"openat","nr":257,"args":{"dirfd":"AT_FDCWD","path":"/var/www/index.html",
        "flags":"O_RDONLY|O_CLOEXEC","mode":"0"},"ret":12,"raw_args":[1,2,3]},
      "vminsight":{"seq":7,"vcpu":0,"host_time_ns":99,"user_rip":"0x401000"}})");
}

TEST(FeedRecord, EveryValueRoundTrips) {
    json j = sample();
    j["values"] = {nullptr,
                   true,
                   false,
                   0,
                   -1,
                   std::numeric_limits<std::int64_t>::min(),
                   std::numeric_limits<std::int64_t>::max(),
                   std::numeric_limits<std::uint64_t>::max(),
                   1.5,
                   -0.0,
                   1e300,
                   json::array(),
                   json::object()};
    j["an unknown key"] = {{"nested", {{"deeper", {1, 2, {{"x", "y"}}}}}}};
    const std::string rec = record::encode(j);
    ASSERT_TRUE(record::is_record(rec));
    record::View v;
    ASSERT_TRUE(v.decode(rec)) << v.error();
    EXPECT_EQ(v.to_json(), j);
    // Written back: byte for byte what nlohmann writes.
    std::string out;
    record::append_json(out, v, 0);
    EXPECT_EQ(out, dump(j));
    // Smaller than the JSON text: well-known keys are a byte.
    EXPECT_LT(rec.size(), dump(sample()).size());
}

TEST(FeedRecord, AnyGuestBytesRoundTripAndDumpLikeNlohmann) {
    for (const std::string& s : guest_strings()) {
        const json j = {{"process", {{"name", s}, {"args", {s, "x", s}}}}, {s, s}};
        const std::string rec = record::encode(j);
        record::View v;
        ASSERT_TRUE(v.decode(rec)) << v.error();
        EXPECT_EQ(v.to_json(), j);  // the bytes as the guest gave them
        std::string out;
        record::append_json(out, v, 0);
        EXPECT_EQ(out, dump(j));  // the same U+FFFD and escapes as before
        EXPECT_FALSE(json::parse(out).is_discarded());
    }
    // Random bytes too.
    std::mt19937 rng(7);
    for (int round = 0; round < 2000; ++round) {
        std::string s(rng() % 40, '\0');
        for (char& c : s) c = static_cast<char>(rng());
        const json j = {{"k", s}};
        record::View v;
        const std::string rec = record::encode(j);
        ASSERT_TRUE(v.decode(rec));
        std::string out;
        record::append_json(out, v, 0);
        ASSERT_EQ(out, dump(j));
    }
}

TEST(FeedRecord, EncodersGiveTheSameFromARecordAsFromTheDocument) {
    const feed::EncodeContext ctx{"kvm-host-1", "0.1.0"};
    json j = sample();
    j["process"]["name"] = std::string("ev\xff\xfe\x01il\n\"x", 10);
    const std::string rec = record::encode(j);
    record::View v;
    ASSERT_TRUE(v.decode(rec));
    for (auto enc : {feed::Encoding::Native, feed::Encoding::Ecs, feed::Encoding::Ocsf}) {
        std::string out;
        ASSERT_TRUE(feed::encode_record(enc, v, "ab-9", 9, ctx, out));
        json a = json::parse(out), b = json::parse(*feed::encode(enc, j, "ab-9", 9, ctx));
        for (json* x : {&a, &b}) {  // the clock's fields differ by design
            if (x->contains("event")) (*x)["event"].erase("created");
            x->erase("time");
        }
        EXPECT_EQ(a, b) << feed::encoding_name(enc);
    }
    std::string out;
    EXPECT_FALSE(feed::encode_record(feed::Encoding::Falco, v, "ab-9", 9, ctx, out));
}

TEST(FeedRecord, DamagedRecordsAreRefusedWithTheReason) {
    const std::string good = record::encode(sample());
    record::View v;
    // Every cut is refused.
    for (std::size_t n = 0; n < good.size(); ++n)
        EXPECT_FALSE(v.decode(std::string_view(good).substr(0, n))) << n;
    EXPECT_FALSE(v.decode(good + "x"));
    EXPECT_NE(v.error().find("after the event"), std::string::npos) << v.error();
    const auto with = [&](std::string body) { return std::string("\xB7\x01", 2) + body; };
    EXPECT_FALSE(v.decode("{\"event\":{}}"));
    EXPECT_EQ(v.error(), "record: not a record");
    EXPECT_FALSE(v.decode(std::string("\xB7\x02\x00", 3)));
    EXPECT_EQ(v.error(), "record: version 2 unknown");
    EXPECT_FALSE(v.decode(with("\x09")));
    EXPECT_EQ(v.error(), "record: tag 9 unknown");
    EXPECT_FALSE(v.decode(with(std::string("\x08\x01\x7F\x00", 4))));  // key id 127
    EXPECT_NE(v.error().find("key id"), std::string::npos);
    EXPECT_FALSE(v.decode(with("\x07\xFF\xFF\xFF\xFF\x0F")));  // 4 G elements in 0 bytes
    EXPECT_EQ(v.error(), "record: bad count");
    EXPECT_FALSE(
        v.decode(with("\x06\x05"
                      "abc")));  // a string longer than what is left
    EXPECT_EQ(v.error(), "record: bad string length");
    EXPECT_FALSE(v.decode(with("\x04\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\x7F")));  // > 64 bits
    EXPECT_EQ(v.error(), "record: bad integer");
    EXPECT_FALSE(v.decode(with(std::string("\x05\x00\x00\x00\x00\x00\x00\xF8\x7F", 9))));  // NaN
    EXPECT_NE(v.error().find("finite"), std::string::npos);
    // 200 nested one-element arrays: deeper than the limit, refused before the stack suffers.
    std::string deep;
    for (int i = 0; i < 200; ++i) deep += "\x07\x01";
    deep += '\0';
    EXPECT_FALSE(v.decode(with(deep)));
    EXPECT_NE(v.error().find("deeper"), std::string::npos);
    EXPECT_TRUE(v.empty());
    // A failed decode leaves nothing behind; the next good one works.
    EXPECT_TRUE(v.decode(good));
    // Random damage never reads out of bounds (the sanitizer build checks) and a record that
    // still decodes is still one JSON line.
    std::mt19937 rng(11);
    const feed::EncodeContext ctx{"h", "0.1.0"};
    for (int round = 0; round < 5000; ++round) {
        std::string bad = good;
        for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k)
            bad[2 + rng() % (bad.size() - 2)] = static_cast<char>(rng());
        if (!v.decode(bad)) {
            EXPECT_FALSE(v.error().empty());
            continue;
        }
        std::string out;
        feed::encode_record(feed::Encoding::Ecs, v, "x-1", 1, ctx, out);
        EXPECT_FALSE(json::parse(out, nullptr, false).is_discarded());
    }
}

// A sink that keeps what it was given.
class Keep final : public feed::Sink {
  public:
    [[nodiscard]] std::string_view kind() const override { return "keep"; }
    feed::SendResult send(const feed::Delivery& d) override {
        std::string joined;
        for (const auto& r : d.records) {
            lines.emplace_back(r.payload);
            seqs.push_back(r.seq);
            joined += std::string(r.payload) + "\n";
        }
        // The lines handed over whole are exactly the records' payloads, a newline after each.
        EXPECT_EQ(d.lines, joined);
        return {d.records.size(), 0, {}, {}};
    }
    std::vector<std::string> lines;
    std::vector<std::uint64_t> seqs;
};

std::vector<feed::RecordView> views(const std::vector<feed::SpoolRecord>& recs) {
    std::vector<feed::RecordView> v;
    for (const auto& r : recs) v.push_back({r.seq, r.payload});
    return v;
}

TEST(FeedRecord, ASinkSendsANoteForADamagedRecordAndReadsOldJson) {
    auto keep = std::make_unique<Keep>();
    Keep& k = *keep;
    feed::EncodingSink s(std::move(keep), feed::Encoding::Ecs, {"h", "0.1.0"});
    std::vector<feed::SpoolRecord> recs = {
        {1, record::encode(sample())},
        {2, std::string("\xB7\x01\x09", 3)},  // damaged
        {3, dump(sample())},                  // JSON text, from an older spool
    };
    const auto r = s.send({"0123456789abcdef", views(recs), {}});
    EXPECT_EQ(r.accepted, 3u);
    ASSERT_EQ(k.lines.size(), 3u);
    const json a = json::parse(k.lines[0]), b = json::parse(k.lines[1]),
               c = json::parse(k.lines[2]);
    EXPECT_EQ(a["process"]["name"], "nginx");
    EXPECT_EQ(b["event"]["id"], "0123456789abcdef-2");  // its id, so the gap is visible
    EXPECT_EQ(b["event"]["action"], "record-unreadable");
    EXPECT_EQ(b["event"]["reason"], "record: tag 9 unknown");
    EXPECT_EQ(c["event"]["id"], "0123456789abcdef-3");
    EXPECT_EQ(c["process"]["name"], "nginx");
}

// Records an encoding skips (Falco: not an alert) leave no line, and the lines of the others
// stay whole and in order; the skipped ones count as delivered.
TEST(FeedRecord, ASinkSkipsRecordsWithoutBreakingTheLines) {
    json alert = sample();
    alert["event"]["kind"] = "alert";
    alert["rule"] = {{"name", "Read Shadow File"}, {"priority", "critical"}};
    alert["message"] = "shadow read";
    auto keep = std::make_unique<Keep>();
    Keep& k = *keep;
    feed::EncodingSink s(std::move(keep), feed::Encoding::Falco, {"h", "0.1.0"});
    std::vector<feed::SpoolRecord> recs;
    for (std::uint64_t i = 1; i <= 7; ++i)
        recs.push_back({i, record::encode(i % 3 == 0 ? alert : sample())});
    const auto r = s.send({"0123456789abcdef", views(recs), {}});
    EXPECT_EQ(r.accepted, 7u);
    EXPECT_EQ(k.seqs, (std::vector<std::uint64_t>{3, 6}));
    for (const auto& line : k.lines) EXPECT_FALSE(json::parse(line).is_discarded());
}

}  // namespace
