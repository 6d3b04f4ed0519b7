// The LibVMI-compatible C API (vminsight/libvmi.h) against a snapshot: a synthetic Linux guest
// written as a raw memory image, opened by path with its CR3 in the config string.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "bridge_synthetic_guest.hpp"
#include "vminsight/libvmi.h"

namespace {

constexpr std::uint64_t kText = 0xffff'ffff'8a00'0000ULL;
constexpr std::uint64_t kRam = 2ULL << 20;

class CApi : public ::testing::Test {
  protected:
    void SetUp() override {
        guest_.map_kernel_image(kText);
        std::vector<vmi::test::SynthProcess> v(3);
        v[0] = {0, 0, "swapper/0", "", {}, 0, 0, 0, 1};
        v[1] = {1, 0, "init", "/sbin/init", {"/sbin/init"}, 0, 0, 0, 1};
        v[2] = {40, 1, "sh", "/bin/sh", {"sh", "-c"}, 1000, 1000, 100, 1};
        guest_.build(v);
        const auto btf = vmi::test::compact_kernel_btf();
        guest_.mem().write(vmi::test::SyntheticLinux::pa(guest_.alloc(btf.size(), 8)), btf);
        std::vector<std::byte> ram(kRam);
        // Pages the guest never wrote read back as zeros, as in a real image.
        for (std::uint64_t pa = 0; pa < kRam; pa += 4096)
            (void)guest_.mem().read_phys(pa, std::span(ram).subspan(pa, 4096));
        path_ = ::testing::TempDir() + "capi-guest-" + std::to_string(::getpid()) + ".raw";
        std::ofstream(path_, std::ios::binary)
            .write(reinterpret_cast<const char*>(ram.data()),
                   static_cast<std::streamsize>(ram.size()));
        config_ = "{ostype = \"Linux\"; cr3 = 0x" + hex(guest_.cr3()) + "; }";
    }
    void TearDown() override {
        if (vmi_) vmi_destroy(vmi_);
        std::remove(path_.c_str());
    }
    static std::string hex(std::uint64_t v) {
        char b[24];
        std::snprintf(b, sizeof b, "%llx", static_cast<unsigned long long>(v));
        return b;
    }
    status_t open(const std::string& config, vmi_init_error_t* err = nullptr) {
        return vmi_init_complete(&vmi_, path_.c_str(), VMI_INIT_DOMAINNAME, nullptr,
                                 VMI_CONFIG_STRING, const_cast<char*>(config.c_str()), err);
    }

    vmi::test::SyntheticLinux guest_{vmi::test::compact_offsets(), kRam};
    std::string path_, config_;
    vmi_instance_t vmi_ = nullptr;
};

TEST_F(CApi, OpensARawImageWithTheCr3FromTheConfigString) {
    vmi_init_error_t err = VMI_INIT_ERROR_DRIVER;
    ASSERT_EQ(open(config_, &err), VMI_SUCCESS) << vmi_vminsight_last_error();
    EXPECT_EQ(err, VMI_INIT_ERROR_NONE);
    EXPECT_EQ(vmi_get_ostype(vmi_), VMI_OS_LINUX);
    EXPECT_EQ(vmi_get_page_mode(vmi_, 0), VMI_PM_IA32E);
    EXPECT_EQ(vmi_get_address_width(vmi_), 8);
    EXPECT_EQ(vmi_get_memsize(vmi_), kRam);
    EXPECT_EQ(vmi_get_vmid(vmi_), 0U);
    char* name = vmi_get_name(vmi_);
    EXPECT_EQ(std::string(name), path_);
    std::free(name);
    addr_t off = 0;
    ASSERT_EQ(vmi_get_offset(vmi_, "linux_tasks", &off), VMI_SUCCESS);
    EXPECT_EQ(off, guest_.offsets().task_tasks);
    ASSERT_EQ(vmi_get_offset(vmi_, "linux_name", &off), VMI_SUCCESS);
    EXPECT_EQ(off, guest_.offsets().task_comm);
    EXPECT_EQ(vmi_get_offset(vmi_, "win_pdbase", &off), VMI_FAILURE);
}

TEST_F(CApi, ReadsPhysicalKernelAndProcessMemory) {
    ASSERT_EQ(open(config_), VMI_SUCCESS) << vmi_vminsight_last_error();
    const auto& a = guest_.addrs();
    // init_task.comm, by physical and by kernel virtual address.
    const std::uint64_t comm_va = a[0].task + guest_.offsets().task_comm;
    char* by_pa = vmi_read_str_pa(vmi_, guest_.any_pa(comm_va));
    char* by_va = vmi_read_str_va(vmi_, comm_va, 0);
    ASSERT_NE(by_pa, nullptr);
    ASSERT_NE(by_va, nullptr);
    EXPECT_STREQ(by_pa, "swapper/0");
    EXPECT_STREQ(by_va, "swapper/0");
    std::free(by_pa);
    std::free(by_va);
    addr_t pa = 0;
    ASSERT_EQ(vmi_translate_kv2p(vmi_, comm_va, &pa), VMI_SUCCESS);
    EXPECT_EQ(pa, guest_.any_pa(comm_va));
    std::uint32_t pid = 0;
    ASSERT_EQ(vmi_read_32_va(vmi_, a[2].task + guest_.offsets().task_tgid, 0, &pid), VMI_SUCCESS);
    EXPECT_EQ(pid, 40U);

    // pid 40's argv through its own page tables: pid_to_dtb, lookup, uv2p, the three reads.
    addr_t dtb = 0, pa2 = 0;
    ASSERT_EQ(vmi_pid_to_dtb(vmi_, 40, &dtb), VMI_SUCCESS) << vmi_vminsight_last_error();
    EXPECT_EQ(dtb, a[2].pgd_pa);
    ASSERT_EQ(vmi_pagetable_lookup(vmi_, dtb, a[2].arg_start, &pa), VMI_SUCCESS);
    ASSERT_EQ(vmi_translate_uv2p(vmi_, a[2].arg_start, 40, &pa2), VMI_SUCCESS);
    EXPECT_EQ(pa, pa2);
    char* argv0 = vmi_read_str_va(vmi_, a[2].arg_start, 40);
    ASSERT_NE(argv0, nullptr);
    EXPECT_STREQ(argv0, "sh");
    std::free(argv0);
    char buf[6] = {};
    size_t got = 0;
    access_context_t ctx{};
    ctx.translate_mechanism = VMI_TM_PROCESS_DTB;
    ctx.addr = a[2].arg_start;
    ctx.dtb = dtb;
    ASSERT_EQ(vmi_read(vmi_, &ctx, 6, buf, &got), VMI_SUCCESS);
    EXPECT_EQ(got, 6U);
    EXPECT_EQ(std::string(buf, 6), std::string("sh\0-c\0", 6));
    vmi_pid_t back = 0;
    ASSERT_EQ(vmi_dtb_to_pid(vmi_, dtb, &back), VMI_SUCCESS);
    EXPECT_EQ(back, 40);
    // The kernel's own page tables are pid 0's.
    ASSERT_EQ(vmi_pid_to_dtb(vmi_, 0, &dtb), VMI_SUCCESS);
    EXPECT_EQ(dtb, guest_.cr3());
}

TEST_F(CApi, FailuresAreVmiFailureWithAReason) {
    ASSERT_EQ(open(config_), VMI_SUCCESS) << vmi_vminsight_last_error();
    addr_t v = 0;
    EXPECT_EQ(vmi_pid_to_dtb(vmi_, 4242, &v), VMI_FAILURE);
    EXPECT_NE(std::string(vmi_vminsight_last_error()).find("4242"), std::string::npos);
    EXPECT_EQ(vmi_read_addr_va(vmi_, 0x1000, 0, &v), VMI_FAILURE);  // unmapped
    EXPECT_EQ(vmi_read_64_pa(vmi_, kRam - 4, &v), VMI_FAILURE);     // past the end
    size_t got = 99;
    std::vector<char> big(17U << 20);
    EXPECT_EQ(vmi_read_pa(vmi_, 0, big.size(), big.data(), &got), VMI_FAILURE);  // > 16 MiB
    EXPECT_EQ(got, 0U);
    EXPECT_EQ(vmi_read_pa(vmi_, 0, 8, nullptr, nullptr), VMI_FAILURE);
    EXPECT_EQ(vmi_read_8(vmi_, nullptr, reinterpret_cast<uint8_t*>(&v)), VMI_FAILURE);
    // No kallsyms in this guest: symbol lookups fail, and keep failing cheaply.
    EXPECT_EQ(vmi_translate_ksym2v(vmi_, "init_task", &v), VMI_FAILURE);
    EXPECT_EQ(vmi_read_str_ksym(vmi_, "linux_banner"), nullptr);
    // Only CR3 is a register we know; a raw image has none.
    EXPECT_EQ(vmi_get_vcpureg(vmi_, &v, RIP, 0), VMI_FAILURE);
    EXPECT_NE(std::string(vmi_vminsight_last_error()).find("only CR3"), std::string::npos);
    EXPECT_EQ(vmi_get_vcpureg(vmi_, &v, CR3, 0), VMI_FAILURE);
    // A snapshot never runs: pause and resume are no-ops, resume needs a pause.
    EXPECT_EQ(vmi_resume_vm(vmi_), VMI_FAILURE);
    EXPECT_EQ(vmi_pause_vm(vmi_), VMI_SUCCESS);
    EXPECT_EQ(vmi_resume_vm(vmi_), VMI_SUCCESS);
}

TEST_F(CApi, WritesAreRefusedUnlessOptedInAndSnapshotsAreReadOnly) {
    ASSERT_EQ(open(config_), VMI_SUCCESS) << vmi_vminsight_last_error();
    std::uint8_t b = 1;
    EXPECT_EQ(vmi_write_8_pa(vmi_, 0x1000, &b), VMI_FAILURE);
    EXPECT_NE(std::string(vmi_vminsight_last_error()).find("VMINSIGHT_ALLOW_WRITE"),
              std::string::npos);
    vmi_destroy(vmi_);
    vmi_ = nullptr;
    ASSERT_EQ(
        vmi_init_complete(&vmi_, path_.c_str(), VMI_INIT_DOMAINNAME | VMI_INIT_VMINSIGHT_WRITE,
                          nullptr, VMI_CONFIG_STRING, const_cast<char*>(config_.c_str()), nullptr),
        VMI_SUCCESS);
    EXPECT_EQ(vmi_write_8_pa(vmi_, 0x1000, &b), VMI_FAILURE);
    EXPECT_NE(std::string(vmi_vminsight_last_error()).find("read-only"), std::string::npos);
}

TEST_F(CApi, InitErrorsSayWhichStageFailed) {
    vmi_init_error_t err = VMI_INIT_ERROR_NONE;
    EXPECT_EQ(open("", &err), VMI_FAILURE);  // raw image, no CR3
    EXPECT_EQ(err, VMI_INIT_ERROR_PAGING);
    EXPECT_EQ(vmi_, nullptr);
    EXPECT_EQ(open("cr3=0x12345000", &err), VMI_FAILURE);  // not this guest's
    EXPECT_EQ(err, VMI_INIT_ERROR_OS);
    const char* name = "no-such-vm-vminsight-test";
    EXPECT_EQ(vmi_init_complete(&vmi_, name, VMI_INIT_DOMAINNAME, nullptr,
                                VMI_CONFIG_GLOBAL_FILE_ENTRY, nullptr, &err),
              VMI_FAILURE);
    EXPECT_EQ(err, VMI_INIT_ERROR_VM_NOT_FOUND);
    EXPECT_NE(std::string(vmi_vminsight_last_error()).find(name), std::string::npos);
    EXPECT_EQ(vmi_init(&vmi_, VMI_KVM, path_.c_str(), VMI_INIT_EVENTS, nullptr, &err), VMI_FAILURE);
    EXPECT_EQ(err, VMI_INIT_ERROR_EVENTS);
    EXPECT_EQ(vmi_init(nullptr, VMI_KVM, path_.c_str(), 0, nullptr, &err), VMI_FAILURE);
    EXPECT_EQ(vmi_destroy(nullptr), VMI_FAILURE);
}

}  // namespace
