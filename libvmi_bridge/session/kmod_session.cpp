#include "kmod_session.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vmid {
namespace {

[[noreturn]] void fail(const std::string& what) {
    throw KmodError(what + ": " + std::strerror(errno));
}

}  // namespace

KmodSession::KmodSession(const std::string& device, int vm_fd, std::uint32_t data_pages,
                         std::chrono::milliseconds busy_wait) {
    UniqueFd dev(::open(device.c_str(), O_RDWR | O_CLOEXEC));
    if (!dev.valid()) fail("open " + device + " (is vminsight.ko loaded?)");
    vmi_attach req{};
    req.vm_fd = vm_fd;
    req.data_pages = data_pages;
    // EBUSY: another session, or the last one still waiting for an idle vCPU to drop its
    // syscall traps (it does at the vCPU's next entry). Give the latter a few seconds.
    for (auto waited = std::chrono::milliseconds(0);; waited += std::chrono::milliseconds(50)) {
        session_ = UniqueFd(::ioctl(dev.get(), VMI_IOC_ATTACH, &req));
        if (session_.valid() || errno != EBUSY || waited >= busy_wait) break;
        ::usleep(50000);
    }
    if (!session_.valid() && errno == EBUSY)
        throw KmodBusy(device +
                       ": VMI_IOC_ATTACH: another session holds this VM (or is "
                       "still winding down)");
    if (!session_.valid()) fail(device + ": VMI_IOC_ATTACH");

    // Map the header page alone to learn the ring's geometry, then the whole ring.
    const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    void* h = ::mmap(nullptr, page, PROT_READ, MAP_SHARED, session_.get(), 0);
    if (h == MAP_FAILED) fail("mmap ring header");
    const auto* hdr = static_cast<const vmi_ring_header*>(h);
    const std::uint64_t bytes = hdr->data_offset + hdr->nr_records * hdr->record_size;
    ::munmap(h, page);
    if (bytes > (std::uint64_t{1} << 31))
        throw KmodError("ring header announces an implausible size");
    const std::size_t size = (bytes + page - 1) / page * page;
    void* m = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, session_.get(), 0);
    if (m == MAP_FAILED) fail("mmap ring");
    mapping_ = {static_cast<std::byte*>(m), size};
    ring_.emplace(mapping_);
}

KmodSession::~KmodSession() { close(); }

void KmodSession::close() {
    ring_.reset();
    if (!mapping_.empty()) ::munmap(mapping_.data(), mapping_.size());
    mapping_ = {};
    session_.reset();
}

vmi_status KmodSession::status() const {
    vmi_status st{};
    if (!session_.valid()) return st;
    if (::ioctl(session_.get(), VMI_IOC_STATUS, &st) < 0) fail("VMI_IOC_STATUS");
    return st;
}

void KmodSession::set_traps(std::uint32_t flags, const vmi_kvm_layout& layout) {
    vmi_traps req{};
    req.flags = flags;
    req.layout = layout;
    if (::ioctl(session_.get(), VMI_IOC_SET_TRAPS, &req) < 0) fail("VMI_IOC_SET_TRAPS");
}

void KmodSession::set_filter(vmi_syscall_filter filter,
                             const std::vector<std::string>& exec_paths) {
    std::string packed;
    for (const auto& p : exec_paths) {
        if (p.empty() || p.find('\0') != std::string::npos)
            throw KmodError("exec path list: empty path or NUL byte in \"" + p + "\"");
        packed += p;
        packed += '\0';
    }
    if (packed.size() > VMI_EXEC_PATHS_MAX)
        throw KmodError("exec path list: " + std::to_string(packed.size()) + " bytes, more than " +
                        std::to_string(VMI_EXEC_PATHS_MAX));
    filter.exec_paths = reinterpret_cast<std::uintptr_t>(packed.data());
    filter.exec_paths_len = static_cast<std::uint32_t>(packed.size());
    if (::ioctl(session_.get(), VMI_IOC_SET_FILTER, &filter) < 0) fail("VMI_IOC_SET_FILTER");
}

std::vector<GuestMemslot> KmodSession::memslots(std::uint64_t* generation) const {
    std::vector<vmi_memslot> raw(16);
    vmi_memslots req{};
    for (int attempt = 0; attempt < 4; ++attempt) {
        req = {};
        req.count = static_cast<std::uint32_t>(raw.size());
        req.slots = reinterpret_cast<std::uintptr_t>(raw.data());
        if (::ioctl(session_.get(), VMI_IOC_MEMSLOTS, &req) < 0) fail("VMI_IOC_MEMSLOTS");
        if (req.count <= raw.size()) break;
        raw.resize(req.count);  // more slots than room: ask again with enough
    }
    if (req.count > raw.size()) throw KmodError("VMI_IOC_MEMSLOTS: memory map keeps growing");
    if (generation) *generation = req.generation;
    std::vector<GuestMemslot> out;
    for (std::uint32_t i = 0; i < req.count; ++i)
        out.push_back({raw[i].gpa, raw[i].size, raw[i].hva});
    return out;
}

}  // namespace vmid
