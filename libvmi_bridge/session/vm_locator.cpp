#include "vm_locator.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

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

namespace {

std::string lower(std::string v) {
    for (char& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return v;
}

// Whether the command line at `cmdline` has "-uuid UUID" (UUID lower-case).
bool runs_with_uuid(const fs::path& cmdline, const std::string& want) {
    std::ifstream in(cmdline, std::ios::binary);
    // QEMU's command lines are long but bounded; nothing else needs reading whole.
    std::string all(256 * 1024, '\0');
    in.read(all.data(), static_cast<std::streamsize>(all.size()));
    all.resize(static_cast<std::size_t>(in.gcount()));
    for (std::size_t at = 0; at < all.size();) {
        const std::size_t nul = all.find('\0', at);
        const std::string_view arg(all.data() + at,
                                   (nul == std::string::npos ? all.size() : nul) - at);
        if (arg == "-uuid" && nul != std::string::npos) {
            const std::size_t end = all.find('\0', nul + 1);
            return lower(all.substr(nul + 1, end == std::string::npos ? std::string::npos
                                                                      : end - nul - 1)) == want;
        }
        if (nul == std::string::npos) break;
        at = nul + 1;
    }
    return false;
}

}  // namespace

pid_t find_qemu_by_uuid(const std::string& uuid, const std::string& proc) {
    const std::string want = lower(uuid);
    std::vector<pid_t> found;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(proc, ec)) {
        const std::string name = entry.path().filename();
        pid_t pid = 0;
        auto [p, err] = std::from_chars(name.data(), name.data() + name.size(), pid);
        if (err != std::errc() || p != name.data() + name.size() || pid <= 0) continue;
        if (runs_with_uuid(entry.path() / "cmdline", want)) found.push_back(pid);
    }
    if (found.empty()) throw LocateError("no QEMU process runs with -uuid " + uuid);
    if (found.size() > 1)
        throw LocateError(std::to_string(found.size()) + " processes run with -uuid " + uuid);
    return found.front();
}

pid_t find_domain_qemu(const std::string& name, const std::string& uuid, const std::string& run_dir,
                       const std::string& proc) {
    if (name.empty() || name.find('/') != std::string::npos || name[0] == '.')
        return find_qemu_by_uuid(uuid, proc);
    const fs::path pidfile = fs::path(run_dir) / (name + ".pid");
    std::ifstream in(pidfile);
    if (!in) return find_qemu_by_uuid(uuid, proc);
    std::string text(32, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<std::size_t>(in.gcount()));
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
    pid_t pid = 0;
    auto [p, err] = std::from_chars(text.data(), text.data() + text.size(), pid);
    if (err != std::errc() || p != text.data() + text.size() || pid <= 0)
        throw LocateError(pidfile.string() + ": not a pid");
    if (!runs_with_uuid(fs::path(proc) / std::to_string(pid) / "cmdline", lower(uuid)))
        throw LocateError(pidfile.string() + ": pid " + std::to_string(pid) +
                          " does not run with -uuid " + uuid + " (not started yet, or gone)");
    return pid;
}

namespace {

// The arguments of a command line file, NUL-separated (bounded like runs_with_uuid).
std::vector<std::string> read_args(const fs::path& cmdline) {
    std::ifstream in(cmdline, std::ios::binary);
    std::string all(256 * 1024, '\0');
    in.read(all.data(), static_cast<std::streamsize>(all.size()));
    all.resize(static_cast<std::size_t>(in.gcount()));
    std::vector<std::string> out;
    for (std::size_t at = 0; at < all.size();) {
        const std::size_t nul = all.find('\0', at);
        out.push_back(all.substr(at, nul == std::string::npos ? std::string::npos : nul - at));
        if (nul == std::string::npos) break;
        at = nul + 1;
    }
    return out;
}

// "-name NAME" or "-name guest=NAME[,opts]" (QEMU's two spellings).
bool runs_with_name(const fs::path& cmdline, const std::string& name) {
    const auto args = read_args(cmdline);
    for (std::size_t i = 0; i + 1 < args.size(); ++i) {
        if (args[i] != "-name") continue;
        std::string v = args[i + 1];
        if (v.rfind("guest=", 0) == 0) v = v.substr(6, v.find(',') - 6);
        if (v == name) return true;
    }
    return false;
}

}  // namespace

pid_t find_qemu_by_name(const std::string& name, const std::string& run_dir,
                        const std::string& proc) {
    if (name.empty()) throw LocateError("empty VM name");
    if (name.find('/') == std::string::npos && name[0] != '.') {
        std::ifstream in(fs::path(run_dir) / (name + ".pid"));
        std::string text;
        if (in && std::getline(in, text)) {
            pid_t pid = 0;
            auto [p, err] = std::from_chars(text.data(), text.data() + text.size(), pid);
            if (err == std::errc() && pid > 0 && p == text.data() + text.size()) return pid;
        }
    }
    std::vector<pid_t> found;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(proc, ec)) {
        const std::string dir = entry.path().filename();
        pid_t pid = 0;
        auto [p, err] = std::from_chars(dir.data(), dir.data() + dir.size(), pid);
        if (err != std::errc() || p != dir.data() + dir.size() || pid <= 0) continue;
        if (runs_with_name(entry.path() / "cmdline", name)) found.push_back(pid);
    }
    if (found.empty()) throw LocateError("no libvirt domain or QEMU process named " + name);
    if (found.size() > 1)
        throw LocateError(std::to_string(found.size()) + " QEMU processes are named " + name);
    return found.front();
}

}  // namespace vmid
