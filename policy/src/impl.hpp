// Internal: the compiled form of a PolicySet.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "compile.hpp"
#include "policy/policy.hpp"

namespace policy {

struct PolicySet::Impl {
    struct OutSeg {
        std::string literal;
        std::optional<detail::FieldRef> field;
    };
    struct Compiled {
        const Rule* rule = nullptr;
        detail::NodePtr cond;
        std::vector<OutSeg> output;
    };

    std::shared_ptr<const Impl> base;  // for_vm: the set whose rules `compiled` points into
    std::vector<Rule> rules;
    std::vector<Compiled> compiled;  // enabled rules, file order
    std::array<std::vector<const Compiled*>, kEventTypeCount> by_type;
    std::size_t memo_slots = 0;  // one per macro
    // Syscall rules further indexed by syscall.name; syscall_any holds the rules without a
    // syscall.name constraint (used for names not in the map and for unset names).
    std::unordered_map<std::string, std::vector<const Compiled*>, detail::SvHash, std::equal_to<>>
        by_syscall;
    std::vector<const Compiled*> syscall_any;

    const std::vector<const Compiled*>& candidates(const Event& e) const {
        if (e.type == EventType::Syscall && e.syscall.name) {
            const auto it = by_syscall.find(std::string_view(*e.syscall.name));
            return it != by_syscall.end() ? it->second : syscall_any;
        }
        if (e.type == EventType::Syscall) return syscall_any;
        return by_type[static_cast<std::size_t>(e.type)];
    }

    std::string render(const Compiled& c, const Event& e) const;
    // Builds by_type, by_syscall and syscall_any from `compiled`.
    void index();
};

}  // namespace policy
