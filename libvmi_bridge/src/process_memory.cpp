#include "vmi/process_memory.hpp"

#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <mutex>
#include <stdexcept>
#include <system_error>

namespace vmi {

namespace {

// Remote iovecs per syscall; well under IOV_MAX (1024), small enough to live on the stack.
constexpr std::size_t kBatch = 64;

Result<std::vector<Memslot>> validate(std::vector<Memslot> slots) {
    std::sort(slots.begin(), slots.end(),
              [](const Memslot& a, const Memslot& b) { return a.gpa < b.gpa; });
    for (std::size_t i = 0; i < slots.size(); ++i) {
        const Memslot& s = slots[i];
        if (s.size == 0 || !range_fits(s.gpa, s.size) || !range_fits(s.hva, s.size)) {
            return Error{Fault::kInvalidFormat, "memslot " + std::to_string(i) + " empty or wraps"};
        }
        if (i > 0 && slots[i - 1].gpa + slots[i - 1].size > s.gpa) {
            return Error{Fault::kInvalidFormat, "memslots overlap"};
        }
    }
    return slots;
}

}  // namespace

ProcessMemory::ProcessMemory(pid_t pid, std::vector<Memslot> slots) : pid_(pid) {
    auto st = set_memslots(std::move(slots));
    if (!st) throw std::invalid_argument(st.error().message());
}

Status ProcessMemory::set_memslots(std::vector<Memslot> slots) {
    auto valid = validate(std::move(slots));
    if (!valid) return std::move(valid).error();
    std::unique_lock lock(mu_);
    slots_ = std::move(valid).value();
    return {};
}

Status ProcessMemory::read_phys(std::uint64_t gpa, std::span<std::byte> out) {
    if (!range_fits(gpa, out.size())) return Fault::kUnmapped;
    std::shared_lock lock(mu_);

    std::array<iovec, kBatch> remote{};
    std::size_t nremote = 0;
    std::size_t batch_start = 0;  // offset in `out` where the pending batch begins
    std::size_t batch_len = 0;

    auto flush = [&]() -> Status {
        if (nremote == 0) return {};
        iovec local{out.data() + batch_start, batch_len};
        ssize_t n = ::process_vm_readv(pid_, &local, 1, remote.data(), nremote, 0);
        if (n < 0) return Error{Fault::kReadFailed, std::generic_category().message(errno)};
        if (static_cast<std::size_t>(n) != batch_len)
            return Error{Fault::kReadFailed, "short read"};
        batch_start += batch_len;
        batch_len = 0;
        nremote = 0;
        return {};
    };

    std::size_t done = 0;
    while (done < out.size()) {
        std::uint64_t addr = gpa + done;
        // First slot whose start is > addr; the candidate is the one before it.
        auto it = std::upper_bound(slots_.begin(), slots_.end(), addr,
                                   [](std::uint64_t a, const Memslot& s) { return a < s.gpa; });
        if (it == slots_.begin()) return Fault::kUnmapped;
        const Memslot& slot = *std::prev(it);
        std::uint64_t off = addr - slot.gpa;
        if (off >= slot.size) return Fault::kUnmapped;
        std::uint64_t hva = slot.hva + off;
        // Page-sized pieces so a failure is attributable and never spans two host mappings.
        std::uint64_t n = std::min({static_cast<std::uint64_t>(out.size() - done), slot.size - off,
                                    kPageSize - (hva & kPageMask)});
        if (nremote == kBatch) {
            if (auto st = flush(); !st) return st;
        }
        // A remote address, never dereferenced here; the int-to-pointer cast is inherent.
        // NOLINTNEXTLINE(performance-no-int-to-ptr)
        void* remote_base = reinterpret_cast<void*>(hva);
        remote[nremote++] = iovec{remote_base, static_cast<std::size_t>(n)};
        batch_len += static_cast<std::size_t>(n);
        done += static_cast<std::size_t>(n);
    }
    return flush();
}

Status ProcessMemory::write_phys(std::uint64_t gpa, std::span<const std::byte> in,
                                 std::size_t* written) {
    std::size_t done = 0;
    if (written) *written = 0;
    if (!range_fits(gpa, in.size())) return Fault::kUnmapped;
    std::shared_lock lock(mu_);
    while (done < in.size()) {
        const std::uint64_t addr = gpa + done;
        auto it = std::upper_bound(slots_.begin(), slots_.end(), addr,
                                   [](std::uint64_t a, const Memslot& s) { return a < s.gpa; });
        if (it == slots_.begin()) return Fault::kUnmapped;
        const Memslot& slot = *std::prev(it);
        const std::uint64_t off = addr - slot.gpa;
        if (off >= slot.size) return Fault::kUnmapped;
        const std::uint64_t hva = slot.hva + off;
        const std::uint64_t n = std::min({static_cast<std::uint64_t>(in.size() - done),
                                          slot.size - off, kPageSize - (hva & kPageMask)});
        // process_vm_writev takes a non-const local iovec; it only reads from it.
        iovec local{const_cast<std::byte*>(in.data() + done), static_cast<std::size_t>(n)};
        // NOLINTNEXTLINE(performance-no-int-to-ptr)
        iovec remote{reinterpret_cast<void*>(hva), static_cast<std::size_t>(n)};
        const ssize_t w = ::process_vm_writev(pid_, &local, 1, &remote, 1, 0);
        if (w < 0) return Error{Fault::kReadFailed, std::generic_category().message(errno)};
        done += static_cast<std::size_t>(w);
        if (written) *written = done;
        if (static_cast<std::uint64_t>(w) != n) return Error{Fault::kReadFailed, "short write"};
    }
    return {};
}

}  // namespace vmi
