// Guest RAM from a raw physical memory image (QEMU `pmemsave`: file offset == gpa).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "vmi/guest_memory.hpp"

namespace vmi {

class ImageMemory final : public GuestMemory {
  public:
    /// Opens `path` read-only. Throws std::system_error if it cannot be opened (setup time,
    /// not the hot path).
    explicit ImageMemory(const std::string& path);
    ~ImageMemory() override;
    ImageMemory(const ImageMemory&) = delete;
    ImageMemory& operator=(const ImageMemory&) = delete;

    /// pread, not mmap: a file truncated behind our back then yields kUnmapped instead of
    /// SIGBUS. Reads past the end of the image are kUnmapped.
    Status read_phys(std::uint64_t gpa, std::span<std::byte> out) override;

    /// Size of the image when opened.
    [[nodiscard]] std::uint64_t size() const noexcept { return size_; }

  private:
    int fd_ = -1;
    std::uint64_t size_ = 0;
};

}  // namespace vmi
