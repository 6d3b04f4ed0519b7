// Stable process entity ids: the one place they are computed (the bridge's process records,
// vminsight-inspect and the event feed all call this).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace vmi {

/// A guest task address as events and tools write it: "0x" and lowercase hex, no padding.
std::string task_address_text(std::uint64_t task_va);

/// The id of one process of one VM: SHA-256 over `vm`, NUL, `task` (task_address_text()),
/// NUL, the start time in decimal; the first 16 bytes as 32 lowercase hex digits. PIDs and
/// task addresses are reused, but not with the same start time, so the id stays the process's
/// own across listings and monitor restarts, and differs between VMs.
std::string process_entity_id(std::string_view vm, std::string_view task,
                              std::uint64_t start_time_ns);

/// The same for a task address as a number.
inline std::string process_entity_id(std::string_view vm, std::uint64_t task_va,
                                     std::uint64_t start_time_ns) {
    return process_entity_id(vm, task_address_text(task_va), start_time_ns);
}

}  // namespace vmi
