// Deny rules as the kernel module enforces them, and VM scoping of rule sets.
//
// The module decides a denial at the trap, with the vCPU stopped and no daemon to ask, so a
// deny rule is enforceable only if its condition is a conjunction of what the module can see
// there: the syscall number, and for execve the path the caller passed. Anything else
// (ancestors, uid, exceptions) is reported at load time, with the field that cannot be checked.
#include <algorithm>
#include <cctype>
#include <optional>
#include <set>

#include "enforce.hpp"
#include "impl.hpp"

namespace policy {
namespace detail {
namespace {

constexpr std::uint32_t bit(EventType t) { return 1u << static_cast<unsigned>(t); }

bool is_exec_syscall(const std::string& name) { return name == "execve" || name == "execveat"; }

void conjuncts(const Node& n, std::vector<const Node*>& out) {
    if (n.kind == Node::Kind::Memo) return conjuncts(*n.kids[0], out);
    if (n.kind == Node::Kind::And) {
        for (const auto& k : n.kids) conjuncts(*k, out);
        return;
    }
    out.push_back(&n);
}

const Node* unwrap(const Node* n) {
    while (n->kind == Node::Kind::Memo) n = n->kids[0].get();
    return n;
}

bool is_path_field(FieldId id) { return id == FieldId::ProcExe || id == FieldId::SysPath; }

// The module's entries for a test of the executable: exact paths, and "prefix*" entries for
// startswith; an 'or' of such tests adds up. nullopt if `n` is not such a test.
std::optional<std::vector<std::string>> exec_paths(const Node& n) {
    const Node* u = unwrap(&n);
    std::vector<std::string> out;
    if (u->kind == Node::Kind::Or) {
        for (const auto& k : u->kids) {
            auto sub = exec_paths(*k);
            if (!sub) return std::nullopt;
            out.insert(out.end(), sub->begin(), sub->end());
        }
        return out;
    }
    if (u->kind != Node::Kind::Pred || !is_path_field(u->pred->field.def->id)) return std::nullopt;
    const Pred& p = *u->pred;
    if (p.op != Op::Eq && p.op != Op::In && p.op != Op::StartsWith) return std::nullopt;
    for (const auto& s : p.strs) {
        // A '*' in an exact path would be a prefix to the module but not to the rule.
        if (s.empty() || (p.op != Op::StartsWith && s.ends_with('*'))) return std::nullopt;
        out.push_back(p.op == Op::StartsWith ? s + "*" : s);
    }
    return out;
}

const std::string kWhat =
    "a deny rule may test only evt.type (exec, syscall), syscall.name, and the executable "
    "of an exec (proc.exe or syscall.path with =, in, startswith, or not in those)";

}  // namespace

std::variant<KernelDeny, std::string> kernel_deny(const Node& cond) {
    std::vector<const Node*> parts;
    conjuncts(cond, parts);
    std::uint32_t types = kAllTypes;
    std::optional<std::vector<std::string>> names;
    std::optional<std::vector<std::string>> paths;
    bool allow = false;
    for (const Node* raw : parts) {
        const Node* n = unwrap(raw);
        bool negated = false;
        if (n->kind == Node::Kind::Not) {
            negated = true;
            n = unwrap(n->kids[0].get());
        }
        if (n->kind == Node::Kind::Const && n->value && !negated) continue;
        if (auto entries = exec_paths(*n)) {
            if (paths) return "more than one executable test in a deny rule: " + kWhat;
            paths = std::move(*entries);
            allow = negated;
            continue;
        }
        if (n->kind != Node::Kind::Pred) {
            return std::string(n->kind == Node::Kind::Or ? "'or'" : "this condition") +
                   " cannot be enforced by the module: " + kWhat;
        }
        const Pred& p = *n->pred;
        const FieldId id = p.field.def->id;
        const std::string field(p.field.def->name);
        if (id == FieldId::EvtType) {
            types &= type_mask(*raw);
            continue;
        }
        if (id == FieldId::SysName && !negated && (p.op == Op::Eq || p.op == Op::In)) {
            names = p.strs;
            types &= bit(EventType::Syscall);  // only syscall events have a syscall.name
            continue;
        }
        if (is_path_field(id) && p.op == Op::Exists && !negated) continue;
        return "'" + field + " " + std::string(op_name(p.op)) + "'" +
               (negated ? " under 'not'" : "") +
               " cannot be checked by the module at the trap: " + kWhat;
    }
    if (!(types & (bit(EventType::Exec) | bit(EventType::Syscall))) ||
        (types & ~(bit(EventType::Exec) | bit(EventType::Syscall))) != 0)
        return "a deny rule must be about evt.type exec or syscall: " + kWhat;
    KernelDeny d;
    const bool exec_only = names && std::all_of(names->begin(), names->end(), is_exec_syscall);
    if (paths) {
        if (types & bit(EventType::Syscall) && !(types & bit(EventType::Exec)) && !exec_only)
            return "the module checks paths only for execve and execveat: name them in "
                   "syscall.name";
        d.exec_paths = std::move(*paths);
        d.exec_allow = allow;
        return d;
    }
    if (types & bit(EventType::Exec) && !(types & bit(EventType::Syscall))) {
        d.syscalls = {"execve", "execveat"};
        return d;
    }
    if (!names || names->empty())
        return "a syscall deny rule must name its syscalls (syscall.name = or in)";
    d.syscalls = std::move(*names);
    return d;
}

}  // namespace detail

namespace {
bool ieq(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}
}  // namespace

bool VmScope::matches(const VmIdentity& vm) const {
    if (!names.empty() && std::none_of(names.begin(), names.end(), [&](const std::string& g) {
            return detail::glob_match(g, vm.name);
        }))
        return false;
    if (!uuids.empty() && std::none_of(uuids.begin(), uuids.end(),
                                       [&](const std::string& u) { return ieq(u, vm.uuid); }))
        return false;
    for (const auto& [key, glob] : metadata) {
        const auto it = vm.metadata.find(key);
        if (it == vm.metadata.end() || !detail::glob_match(glob, it->second)) return false;
    }
    return true;
}

PolicySet PolicySet::for_vm(const VmIdentity& vm) const {
    auto impl = std::make_shared<Impl>();
    impl->base = impl_->base ? impl_->base : impl_;  // the set that owns the rules
    impl->memo_slots = impl_->memo_slots;
    for (const auto& c : impl_->compiled) {
        if (!vm.policy.empty() && !c.rule->policy.empty() && c.rule->policy != vm.policy) continue;
        if (!c.rule->scope || c.rule->scope->matches(vm)) impl->compiled.push_back(c);
    }
    impl->index();
    return PolicySet(std::move(impl));
}

bool PolicySet::defines_policy(std::string_view name) const {
    const auto& all = rules();
    return std::any_of(all.begin(), all.end(), [&](const Rule& r) { return r.policy == name; });
}

Enforcement enforcement(const PolicySet& set) {
    Enforcement e;
    std::set<std::string> syscalls, deny_paths;
    std::optional<std::vector<std::string>> allow;
    for (const Rule* rp : set.active_rules()) {
        const Rule& r = *rp;
        if (r.action != Action::Deny || r.mode != Mode::Enforce || !r.kernel_deny) continue;
        const KernelDeny& d = *r.kernel_deny;
        e.rules.push_back(&r);
        syscalls.insert(d.syscalls.begin(), d.syscalls.end());
        if (!d.exec_allow) {
            deny_paths.insert(d.exec_paths.begin(), d.exec_paths.end());
            continue;
        }
        if (!allow) {
            allow = d.exec_paths;
            continue;
        }
        // Allowed only where every allow list allows: exact paths can be intersected.
        const auto has_prefix = [](const std::vector<std::string>& v) {
            return std::any_of(v.begin(), v.end(),
                               [](const std::string& p) { return p.ends_with('*'); });
        };
        if (has_prefix(*allow) || has_prefix(d.exec_paths)) {
            e = Enforcement{};
            e.error = "rule '" + r.name +
                      "': two exec allow lists with prefixes cannot be enforced together";
            return e;
        }
        std::vector<std::string> both;
        for (const auto& p : *allow)
            if (std::find(d.exec_paths.begin(), d.exec_paths.end(), p) != d.exec_paths.end())
                both.push_back(p);
        allow = std::move(both);
    }
    e.deny_syscalls.assign(syscalls.begin(), syscalls.end());
    if (!allow) {
        e.exec_paths.assign(deny_paths.begin(), deny_paths.end());
        return e;
    }
    // An allow list with deny rules: take the denied paths out of it.
    const auto denied = [&](const std::string& p) {
        return std::any_of(deny_paths.begin(), deny_paths.end(), [&](const std::string& d) {
            return d.ends_with('*') ? std::string_view(p).starts_with(
                                          std::string_view(d).substr(0, d.size() - 1))
                                    : d == p;
        });
    };
    for (const auto& d : deny_paths) {
        const bool under_allowed_prefix =
            std::any_of(allow->begin(), allow->end(), [&](const std::string& a) {
                return a.ends_with('*') && a != d &&
                       std::string_view(d).starts_with(std::string_view(a).substr(0, a.size() - 1));
            });
        if (under_allowed_prefix) {
            e = Enforcement{};
            e.error = "the denied path '" + d +
                      "' lies under a prefix an allow list allows; the module cannot enforce both";
            return e;
        }
    }
    e.exec_allow = true;
    for (auto& p : *allow)
        if (!denied(p)) e.exec_paths.push_back(std::move(p));
    return e;
}

}  // namespace policy
