// The QMP client against a real QEMU (no accelerator needed: -machine none).
#include "qmp_client.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

namespace {

bool accepts(const std::string& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof addr.sun_path - 1);
    const bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
}

class RealQemu : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = std::filesystem::temp_directory_path() / ("vmi-qmp-" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir_);
        sock_ = (dir_ / "qmp.sock").string();
        const std::string qmp = "unix:" + sock_ + ",server=on,wait=off";
        pid_ = ::fork();
        ASSERT_GE(pid_, 0);
        if (pid_ == 0) {
            ::execlp("qemu-system-x86_64", "qemu-system-x86_64", "-machine", "none", "-nodefaults",
                     "-display", "none", "-S", "-qmp", qmp.c_str(), nullptr);
            ::_exit(127);
        }
        // QEMU binds the socket (the file appears) before it listens: wait until a connection
        // is accepted, bounded.
        bool up = false;
        for (int i = 0; i < 500 && !up; ++i) {
            up = accepts(sock_);
            if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        ASSERT_TRUE(up) << "qemu-system-x86_64 did not start (scripts/deps.sh installs it)";
    }
    void TearDown() override {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        std::filesystem::remove_all(dir_);
    }
    std::filesystem::path dir_;
    std::string sock_;
    pid_t pid_ = -1;
};

TEST_F(RealQemu, StopsAndResumesTheVm) {
    vmid::QmpClient qmp(sock_);
    EXPECT_EQ(qmp.execute("query-status")["status"], "prelaunch");  // started with -S
    qmp.execute("cont");
    EXPECT_EQ(qmp.execute("query-status")["running"], true);
    qmp.execute("stop");
    const auto st = qmp.execute("query-status");
    EXPECT_EQ(st["running"], false);
    EXPECT_EQ(st["status"], "paused");
}

TEST_F(RealQemu, QmpErrorsNameTheSocketAndTheCommand) {
    vmid::QmpClient qmp(sock_);
    try {
        qmp.execute("no-such-command");
        FAIL() << "no error";
    } catch (const std::runtime_error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find(sock_), std::string::npos) << msg;
        EXPECT_NE(msg.find("no-such-command: CommandNotFound"), std::string::npos) << msg;
    }
}

TEST(QmpClient, NoSocketIsAClearError) {
    vmid::QmpClient qmp("/nonexistent/qmp.sock");
    EXPECT_THROW(
        {
            try {
                qmp.execute("stop");
            } catch (const std::runtime_error& e) {
                EXPECT_STREQ(e.what(),
                             "QMP /nonexistent/qmp.sock: connect: No such file or directory");
                throw;
            }
        },
        std::runtime_error);
}

TEST(QmpClient, SocketFromTheQemuCommandLine) {
    using V = std::vector<std::string>;
    EXPECT_EQ(vmid::qmp_socket_from_cmdline(
                  V{"qemu", "-m", "256", "-qmp", "unix:/run/q.sock,server=on,wait=off"}),
              "/run/q.sock");
    EXPECT_EQ(vmid::qmp_socket_from_cmdline(V{"qemu", "-qmp", "unix:path=/a.sock,server"}),
              "/a.sock");
    EXPECT_EQ(vmid::qmp_socket_from_cmdline(V{"qemu", "-qmp", "tcp:127.0.0.1:4444"}), std::nullopt);
    EXPECT_EQ(vmid::qmp_socket_from_cmdline(V{"qemu", "-qmp"}), std::nullopt);
    EXPECT_EQ(vmid::process_cmdline(::getpid()).empty(), false);
}

}  // namespace
