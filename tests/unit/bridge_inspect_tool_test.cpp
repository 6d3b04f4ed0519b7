// vminsight-inspect end to end on a raw image of a synthetic guest without in-memory BTF:
// --isf / --btf profiles, entity ids in `ps --json` and the --vm-name default.
#include <bpf/btf.h>
#include <gtest/gtest.h>
#include <linux/btf.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
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

struct BtfFree {
    void operator()(struct btf* b) const { btf__free(b); }
};

// The compact kernel BTF plus a 6.4-style struct module (mem[7] of struct module_memory).
std::vector<std::byte> btf_with_modules() {
    const auto base = test::compact_kernel_btf();
    std::unique_ptr<struct btf, BtfFree> src(
        btf__new(base.data(), static_cast<std::uint32_t>(base.size())));
    std::unique_ptr<struct btf, BtfFree> b(btf__new_empty());
    struct btf* p = b.get();
    btf__add_btf(p, src.get());
    const int u32 = btf__find_by_name_kind(p, "unsigned int", BTF_KIND_INT);
    const int chr = btf__find_by_name_kind(p, "char", BTF_KIND_INT);
    const int list_head = btf__find_by_name_kind(p, "list_head", BTF_KIND_STRUCT);
    const int voidp = btf__add_ptr(p, 0);
    const int name = btf__add_array(p, u32, chr, 56);
    const int mm = btf__add_struct(p, "module_memory", 0x50);
    btf__add_field(p, "base", voidp, 0, 0);
    btf__add_field(p, "size", u32, 64, 0);
    const int mems = btf__add_array(p, u32, mm, 7);
    btf__add_struct(p, "module", 0x500);
    btf__add_field(p, "state", u32, 0, 0);
    btf__add_field(p, "list", list_head, 8 * 8, 0);
    btf__add_field(p, "name", name, 24 * 8, 0);
    btf__add_field(p, "mem", mems, 0x140 * 8, 0);
    btf__add_field(p, "refcnt", u32, 0x4a0 * 8, 0);
    std::uint32_t size = 0;
    const auto* raw = static_cast<const std::byte*>(btf__raw_data(p, &size));
    return {raw, raw + size};
}

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
        const std::uint64_t modules = add_modules();
        std::vector<char> ram(2U << 20);
        for (std::uint64_t pg = 0; pg < ram.size(); pg += 4096) {
            (void)g_.mem().read_phys(pg, std::as_writable_bytes(std::span(ram.data() + pg, 4096)));
        }
        write(image(), ram.data(), ram.size());
        const auto btf = test::compact_kernel_btf();
        write(btf_file(), btf.data(), btf.size());
        const std::uint64_t slide = kText - kLinkText;
        const std::string isf =
            test::BtfToIsf::convert(btf_with_modules(), {{"_text", kLinkText},
                                                         {"init_task", g_.init_task_va() - slide},
                                                         {"modules", modules - slide}})
                .dump();
        write(isf_file(), isf.data(), isf.size());
        cr3_ = "--cr3 " + hex(g_.cr3());
    }
    void TearDown() override { fs::remove_all(dir_); }

    // Two modules, "ext4" and "virtio_net", on a list whose head is returned.
    std::uint64_t add_modules() {
        const std::uint64_t head = g_.alloc(16);
        std::vector<std::uint64_t> nodes = {head};
        for (int i = 0; i < 2; ++i) nodes.push_back(g_.alloc(0x500) + 8);
        for (std::size_t i = 0; i < nodes.size(); ++i) {
            g_.wu64(nodes[i], nodes[(i + 1) % nodes.size()]);
            g_.wu64(nodes[i] + 8, nodes[(i + nodes.size() - 1) % nodes.size()]);
        }
        const char* names[] = {"ext4", "virtio_net"};
        for (std::size_t i = 1; i < nodes.size(); ++i) {
            const std::uint64_t m = nodes[i] - 8;
            std::string n = names[i - 1];
            n.resize(56, '\0');
            g_.mem().write(test::SyntheticLinux::pa(m + 24), std::as_bytes(std::span(n)));
            g_.wu64(m + 0x140, 0xffff'ffff'c000'0000ULL + i * 0x10'0000);
            g_.wu32(m + 0x148, 0x4000);
            g_.wu32(m + 0x4a0, 1);
        }
        return head;
    }

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

TEST_F(BridgeInspectTool, IsfModulesSymbolStandsInForKallsyms) {
    ToolRun r = inspect("modules --isf " + isf_file().string() + " " + base());
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_NE(r.out.find("ext4"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("virtio_net"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Live"), std::string::npos) << r.out;
    // Without the ISF the modules list cannot be found (no kallsyms in this image).
    r = inspect("modules --btf " + btf_file().string() + " " + base());
    EXPECT_EQ(r.status, 1) << r.out;
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
