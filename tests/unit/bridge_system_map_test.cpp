#include <gtest/gtest.h>

#include <string>

#include "vmi/system_map.hpp"

namespace vmi {
namespace {

TEST(BridgeSystemMap, ParsesSymbols) {
    const std::string text =
        "0000000000000000 D __per_cpu_start\n"
        "ffffffff81000000 T _text\n"
        "ffffffff81000000 T startup_64\r\n"
        "\n"
        "ffffffff82a12940 D init_task\n"
        "ffffffff82a12940 d init_task\n"  // duplicate name: first wins
        "ffffffffc0001000 t helper\t[some_module]\n";
    auto map = SystemMap::parse(text, "System.map");
    ASSERT_TRUE(map.ok()) << map.error().message();
    EXPECT_EQ(map->size(), 5U);
    EXPECT_EQ(map->lookup("_text"), 0xffffffff81000000ULL);
    EXPECT_EQ(map->lookup("startup_64"), 0xffffffff81000000ULL);
    EXPECT_EQ(map->lookup("init_task"), 0xffffffff82a12940ULL);
    EXPECT_EQ(map->lookup("__per_cpu_start"), 0U);
    EXPECT_EQ(map->lookup("helper"), 0xffffffffc0001000ULL);
    EXPECT_FALSE(map->lookup("nonexistent").has_value());
}

TEST(BridgeSystemMap, MalformedLineNamesFileAndLine) {
    const std::string text =
        "ffffffff81000000 T _text\n"
        "ffffffff81000010 T ok\n"
        "zzzz T broken\n";
    auto map = SystemMap::parse(text, "/boot/System.map-6.1");
    ASSERT_FALSE(map.ok());
    EXPECT_EQ(map.fault(), Fault::kInvalidFormat);
    EXPECT_NE(map.error().detail.find("/boot/System.map-6.1:3"), std::string::npos)
        << map.error().detail;
}

TEST(BridgeSystemMap, RejectsMissingFieldsBadTypeAndOverflow) {
    EXPECT_FALSE(SystemMap::parse("ffffffff81000000 T\n", "m").ok());
    EXPECT_FALSE(SystemMap::parse("ffffffff81000000 TT name\n", "m").ok());
    EXPECT_FALSE(SystemMap::parse("1ffffffff81000000 T name\n", "m").ok());  // > 64 bits
    EXPECT_FALSE(SystemMap::parse("ffffffff81000000 T name extra\n", "m").ok());
    auto r = SystemMap::parse("ffffffff81000000 T a\n\nffffffff81000000 T\n", "m");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().detail.find("m:3"), std::string::npos) << r.error().detail;
}

TEST(BridgeSystemMap, LoadMissingFileIsIoError) {
    EXPECT_EQ(SystemMap::load("/nonexistent/System.map").fault(), Fault::kIo);
}

}  // namespace
}  // namespace vmi
