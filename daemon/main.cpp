// vminsightd: monitor the processes and syscalls of one KVM guest from the host.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "event_sink.hpp"
#include "options.hpp"
#include "policy_stage.hpp"
#include "vm_monitor.hpp"

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
    if (!opts.policies.empty()) {
        std::vector<std::filesystem::path> files(opts.policies.begin(), opts.policies.end());
        auto loaded = policy::PolicySet::load(files);
        if (!loaded) {
            for (const auto& d : loaded.errors) std::fprintf(stderr, "%s\n", d.str().c_str());
            return 2;
        }
        rules = std::move(*loaded.set);
        // Trapped: what --syscalls asks for, and what the rules look at.
        for (auto& name : vmid::syscalls_needed(*rules))
            if (std::find(opts.syscalls.begin(), opts.syscalls.end(), name) == opts.syscalls.end())
                opts.syscalls.push_back(std::move(name));
    }
    try {
        boost::asio::io_context io;
        vmid::JsonLineSink out(opts.output);
        std::optional<vmid::PolicyStage> stage;
        if (rules) stage.emplace(out, std::move(*rules));
        vmid::EventSink& sink = stage ? static_cast<vmid::EventSink&>(*stage) : out;
        vmid::VmMonitor monitor(io, opts, sink);
        boost::asio::signal_set signals(io, SIGINT, SIGTERM);
        signals.async_wait([&](const boost::system::error_code& ec, int) {
            if (!ec) monitor.stop("daemon-stopped");
        });
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
