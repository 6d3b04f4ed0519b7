// Pauses and resumes a bare QEMU through its QMP socket (`-qmp unix:PATH,server=on`), for the
// pause_vm rule action. A VM that libvirt manages is paused through libvirt instead: libvirt
// holds its own monitor and would not know of a pause behind its back.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace vmid {

/// The QMP socket path in a QEMU command line (`-qmp unix:PATH[,opts]` or
/// `-qmp unix:path=PATH`), or nullopt.
std::optional<std::string> qmp_socket_from_cmdline(const std::vector<std::string>& argv);

/// The command line of process `pid` (/proc/PID/cmdline); empty if unreadable.
std::vector<std::string> process_cmdline(int pid);

class QmpClient {
  public:
    explicit QmpClient(std::string socket_path,
                       std::chrono::milliseconds timeout = std::chrono::seconds(2));
    /// Connects, negotiates capabilities and runs `command` (e.g. "stop", "cont",
    /// "query-status"); returns its "return" value. Throws std::runtime_error naming the socket
    /// and what failed (connect, timeout, a QMP error's class and description).
    nlohmann::json execute(const std::string& command) const;
    [[nodiscard]] const std::string& path() const noexcept { return path_; }

  private:
    std::string path_;
    std::chrono::milliseconds timeout_;
};

}  // namespace vmid
