#include "qmp_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "unique_fd.hpp"

namespace vmid {
namespace {

constexpr std::size_t kMaxLine = 1 << 20;  // QMP replies here are small; a bound all the same

class Conn {
  public:
    Conn(const std::string& path, std::chrono::milliseconds timeout)
        : path_(path), timeout_(timeout) {
        fd_ = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!fd_.valid()) fail("socket", errno);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        if (path.size() >= sizeof(addr.sun_path)) fail("path too long", 0);
        std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
        if (::connect(fd_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0)
            fail("connect", errno);
    }

    // The next reply or error; asynchronous events in between are skipped.
    nlohmann::json reply() {
        for (;;) {
            nlohmann::json msg = nlohmann::json::parse(line(), nullptr, false);
            if (msg.is_discarded() || !msg.is_object()) fail("reply is not a JSON object", 0);
            if (msg.contains("event")) continue;
            return msg;
        }
    }

    void send(const nlohmann::json& cmd) {
        const std::string text = cmd.dump() + "\n";
        std::size_t done = 0;
        while (done < text.size()) {
            const ssize_t n =
                ::send(fd_.get(), text.data() + done, text.size() - done, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) fail("send", errno);
            done += static_cast<std::size_t>(n);
        }
    }

    [[noreturn]] void fail(const std::string& what, int err) const {
        std::string msg = "QMP " + path_ + ": " + what;
        if (err) msg += ": " + std::string(std::strerror(err));
        throw std::runtime_error(msg);
    }

  private:
    std::string line() {
        for (;;) {
            if (const auto nl = buf_.find('\n'); nl != std::string::npos) {
                std::string l = buf_.substr(0, nl);
                buf_.erase(0, nl + 1);
                return l;
            }
            if (buf_.size() > kMaxLine) fail("reply too long", 0);
            pollfd p{fd_.get(), POLLIN, 0};
            const int r = ::poll(&p, 1, static_cast<int>(timeout_.count()));
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) fail("poll", errno);
            if (r == 0) fail("no reply within " + std::to_string(timeout_.count()) + " ms", 0);
            char chunk[4096];
            const ssize_t n = ::recv(fd_.get(), chunk, sizeof(chunk), 0);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) fail("recv", errno);
            if (n == 0) fail("closed by QEMU", 0);
            buf_.append(chunk, static_cast<std::size_t>(n));
        }
    }

    std::string path_;
    std::chrono::milliseconds timeout_;
    UniqueFd fd_;
    std::string buf_;
};

}  // namespace

std::optional<std::string> qmp_socket_from_cmdline(const std::vector<std::string>& argv) {
    for (std::size_t i = 0; i + 1 < argv.size(); ++i) {
        if (argv[i] != "-qmp" && argv[i] != "--qmp") continue;
        std::string spec = argv[i + 1];
        if (!spec.starts_with("unix:")) continue;
        spec.erase(0, 5);
        if (spec.starts_with("path=")) spec.erase(0, 5);
        spec = spec.substr(0, spec.find(','));
        if (!spec.empty()) return spec;
    }
    return std::nullopt;
}

std::vector<std::string> process_cmdline(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
    const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::string> out;
    for (std::size_t at = 0; at < all.size();) {
        const std::size_t nul = all.find('\0', at);
        out.push_back(all.substr(at, nul == std::string::npos ? std::string::npos : nul - at));
        if (nul == std::string::npos) break;
        at = nul + 1;
    }
    return out;
}

QmpClient::QmpClient(std::string socket_path, std::chrono::milliseconds timeout)
    : path_(std::move(socket_path)), timeout_(timeout) {}

nlohmann::json QmpClient::execute(const std::string& command) const {
    Conn c(path_, timeout_);
    const nlohmann::json greeting = c.reply();
    if (!greeting.contains("QMP")) c.fail("no QMP greeting", 0);
    for (const std::string& cmd : {std::string("qmp_capabilities"), command}) {
        c.send({{"execute", cmd}});
        const nlohmann::json r = c.reply();
        if (auto err = r.find("error"); err != r.end())
            c.fail(cmd + ": " + err->value("class", "Error") + ": " + err->value("desc", ""), 0);
        if (!r.contains("return")) c.fail(cmd + ": no return", 0);
        if (cmd == command) return r["return"];
    }
    return nullptr;
}

}  // namespace vmid
