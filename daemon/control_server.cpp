#include "control_server.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <stdexcept>

#include <boost/asio/connect.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

namespace vmid {
namespace asio = boost::asio;
using Local = asio::local::stream_protocol;

namespace {

// Only root and the daemon's own user may control it; the socket's mode says the same.
bool peer_allowed(int fd) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
    return cred.uid == 0 || cred.uid == ::geteuid();
}

struct Conn : std::enable_shared_from_this<Conn> {
    Local::socket sock;
    asio::streambuf in{ControlServer::kMaxRequest};
    std::string out;
    const ControlServer::Handler& handler;
    const ControlServer::Follow& follow;
    Conn(Local::socket s, const ControlServer::Handler& h, const ControlServer::Follow& f)
        : sock(std::move(s)), handler(h), follow(f) {}

    void start() {
        if (!peer_allowed(sock.native_handle())) {
            reply({{"ok", false}, {"error", "permission denied"}});
            return;
        }
        asio::async_read_until(
            sock, in, '\n',
            [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
                self->on_line(ec, n);
            });
    }

    void on_line(boost::system::error_code ec, std::size_t n) {
        if (ec) {
            reply({{"ok", false},
                   {"error", ec == asio::error::not_found ? "request longer than 64 KiB"
                                                          : "no request line"}});
            return;
        }
        std::string line(asio::buffers_begin(in.data()),
                         asio::buffers_begin(in.data()) + static_cast<std::ptrdiff_t>(n));
        nlohmann::json req = nlohmann::json::parse(line, nullptr, false);
        if (req.is_discarded() || !req.is_object() || !req.contains("cmd") ||
            !req["cmd"].is_string()) {
            reply({{"ok", false}, {"error", "a request is one JSON object with a \"cmd\""}});
            return;
        }
        if (req["cmd"] == "events" && follow) {
            follow(req, std::move(sock));
            return;
        }
        nlohmann::json r;
        try {
            r = handler(req);
        } catch (const std::exception& e) {
            r = {{"ok", false}, {"error", e.what()}};
        }
        reply(r);
    }

    void reply(const nlohmann::json& r) {
        out = r.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
        asio::async_write(sock, asio::buffer(out),
                          [self = shared_from_this()](boost::system::error_code, std::size_t) {
                              boost::system::error_code ignored;
                              self->sock.shutdown(Local::socket::shutdown_both, ignored);
                          });
    }
};

}  // namespace

ControlServer::ControlServer(asio::io_context& io, std::string path, Handler handler, Follow follow)
    : path_(std::move(path)),
      handler_(std::move(handler)),
      follow_(std::move(follow)),
      acceptor_(io) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const auto st = fs::symlink_status(path_, ec);
    if (!ec && fs::exists(st)) {
        if (!fs::is_socket(st))
            throw std::runtime_error("control socket " + path_ + ": exists and is not a socket");
        fs::remove(path_);  // a stale socket of an earlier run
    }
    if (const auto dir = fs::path(path_).parent_path(); !dir.empty())
        fs::create_directories(dir, ec);
    boost::system::error_code bec;
    // 0600 from the start: no moment when others could connect.
    const mode_t old = ::umask(0177);
    acceptor_.open(Local(), bec);
    if (!bec) acceptor_.bind(Local::endpoint(path_), bec);
    ::umask(old);
    if (!bec) acceptor_.listen(16, bec);
    if (bec) throw std::runtime_error("control socket " + path_ + ": " + bec.message());
    accept();
}

ControlServer::~ControlServer() {
    boost::system::error_code ec;
    acceptor_.close(ec);
    ::unlink(path_.c_str());
}

void ControlServer::accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, Local::socket s) {
        if (ec == asio::error::operation_aborted) return;
        if (!ec) std::make_shared<Conn>(std::move(s), handler_, follow_)->start();
        accept();
    });
}

namespace {

// The client side's first step, for a single reply or a stream: connect, send the request line.
Local::socket send_request(asio::io_context& io, const std::string& path,
                           const nlohmann::json& request) {
    Local::socket s(io);
    boost::system::error_code ec;
    s.connect(Local::endpoint(path), ec);
    if (ec) throw std::runtime_error(path + ": " + ec.message() + " (is vminsightd running?)");
    asio::write(s, asio::buffer(request.dump() + "\n"), ec);
    return s;
}

}  // namespace

nlohmann::json control_request(const std::string& path, const nlohmann::json& request) {
    asio::io_context io;
    Local::socket s = send_request(io, path, request);
    boost::system::error_code ec;
    asio::streambuf in(16 << 20);
    asio::read_until(s, in, '\n', ec);
    if (ec && in.size() == 0) throw std::runtime_error(path + ": no reply: " + ec.message());
    std::string line(asio::buffers_begin(in.data()), asio::buffers_end(in.data()));
    nlohmann::json r = nlohmann::json::parse(line, nullptr, false);
    if (r.is_discarded()) throw std::runtime_error(path + ": reply is not JSON");
    return r;
}

void control_stream(const std::string& path, const nlohmann::json& request,
                    const std::function<bool(const nlohmann::json&)>& line) {
    asio::io_context io;
    Local::socket s = send_request(io, path, request);
    boost::system::error_code ec;
    asio::streambuf in(16 << 20);
    for (;;) {
        const std::size_t n = asio::read_until(s, in, '\n', ec);
        if (ec) return;  // the daemon closed the stream
        std::string text(asio::buffers_begin(in.data()),
                         asio::buffers_begin(in.data()) + static_cast<std::ptrdiff_t>(n));
        in.consume(n);
        nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
        if (j.is_discarded()) throw std::runtime_error(path + ": a line that is not JSON");
        if (!line(j)) return;
    }
}

}  // namespace vmid
