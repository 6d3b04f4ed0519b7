// The x86-64 Linux syscall ABI, as a hypervisor sees it: numbers and names, the arguments
// worth decoding, and which argument's bytes to copy out of guest memory at the call.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vmi/result.hpp"

namespace vmi {

/// Highest x86-64 syscall number + 1 (Linux 6.12).
inline constexpr std::uint32_t kSyscallCount = 463;

/// "openat" for 257; empty for numbers Linux does not use.
std::string_view syscall_name(std::uint64_t nr);
/// 257 for "openat"; nullopt for names Linux does not have.
std::optional<std::uint32_t> syscall_number(std::string_view name);

/// How an argument is shown.
enum class ArgKind {
    kInt,         // signed
    kUint,        // unsigned, decimal
    kHex,         // pointers, masks: hex
    kFd,          // int; AT_FDCWD by name
    kPath,        // NUL-terminated user string (captured)
    kSockaddr,    // struct sockaddr (captured; length in another argument)
    kOpenFlags,   // O_*
    kMode,        // octal
    kSignal,      // SIG*
    kProt,        // PROT_*
    kCloneFlags,  // CLONE_* with the exit signal in the low byte (clone)
    kNsFlags,     // CLONE_NEW* (unshare, setns): no signal byte
    kCloneArgs,   // struct clone_args (captured): its flags
    kPtraceRequest,
    kSocketDomain,
    kSocketType,
};

struct ArgInfo {
    std::string_view name;
    ArgKind kind;
};

struct SyscallInfo {
    std::string_view name;
    std::vector<ArgInfo> args;
    int capture_arg = -1;      // argument whose value the hypervisor copies at the call
    int capture_len_arg = -1;  // for a buffer: the argument holding its length; -1: a string
};

/// Argument metadata for the security-relevant syscalls; nullptr for the rest (their
/// arguments are shown raw).
const SyscallInfo* syscall_info(std::uint64_t nr);

/// The one argument a hypervisor copies out of guest memory when a syscall is entered: later
/// (at the return) the guest may have changed or unmapped it.
struct CaptureSpec {
    enum class Kind : std::uint8_t {
        kString,  // NUL-terminated user string at args[arg]: a path, a module or memfd name
        kBuffer,  // args[arg] points to args[len_arg] bytes: a sockaddr
    };
    Kind kind = Kind::kString;
    int arg = -1;      // index of the pointer argument
    int len_arg = -1;  // kBuffer: index of the length argument; -1 for kString

    friend bool operator==(const CaptureSpec&, const CaptureSpec&) = default;
};

/// The capture rule from syscall_info(nr): the first path of path-taking syscalls (execveat:
/// arg 1; renames and links: the destination), the address of connect/bind. nullopt when nothing is
/// copied (unknown number, no metadata, or no pointer worth copying).
std::optional<CaptureSpec> syscall_capture(std::uint64_t nr);

/// Decoders: pure functions over values a guest controls; unknown bits are shown in hex.
std::string decode_open_flags(std::uint64_t flags);
std::string decode_prot(std::uint64_t prot);
std::string decode_clone_flags(std::uint64_t flags);
/// unshare and setns flags: CLONE_NEW* without clone's signal byte.
std::string decode_ns_flags(std::uint64_t flags);
std::string decode_signal(std::uint64_t sig);
/// "PTRACE_ATTACH"; unknown requests in hex.
std::string decode_ptrace_request(std::uint64_t request);
/// "AF_INET"; unknown families as "AF_<n>".
std::string decode_socket_domain(std::uint64_t domain);
/// "SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC"; unknown bits in hex.
std::string decode_socket_type(std::uint64_t type);
/// "ENOENT" for -2; empty for values that are not errors (-4095..-1 are).
std::string decode_errno(std::int64_t ret);

struct SockAddr {
    std::string family;   // "AF_INET", "AF_INET6", "AF_UNIX" or "AF_<n>"
    std::string address;  // "10.0.2.2", "::1", a unix path, "@name" for an abstract one
    int port = -1;        // host order; -1 where a family has none
};
/// Decodes a struct sockaddr copied from the guest; errors on truncated input.
Result<SockAddr> decode_sockaddr(std::span<const std::uint8_t> bytes);

}  // namespace vmi
