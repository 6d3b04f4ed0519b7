#include "vm_responder.hpp"

#include "event_fields.hpp"

namespace vmid {

VmResponder::VmResponder(boost::asio::io_context& io, EventSink& feed, VmMonitor& monitor,
                         const Options& opts, std::optional<RunControl> run)
    : feed_(feed),
      monitor_(monitor),
      vm_name_(opts.vm_name),
      run_(std::move(run)),
      dumper_(io, feed, opts.dump_dir, opts.dump_max_bytes, opts.vm_name) {
    if (run_) return;
    const std::string qmp =
        !opts.qmp.empty() ? opts.qmp
                          : qmp_socket_from_cmdline(process_cmdline(opts.qemu_pid)).value_or("");
    if (qmp.empty()) return;
    run_ = RunControl{[client = QmpClient(qmp)](const std::string& cmd) { client.execute(cmd); },
                      "qmp", qmp};
}

nlohmann::json VmResponder::run_control() const {
    if (!run_) return nullptr;
    return {{"via", run_->via}, {"where", run_->where}};
}

void VmResponder::emit(const std::string& action, nlohmann::json details) {
    feed_.emit({{"@timestamp", utc_now()},
                {"event", {{"kind", "event"}, {"category", "host"}, {"action", action}}},
                {"vm", {{"name", vm_name_}}},
                {"vminsight", std::move(details)}});
}

std::string VmResponder::pause_vm(const policy::Rule& rule) {
    if (!run_) return "failed: no way to stop this VM (QEMU's -qmp unix:, --qmp, or libvirt)";
    if (paused_) return "skipped: already paused";
    try {
        run_->execute("stop");
    } catch (const std::exception& e) {
        return std::string("failed: ") + e.what();
    }
    paused_ = true;
    emit("vm-paused", {{"rule", rule.name}, {"via", run_->via}, {"where", run_->where}});
    return "paused; `vminsightctl resume` continues it";
}

std::string VmResponder::resume() {
    if (!run_) throw std::runtime_error("no way to continue this VM (no QMP socket, no libvirt)");
    run_->execute("cont");
    const bool was = paused_;
    paused_ = false;
    emit("vm-resumed", {{"via", "control socket"}, {"was_paused_by_rule", was}});
    return "resumed";
}

std::string VmResponder::dump_memory(const policy::Rule& rule) {
    // A consistent image needs the guest still: with QMP the VM is stopped while its memory
    // is written (a live copy can catch a task list mid-change) and continued after.
    bool stopped = false;
    if (run_ && !paused_ && !dumper_.busy()) {
        try {
            run_->execute("stop");
            stopped = true;
        } catch (const std::exception&) {
        }
    }
    std::string r = dumper_.start(monitor_.qemu_pid(), monitor_.memslots(), rule.name,
                                  monitor_.walk_cr3(), [this, stopped] {
                                      if (!stopped) return;
                                      try {
                                          run_->execute("cont");
                                      } catch (const std::exception&) {
                                      }
                                  });
    if (r.starts_with("started")) r += stopped ? " (VM stopped while written)" : " (live)";
    return r;
}

}  // namespace vmid
