// The control socket: a real Unix socket served by a real io_context on its own thread.
#include "control_server.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

#include <gtest/gtest.h>
#include <boost/asio/executor_work_guard.hpp>

namespace {

class Control : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = std::filesystem::temp_directory_path() / ("vmi-ctl-" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir_);
        path_ = (dir_ / "run" / "control.sock").string();
    }
    void serve() {
        server_ = std::make_unique<vmid::ControlServer>(io_, path_, [](const nlohmann::json& r) {
            if (r["cmd"] == "echo") return nlohmann::json{{"ok", true}, {"got", r}};
            throw std::runtime_error("unknown command '" + r["cmd"].get<std::string>() + "'");
        });
        thread_ = std::thread([this] { io_.run(); });
    }
    void TearDown() override {
        io_.stop();
        if (thread_.joinable()) thread_.join();
        server_.reset();
        std::filesystem::remove_all(dir_);
    }
    // Sends raw bytes, returns the reply line.
    std::string raw(const std::string& bytes) {
        int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path_.c_str());
        EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        EXPECT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
        ::shutdown(fd, SHUT_WR);
        std::string out;
        char buf[4096];
        for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
            out.append(buf, static_cast<std::size_t>(n));
        ::close(fd);
        return out;
    }
    boost::asio::io_context io_;
    std::unique_ptr<vmid::ControlServer> server_;
    std::thread thread_;
    std::filesystem::path dir_;
    std::string path_;
};

TEST_F(Control, RequestAndReplyOverARealSocket) {
    serve();
    const auto r = vmid::control_request(path_, {{"cmd", "echo"}, {"x", 1}});
    EXPECT_EQ(r["ok"], true);
    EXPECT_EQ(r["got"]["x"], 1);
    // Handler errors become a reply, the server carries on.
    const auto bad = vmid::control_request(path_, {{"cmd", "nope"}});
    EXPECT_EQ(bad["ok"], false);
    EXPECT_EQ(bad["error"], "unknown command 'nope'");
    EXPECT_EQ(vmid::control_request(path_, {{"cmd", "echo"}})["ok"], true);
}

TEST_F(Control, SocketIsOwnerOnly) {
    serve();
    struct stat st {};
    ASSERT_EQ(::stat(path_.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(Control, MalformedRequestsGetAClearError) {
    serve();
    EXPECT_NE(raw("not json\n").find("one JSON object with a \\\"cmd\\\""), std::string::npos);
    EXPECT_NE(raw("{\"cmd\": 5}\n").find("\"ok\":false"), std::string::npos);
    EXPECT_NE(raw(std::string(70 * 1024, 'x')).find("longer than 64 KiB"), std::string::npos);
    EXPECT_NE(raw("").find("no request line"), std::string::npos);
}

TEST_F(Control, StaleSocketIsReplacedAnythingElseIsRefused) {
    std::filesystem::create_directories(std::filesystem::path(path_).parent_path());
    {  // a socket left by a daemon that died
        int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path_.c_str());
        ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        ::close(fd);
    }
    serve();
    EXPECT_EQ(vmid::control_request(path_, {{"cmd", "echo"}})["ok"], true);
    const std::string file = (dir_ / "plain").string();
    std::ofstream(file) << "keep me";
    try {
        vmid::ControlServer other(io_, file,
                                  [](const nlohmann::json&) { return nlohmann::json{}; });
        FAIL() << "bound over a regular file";
    } catch (const std::runtime_error& e) {
        EXPECT_EQ(std::string(e.what()), "control socket " + file + ": exists and is not a socket");
    }
    EXPECT_TRUE(std::filesystem::is_regular_file(file));
}

TEST(ControlClient, NoDaemonIsAClearError) {
    try {
        vmid::control_request("/nonexistent/control.sock", {{"cmd", "status"}});
        FAIL();
    } catch (const std::runtime_error& e) {
        EXPECT_NE(
            std::string(e.what()).find("/nonexistent/control.sock: No such file or directory"),
            std::string::npos)
            << e.what();
    }
}

}  // namespace
