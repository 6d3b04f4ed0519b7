// Carries out the rule actions that act on the VM itself: pause_vm (through QEMU's QMP
// socket) and dump_memory (an ELF core of the guest's RAM). Each action is an event in the
// feed too, so the SIEM sees what was done and why.
#pragma once

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

class VmResponder final : public ResponseActions {
  public:
    VmResponder(boost::asio::io_context& io, EventSink& feed, VmMonitor& monitor,
                const Options& opts);
    std::string pause_vm(const policy::Rule& rule) override;
    std::string dump_memory(const policy::Rule& rule) override;
    /// Continues a VM a rule paused (vminsightctl resume). Throws std::runtime_error.
    std::string resume();
    [[nodiscard]] bool paused() const noexcept { return paused_; }
    [[nodiscard]] const std::string& qmp_path() const noexcept { return qmp_path_; }

  private:
    void emit(const std::string& action, nlohmann::json details);

    EventSink& feed_;
    VmMonitor& monitor_;
    std::string vm_name_;
    std::string qmp_path_;  // empty: no QMP socket known
    std::optional<QmpClient> qmp_;
    MemoryDumper dumper_;
    bool paused_ = false;
};

}  // namespace vmid
