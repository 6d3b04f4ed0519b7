#include "domain_manager.hpp"

#include <algorithm>
#include <set>

#include "event_fields.hpp"

namespace vmid {

using Clock = std::chrono::steady_clock;

DomainManager::DomainManager(boost::asio::io_context& io, EventSink& out, AttachFn attach)
    : io_(io), out_(out), attach_(std::move(attach)), timer_(io) {
    tick();
}

DomainManager::~DomainManager() { timer_.cancel(); }

void DomainManager::emit(const Entry& e, const std::string& action, nlohmann::json details) {
    out_.emit({{"@timestamp", utc_now()},
               {"event", {{"kind", "event"}, {"category", "host"}, {"action", action}}},
               {"vm", {{"name", e.info.name}, {"uuid", e.info.uuid}}},
               {"vminsight", std::move(details)}});
}

void DomainManager::changed_now() {
    if (on_change_) on_change_();
}

void DomainManager::synced(const std::vector<libvirt::DomainInfo>& all) {
    std::set<std::string> present;
    for (const auto& info : all) {
        present.insert(info.uuid);
        Entry& e = by_uuid_[info.uuid];
        e.info = info;
        reconcile(e, "sync");
    }
    for (auto it = by_uuid_.begin(); it != by_uuid_.end();) {
        if (present.contains(it->first)) {
            ++it;
            continue;
        }
        if (it->second.att) detach(it->second, "domain-gone");
        it = by_uuid_.erase(it);
    }
    changed_now();
}

void DomainManager::changed(const libvirt::DomainInfo& info, const std::string& why) {
    Entry& e = by_uuid_[info.uuid];
    e.info = info;
    reconcile(e, why);
    if (info.state == "gone" && !e.att) by_uuid_.erase(info.uuid);
    changed_now();
}

void DomainManager::reconcile(Entry& e, const std::string& why) {
    e.last_change = why;
    const std::string& bad = e.info.metadata_error;
    if (!bad.empty() && bad != e.metadata_error_reported)
        emit(e, "vm-metadata-invalid", {{"error", bad}, {"monitored", false}});
    e.metadata_error_reported = bad;
    if (e.att && e.att->stopped()) {  // QEMU exited under it
        draining_.push_back(std::move(e.att));
        e.att.reset();
    }
    if (!e.info.monitored()) {
        if (e.att) {
            std::string reason = "monitoring-disabled";
            if (!e.info.active)
                reason = "domain " + why;
            else if (!bad.empty())
                reason = "metadata-invalid";
            detach(e, reason);
        }
        e.error.clear();
        e.reported_error.clear();
        e.failures = 0;
        e.backoff = std::chrono::seconds(1);
        e.retry_at = {};
        return;
    }
    // A new policy or labels: the VM is judged by other rules from now on, so it is attached
    // afresh with them (its processes are listed again as seen).
    if (e.att && *e.info.monitor != e.attached_with) detach(e, "monitoring-settings-changed");
    if (!e.att) attach(e);
}

void DomainManager::attach(Entry& e) {
    const auto now = Clock::now();
    if (now < e.retry_at) return;
    try {
        e.att = attach_(e.info);
        e.attached_with = *e.info.monitor;
        e.failures = 0;
        e.error.clear();
        e.reported_error.clear();
        e.backoff = std::chrono::seconds(1);
        e.retry_at = {};
        e.last_events = 0;
        e.rate = 0;
    } catch (const std::exception& ex) {
        e.error = ex.what();
        e.retry_at = now + e.backoff;
        ++e.failures;
        // Said once per distinct reason, so a domain that cannot be attached does not flood
        // the feed; retried with backoff meanwhile. A first failure is often the moment
        // itself (QEMU just started, the last session still winding down): said only if the
        // first retry fails too.
        if (e.failures >= 2 && e.error != e.reported_error) {
            emit(e, "vm-attach-failed", {{"error", e.error}, {"retry_in_s", e.backoff.count()}});
            e.reported_error = e.error;
        }
        e.backoff = std::min(e.backoff * 2, std::chrono::seconds(kMaxRetry));
    }
}

void DomainManager::detach(Entry& e, const std::string& reason) {
    e.att->stop(reason);
    draining_.push_back(std::move(e.att));
    e.att.reset();
}

void DomainManager::tick() {
    bool change = false;
    for (auto& [uuid, e] : by_uuid_) {
        if (e.att && e.att->stopped()) {
            // QEMU went away before libvirt said so: give libvirt a moment to report the stop
            // before attaching again.
            draining_.push_back(std::move(e.att));
            e.att.reset();
            e.retry_at = Clock::now() + std::chrono::seconds(2);
            change = true;
        }
        if (e.att) {
            const std::uint64_t n = e.att->events();
            const double per_s = static_cast<double>(n - e.last_events) * 1000.0 /
                                 static_cast<double>(kTick.count());
            e.rate = e.last_events == 0 && e.rate == 0 ? per_s : 0.7 * e.rate + 0.3 * per_s;
            e.last_events = n;
        } else if (e.info.monitored()) {
            attach(e);
            if (e.att) change = true;
        }
    }
    std::erase_if(draining_, [](const auto& a) { return a->idle(); });
    if (change) changed_now();
    timer_.expires_after(kTick);
    timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) tick();
    });
}

void DomainManager::stop_all(const std::string& reason) {
    for (auto& [uuid, e] : by_uuid_)
        if (e.att) detach(e, reason);
    changed_now();
}

bool DomainManager::idle() const {
    for (const auto& [uuid, e] : by_uuid_)
        if (e.att) return false;
    return std::all_of(draining_.begin(), draining_.end(), [](const auto& a) { return a->idle(); });
}

Attachment* DomainManager::attached(const std::string& name_or_uuid) {
    for (auto& [uuid, e] : by_uuid_)
        if (e.att && (uuid == name_or_uuid || e.info.name == name_or_uuid)) return e.att.get();
    return nullptr;
}

void DomainManager::for_each(
    const std::function<void(const libvirt::DomainInfo&, Attachment&)>& f) {
    for (auto& [uuid, e] : by_uuid_)
        if (e.att) f(e.info, *e.att);
}

nlohmann::json DomainManager::domains() {
    nlohmann::json out = nlohmann::json::array();
    for (auto& [uuid, e] : by_uuid_) {
        const auto& m = e.info.monitor;
        nlohmann::json d = {{"name", e.info.name},           {"uuid", uuid},
                            {"state", e.info.state},         {"persistent", e.info.persistent},
                            {"monitoring", m && m->enabled}, {"policy", m ? m->policy : ""},
                            {"attached", e.att != nullptr},  {"last_change", e.last_change}};
        if (!e.error.empty()) d["attach_error"] = e.error;
        if (!e.info.metadata_error.empty()) d["metadata_error"] = e.info.metadata_error;
        if (e.att) {
            d["events"] = e.att->events();
            d["events_per_s"] = e.rate;
            d["records_lost"] = e.att->records_lost();
        }
        out.push_back(std::move(d));
    }
    return out;
}

std::string DomainManager::summary() const {
    std::size_t monitored = 0, attached = 0, failing = 0;
    for (const auto& [uuid, e] : by_uuid_) {
        if (e.info.monitored()) ++monitored;
        if (e.att) ++attached;
        if (!e.error.empty()) ++failing;
    }
    std::string s = "attached to " + std::to_string(attached) + " of " + std::to_string(monitored) +
                    " monitored running domains (" + std::to_string(by_uuid_.size()) + " defined)";
    if (failing) s += ", " + std::to_string(failing) + " failing to attach";
    return s;
}

}  // namespace vmid
