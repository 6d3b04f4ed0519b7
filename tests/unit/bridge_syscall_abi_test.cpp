// The x86-64 syscall ABI table and the decoders applied to values a guest controls.
#include <cstdint>
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
