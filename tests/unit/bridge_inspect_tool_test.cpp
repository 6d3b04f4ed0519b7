// vminsight-inspect end to end on a raw image of a synthetic guest without in-memory BTF:
// --isf / --btf profiles, entity ids in `ps --json` and the --vm-name default.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "bridge_btf_to_isf.hpp"
#include "bridge_synthetic_guest.hpp"
#include "vmi/entity_id.hpp"

namespace vmi {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr std::uint64_t kText = 0xffff'ffff'8a00'0000ULL;
constexpr std::uint64_t kLinkText = 0xffff'ffff'8100'0000ULL;

struct ToolRun {
    int status = -1;
    std::string out;
};

// Runs the tool with `args` (no shell quoting needed: paths are ours), stdout captured.
ToolRun inspect(const std::string& args) {
    const std::string cmd = std::string(VMI_INSPECT_BIN) + " " + args + " 2>&1";
    ToolRun r;
    FILE* p = popen(cmd.c_str(), "r");
    if (p == nullptr) return r;
    char buf[4096];
    std::size_t n = 0;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
    const int st = pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

class BridgeInspectTool : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = fs::path(::testing::TempDir()) / ("vmi-inspect-" + std::to_string(getpid()));
        fs::create_directories(dir_);
        g_.map_kernel_image(kText);
        std::vector<test::SynthProcess> v(3);
        v[0] = {0, 0, "swapper/0", "", {}, 0, 0, 0, 1};
        v[1] = {1, 0, "init", "/sbin/init", {"/sbin/init"}, 0, 0, 0, 1};
        v[2] = {40, 1, "sh", "/bin/sh", {"sh"}, 1000, 1000, 100, 1};
        g_.build(v);
        std::vector<char> ram(2U << 20);
        for (std::uint64_t pg = 0; pg < ram.size(); pg += 4096) {
            (void)g_.mem().read_phys(pg, std::as_writable_bytes(std::span(ram.data() + pg, 4096)));
        }
        write(image(), ram.data(), ram.size());
        const auto btf = test::compact_kernel_btf();
        write(btf_file(), btf.data(), btf.size());
        const std::string isf =
            test::BtfToIsf::convert(
                btf, {{"_text", kLinkText}, {"init_task", g_.init_task_va() - (kText - kLinkText)}})
                .dump();
        write(isf_file(), isf.data(), isf.size());
        cr3_ = "--cr3 " + hex(g_.cr3());
    }
    void TearDown() override { fs::remove_all(dir_); }

    static std::string hex(std::uint64_t v) {
        char b[20];
        std::snprintf(b, sizeof b, "%llx", static_cast<unsigned long long>(v));
        return b;
    }
    static void write(const fs::path& p, const void* data, std::size_t n) {
        std::ofstream out(p, std::ios::binary);
        out.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
    }
    [[nodiscard]] fs::path image() const { return dir_ / "web-7.img"; }
    [[nodiscard]] fs::path btf_file() const { return dir_ / "vmlinux.btf"; }
    [[nodiscard]] fs::path isf_file() const { return dir_ / "kernel.json"; }
    [[nodiscard]] std::string base() const { return "--snapshot " + image().string() + " " + cr3_; }

    fs::path dir_;
    test::SyntheticLinux g_{test::compact_offsets(), 2ULL << 20};
    std::string cr3_;
};

TEST_F(BridgeInspectTool, ZeroConfigNeedsTheInMemoryBtf) {
    const ToolRun r = inspect("ps " + base());
    EXPECT_EQ(r.status, 1) << r.out;
    EXPECT_NE(r.out.find("no usable kernel BTF"), std::string::npos) << r.out;
}

TEST_F(BridgeInspectTool, IsfProfileListsProcessesWithEntityIds) {
    const ToolRun r =
        inspect("ps --json --vm-name web-1 --isf " + isf_file().string() + " " + base());
    ASSERT_EQ(r.status, 0) << r.out;
    const json doc = json::parse(r.out);
    EXPECT_EQ(doc["vm_name"], "web-1");
    EXPECT_EQ(doc["profile"]["source"], "isf");
    EXPECT_EQ(doc["profile"]["kaslr_slide"], "0x" + hex(kText - kLinkText));
    ASSERT_EQ(doc["processes"].size(), 3U);
    for (const auto& p : doc["processes"]) {
        const std::uint64_t task = std::stoull(p["task"].get<std::string>(), nullptr, 16);
        EXPECT_EQ(p["entity_id"],
                  process_entity_id("web-1", task, p["start_time_ns"].get<std::uint64_t>()));
    }
    EXPECT_EQ(doc["processes"][2]["comm"], "sh");
    EXPECT_EQ(doc["processes"][2]["uid"], 1000);
}

TEST_F(BridgeInspectTool, VmNameDefaultsToTheSnapshotFileName) {
    const ToolRun r = inspect("ps --json --btf " + btf_file().string() + " " + base());
    ASSERT_EQ(r.status, 0) << r.out;
    const json doc = json::parse(r.out);
    EXPECT_EQ(doc["vm_name"], "web-7.img");
    EXPECT_EQ(doc["profile"]["source"], "btf-file");
    const auto& p = doc["processes"][1];
    const std::uint64_t task = std::stoull(p["task"].get<std::string>(), nullptr, 16);
    EXPECT_EQ(p["entity_id"],
              process_entity_id("web-7.img", task, p["start_time_ns"].get<std::uint64_t>()));
}

TEST_F(BridgeInspectTool, ProfileAndTextOutput) {
    ToolRun r = inspect("profile --isf " + isf_file().string() + " " + base());
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_NE(r.out.find("profile       isf"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("KASLR slide"), std::string::npos) << r.out;
    r = inspect("ps --btf " + btf_file().string() + " " + base());
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_NE(r.out.find(" sh "), std::string::npos) << r.out;  // the miniature BTF: no exe
}

TEST_F(BridgeInspectTool, BadProfilesAndOptions) {
    ToolRun r = inspect("ps --btf x --isf y " + base());
    EXPECT_EQ(r.status, 2) << r.out;
    r = inspect("ps --vm-name '' " + base());
    EXPECT_EQ(r.status, 2) << r.out;
    json bad = json::parse(std::ifstream(isf_file()));
    bad["user_types"]["task_struct"]["fields"]["pid"]["offset"] = "48";
    const std::string text = bad.dump();
    write(isf_file(), text.data(), text.size());
    r = inspect("ps --isf " + isf_file().string() + " " + base());
    EXPECT_EQ(r.status, 1) << r.out;
    EXPECT_NE(r.out.find("$.user_types.task_struct.fields.pid.offset"), std::string::npos) << r.out;
    r = inspect("ps --btf " + (dir_ / "missing").string() + " " + base());
    EXPECT_EQ(r.status, 1) << r.out;
}

}  // namespace
}  // namespace vmi
