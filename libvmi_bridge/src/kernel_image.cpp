#include "vmi/kernel_image.hpp"

#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <span>
#include <string_view>

namespace vmi {
namespace {

// Read-only mapping of a whole file, unmapped on scope exit.
class MappedFile {
  public:
    explicit MappedFile(const std::string& path) {
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return;
        struct stat st {};
        if (::fstat(fd, &st) == 0 && st.st_size > 0) {
            void* p = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_PRIVATE,
                             fd, 0);
            if (p != MAP_FAILED)
                bytes_ = {static_cast<const std::byte*>(p), static_cast<std::size_t>(st.st_size)};
        }
        ::close(fd);
    }
    ~MappedFile() {
        if (!bytes_.empty()) ::munmap(const_cast<std::byte*>(bytes_.data()), bytes_.size());
    }
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;
    [[nodiscard]] std::span<const std::byte> bytes() const { return bytes_; }

  private:
    std::span<const std::byte> bytes_;
};

template <class T>
std::optional<T> load(std::span<const std::byte> b, std::uint64_t off) {
    if (off > b.size() || b.size() - off < sizeof(T)) return std::nullopt;
    T v;
    std::memcpy(&v, b.data() + off, sizeof(T));
    return v;
}

}  // namespace

Result<KernelImageSymbols> find_kernel_image_symbols(const std::string& path,
                                                     const LinuxOffsets& off) {
    const MappedFile file(path);
    const auto b = file.bytes();
    auto bad = [&](const char* why) { return Error{Fault::kInvalidFormat, path + ": " + why}; };
    if (b.empty()) return Error{Fault::kIo, path + ": cannot read"};

    const auto eh = load<Elf64_Ehdr>(b, 0);
    if (!eh || std::memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
        eh->e_ident[EI_CLASS] != ELFCLASS64)
        return bad("not an ELF64 file");
    if (eh->e_shentsize != sizeof(Elf64_Shdr) || eh->e_shnum == 0 || eh->e_shstrndx >= eh->e_shnum)
        return bad("bad section header table");
    auto section = [&](unsigned i) {
        return load<Elf64_Shdr>(b, eh->e_shoff + std::uint64_t{i} * sizeof(Elf64_Shdr));
    };
    const auto strtab = section(eh->e_shstrndx);
    if (!strtab || strtab->sh_offset > b.size() || b.size() - strtab->sh_offset < strtab->sh_size)
        return bad("bad section name table");

    std::optional<Elf64_Shdr> text, data;
    for (unsigned i = 0; i < eh->e_shnum; ++i) {
        const auto sh = section(i);
        if (!sh) return bad("section header out of file");
        if (sh->sh_name >= strtab->sh_size) continue;
        const char* name =
            reinterpret_cast<const char*>(b.data() + strtab->sh_offset + sh->sh_name);
        const std::string_view n(name, strnlen(name, strtab->sh_size - sh->sh_name));
        if (n == ".text") text = sh;
        if (n == ".data") data = sh;
    }
    if (!text || !data) return Error{Fault::kNotFound, path + ": no .text or .data section"};
    if (data->sh_type != SHT_PROGBITS || data->sh_offset > b.size() ||
        b.size() - data->sh_offset < data->sh_size)
        return bad(".data lies outside the file");

    const auto sec = b.subspan(data->sh_offset, data->sh_size);
    constexpr std::string_view kComm{"swapper\0", 8};
    std::optional<std::uint64_t> found;
    for (std::uint64_t p = off.task_comm; p + kComm.size() <= sec.size();
         p += 8) {  // comm is 8-aligned
        if (std::memcmp(sec.data() + p, kComm.data(), kComm.size()) != 0) continue;
        const std::uint64_t task = p - off.task_comm;
        const std::uint64_t head_va = data->sh_addr + task + off.task_tasks;
        const auto next = load<std::uint64_t>(sec, task + off.task_tasks);
        const auto prev = load<std::uint64_t>(sec, task + off.task_tasks + 8);
        if (next && prev && *next == head_va && *prev == head_va) {
            if (found) return Error{Fault::kNotFound, path + ": init_task is ambiguous"};
            found = data->sh_addr + task;
        }
    }
    if (!found)
        return Error{Fault::kNotFound, path + ": no init_task in .data (BTF from another build?)"};
    return KernelImageSymbols{text->sh_addr, *found};
}

}  // namespace vmi
