#include "vm_pipeline.hpp"

#include "event_fields.hpp"

namespace vmid {

namespace {

// The monitor traps what --syscalls asks for and what this VM's rules look at.
Options with_rule_traps(Options opts, const policy::PolicySet* rules,
                        const policy::VmIdentity& vm) {
    if (rules) opts.syscalls = with_rule_syscalls(opts.syscalls, rules->for_vm(vm));
    return opts;
}

}  // namespace

VmPipeline::VmPipeline(boost::asio::io_context& io, const Options& opts, EventSink& out,
                       const policy::PolicySet* rules, policy::VmIdentity vm,
                       std::optional<RunControl> run)
    : opts_(with_rule_traps(opts, rules, vm)),
      vm_(std::move(vm)),
      asked_(opts.syscalls),
      counter_(out),
      stamp_(counter_, vm_.uuid),
      stage_(rules ? std::optional<PolicyStage>(std::in_place, stamp_, rules->for_vm(vm_), vm_)
                   : std::nullopt),
      monitor_(io, opts_, stage_ ? static_cast<EventSink&>(*stage_) : stamp_),
      responder_(io, stamp_, monitor_, opts_, std::move(run)) {
    if (stage_) {
        monitor_.enforce(policy::enforcement(stage_->rules()));  // before the first trap
        stage_->set_actions(&responder_);
    }
}

void VmPipeline::start() { monitor_.start(); }

std::uint64_t VmPipeline::records_lost() {
    const nlohmann::json s = monitor_.status();
    return s.value("records_lost_kernel", std::uint64_t{0});
}

nlohmann::json VmPipeline::status() {
    return {{"vm", {{"name", vm_.name}, {"uuid", vm_.uuid}, {"policy", vm_.policy}}},
            {"qemu_pid", opts_.qemu_pid},
            {"events", counter_.count},
            {"rules", stage_ ? stage_->rules().rule_count() : 0},
            {"alerts", stage_ ? stage_->alerts() : 0},
            {"alerts_suppressed", stage_ ? stage_->suppressed() : 0},
            {"paused_by_rule", responder_.paused()},
            {"run_control", responder_.run_control()},
            {"monitor", monitor_.status()}};
}

nlohmann::json process_json(const GuestProcess& p) {
    nlohmann::json j = {{"pid", p.pid},
                        {"ppid", p.ppid},
                        {"comm", p.comm},
                        {"kernel_thread", p.kernel_thread},
                        {"start_ns", p.start_time_ns}};
    if (p.uid >= 0) j["uid"] = p.uid;
    if (p.euid >= 0) j["euid"] = p.euid;
    if (!p.exe.empty()) j["exe"] = p.exe;
    if (!p.args.empty()) j["args"] = p.args;
    if (p.threads >= 0) j["threads"] = p.threads;
    return j;
}

nlohmann::json VmPipeline::processes() const {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& p : monitor_.processes()) out.push_back(process_json(p));
    return out;
}

// A new rule set: what this VM is judged by, what the module enforces and traps for it. A set
// the module cannot enforce changes nothing. The feed says which happened.
std::vector<std::string> VmPipeline::apply_rules(const policy::PolicySet& whole,
                                                 const std::string& by) {
    if (!stage_) return {"the daemon was started without rules (--policy, --policy-dir)"};
    std::vector<std::string> errors = stage_->replace(
        whole, [&](const policy::PolicySet& next) { monitor_.enforce(policy::enforcement(next)); });
    nlohmann::json ev = {
        {"@timestamp", utc_now()},
        {"event",
         {{"kind", "event"},
          {"category", "configuration"},
          {"action", errors.empty() ? "policy-reloaded" : "policy-reload-failed"}}},
        {"vm", {{"name", vm_.name}}}};
    if (!errors.empty()) {
        ev["vminsight"] = {{"errors", errors}, {"kept", "the rules in force before"}, {"by", by}};
        stamp_.emit(ev);
        return errors;
    }
    std::vector<std::string> trace = with_rule_syscalls(asked_, stage_->rules());
    ev["vminsight"] = {{"rules", stage_->rules().rule_count()},
                       {"syscalls_trapped", trace.size()},
                       {"rules_enforced", policy::enforcement(stage_->rules()).rules.size()},
                       {"by", by}};
    stamp_.emit(ev);
    monitor_.trace_syscalls(std::move(trace));
    return errors;
}

}  // namespace vmid
