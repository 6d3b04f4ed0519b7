#include "vm_monitor.hpp"

#include <time.h>
#include <unistd.h>

#include <cstdio>

namespace vmid {
namespace asio = boost::asio;

namespace {

std::uint64_t monotonic_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL +
           static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace

VmMonitor::VmMonitor(asio::io_context& io, const Options& opts, EventSink& sink)
    : io_(io),
      opts_(opts),
      sink_(sink),
      vm_(locate_vm(opts.qemu_pid)),
      session_(opts.device, vm_.vm_fd.get(), opts.ring_pages),
      guest_(session_, opts.qemu_pid, opts.guest_kernel),
      tracker_(sink, opts.vm_name),
      ring_fd_(io, ::dup(session_.fd())),
      qemu_fd_(io, vm_.pidfd.release()),
      timer_(io),
      scan_soon_(io) {
    // The session holds the VM now; our copy of QEMU's fd is no longer needed.
    vm_.vm_fd.reset();
}

void VmMonitor::start() {
    sink_.emit({{"event", {{"kind", "event"}, {"category", "host"}, {"action", "vm-attached"}}},
                {"vm", {{"name", opts_.vm_name}, {"qemu_pid", opts_.qemu_pid}}}});
    wait_ring();
    wait_qemu();
    wait_timer();
    on_ring();  // records may already be waiting
}

void VmMonitor::wait_ring() {
    ring_fd_.async_wait(asio::posix::stream_descriptor::wait_read,
                        [this](const boost::system::error_code& ec) {
                            if (ec || stopped_) return;
                            on_ring();
                            wait_ring();
                        });
}

void VmMonitor::on_ring() {
    bool unknown = false;
    session_.ring().drain([&](const vmi_record& rec) {
        ++records_;
        if (rec.type != VMI_REC_CR3) return;
        last_cr3_ = rec.cr3.new_cr3;
        if (!tracker_.resolve(rec.cr3.new_cr3)) unknown = true;
    });
    if (unknown) request_scan();
}

void VmMonitor::wait_qemu() {
    qemu_fd_.async_wait(asio::posix::stream_descriptor::wait_read,
                        [this](const boost::system::error_code& ec) {
                            if (ec || stopped_) return;
                            stop("qemu-exited");
                        });
}

void VmMonitor::wait_timer() {
    timer_.expires_after(opts_.rescan_interval);
    timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec || stopped_) return;
        scan(walk_cr3_ ? walk_cr3_ : last_cr3_);
        wait_timer();
    });
}

// An unknown address space means a process we have not listed yet: list again soon, but
// coalesce bursts so a guest forking wildly cannot make us walk its list nonstop.
void VmMonitor::request_scan() {
    if (scan_pending_) return;
    scan_pending_ = true;
    const auto next = last_scan_ + opts_.rescan_min_gap;
    scan_soon_.expires_at(std::max(next, std::chrono::steady_clock::now()));
    scan_soon_.async_wait([this](const boost::system::error_code& ec) {
        scan_pending_ = false;
        if (ec || stopped_) return;
        scan(last_cr3_);
    });
}

void VmMonitor::scan(std::uint64_t cr3) {
    if (!cr3) return;
    last_scan_ = std::chrono::steady_clock::now();
    auto list = guest_.list(cr3);
    if (!list && cr3 != last_cr3_ && last_cr3_) list = guest_.list(cr3 = last_cr3_);
    if (!list) {
        tracker_.scan_failed();
        return;
    }
    walk_cr3_ = cr3;
    tracker_.apply(*list, monotonic_ns());
}

void VmMonitor::stop(const std::string& reason) {
    if (stopped_) return;
    on_ring();
    if (reason != "qemu-exited") scan(walk_cr3_ ? walk_cr3_ : last_cr3_);
    stopped_ = true;
    report_stats();
    tracker_.finish(monotonic_ns(), reason);
    timer_.cancel();
    scan_soon_.cancel();
    ring_fd_.cancel();
    qemu_fd_.cancel();
}

void VmMonitor::report_stats() {
    const vmi_status st = session_.status();
    const TrackerStats& t = tracker_.stats();
    sink_.emit(
        {{"event", {{"kind", "metric"}, {"category", "host"}, {"action", "vm-monitor-stats"}}},
         {"vm", {{"name", opts_.vm_name}}},
         {"vminsight",
          {{"records_read", records_},
           {"records_written", st.records},
           {"records_lost_kernel", st.lost},
           {"records_lost_seen", session_.ring().seq_gaps()},
           {"vm_entries_sampled", st.cr3_samples},
           {"scans", t.scans},
           {"scans_failed", t.failed_scans},
           {"cr3_resolved", t.cr3_resolved},
           {"cr3_unresolved", t.cr3_unresolved}}}});
}

}  // namespace vmid
