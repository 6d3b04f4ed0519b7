// Offsets into KVM's private vCPU structs, read from the vendor module's BTF
// (/sys/kernel/btf/kvm_amd, split on /sys/kernel/btf/vmlinux), for the module to validate
// and use. Nothing here is trusted by the kernel side: it checks every value at run time.
#pragma once

#include <string>
#include <variant>

#include "vminsight.h"

namespace vmid {

/// The layout, or why there is none (a sentence naming the file or struct).
std::variant<vmi_kvm_layout, std::string> resolve_kvm_layout(
    const std::string& btf_dir = "/sys/kernel/btf");

}  // namespace vmid
