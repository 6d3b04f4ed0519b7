// Carries out the rule actions that act on the VM itself: pause_vm (through QEMU's QMP
// socket) and dump_memory (an ELF core of the guest's RAM). Each action is an event in the
// feed too, so the SIEM sees what was done and why.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>

#include "event_sink.hpp"
#include "memory_dump.hpp"
#include "options.hpp"
#include "policy_stage.hpp"
#include "qmp_client.hpp"
#include "vm_monitor.hpp"

namespace vmid {

/// How the VM is stopped and continued: "stop" and "cont". Throws std::runtime_error.
struct RunControl {
    std::function<void(const std::string& command)> execute;
    std::string via;    // "qmp", "libvirt"
    std::string where;  // the QMP socket, the libvirt URI
};

class VmResponder final : public ResponseActions {
  public:
    /// `run`: how to stop and continue the VM; by default QEMU's QMP socket (--qmp, or the
    /// one on QEMU's command line), if it has one.
    VmResponder(boost::asio::io_context& io, EventSink& feed, VmMonitor& monitor,
                const Options& opts, std::optional<RunControl> run = std::nullopt);
    std::string pause_vm(const policy::Rule& rule) override;
    std::string dump_memory(const policy::Rule& rule) override;
    /// Continues a VM a rule paused (vminsightctl resume). Throws std::runtime_error.
    std::string resume();
    [[nodiscard]] bool paused() const noexcept { return paused_; }
    [[nodiscard]] nlohmann::json run_control() const;
    /// A memory dump is being written (it needs this responder until it ends).
    [[nodiscard]] bool busy() const noexcept { return dumper_.busy(); }

  private:
    void emit(const std::string& action, nlohmann::json details);

    EventSink& feed_;
    VmMonitor& monitor_;
    std::string vm_name_;
    std::optional<RunControl> run_;  // none: the VM cannot be stopped
    MemoryDumper dumper_;
    bool paused_ = false;
};

}  // namespace vmid
