// vminsightd v0: monitor the processes of one KVM guest from the host.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "event_sink.hpp"
#include "options.hpp"
#include "vm_monitor.hpp"

int main(int argc, char** argv) {
    vmid::Options opts;
    try {
        opts = vmid::parse_options(std::vector<std::string>(argv + 1, argv + argc));
    } catch (const vmid::UsageError& e) {
        std::fprintf(stderr, "vminsightd: %s\n%s", e.what(), vmid::kUsage);
        return 2;
    }
    try {
        boost::asio::io_context io;
        vmid::JsonLineSink sink(opts.output);
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
