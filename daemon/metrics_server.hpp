// Prometheus metrics on a local HTTP endpoint (GET /metrics, text exposition format 0.0.4),
// served on the daemon's io_context from the same counters vminsightctl status shows.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

namespace vmid {

/// The exposition text for a status object (as the control socket's "status" reply).
std::string prometheus_text(const nlohmann::json& status);

class MetricsServer {
  public:
    /// `listen` is "ADDRESS:PORT" (port 0: any free one). Throws std::runtime_error naming it.
    MetricsServer(boost::asio::io_context& io, const std::string& listen,
                  std::function<nlohmann::json()> status);
    [[nodiscard]] std::uint16_t port() const;

    static constexpr std::size_t kMaxConnections = 16;
    static constexpr std::chrono::seconds kDeadline{5};

  private:
    void accept();
    void serve(boost::asio::ip::tcp::socket s);
    boost::asio::ip::tcp::acceptor acceptor_;
    boost::asio::steady_timer retry_;
    std::function<nlohmann::json()> status_;
    std::shared_ptr<std::size_t> open_ = std::make_shared<std::size_t>(0);
};

}  // namespace vmid
