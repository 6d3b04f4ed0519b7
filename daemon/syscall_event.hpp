// A finished syscall as an event: the calling process, the call by name with its arguments
// decoded (paths and addresses as the guest passed them), and how it ended.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "process_tracker.hpp"
#include "syscall_assembler.hpp"

namespace vmid {

/// The calls that start, replace and end processes (--lifecycle traces them).
inline constexpr std::array<std::string_view, 7> kLifecycleSyscalls = {
    "execve", "execveat", "fork", "vfork", "clone", "clone3", "exit_group"};

/// `proc` may be null: the caller could not be named (its address space died unseen).
nlohmann::json syscall_event(const SyscallCall& call, const GuestProcess* proc,
                             const std::string& vm_name);

}  // namespace vmid
