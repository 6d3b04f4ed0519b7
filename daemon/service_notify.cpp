#include "service_notify.hpp"

#include <systemd/sd-daemon.h>

#include <cstdint>

namespace vmid {

ServiceNotifier::ServiceNotifier(boost::asio::io_context& io) : timer_(io) {
    std::uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) every_ = std::chrono::microseconds(usec / 2);
}

void ServiceNotifier::ping() {
    sd_notify(0, "WATCHDOG=1");
    timer_.expires_after(every_);
    timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) ping();
    });
}

// The first WATCHDOG=1 arms systemd's watchdog, so pings start with READY: start-up is
// bounded by TimeoutStartSec, not by the watchdog.
void ServiceNotifier::ready(const std::string& status) {
    sd_notify(0, ("READY=1\nSTATUS=" + status).c_str());
    if (every_.count() > 0 && !pinging_) {
        pinging_ = true;
        ping();
    }
}

void ServiceNotifier::status(const std::string& status) {
    sd_notify(0, ("STATUS=" + status).c_str());
}

void ServiceNotifier::reloading() { sd_notify(0, "RELOADING=1"); }

void ServiceNotifier::stopping() { sd_notify(0, "STOPPING=1"); }

}  // namespace vmid
