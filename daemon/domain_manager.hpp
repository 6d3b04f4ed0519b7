// The daemon's set of VMs under libvirt: which domains exist, which are to be monitored
// (running, with VMInsight's metadata enabled), and an attachment for each of those. Fed by
// the DomainWatcher (a full view at connect and resync, single changes between); attaching is
// a factory, so the decisions are tested against libvirt's test driver without a real VM.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "event_sink.hpp"
#include "libvirt/connection.hpp"
#include "vm_pipeline.hpp"

namespace vmid {

class DomainManager {
  public:
    /// Makes and starts the attachment of a monitored, running domain; throws (naming why) when
    /// it cannot, and is asked again later.
    using AttachFn = std::function<std::unique_ptr<Attachment>(const libvirt::DomainInfo&)>;

    DomainManager(boost::asio::io_context& io, EventSink& out, AttachFn attach);
    ~DomainManager();
    DomainManager(const DomainManager&) = delete;
    DomainManager& operator=(const DomainManager&) = delete;

    /// Every domain libvirt has now; domains not in it are gone.
    void synced(const std::vector<libvirt::DomainInfo>& all);
    /// One domain changed (`why`: "started", "stopped (saved)", "metadata", ...).
    void changed(const libvirt::DomainInfo& info, const std::string& why);
    /// Detach everything (the daemon stops).
    void stop_all(const std::string& reason);
    /// Nothing attached, and nothing detached still at work (a memory dump being written).
    [[nodiscard]] bool idle() const;

    /// The attachment of a domain (by name or uuid), or null.
    Attachment* attached(const std::string& name_or_uuid);
    /// Every live attachment, with its domain's name.
    void for_each(const std::function<void(const libvirt::DomainInfo&, Attachment&)>& f);
    /// Every domain: monitored or not, attach state and error, events, rate, losses.
    [[nodiscard]] nlohmann::json domains();
    /// "monitoring 2 of 5 domains" (systemd STATUS=).
    [[nodiscard]] std::string summary() const;
    /// Called after any change of what is attached.
    void on_change(std::function<void()> f) { on_change_ = std::move(f); }

    static constexpr std::chrono::milliseconds kTick{1000};
    static constexpr std::chrono::seconds kMaxRetry{30};

  private:
    struct Entry {
        libvirt::DomainInfo info;
        std::unique_ptr<Attachment> att;
        libvirt::MonitorSetting attached_with;  // the policy and labels it was attached with
        std::string error;                      // why the last attach failed; empty: none
        unsigned failures = 0;                  // attach failures in a row
        std::string reported_error;             // the last error put in the feed (once per change)
        std::string metadata_error_reported;
        std::chrono::steady_clock::time_point retry_at{};
        std::chrono::seconds backoff{1};
        std::uint64_t last_events = 0;
        double rate = 0;  // events per second, smoothed
        std::string last_change;
    };
    void reconcile(Entry& e, const std::string& why);
    void attach(Entry& e);
    void detach(Entry& e, const std::string& reason);
    void tick();
    void emit(const Entry& e, const std::string& action, nlohmann::json details);
    void changed_now();

    boost::asio::io_context& io_;
    EventSink& out_;
    AttachFn attach_;
    std::map<std::string, Entry> by_uuid_;
    // Detached but not yet idle (a memory dump still being written): kept until they are.
    std::vector<std::unique_ptr<Attachment>> draining_;
    boost::asio::steady_timer timer_;
    std::function<void()> on_change_;
};

}  // namespace vmid
