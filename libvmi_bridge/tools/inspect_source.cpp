#include "inspect_source.hpp"

#include <stdexcept>

#include "vmi/elf_core_memory.hpp"
#include "vmi/image_memory.hpp"

namespace inspect {

Source open_snapshot(const std::string& path, std::vector<std::uint64_t> cr3s) {
    Source s;
    s.label = path;
    if (vmi::is_elf_file(path)) {
        auto core = vmi::ElfCoreMemory::open(path);
        if (!core) throw std::runtime_error(core.error().message());
        if (cr3s.empty()) {
            for (std::uint64_t c : (*core)->vcpu_cr3s())
                if (c != 0) cr3s.push_back(c);
            if (cr3s.empty())
                throw std::runtime_error("ELF dump has no QEMU vCPU notes with a CR3; pass --cr3");
        }
        s.vcpus = (*core)->vcpus();
        s.snapshot = std::move(*core);
    } else {
        s.snapshot = std::make_unique<vmi::ImageMemory>(path);
        if (cr3s.empty()) throw std::runtime_error("raw memory image: --cr3 HEX is required");
    }
    s.mem = s.snapshot.get();
    s.cr3s = std::move(cr3s);
    return s;
}

Source open_live(pid_t qemu_pid, std::vector<std::uint64_t> cr3s) {
    Source s;
    s.label = "qemu pid " + std::to_string(qemu_pid);
    s.live = std::make_unique<vmid::LiveGuest>(qemu_pid);
    s.mem = &s.live->memory();
    s.cr3s = cr3s.empty() ? s.live->cr3s() : std::move(cr3s);
    return s;
}

}  // namespace inspect
