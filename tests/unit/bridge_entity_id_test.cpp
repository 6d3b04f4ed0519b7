// Process entity ids: pinned values (the feed's ids must never change), and the bridge's
// process records carrying them.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "bridge_synthetic_guest.hpp"
#include "vmi/entity_id.hpp"
#include "vmi/linux_model.hpp"

namespace vmi {
namespace {

TEST(BridgeEntityId, PinnedValues) {
    // sha256("web-1\0" "0xffff888001234000\0" "123456789")[:16], as the feed always wrote it.
    EXPECT_EQ(process_entity_id("web-1", "0xffff888001234000", 123456789),
              "8bc65431e9184a1bbffc6e04476c1565");
    EXPECT_EQ(process_entity_id("web-1", 0xffff'8880'0123'4000ULL, 123456789),
              "8bc65431e9184a1bbffc6e04476c1565");
    EXPECT_EQ(process_entity_id("", std::uint64_t{0}, 0), "e79171a5005e8f08a94088dc52b7407d");
    EXPECT_EQ(task_address_text(0xffff'8880'0123'4000ULL), "0xffff888001234000");
    EXPECT_EQ(task_address_text(0), "0x0");
}

TEST(BridgeEntityId, EachPartMatters) {
    const std::string base = process_entity_id("vm", 0x1000, 5);
    EXPECT_EQ(base.size(), 32U);
    EXPECT_NE(process_entity_id("vm2", 0x1000, 5), base);
    EXPECT_NE(process_entity_id("vm", 0x2000, 5), base);
    EXPECT_NE(process_entity_id("vm", 0x1000, 6), base);
    // The NUL separators keep "vm" + "0x10..." apart from "vm0" + "x10...".
    EXPECT_NE(process_entity_id("vm0", "x1000", 5), base);
}

TEST(BridgeEntityId, ListingFillsItOnlyWithAVmName) {
    test::SyntheticLinux g(test::compact_offsets(), 2ULL << 20);
    std::vector<test::SynthProcess> v(2);
    v[0] = {0, 0, "swapper/0", "", {}, 0, 0, 0, 1};
    v[1] = {1, 0, "init", "/sbin/init", {"/sbin/init"}, 0, 0, 0, 1};
    g.build(v);
    LinuxGuest guest(g.mem(), g.offsets(), g.init_task_va());
    auto plain = guest.list_processes(g.cr3());
    ASSERT_TRUE(plain.ok());
    for (const auto& p : *plain) EXPECT_TRUE(p.entity_id.empty());
    ListOptions o;
    o.vm_name = "web-1";
    auto named = guest.list_processes(g.cr3(), o);
    ASSERT_TRUE(named.ok());
    ASSERT_EQ(named->size(), 2U);
    for (const auto& p : *named) {
        EXPECT_EQ(p.entity_id, process_entity_id("web-1", p.task_va, p.start_time_ns));
    }
    EXPECT_NE((*named)[0].entity_id, (*named)[1].entity_id);
}

}  // namespace
}  // namespace vmi
