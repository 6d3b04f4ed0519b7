#include "libvirt/run_control.hpp"

#include <libvirt/libvirt.h>

#include <future>
#include <memory>
#include <stdexcept>
#include <thread>

#include "libvirt/connection.hpp"

namespace vmid::libvirt {

void run_bounded(std::function<void()> call, std::chrono::milliseconds limit,
                 const std::string& what) {
    auto task = std::make_shared<std::packaged_task<void()>>(std::move(call));
    std::future<void> done = task->get_future();
    std::thread([task] { (*task)(); }).detach();
    if (done.wait_for(limit) == std::future_status::timeout)
        throw std::runtime_error(what + ": not done after " + std::to_string(limit.count()) +
                                 " ms (libvirt is waiting on the domain); it completes later");
    done.get();
}

RunControl domain_run_control(const std::string& uri, const std::string& uuid,
                              std::chrono::milliseconds limit) {
    return {[uri, uuid, limit](const std::string& cmd) {
                run_bounded(
                    [uri, uuid, cmd] {
                        const auto conn = connect(uri, /*read_only=*/false);
                        const auto dom = lookup(conn.get(), uuid);
                        const int r = cmd == "stop" ? virDomainSuspend(dom.get())
                                                    : virDomainResume(dom.get());
                        if (r < 0) throw LibvirtError("libvirt " + cmd + ": " + last_error());
                    },
                    limit, "libvirt " + cmd);
            },
            "libvirt", uri};
}

}  // namespace vmid::libvirt
