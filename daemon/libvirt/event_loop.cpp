#include "libvirt/event_loop.hpp"

#include <libvirt/libvirt.h>

#include <atomic>
#include <thread>

#include "libvirt/connection.hpp"

namespace vmid::libvirt {

namespace {

class EventLoop {
  public:
    EventLoop() {
        if (virEventRegisterDefaultImpl() < 0)
            throw LibvirtError("libvirt event loop: " + last_error());
        thread_ = std::jthread([this] {
            while (!stop_.load()) virEventRunDefaultImpl();
        });
    }
    // At exit: a timeout of 0 wakes the loop so it sees stop_ and returns.
    ~EventLoop() {
        stop_.store(true);
        const int t = virEventAddTimeout(
            0, [](int id, void*) { virEventRemoveTimeout(id); }, nullptr, nullptr);
        if (t < 0) thread_.detach();  // cannot wake it; do not hang the exit
    }
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

  private:
    std::atomic<bool> stop_{false};
    std::jthread thread_;
};

}  // namespace

void start_event_loop() { static EventLoop loop; }

}  // namespace vmid::libvirt
