#include "libvirt/domain_watcher.hpp"

#include <boost/asio/post.hpp>

#include "libvirt/event_loop.hpp"

namespace vmid::libvirt {
namespace asio = boost::asio;

// Lives as long as libvirt holds the callback (freed by its free callback); reaches the
// watcher only through the io_context, and only while the watcher still exists.
struct DomainWatcher::Bridge {
    asio::io_context& io;
    std::weak_ptr<DomainWatcher*> watcher;

    void post_domain(virDomainPtr d, std::string why) const {
        std::array<char, VIR_UUID_STRING_BUFLEN> uuid{};
        virDomainGetUUIDString(d, uuid.data());
        const char* n = virDomainGetName(d);
        asio::post(io, [w = watcher, uuid = std::string(uuid.data()),
                        name = std::string(n ? n : ""), why = std::move(why)] {
            if (auto self = w.lock()) (*self)->on_domain_event(uuid, name, why);
        });
    }

    void post_closed(std::string why) const {
        asio::post(io, [w = watcher, why = std::move(why)] {
            if (auto self = w.lock()) (*self)->on_closed(why);
        });
    }
};

namespace {

std::string lifecycle_why(int event, int detail) {
    switch (event) {
        case VIR_DOMAIN_EVENT_DEFINED:
            return "defined";
        case VIR_DOMAIN_EVENT_UNDEFINED:
            return "undefined";
        case VIR_DOMAIN_EVENT_STARTED:
            return detail == VIR_DOMAIN_EVENT_STARTED_RESTORED   ? "started (restored)"
                   : detail == VIR_DOMAIN_EVENT_STARTED_MIGRATED ? "started (migrated in)"
                                                                 : "started";
        case VIR_DOMAIN_EVENT_SUSPENDED:
            return "paused";
        case VIR_DOMAIN_EVENT_RESUMED:
            return "resumed";
        case VIR_DOMAIN_EVENT_STOPPED:
            switch (detail) {
                case VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN:
                    return "stopped (shutdown)";
                case VIR_DOMAIN_EVENT_STOPPED_DESTROYED:
                    return "stopped (destroyed)";
                case VIR_DOMAIN_EVENT_STOPPED_CRASHED:
                    return "stopped (crashed)";
                case VIR_DOMAIN_EVENT_STOPPED_MIGRATED:
                    return "stopped (migrated)";
                case VIR_DOMAIN_EVENT_STOPPED_SAVED:
                    return "stopped (saved)";
                case VIR_DOMAIN_EVENT_STOPPED_FAILED:
                    return "stopped (failed)";
                default:
                    return "stopped";
            }
        case VIR_DOMAIN_EVENT_SHUTDOWN:
            return "shutting down";
        case VIR_DOMAIN_EVENT_CRASHED:
            return "crashed";
        default:
            return "changed";
    }
}

int on_lifecycle(virConnectPtr, virDomainPtr d, int event, int detail, void* opaque) {
    static_cast<const DomainWatcher::Bridge*>(opaque)->post_domain(d, lifecycle_why(event, detail));
    return 0;
}

int on_metadata(virConnectPtr, virDomainPtr d, int type, const char* nsuri, void* opaque) {
    if (type == VIR_DOMAIN_METADATA_ELEMENT && nsuri && std::string_view(nsuri) == kMetadataNs)
        static_cast<const DomainWatcher::Bridge*>(opaque)->post_domain(d, "metadata");
    return 0;
}

void on_close(virConnectPtr, int reason, void* opaque) {
    const auto* b = static_cast<const DomainWatcher::Bridge*>(opaque);
    const char* why = reason == VIR_CONNECT_CLOSE_REASON_EOF ? "libvirtd closed the connection"
                      : reason == VIR_CONNECT_CLOSE_REASON_KEEPALIVE ? "keepalive timed out"
                      : reason == VIR_CONNECT_CLOSE_REASON_ERROR     ? "connection error"
                                                                     : "connection closed";
    b->post_closed(why);
}

void free_bridge(void* opaque) { delete static_cast<DomainWatcher::Bridge*>(opaque); }

}  // namespace

DomainWatcher::DomainWatcher(asio::io_context& io, std::string uri, Handlers handlers,
                             std::chrono::seconds resync)
    : io_(io),
      uri_(std::move(uri)),
      handlers_(std::move(handlers)),
      resync_every_(resync),
      self_(std::make_shared<DomainWatcher*>(this)),
      retry_timer_(io),
      resync_timer_(io) {}

DomainWatcher::~DomainWatcher() {
    self_.reset();  // callbacks already queued find no watcher
    disconnect();
}

void DomainWatcher::start() { connect_now(); }

void DomainWatcher::disconnect() {
    if (!conn_) return;
    for (int id : callbacks_) virConnectDomainEventDeregisterAny(conn_.get(), id);
    callbacks_.clear();
    if (close_bridge_) virConnectUnregisterCloseCallback(conn_.get(), on_close);
    close_bridge_.reset();
    conn_.reset();
    resync_timer_.cancel();
}

void DomainWatcher::connect_now() {
    try {
        start_event_loop();
        Connection c = connect(uri_, /*read_only=*/true);
        // A libvirtd that dies is noticed within seconds (not supported by every driver).
        virConnectSetKeepAlive(c.get(), 5, 3);
        const auto add = [&](int id, virConnectDomainEventGenericCallback cb) {
            auto* bridge = new Bridge{io_, self_};  // owned by libvirt from here: free_bridge
            const int r =
                virConnectDomainEventRegisterAny(conn_.get(), nullptr, id, cb, bridge, free_bridge);
            if (r < 0) {
                delete bridge;
                throw LibvirtError("libvirt " + uri_ + ": registering for events: " + last_error());
            }
            callbacks_.push_back(r);
        };
        conn_ = std::move(c);
        add(VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle));
        add(VIR_DOMAIN_EVENT_ID_METADATA_CHANGE, VIR_DOMAIN_EVENT_CALLBACK(on_metadata));
        // Ours, not libvirt's: some drivers accept the callback and never free it. Freed after
        // it is unregistered, when no call of it can be running.
        auto bridge = std::make_unique<Bridge>(Bridge{io_, self_});
        if (virConnectRegisterCloseCallback(conn_.get(), on_close, bridge.get(), nullptr) == 0)
            close_bridge_ = std::move(bridge);
    } catch (const std::exception& e) {
        disconnect();
        if (handlers_.lost) handlers_.lost(e.what());
        retry_later();
        return;
    }
    backoff_ = std::chrono::seconds(1);
    resync();
}

void DomainWatcher::retry_later() {
    retry_timer_.expires_after(backoff_);
    backoff_ = std::min(backoff_ * 2, kMaxBackoff);
    retry_timer_.async_wait(
        [w = std::weak_ptr<DomainWatcher*>(self_)](boost::system::error_code ec) {
            if (ec) return;
            if (auto self = w.lock()) (*self)->connect_now();
        });
}

void DomainWatcher::resync() {
    if (!conn_) return;
    std::vector<DomainInfo> all;
    try {
        all = list_domains(conn_.get());
    } catch (const std::exception& e) {
        on_closed(e.what());
        return;
    }
    if (handlers_.synced) handlers_.synced(all);
    wait_resync();
}

void DomainWatcher::wait_resync() {
    resync_timer_.expires_after(resync_every_);
    resync_timer_.async_wait(
        [w = std::weak_ptr<DomainWatcher*>(self_)](boost::system::error_code ec) {
            if (ec) return;
            if (auto self = w.lock()) (*self)->resync();
        });
}

void DomainWatcher::on_domain_event(const std::string& uuid, const std::string& name,
                                    const std::string& why) {
    if (!conn_ || !handlers_.changed) return;
    DomainInfo info;
    try {
        Domain d(virDomainLookupByUUIDString(conn_.get(), uuid.c_str()));
        if (!d) throw_last("domain " + name);
        info = describe(d.get());
    } catch (const NoDomain&) {
        // Gone (a transient domain that stopped, or undefined): not running, not monitored.
        info.name = name;
        info.uuid = uuid;
        info.state = "gone";
    } catch (const LibvirtError& e) {
        // libvirt cannot say now (it is restarting): reconnect and resync, detach nothing.
        on_closed(e.what());
        return;
    }
    handlers_.changed(info, why);
}

void DomainWatcher::on_closed(const std::string& why) {
    if (!conn_) return;
    disconnect();
    if (handlers_.lost) handlers_.lost(why);
    retry_later();
}

}  // namespace vmid::libvirt
