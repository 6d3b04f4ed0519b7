// Monitors one VM: waits on the ring, on QEMU's exit and on a rescan timer, all in one
// Boost.Asio io_context; names processes and emits their events.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <unordered_set>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "event_sink.hpp"
#include "guest_integrity.hpp"
#include "guest_kernel.hpp"
#include "kmod_session.hpp"
#include "msr_watch.hpp"
#include "options.hpp"
#include "process_tracker.hpp"
#include "syscall_assembler.hpp"
#include "syscall_filter.hpp"
#include "vm_locator.hpp"
#include "vmi/process_memory.hpp"

namespace vmid {

class VmMonitor {
  public:
    VmMonitor(boost::asio::io_context& io, const Options& opts, EventSink& sink);
    void start();
    /// Trap and record these syscalls from now on (the session stays attached).
    void trace_syscalls(std::vector<std::string> names);
    /// Enforce what the policy's deny rules ask, with the command line's exec lists, from now
    /// on. Throws std::invalid_argument (nothing changed) when that cannot be enforced.
    void enforce(const policy::Enforcement& rules);
    /// The guest's RAM map and QEMU's pid, for memory dumps.
    [[nodiscard]] std::vector<vmi::Memslot> memslots() const;
    [[nodiscard]] pid_t qemu_pid() const noexcept { return opts_.qemu_pid; }
    /// The CR3 of the last successful process walk (0: none yet).
    [[nodiscard]] std::uint64_t walk_cr3() const noexcept { return walk_cr3_; }
    /// The guest's processes as last listed (vminsightctl ps).
    [[nodiscard]] std::vector<GuestProcess> processes() const { return tracker_.processes(); }
    /// For the control socket: counters and trap state.
    [[nodiscard]] nlohmann::json status();
    /// Drain what is left, report every process gone, detach.
    void stop(const std::string& reason);
    [[nodiscard]] bool stopped() const noexcept { return stopped_; }

  private:
    void wait_ring();
    void on_ring();
    void wait_qemu();
    void wait_timer();
    void request_scan();
    void scan(std::uint64_t cr3);
    void report_stats();
    void report_losses();
    void on_msr(const vmi_record& rec);
    void start_integrity(std::uint64_t cr3);
    void wait_integrity(std::chrono::milliseconds delay);
    void sweep_soon();
    void request_traps();
    void on_call(SyscallCall&& call);
    /// The process that made `call`, as far as the last listing knows.
    [[nodiscard]] const GuestProcess* caller(const SyscallCall& call) const;
    void emit_call(const SyscallCall& call, const GuestProcess* proc);
    void flush_parked();

    boost::asio::io_context& io_;
    Options opts_;
    EventSink& sink_;
    LocatedVm vm_;
    KmodSession session_;
    GuestKernel guest_;
    ProcessTracker tracker_;
    boost::asio::posix::stream_descriptor ring_fd_;
    boost::asio::posix::stream_descriptor qemu_fd_;
    boost::asio::steady_timer timer_;
    boost::asio::steady_timer scan_soon_;
    bool scan_pending_ = false;
    bool stopped_ = false;
    bool started_ = false;
    bool profile_reported_ = false;
    std::uint64_t last_cr3_ = 0;  // newest CR3 from the ring
    std::uint64_t walk_cr3_ = 0;  // CR3 of the last successful walk
    // Address spaces a successful walk could not attribute (the kernel's own page tables,
    // a process mid-exit): no walk for them until the next periodic one. Bounded.
    std::unordered_set<std::uint64_t> unknown_since_scan_, unowned_;
    static constexpr std::size_t kMaxUnowned = 64;
    std::uint64_t records_ = 0;
    std::uint64_t reported_gaps_ = 0;    // ring records lost, as far as already reported
    std::uint64_t records_sampled_ = 0;  // CR3 seen at an entry, not at the write
    std::string cr3_exiting_;            // "requested", "off", or why not
    std::string syscall_traps_;          // "requested", "off", or why not
    std::string msr_watch_;              // "requested", or why not
    MsrWatch msrs_;
    // What the ring last said of each vCPU, for integrity sweeps.
    std::map<std::uint32_t, vmi::VcpuView> vcpus_;
    static constexpr std::size_t kMaxVcpus = 1024;
    GuestIntegrity integrity_;
    std::set<std::string> msr_reported_;  // "LSTAR[0]": MSR changes the ring told of
    std::uint64_t sweeps_triggered_ = 0;  // sweeps brought forward by sweep_soon()
    boost::asio::steady_timer integrity_timer_;
    std::chrono::steady_clock::time_point integrity_retry_{};
    bool integrity_reported_ = false;
    std::uint64_t tamper_findings_ = 0;
    std::chrono::steady_clock::time_point last_scan_{};
    SyscallPlan plan_;
    SyscallAssembler calls_;
    static constexpr std::uint64_t kCallHoldNs = 250'000'000;  // wait this long for a SYSRET
    // Calls from an address space no listing has named yet wait for the next one. Bounded.
    std::deque<SyscallCall> parked_;
    static constexpr std::size_t kMaxParked = 4096;
    std::uint64_t calls_emitted_ = 0, calls_unnamed_ = 0;
};

}  // namespace vmid
