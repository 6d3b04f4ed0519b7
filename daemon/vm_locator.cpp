#include "vm_locator.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>

namespace vmid {
namespace fs = std::filesystem;

namespace {

std::string errno_text() { return std::strerror(errno); }

// Direct syscalls: glibc 2.36's <sys/pidfd.h> lacks extern "C" and does not link from C++.
int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }
int pidfd_getfd(int pidfd, int fd) {
    return static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, fd, 0));
}

int find_vm_fd(pid_t pid) {
    const fs::path dir = "/proc/" + std::to_string(pid) + "/fd";
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec)
        throw LocateError("qemu pid " + std::to_string(pid) + ": cannot list " + dir.string() +
                          ": " + ec.message());
    for (const auto& entry : it) {
        const auto target = fs::read_symlink(entry.path(), ec);
        if (ec || target != "anon_inode:kvm-vm") continue;
        const std::string name = entry.path().filename();
        int fd = -1;
        auto [p, err] = std::from_chars(name.data(), name.data() + name.size(), fd);
        if (err == std::errc() && p == name.data() + name.size()) return fd;
    }
    throw LocateError("qemu pid " + std::to_string(pid) +
                      " holds no KVM VM fd (is it running with KVM?)");
}

}  // namespace

LocatedVm locate_vm(pid_t qemu_pid) {
    LocatedVm vm;
    vm.pidfd = UniqueFd(pidfd_open(qemu_pid));
    if (!vm.pidfd.valid())
        throw LocateError("qemu pid " + std::to_string(qemu_pid) + ": pidfd_open: " + errno_text());
    vm.remote_fd = find_vm_fd(qemu_pid);
    vm.vm_fd = UniqueFd(pidfd_getfd(vm.pidfd.get(), vm.remote_fd));
    if (!vm.vm_fd.valid())
        throw LocateError("qemu pid " + std::to_string(qemu_pid) + ": pidfd_getfd(fd " +
                          std::to_string(vm.remote_fd) + "): " + errno_text());
    return vm;
}

}  // namespace vmid
