// The dump_memory rule action: a guest's RAM written as an ELF core (the format of QEMU's
// dump-guest-memory, which `vminsight-inspect` and Volatility read) for forensics. The dump
// runs on its own thread, so capture never waits for the disk; its end is an event.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "event_sink.hpp"
#include "vmi/process_memory.hpp"

namespace vmid {

class MemoryDumper {
  public:
    /// Dumps go to `dir` (created 0700 if missing); at most `max_bytes` each.
    MemoryDumper(boost::asio::io_context& io, EventSink& sink, std::filesystem::path dir,
                 std::uint64_t max_bytes, std::string vm_name);
    ~MemoryDumper();  // waits for a dump under way
    MemoryDumper(const MemoryDumper&) = delete;
    MemoryDumper& operator=(const MemoryDumper&) = delete;

    /// Starts dumping the RAM of QEMU `pid` in `slots` (as it is: the caller stops the VM
    /// for a consistent image). One dump at a time: returns "started: PATH", or "skipped: ..." /
    /// "failed: ..." saying why none was started. Its end is a "memory-dump-written" or
    /// "memory-dump-failed" event in the feed.
    /// `cr3`: a page-table root that was valid when the dump began (for `vminsight-inspect
    /// --cr3`, as these dumps carry no vCPU notes); 0 if none is known.
    /// `done` runs on the io_context once the dump is over (written or failed), or at once
    /// if none was started.
    std::string start(pid_t pid, std::vector<vmi::Memslot> slots, const std::string& reason,
                      std::uint64_t cr3, std::function<void()> done = nullptr);

    [[nodiscard]] bool busy() const noexcept { return busy_; }

  private:
    boost::asio::io_context& io_;
    EventSink& sink_;
    std::filesystem::path dir_;
    std::uint64_t max_bytes_;
    std::string vm_name_;
    std::atomic<bool> busy_{false};
    std::jthread worker_;
};

/// "web-01-20261126T221503Z-read-shadow-file.elf": only [A-Za-z0-9._-] from guest-free names.
std::string dump_file_name(const std::string& vm, const std::string& reason,
                           const std::string& utc_compact);

}  // namespace vmid
