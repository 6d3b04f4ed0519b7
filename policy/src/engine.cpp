#include <algorithm>
#include <array>
#include <cctype>

#include "impl.hpp"

namespace policy {

namespace {
constexpr std::array<std::string_view, 8> kPriorities = {
    "emergency", "alert", "critical", "error", "warning", "notice", "informational", "debug"};
constexpr std::array<std::string_view, 4> kActions = {"alert", "deny", "pause_vm", "dump_memory"};
}  // namespace

std::string_view priority_name(Priority p) noexcept {
    return kPriorities[static_cast<std::size_t>(p)];
}

std::string_view action_name(Action a) noexcept { return kActions[static_cast<std::size_t>(a)]; }

std::string_view mode_name(Mode m) noexcept { return m == Mode::Enforce ? "enforce" : "monitor"; }

std::optional<Priority> parse_priority(std::string_view s) noexcept {
    std::string l(s);
    std::transform(l.begin(), l.end(), l.begin(), [](char c) {
        return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    });
    if (l == "info") return Priority::Informational;
    if (l == "warn") return Priority::Warning;
    for (std::size_t i = 0; i < kPriorities.size(); ++i) {
        if (kPriorities[i] == l) return static_cast<Priority>(i);
    }
    return std::nullopt;
}

std::string Diagnostic::str() const {
    std::string out = file;
    if (line > 0) {
        out += ':' + std::to_string(line);
        if (col > 0) out += ':' + std::to_string(col);
    }
    out += ": " + message;
    return out;
}

std::string PolicySet::Impl::render(const Compiled& c, const Event& e) const {
    std::string out;
    for (const auto& seg : c.output) {
        if (seg.field) {
            out += detail::render_field(e, *seg.field);
        } else {
            out += seg.literal;
        }
    }
    return out;
}

void PolicySet::Impl::index() {
    const std::size_t syscall_type = static_cast<std::size_t>(EventType::Syscall);
    std::vector<std::optional<std::vector<std::string>>> names;
    for (const auto& c : compiled) {
        const auto mask = detail::type_mask(*c.cond);
        for (std::size_t t = 0; t < kEventTypeCount; ++t) {
            if (mask & (1u << t)) by_type[t].push_back(&c);
        }
        names.push_back((mask & (1u << syscall_type)) ? detail::syscall_names(*c.cond)
                                                      : std::nullopt);
        if (names.back()) {
            for (const auto& n : *names.back()) by_syscall.try_emplace(n);
        }
    }
    // Keep file order within every list.
    for (std::size_t i = 0; i < compiled.size(); ++i) {
        const auto* c = &compiled[i];
        if (!(detail::type_mask(*c->cond) & (1u << syscall_type))) continue;
        if (!names[i]) {
            syscall_any.push_back(c);
            for (auto& [name, list] : by_syscall) list.push_back(c);
            continue;
        }
        for (const auto& n : *names[i]) {
            auto& list = by_syscall[n];
            if (list.empty() || list.back() != c) list.push_back(c);
        }
    }
}

PolicySet::PolicySet() : impl_(std::make_shared<const Impl>()) {}

PolicySet::PolicySet(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

namespace {
detail::Memo& memo_for(std::size_t slots) {
    thread_local detail::Memo memo;
    memo.reset(slots);
    return memo;
}
}  // namespace

std::size_t PolicySet::evaluate(const Event& event, std::vector<Match>& out) const {
    std::size_t n = 0;
    auto& memo = memo_for(impl_->memo_slots);
    for (const auto* c : impl_->candidates(event)) {
        if (detail::eval(*c->cond, event, memo)) {
            out.push_back(Match{c->rule, impl_->render(*c, event)});
            ++n;
        }
    }
    return n;
}

std::vector<Match> PolicySet::evaluate(const Event& event) const {
    std::vector<Match> out;
    evaluate(event, out);
    return out;
}

bool PolicySet::matches_any(const Event& event) const {
    auto& memo = memo_for(impl_->memo_slots);
    for (const auto* c : impl_->candidates(event)) {
        if (detail::eval(*c->cond, event, memo)) return true;
    }
    return false;
}

std::size_t PolicySet::rule_count() const noexcept { return impl_->compiled.size(); }

std::size_t PolicySet::rules_for(EventType type) const noexcept {
    return impl_->by_type[static_cast<std::size_t>(type)].size();
}

std::size_t PolicySet::rules_for_syscall(std::string_view name) const {
    Event e;
    e.type = EventType::Syscall;
    e.syscall.name = std::string(name);
    return impl_->candidates(e).size();
}

const std::vector<Rule>& PolicySet::rules() const noexcept {
    return impl_->base ? impl_->base->rules : impl_->rules;
}

std::vector<const Rule*> PolicySet::active_rules() const {
    std::vector<const Rule*> out;
    out.reserve(impl_->compiled.size());
    for (const auto& c : impl_->compiled) out.push_back(c.rule);
    return out;
}

const Rule* PolicySet::find_rule(std::string_view name) const noexcept {
    for (const auto& r : rules()) {
        if (r.name == name) return &r;
    }
    return nullptr;
}

bool RateLimiter::allow(const Rule& rule, std::uint64_t now_ns) {
    if (!rule.rate_limit) return true;
    const auto cap = static_cast<double>(rule.rate_limit->count);
    Bucket& b = buckets_[&rule];
    if (!b.started) {
        b.started = true;
        b.tokens = cap;
        b.last_ns = now_ns;
    } else if (now_ns > b.last_ns) {
        const double per_ns = cap / static_cast<double>(rule.rate_limit->period_ns);
        b.tokens = std::min(cap, b.tokens + static_cast<double>(now_ns - b.last_ns) * per_ns);
        b.last_ns = now_ns;
    }
    if (b.tokens >= 1.0) {
        b.tokens -= 1.0;
        return true;
    }
    ++b.dropped;
    return false;
}

bool Deduplicator::allow(const Match& m, std::uint64_t now_ns, std::uint64_t* suppressed) {
    if (suppressed) *suppressed = 0;
    if (!m.rule->dedup_ns) return true;
    std::string key = m.rule->name;
    key += '\0';
    key += m.output;
    auto it = windows_.find(key);
    if (it != windows_.end() && now_ns - it->second.start_ns < *m.rule->dedup_ns) {
        ++it->second.held;
        ++total_;
        return false;
    }
    if (it == windows_.end()) {
        if (windows_.size() >= kMaxKeys) {  // forget the oldest window
            windows_.erase(order_.front());
            order_.pop_front();
        }
        it = windows_.emplace(key, Window{}).first;
        it->second.age = order_.insert(order_.end(), std::move(key));
    } else {
        order_.splice(order_.end(), order_, it->second.age);  // restarted: now the newest
    }
    if (suppressed) *suppressed = it->second.held;
    it->second.start_ns = now_ns;
    it->second.held = 0;
    return true;
}

std::uint64_t RateLimiter::dropped(const Rule& rule) const {
    const auto it = buckets_.find(&rule);
    return it == buckets_.end() ? 0 : it->second.dropped;
}

}  // namespace policy
