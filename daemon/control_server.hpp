// The daemon's control socket, for vminsightctl: a Unix stream socket (0600, and only root
// or the daemon's own user may talk to it: SO_PEERCRED), one JSON request line in, one JSON
// reply line out. Requests are handled on the daemon's io_context, between events.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <nlohmann/json.hpp>

namespace vmid {

class ControlServer {
  public:
    /// {"cmd": ..., ...} → reply object. A thrown std::exception becomes {"ok": false,
    /// "error": what}.
    using Handler = std::function<nlohmann::json(const nlohmann::json& request)>;
    /// Takes over the connection of a {"cmd": "events"} request (a live stream, not one reply).
    using Follow = std::function<void(const nlohmann::json& request,
                                      boost::asio::local::stream_protocol::socket sock)>;

    /// Binds `path` (a stale socket there is replaced; anything else there is an error) and
    /// serves. Throws std::runtime_error naming the path.
    ControlServer(boost::asio::io_context& io, std::string path, Handler handler,
                  Follow follow = nullptr);
    ~ControlServer();
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    static constexpr std::size_t kMaxRequest = 64 * 1024;

  private:
    void accept();

    std::string path_;
    Handler handler_;
    Follow follow_;
    boost::asio::local::stream_protocol::acceptor acceptor_;
};

/// The client side (vminsightctl): sends `request`, returns the reply. Throws
/// std::runtime_error naming the socket.
nlohmann::json control_request(const std::string& path, const nlohmann::json& request);
/// Sends `request` and calls `line` with each JSON line the daemon sends until it closes the
/// connection or `line` returns false (vminsightctl events --follow). Throws like the above.
void control_stream(const std::string& path, const nlohmann::json& request,
                    const std::function<bool(const nlohmann::json&)>& line);

}  // namespace vmid
