// Small formatters every event uses.
#pragma once

#include <cstdint>
#include <string>

namespace vmid {

/// "0x1f" (addresses, CR3 values, raw arguments).
std::string hex(std::uint64_t v);
/// The current time as an ECS @timestamp: "2026-11-26T19:03:04.123456Z".
std::string utc_now();
/// CLOCK_MONOTONIC in ns: the clock of the module's records.
std::uint64_t monotonic_ns();

}  // namespace vmid
