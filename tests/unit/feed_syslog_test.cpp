// The syslog sink against a real rsyslogd (Debian's, with its gnutls driver) the test starts
// with its own configuration: RFC 5424 over TLS with octet counting; the receiver stopped and
// started again while events flow.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "feed/syslog_sink.hpp"

namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

int free_port() {
    // Bind port 0 to learn a free port; rsyslog then binds it.
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

class Rsyslog {
  public:
    Rsyslog(const fs::path& dir, int port) : dir_(dir), port_(port) {
        fs::create_directories(dir / "work");
        std::ofstream(dir / "rsyslog.conf")
            << "global(workDirectory=\"" << (dir / "work").string() << "\"\n"
            << "  defaultNetstreamDriver=\"gtls\"\n"
            << "  defaultNetstreamDriverCAFile=\"" << (dir / "cert.pem").string() << "\"\n"
            << "  defaultNetstreamDriverCertFile=\"" << (dir / "cert.pem").string() << "\"\n"
            << "  defaultNetstreamDriverKeyFile=\"" << (dir / "key.pem").string() << "\")\n"
            << "module(load=\"imtcp\" streamDriver.name=\"gtls\" streamDriver.mode=\"1\"\n"
            << "  streamDriver.authMode=\"anon\")\n"
            << "input(type=\"imtcp\" port=\"" << port << "\" address=\"127.0.0.1\")\n"
            << "template(name=\"raw\" type=\"string\" string=\"%pri% %app-name% %msgid% "
               "%msg%\\n\")\n"
            << "action(type=\"omfile\" file=\"" << (dir / "got.log").string()
            << "\" template=\"raw\")\n";
        start();
    }
    ~Rsyslog() { stop(); }
    void start() {
        pid_ = ::fork();
        if (pid_ == 0) {
            const std::string conf = (dir_ / "rsyslog.conf").string(),
                              pidf = (dir_ / "rsyslog.pid").string();
            ::execl("/usr/sbin/rsyslogd", "rsyslogd", "-n", "-f", conf.c_str(), "-i", pidf.c_str(),
                    nullptr);
            ::_exit(127);
        }
        // Ready when it accepts connections.
        for (int i = 0; i < 500; ++i) {
            int fd = ::socket(AF_INET, SOCK_STREAM, 0);
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_port = htons(static_cast<std::uint16_t>(port_));
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            const bool up = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
            ::close(fd);
            if (up) return;
            std::this_thread::sleep_for(20ms);
        }
        ADD_FAILURE() << "rsyslogd did not start";
    }
    void stop() {
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            ::waitpid(pid_, nullptr, 0);
            pid_ = -1;
        }
    }
    std::vector<std::string> lines() const {
        std::vector<std::string> out;
        std::ifstream in(dir_ / "got.log");
        for (std::string l; std::getline(in, l);) out.push_back(l);
        return out;
    }

  private:
    fs::path dir_;
    int port_;
    pid_t pid_ = -1;
};

TEST(FeedSyslog, FrameIsRfc5424WithOctetCounting) {
    feed::SyslogSinkOptions o;
    o.hostname = "kvm host";  // a space is not allowed in HOSTNAME
    const std::string f =
        feed::syslog_frame(o, 2, R"({"a":"b c"})", "2026-11-26T10:00:00Z", "policy-match");
    const std::string msg =
        "<130>1 2026-11-26T10:00:00Z kvm_host vminsightd - policy-match - {\"a\":\"b c\"}";
    EXPECT_EQ(f, std::to_string(msg.size()) + " " + msg);
}

TEST(FeedSyslog, TlsToRealRsyslogThroughAnOutage) {
    const fs::path dir = fs::temp_directory_path() / ("vmi-syslog-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    const std::string cmd =
        "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
        "-addext subjectAltName=DNS:localhost -keyout " +
        (dir / "key.pem").string() + " -out " + (dir / "cert.pem").string() + " 2>/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    const int port = free_port();
    Rsyslog rx(dir, port);
    feed::Spool spool({dir / "spool"});
    feed::SyslogSinkOptions o;
    o.host = "localhost";
    o.port = std::to_string(port);
    o.ca_file = (dir / "cert.pem").string();
    o.hostname = "kvm-host";
    feed::WorkerOptions w;
    w.backoff_min = 50ms;
    w.backoff_max = 300ms;
    w.idle_wait = 50ms;
    auto ev = [](int i, const char* kind) {
        nlohmann::json j = {{"event", {{"kind", kind}, {"action", "x"}}}, {"n", i}};
        if (std::string(kind) == "alert") j["rule"] = {{"priority", "critical"}};
        return j.dump();
    };
    feed::SinkWorker worker(spool, "syslog", std::make_unique<feed::SyslogSink>(o), w);
    for (int i = 0; i < 100; ++i) spool.append(ev(i, i % 10 ? "event" : "alert"));
    ASSERT_TRUE(worker.drain(30s)) << worker.status().last_error;
    // The receiver takes a moment to write what it got: wait for the lines, bounded.
    for (int i = 0; i < 300 && rx.lines().size() < 100; ++i) std::this_thread::sleep_for(20ms);
    rx.stop();
    for (int i = 100; i < 200; ++i) spool.append(ev(i, "event"));
    for (int i = 0; i < 500 && worker.status().up; ++i) std::this_thread::sleep_for(10ms);
    EXPECT_FALSE(worker.status().up);
    rx.start();
    ASSERT_TRUE(worker.drain(30s)) << worker.status().last_error;
    for (int i = 0; i < 300 && rx.lines().size() < 200; ++i) std::this_thread::sleep_for(20ms);
    std::set<int> got;
    int alerts = 0;
    for (const auto& l : rx.lines()) {
        // "%pri% %app-name% %msgid% %msg%": local0 (16); critical alerts 130, events 134.
        const auto sp = l.find(' ');
        const int pri = std::stoi(l.substr(0, sp));
        EXPECT_NE(l.find(" vminsightd x "), std::string::npos) << l;
        const auto j = nlohmann::json::parse(l.substr(l.find('{')));
        got.insert(j["n"].get<int>());
        // local0: critical alerts 16*8+2, events informational 16*8+6.
        const bool alert = j["n"].get<int>() < 100 && j["n"].get<int>() % 10 == 0;
        EXPECT_EQ(pri, alert ? 130 : 134) << l;
        alerts += alert;
    }
    EXPECT_EQ(got.size(), 200u);  // every event, across the outage
    EXPECT_GE(alerts, 10);
    fs::remove_all(dir);
}

}  // namespace
