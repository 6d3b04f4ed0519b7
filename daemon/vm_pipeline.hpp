// Everything that watches one VM: the monitor (module session, guest model, process
// tracking), the policy stage that judges its events, the responder that carries out rule
// actions, and the stamp that names the VM in every event. The daemon has one per attached
// VM; they share the feed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "event_sink.hpp"
#include "options.hpp"
#include "policy/policy.hpp"
#include "policy_stage.hpp"
#include "vm_monitor.hpp"
#include "vm_responder.hpp"

namespace vmid {

/// What the daemon holds for an attached VM. The domain manager sees only this, so its tests
/// can attach something lighter than a real VM.
class Attachment {
  public:
    virtual ~Attachment() = default;
    /// Drain, report every process gone, detach. Idempotent.
    virtual void stop(const std::string& reason) = 0;
    /// Detached (asked to, or QEMU exited).
    [[nodiscard]] virtual bool stopped() const = 0;
    /// Detached and nothing of it still runs (a memory dump being written): safe to destroy.
    [[nodiscard]] virtual bool idle() const = 0;
    /// Events emitted so far, and records the kernel ring lost.
    [[nodiscard]] virtual std::uint64_t events() const = 0;
    [[nodiscard]] virtual std::uint64_t records_lost() = 0;
    /// Rule counts, alerts, trap state, module counters (vminsightctl status / stats).
    [[nodiscard]] virtual nlohmann::json status() = 0;
    /// The guest's processes as last listed (vminsightctl ps).
    [[nodiscard]] virtual nlohmann::json processes() const = 0;
    /// Judge and enforce by this newly loaded rule set (the rules of it that apply to this
    /// VM). Returns the errors; on error nothing changed.
    virtual std::vector<std::string> apply_rules(const policy::PolicySet& whole,
                                                 const std::string& by) = 0;
    /// Continue a VM a rule paused. Throws std::runtime_error.
    virtual std::string resume() = 0;
};

class VmPipeline final : public Attachment {
  public:
    /// `opts` names the VM (qemu_pid, vm_name, vm_uuid, vm_metadata); `rules` is every loaded
    /// rule (null: no policy); `vm` is who the VM is for scoping. Throws what attaching throws
    /// (LocateError, KmodError), before anything was emitted.
    VmPipeline(boost::asio::io_context& io, const Options& opts, EventSink& out,
               const policy::PolicySet* rules, policy::VmIdentity vm,
               std::optional<RunControl> run = std::nullopt);
    void start();
    void stop(const std::string& reason) override { monitor_.stop(reason); }
    [[nodiscard]] bool stopped() const override { return monitor_.stopped(); }
    [[nodiscard]] bool idle() const override { return stopped() && !responder_.busy(); }
    [[nodiscard]] std::uint64_t events() const override { return counter_.count; }
    [[nodiscard]] std::uint64_t records_lost() override;
    [[nodiscard]] nlohmann::json status() override;
    [[nodiscard]] nlohmann::json processes() const override;
    std::vector<std::string> apply_rules(const policy::PolicySet& whole,
                                         const std::string& by) override;
    std::string resume() override { return responder_.resume(); }

    [[nodiscard]] const policy::VmIdentity& vm() const noexcept { return vm_; }
    [[nodiscard]] VmMonitor& monitor() noexcept { return monitor_; }

  private:
    struct CountingSink final : EventSink {
        EventSink& next;
        std::uint64_t count = 0;
        explicit CountingSink(EventSink& n) : next(n) {}
        void emit(const nlohmann::json& ev) override {
            ++count;
            next.emit(ev);
        }
    };

    Options opts_;
    policy::VmIdentity vm_;
    std::vector<std::string> asked_;  // --syscalls, before the rules add theirs
    CountingSink counter_;
    VmStampSink stamp_;
    std::optional<PolicyStage> stage_;
    VmMonitor monitor_;
    VmResponder responder_;
};

/// The JSON of one listed process, as `vminsightctl ps` shows it.
nlohmann::json process_json(const GuestProcess& p);

}  // namespace vmid
