#include "ring_reader.hpp"

#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "support/ring_producer.hpp"

using vmid::RingCorrupt;
using vmid::RingReader;
using vmitest::RingProducer;

TEST(RingReader, ReadsRecordsInOrderAndReturnsSlots) {
    RingProducer p(8);
    RingReader r(p.mapping());
    for (std::uint64_t i = 0; i < 5; ++i) ASSERT_TRUE(p.write(RingProducer::cr3(1, i, i + 1)));
    std::vector<std::uint64_t> seen;
    EXPECT_EQ(r.drain([&](const vmi_record& rec) { seen.push_back(rec.cr3.new_cr3); }), 5u);
    EXPECT_EQ(seen, (std::vector<std::uint64_t>{1, 2, 3, 4, 5}));
    EXPECT_EQ(p.header().data_tail, 5u);
    EXPECT_EQ(r.drain([](const vmi_record&) {}), 0u);
}

TEST(RingReader, WrapsAroundAndHonoursMax) {
    RingProducer p(4);
    RingReader r(p.mapping());
    std::uint64_t next = 0, expect = 0;
    for (int round = 0; round < 10; ++round) {
        for (int i = 0; i < 3; ++i) ASSERT_TRUE(p.write(RingProducer::cr3(0, 0, next++)));
        r.drain([&](const vmi_record& rec) { EXPECT_EQ(rec.cr3.new_cr3, expect++); }, 2);
        r.drain([&](const vmi_record& rec) { EXPECT_EQ(rec.cr3.new_cr3, expect++); });
    }
    EXPECT_EQ(expect, 30u);
    EXPECT_EQ(r.seq_gaps(), 0u);
}

TEST(RingReader, FullRingDropsAndLossIsCountedExactly) {
    RingProducer p(4);
    RingReader r(p.mapping());
    for (int i = 0; i < 10; ++i) p.write(RingProducer::cr3(0, 0, static_cast<std::uint64_t>(i)));
    EXPECT_EQ(p.written(), 4u);
    EXPECT_EQ(p.lost(), 6u);
    EXPECT_EQ(r.kernel_lost(), 6u);
    r.drain([](const vmi_record&) {});
    ASSERT_TRUE(p.write(RingProducer::cr3(0, 0, 99)));  // seq 10: after the 6 dropped
    std::uint64_t got = 0;
    r.drain([&](const vmi_record& rec) { got = rec.cr3.new_cr3; });
    EXPECT_EQ(got, 99u);
    EXPECT_EQ(r.seq_gaps(), 6u);
}

TEST(RingReader, ConcurrentProducerLosesNothingWhileReaderKeepsUp) {
    RingProducer p(1024);
    RingReader r(p.mapping());
    constexpr std::uint64_t kN = 200000;
    std::thread producer([&] {
        for (std::uint64_t i = 0; i < kN;)
            if (p.write(RingProducer::cr3(0, 0, i))) ++i;
    });
    std::uint64_t expect = 0;
    while (expect < kN)
        r.drain([&](const vmi_record& rec) { ASSERT_EQ(rec.cr3.new_cr3, expect++); });
    producer.join();
    // Retried writes are counted as lost by the producer and show up as sequence gaps.
    EXPECT_EQ(r.seq_gaps(), p.lost());
}

TEST(RingReader, RejectsHeadersThatBreakTheProtocol) {
    {
        RingProducer p(8);
        p.header().version = 99;
        EXPECT_THROW(RingReader{p.mapping()}, RingCorrupt);
    }
    {
        RingProducer p(8);
        p.header().nr_records = 6;  // not a power of two
        EXPECT_THROW(RingReader{p.mapping()}, RingCorrupt);
    }
    {
        RingProducer p(8);
        p.header().nr_records = 1 << 20;  // larger than the mapping
        EXPECT_THROW(RingReader{p.mapping()}, RingCorrupt);
    }
    {
        RingProducer p(8);
        RingReader r(p.mapping());
        p.header().data_head = 1000;  // a head more than a ring ahead
        EXPECT_THROW(r.drain([](const vmi_record&) {}), RingCorrupt);
    }
}
