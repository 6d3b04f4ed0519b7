#include "policy_stage.hpp"

#include <algorithm>
#include <filesystem>

#include "event_fields.hpp"
#include "vmi/syscall_abi.hpp"

namespace vmid {
namespace {

std::optional<policy::EventType> type_of(const std::string& action) {
    using T = policy::EventType;
    if (action == "process-started" || action == "process-seen") return T::Start;
    if (action == "process-exec") return T::Exec;
    if (action == "process-exited") return T::Exit;
    if (action == "process-renamed") return T::Rename;
    if (action == "syscall" || action == "syscall-denied") return T::Syscall;
    if (action == "guest-tampered") return T::Tamper;
    return std::nullopt;
}

template <class T>
std::optional<T> get(const nlohmann::json& obj, const char* key) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return std::nullopt;
    if constexpr (std::is_same_v<T, std::string>) {
        if (!it->is_string()) return std::nullopt;
    } else {
        if (!it->is_number()) return std::nullopt;
    }
    return it->get<T>();
}

}  // namespace

std::optional<policy::Event> to_policy_event(const nlohmann::json& ev) {
    const auto action =
        ev.contains("event") ? get<std::string>(ev["event"], "action") : std::nullopt;
    const auto type = action ? type_of(*action) : std::nullopt;
    if (!type) return std::nullopt;
    policy::Event e;
    e.type = *type;
    if (auto vm = ev.find("vm"); vm != ev.end()) e.vm.name = get<std::string>(*vm, "name");
    if (auto p = ev.find("process"); p != ev.end()) {
        e.proc.pid = get<std::int64_t>(*p, "pid");
        e.proc.ppid = get<std::int64_t>(*p, "ppid");
        e.proc.name = get<std::string>(*p, "name");
        e.proc.exe = get<std::string>(*p, "exe");
        e.proc.uid = get<std::int64_t>(*p, "uid");
        e.proc.euid = get<std::int64_t>(*p, "euid");
        e.proc.gid = get<std::int64_t>(*p, "gid");
        e.proc.previous_name = get<std::string>(*p, "previous_name");
        if (auto par = p->find("parent"); par != p->end() && par->is_object()) {
            e.proc.pname = get<std::string>(*par, "name");
            e.proc.pexe = get<std::string>(*par, "exe");
        }
        if (auto an = p->find("ancestors"); an != p->end() && an->is_array())
            for (const auto& s : *an)
                if (s.is_string()) e.proc.anames.push_back(s.get<std::string>());
        if (auto a = p->find("args"); a != p->end() && a->is_array()) {
            std::vector<std::string> args;
            for (const auto& s : *a)
                if (s.is_string()) args.push_back(s.get<std::string>());
            e.set_args(std::move(args));
        }
    }
    if (auto own = ev.find("vminsight"); own != ev.end() && own->is_object())
        if (auto t = own->find("tamper"); t != own->end() && t->is_object()) {
            e.tamper.kind = get<std::string>(*t, "kind");
            e.tamper.target = get<std::string>(*t, "target");
            e.tamper.name = get<std::string>(*t, "name");
            e.tamper.symbol = get<std::string>(*t, "actual_symbol");
            e.tamper.expected = get<std::string>(*t, "expected");
            e.tamper.actual = get<std::string>(*t, "actual");
        }
    if (auto s = ev.find("syscall"); s != ev.end()) {
        e.syscall.name = get<std::string>(*s, "name");
        e.syscall.nr = get<std::int64_t>(*s, "nr");
        if (auto raw = s->find("raw_args"); raw != s->end() && raw->is_array())
            for (const auto& a : *raw)
                if (a.is_number()) e.syscall.args.push_back(a.get<std::int64_t>());
        if (auto args = s->find("args"); args != s->end() && args->is_object()) {
            // The path the module captured (renames and links: the destination).
            std::string key = "path";
            if (const auto nr = get<std::int64_t>(*s, "nr"))
                if (const auto spec = vmi::syscall_capture(static_cast<std::uint64_t>(*nr)))
                    if (const auto* info = vmi::syscall_info(static_cast<std::uint64_t>(*nr));
                        info && spec->arg < static_cast<int>(info->args.size()))
                        key = std::string(info->args[static_cast<std::size_t>(spec->arg)].name);
            e.syscall.path = get<std::string>(*args, key.c_str());
            if (auto addr = args->find("addr"); addr != args->end() && addr->is_object()) {
                e.syscall.addr = get<std::string>(*addr, "address");
                e.syscall.port = get<std::int64_t>(*addr, "port");
            }
        }
        // The open flags, by their place in the ABI (openat: 2, open: 1).
        if (e.syscall.nr)
            if (const vmi::SyscallInfo* info =
                    vmi::syscall_info(static_cast<std::uint64_t>(*e.syscall.nr)))
                for (std::size_t i = 0; i < info->args.size(); ++i)
                    if (info->args[i].kind == vmi::ArgKind::kOpenFlags && i < e.syscall.args.size())
                        e.syscall.flags = e.syscall.args[i];
    }
    return e;
}

std::optional<policy::Event> exec_from_syscall(const nlohmann::json& ev) {
    auto sc = ev.find("syscall");
    if (sc == ev.end() || sc->value("lifecycle", "") != "exec") return std::nullopt;
    // A denied exec is an attempt the module stopped: rules judge it (and their alerts say
    // it was denied); one that failed on its own ran nothing.
    const bool denied = sc->value("denied", false);
    if (auto ret = get<std::int64_t>(*sc, "ret"); !denied && ret && *ret != 0) return std::nullopt;
    auto args = sc->find("args");
    const auto path = args != sc->end() ? get<std::string>(*args, "path") : std::nullopt;
    auto e = to_policy_event(ev);
    if (!path || path->empty() || !e) return std::nullopt;
    e->type = policy::EventType::Exec;
    std::vector<std::string> argv;
    if (auto a = args->find("argv"); a != args->end() && a->is_array())
        for (const auto& x : *a)
            if (x.is_string()) argv.push_back(x.get<std::string>());
    const auto base = [](const std::string& p) { return p.substr(p.rfind('/') + 1); };
    if (*path == "/proc/self/exe") {
        // A multi-call binary re-running itself (busybox runs its applets so): the program
        // is the caller's own, the applet is argv[0].
        if (e->proc.exe) e->proc.name = base(*e->proc.exe);
        if (!argv.empty() && !argv[0].empty()) e->proc.name = base(argv[0]);
    } else {
        e->proc.exe = *path;
        e->proc.name = base(*path);
    }
    if (!argv.empty() || args->contains("argv")) e->set_args(std::move(argv));
    e->syscall = {};
    return e;
}

std::vector<std::string> syscalls_needed(const policy::PolicySet& set) {
    std::vector<std::string> out;
    // Exec rules judge every exec as it is made (with its argv), not only the programs a
    // listing happens to catch alive.
    if (set.rules_for(policy::EventType::Exec) > 0) out = {"execve", "execveat"};
    for (std::uint32_t nr = 0; nr < vmi::kSyscallCount; ++nr) {
        const std::string_view name = vmi::syscall_name(nr);
        if (!name.empty() && set.rules_for_syscall(name) > 0 &&
            std::find(out.begin(), out.end(), name) == out.end())
            out.emplace_back(name);
    }
    return out;
}

std::vector<std::string> with_rule_syscalls(std::vector<std::string> asked,
                                            const policy::PolicySet& set) {
    for (auto& name : syscalls_needed(set))
        if (std::find(asked.begin(), asked.end(), name) == asked.end())
            asked.push_back(std::move(name));
    return asked;
}

nlohmann::json rule_response(const policy::Rule& rule, const nlohmann::json& trigger,
                             ResponseActions* actions) {
    nlohmann::json r = {{"action", policy::action_name(rule.action)}};
    if (rule.mode == policy::Mode::Monitor) {
        r["taken"] = false;
        r["result"] = "monitor mode: not enforced";
        return r;
    }
    switch (rule.action) {
        case policy::Action::Alert:
            return nullptr;
        case policy::Action::Deny: {
            const auto sc = trigger.find("syscall");
            const bool denied = sc != trigger.end() && sc->value("denied", false);
            r["taken"] = denied;
            r["result"] = denied ? "denied by the module; the call never ran"
                                 : "not stopped: the module did not see this as the rule's call";
            return r;
        }
        case policy::Action::PauseVm:
        case policy::Action::DumpMemory: {
            if (!actions) {
                r["taken"] = false;
                r["result"] = "no VM control in this daemon";
                return r;
            }
            const std::string result = rule.action == policy::Action::PauseVm
                                           ? actions->pause_vm(rule)
                                           : actions->dump_memory(rule);
            r["taken"] = !result.starts_with("failed") && !result.starts_with("skipped");
            r["result"] = result;
            return r;
        }
    }
    return nullptr;
}

PolicyStage::PolicyStage(EventSink& next, policy::PolicySet set, policy::VmIdentity vm,
                         ResponseActions* actions)
    : next_(next), vm_(std::move(vm)), actions_(actions), set_(set.for_vm(vm_)) {}

std::vector<std::string> PolicyStage::reload(
    const std::vector<std::string>& files,
    const std::function<void(const policy::PolicySet&)>& accept) {
    auto loaded =
        policy::PolicySet::load(std::vector<std::filesystem::path>(files.begin(), files.end()));
    std::vector<std::string> errors;
    if (!loaded) {
        for (const auto& d : loaded.errors) errors.push_back(d.str());
        return errors;
    }
    return replace(*loaded.set, accept);
}

std::vector<std::string> PolicyStage::replace(
    const policy::PolicySet& whole, const std::function<void(const policy::PolicySet&)>& accept) {
    std::vector<std::string> errors;
    policy::PolicySet next = whole.for_vm(vm_);
    if (accept) {
        try {
            accept(next);
        } catch (const std::exception& e) {
            errors.push_back(e.what());
            return errors;
        }
    }
    set_ = std::move(next);
    limiter_ = policy::RateLimiter{};  // rate limits belong to the rules they came with
    dedup_ = policy::Deduplicator{};
    return errors;
}

bool PolicyStage::judged_exec(std::int64_t pid, const std::string& exe) const {
    return std::find(recent_execs_.begin(), recent_execs_.end(), std::make_pair(pid, exe)) !=
           recent_execs_.end();
}

void PolicyStage::emit(const nlohmann::json& ev) {
    next_.emit(ev);
    matches_.clear();
    auto direct = to_policy_event(ev);
    // A listing that catches a program an execve already showed is the same exec: judged once.
    if (direct && direct->type == policy::EventType::Exec && direct->proc.pid && direct->proc.exe &&
        judged_exec(*direct->proc.pid, *direct->proc.exe))
        direct.reset();
    if (direct) set_.evaluate(*direct, matches_);
    const std::size_t direct_matches = matches_.size();
    const auto exec = exec_from_syscall(ev);
    if (exec) {
        set_.evaluate(*exec, matches_);
        if (exec->proc.pid && exec->proc.exe) {
            if (recent_execs_.size() >= kRecentExecs) recent_execs_.pop_front();
            recent_execs_.emplace_back(*exec->proc.pid, *exec->proc.exe);
        }
    }
    std::size_t index = 0;
    for (const policy::Match& m : matches_) {
        const bool from_exec = index++ >= direct_matches;
        const policy::Rule& r = *m.rule;
        const std::uint64_t now = monotonic_ns();
        std::uint64_t held = 0;
        if (!limiter_.allow(r, now) || !dedup_.allow(m, now, &held)) {
            ++suppressed_;
            continue;
        }
        ++alerts_;
        nlohmann::json alert = {
            {"@timestamp", utc_now()},
            {"event",
             {{"kind", "alert"},
              {"category", ev["event"].value("category", "process")},
              {"action", "policy-match"},
              {"trigger", ev["event"].value("action", "")}}},
            {"rule",
             {{"name", r.name},
              {"priority", policy::priority_name(r.priority)},
              {"action", policy::action_name(r.action)},
              {"mode", policy::mode_name(r.mode)},
              {"tags", r.tags},
              {"source", r.file + ":" + std::to_string(r.line)}}},
            {"message", m.output},
        };
        if (!r.policy.empty()) alert["rule"]["policy"] = r.policy;
        if (held) alert["rule"]["duplicates_suppressed"] = held;
        if (auto resp = rule_response(r, ev, actions_); !resp.is_null()) alert["response"] = resp;
        for (const char* k : {"vm", "process", "syscall"})
            if (ev.contains(k)) alert[k] = ev[k];
        // A tamper alert carries its finding (target, expected and actual values, symbols).
        if (auto v = ev.find("vminsight"); v != ev.end() && v->is_object() && v->contains("tamper"))
            alert["vminsight"]["tamper"] = (*v)["tamper"];
        if (from_exec) {
            // The alert is about the program the execve runs, not the caller before it.
            auto& p = alert["process"];
            if (exec->proc.name) p["name"] = *exec->proc.name;
            if (exec->proc.exe) p["exe"] = *exec->proc.exe;
            if (exec->proc.args) p["args"] = *exec->proc.args;
        }
        next_.emit(alert);
    }
}

}  // namespace vmid
