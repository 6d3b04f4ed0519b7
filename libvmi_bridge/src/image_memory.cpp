#include "vmi/image_memory.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace vmi {

ImageMemory::ImageMemory(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "open " + path);
    struct stat st {};
    if (::fstat(fd_, &st) != 0) {
        int err = errno;
        ::close(fd_);
        throw std::system_error(err, std::generic_category(), "fstat " + path);
    }
    size_ = static_cast<std::uint64_t>(st.st_size);
}

ImageMemory::~ImageMemory() {
    if (fd_ >= 0) ::close(fd_);
}

Status ImageMemory::read_phys(std::uint64_t gpa, std::span<std::byte> out) {
    if (!range_fits(gpa, out.size()) || gpa > size_ || out.size() > size_ - gpa) {
        return Fault::kUnmapped;
    }
    std::size_t done = 0;
    while (done < out.size()) {
        ssize_t n =
            ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(gpa + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Error{Fault::kReadFailed, std::generic_category().message(errno)};
        if (n == 0) return Fault::kUnmapped;  // image shrank since open
        done += static_cast<std::size_t>(n);
    }
    return {};
}

}  // namespace vmi
