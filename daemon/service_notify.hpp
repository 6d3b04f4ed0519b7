// systemd's notify protocol (Type=notify): READY once the daemon serves, STATUS as what it
// watches changes, WATCHDOG pings from the event loop itself, so a wedged loop is restarted.
// Without NOTIFY_SOCKET (not run by systemd) every call does nothing.
#pragma once

#include <chrono>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

namespace vmid {

class ServiceNotifier {
  public:
    /// Watchdog pings (when systemd asked for them: WatchdogSec=) start with ready().
    explicit ServiceNotifier(boost::asio::io_context& io);
    void ready(const std::string& status);
    void status(const std::string& status);
    void reloading();
    void stopping();
    /// Half of WatchdogSec, or zero when no watchdog is armed.
    [[nodiscard]] std::chrono::microseconds watchdog_interval() const noexcept { return every_; }

  private:
    void ping();

    boost::asio::steady_timer timer_;
    std::chrono::microseconds every_{0};
    bool pinging_ = false;
};

}  // namespace vmid
