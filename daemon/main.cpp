// vminsightd: monitors the processes and syscalls of KVM guests from the host: one QEMU
// process (--qemu-pid), or every domain of a libvirt connection that enables it (--libvirt).
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "control_server.hpp"
#include "domain_manager.hpp"
#include "event_fields.hpp"
#include "event_followers.hpp"
#include "event_sink.hpp"
#include "feed/feed.hpp"
#include "libvirt/domain_watcher.hpp"
#include "libvirt/run_control.hpp"
#include "metrics_server.hpp"
#include "options.hpp"
#include "qmp_client.hpp"
#include "service_notify.hpp"
#include "vm_locator.hpp"
#include "vm_pipeline.hpp"

namespace {

using nlohmann::json;

// Who a --qemu-pid VM is for policy scoping: the names given, QEMU's own -uuid when none is.
policy::VmIdentity vm_identity(const vmid::Options& opts) {
    policy::VmIdentity vm{opts.vm_name, opts.vm_uuid, opts.vm_metadata, {}};
    if (vm.uuid.empty()) {
        const auto argv = vmid::process_cmdline(opts.qemu_pid);
        for (std::size_t i = 0; i + 1 < argv.size(); ++i)
            if (argv[i] == "-uuid") vm.uuid = argv[i + 1];
    }
    return vm;
}

json daemon_event(const std::string& category, const std::string& action, json details) {
    return {{"@timestamp", vmid::utc_now()},
            {"event", {{"kind", "event"}, {"category", category}, {"action", action}}},
            {"vminsight", std::move(details)}};
}

json feed_status(const feed::Feed* f) {
    if (!f) return nullptr;
    json sinks = json::array();
    for (const auto& s : f->sinks())
        sinks.push_back({{"name", s.name},
                         {"type", s.kind},
                         {"up", s.up},
                         {"delivered", s.delivered},
                         {"rejected", s.rejected},
                         {"failures", s.failures},
                         {"backlog", s.backlog},
                         {"last_error", s.last_error}});
    const auto sp = f->spool_stats();
    return {{"spool_id", f->spool_id()},
            {"spool_bytes", sp.bytes},
            {"spool_purged_records", sp.purged_records},
            {"sinks", sinks}};
}

// Rule files as they are now (a --policy-dir may have gained or lost files).
std::variant<policy::PolicySet, std::vector<std::string>> load_rules(const vmid::Options& opts) {
    const auto names = vmid::policy_files(opts);
    auto loaded =
        policy::PolicySet::load(std::vector<std::filesystem::path>(names.begin(), names.end()));
    if (loaded) return std::move(*loaded.set);
    std::vector<std::string> errors;
    for (const auto& d : loaded.errors) errors.push_back(d.str());
    return errors;
}

}  // namespace

int main(int argc, char** argv) {
    vmid::Options opts;
    try {
        opts = vmid::parse_options(std::vector<std::string>(argv + 1, argv + argc));
    } catch (const vmid::UsageError& e) {
        std::fprintf(stderr, "vminsightd: %s\n%s", e.what(), vmid::kUsage);
        return 2;
    }
    // Rules are checked before anything is attached: every error, with file:line:col.
    std::optional<policy::PolicySet> rules;
    if (!opts.policies.empty() || !opts.policy_dirs.empty()) {
        auto loaded = load_rules(opts);
        if (auto* errors = std::get_if<std::vector<std::string>>(&loaded)) {
            for (const auto& e : *errors) std::fprintf(stderr, "%s\n", e.c_str());
            return 2;
        }
        rules = std::move(std::get<policy::PolicySet>(loaded));
    }
    const bool follow_libvirt = !opts.libvirt.empty();
    try {
        boost::asio::io_context io;
        vmid::ServiceNotifier notify(io);
        // Where events go: the feed (spool and sinks), JSON lines (--output), and followers.
        std::unique_ptr<feed::Feed> feed;
        if (!opts.feed_config.empty()) {
            char host[256] = {};
            ::gethostname(host, sizeof host - 1);
            feed = std::make_unique<feed::Feed>(feed::load_feed_config(opts.feed_config),
                                                feed::EncodeContext{host, "0.1.0"});
        }
        std::unique_ptr<vmid::JsonLineSink> lines;
        if (!feed || opts.output_given) lines = std::make_unique<vmid::JsonLineSink>(opts.output);
        struct FeedPublisher final : vmid::EventSink {
            feed::Feed* f;
            explicit FeedPublisher(feed::Feed* x) : f(x) {}
            void emit(const json& ev) override { f->publish(ev); }
        } to_feed(feed.get());
        vmid::EventFollowers followers;
        vmid::TeeSink out;
        if (lines) out.add(*lines);
        if (feed) out.add(to_feed);
        out.add(followers);
        // The spool is made durable often: a crash loses at most this much.
        boost::asio::steady_timer sync_timer(io);
        std::function<void()> sync_soon = [&] {
            sync_timer.expires_after(std::chrono::milliseconds(100));
            sync_timer.async_wait([&](const boost::system::error_code& ec) {
                if (ec || !feed) return;
                feed->sync();
                sync_soon();
            });
        };
        if (feed) sync_soon();

        // One VM, or libvirt's monitored domains.
        std::unique_ptr<vmid::VmPipeline> single;
        std::unique_ptr<vmid::DomainManager> domains;
        std::unique_ptr<vmid::libvirt::DomainWatcher> watcher;
        std::string libvirt_state = "connecting";
        if (!follow_libvirt) {
            single = std::make_unique<vmid::VmPipeline>(io, opts, out, rules ? &*rules : nullptr,
                                                        vm_identity(opts));
        } else {
            auto attach =
                [&](const vmid::libvirt::DomainInfo& d) -> std::unique_ptr<vmid::Attachment> {
                vmid::Options o = opts;
                o.qemu_pid = vmid::find_domain_qemu(d.name, d.uuid);
                o.attach_busy_wait = std::chrono::milliseconds(0);  // retried by the manager
                o.vm_name = d.name;
                o.vm_uuid = d.uuid;
                o.vm_metadata = d.monitor->labels;
                policy::VmIdentity vm{d.name, d.uuid, d.monitor->labels, d.monitor->policy};
                if (!vm.policy.empty() && rules && !rules->defines_policy(vm.policy))
                    out.emit(daemon_event("configuration", "policy-unknown",
                                          {{"policy", vm.policy},
                                           {"domain", d.name},
                                           {"applied", "only the rules outside any policy"}}));
                auto p = std::make_unique<vmid::VmPipeline>(
                    io, o, out, rules ? &*rules : nullptr, vm,
                    vmid::libvirt::domain_run_control(opts.libvirt, d.uuid));
                p->start();
                return p;
            };
            domains = std::make_unique<vmid::DomainManager>(io, out, attach);
            domains->on_change([&] { notify.status(domains->summary()); });
            watcher = std::make_unique<vmid::libvirt::DomainWatcher>(
                io, opts.libvirt,
                vmid::libvirt::DomainWatcher::Handlers{
                    [&](const std::vector<vmid::libvirt::DomainInfo>& all) {
                        if (libvirt_state != "connected")
                            out.emit(
                                daemon_event("host", "libvirt-connected",
                                             {{"uri", opts.libvirt}, {"domains", all.size()}}));
                        libvirt_state = "connected";
                        domains->synced(all);
                    },
                    [&](const vmid::libvirt::DomainInfo& d, const std::string& why) {
                        domains->changed(d, why);
                    },
                    [&](const std::string& why) {
                        // Said once per outage; what is attached stays attached.
                        if (libvirt_state != "lost")
                            out.emit(daemon_event("host", "libvirt-disconnected",
                                                  {{"uri", opts.libvirt}, {"error", why}}));
                        libvirt_state = "lost";
                        notify.status("libvirt " + opts.libvirt + " unreachable (" + why +
                                      "), retrying; " + domains->summary());
                    }});
        }

        const auto each_vm = [&](const std::function<void(vmid::Attachment&)>& f) {
            if (single) f(*single);
            if (domains)
                domains->for_each(
                    [&](const vmid::libvirt::DomainInfo&, vmid::Attachment& a) { f(a); });
        };
        const auto vm_named = [&](const json& req) -> vmid::Attachment& {
            const std::string name = req.value("domain", "");
            if (single) return *single;
            if (name.empty()) throw std::runtime_error("which domain? (name or uuid)");
            vmid::Attachment* a = domains->attached(name);
            if (!a) throw std::runtime_error("domain '" + name + "' is not attached");
            return *a;
        };
        // SIGHUP or `vminsightctl policy reload`: the rule files again. A bad set (or one a
        // VM's module cannot enforce) never replaces the good one; the feed says which.
        const auto reload = [&](const std::string& by) -> json {
            if (!rules)
                throw std::runtime_error("no --policy or --policy-dir given: nothing to reload");
            notify.reloading();
            // READY again however the reload ends, or systemd waits on "reloading".
            struct ReadyAgain {
                std::function<void()> f;
                ~ReadyAgain() { f(); }
            } ready_again{[&] { notify.ready(domains ? domains->summary() : "reloaded"); }};
            std::variant<policy::PolicySet, std::vector<std::string>> loaded;
            try {
                loaded = load_rules(opts);
            } catch (const std::exception& e) {  // e.g. a --policy-dir that went away
                loaded = std::vector<std::string>{e.what()};
            }
            std::vector<std::string> errors;
            if (auto* bad = std::get_if<std::vector<std::string>>(&loaded)) {
                errors = *bad;
                out.emit(daemon_event(
                    "configuration", "policy-reload-failed",
                    {{"errors", errors}, {"kept", "the rules in force before"}, {"by", by}}));
            } else {
                rules = std::move(std::get<policy::PolicySet>(loaded));
                each_vm([&](vmid::Attachment& a) {
                    for (auto& e : a.apply_rules(*rules, by)) errors.push_back(std::move(e));
                });
            }
            return {{"ok", errors.empty()}, {"errors", errors}, {"rules", rules->rule_count()}};
        };
        const auto status = [&]() -> json {
            if (single) {
                json s = single->status();
                s["ok"] = true;
                s["feed"] = feed_status(feed.get());
                return s;
            }
            json vms = json::array();
            domains->for_each([&](const vmid::libvirt::DomainInfo&, vmid::Attachment& a) {
                vms.push_back(a.status());
            });
            return {{"ok", true},
                    {"libvirt", {{"uri", opts.libvirt}, {"state", libvirt_state}}},
                    {"summary", domains->summary()},
                    {"rules", rules ? rules->rule_count() : 0},
                    {"followers", followers.size()},
                    {"feed", feed_status(feed.get())},
                    {"vms", vms}};
        };
        std::unique_ptr<vmid::MetricsServer> metrics;
        if (!opts.metrics.empty())
            metrics = std::make_unique<vmid::MetricsServer>(io, opts.metrics, status);
        std::unique_ptr<vmid::ControlServer> control;
        if (!opts.control.empty()) {
            control = std::make_unique<vmid::ControlServer>(
                io, opts.control,
                [&](const json& req) -> json {
                    const std::string cmd = req["cmd"];
                    if (cmd == "status") return status();
                    if (cmd == "policy-reload") return reload("control socket");
                    if (cmd == "resume") return {{"ok", true}, {"result", vm_named(req).resume()}};
                    if (cmd == "ps")
                        return {{"ok", true}, {"processes", vm_named(req).processes()}};
                    if (cmd == "domains") {
                        if (!domains) throw std::runtime_error("not following libvirt (--libvirt)");
                        return {{"ok", true}, {"domains", domains->domains()}};
                    }
                    if (cmd == "stats") {
                        json vms = json::array();
                        each_vm([&](vmid::Attachment& a) { vms.push_back(a.status()); });
                        return {{"ok", true}, {"feed", feed_status(feed.get())}, {"vms", vms}};
                    }
                    throw std::runtime_error("unknown command '" + cmd +
                                             "' (status, domains, ps, stats, events, "
                                             "policy-reload, resume)");
                },
                [&](const json& req, boost::asio::local::stream_protocol::socket sock) {
                    followers.add(req, std::move(sock));
                });
        }

        bool stopping = false;
        boost::asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
        std::function<void(const boost::system::error_code&, int)> on_signal =
            [&](const boost::system::error_code& ec, int sig) {
                if (ec) return;
                if (sig != SIGHUP) {
                    notify.stopping();
                    stopping = true;
                    if (single) single->stop("daemon-stopped");
                    if (domains) domains->stop_all("daemon-stopped");
                    return;
                }
                try {
                    reload("SIGHUP");
                } catch (const std::exception& e) {
                    std::fprintf(stderr, "vminsightd: SIGHUP: %s\n", e.what());
                }
                signals.async_wait(on_signal);
            };
        signals.async_wait(on_signal);
        if (single) {
            single->start();
            std::fprintf(stderr, "vminsightd: attached to qemu pid %d (%s)\n", opts.qemu_pid,
                         opts.vm_name.c_str());
            notify.ready("attached to " + opts.vm_name);
        } else {
            watcher->start();
            std::fprintf(stderr, "vminsightd: following libvirt %s: %s\n", opts.libvirt.c_str(),
                         domains->summary().c_str());
            notify.ready(domains->summary());
        }
        while (!stopping && !(single && single->stopped()) && io.run_one()) {
        }
        // A detached VM may still have a memory dump being written (and the VM stopped for
        // it): let it end, with its event and the VM continued, within systemd's stop timeout.
        auto work = boost::asio::make_work_guard(io);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(80);
        while (((single && !single->idle()) || (domains && !domains->idle())) &&
               std::chrono::steady_clock::now() < deadline) {
            if (io.stopped()) io.restart();
            io.run_one_for(std::chrono::milliseconds(100));
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "vminsightd: %s\n", e.what());
        return 1;
    }
}
