// Volatility 3 ISF profiles: the same offsets and process list as the BTF they were generated
// from, the profile-file fallbacks of kernel discovery, and hostile ISF files.
#include <bpf/btf.h>
#include <gtest/gtest.h>
#include <linux/btf.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "bridge_btf_to_isf.hpp"
#include "bridge_synthetic_guest.hpp"
#include "vmi/btf_profile.hpp"
#include "vmi/isf_profile.hpp"
#include "vmi/kernel_discovery.hpp"
#include "vmi/linux_model.hpp"
#include "vmi/profile_file.hpp"

namespace vmi {
namespace {

using nlohmann::json;

constexpr std::uint64_t kText = 0xffff'ffff'8a00'0000ULL;      // slid _text
constexpr std::uint64_t kLinkText = 0xffff'ffff'8100'0000ULL;  // _text as linked

struct BtfFree {
    void operator()(struct btf* b) const { btf__free(b); }
};

std::vector<std::byte> raw(struct btf* p) {
    std::uint32_t size = 0;
    const auto* r = static_cast<const std::byte*>(btf__raw_data(p, &size));
    return {r, r + size};
}

// A kernel BTF with every optional group: anonymous union nesting, cred, exe path (file,
// path, dentry, qstr, mount), args, threads, modules (6.4 mem[]), pcpu_hot.current_task, a
// bitfield and an enum.
std::vector<std::byte> full_btf() {
    std::unique_ptr<struct btf, BtfFree> b(btf__new_empty());
    struct btf* p = b.get();
    const int i32 = btf__add_int(p, "int", 4, BTF_INT_SIGNED);
    const int u32 = btf__add_int(p, "unsigned int", 4, 0);
    const int u64 = btf__add_int(p, "long long unsigned int", 8, 0);
    const int chr = btf__add_int(p, "char", 1, BTF_INT_CHAR);
    const int voidp = btf__add_ptr(p, 0);
    const int comm = btf__add_array(p, i32, chr, 16);
    const int modname = btf__add_array(p, i32, chr, 56);
    const int state = btf__add_enum(p, "module_state", 4);
    btf__add_enum_value(p, "MODULE_STATE_LIVE", 0);
    btf__add_enum_value(p, "MODULE_STATE_COMING", 1);
    const int list_head = btf__add_struct(p, "list_head", 16);
    btf__add_field(p, "next", voidp, 0, 0);
    btf__add_field(p, "prev", voidp, 64, 0);
    const int kuid = btf__add_struct(p, nullptr, 4);
    btf__add_field(p, "val", u32, 0, 0);
    const int kuid_t = btf__add_typedef(p, "kuid_t", kuid);
    btf__add_struct(p, "cred", 32);
    btf__add_field(p, "usage", u32, 0, 0);
    btf__add_field(p, "uid", kuid_t, 32, 0);
    btf__add_field(p, "gid", kuid_t, 64, 0);
    btf__add_field(p, "euid", kuid_t, 160, 0);
    btf__add_struct(p, "qstr", 16);
    btf__add_field(p, "hash", u32, 0, 0);
    btf__add_field(p, "len", u32, 32, 0);
    btf__add_field(p, "name", voidp, 64, 0);
    const int qstr = static_cast<int>(btf__type_cnt(p)) - 1;
    btf__add_struct(p, "dentry", 64);
    btf__add_field(p, "d_flags", u32, 0, 0);
    btf__add_field(p, "d_parent", voidp, 24 * 8, 0);
    btf__add_field(p, "d_name", qstr, 32 * 8, 0);
    btf__add_struct(p, "path", 16);
    btf__add_field(p, "mnt", voidp, 0, 0);
    btf__add_field(p, "dentry", voidp, 64, 0);
    const int path = static_cast<int>(btf__type_cnt(p)) - 1;
    btf__add_struct(p, "file", 64);
    btf__add_field(p, "f_flags", u32, 0, 0);
    btf__add_field(p, "f_path", path, 16 * 8, 0);
    btf__add_struct(p, "vfsmount", 16);
    btf__add_field(p, "mnt_root", voidp, 0, 0);
    btf__add_field(p, "mnt_sb", voidp, 64, 0);
    const int vfsmount = static_cast<int>(btf__type_cnt(p)) - 1;
    btf__add_struct(p, "mount", 64);
    btf__add_field(p, "mnt_parent", voidp, 16 * 8, 0);
    btf__add_field(p, "mnt_mountpoint", voidp, 24 * 8, 0);
    btf__add_field(p, "mnt", vfsmount, 32 * 8, 0);
    btf__add_struct(p, "signal_struct", 64);
    btf__add_field(p, "sigcnt", u32, 0, 0);
    btf__add_field(p, "nr_threads", i32, 32, 0);
    btf__add_field(p, "thread_head", list_head, 16 * 8, 0);
    btf__add_struct(p, "mm_struct", 128);
    btf__add_field(p, "pgd", voidp, 16 * 8, 0);
    btf__add_field(p, "arg_start", u64, 64 * 8, 0);
    btf__add_field(p, "arg_end", u64, 72 * 8, 0);
    btf__add_field(p, "exe_file", voidp, 80 * 8, 0);
    const int mm = static_cast<int>(btf__type_cnt(p)) - 1;
    const int mm_ptr = btf__add_ptr(p, mm);
    btf__add_struct(p, "module_memory", 16);
    btf__add_field(p, "base", voidp, 0, 0);
    btf__add_field(p, "size", u32, 64, 0);
    const int modmem = static_cast<int>(btf__type_cnt(p)) - 1;
    const int modmems = btf__add_array(p, i32, modmem, 7);
    btf__add_struct(p, "module", 512);
    btf__add_field(p, "state", state, 0, 0);
    btf__add_field(p, "list", list_head, 8 * 8, 0);
    btf__add_field(p, "name", modname, 24 * 8, 0);
    btf__add_field(p, "mem", modmems, 128 * 8, 0);
    btf__add_field(p, "refcnt", i32, 400 * 8, 0);
    btf__add_struct(p, "pcpu_hot", 64);
    btf__add_field(p, "current_task", voidp, 0, 0);
    btf__add_field(p, "preempt_count", i32, 64, 0);
    const int pcpu_hot = static_cast<int>(btf__type_cnt(p)) - 1;
    const int tasks_anon = btf__add_struct(p, nullptr, 24);
    btf__add_field(p, "pad", u64, 0, 0);
    btf__add_field(p, "tasks", list_head, 64, 0);
    const int tasks_union = btf__add_union(p, nullptr, 24);
    btf__add_field(p, nullptr, tasks_anon, 0, 0);
    btf__add_field(p, "alias", u64, 0, 0);
    const int const_union = btf__add_const(p, tasks_union);
    btf__add_struct(p, "task_struct", 512);
    btf__add_field(p, "__state", u32, 0, 0);
    btf__add_field(p, "flags", u32, 32, 0);
    btf__add_field(p, nullptr, const_union, 128, 0);
    btf__add_field(p, "pid", i32, 48 * 8, 0);
    btf__add_field(p, "tgid", i32, 52 * 8, 0);
    btf__add_field(p, "real_parent", voidp, 56 * 8, 0);
    btf__add_field(p, "mm", mm_ptr, 64 * 8, 0);
    btf__add_field(p, "start_time", u64, 72 * 8, 0);
    btf__add_field(p, "comm", comm, 80 * 8, 0);
    btf__add_field(p, "in_execve", u32, 96 * 8, 1);
    btf__add_field(p, "cred", voidp, 104 * 8, 0);
    btf__add_field(p, "self_exec_id", u64, 112 * 8, 0);
    btf__add_field(p, "thread_node", list_head, 120 * 8, 0);
    btf__add_field(p, "signal", voidp, 136 * 8, 0);
    // struct proto: function pointers plain, through a typedef and const; a data pointer, an
    // integer and an anonymous union are not function pointers.
    const int fn = btf__add_func_proto(p, i32);
    btf__add_func_param(p, "sk", voidp);
    const int fnp = btf__add_ptr(p, fn);
    const int fnp_t = btf__add_typedef(p, "close_fn", fnp);
    const int fnp_c = btf__add_const(p, fnp);
    const int proto_anon = btf__add_union(p, nullptr, 8);
    btf__add_field(p, "hashinfo", voidp, 0, 0);
    btf__add_field(p, "hash_fn", fnp, 0, 0);
    btf__add_struct(p, "proto", 48);
    btf__add_field(p, "close", fnp_t, 0, 0);
    btf__add_field(p, "obj_size", u32, 64, 0);
    btf__add_field(p, "getsockopt", fnp, 128, 0);
    btf__add_field(p, "memory_allocated", voidp, 192, 0);
    btf__add_field(p, "recvmsg", fnp_c, 256, 0);
    btf__add_field(p, nullptr, proto_anon, 320, 0);
    const int var = btf__add_var(p, "pcpu_hot", BTF_VAR_GLOBAL_ALLOCATED, pcpu_hot);
    btf__add_datasec(p, ".data..percpu", 0x40000);
    btf__add_datasec_var_info(p, var, 0x2c000, 64);
    return raw(p);
}

Result<LinuxOffsets> btf_offsets(std::span<const std::byte> blob) {
    auto prof = BtfProfile::from_blob(blob);
    if (!prof) return std::move(prof).error();
    return prof->linux_offsets();
}

Result<LinuxOffsets> isf_offsets(const std::string& text) {
    auto prof = IsfProfile::parse(text, "test.json");
    if (!prof) return std::move(prof).error();
    return prof->linux_offsets();
}

TEST(BridgeIsfProfile, FullBtfAndItsIsfGiveTheSameOffsets) {
    const auto blob = full_btf();
    auto want = btf_offsets(blob);
    ASSERT_TRUE(want.ok()) << want.error().message();
    EXPECT_TRUE(want->has_exe && want->has_mount && want->has_args && want->has_threads &&
                want->has_modules);
    EXPECT_EQ(want->percpu_current_task, 0x2c000U);
    EXPECT_EQ(want->task_tasks, 24U);
    const std::string isf = test::BtfToIsf::convert(blob).dump();
    auto got = isf_offsets(isf);
    ASSERT_TRUE(got.ok()) << got.error().message();
    EXPECT_TRUE(*got == *want);
    EXPECT_EQ(got->module_size_count, 7U);
    // Every struct proto object of the table, with the same three members; no n_tty_ops
    // (no struct tty_ldisc_ops here).
    ASSERT_EQ(got->fn_pointer_objects.size(), 11U);
    const FnPointerObject& tcp = got->fn_pointer_objects[0];
    EXPECT_EQ(tcp.symbol, "tcp_prot");
    EXPECT_EQ(tcp.type, "proto");
    EXPECT_EQ(tcp.size, 48U);
    const std::vector<NamedMember> fps = {{"close", 0}, {"getsockopt", 16}, {"recvmsg", 32}};
    EXPECT_EQ(tcp.members, fps);
    for (const auto& o : got->fn_pointer_objects) EXPECT_EQ(o.members, fps) << o.symbol;
    EXPECT_EQ(got->cred_euid, 20U);
}

TEST(BridgeIsfProfile, CompactBtfAndItsIsfGiveTheSameOffsets) {
    const auto blob = test::compact_kernel_btf();
    auto want = btf_offsets(blob);
    ASSERT_TRUE(want.ok());
    auto got = isf_offsets(test::BtfToIsf::convert(blob).dump());
    ASSERT_TRUE(got.ok()) << got.error().message();
    EXPECT_TRUE(*got == *want);
}

TEST(BridgeIsfProfile, HostKernelBtfAndItsIsfGiveTheSameOffsets) {
    const char* path = "/sys/kernel/btf/vmlinux";
    std::ifstream f(path, std::ios::binary);
    if (!f) GTEST_SKIP() << path << " not readable";
    const std::vector<char> bytes((std::istreambuf_iterator<char>(f)), {});
    const auto blob = std::as_bytes(std::span(bytes));
    auto want = btf_offsets(blob);
    if (!want) GTEST_SKIP() << "host BTF lacks the Linux offsets";
    auto isf = IsfProfile::parse(test::BtfToIsf::convert(blob).dump(), "host.json");
    ASSERT_TRUE(isf.ok()) << isf.error().message();
    auto got = isf->linux_offsets();
    ASSERT_TRUE(got.ok()) << got.error().message();
    EXPECT_TRUE(*got == *want);
    EXPECT_EQ(got->percpu_current_task, want->percpu_current_task);
    EXPECT_EQ(got->has_modules, want->has_modules);
}

TEST(BridgeIsfProfile, LookupsAndSymbols) {
    const std::string text =
        test::BtfToIsf::convert(full_btf(), {{"_text", kLinkText}, {"init_task", kLinkText + 8}})
            .dump();
    auto isf = IsfProfile::parse(text);
    ASSERT_TRUE(isf.ok()) << isf.error().message();
    EXPECT_EQ(isf->symbol("_text"), kLinkText);
    EXPECT_EQ(isf->symbol("pcpu_hot"), 0x2c000U);
    EXPECT_FALSE(isf->symbol("nosuch").has_value());
    EXPECT_EQ(isf->symbol_count(), 3U);
    EXPECT_EQ(*isf->struct_size("task_struct"), 512U);
    EXPECT_EQ(isf->struct_size("nosuch").fault(), Fault::kNotFound);
    auto tasks = isf->member("task_struct", "tasks");
    ASSERT_TRUE(tasks.ok());
    EXPECT_EQ(tasks->offset, 24U);
    EXPECT_EQ(tasks->size, 16U);
    auto missing = isf->member("task_struct", "nosuch");
    EXPECT_EQ(missing.fault(), Fault::kNotFound);
    EXPECT_NE(missing.error().detail.find("task_struct.nosuch"), std::string::npos);
    EXPECT_EQ(isf->member("task_struct", "in_execve").fault(), Fault::kInvalidFormat);
    EXPECT_EQ(isf->hash(), fnv1a64(std::as_bytes(std::span(text))));
}

// --- discovery with a profile file ---------------------------------------------------------

struct Guest {
    test::SyntheticLinux g{test::compact_offsets(), 2ULL << 20};
    explicit Guest(bool btf_in_memory) {
        g.map_kernel_image(kText);
        std::vector<test::SynthProcess> v(4);
        v[0] = {0, 0, "swapper/0", "", {}, 0, 0, 0, 1};
        v[1] = {1, 0, "init", "/sbin/init", {"/sbin/init"}, 0, 0, 0, 1};
        v[2] = {2, 0, "kthreadd", "", {}, 0, 0, 0, 1};
        v[3] = {40, 1, "sh", "/bin/sh", {"sh"}, 1000, 1000, 100, 2};
        g.build(v);
        if (btf_in_memory) {
            const auto btf = test::compact_kernel_btf();
            g.mem().write(test::SyntheticLinux::pa(g.alloc(btf.size(), 8)), btf);
        }
    }
    Result<std::vector<Process>> list(const GuestKernelProfile& p) {
        ListOptions o;
        o.vm_name = "vm-a";
        return LinuxGuest(g.mem(), p.offsets, p.init_task_va).list_processes(g.cr3(), o);
    }
};

void expect_same(const std::vector<Process>& a, const std::vector<Process>& b) {
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(a[i].task_va, b[i].task_va);
        EXPECT_EQ(a[i].pid, b[i].pid);
        EXPECT_EQ(a[i].ppid, b[i].ppid);
        EXPECT_EQ(a[i].comm, b[i].comm);
        EXPECT_EQ(a[i].uid, b[i].uid);
        EXPECT_EQ(a[i].pgd_pa, b[i].pgd_pa);
        EXPECT_EQ(a[i].start_time_ns, b[i].start_time_ns);
        EXPECT_EQ(a[i].entity_id, b[i].entity_id);
        EXPECT_FALSE(a[i].entity_id.empty());
    }
}

class BridgeProfileFile : public ::testing::Test {
  protected:
    void SetUp() override { clear_kernel_profile_cache(); }
    void TearDown() override { clear_kernel_profile_cache(); }
};

TEST_F(BridgeProfileFile, IsfGivesTheSameProcessListAsTheInMemoryBtf) {
    Guest with_btf(true);
    auto mem_prof = discover_kernel(with_btf.g.mem(), with_btf.g.cr3());
    ASSERT_TRUE(mem_prof.ok()) << mem_prof.error().message();
    EXPECT_EQ(mem_prof->source, ProfileSource::kGuestBtf);
    auto want = with_btf.list(*mem_prof);
    ASSERT_TRUE(want.ok());

    Guest no_btf(false);
    EXPECT_EQ(discover_kernel(no_btf.g.mem(), no_btf.g.cr3()).fault(), Fault::kNotFound);
    const std::uint64_t slide = kText - kLinkText;
    auto file =
        load_isf_profile(test::BtfToIsf::convert(
                             test::compact_kernel_btf(),
                             {{"_text", kLinkText}, {"init_task", no_btf.g.init_task_va() - slide}})
                             .dump(),
                         "compact.json");
    ASSERT_TRUE(file.ok()) << file.error().message();
    EXPECT_EQ(file->source, ProfileSource::kIsf);
    EXPECT_TRUE(file->offsets == mem_prof->offsets);
    DiscoveryOptions o;
    o.profile = &*file;
    auto p = discover_kernel(no_btf.g.mem(), no_btf.g.cr3(), o);
    ASSERT_TRUE(p.ok()) << p.error().message();
    EXPECT_EQ(p->source, ProfileSource::kIsf);
    EXPECT_EQ(p->init_task_va, no_btf.g.init_task_va());
    ASSERT_TRUE(p->kaslr_slide.has_value());
    EXPECT_EQ(*p->kaslr_slide, slide);
    EXPECT_EQ(p->bytes_scanned, 0U);  // init_task came from the symbol
    EXPECT_FALSE(p->from_cache);
    auto got = no_btf.list(*p);
    ASSERT_TRUE(got.ok());
    expect_same(*got, *want);

    // The same build again: the cache answers.
    auto again = discover_kernel(no_btf.g.mem(), no_btf.g.cr3(), o);
    ASSERT_TRUE(again.ok());
    EXPECT_TRUE(again->from_cache);
    EXPECT_EQ(again->init_task_va, p->init_task_va);
}

TEST_F(BridgeProfileFile, IsfWithoutInitTaskOrWithAWrongOneScans) {
    Guest no_btf(false);
    for (std::uint64_t bad_init : {std::uint64_t{0}, kLinkText + 0x1000}) {
        std::map<std::string, std::uint64_t> syms = {{"_text", kLinkText}};
        if (bad_init != 0) syms["init_task"] = bad_init;
        auto file = load_isf_profile(
            test::BtfToIsf::convert(test::compact_kernel_btf(), syms).dump(), "compact.json");
        ASSERT_TRUE(file.ok()) << file.error().message();
        DiscoveryOptions o;
        o.profile = &*file;
        o.use_cache = false;
        auto p = discover_kernel(no_btf.g.mem(), no_btf.g.cr3(), o);
        ASSERT_TRUE(p.ok()) << p.error().message();
        EXPECT_EQ(p->init_task_va, no_btf.g.init_task_va());
        EXPECT_GT(p->bytes_scanned, 0U);
    }
}

TEST_F(BridgeProfileFile, BtfFileGivesTheSameProcessList) {
    Guest with_btf(true);
    auto mem_prof = discover_kernel(with_btf.g.mem(), with_btf.g.cr3());
    ASSERT_TRUE(mem_prof.ok());
    auto want = with_btf.list(*mem_prof);
    ASSERT_TRUE(want.ok());

    const auto blob = test::compact_kernel_btf();
    const std::string path = ::testing::TempDir() + "/vmi-btf-" + std::to_string(getpid());
    {
        std::ofstream out(path, std::ios::binary);
        out.write(reinterpret_cast<const char*>(blob.data()),
                  static_cast<std::streamsize>(blob.size()));
    }
    auto file = load_btf_profile_file(path);
    std::remove(path.c_str());
    ASSERT_TRUE(file.ok()) << file.error().message();
    EXPECT_EQ(file->source, ProfileSource::kBtfFile);
    EXPECT_EQ(file->hash, mem_prof->btf_hash);  // same BTF, same build
    Guest no_btf(false);
    DiscoveryOptions o;
    o.profile = &*file;
    auto p = discover_kernel(no_btf.g.mem(), no_btf.g.cr3(), o);
    ASSERT_TRUE(p.ok()) << p.error().message();
    EXPECT_EQ(p->source, ProfileSource::kBtfFile);
    EXPECT_FALSE(p->from_cache);  // the in-memory BTF entry is not this source's
    EXPECT_FALSE(p->kaslr_slide.has_value());
    auto got = no_btf.list(*p);
    ASSERT_TRUE(got.ok());
    expect_same(*got, *want);
    EXPECT_TRUE(discover_kernel(no_btf.g.mem(), no_btf.g.cr3(), o)->from_cache);

    EXPECT_FALSE(load_btf_profile_file(path).ok());  // gone
}

TEST_F(BridgeProfileFile, ProfileOfAnotherKernelIsAnError) {
    Guest no_btf(false);
    // full_btf() puts pid and comm where the compact guest has other data.
    auto file = load_isf_profile(test::BtfToIsf::convert(full_btf()).dump(), "other.json");
    ASSERT_TRUE(file.ok()) << file.error().message();
    std::swap(file->offsets.task_pid, file->offsets.task_flags);
    DiscoveryOptions o;
    o.profile = &*file;
    auto p = discover_kernel(no_btf.g.mem(), no_btf.g.cr3(), o);
    EXPECT_FALSE(p.ok());
}

// --- hostile ISF ----------------------------------------------------------------------------

json good_isf() { return test::BtfToIsf::convert(test::compact_kernel_btf()); }

void expect_error(const std::string& text, Fault fault, const std::string& needle) {
    auto r = load_isf_profile(text, "bad.json");
    ASSERT_FALSE(r.ok()) << needle;
    EXPECT_EQ(r.fault(), fault) << r.error().message();
    EXPECT_NE(r.error().message().find(needle), std::string::npos) << r.error().message();
    EXPECT_NE(r.error().message().find("bad.json"), std::string::npos) << r.error().message();
}

void expect_error(const json& j, Fault fault, const std::string& needle) {
    expect_error(j.dump(), fault, needle);
}

TEST(BridgeIsfHostile, NotJsonOrNotAnObject) {
    expect_error(std::string("{\"metadata\": "), Fault::kInvalidFormat, "not JSON");
    expect_error(std::string("[1, 2]"), Fault::kInvalidFormat, "$: expected an object, got array");
    expect_error(std::string(""), Fault::kInvalidFormat, "not JSON");
}

TEST(BridgeIsfHostile, MissingSectionsAndFields) {
    for (const char* key : {"metadata", "base_types", "user_types", "enums", "symbols"}) {
        json j = good_isf();
        j.erase(key);
        expect_error(j, Fault::kInvalidFormat, std::string("$: missing \"") + key + "\"");
    }
    json j = good_isf();
    j["user_types"]["task_struct"]["fields"]["pid"].erase("offset");
    expect_error(j, Fault::kInvalidFormat,
                 "$.user_types.task_struct.fields.pid: missing \"offset\"");
    j = good_isf();
    j["user_types"]["task_struct"]["fields"]["pid"].erase("type");
    expect_error(j, Fault::kInvalidFormat, "$.user_types.task_struct.fields.pid: missing \"type\"");
    j = good_isf();
    j["user_types"]["cred"].erase("size");
    expect_error(j, Fault::kInvalidFormat, "$.user_types.cred: missing \"size\"");
    j = good_isf();
    j["user_types"]["mm_struct"]["fields"]["pgd"]["type"].erase("subtype");
    expect_error(j, Fault::kInvalidFormat,
                 "$.user_types.mm_struct.fields.pgd.type: missing \"subtype\"");
    j = good_isf();
    j["user_types"].erase("task_struct");  // valid ISF, but not a Linux profile
    expect_error(j, Fault::kNotFound, "struct task_struct");
    j = good_isf();
    j["user_types"]["task_struct"]["fields"].erase("tgid");
    expect_error(j, Fault::kNotFound, "task_struct.tgid");
}

TEST(BridgeIsfHostile, WrongTypes) {
    json j = good_isf();
    j["user_types"]["task_struct"]["fields"]["pid"]["offset"] = "48";
    expect_error(
        j, Fault::kInvalidFormat,
        "$.user_types.task_struct.fields.pid.offset: expected an unsigned integer, got string");
    j = good_isf();
    j["user_types"]["task_struct"]["fields"]["pid"]["offset"] = -8;
    expect_error(j, Fault::kInvalidFormat, "fields.pid.offset: negative value");
    j = good_isf();
    j["user_types"]["task_struct"]["fields"]["pid"]["offset"] = 48.5;
    expect_error(j, Fault::kInvalidFormat, "fields.pid.offset: expected an unsigned integer");
    j = good_isf();
    j["user_types"]["task_struct"]["fields"] = json::array();
    expect_error(j, Fault::kInvalidFormat, "$.user_types.task_struct.fields: expected an object");
    j = good_isf();
    j["user_types"]["task_struct"]["kind"] = "bag";
    expect_error(j, Fault::kInvalidFormat, "$.user_types.task_struct.kind: unknown user type kind");
    j = good_isf();
    j["user_types"]["task_struct"]["fields"]["comm"]["type"]["kind"] = "matrix";
    expect_error(j, Fault::kInvalidFormat, "fields.comm.type.kind: unknown type kind \"matrix\"");
    j = good_isf();
    j["base_types"]["int"]["signed"] = "yes";
    expect_error(j, Fault::kInvalidFormat, "$.base_types.int: \"signed\" must be a boolean");
    j = good_isf();
    j["symbols"]["init_task"] = {{"address", "0xffffffff82000000"}};
    expect_error(j, Fault::kInvalidFormat, "$.symbols.init_task.address: expected an unsigned");
    j = good_isf();
    j["metadata"]["format"] = "9.0.0";
    expect_error(j, Fault::kInvalidFormat, "$.metadata.format: unsupported ISF format");
    j = good_isf();
    j["enums"]["e"] = {{"size", 4}, {"base", "int"}, {"constants", {{"A", "one"}}}};
    expect_error(j, Fault::kInvalidFormat, "$.enums.e.constants.A: expected an integer");
}

TEST(BridgeIsfHostile, HugeNumbers) {
    json j = good_isf();
    j["user_types"]["task_struct"]["fields"]["pid"]["offset"] = UINT64_MAX;
    expect_error(j, Fault::kLimitExceeded, "fields.pid.offset: 18446744073709551615 exceeds");
    j = good_isf();
    j["user_types"]["task_struct"]["size"] = std::uint64_t{1} << 40;
    expect_error(j, Fault::kLimitExceeded, "$.user_types.task_struct.size");
    j = good_isf();
    j["user_types"]["task_struct"]["fields"]["pid"]["offset"] = 300;  // past size 256
    expect_error(j, Fault::kInvalidFormat, "past the struct's size");
    // A number too large for 64 bits is parsed as a float: not an unsigned integer.
    std::string text = good_isf().dump();
    const std::string at = "\"offset\":48";
    ASSERT_NE(text.find(at), std::string::npos);
    text.replace(text.find(at), at.size(), "\"offset\":123456789012345678901234567890");
    expect_error(text, Fault::kInvalidFormat, "expected an unsigned integer, got a non-integer");
    // An array whose total size overflows: the member cannot be sized.
    j = good_isf();
    j["user_types"]["task_struct"]["fields"]["comm"]["type"] = {
        {"kind", "array"},
        {"count", 1U << 23},
        {"subtype",
         {{"kind", "array"},
          {"count", 1U << 23},
          {"subtype", {{"kind", "base"}, {"name", "char"}}}}}};
    expect_error(j, Fault::kLimitExceeded, "task_struct.comm");
}

TEST(BridgeIsfHostile, DeepNestingIsRejectedBeforeParsing) {
    std::string deep(100000, '[');
    expect_error(deep, Fault::kLimitExceeded, "nested deeper than 64");
    // A long pointer chain in a descriptor: also nesting.
    json d = {{"kind", "base"}, {"name", "int"}};
    for (int i = 0; i < 70; ++i) d = {{"kind", "pointer"}, {"subtype", d}};
    json j = good_isf();
    j["user_types"]["task_struct"]["fields"]["mm"]["type"] = d;
    expect_error(j, Fault::kLimitExceeded, "nested deeper than 64");
    // Brackets inside strings do not count.
    j = good_isf();
    j["symbols"][std::string(200, '[')] = {{"address", 1}};
    EXPECT_TRUE(load_isf_profile(j.dump(), "ok.json").ok());
}

TEST(BridgeIsfHostile, CyclesThroughAnonymousMembers) {
    json j = good_isf();
    const json self = {
        {"type", {{"kind", "struct"}, {"name", "loop_b"}}}, {"offset", 0}, {"anonymous", true}};
    j["user_types"]["loop_a"] = {
        {"kind", "struct"}, {"size", 8}, {"fields", {{"unnamed_field_0", self}}}};
    json back = self;
    back["type"]["name"] = "loop_a";
    j["user_types"]["loop_b"] = {
        {"kind", "struct"}, {"size", 8}, {"fields", {{"unnamed_field_0", back}}}};
    auto isf = IsfProfile::parse(j.dump());
    ASSERT_TRUE(isf.ok()) << isf.error().message();
    auto m = isf->member("loop_a", "x");
    EXPECT_EQ(m.fault(), Fault::kCycle) << m.error().message();
    EXPECT_NE(m.error().detail.find("loop_a.x"), std::string::npos);
    // The same cycle inside task_struct: every lookup that misses ends in the cycle.
    j["user_types"]["task_struct"]["fields"]["unnamed_field_9"] = self;
    auto r = load_isf_profile(j.dump(), "bad.json");
    ASSERT_TRUE(r.ok()) << r.error().message();  // required members are found first
    auto t = IsfProfile::parse(j.dump());
    EXPECT_EQ(t->member("task_struct", "nosuch").fault(), Fault::kCycle);
    // A self-referencing struct (a struct containing itself).
    j = good_isf();
    json me = self;
    me["type"]["name"] = "task_struct";
    j["user_types"]["task_struct"]["fields"]["unnamed_field_9"] = me;
    auto s = IsfProfile::parse(j.dump());
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->member("task_struct", "nosuch").fault(), Fault::kCycle);
}

TEST(BridgeIsfHostile, UnsizableMembers) {
    json j = good_isf();
    j["base_types"].erase("pointer");
    expect_error(j, Fault::kInvalidFormat, "cannot size");
    j = good_isf();
    j["user_types"]["task_struct"]["fields"]["pid"]["type"] = {{"kind", "function"}};
    expect_error(j, Fault::kInvalidFormat, "task_struct.pid");
    j = good_isf();
    j["user_types"]["task_struct"]["fields"]["pid"]["type"] = {{"kind", "base"},
                                                               {"name", "nosuch"}};
    expect_error(j, Fault::kInvalidFormat, "$.base_types.nosuch");
}

TEST(BridgeIsfHostile, FilesTooLargeOrMissing) {
    auto missing = IsfProfile::from_file("/nonexistent/isf.json");
    EXPECT_EQ(missing.fault(), Fault::kIo);
    EXPECT_FALSE(load_isf_profile_file("/nonexistent/isf.json").ok());
}

TEST(BridgeIsfHostile, RandomMutationsNeverCrash) {
    const std::string good = good_isf().dump();
    std::uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < 400; ++i) {
        std::string t = good;
        for (int k = 0; k < 4; ++k) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            t[x % t.size()] = "{}[]\":,0-9e.x"[(x >> 32) % 13];
        }
        auto r = load_isf_profile(t, "m.json");
        if (r) {
            EXPECT_GT(r->offsets.task_struct_size, 0U);
        }
    }
}

}  // namespace
}  // namespace vmi
