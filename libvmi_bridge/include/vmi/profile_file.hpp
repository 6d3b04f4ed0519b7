// Kernel profiles from files, for guest kernels without BTF in memory: a BTF file (a vmlinux
// with .BTF, or a copy of /sys/kernel/btf/vmlinux) or a Volatility 3 ISF JSON profile. Kernel
// discovery uses one instead of searching guest memory for the BTF (DiscoveryOptions::profile).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "vmi/isf_profile.hpp"
#include "vmi/result.hpp"
#include "vmi/type_layout.hpp"

namespace vmi {

/// Where a guest profile's struct layouts came from.
enum class ProfileSource : std::uint8_t {
    kGuestBtf,  // the kernel's own BTF, found in guest memory (zero configuration)
    kBtfFile,   // --btf FILE
    kIsf,       // --isf FILE
};

/// "guest-btf", "btf-file", "isf".
std::string_view to_string(ProfileSource s) noexcept;

/// A profile loaded from a file: its Linux offsets, parsed once, plus (ISF) its symbols.
struct KernelProfileFile {
    ProfileSource source = ProfileSource::kBtfFile;
    std::string path;
    std::uint64_t hash = 0;  // identifies the kernel build: the discovery cache key
    LinuxOffsets offsets;
    /// ISF: link-time (unslid) addresses of _text and init_task, 0 if absent. With both,
    /// discovery takes init_task at link_init_task + KASLR slide instead of scanning.
    std::uint64_t link_text = 0;
    std::uint64_t link_init_task = 0;
    /// ISF: the whole profile, for symbol lookups (null for a BTF file).
    std::shared_ptr<const IsfProfile> isf;
};

/// Parses a BTF file and derives the Linux offsets. Errors: the parser's (kInvalidFormat)
/// or linux_offsets_from()'s, prefixed with the path.
Result<KernelProfileFile> load_btf_profile_file(const std::string& path);

/// Parses and validates an ISF file (IsfProfile::from_file) and derives the Linux offsets.
Result<KernelProfileFile> load_isf_profile_file(const std::string& path);

/// The same from ISF text in memory (tests, fuzzing); `name` stands in for the path.
Result<KernelProfileFile> load_isf_profile(std::string_view text, std::string_view name);

}  // namespace vmi
