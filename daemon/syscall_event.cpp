#include "syscall_event.hpp"

#include <linux/sched.h>

#include <cstring>
#include <optional>
#include <span>

#include "event_fields.hpp"
#include "vmi/syscall_abi.hpp"

namespace vmid {
namespace {

using vmi::ArgKind;

// struct clone_args begins with its u64 flags (exit signal separate, in exit_signal).
std::optional<std::uint64_t> clone3_flags(const SyscallCall& c) {
    if (c.data_arg != 0 || c.data_fault || c.data.size() < 8) return std::nullopt;
    std::uint64_t flags = 0;
    std::memcpy(&flags, c.data.data(), sizeof flags);
    return flags;
}

// What a call means for the process lifecycle: a new process or thread (fork, clone, clone3
// returning in the parent), a new program (execve), the end (exit_group).
void add_lifecycle(const SyscallCall& c, nlohmann::json& sc) {
    const std::string_view name = vmi::syscall_name(c.nr);
    if (name == "execve" || name == "execveat") {
        sc["lifecycle"] = "exec";
    } else if (name == "exit_group") {
        sc["lifecycle"] = "exit";
        sc["exit_code"] = static_cast<std::int32_t>(c.args[0] & 0xff);
    } else if (name == "fork" || name == "vfork" || name == "clone" || name == "clone3") {
        std::optional<std::uint64_t> flags;
        if (name == "clone") flags = c.args[0];
        if (name == "clone3") flags = clone3_flags(c);
        const bool thread = flags && (*flags & CLONE_THREAD);
        sc["lifecycle"] = thread ? "thread" : "fork";
        if (c.ret && *c.ret > 0) sc[thread ? "child_tid" : "child_pid"] = *c.ret;
    }
}

std::string octal(std::uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0%llo", static_cast<unsigned long long>(v));
    return buf;
}

// One argument's value as the guest passed it; pointers the module copied are shown by
// what they point to.
nlohmann::json arg_value(const SyscallCall& c, int i, ArgKind kind, nlohmann::json& notes,
                         const std::string& name) {
    const std::uint64_t v = c.args[static_cast<std::size_t>(i)];
    const bool captured = c.data_arg == i;
    const bool shows_capture =
        kind == ArgKind::kPath || kind == ArgKind::kSockaddr || kind == ArgKind::kCloneArgs;
    if (captured && (c.data_fault || !shows_capture)) {
        if (c.data_fault) notes[name + "_unreadable"] = true;
        return hex(v);
    }
    if (captured && c.data_truncated) notes[name + "_truncated"] = true;
    switch (kind) {
        case ArgKind::kInt:
            return static_cast<std::int64_t>(v);
        case ArgKind::kUint:
            return v;
        case ArgKind::kFd: {
            const auto fd = static_cast<std::int32_t>(v);
            return fd == -100 ? nlohmann::json("AT_FDCWD") : nlohmann::json(fd);
        }
        case ArgKind::kPath:
            return captured ? nlohmann::json(c.data) : nlohmann::json(hex(v));
        case ArgKind::kSockaddr: {
            if (!captured) return hex(v);
            const auto* b = reinterpret_cast<const std::uint8_t*>(c.data.data());
            auto a = vmi::decode_sockaddr(std::span(b, c.data.size()));
            if (!a) return hex(v);
            nlohmann::json j = {{"family", a->family}};
            if (!a->address.empty()) j["address"] = a->address;
            if (a->port >= 0) j["port"] = a->port;
            return j;
        }
        case ArgKind::kOpenFlags:
            return vmi::decode_open_flags(v);
        case ArgKind::kMode:
            return octal(v);
        case ArgKind::kSignal:
            return vmi::decode_signal(v);
        case ArgKind::kProt:
            return vmi::decode_prot(v);
        case ArgKind::kCloneFlags:
            return vmi::decode_clone_flags(v);
        case ArgKind::kNsFlags:
            return vmi::decode_ns_flags(v);
        case ArgKind::kCloneArgs:
            if (auto flags = clone3_flags(c)) return vmi::decode_clone_flags(*flags & ~0xffULL);
            return hex(v);
        case ArgKind::kPtraceRequest:
            return vmi::decode_ptrace_request(v);
        case ArgKind::kSocketDomain:
            return vmi::decode_socket_domain(v);
        case ArgKind::kSocketType:
            return vmi::decode_socket_type(v);
        case ArgKind::kHex:
            break;
    }
    return hex(v);
}

}  // namespace

nlohmann::json syscall_event(const SyscallCall& c, const GuestProcess* p,
                             const std::string& vm_name) {
    const std::string_view name = vmi::syscall_name(c.nr);
    nlohmann::json sc = {{"nr", c.nr}, {"name", name.empty() ? "nr" + std::to_string(c.nr) : name}};
    nlohmann::json notes = nlohmann::json::object();
    if (const vmi::SyscallInfo* info = vmi::syscall_info(c.nr)) {
        nlohmann::json args = nlohmann::json::object();
        for (std::size_t i = 0; i < info->args.size() && i < c.args.size(); ++i) {
            const std::string an(info->args[i].name);
            args[an] = arg_value(c, static_cast<int>(i), info->args[i].kind, notes, an);
            if (c.argv_captured && c.argv_arg == static_cast<int>(i)) {
                args[an] = c.argv;
                if (c.argv_truncated) notes[an + "_truncated"] = true;
            }
        }
        sc["args"] = std::move(args);
    } else {
        nlohmann::json raw = nlohmann::json::array();
        for (std::uint64_t a : c.args) raw.push_back(hex(a));
        sc["args_raw"] = std::move(raw);
    }
    // The numbers as passed, for rules and receivers that want them exactly.
    sc["raw_args"] = c.args;
    for (auto& [k, v] : notes.items()) sc[k] = v;
    add_lifecycle(c, sc);
    std::string outcome = "unknown";
    if (c.ret) {
        sc["ret"] = *c.ret;
        const std::string err = vmi::decode_errno(*c.ret);
        if (!err.empty()) sc["error"] = err;
        outcome = err.empty() ? "success" : "failure";
    }
    if (c.denied) sc["denied"] = true;

    // Who called, as read at the call; the last listing adds what it knows of that process.
    nlohmann::json proc = {{"cr3", hex(c.cr3)}};
    if (c.task) proc["task"] = hex(c.task);
    if (p && c.tgid >= 0 && p->pid != c.tgid) p = nullptr;  // the listing knows another
    if (c.tgid >= 0) proc["pid"] = c.tgid;
    if (!c.comm.empty()) proc["name"] = c.comm;
    if (p) {
        proc["pid"] = p->pid;
        proc["ppid"] = p->ppid;
        if (c.comm.empty()) proc["name"] = p->comm;
        if (!p->exe.empty()) proc["exe"] = p->exe;
        if (p->uid >= 0) proc["uid"] = p->uid;
        if (p->euid >= 0) proc["euid"] = p->euid;
        if (p->gid >= 0) proc["gid"] = p->gid;
        if (!p->kernel_thread && !p->args.empty()) proc["args"] = p->args;
    }
    return {{"@timestamp", utc_now()},
            {"event",
             {{"kind", "event"},
              {"category", "process"},
              {"action", c.denied ? "syscall-denied" : "syscall"},
              {"outcome", outcome}}},
            {"vm", {{"name", vm_name}}},
            {"process", std::move(proc)},
            {"syscall", std::move(sc)},
            {"vminsight",
             {{"seq", c.seq},
              {"vcpu", c.vcpu},
              {"host_time_ns", c.time_ns},
              {"user_rip", hex(c.rip)}}}};
}

}  // namespace vmid
