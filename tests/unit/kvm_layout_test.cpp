#include "kvm_layout.hpp"

#include <bpf/btf.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <gtest/gtest.h>

namespace fs = std::filesystem;

namespace {

struct BtfFree {
    void operator()(struct btf* b) const noexcept { btf__free(b); }
};
using BtfPtr = std::unique_ptr<struct btf, BtfFree>;

void write_raw(const struct btf* b, const fs::path& path) {
    std::uint32_t size = 0;
    const void* raw = btf__raw_data(b, &size);
    std::ofstream(path, std::ios::binary).write(static_cast<const char*>(raw), size);
}

// A /sys/kernel/btf look-alike: base "vmlinux" with struct kvm_vcpu, split "kvm_amd" with
// struct vcpu_svm { struct kvm_vcpu vcpu; struct vmcb *vmcb @ vmcb_bits; }.
class KvmLayout : public ::testing::Test {
  protected:
    void make(const char* module, std::uint32_t vmcb_bits, bool with_vmcb = true) {
        BtfPtr base(btf__new_empty());
        const int u64 = btf__add_int(base.get(), "long long unsigned int", 8, 0);
        const int vcpu = btf__add_struct(base.get(), "kvm_vcpu", 8704);
        btf__add_field(base.get(), "arch", u64, 0, 0);
        write_raw(base.get(), dir_ / "vmlinux");

        BtfPtr mod(btf__new_empty_split(base.get()));
        const int vmcb = btf__add_struct(mod.get(), "vmcb", 4096);
        const int vmcb_ptr = btf__add_ptr(mod.get(), vmcb);
        btf__add_struct(mod.get(), "vcpu_svm", 9000);
        btf__add_field(mod.get(), "vcpu", vcpu, 0, 0);
        if (with_vmcb) btf__add_field(mod.get(), "vmcb", vmcb_ptr, vmcb_bits, 0);
        write_raw(mod.get(), dir_ / module);
    }
    void SetUp() override {
        dir_ = fs::temp_directory_path() / ("vmi-btf-" + std::to_string(::getpid()));
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }
    fs::path dir_;
};

}  // namespace

TEST_F(KvmLayout, ResolvesVcpuSvmVmcbFromSplitModuleBtf) {
    make("kvm_amd", 8704 * 8);
    auto r = vmid::resolve_kvm_layout(dir_.string());
    ASSERT_TRUE(std::holds_alternative<vmi_kvm_layout>(r)) << std::get<std::string>(r);
    const auto& l = std::get<vmi_kvm_layout>(r);
    EXPECT_EQ(l.vendor, static_cast<__u32>(VMI_VENDOR_AMD));
    EXPECT_EQ(l.svm_vmcb, 8704u);
}

TEST_F(KvmLayout, MissingMemberIsNamed) {
    make("kvm_amd", 0, false);
    auto r = vmid::resolve_kvm_layout(dir_.string());
    ASSERT_TRUE(std::holds_alternative<std::string>(r));
    EXPECT_NE(std::get<std::string>(r).find("no member vcpu_svm.vmcb"), std::string::npos);
}

TEST_F(KvmLayout, ResolvesIntelVmxOffsets) {
    BtfPtr base(btf__new_empty());
    const int u32 = btf__add_int(base.get(), "unsigned int", 4, 0);
    const int vcpu = btf__add_struct(base.get(), "kvm_vcpu", 8704);
    btf__add_field(base.get(), "arch", u32, 0, 0);
    write_raw(base.get(), dir_ / "vmlinux");
    BtfPtr mod(btf__new_empty_split(base.get()));
    const int shadow = btf__add_struct(mod.get(), "vmcs_controls_shadow", 32);
    btf__add_field(mod.get(), "vm_entry", u32, 0, 0);
    const int loaded = btf__add_struct(mod.get(), "loaded_vmcs", 128);
    btf__add_field(mod.get(), "controls_shadow", shadow, 40 * 8, 0);
    const int loaded_ptr = btf__add_ptr(mod.get(), loaded);
    const int cache = btf__add_struct(mod.get(), "vmx_segment_cache", 132);
    btf__add_field(mod.get(), "bitmask", u32, 0, 0);
    btf__add_struct(mod.get(), "vcpu_vmx", 12000);
    btf__add_field(mod.get(), "vcpu", vcpu, 0, 0);
    btf__add_field(mod.get(), "loaded_vmcs", loaded_ptr, 9000 * 8, 0);
    btf__add_field(mod.get(), "segment_cache", cache, 9200 * 8, 0);
    write_raw(mod.get(), dir_ / "kvm_intel");

    auto r = vmid::resolve_kvm_layout(dir_.string());
    ASSERT_TRUE(std::holds_alternative<vmi_kvm_layout>(r)) << std::get<std::string>(r);
    const auto& l = std::get<vmi_kvm_layout>(r);
    EXPECT_EQ(l.vendor, static_cast<__u32>(VMI_VENDOR_INTEL));
    EXPECT_EQ(l.vmx_loaded_vmcs, 9000u);
    EXPECT_EQ(l.vmx_controls, 40u);
    EXPECT_EQ(l.vmx_seg_cache, 9200u);
    EXPECT_EQ(l.svm_vmcb, 0u);
}

TEST_F(KvmLayout, IntelMissingMemberAndNoKvmAreExplained) {
    make("kvm_intel", 8704 * 8);  // has vcpu_svm, not vcpu_vmx
    auto intel = vmid::resolve_kvm_layout(dir_.string());
    ASSERT_TRUE(std::holds_alternative<std::string>(intel));
    EXPECT_NE(std::get<std::string>(intel).find("no struct vcpu_vmx"), std::string::npos);
    fs::remove(dir_ / "kvm_intel");
    auto none = vmid::resolve_kvm_layout(dir_.string());
    ASSERT_TRUE(std::holds_alternative<std::string>(none));
    EXPECT_NE(std::get<std::string>(none).find("is kvm_amd or kvm_intel loaded"),
              std::string::npos);
}
