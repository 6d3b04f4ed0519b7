#include "live_guest.hpp"

#include <poll.h>

#include <algorithm>

namespace vmid {

LiveGuest::LiveGuest(pid_t qemu_pid, std::chrono::milliseconds cr3_wait, const std::string& device)
    : pid_(qemu_pid), memory_(qemu_pid, {}) {
    const std::string who = "qemu pid " + std::to_string(qemu_pid);
    try {
        vm_ = locate_vm(qemu_pid);
        // No busy wait: a held VM is held by a long-lived session (normally vminsightd).
        session_ =
            std::make_unique<KmodSession>(device, vm_.vm_fd.get(), 0, std::chrono::milliseconds(0));
    } catch (const KmodBusy&) {
        throw LiveError(who +
                        ": the VM is attached by vminsightd (or another vminsight session); the "
                        "module allows one session per VM. `vminsightctl ps DOMAIN` gives the "
                        "live process list from the daemon");
    } catch (const std::runtime_error& e) {
        throw LiveError(e.what());
    }
    refresh_memslots();
    const auto deadline = std::chrono::steady_clock::now() + cr3_wait;
    for (;;) {
        drain();
        if (!seen_.empty()) break;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            throw LiveError(who + ": no CR3 record from the module within " +
                            std::to_string(cr3_wait.count()) + " ms (is the guest running?)");
        pollfd p{session_->fd(), POLLIN, 0};
        ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 100)));
    }
}

void LiveGuest::refresh_memslots() {
    std::uint64_t gen = 0;
    const auto slots = session_->memslots(&gen);
    if (gen == generation_) return;
    std::vector<vmi::Memslot> out;
    std::uint64_t ram = 0, top = 0;
    for (const auto& s : slots) {
        out.push_back({s.gpa, s.size, s.hva});
        ram += s.size;
        top = std::max(top, s.gpa + s.size);
    }
    if (auto st = memory_.set_memslots(std::move(out)); !st)
        throw LiveError("qemu pid " + std::to_string(pid_) +
                        ": memory map: " + st.error().message());
    generation_ = gen;
    ram_bytes_ = ram;
    max_gpa_ = top;
}

void LiveGuest::drain() {
    session_->ring().drain([&](const vmi_record& r) {
        if (r.type != VMI_REC_CR3 || r.cr3.new_cr3 == 0) return;
        last_cr3_[r.vcpu] = r.cr3.new_cr3;
        // Bounded: a guest runs few address spaces at a time, but keep the list short anyway.
        if (std::find(seen_.begin(), seen_.end(), r.cr3.new_cr3) == seen_.end() &&
            seen_.size() < 64)
            seen_.push_back(r.cr3.new_cr3);
    });
}

std::vector<std::uint64_t> LiveGuest::cr3s() {
    drain();
    std::vector<std::uint64_t> out;
    for (const auto& [vcpu, cr3] : last_cr3_) out.push_back(cr3);
    for (std::uint64_t c : seen_)
        if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
    return out;
}

std::optional<std::uint64_t> LiveGuest::vcpu_cr3(std::uint32_t vcpu) {
    drain();
    auto it = last_cr3_.find(vcpu);
    if (it == last_cr3_.end()) return std::nullopt;
    return it->second;
}

std::uint32_t LiveGuest::nr_vcpus() const { return session_->status().nr_vcpus; }

}  // namespace vmid
