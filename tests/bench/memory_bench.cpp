// make bench: guest-physical read paths the daemon can use, measured on this machine with
// this process standing in for QEMU. ProcessMemory (process_vm_readv through the module's
// memslot map) is what vminsightd uses; pread on /proc/PID/mem is the alternative. An ioctl
// in the module cannot use kvm_read_guest: it copies from the *caller's* address space, not
// QEMU's, so the kernel path would need get_user_pages_remote on another mm per read.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "vmi/process_memory.hpp"

namespace {

constexpr std::size_t kRam = 256u << 20;  // the lab guest's RAM size
constexpr int kReads = 200000;

template <class F>
double pages_per_second(F&& read_page) {
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<std::uint64_t> page(0, kRam / 4096 - 1);
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kReads; ++i)
        if (!read_page(page(rng) * 4096)) return 0;
    return kReads / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main() {
    std::vector<std::byte> ram(kRam, std::byte{1});  // "guest RAM" at gpa 0
    const auto hva = reinterpret_cast<std::uint64_t>(ram.data());
    vmi::ProcessMemory mem(getpid(), {{0, kRam, hva}});
    std::vector<std::byte> page(4096);

    const double vm_readv =
        pages_per_second([&](std::uint64_t gpa) { return mem.read_phys(gpa, page).ok(); });
    const int fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
    const double proc_mem = pages_per_second([&](std::uint64_t gpa) {
        return pread(fd, page.data(), page.size(), static_cast<off_t>(hva + gpa)) == 4096;
    });
    close(fd);
    std::uint64_t words = 0;
    const double u64s = pages_per_second([&](std::uint64_t gpa) {
        auto v = mem.read_u64(gpa + 8);
        words += v.ok();
        return v.ok();
    });
    std::printf("guest-read process_vm_readv: %.0f thousand random 4 KiB pages/s (%.1f GB/s)\n",
                vm_readv / 1e3, vm_readv * 4096 / 1e9);
    std::printf(
        "guest-read /proc/pid/mem:    %.0f thousand random 4 KiB pages/s (alternative, not used)\n",
        proc_mem / 1e3);
    std::printf("guest-read u64 (pointer chase step): %.1f million/s\n", u64s / 1e6);
    return vm_readv > 0 && proc_mem > 0 && words == kReads ? 0 : 1;
}
