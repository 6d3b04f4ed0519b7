#include "vm_monitor.hpp"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <variant>

#include "event_fields.hpp"
#include "kvm_layout.hpp"
#include "syscall_event.hpp"
#include "syscall_filter.hpp"
#include "vmi/page_walker.hpp"
#include "vmi/syscall_abi.hpp"

namespace vmid {
namespace asio = boost::asio;

VmMonitor::VmMonitor(asio::io_context& io, const Options& opts, EventSink& sink)
    : io_(io),
      opts_(opts),
      sink_(sink),
      vm_(locate_vm(opts.qemu_pid)),
      session_(opts.device, vm_.vm_fd.get(), opts.ring_pages, opts.attach_busy_wait),
      guest_(session_, opts.qemu_pid, opts.guest_kernel, opts.profile),
      tracker_(sink, opts.vm_name),
      ring_fd_(io, ::dup(session_.fd())),
      qemu_fd_(io, vm_.pidfd.release()),
      timer_(io),
      scan_soon_(io),
      integrity_timer_(io),
      calls_([this](SyscallCall&& c) { on_call(std::move(c)); }, kCallHoldNs, 8192) {
    // The session holds the VM now; our copy of QEMU's fd is no longer needed.
    vm_.vm_fd.reset();
    plan_.trace = opts.syscalls;
    plan_.deny_exec = opts.deny_exec;
    plan_.allow_exec = opts.allow_exec;
    plan_.deny_errno = opts.deny_errno;
    build_filter(plan_);  // names checked before anything is attached
}

// Exact CR3 records and syscall traps need KVM's private layout from BTF; without it the
// module samples CR3 at natural entries and traps no syscall.
void VmMonitor::request_traps() {
    const bool syscalls = plan_traps_anything(plan_);
    cr3_exiting_ = opts_.cr3_exiting ? "requested" : "off";
    syscall_traps_ = syscalls ? "requested" : "off";
    msr_watch_ = "requested";  // always: a few loads per VM entry
    auto layout = resolve_kvm_layout();
    if (auto* why = std::get_if<std::string>(&layout)) {
        if (opts_.cr3_exiting) cr3_exiting_ = *why;
        if (syscalls) syscall_traps_ = *why;
        msr_watch_ = *why;
        return;
    }
    if (syscalls) session_.set_filter(build_filter(plan_), plan_.exec_paths());
    session_.set_traps(
        (opts_.cr3_exiting ? VMI_TRAP_CR3 : 0U) | (syscalls ? VMI_TRAP_SYSCALL : 0U) | VMI_TRAP_MSR,
        std::get<vmi_kvm_layout>(layout));
}

void VmMonitor::enforce(const policy::Enforcement& rules) {
    SyscallPlan next = plan_;
    apply_enforcement(next, opts_.deny_exec, opts_.allow_exec, rules);
    build_filter(next);  // throws before anything changes
    plan_ = std::move(next);
    if (started_ && !stopped_) request_traps();
}

std::vector<vmi::Memslot> VmMonitor::memslots() const {
    std::vector<vmi::Memslot> out;
    for (const auto& s : session_.memslots()) out.push_back({s.gpa, s.size, s.hva});
    return out;
}

void VmMonitor::trace_syscalls(std::vector<std::string> names) {
    if (stopped_) return;
    plan_.trace = std::move(names);
    request_traps();
}

void VmMonitor::start() {
    started_ = true;
    request_traps();
    sink_.emit({{"event", {{"kind", "event"}, {"category", "host"}, {"action", "vm-attached"}}},
                {"vm", {{"name", opts_.vm_name}, {"qemu_pid", opts_.qemu_pid}}},
                {"vminsight",
                 {{"cr3_exiting", cr3_exiting_},
                  {"syscall_traps", syscall_traps_},
                  {"msr_watch", msr_watch_}}}});
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
        if (calls_.feed(rec)) return;
        if (rec.type == VMI_REC_MSR) on_msr(rec);
        if (rec.type != VMI_REC_CR3) return;
        if (rec.vcpu < kMaxVcpus) vcpus_[rec.vcpu].cr3 = rec.cr3.new_cr3;
        if (rec.flags & VMI_RECF_SAMPLED) ++records_sampled_;
        last_cr3_ = rec.cr3.new_cr3;
        if (tracker_.resolve(rec.cr3.new_cr3)) return;
        const std::uint64_t pgd = vmi::pgd_from_cr3(rec.cr3.new_cr3);
        if (unowned_.contains(pgd)) return;
        if (unknown_since_scan_.size() < kMaxUnowned) unknown_since_scan_.insert(pgd);
        unknown = true;
    });
    calls_.expire(monotonic_ns());
    report_losses();
    if (unknown) request_scan();
}

// A system-call entry MSR other than the one the guest kernel set: its entry is hijacked.
// The finding goes through the policy like any event (evt.type = tamper).
void VmMonitor::on_msr(const vmi_record& rec) {
    if (rec.vcpu < kMaxVcpus && rec.msr.new_value) {
        vmi::VcpuView& v = vcpus_[rec.vcpu];
        if (rec.msr.which == VMI_MSR_LSTAR) v.lstar = rec.msr.new_value;
        if (rec.msr.which == VMI_MSR_CSTAR) v.cstar = rec.msr.new_value;
        // AMD keeps 32 bits of SYSENTER_EIP (KVM stores it so in the VMCB): the kernel's
        // address is their sign extension.
        if (rec.msr.which == VMI_MSR_SYSENTER_EIP)
            v.sysenter_eip = rec.msr.new_value >> 32
                                 ? rec.msr.new_value
                                 : static_cast<std::uint64_t>(static_cast<std::int64_t>(
                                       static_cast<std::int32_t>(rec.msr.new_value)));
    }
    const auto f = msrs_.feed(rec);
    if (!f) return;
    ++tamper_findings_;
    // The sweeps' absolute MSR check would say it again: it is said here, as it happens.
    msr_reported_.insert(f->target + "[" + std::to_string(f->vcpu) + "]");
    const std::uint64_t cr3 = walk_cr3_ ? walk_cr3_ : last_cr3_;
    const std::array<std::uint64_t, 3> vas{f->actual, f->expected, f->rip};
    const std::vector<std::string> at = integrity_.describe(cr3, vas);
    const std::string& now_at = at[0];
    const std::string& was_at = at[1];
    nlohmann::json t = msr_tamper_fields(*f);
    t["severity"] = "critical";
    t["message"] = f->target + " of vCPU " + std::to_string(f->vcpu) + " is " + hex(f->actual) +
                   (now_at.empty() ? "" : " (" + now_at + ")") + ", not " + hex(f->expected) +
                   (was_at.empty() ? "" : " (" + was_at + ")");
    if (!now_at.empty()) t["actual_symbol"] = now_at;
    if (!was_at.empty()) t["expected_symbol"] = was_at;
    if (f->intercepted && !at[2].empty()) t["writer_symbol"] = at[2];
    sink_.emit({{"@timestamp", utc_now()},
                {"event", {{"kind", "event"}, {"category", "host"}, {"action", "guest-tampered"}}},
                {"vm", {{"name", opts_.vm_name}}},
                {"vminsight", {{"tamper", std::move(t)}}}});
    sweep_soon();
}

// Once the guest kernel is known: the integrity baseline, then a sweep every interval. A guest
// whose kallsyms cannot be derived yet (still booting) is tried again every 10 s.
void VmMonitor::start_integrity(std::uint64_t cr3) {
    if (opts_.integrity_interval.count() == 0 || integrity_.started() || !guest_.profile()) return;
    const auto now = std::chrono::steady_clock::now();
    if (now < integrity_retry_) return;
    integrity_retry_ = now + std::chrono::seconds(10);
    const auto why = integrity_.start(guest_.memory(), cr3, *guest_.profile());
    if (why && integrity_reported_) return;
    integrity_reported_ = true;
    sink_.emit({{"@timestamp", utc_now()},
                {"event",
                 {{"kind", "event"},
                  {"category", "host"},
                  {"action", why ? "integrity-unavailable" : "integrity-baseline"}}},
                {"vm", {{"name", opts_.vm_name}}},
                {"vminsight",
                 {{"integrity", why ? nlohmann::json{{"why", *why}} : integrity_.status()}}}});
    if (!why) wait_integrity(opts_.integrity_interval);
}

// A suspicious event (a module loaded or unloaded, an entry MSR changed) brings the next sweep
// forward: a rootkit's module has run its init by the time finit_module returns.
void VmMonitor::sweep_soon() {
    if (!integrity_.started() || stopped_ || opts_.integrity_interval.count() == 0) return;
    ++sweeps_triggered_;
    wait_integrity(std::chrono::milliseconds(0));  // the pending wait ends, aborted
}

void VmMonitor::wait_integrity(std::chrono::milliseconds delay) {
    integrity_timer_.expires_after(delay);
    integrity_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec || stopped_) return;
        std::vector<vmi::VcpuView> vcpus;
        for (const auto& [idx, v] : vcpus_) vcpus.push_back(v);
        for (auto& ev : integrity_.sweep(walk_cr3_ ? walk_cr3_ : last_cr3_, std::move(vcpus))) {
            const auto& t = ev["vminsight"]["tamper"];
            if (t.value("kind", "") == "msr_hook" && msr_reported_.contains(t.value("target", "")))
                continue;
            ev["vm"] = {{"name", opts_.vm_name}};
            sink_.emit(std::move(ev));
        }
        wait_integrity(opts_.integrity_interval);
    });
}

// Records the ring dropped (the daemon fell behind) are an event in the feed, as they happen:
// a SIEM sees the gap, not only a counter in the periodic stats.
void VmMonitor::report_losses() {
    const std::uint64_t gaps = session_.ring().seq_gaps();
    if (gaps == reported_gaps_) return;
    sink_.emit({{"@timestamp", utc_now()},
                {"event", {{"kind", "event"}, {"category", "host"}, {"action", "records-lost"}}},
                {"vm", {{"name", opts_.vm_name}}},
                {"vminsight",
                 {{"records_lost", gaps - reported_gaps_},
                  {"records_lost_total", gaps},
                  {"where", "kernel ring (the daemon fell behind)"}}}});
    reported_gaps_ = gaps;
}

// A call is named by its task (the guest's `current` at the call), else by its address space.
// Calls nobody can name yet wait for the next listing, which is asked for now.
const GuestProcess* VmMonitor::caller(const SyscallCall& call) const {
    const GuestProcess* p = call.task ? tracker_.by_task(call.task) : nullptr;
    if (p) return p;
    p = tracker_.owner(call.cr3);
    // Without the caller's own identity (read at the call once the guest profile is known),
    // an address space's owner counts only if it was listed before the call: the page tables
    // of a process that died unseen are soon another's.
    if (p && call.tgid < 0 && p->first_seen_host_ns > call.time_ns) return nullptr;
    return p;
}

void VmMonitor::on_call(SyscallCall&& call) {
    if (call.denied) call.ret = -plan_.deny_errno;
    const GuestProcess* p = caller(call);
    if (p || parked_.size() >= kMaxParked) {
        emit_call(call, p);
        return;
    }
    parked_.push_back(std::move(call));
    request_scan();
}

void VmMonitor::flush_parked() {
    while (!parked_.empty()) {
        SyscallCall c = std::move(parked_.front());
        parked_.pop_front();
        emit_call(c, caller(c));
    }
}

void VmMonitor::emit_call(const SyscallCall& call, const GuestProcess* proc) {
    ++calls_emitted_;
    const std::string_view name = vmi::syscall_name(call.nr);
    if ((name == "init_module" || name == "finit_module" || name == "delete_module") && call.ret &&
        *call.ret == 0)
        sweep_soon();
    if (!proc) ++calls_unnamed_;
    nlohmann::json ev = syscall_event(call, proc, opts_.vm_name);
    // Parent and ancestors when the listing named the caller (ppid is set only then).
    auto& p = ev["process"];
    if (auto ppid = p.find("ppid"); ppid != p.end() && ppid->is_number_integer())
        tracker_.add_lineage(p, ppid->get<std::int32_t>());
    sink_.emit(ev);
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
        unowned_.clear();  // a freed page-table page may now belong to a new process
        calls_.expire(monotonic_ns());
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
        if (ec) return;  // cancelled: the monitor may be gone
        scan_pending_ = false;
        if (stopped_) return;
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
        flush_parked();  // no listing to wait for: say what we know
        return;
    }
    walk_cr3_ = cr3;
    // The task pointer in syscall records needs the profile: hand it over once known, before
    // guest-kernel-found, so every call after that event is named by the module at the call.
    if (const vmi::LinuxOffsets* off = guest_.offsets();
        off && !plan_.percpu_current && off->percpu_current_task && syscall_traps_ == "requested") {
        plan_.percpu_current = off->percpu_current_task;
        plan_.task_tgid = static_cast<std::uint32_t>(off->task_tgid);
        plan_.task_comm = static_cast<std::uint32_t>(off->task_comm);
        session_.set_filter(build_filter(plan_), plan_.exec_paths());
    }
    if (!profile_reported_ && guest_.profile_report()) {
        profile_reported_ = true;
        sink_.emit(
            {{"event", {{"kind", "event"}, {"category", "host"}, {"action", "guest-kernel-found"}}},
             {"vm", {{"name", opts_.vm_name}}},
             {"vminsight", {{"profile", *guest_.profile_report()}}}});
    }
    tracker_.apply(*list, monotonic_ns());
    flush_parked();
    start_integrity(cr3);
    for (std::uint64_t pgd : unknown_since_scan_)
        if (!tracker_.owner(pgd) && unowned_.size() < kMaxUnowned) unowned_.insert(pgd);
    unknown_since_scan_.clear();
}

void VmMonitor::stop(const std::string& reason) {
    if (stopped_) return;
    on_ring();
    calls_.flush();
    if (reason != "qemu-exited") scan(walk_cr3_ ? walk_cr3_ : last_cr3_);
    stopped_ = true;
    report_stats();
    flush_parked();
    tracker_.finish(monotonic_ns(), reason);
    timer_.cancel();
    scan_soon_.cancel();
    integrity_timer_.cancel();
    qemu_fd_.cancel();
    // Let go of the VM now, not when this object goes: a new session for the same VM (a
    // re-attach) can only start once this one is closed.
    boost::system::error_code ignored;
    ring_fd_.close(ignored);
    session_.close();
}

namespace {

const char* cr3_mode_name(std::uint32_t mode) {
    switch (mode) {
        case VMI_CR3_SAMPLED:
            return "sampled";
        case VMI_CR3_PENDING:
            return "pending";
        case VMI_CR3_EXITING:
            return "exiting";
        case VMI_CR3_FALLBACK:
            return "fallback";
        default:
            return "unknown";
    }
}

const char* sys_mode_name(std::uint32_t mode) {
    switch (mode) {
        case VMI_SYS_OFF:
            return "off";
        case VMI_SYS_PENDING:
            return "pending";
        case VMI_SYS_ON:
            return "on";
        case VMI_SYS_REFUSED:
            return "refused";
        default:
            return "unknown";
    }
}

const char* cr3_fallback_name(std::uint32_t why) {
    switch (why) {
        case VMI_CR3_OK:
            return "";
        case VMI_CR3_NO_VENDOR:
            return "unsupported KVM vendor";
        case VMI_CR3_BAD_LAYOUT:
            return "implausible vcpu_svm.vmcb offset";
        case VMI_CR3_BAD_VMCB:
            return "VMCB pointer is not a VMCB page";
        case VMI_CR3_NO_NPT:
            return "no nested paging";
        case VMI_CR3_MISMATCH:
            return "VMCB CR3 differs from KVM's";
        case VMI_CR3_BAD_MSRPM:
            return "MSR permission map is not KVM's";
        default:
            return "unknown";
    }
}

}  // namespace

void VmMonitor::report_stats() {
    sink_.emit(
        {{"event", {{"kind", "metric"}, {"category", "host"}, {"action", "vm-monitor-stats"}}},
         {"vm", {{"name", opts_.vm_name}}},
         {"vminsight", status()}});
}

nlohmann::json VmMonitor::status() {
    const vmi_status st = session_.status();
    const TrackerStats& t = tracker_.stats();
    nlohmann::json unowned = nlohmann::json::object();
    for (const auto& [pgd, n] : t.unowned) {
        char key[24];
        std::snprintf(key, sizeof key, "0x%llx", static_cast<unsigned long long>(pgd));
        unowned[key] = n;
    }
    return {{"records_read", records_},
            {"records_written", st.records},
            {"records_lost_kernel", st.lost},
            {"records_lost_seen", session_.is_open() ? session_.ring().seq_gaps() : reported_gaps_},
            {"vm_entries_sampled", st.cr3_samples},
            {"cr3_mode", cr3_mode_name(st.cr3_mode)},
            {"cr3_fallback", cr3_fallback_name(st.cr3_fallback)},
            {"cr3_exiting_vcpus", st.cr3_armed_vcpus},
            {"records_sampled", records_sampled_},
            {"scans", t.scans},
            {"scans_failed", t.failed_scans},
            {"cr3_resolved", t.cr3_resolved},
            {"cr3_unresolved", t.cr3_unresolved},
            {"cr3_unowned", unowned},
            {"syscall_mode", sys_mode_name(st.sys_mode)},
            {"syscall_fallback", cr3_fallback_name(st.sys_fallback)},
            {"syscall_vcpus", st.sys_armed_vcpus},
            {"msr_watch_mode", msr_mode_name(st.msr_mode)},
            {"msr_watch_fallback", cr3_fallback_name(st.msr_fallback)},
            {"msr_changes", st.msr_changes},
            {"msr_records", msrs_.seen()},
            {"msr_writes_intercepted", msrs_.intercepted()},
            {"msr_writes_faulted", msrs_.faulted()},
            {"tamper_findings", tamper_findings_},
            {"integrity", integrity_.status()},
            {"integrity_sweeps_triggered", sweeps_triggered_},
            {"syscalls_trapped", st.syscalls},
            {"sysrets_emulated", st.sysrets},
            {"syscalls_denied", st.denied},
            {"sysrets_retried", st.retried},
            {"sysrets_early", st.sysrets_early},
            {"exit_probe_missed", st.exit_probe_missed},
            {"capture_faults", st.capture_faults},
            {"returns_unmatched_kernel", st.unmatched},
            {"calls", calls_.stats().calls},
            {"calls_returned", calls_.stats().returned},
            {"calls_no_return", calls_.stats().no_return},
            {"returns_orphan", calls_.stats().orphan_returns},
            {"records_malformed", calls_.stats().malformed},
            {"calls_emitted", calls_emitted_},
            {"calls_unnamed", calls_unnamed_},
            {"syscalls_denied_by_rule", plan_.deny_syscalls},
            {"exec_control", plan_.exec_allow || !plan_.allow_exec.empty() ? "allow-list"
                             : plan_.deny_exec.empty()                     ? "off"
                                                                           : "deny-list"},
            {"exec_paths", plan_.exec_paths().size()}};
}

}  // namespace vmid
