// Applies the loaded policy to every event the daemon emits: the event goes on, followed by
// one alert per rule it matches. Sits between the monitor and the real sink, so process and
// syscall events are judged the same way, from what the feed itself says.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "event_sink.hpp"
#include "policy/event.hpp"
#include "policy/policy.hpp"

namespace vmid {

/// The policy engine's view of a feed event; nullopt for events rules do not look at
/// (attach, stats, detach, alerts themselves).
std::optional<policy::Event> to_policy_event(const nlohmann::json& ev);

/// An execve seen as a syscall that went through (no error), or that the module denied, is
/// also an exec (attempt) of the program it names, with the argv read at the call, for rules
/// on evt.type = exec (proc.exe, proc.name, proc.args); nullopt if not.
std::optional<policy::Event> exec_from_syscall(const nlohmann::json& ev);

/// Syscall names some enabled rule looks at, and execve/execveat when exec rules exist: what
/// the module must trap for this policy.
std::vector<std::string> syscalls_needed(const policy::PolicySet& set);
/// `asked` (--syscalls), then what the rules need that it lacks.
std::vector<std::string> with_rule_syscalls(std::vector<std::string> asked,
                                            const policy::PolicySet& set);

/// The rule actions beyond an alert that the daemon carries out (deny is the module's, at the
/// trap). Each returns what happened, for the alert: "paused", "failed: why", ...
class ResponseActions {
  public:
    virtual ~ResponseActions() = default;
    virtual std::string pause_vm(const policy::Rule& rule) = 0;
    virtual std::string dump_memory(const policy::Rule& rule) = 0;
};

/// The "response" object of an alert: what the rule asked beyond the alert and whether it was
/// taken (monitor mode never acts; deny is taken when the module stopped the call).
nlohmann::json rule_response(const policy::Rule& rule, const nlohmann::json& trigger,
                             ResponseActions* actions);

class PolicyStage final : public EventSink {
  public:
    /// Judges events of the VM `vm` by the rules of `set` that apply to it.
    PolicyStage(EventSink& next, policy::PolicySet set, policy::VmIdentity vm = {},
                ResponseActions* actions = nullptr);
    void emit(const nlohmann::json& ev) override;
    /// Loads `files` anew and, only if every file is valid, judges the next events by them.
    /// A bad policy never replaces a good one: on failure the errors (file:line:col: why) are
    /// returned and the current rules stay. Called between events, so none is judged by a
    /// half-loaded set or skipped.
    /// `accept`, if given, sees the new rules (for this VM) first and may refuse them by
    /// throwing (e.g. deny rules the module cannot enforce together): then nothing changes.
    std::vector<std::string> reload(
        const std::vector<std::string>& files,
        const std::function<void(const policy::PolicySet&)>& accept = nullptr);
    /// Same, with a set already loaded (every VM's rules; this VM's are taken from it).
    std::vector<std::string> replace(
        const policy::PolicySet& whole,
        const std::function<void(const policy::PolicySet&)>& accept = nullptr);
    void set_actions(ResponseActions* actions) noexcept { actions_ = actions; }
    /// The rules in force for this VM.
    [[nodiscard]] const policy::PolicySet& rules() const noexcept { return set_; }
    [[nodiscard]] std::uint64_t alerts() const noexcept { return alerts_; }
    [[nodiscard]] std::uint64_t suppressed() const noexcept { return suppressed_; }

  private:
    EventSink& next_;
    policy::VmIdentity vm_;
    ResponseActions* actions_;
    policy::PolicySet set_;
    policy::RateLimiter limiter_;
    policy::Deduplicator dedup_;
    std::vector<policy::Match> matches_;
    std::uint64_t alerts_ = 0, suppressed_ = 0;
    // Execs judged from their execve (pid, program), so a listing's later process-exec of the
    // same program is not judged again. Bounded.
    bool judged_exec(std::int64_t pid, const std::string& exe) const;
    std::deque<std::pair<std::int64_t, std::string>> recent_execs_;
    static constexpr std::size_t kRecentExecs = 1024;
};

}  // namespace vmid
