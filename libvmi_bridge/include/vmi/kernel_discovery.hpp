// Zero-configuration profile of a Linux guest kernel: everything the Linux model needs is
// derived from guest memory and one CR3 of the guest, with no vmlinux, System.map or profile
// file. Struct offsets come from the kernel's own BTF (the .BTF section is loaded in the
// kernel image); init_task is found by its run-time comm "swapper/0" and validated as the head
// of the task list. For kernels without BTF in memory, a profile file (BTF or Volatility 3
// ISF, profile_file.hpp) can be given instead.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "vmi/btf_profile.hpp"
#include "vmi/guest_memory.hpp"
#include "vmi/profile_file.hpp"
#include "vmi/result.hpp"

namespace vmi {

struct GuestKernelProfile {
    std::uint64_t text_va = 0;       // slid _text (first mapped 2 MiB slot of the image window)
    std::uint64_t init_task_va = 0;  // slid &init_task
    ProfileSource source = ProfileSource::kGuestBtf;  // where `offsets` came from
    std::uint64_t btf_va = 0;    // where the in-memory .BTF starts (0 with a profile file)
    std::uint64_t btf_size = 0;  // bytes: hdr_len + str_off + str_len (0 with a profile file)
    /// The cache key: FNV-1a 64 of the in-memory BTF blob, or the profile file's hash.
    std::uint64_t btf_hash = 0;
    LinuxOffsets offsets;
    /// slid _text - link-time _text; known only with an ISF profile that has _text.
    std::optional<std::uint64_t> kaslr_slide;
    bool from_cache = false;               // true if a cached profile of this build was reused
    std::uint64_t bytes_scanned = 0;       // guest bytes searched (0 on a cache hit)
    std::chrono::nanoseconds btf_time{0};  // finding, copying and parsing the BTF
    std::chrono::nanoseconds init_task_time{0};  // validating the init_task candidates
    std::chrono::nanoseconds total_time{0};
};

struct DiscoveryOptions {
    bool la57 = false;
    /// Kernel image bytes searched from _text (BTF and init_task both live in the image).
    std::uint64_t scan_len = 128ULL << 20;
    /// Reuse / fill the in-process cache keyed by the BTF blob's (or profile file's) hash.
    bool use_cache = true;
    /// A profile file used instead of the guest's in-memory BTF (which is then not searched);
    /// null = zero configuration. Not owned: must outlive the call.
    const KernelProfileFile* profile = nullptr;
};

/// Upper bound on the size of a BTF blob accepted from the guest (hdr + types + strings).
inline constexpr std::uint64_t kMaxGuestBtfSize = 64ULL << 20;

/// Derives text_va, the kernel's BTF, the Linux offsets and init_task from guest memory.
/// `any_cr3` is any CR3 value the guest used (user or kernel, KPTI or not). Every guest value
/// is bounded: the scan visits at most opts.scan_len bytes, at most kMaxBtfCandidates BTF
/// headers are copied (each < kMaxGuestBtfSize) and at most kMaxInitTaskCandidates
/// "swapper/0" strings are validated. Errors: kNotFound (no _text / no usable BTF / no
/// init_task), kInvalidFormat (more than one init_task candidate validates), or the memory's
/// own faults.
///
/// With opts.profile, the offsets are the profile's and only init_task is searched: an ISF
/// profile with _text and init_task symbols gives it directly (link address + the slide of the
/// guest's _text, validated); otherwise, or if that does not validate, "swapper/0" strings in
/// the image are validated as above.
///
/// Cache: each successful discovery is remembered in-process (at most 16 builds), keyed by the
/// profile source and the FNV-1a hash of the BTF blob or profile file, as offsets from _text
/// (KASLR moves the image as a whole). A later call first tries the cached builds of its
/// source: for the in-memory BTF, if the BTF at the cached offset hashes to the key and the
/// cached init_task validates; for a profile file, if the cached init_task of the same file
/// validates. Then the scan is skipped (from_cache = true).
Result<GuestKernelProfile> discover_kernel(GuestMemory& mem, std::uint64_t any_cr3,
                                           const DiscoveryOptions& opts);
inline Result<GuestKernelProfile> discover_kernel(GuestMemory& mem, std::uint64_t any_cr3,
                                                  bool la57 = false) {
    DiscoveryOptions o;
    o.la57 = la57;
    return discover_kernel(mem, any_cr3, o);
}

inline constexpr std::size_t kMaxBtfCandidates = 16;
inline constexpr std::size_t kMaxInitTaskCandidates = 256;

/// Checks that `task_va` is init_task: pid 0, tgid 0, tasks.next->prev and tasks.prev->next
/// both point back at &task->tasks, and LinuxGuest can walk the whole list back to it.
/// `any_cr3` is any CR3 of the guest.
Status validate_init_task(GuestMemory& mem, std::uint64_t any_cr3, const LinuxOffsets& off,
                          std::uint64_t task_va, bool la57 = false);

/// FNV-1a 64 of a byte range (stable across runs and hosts; usable as a file-cache key).
std::uint64_t fnv1a64(std::span<const std::byte> bytes) noexcept;

/// Drops every cached profile (tests; or when memory is tight).
void clear_kernel_profile_cache();
/// Number of cached profiles.
std::size_t kernel_profile_cache_size();

}  // namespace vmi
