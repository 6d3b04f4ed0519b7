// Applies the loaded policy to every event the daemon emits: the event goes on, followed by
// one alert per rule it matches. Sits between the monitor and the real sink, so process and
// syscall events are judged the same way, from what the feed itself says.
#pragma once

#include <cstdint>
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

/// Syscall names some enabled rule looks at: what the module must trap for this policy.
std::vector<std::string> syscalls_needed(const policy::PolicySet& set);
/// `asked` (--syscalls), then what the rules need that it lacks.
std::vector<std::string> with_rule_syscalls(std::vector<std::string> asked,
                                            const policy::PolicySet& set);

class PolicyStage final : public EventSink {
  public:
    PolicyStage(EventSink& next, policy::PolicySet set);
    void emit(const nlohmann::json& ev) override;
    /// Loads `files` anew and, only if every file is valid, judges the next events by them.
    /// A bad policy never replaces a good one: on failure the errors (file:line:col: why) are
    /// returned and the current rules stay. Called between events, so none is judged by a
    /// half-loaded set or skipped.
    std::vector<std::string> reload(const std::vector<std::string>& files);
    [[nodiscard]] const policy::PolicySet& rules() const noexcept { return set_; }
    [[nodiscard]] std::uint64_t alerts() const noexcept { return alerts_; }
    [[nodiscard]] std::uint64_t suppressed() const noexcept { return suppressed_; }

  private:
    EventSink& next_;
    policy::PolicySet set_;
    policy::RateLimiter limiter_;
    std::vector<policy::Match> matches_;
    std::uint64_t alerts_ = 0, suppressed_ = 0;
};

}  // namespace vmid
