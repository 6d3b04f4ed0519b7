// VMInsight's <monitor> element in a domain's libvirt metadata: parsing is strict (a typo is an
// error naming it, never a silent "not monitored"), formatting escapes what it writes.
#include "libvirt/domain_metadata.hpp"

#include <gtest/gtest.h>

namespace lv = vmid::libvirt;

namespace {

std::string error_of(const std::string& xml) {
    try {
        lv::parse_monitor_metadata(xml);
    } catch (const lv::MetadataError& e) {
        return e.what();
    }
    return "";
}

TEST(MonitorMetadata, ParsesWhatVirshWrites) {
    const auto s = lv::parse_monitor_metadata(
        "<monitor enabled=\"yes\" policy=\"web\">\n  <label name=\"env\">prod</label>\n"
        "  <!-- a comment -->\n</monitor>");
    EXPECT_TRUE(s.enabled);
    EXPECT_EQ(s.policy, "web");
    ASSERT_EQ(s.labels.size(), 1U);
    EXPECT_EQ(s.labels.at("env"), "prod");
    EXPECT_FALSE(lv::parse_monitor_metadata("<monitor enabled='NO'/>").enabled);
    EXPECT_TRUE(lv::parse_monitor_metadata("<monitor enabled='true'/>").enabled);
}

TEST(MonitorMetadata, NamesWhatIsWrong) {
    EXPECT_NE(error_of("<monitor enable='yes'/>").find("unknown attribute 'enable'"),
              std::string::npos);
    EXPECT_NE(error_of("<monitor/>").find("no enabled attribute"), std::string::npos);
    EXPECT_NE(error_of("<monitor enabled='maybe'/>").find("'maybe' is not yes or no"),
              std::string::npos);
    EXPECT_NE(error_of("<monitor enabled='yes' policy='a;rm -rf'/>").find("<monitor policy>"),
              std::string::npos);
    EXPECT_NE(error_of("<monitor enabled='yes'><lable name='x'>y</lable></monitor>")
                  .find("unknown element <lable>"),
              std::string::npos);
    EXPECT_NE(error_of("<monitor enabled='yes'><label name='a'>1</label><label name='a'>2</label>"
                       "</monitor>")
                  .find("given twice"),
              std::string::npos);
    EXPECT_NE(error_of("<watch enabled='yes'/>").find("must be <monitor>"), std::string::npos);
    EXPECT_NE(error_of("<monitor enabled='yes'").find("not well-formed"), std::string::npos);
    EXPECT_NE(error_of(std::string(70000, ' ')).find("64 KiB"), std::string::npos);
}

TEST(MonitorMetadata, EntitiesAreNotExpandedFromOutside) {
    // An external entity must not be fetched or read (XML_PARSE_NONET, no NOENT).
    const std::string xml =
        "<?xml version='1.0'?><!DOCTYPE monitor [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>"
        "<monitor enabled='yes'><label name='e'>&x;</label></monitor>";
    std::string value;
    try {
        value = lv::parse_monitor_metadata(xml).labels["e"];
    } catch (const lv::MetadataError&) {
    }
    EXPECT_EQ(value.find("root:"), std::string::npos);
}

TEST(MonitorMetadata, FormatRoundTripsAndEscapes) {
    lv::MonitorSetting s;
    s.enabled = true;
    s.policy = "web-tier";
    s.labels = {{"owner", "a<b & \"c\""}, {"env", "prod"}};
    const std::string xml = lv::format_monitor_metadata(s);
    EXPECT_NE(xml.find("&lt;"), std::string::npos) << xml;
    EXPECT_EQ(lv::parse_monitor_metadata(xml), s);
    lv::MonitorSetting off;
    EXPECT_EQ(lv::format_monitor_metadata(off), "<monitor enabled=\"no\"/>");
    lv::MonitorSetting bad;
    bad.policy = "x y";
    EXPECT_THROW(lv::format_monitor_metadata(bad), lv::MetadataError);
}

}  // namespace
