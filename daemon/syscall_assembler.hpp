// Joins the module's syscall records into calls: a SYSCALL record, the DATA records right
// after it (one captured argument value), and the SYSRET record that names it by sequence
// number. Pure logic over records; the caller decides where finished calls go.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "vminsight.h"

namespace vmid {

struct SyscallCall {
    std::uint64_t seq = 0;  // of the SYSCALL record
    std::uint32_t vcpu = 0;
    std::uint64_t time_ns = 0;  // host CLOCK_MONOTONIC at the call
    std::uint64_t nr = 0;
    std::array<std::uint64_t, 6> args{};
    std::uint64_t cr3 = 0, rip = 0;
    std::uint64_t task = 0;  // the guest's task_struct that made the call; 0 if unknown
    std::int32_t tgid = -1;  // the caller's pid and name, read at the call; -1 / "" unknown
    std::string comm;
    bool denied = false;                       // the module refused it: it returned -deny_errno
    std::optional<std::int64_t> ret;           // from its SYSRET
    std::optional<std::uint64_t> ret_time_ns;  // when it returned
    int data_arg = -1;                         // argument the captured value belongs to
    std::string data;                          // the value's bytes, as read from the guest
    bool data_truncated = false, data_fault = false;
    // execve's argv, read at the call (the module's VMI_RECF_ARGV records); bounded there.
    std::vector<std::string> argv;
    int argv_arg = -1;  // the argument the vector is at
    std::string argv_bytes;
    bool argv_captured = false, argv_truncated = false;
};

struct AssemblerStats {
    std::uint64_t calls = 0;           // SYSCALL records seen
    std::uint64_t returned = 0;        // SYSRETs matched to their call
    std::uint64_t no_return = 0;       // calls given up on after the hold (execve, exit, IRET)
    std::uint64_t orphan_returns = 0;  // SYSRETs of calls we never saw (attached mid-call, lost)
    std::uint64_t malformed = 0;       // DATA records out of place
};

class SyscallAssembler {
  public:
    using Sink = std::function<void(SyscallCall&&)>;
    /// Calls wait at most `hold_ns` for their SYSRET; at most `max_held` wait at once.
    SyscallAssembler(Sink sink, std::uint64_t hold_ns, std::size_t max_held);

    /// Takes one record of any type; returns false (and does nothing) for non-syscall ones.
    bool feed(const vmi_record& rec);
    /// Sends on the calls that entered before `now_ns - hold` and have not returned.
    void expire(std::uint64_t now_ns);
    /// Sends on everything held (detach).
    void flush();

    [[nodiscard]] const AssemblerStats& stats() const noexcept { return stats_; }
    [[nodiscard]] std::size_t held() const noexcept { return held_.size(); }

  private:
    void finish_entry();
    void add_argv(const vmi_record& rec);
    void release(std::map<std::uint64_t, SyscallCall>::iterator it);

    Sink sink_;
    std::uint64_t hold_ns_;
    std::size_t max_held_;
    std::optional<SyscallCall> entering_;  // a SYSCALL still collecting its DATA records
    std::uint32_t data_expected_ = 0;
    std::map<std::uint64_t, SyscallCall> held_;  // by seq: waiting for a SYSRET
    AssemblerStats stats_;
};

}  // namespace vmid
