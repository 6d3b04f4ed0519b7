// A finished syscall as an event: the calling process, the call by name with its arguments
// decoded (paths and addresses as the guest passed them), and how it ended.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "process_tracker.hpp"
#include "syscall_assembler.hpp"

namespace vmid {

/// `proc` may be null: the caller could not be named (its address space died unseen).
nlohmann::json syscall_event(const SyscallCall& call, const GuestProcess* proc,
                             const std::string& vm_name);

}  // namespace vmid
