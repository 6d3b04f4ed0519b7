// Stopping and continuing a libvirt domain for pause_vm and memory dumps. libvirt owns QEMU's
// QMP socket, so this goes through libvirt (suspend/resume). Such a call may wait for the
// domain's job lock (up to libvirt's job timeout, 30 s) and the daemon's event loop must not:
// the call runs on a thread of its own and is waited for only a bounded time.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "vm_responder.hpp"

namespace vmid::libvirt {

/// Runs `call` on a thread of its own and waits at most `limit`: returns when it finished,
/// rethrows what it threw, or throws std::runtime_error naming `what` if it is still running
/// (it then completes in the background; it must own everything it uses).
void run_bounded(std::function<void()> call, std::chrono::milliseconds limit,
                 const std::string& what);

/// "stop" / "cont" on the domain `uuid` of `uri`, each through a read-write connection of its
/// own, bounded by `limit`.
RunControl domain_run_control(const std::string& uri, const std::string& uuid,
                              std::chrono::milliseconds limit = std::chrono::seconds(2));

}  // namespace vmid::libvirt
