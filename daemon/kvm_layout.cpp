#include "kvm_layout.hpp"

#include <bpf/btf.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string_view>
#include <vector>

namespace vmid {
namespace {

struct BtfFree {
    void operator()(struct btf* b) const noexcept { btf__free(b); }
};
using BtfPtr = std::unique_ptr<struct btf, BtfFree>;

BtfPtr parse(const std::string& path, struct btf* base, std::string& why) {
    struct btf* b = base ? btf__parse_split(path.c_str(), base) : btf__parse(path.c_str(), nullptr);
    if (!b) why = path + ": cannot parse BTF: " + std::strerror(errno);
    return BtfPtr(b);
}

// Byte offset of a direct member of a struct, or why not.
std::variant<std::uint64_t, std::string> member_offset(const struct btf* b, const char* strct,
                                                       const char* member,
                                                       const std::string& file) {
    const int id = btf__find_by_name_kind(b, strct, BTF_KIND_STRUCT);
    if (id < 0) return file + ": no struct " + strct;
    const struct btf_type* t = btf__type_by_id(b, static_cast<__u32>(id));
    const struct btf_member* m = btf_members(t);
    for (unsigned i = 0; i < btf_vlen(t); ++i, ++m) {
        if (std::string_view(btf__name_by_offset(b, m->name_off)) != member) continue;
        const std::uint32_t bits = btf_member_bit_offset(t, i);
        if (btf_member_bitfield_size(t, i) != 0 || bits % 8 != 0)
            return file + ": " + strct + "." + member + " is not byte aligned";
        return std::uint64_t{bits / 8};
    }
    return file + ": no member " + strct + "." + member;
}

}  // namespace

std::variant<vmi_kvm_layout, std::string> resolve_kvm_layout(const std::string& dir) {
    namespace fs = std::filesystem;
    std::string why;
    const std::string amd = dir + "/kvm_amd", intel = dir + "/kvm_intel";
    const bool is_amd = fs::exists(amd);
    if (!is_amd && !fs::exists(intel))
        return dir + ": no KVM vendor module BTF (is kvm_amd or kvm_intel loaded?)";
    BtfPtr base = parse(dir + "/vmlinux", nullptr, why);
    if (!base) return why;
    const std::string& file = is_amd ? amd : intel;
    BtfPtr mod = parse(file, base.get(), why);
    if (!mod) return why;

    vmi_kvm_layout layout{};
    // Each entry: struct, member, destination.
    struct Want {
        const char* strct;
        const char* member;
        __u64* dst;
    };
    const std::vector<Want> wants =
        is_amd ? std::vector<Want>{{"vcpu_svm", "vmcb", &layout.svm_vmcb}}
               : std::vector<Want>{{"vcpu_vmx", "loaded_vmcs", &layout.vmx_loaded_vmcs},
                                   {"loaded_vmcs", "controls_shadow", &layout.vmx_controls},
                                   {"vcpu_vmx", "segment_cache", &layout.vmx_seg_cache}};
    for (const Want& w : wants) {
        auto off = member_offset(mod.get(), w.strct, w.member, file);
        if (auto* err = std::get_if<std::string>(&off)) return *err;
        *w.dst = std::get<std::uint64_t>(off);
    }
    layout.vendor = is_amd ? VMI_VENDOR_AMD : VMI_VENDOR_INTEL;
    return layout;
}

}  // namespace vmid
