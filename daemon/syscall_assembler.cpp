#include "syscall_assembler.hpp"

#include <algorithm>
#include <cstring>

namespace vmid {

SyscallAssembler::SyscallAssembler(Sink sink, std::uint64_t hold_ns, std::size_t max_held)
    : sink_(std::move(sink)), hold_ns_(hold_ns), max_held_(std::max<std::size_t>(max_held, 1)) {}

bool SyscallAssembler::feed(const vmi_record& rec) {
    if (rec.type != VMI_REC_SYSCALL && rec.type != VMI_REC_SYSRET && rec.type != VMI_REC_DATA)
        return false;
    // The module writes a call's DATA records right behind it, all or none: anything else in
    // between means the call has all the data it will get.
    if (entering_ && rec.type != VMI_REC_DATA) {
        ++stats_.malformed;
        finish_entry();
    }
    if (rec.type == VMI_REC_SYSCALL) {
        ++stats_.calls;
        SyscallCall c;
        c.seq = rec.seq;
        c.vcpu = rec.vcpu;
        c.time_ns = rec.time_ns;
        c.nr = rec.sys.nr;
        std::copy(std::begin(rec.sys.args), std::end(rec.sys.args), c.args.begin());
        c.cr3 = rec.sys.cr3;
        c.rip = rec.sys.rip;
        c.task = rec.task;
        c.tgid = rec.sys.tgid;
        c.comm.assign(rec.sys.comm, strnlen(rec.sys.comm, sizeof rec.sys.comm));
        if (rec.flags & VMI_RECF_DENIED) {
            c.denied = true;
            c.ret_time_ns = rec.time_ns;
        }
        entering_ = std::move(c);
        data_expected_ = std::min<std::uint32_t>(rec.sys.data_records, 8);
        if (!data_expected_) finish_entry();
        return true;
    }
    if (rec.type == VMI_REC_DATA) {
        if (!entering_) {
            ++stats_.malformed;
            return true;
        }
        const auto& d = rec.data;
        if (rec.flags & VMI_RECF_ARGV) {
            add_argv(rec);
            if (--data_expected_ == 0) finish_entry();
            return true;
        }
        if (entering_->data_arg < 0) entering_->data_arg = d.arg;
        // Slices arrive in order; the offset guards against anything else.
        if (d.offset == entering_->data.size())
            entering_->data.append(reinterpret_cast<const char*>(d.bytes),
                                   std::min<std::size_t>(d.len, VMI_DATA_BYTES));
        else
            ++stats_.malformed;
        entering_->data_truncated |= (rec.flags & VMI_RECF_TRUNCATED) != 0;
        entering_->data_fault |= (rec.flags & VMI_RECF_FAULT) != 0;
        if (--data_expected_ == 0) finish_entry();
        return true;
    }
    // SYSRET: its call, if we saw it, is held under the call's sequence number.
    auto it = held_.find(rec.sysret.entry_seq);
    if (it == held_.end() || it->second.nr != rec.sysret.nr) {
        ++stats_.orphan_returns;
        return true;
    }
    ++stats_.returned;
    it->second.ret = static_cast<std::int64_t>(rec.sysret.ret);
    it->second.ret_time_ns = rec.time_ns;
    release(it);
    return true;
}

void SyscallAssembler::add_argv(const vmi_record& rec) {
    SyscallCall& c = *entering_;
    const auto& d = rec.data;
    if (d.offset != c.argv_bytes.size()) {
        ++stats_.malformed;
        return;
    }
    c.argv_bytes.append(reinterpret_cast<const char*>(d.bytes),
                        std::min<std::size_t>(d.len, VMI_DATA_BYTES));
    c.argv_captured = true;
    c.argv_arg = d.arg;
    c.argv_truncated |= (rec.flags & (VMI_RECF_TRUNCATED | VMI_RECF_FAULT)) != 0;
}

void SyscallAssembler::finish_entry() {
    SyscallCall c = std::move(*entering_);
    // argv: NUL-terminated strings in a row; a cut one at the end is kept as far as it goes.
    for (std::size_t at = 0; at < c.argv_bytes.size();) {
        const std::size_t nul = c.argv_bytes.find('\0', at);
        c.argv.push_back(c.argv_bytes.substr(at, nul == std::string::npos ? nul : nul - at));
        if (nul == std::string::npos) break;
        at = nul + 1;
    }
    c.argv_bytes.clear();
    entering_.reset();
    data_expected_ = 0;
    if (c.denied) {  // never ran: nothing to wait for
        sink_(std::move(c));
        return;
    }
    if (held_.size() >= max_held_) {  // bounded: the oldest gives up waiting
        ++stats_.no_return;
        release(held_.begin());
    }
    const std::uint64_t seq = c.seq;
    held_.emplace(seq, std::move(c));
}

void SyscallAssembler::release(std::map<std::uint64_t, SyscallCall>::iterator it) {
    SyscallCall c = std::move(it->second);
    held_.erase(it);
    sink_(std::move(c));
}

void SyscallAssembler::expire(std::uint64_t now_ns) {
    for (auto it = held_.begin(); it != held_.end();) {
        if (it->second.time_ns + hold_ns_ > now_ns) {
            ++it;
            continue;
        }
        ++stats_.no_return;
        auto next = std::next(it);
        release(it);
        it = next;
    }
}

void SyscallAssembler::flush() {
    if (entering_) finish_entry();
    while (!held_.empty()) {
        ++stats_.no_return;
        release(held_.begin());
    }
}

}  // namespace vmid
