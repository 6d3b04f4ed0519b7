// The x86-64 syscall ABI table, capture rules, and the decoders applied to values a guest
// controls (with the edge cases crafted arguments reach).
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "vmi/syscall_abi.hpp"

namespace {

TEST(BridgeSyscallAbi, KnownNumbersAndNames) {
    EXPECT_EQ(vmi::syscall_name(0), "read");
    EXPECT_EQ(vmi::syscall_name(42), "connect");
    EXPECT_EQ(vmi::syscall_name(59), "execve");
    EXPECT_EQ(vmi::syscall_name(110), "getppid");
    EXPECT_EQ(vmi::syscall_name(257), "openat");
    EXPECT_EQ(vmi::syscall_name(322), "execveat");
    EXPECT_EQ(vmi::syscall_name(462), "mseal");
    EXPECT_EQ(vmi::syscall_name(vmi::kSyscallCount), "");
    EXPECT_EQ(vmi::syscall_name(~0ULL), "");
    EXPECT_EQ(vmi::syscall_name(400), "");  // a gap in the table
    EXPECT_EQ(vmi::syscall_number("openat"), 257u);
    EXPECT_FALSE(vmi::syscall_number("opnat"));
    EXPECT_FALSE(vmi::syscall_number(""));
}

TEST(BridgeSyscallAbi, EveryNameRoundTrips) {
    int named = 0;
    for (std::uint32_t nr = 0; nr < vmi::kSyscallCount; ++nr) {
        const auto name = vmi::syscall_name(nr);
        if (name.empty()) continue;
        ++named;
        EXPECT_EQ(vmi::syscall_number(name), nr) << name;
    }
    EXPECT_GT(named, 350);
}

TEST(BridgeSyscallAbi, CaptureSpecsNameThePathOrAddress) {
    const auto* openat = vmi::syscall_info(257);
    ASSERT_NE(openat, nullptr);
    EXPECT_EQ(openat->args[1].name, "path");
    EXPECT_EQ(openat->capture_arg, 1);
    EXPECT_EQ(openat->capture_len_arg, -1);
    EXPECT_EQ(vmi::syscall_info(59)->capture_arg, 0);
    EXPECT_EQ(vmi::syscall_info(322)->capture_arg, 1);
    const auto* connect = vmi::syscall_info(42);
    EXPECT_EQ(connect->capture_arg, 1);
    EXPECT_EQ(connect->capture_len_arg, 2);
    EXPECT_EQ(vmi::syscall_info(110)->capture_arg, -1);
    EXPECT_EQ(vmi::syscall_info(400), nullptr);
}

TEST(BridgeSyscallAbi, FlagDecoders) {
    EXPECT_EQ(vmi::decode_open_flags(0), "O_RDONLY");
    EXPECT_EQ(vmi::decode_open_flags(01 | 0100 | 01000 | 02000000),
              "O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC");
    EXPECT_EQ(vmi::decode_open_flags(02 | 0x80000000), "O_RDWR|0x80000000");
    EXPECT_EQ(vmi::decode_open_flags(04010000), "O_RDONLY|O_SYNC");  // O_SYNC holds O_DSYNC
    EXPECT_EQ(vmi::decode_open_flags(010000), "O_RDONLY|O_DSYNC");
    EXPECT_EQ(vmi::decode_open_flags(0100000), "O_RDONLY|O_LARGEFILE");  // the kernel's bit
    EXPECT_EQ(vmi::decode_ns_flags(0x80 | 0x04000000), "CLONE_NEWTIME|CLONE_NEWUTS");
    EXPECT_EQ(vmi::decode_prot(0), "PROT_NONE");
    EXPECT_EQ(vmi::decode_prot(7), "PROT_READ|PROT_WRITE|PROT_EXEC");
    EXPECT_EQ(vmi::decode_clone_flags(0x00000100 | 0x00010000 | 17),
              "SIGCHLD|CLONE_VM|CLONE_THREAD");
    EXPECT_EQ(vmi::decode_signal(9), "SIGKILL");
    EXPECT_EQ(vmi::decode_signal(34), "SIGRTMIN+2");
    EXPECT_EQ(vmi::decode_signal(1000), "1000");
}

TEST(BridgeSyscallAbi, ErrnoOnlyForErrorReturns) {
    EXPECT_EQ(vmi::decode_errno(-2), "ENOENT");
    EXPECT_EQ(vmi::decode_errno(-111), "ECONNREFUSED");
    EXPECT_EQ(vmi::decode_errno(0), "");
    EXPECT_EQ(vmi::decode_errno(3), "");
    EXPECT_EQ(vmi::decode_errno(-4096), "");  // an address, not an error
}

TEST(BridgeSyscallAbi, SockaddrFamilies) {
    const std::vector<std::uint8_t> in4 = {2, 0, 0x10, 0x92, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0};
    auto a = vmi::decode_sockaddr(in4);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->family, "AF_INET");
    EXPECT_EQ(a->address, "127.0.0.1");
    EXPECT_EQ(a->port, 4242);

    std::vector<std::uint8_t> in6(28, 0);
    in6[0] = 10;
    in6[3] = 80;
    in6[8 + 15] = 1;
    a = vmi::decode_sockaddr(in6);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->address, "::1");
    EXPECT_EQ(a->port, 80);

    const std::vector<std::uint8_t> un = {1, 0, '/', 'r', 'u', 'n', 0, 'x'};
    a = vmi::decode_sockaddr(un);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->family, "AF_UNIX");
    EXPECT_EQ(a->address, "/run");
    EXPECT_EQ(a->port, -1);
    const std::vector<std::uint8_t> abstract = {1, 0, 0, 'k', 'e', 'y'};
    EXPECT_EQ(vmi::decode_sockaddr(abstract)->address, "@key");

    const std::vector<std::uint8_t> odd = {0x99, 0, 1, 2};
    EXPECT_EQ(vmi::decode_sockaddr(odd)->family, "AF_153");
}

TEST(BridgeSyscallAbi, TruncatedSockaddrIsAnError) {
    const std::vector<std::uint8_t> in4 = {2, 0, 0x10, 0x92, 127, 0};
    EXPECT_FALSE(vmi::decode_sockaddr(in4));
    const std::vector<std::uint8_t> in6 = {10, 0, 0, 80, 0, 0, 0, 0, 0, 0};
    EXPECT_FALSE(vmi::decode_sockaddr(in6));
    EXPECT_FALSE(vmi::decode_sockaddr(std::vector<std::uint8_t>{2}));
}

}  // namespace

namespace {

using Kind = vmi::CaptureSpec::Kind;

std::uint32_t nr_of(std::string_view name) {
    const auto nr = vmi::syscall_number(name);
    EXPECT_TRUE(nr) << name;
    return nr.value_or(~0u);
}

TEST(BridgeSyscallAbi, CaptureSpecsOfExecOpenAndConnect) {
    EXPECT_EQ(vmi::syscall_capture(257), (vmi::CaptureSpec{Kind::kString, 1, -1}));  // openat
    EXPECT_EQ(vmi::syscall_capture(59), (vmi::CaptureSpec{Kind::kString, 0, -1}));   // execve
    EXPECT_EQ(vmi::syscall_capture(322), (vmi::CaptureSpec{Kind::kString, 1, -1}));  // execveat
    EXPECT_EQ(vmi::syscall_capture(42), (vmi::CaptureSpec{Kind::kBuffer, 1, 2}));    // connect
    EXPECT_EQ(vmi::syscall_capture(nr_of("bind")), (vmi::CaptureSpec{Kind::kBuffer, 1, 2}));
}

TEST(BridgeSyscallAbi, NoCaptureWithoutAPointerOrMetadata) {
    EXPECT_FALSE(vmi::syscall_capture(0));    // read: the buffer is filled at the return
    EXPECT_FALSE(vmi::syscall_capture(110));  // getppid
    EXPECT_FALSE(vmi::syscall_capture(nr_of("accept")));  // addr is an output
    EXPECT_FALSE(vmi::syscall_capture(nr_of("mmap")));
    EXPECT_FALSE(vmi::syscall_capture(400));  // a gap in the table
    EXPECT_FALSE(vmi::syscall_capture(vmi::kSyscallCount));
    EXPECT_FALSE(vmi::syscall_capture(~0ULL));
}

TEST(BridgeSyscallAbi, PathSyscallsCaptureTheirFirstPath) {
    const std::pair<std::string_view, int> cases[] = {
        {"open", 0},          {"openat", 1},    {"openat2", 1},   {"execve", 0},
        {"execveat", 1},      {"unlink", 0},    {"unlinkat", 1},  {"rename", 1},
        {"renameat", 3},      {"renameat2", 3}, {"chmod", 0},     {"fchmodat", 1},
        {"chown", 0},         {"fchownat", 1},  {"truncate", 0},  {"link", 1},
        {"linkat", 3},        {"symlink", 1},   {"symlinkat", 2}, {"mkdir", 0},
        {"mkdirat", 1},       {"rmdir", 0},     {"chroot", 0},    {"pivot_root", 0},
        {"umount2", 0},       {"mount", 0},     {"creat", 0},     {"memfd_create", 0},
        {"delete_module", 0},
    };
    for (const auto& [name, arg] : cases)
        EXPECT_EQ(vmi::syscall_capture(nr_of(name)), (vmi::CaptureSpec{Kind::kString, arg, -1}))
            << name;
}

// Every capture rule in the table must point at an argument that exists and has the kind the
// capture implies, or the hypervisor would copy from a register that holds no pointer.
TEST(BridgeSyscallAbi, EveryCaptureNamesAPointerArgument) {
    int captures = 0;
    for (std::uint32_t nr = 0; nr < vmi::kSyscallCount; ++nr) {
        const auto spec = vmi::syscall_capture(nr);
        if (!spec) continue;
        ++captures;
        const auto* info = vmi::syscall_info(nr);
        ASSERT_NE(info, nullptr) << nr;
        ASSERT_GE(spec->arg, 0) << info->name;
        ASSERT_LT(static_cast<std::size_t>(spec->arg), info->args.size()) << info->name;
        const auto kind = info->args[static_cast<std::size_t>(spec->arg)].kind;
        if (spec->kind == Kind::kString) {
            EXPECT_EQ(kind, vmi::ArgKind::kPath) << info->name;
            EXPECT_EQ(spec->len_arg, -1) << info->name;
        } else {
            EXPECT_TRUE(kind == vmi::ArgKind::kSockaddr || kind == vmi::ArgKind::kCloneArgs)
                << info->name;
            ASSERT_GE(spec->len_arg, 0) << info->name;
            ASSERT_LT(static_cast<std::size_t>(spec->len_arg), info->args.size()) << info->name;
            EXPECT_NE(spec->len_arg, spec->arg) << info->name;
            EXPECT_EQ(info->args[static_cast<std::size_t>(spec->len_arg)].kind, vmi::ArgKind::kUint)
                << info->name;
        }
    }
    EXPECT_GE(captures, 30);
}

TEST(BridgeSyscallAbi, SecurityRelevantSyscallsHaveMetadata) {
    const std::string_view names[] = {
        "read",
        "write",
        "open",
        "openat",
        "openat2",
        "close",
        "execve",
        "execveat",
        "connect",
        "accept",
        "accept4",
        "bind",
        "listen",
        "socket",
        "ptrace",
        "kill",
        "tkill",
        "tgkill",
        "setuid",
        "setgid",
        "setreuid",
        "setregid",
        "setresuid",
        "setresgid",
        "init_module",
        "finit_module",
        "delete_module",
        "mount",
        "umount2",
        "unlink",
        "unlinkat",
        "rename",
        "renameat",
        "renameat2",
        "chmod",
        "fchmodat",
        "chown",
        "fchownat",
        "memfd_create",
        "mmap",
        "mprotect",
        "clone",
        "clone3",
        "fork",
        "vfork",
        "exit",
        "exit_group",
        "getppid",
        "getpid",
        "bpf",
        "kexec_load",
        "pivot_root",
        "chroot",
        "setns",
        "unshare",
        "truncate",
        "link",
        "linkat",
        "symlink",
        "symlinkat",
        "mkdir",
        "mkdirat",
        "rmdir",
        "sethostname",
        "process_vm_writev",
        "process_vm_readv",
        "capset",
        "prctl",
    };
    for (const auto name : names) {
        const auto* info = vmi::syscall_info(nr_of(name));
        ASSERT_NE(info, nullptr) << name;
        EXPECT_EQ(info->name, name);
        EXPECT_LE(info->args.size(), 6u) << name;  // six argument registers
    }
    const auto* openat = vmi::syscall_info(257);
    ASSERT_EQ(openat->args.size(), 4u);
    EXPECT_EQ(openat->args[0].kind, vmi::ArgKind::kFd);
    EXPECT_EQ(openat->args[2].kind, vmi::ArgKind::kOpenFlags);
    EXPECT_EQ(openat->args[3].kind, vmi::ArgKind::kMode);
    EXPECT_EQ(vmi::syscall_info(nr_of("kill"))->args[1].kind, vmi::ArgKind::kSignal);
    EXPECT_EQ(vmi::syscall_info(nr_of("mprotect"))->args[2].kind, vmi::ArgKind::kProt);
    EXPECT_EQ(vmi::syscall_info(nr_of("clone"))->args[0].kind, vmi::ArgKind::kCloneFlags);
    EXPECT_TRUE(vmi::syscall_info(nr_of("fork"))->args.empty());
}

TEST(BridgeSyscallAbi, PtraceRequests) {
    EXPECT_EQ(vmi::decode_ptrace_request(0), "PTRACE_TRACEME");
    EXPECT_EQ(vmi::decode_ptrace_request(16), "PTRACE_ATTACH");
    EXPECT_EQ(vmi::decode_ptrace_request(5), "PTRACE_POKEDATA");
    EXPECT_EQ(vmi::decode_ptrace_request(21), "PTRACE_OLDSETOPTIONS");  // x86 only
    EXPECT_EQ(vmi::decode_ptrace_request(0x4206), "PTRACE_SEIZE");
    EXPECT_EQ(vmi::decode_ptrace_request(0x4211), "PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG");
    EXPECT_EQ(vmi::decode_ptrace_request(10), "0xa");  // a gap
    EXPECT_EQ(vmi::decode_ptrace_request(0x4212), "0x4212");
    // A long: high bits make a different (unknown) request, not PTRACE_ATTACH.
    EXPECT_EQ(vmi::decode_ptrace_request((1ULL << 32) | 16), "0x100000010");
    EXPECT_EQ(vmi::decode_ptrace_request(~0ULL), "0xffffffffffffffff");
}

TEST(BridgeSyscallAbi, SocketDomains) {
    EXPECT_EQ(vmi::decode_socket_domain(0), "AF_UNSPEC");
    EXPECT_EQ(vmi::decode_socket_domain(1), "AF_UNIX");
    EXPECT_EQ(vmi::decode_socket_domain(2), "AF_INET");
    EXPECT_EQ(vmi::decode_socket_domain(10), "AF_INET6");
    EXPECT_EQ(vmi::decode_socket_domain(16), "AF_NETLINK");
    EXPECT_EQ(vmi::decode_socket_domain(17), "AF_PACKET");
    EXPECT_EQ(vmi::decode_socket_domain(40), "AF_VSOCK");
    EXPECT_EQ(vmi::decode_socket_domain(45), "AF_MCTP");
    EXPECT_EQ(vmi::decode_socket_domain(46), "AF_46");
    // The kernel reads an int: upper register bits are ignored, 0xffffffff is -1.
    EXPECT_EQ(vmi::decode_socket_domain((7ULL << 32) | 2), "AF_INET");
    EXPECT_EQ(vmi::decode_socket_domain(0xffffffffULL), "AF_-1");
}

TEST(BridgeSyscallAbi, SocketTypes) {
    EXPECT_EQ(vmi::decode_socket_type(1), "SOCK_STREAM");
    EXPECT_EQ(vmi::decode_socket_type(2), "SOCK_DGRAM");
    EXPECT_EQ(vmi::decode_socket_type(3 | 02000000), "SOCK_RAW|SOCK_CLOEXEC");
    EXPECT_EQ(vmi::decode_socket_type(1 | 04000 | 02000000),
              "SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC");
    EXPECT_EQ(vmi::decode_socket_type(10), "SOCK_PACKET");
    EXPECT_EQ(vmi::decode_socket_type(0), "0");
    EXPECT_EQ(vmi::decode_socket_type(7), "7");
    EXPECT_EQ(vmi::decode_socket_type(2 | 0x80000000), "SOCK_DGRAM|0x80000000");
    EXPECT_EQ(vmi::decode_socket_type((1ULL << 40) | 5), "SOCK_SEQPACKET");
}

TEST(BridgeSyscallAbi, SockaddrEdgeCases) {
    // IPv4-mapped IPv6, printed the way inet_ntop does.
    std::vector<std::uint8_t> in6(28, 0);
    in6[0] = 10;
    in6[2] = 0x01;
    in6[3] = 0xbb;
    in6[8 + 10] = 0xff;
    in6[8 + 11] = 0xff;
    in6[8 + 12] = 10;
    in6[8 + 15] = 2;
    auto a = vmi::decode_sockaddr(in6);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->family, "AF_INET6");
    EXPECT_EQ(a->address, "::ffff:10.0.0.2");
    EXPECT_EQ(a->port, 443);
    // sin6_scope_id is optional: 24 bytes are a complete sockaddr_in6 (SIN6_LEN_RFC2133).
    EXPECT_TRUE(vmi::decode_sockaddr(std::span(in6).first(24)));
    EXPECT_FALSE(vmi::decode_sockaddr(std::span(in6).first(23)));

    // Exactly sizeof(sockaddr_in) minus the padding is enough; 7 bytes are not.
    const std::vector<std::uint8_t> in4 = {2, 0, 0, 53, 10, 0, 2, 3};
    a = vmi::decode_sockaddr(in4);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->address, "10.0.2.3");
    EXPECT_EQ(a->port, 53);
    EXPECT_FALSE(vmi::decode_sockaddr(std::span(in4).first(7)));
    EXPECT_FALSE(vmi::decode_sockaddr({}));

    // A unix path without its NUL stops at the span's end, whatever follows in memory.
    const std::vector<std::uint8_t> un = {1, 0, '/', 't', 'm', 'p', '/', 's', 'X', 'X'};
    a = vmi::decode_sockaddr(std::span(un).first(8));
    ASSERT_TRUE(a);
    EXPECT_EQ(a->address, "/tmp/s");
    // A bare family (autobind) is an empty address, not an error.
    a = vmi::decode_sockaddr(std::span(un).first(2));
    ASSERT_TRUE(a);
    EXPECT_EQ(a->family, "AF_UNIX");
    EXPECT_EQ(a->address, "");
    // An abstract name is shown with '@' and ends at the span, not at a NUL.
    const std::vector<std::uint8_t> abstract = {1, 0, 0, 'a', 'b', 'X'};
    EXPECT_EQ(vmi::decode_sockaddr(std::span(abstract).first(5))->address, "@ab");

    // An unknown family is named by number; its bytes are not interpreted.
    const std::vector<std::uint8_t> netlink = {16, 0, 0, 0};
    a = vmi::decode_sockaddr(netlink);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->family, "AF_16");
    EXPECT_EQ(a->port, -1);
    EXPECT_EQ(vmi::decode_sockaddr(std::vector<std::uint8_t>{0x34, 0x12})->family, "AF_4660");
}

TEST(BridgeSyscallAbi, ErrnoBounds) {
    EXPECT_EQ(vmi::decode_errno(-1), "EPERM");
    EXPECT_EQ(vmi::decode_errno(-13), "EACCES");
    EXPECT_EQ(vmi::decode_errno(-4095), "E4095");  // in the error range, no name
    EXPECT_EQ(vmi::decode_errno(INT64_MIN), "");
}

}  // namespace
