// vminsightd: monitor the processes and syscalls of one KVM guest from the host.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "event_fields.hpp"
#include "event_sink.hpp"
#include "options.hpp"
#include "policy_stage.hpp"
#include "vm_monitor.hpp"

namespace {

// SIGHUP: the rule files again. A bad set never replaces the good one; either way the feed
// says what happened. The syscalls trapped follow the rules now in force.
void reload_policy(vmid::PolicyStage& stage, vmid::EventSink& out, vmid::VmMonitor& monitor,
                   const vmid::Options& opts, const std::vector<std::string>& asked) {
    const std::vector<std::string> errors = stage.reload(opts.policies);
    nlohmann::json ev = {
        {"@timestamp", vmid::utc_now()},
        {"event",
         {{"kind", "event"},
          {"category", "configuration"},
          {"action", errors.empty() ? "policy-reloaded" : "policy-reload-failed"}}},
        {"vm", {{"name", opts.vm_name}}}};
    if (!errors.empty()) {
        ev["vminsight"] = {{"errors", errors}, {"kept", "the rules in force before"}};
        out.emit(ev);
        return;
    }
    std::vector<std::string> trace = vmid::with_rule_syscalls(asked, stage.rules());
    ev["vminsight"] = {{"rules", stage.rules().rule_count()}, {"syscalls_trapped", trace.size()}};
    out.emit(ev);
    monitor.trace_syscalls(std::move(trace));
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
    // Rules are checked before anything is attached: every error, with file:line:col.
    std::optional<policy::PolicySet> rules;
    if (!opts.policies.empty()) {
        std::vector<std::filesystem::path> files(opts.policies.begin(), opts.policies.end());
        auto loaded = policy::PolicySet::load(files);
        if (!loaded) {
            for (const auto& d : loaded.errors) std::fprintf(stderr, "%s\n", d.str().c_str());
            return 2;
        }
        rules = std::move(*loaded.set);
        // Trapped: what --syscalls asks for, and what the rules look at.
        opts.syscalls = vmid::with_rule_syscalls(asked, *rules);
    }
    try {
        boost::asio::io_context io;
        vmid::JsonLineSink out(opts.output);
        std::optional<vmid::PolicyStage> stage;
        if (rules) stage.emplace(out, std::move(*rules));
        vmid::EventSink& sink = stage ? static_cast<vmid::EventSink&>(*stage) : out;
        vmid::VmMonitor monitor(io, opts, sink);
        boost::asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
        std::function<void(const boost::system::error_code&, int)> on_signal =
            [&](const boost::system::error_code& ec, int sig) {
                if (ec) return;
                if (sig != SIGHUP) {
                    monitor.stop("daemon-stopped");
                    return;
                }
                if (stage) reload_policy(*stage, out, monitor, opts, asked);
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
