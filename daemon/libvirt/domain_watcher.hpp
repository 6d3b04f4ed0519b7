// Follows a libvirt connection: every domain once when connected (and again every resync
// interval, a safety net for a missed event), then each lifecycle and VMInsight metadata
// change as it happens. A lost connection (libvirtd restarted) is reported and reopened with
// backoff; what is attached meanwhile stays attached, since QEMU does not need libvirtd to
// run. Handlers run on the daemon's io_context.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "libvirt/connection.hpp"

namespace vmid::libvirt {

class DomainWatcher {
  public:
    struct Handlers {
        /// Connected (first time, after a reconnect, or a periodic resync): every domain.
        std::function<void(const std::vector<DomainInfo>&)> synced;
        /// One domain changed; `why` is "started", "stopped (saved)", "metadata", ...
        std::function<void(const DomainInfo&, const std::string& why)> changed;
        /// The connection failed or was lost; `why` says how. Reconnecting follows.
        std::function<void(const std::string& why)> lost;
    };

    DomainWatcher(boost::asio::io_context& io, std::string uri, Handlers handlers,
                  std::chrono::seconds resync = std::chrono::seconds(60));
    ~DomainWatcher();
    DomainWatcher(const DomainWatcher&) = delete;
    DomainWatcher& operator=(const DomainWatcher&) = delete;

    /// Connects now (a failure is reported through `lost` and retried).
    void start();
    [[nodiscard]] bool connected() const noexcept { return conn_ != nullptr; }
    [[nodiscard]] const std::string& uri() const noexcept { return uri_; }
    /// The open connection (read-only), or null.
    [[nodiscard]] virConnectPtr connection() const noexcept { return conn_.get(); }

    struct Bridge;  // what libvirt's callbacks hold: posts to the io_context

  private:
    void connect_now();
    void disconnect();
    void retry_later();
    void resync();
    void wait_resync();
    void on_domain_event(const std::string& uuid, const std::string& name, const std::string& why);
    void on_closed(const std::string& why);

    boost::asio::io_context& io_;
    std::string uri_;
    Handlers handlers_;
    std::chrono::seconds resync_every_;
    Connection conn_;
    std::vector<int> callbacks_;
    std::unique_ptr<Bridge> close_bridge_;
    std::shared_ptr<DomainWatcher*> self_;  // callbacks see the watcher while it lives
    boost::asio::steady_timer retry_timer_;
    boost::asio::steady_timer resync_timer_;
    std::chrono::seconds backoff_{1};
    static constexpr std::chrono::seconds kMaxBackoff{30};
};

}  // namespace vmid::libvirt
