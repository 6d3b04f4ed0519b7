#include "options.hpp"

#include <filesystem>

#include <gtest/gtest.h>

using vmid::parse_options;
using vmid::UsageError;

namespace {

// The usage error a command line gives, or "no error".
std::string msg(const std::vector<std::string>& a) {
    try {
        parse_options(a);
    } catch (const UsageError& e) {
        return e.what();
    }
    return "no error";
}

}  // namespace

TEST(Options, ParsesAFullCommandLine) {
    auto o = parse_options({"--qemu-pid", "123", "--guest-kernel", "k", "--ring-pages", "64",
                            "--rescan-interval-ms", "250", "--output", "/tmp/x"});
    EXPECT_EQ(o.qemu_pid, 123);
    EXPECT_EQ(o.vm_name, "qemu-123");
    EXPECT_EQ(o.ring_pages, 64u);
    EXPECT_EQ(o.rescan_interval.count(), 250);
    EXPECT_EQ(o.output, "/tmp/x");
}

TEST(Options, ErrorsNameTheOption) {
    EXPECT_EQ(msg({"--qemu-pid", "12x"}), "--qemu-pid: '12x' is not a number in [1, 4194304]");
    EXPECT_EQ(msg({"--guest-kernel", "k"}), "--qemu-pid or --libvirt is required");
    EXPECT_EQ(msg({"--cr3-exiting", "maybe"}), "--cr3-exiting: 'maybe' is not on or off");
    EXPECT_EQ(msg({"--bogus"}), "unknown option --bogus");
    EXPECT_EQ(msg({"--qemu-pid"}), "--qemu-pid: missing value");
    EXPECT_EQ(msg({"--qemu-pid", "1", "--syscalls", "openat,,read"}),
              "--syscalls: empty name in 'openat,,read'");
    EXPECT_EQ(msg({"--qemu-pid", "1", "--syscalls", "openat,opnat"}),
              "--syscalls: unknown syscall 'opnat'");
    EXPECT_EQ(msg({"--qemu-pid", "1", "--deny-exec", "tmp/x"}),
              "--deny-exec: 'tmp/x' is not an absolute path");
    EXPECT_EQ(msg({"--qemu-pid", "1", "--deny-exec", "/a", "--allow-exec", "/b"}),
              "--deny-exec and --allow-exec exclude each other");
    EXPECT_EQ(msg({"--qemu-pid", "1", "--deny-errno", "0"}),
              "--deny-errno: '0' is not a number in [1, 4095]");
}

// A profile file is loaded when the options are parsed: a bad one is a usage error naming it.
TEST(Options, ProfileFiles) {
    const std::string missing = "/nonexistent/vmlinux.btf";
    EXPECT_EQ(msg({"--qemu-pid", "1", "--btf", missing}).rfind("--btf " + missing + ": ", 0), 0U);
    EXPECT_EQ(msg({"--qemu-pid", "1", "--isf", "/etc/hostname"}).rfind("--isf /etc/hostname: ", 0),
              0U);
    const std::string host_btf = "/sys/kernel/btf/vmlinux";
    if (!std::filesystem::exists(host_btf)) GTEST_SKIP() << "no " << host_btf;
    const auto o = parse_options({"--qemu-pid", "1", "--btf", host_btf});
    ASSERT_TRUE(o.profile);
    EXPECT_EQ(o.profile->source, vmi::ProfileSource::kBtfFile);
    EXPECT_GT(o.profile->offsets.task_tgid, 0U);
    EXPECT_EQ(msg({"--qemu-pid", "1", "--btf", host_btf, "--isf", host_btf}),
              "--btf and --isf exclude each other");
    EXPECT_EQ(msg({"--qemu-pid", "1", "--btf", host_btf, "--guest-kernel", "k"}),
              "--guest-kernel and --btf/--isf exclude each other");
    EXPECT_EQ(msg({"--libvirt", "test:///default", "--btf", host_btf}),
              "--btf names one VM: with --libvirt, libvirt names each");
}

TEST(Options, SyscallTrapOptions) {
    auto o =
        parse_options({"--qemu-pid", "1", "--syscalls", "openat,execve", "--syscalls", "getppid",
                       "--deny-exec", "/tmp/a", "--deny-exec", "/tmp/b", "--deny-errno", "13"});
    EXPECT_EQ(o.syscalls, (std::vector<std::string>{"openat", "execve", "getppid"}));
    EXPECT_EQ(o.deny_exec, (std::vector<std::string>{"/tmp/a", "/tmp/b"}));
    EXPECT_TRUE(o.allow_exec.empty());
    EXPECT_EQ(o.deny_errno, 13);
    o = parse_options({"--qemu-pid", "1", "--syscalls", "execve,openat", "--lifecycle"});
    EXPECT_EQ(o.syscalls, (std::vector<std::string>{"execve", "openat", "execveat", "fork", "vfork",
                                                    "clone", "clone3", "exit_group"}));
}

TEST(Options, ScopingAndResponseOptions) {
    auto o = parse_options({"--qemu-pid", "1", "--vm-name", "web-1", "--vm-uuid", "abc",
                            "--vm-meta", "tier=prod", "--vm-meta", "owner=a=b", "--qmp",
                            "/run/q.sock", "--dump-dir", "/srv/dumps", "--dump-max-mb", "512",
                            "--control", "/run/vminsight/web-1.sock"});
    EXPECT_EQ(o.vm_uuid, "abc");
    EXPECT_EQ(o.vm_metadata,
              (std::map<std::string, std::string>{{"tier", "prod"}, {"owner", "a=b"}}));
    EXPECT_EQ(o.qmp, "/run/q.sock");
    EXPECT_EQ(o.dump_dir, "/srv/dumps");
    EXPECT_EQ(o.dump_max_bytes, 512ULL << 20);
    EXPECT_EQ(o.control, "/run/vminsight/web-1.sock");
    try {
        parse_options({"--qemu-pid", "1", "--vm-meta", "=x"});
        FAIL();
    } catch (const UsageError& e) {
        EXPECT_STREQ(e.what(), "--vm-meta: '=x' is not KEY=VALUE");
    }
}
