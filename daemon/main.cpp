// vminsightd: monitor the processes and syscalls of one KVM guest from the host.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "control_server.hpp"
#include "event_fields.hpp"
#include "event_sink.hpp"
#include "feed/feed.hpp"
#include "metrics_server.hpp"
#include "options.hpp"
#include "policy_stage.hpp"
#include "qmp_client.hpp"
#include "vm_monitor.hpp"
#include "vm_responder.hpp"

namespace {

// Who the VM is for policy scoping: the names given, QEMU's own -uuid when none is.
policy::VmIdentity vm_identity(const vmid::Options& opts) {
    policy::VmIdentity vm{opts.vm_name, opts.vm_uuid, opts.vm_metadata};
    if (vm.uuid.empty()) {
        const auto argv = vmid::process_cmdline(opts.qemu_pid);
        for (std::size_t i = 0; i + 1 < argv.size(); ++i)
            if (argv[i] == "-uuid") vm.uuid = argv[i + 1];
    }
    return vm;
}

// SIGHUP or `vminsightctl policy reload`: the rule files again. A bad set (or one whose deny
// rules the module cannot enforce) never replaces the good one; either way the feed says
// what happened. The syscalls trapped and denied follow the rules now in force.
std::vector<std::string> reload_policy(vmid::PolicyStage& stage, vmid::EventSink& out,
                                       vmid::VmMonitor& monitor, const vmid::Options& opts,
                                       const std::vector<std::string>& asked,
                                       const std::string& by) {
    const std::vector<std::string> errors = stage.reload(
        opts.policies,
        [&](const policy::PolicySet& next) { monitor.enforce(policy::enforcement(next)); });
    nlohmann::json ev = {
        {"@timestamp", vmid::utc_now()},
        {"event",
         {{"kind", "event"},
          {"category", "configuration"},
          {"action", errors.empty() ? "policy-reloaded" : "policy-reload-failed"}}},
        {"vm", {{"name", opts.vm_name}}}};
    if (!errors.empty()) {
        ev["vminsight"] = {{"errors", errors}, {"kept", "the rules in force before"}, {"by", by}};
        out.emit(ev);
        return errors;
    }
    std::vector<std::string> trace = vmid::with_rule_syscalls(asked, stage.rules());
    const policy::Enforcement enforced = policy::enforcement(stage.rules());
    ev["vminsight"] = {{"rules", stage.rules().rule_count()},
                       {"syscalls_trapped", trace.size()},
                       {"rules_enforced", enforced.rules.size()},
                       {"by", by}};
    out.emit(ev);
    monitor.trace_syscalls(std::move(trace));
    return errors;
}

nlohmann::json feed_status(const feed::Feed* f) {
    if (!f) return nullptr;
    nlohmann::json sinks = nlohmann::json::array();
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

}  // namespace

int main(int argc, char** argv) {
    vmid::Options opts;
    try {
        opts = vmid::parse_options(std::vector<std::string>(argv + 1, argv + argc));
    } catch (const vmid::UsageError& e) {
        std::fprintf(stderr, "vminsightd: %s\n%s", e.what(), vmid::kUsage);
        return 2;
    }
    const std::vector<std::string> asked = opts.syscalls;
    const policy::VmIdentity vm = vm_identity(opts);
    // Rules are checked before anything is attached: every error, with file:line:col.
    std::optional<policy::PolicySet> rules;
    if (!opts.policies.empty()) {
        std::vector<std::filesystem::path> files(opts.policies.begin(), opts.policies.end());
        auto loaded = policy::PolicySet::load(files);
        if (!loaded) {
            for (const auto& d : loaded.errors) std::fprintf(stderr, "%s\n", d.str().c_str());
            return 2;
        }
        rules = loaded.set->for_vm(vm);
        // Trapped: what --syscalls asks for, and what the rules look at.
        opts.syscalls = vmid::with_rule_syscalls(asked, *rules);
    }
    try {
        boost::asio::io_context io;
        // Where events go: the feed (spool and sinks) and/or JSON lines (--output).
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
            void emit(const nlohmann::json& ev) override { f->publish(ev); }
        } to_feed(feed.get());
        vmid::TeeSink tee;
        if (lines) tee.add(*lines);
        if (feed) tee.add(to_feed);
        vmid::VmStampSink out(tee, vm.uuid);
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
        std::optional<vmid::PolicyStage> stage;
        if (rules) stage.emplace(out, *rules, vm);
        vmid::EventSink& sink = stage ? static_cast<vmid::EventSink&>(*stage) : out;
        vmid::VmMonitor monitor(io, opts, sink);
        if (rules) monitor.enforce(policy::enforcement(*rules));  // before the first trap
        vmid::VmResponder responder(io, out, monitor, opts);
        if (stage) stage->set_actions(&responder);

        const auto status = [&]() -> nlohmann::json {
            return {{"ok", true},
                    {"vm", {{"name", vm.name}, {"uuid", vm.uuid}}},
                    {"qemu_pid", opts.qemu_pid},
                    {"rules", stage ? stage->rules().rule_count() : 0},
                    {"alerts", stage ? stage->alerts() : 0},
                    {"alerts_suppressed", stage ? stage->suppressed() : 0},
                    {"paused_by_rule", responder.paused()},
                    {"qmp", responder.qmp_path()},
                    {"feed", feed_status(feed.get())},
                    {"monitor", monitor.status()}};
        };
        std::unique_ptr<vmid::MetricsServer> metrics;
        if (!opts.metrics.empty())
            metrics = std::make_unique<vmid::MetricsServer>(io, opts.metrics, status);
        std::unique_ptr<vmid::ControlServer> control;
        if (!opts.control.empty()) {
            control = std::make_unique<vmid::ControlServer>(
                io, opts.control, [&](const nlohmann::json& req) -> nlohmann::json {
                    const std::string cmd = req["cmd"];
                    if (cmd == "status") return status();
                    if (cmd == "policy-reload") {
                        if (!stage)
                            throw std::runtime_error("no --policy given: nothing to reload");
                        const auto errors =
                            reload_policy(*stage, out, monitor, opts, asked, "control socket");
                        return {{"ok", errors.empty()},
                                {"errors", errors},
                                {"rules", stage->rules().rule_count()}};
                    }
                    if (cmd == "resume") return {{"ok", true}, {"result", responder.resume()}};
                    throw std::runtime_error("unknown command '" + cmd +
                                             "' (status, policy-reload, resume)");
                });
        }

        boost::asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
        std::function<void(const boost::system::error_code&, int)> on_signal =
            [&](const boost::system::error_code& ec, int sig) {
                if (ec) return;
                if (sig != SIGHUP) {
                    monitor.stop("daemon-stopped");
                    return;
                }
                if (stage) reload_policy(*stage, out, monitor, opts, asked, "SIGHUP");
                signals.async_wait(on_signal);
            };
        signals.async_wait(on_signal);
        monitor.start();
        std::fprintf(stderr, "vminsightd: attached to qemu pid %d (%s)\n", opts.qemu_pid,
                     opts.vm_name.c_str());
        while (!monitor.stopped() && io.run_one()) {
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "vminsightd: %s\n", e.what());
        return 1;
    }
}
