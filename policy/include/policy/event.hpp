// Typed event evaluated by the policy engine. The daemon fills one of these per guest event;
// every optional left empty is "unset": `exists` is false for it and comparisons with it are
// false.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace policy {

enum class EventType : std::uint8_t { Exec, Exit, Start, Syscall, Cr3, Rename, Tamper };
inline constexpr std::size_t kEventTypeCount = 7;

// "exec", "exit", "start", "syscall", "cr3", "rename", "tamper".
std::string_view event_type_name(EventType type) noexcept;
// Accepts the names above and "fork" as an alias of "start".
std::optional<EventType> parse_event_type(std::string_view name) noexcept;

struct Event {
    EventType type = EventType::Exec;

    struct Vm {
        std::optional<std::string> name;
        std::optional<std::string> uuid;
    } vm;

    struct Proc {
        std::optional<std::int64_t> pid;
        std::optional<std::int64_t> ppid;
        std::optional<std::string> name;
        std::optional<std::string> exe;
        std::optional<std::string> cmdline;  // args joined with single spaces
        std::optional<std::vector<std::string>> args;
        std::optional<std::int64_t> uid;
        std::optional<std::int64_t> euid;
        std::optional<std::int64_t> gid;
        std::optional<std::string> pname;  // parent name
        std::optional<std::string> pexe;   // parent executable
        // Ancestor names: [0] parent (proc.aname[1]), [1] grandparent (proc.aname[2]), ...
        std::vector<std::string> anames;
        std::optional<std::string> entity_id;
        std::optional<std::string> previous_name;  // rename events
    } proc;

    struct Syscall {
        std::optional<std::string> name;
        std::optional<std::int64_t> nr;
        std::optional<std::string> path;  // decoded path (openat, execve, unlink, ...)
        std::optional<std::string> addr;  // connect/bind address
        std::optional<std::int64_t> port;
        std::optional<std::int64_t> flags;  // open flags (O_*)
        std::vector<std::int64_t> args;     // raw arguments; syscall.arg[n] is unset past the end
    } syscall;

    // Guest kernel tampering seen from the hypervisor (evt.type = tamper).
    struct Tamper {
        std::optional<std::string> kind;      // "msr_hook", "syscall_hook", "pointer_hook", ...
        std::optional<std::string> target;    // what was changed: "LSTAR", "sys_call_table[62]"
        std::optional<std::string> name;      // the symbol, module or process it is about
        std::optional<std::string> symbol;    // what the changed pointer points at now
        std::optional<std::string> expected;  // the legitimate value ("0xffffffff81a00080")
        std::optional<std::string> actual;    // the value found
    } tamper;

    // Sets proc.args and proc.cmdline (args joined with spaces) together.
    void set_args(std::vector<std::string> args);
};

}  // namespace policy
