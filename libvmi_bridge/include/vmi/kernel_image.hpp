// Facts about a guest kernel read from its own vmlinux ELF (extracted from the vmlinuz the
// guest boots), for kernels whose System.map is not at hand (Debian ships a stub).
#pragma once

#include <cstdint>
#include <string>

#include "vmi/btf_profile.hpp"
#include "vmi/result.hpp"

namespace vmi {

struct KernelImageSymbols {
    std::uint64_t text_va = 0;       // unslid _text: start of the .text section
    std::uint64_t init_task_va = 0;  // unslid &init_task
};

/// Finds _text and init_task in a vmlinux ELF without a symbol table. init_task is statically
/// initialised with comm "swapper" and tasks.next == tasks.prev == &init_task.tasks, so a
/// candidate in .data whose list head points at itself, at the BTF offsets, is init_task.
/// The file is untrusted: every header and offset is bounds-checked (kInvalidFormat naming
/// the file); no unique match is kNotFound.
Result<KernelImageSymbols> find_kernel_image_symbols(const std::string& vmlinux_path,
                                                     const LinuxOffsets& offsets);

}  // namespace vmi
