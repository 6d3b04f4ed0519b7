// VMInsight policy engine: Falco-like YAML rules compiled once, evaluated against typed events.
//
//   auto loaded = policy::PolicySet::load({"/etc/vminsight/default.yaml", "local.yaml"});
//   if (!loaded) { for (auto& e : loaded.errors) log(e.str()); keep the old set; }
//   policy::PolicySet set = std::move(*loaded.set);      // cheap to copy; immutable; thread-safe
//   std::vector<policy::Match> matches;
//   set.evaluate(event, matches);                        // appends; usually nothing
//   for (auto& m : matches) act(m.rule->action, m.rule->priority, m.output);
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "policy/event.hpp"

namespace policy {

enum class Priority : std::uint8_t {
    Emergency,
    Alert,
    Critical,
    Error,
    Warning,
    Notice,
    Informational,
    Debug
};
enum class Action : std::uint8_t { Alert, Deny, PauseVm, DumpMemory };
// monitor: report what the action would have been but do not enforce it.
enum class Mode : std::uint8_t { Enforce, Monitor };

std::string_view priority_name(Priority p) noexcept;
std::string_view action_name(Action a) noexcept;
std::string_view mode_name(Mode m) noexcept;
std::optional<Priority> parse_priority(std::string_view s) noexcept;  // case-insensitive

struct RateLimit {
    std::uint32_t count = 0;      // at most `count` matches ...
    std::uint64_t period_ns = 0;  // ... per period (enforced by the caller)
};

struct Diagnostic {
    std::string file;
    int line = 0;  // 1-based; 0 when unknown
    int col = 0;   // 1-based; 0 when unknown
    std::string message;
    std::string str() const;  // "file:line:col: message"
};

// The VM an event comes from, as far as scoping is concerned: its domain name, uuid and the
// key/value metadata its manager keeps for it (libvirt: VMInsight's metadata namespace).
struct VmIdentity {
    std::string name;
    std::string uuid;
    std::map<std::string, std::string> metadata;
    // The policy the VM's own configuration names (libvirt metadata): of the named policies,
    // only that one applies to it. Empty: every policy whose scope matches.
    std::string policy;
};

// Which VMs a policy applies to (a `- policy:` item, and the rules after it in its file). Each
// selector given must match: `vms` (globs over the name) and `uuids` (any one of them), and
// every `metadata` key (a glob over its value). No selector: every VM.
struct VmScope {
    std::vector<std::string> names;
    std::vector<std::string> uuids;
    std::map<std::string, std::string> metadata;
    bool matches(const VmIdentity& vm) const;
};

// What the kernel module enforces for a deny rule, decided at the trap without the daemon: the
// syscalls it fails for every caller, or the executables execve may (allow list) or may not
// run. A path ending in '*' is a prefix ("/tmp/*"). Paths are compared as the caller passed
// them.
struct KernelDeny {
    std::vector<std::string> syscalls;
    std::vector<std::string> exec_paths;
    bool exec_allow = false;  // exec_paths is an allow list: every other path is denied
};

struct Rule {
    std::string name;
    std::string desc;
    Priority priority = Priority::Warning;
    Action action = Action::Alert;
    Mode mode = Mode::Enforce;
    bool enabled = true;
    std::vector<std::string> tags;
    std::optional<RateLimit> rate_limit;
    // Identical alerts (same rule, same rendered output) within this window are reported once.
    std::optional<std::uint64_t> dedup_ns;
    std::string file;
    int line = 0;
    std::string policy;                     // the `- policy:` it belongs to; empty: none
    std::shared_ptr<const VmScope> scope;   // null: every VM
    std::optional<KernelDeny> kernel_deny;  // action deny: what the module enforces
};

struct Match {
    const Rule* rule = nullptr;  // owned by the PolicySet that produced the match
    std::string output;          // rendered output string
};

struct LoadResult;

// An immutable compiled rule set. Copies share the compiled rules; evaluate() is const and
// safe to call from many threads. Reload = load a new set and swap it in; a failed load never
// produces a partial set.
class PolicySet {
  public:
    PolicySet();  // empty: matches nothing

    // Files are read in order; later files may append to / override earlier definitions.
    static LoadResult load(const std::vector<std::filesystem::path>& files);
    static LoadResult load(const std::filesystem::path& file);
    static LoadResult load_string(std::string_view yaml, std::string_view name = "<string>");

    // Appends one Match per enabled rule matching `event`; returns the number appended.
    std::size_t evaluate(const Event& event, std::vector<Match>& out) const;
    std::vector<Match> evaluate(const Event& event) const;
    // Whether any rule matches, without rendering outputs.
    bool matches_any(const Event& event) const;

    std::size_t rule_count() const noexcept;               // enabled rules
    std::size_t rules_for(EventType type) const noexcept;  // enabled rules indexed under type
    // Rules a syscall event with this syscall.name is evaluated against.
    std::size_t rules_for_syscall(std::string_view name) const;
    const std::vector<Rule>& rules() const noexcept;  // all rules, including disabled ones
    const Rule* find_rule(std::string_view name) const noexcept;
    std::vector<const Rule*> active_rules() const;  // the enabled rules evaluated, file order

    // The rules of this set whose policy applies to `vm` (rules without a policy apply to
    // every VM): what a monitor of that VM evaluates and enforces.
    PolicySet for_vm(const VmIdentity& vm) const;
    // Whether some rule (enabled or not) belongs to the `- policy:` named `name`.
    bool defines_policy(std::string_view name) const;

    struct Impl;
    static PolicySet from_impl(std::shared_ptr<const Impl> impl);  // internal

  private:
    explicit PolicySet(std::shared_ptr<const Impl> impl);
    std::shared_ptr<const Impl> impl_;
};

struct LoadResult {
    std::optional<PolicySet> set;  // engaged iff errors is empty
    std::vector<Diagnostic> errors;
    explicit operator bool() const noexcept { return set.has_value(); }
};

// The union of what the enabled enforce-mode deny rules of a set ask the module to do. Several
// deny lists add up; several allow lists intersect (exact paths only) and a deny list then
// takes its paths out of the allow list. `error` says why the rules cannot be enforced
// together (then nothing else is set).
struct Enforcement {
    std::vector<std::string> deny_syscalls;
    std::vector<std::string> exec_paths;
    bool exec_allow = false;
    std::vector<const Rule*> rules;  // the rules enforced
    std::string error;
    bool empty() const noexcept {
        return deny_syscalls.empty() && exec_paths.empty() && !exec_allow;
    }
};
Enforcement enforcement(const PolicySet& set);

// Applies rules' rate_limit (token bucket per rule, burst = count). Not thread-safe: use one
// per evaluating thread, or guard it. Rules without rate_limit are always allowed.
class RateLimiter {
  public:
    // True if a match of `rule` at time now_ns (any monotonic clock) may be reported.
    bool allow(const Rule& rule, std::uint64_t now_ns);
    // Matches dropped so far for `rule`.
    std::uint64_t dropped(const Rule& rule) const;

  private:
    struct Bucket {
        double tokens = 0;
        std::uint64_t last_ns = 0;
        std::uint64_t dropped = 0;
        bool started = false;
    };
    std::unordered_map<const Rule*, Bucket> buckets_;
};

// Applies rules' dedup window: the first of identical matches (rule and rendered output) in a
// window passes, the rest are counted. Bounded: at most kMaxKeys windows are tracked (the
// oldest are forgotten first). Not thread-safe, like RateLimiter.
class Deduplicator {
  public:
    static constexpr std::size_t kMaxKeys = 16384;
    // True if the match may be reported; then `*suppressed` (if given) is the number of
    // duplicates held back since the last one reported.
    bool allow(const Match& m, std::uint64_t now_ns, std::uint64_t* suppressed = nullptr);
    std::uint64_t suppressed_total() const noexcept { return total_; }

  private:
    struct Window {
        std::uint64_t start_ns = 0;
        std::uint64_t held = 0;
        std::list<std::string>::iterator age;  // in order_
    };
    std::unordered_map<std::string, Window> windows_;
    std::list<std::string> order_;  // keys, oldest window start first
    std::uint64_t total_ = 0;
};

// Validates rule files (together, in order) and returns every error found.
std::vector<Diagnostic> check(const std::vector<std::filesystem::path>& files);
std::vector<Diagnostic> check(const std::filesystem::path& file);

}  // namespace policy
