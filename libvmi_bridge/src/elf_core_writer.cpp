#include "vmi/elf_core_writer.hpp"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>  // renameat2, RENAME_NOREPLACE
#include <cstring>
#include <span>
#include <system_error>
#include <utility>

#include "vmi/elf_core_memory.hpp"

namespace vmi {

namespace {

namespace fs = std::filesystem;

static_assert(kMaxDumpRanges == ElfCoreMemory::kMaxSegments);
static_assert(kMaxDumpRanges < PN_XNUM, "e_phnum must hold the count");

std::string hex(std::uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%" PRIx64, v);
    return buf;
}

Error io_error(const fs::path& p, const std::string& what, int err) {
    return Error{Fault::kIo,
                 p.string() + ": " + what + ": " + std::generic_category().message(err)};
}

// Where everything goes in the file, computed before anything is written.
struct Layout {
    std::vector<std::uint64_t> offsets;  // file offset of each range's data
    std::uint64_t guest_bytes = 0;
    std::uint64_t file_bytes = 0;
};

Result<Layout> plan(const std::vector<DumpRange>& ranges, const DumpOptions& opts) {
    if (ranges.empty()) return Error{Fault::kInvalidFormat, "no ranges to dump"};
    if (ranges.size() > kMaxDumpRanges) {
        return Error{Fault::kLimitExceeded, std::to_string(ranges.size()) + " ranges, at most " +
                                                std::to_string(kMaxDumpRanges) + " supported"};
    }
    for (const DumpRange& r : ranges) {
        if (r.size == 0) return Error{Fault::kInvalidFormat, "empty range at gpa " + hex(r.gpa)};
        if (!range_fits(r.gpa, r.size)) {
            return Error{Fault::kInvalidFormat, "range at gpa " + hex(r.gpa) + " wraps past 2^64"};
        }
    }
    // Overlapping PT_LOADs are ambiguous; ElfCoreMemory rejects them.
    std::vector<DumpRange> sorted = ranges;
    std::sort(sorted.begin(), sorted.end(),
              [](const DumpRange& a, const DumpRange& b) { return a.gpa < b.gpa; });
    for (std::size_t i = 1; i < sorted.size(); ++i) {
        if (sorted[i].gpa - sorted[i - 1].gpa < sorted[i - 1].size) {
            return Error{Fault::kInvalidFormat, "ranges at gpa " + hex(sorted[i - 1].gpa) +
                                                    " and " + hex(sorted[i].gpa) + " overlap"};
        }
    }

    Layout l;
    // off_t is signed: keep every offset below 2^63.
    constexpr std::uint64_t kMaxFile = static_cast<std::uint64_t>(INT64_MAX) - kPageSize;
    std::uint64_t pos = sizeof(Elf64_Ehdr) + ranges.size() * sizeof(Elf64_Phdr);
    for (const DumpRange& r : ranges) {
        pos = (pos + kPageMask) & ~kPageMask;
        if (r.size > kMaxFile - pos) {
            return Error{Fault::kLimitExceeded, "dump larger than a file can be"};
        }
        l.offsets.push_back(pos);
        pos += r.size;
        l.guest_bytes += r.size;  // <= pos, so no overflow
    }
    l.file_bytes = pos;
    if (l.guest_bytes > opts.max_bytes) {
        return Error{Fault::kLimitExceeded, "dump of " + std::to_string(l.guest_bytes) +
                                                " bytes exceeds max_bytes " +
                                                std::to_string(opts.max_bytes)};
    }
    return l;
}

Status check_free_space(const fs::path& dir, std::uint64_t need, std::uint64_t margin) {
    struct statvfs sv {};
    if (::statvfs(dir.c_str(), &sv) != 0) return io_error(dir, "statvfs", errno);
    std::uint64_t free_bytes = 0;
    if (__builtin_mul_overflow(std::uint64_t{sv.f_bavail}, std::uint64_t{sv.f_frsize},
                               &free_bytes)) {
        free_bytes = UINT64_MAX;
    }
    std::uint64_t want = 0;
    if (__builtin_add_overflow(need, margin, &want)) want = UINT64_MAX;
    if (free_bytes < want) {
        return Error{Fault::kLimitExceeded, dir.string() + ": " + std::to_string(free_bytes) +
                                                " bytes free, the dump needs " +
                                                std::to_string(need) + " + a margin of " +
                                                std::to_string(margin)};
    }
    return {};
}

// The .partial file: closed, and removed unless published, on every exit path.
class PartialFile {
  public:
    explicit PartialFile(fs::path path) : path_(std::move(path)) {}
    ~PartialFile() {
        if (fd_ >= 0) ::close(fd_);
        if (created_ && !published_) ::unlink(path_.c_str());
    }
    PartialFile(const PartialFile&) = delete;
    PartialFile& operator=(const PartialFile&) = delete;

    Status create() {
        // O_EXCL: never clobber another writer's (or a crashed run's) partial file.
        fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd_ < 0) return io_error(path_, "create", errno);
        created_ = true;
        return {};
    }

    Status write_at(std::uint64_t off, std::span<const std::byte> b) {
        std::size_t done = 0;
        while (done < b.size()) {
            const ssize_t n =
                ::pwrite(fd_, b.data() + done, b.size() - done, static_cast<off_t>(off + done));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0)
                return io_error(path_, "write at offset " + std::to_string(off + done), errno);
            done += static_cast<std::size_t>(n);
        }
        return {};
    }

    Status sync_and_close() {
        if (::fsync(fd_) != 0) return io_error(path_, "fsync", errno);
        const int fd = std::exchange(fd_, -1);
        // close() can report a delayed write error (NFS); the data is not safe then.
        if (::close(fd) != 0) return io_error(path_, "close", errno);
        return {};
    }

    // Moves the file to `out` without ever replacing an existing `out`.
    Status publish(const fs::path& out) {
        if (::renameat2(AT_FDCWD, path_.c_str(), AT_FDCWD, out.c_str(), RENAME_NOREPLACE) == 0) {
            published_ = true;
            return {};
        }
        if (errno != EINVAL && errno != ENOSYS) return io_error(out, "rename into place", errno);
        // Filesystem without RENAME_NOREPLACE: link() refuses to replace too.
        if (::link(path_.c_str(), out.c_str()) != 0) return io_error(out, "link into place", errno);
        return {};  // the destructor unlinks the .partial name
    }

  private:
    fs::path path_;
    int fd_ = -1;
    bool created_ = false;
    bool published_ = false;
};

// Fills `buf` from guest memory at `gpa`. A failed chunk is retried page by page so that one
// bad page costs only itself; pages still failing become zeros and are counted.
void read_chunk(GuestMemory& mem, std::uint64_t gpa, std::span<std::byte> buf, DumpStats& st) {
    if (mem.read_phys(gpa, buf).ok()) return;
    std::size_t done = 0;
    while (done < buf.size()) {
        const std::uint64_t a = gpa + done;
        const auto n = static_cast<std::size_t>(
            std::min<std::uint64_t>(buf.size() - done, kPageSize - (a & kPageMask)));
        const auto piece = buf.subspan(done, n);
        if (auto s = mem.read_phys(a, piece); !s) {
            std::fill(piece.begin(), piece.end(), std::byte{0});
            st.unreadable_bytes += n;
            if (st.first_read_error.empty()) {
                st.first_read_error = "gpa " + hex(a) + ": " + s.error().message();
            }
        }
        done += n;
    }
}

std::vector<std::byte> headers(const std::vector<DumpRange>& ranges, const Layout& l) {
    Elf64_Ehdr eh{};
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = ET_CORE;
    eh.e_machine = EM_X86_64;
    eh.e_version = EV_CURRENT;
    eh.e_phoff = sizeof(Elf64_Ehdr);
    eh.e_ehsize = sizeof(Elf64_Ehdr);
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = static_cast<Elf64_Half>(ranges.size());

    std::vector<std::byte> out(sizeof(Elf64_Ehdr) + ranges.size() * sizeof(Elf64_Phdr));
    std::memcpy(out.data(), &eh, sizeof eh);
    for (std::size_t i = 0; i < ranges.size(); ++i) {
        // As QEMU writes them (paging off): no vaddr, flags or alignment.
        Elf64_Phdr ph{};
        ph.p_type = PT_LOAD;
        ph.p_offset = l.offsets[i];
        ph.p_paddr = ranges[i].gpa;
        ph.p_vaddr = 0;
        ph.p_filesz = ranges[i].size;
        ph.p_memsz = ranges[i].size;
        std::memcpy(out.data() + sizeof eh + i * sizeof ph, &ph, sizeof ph);
    }
    return out;
}

}  // namespace

Result<DumpStats> write_elf_core(GuestMemory& mem, const std::vector<DumpRange>& ranges,
                                 const fs::path& out, const DumpOptions& opts) {
    auto layout = plan(ranges, opts);
    if (!layout) return std::move(layout).error();
    const Layout& l = *layout;

    // Checked here for a clear error; publish() enforces it race-free.
    struct stat st {};
    if (::lstat(out.c_str(), &st) == 0) {
        return Error{Fault::kIo, out.string() + ": already exists, not overwriting"};
    }
    if (errno != ENOENT) return io_error(out, "stat", errno);
    const fs::path dir = out.has_parent_path() ? out.parent_path() : fs::path(".");
    if (auto s = check_free_space(dir, l.file_bytes, opts.free_space_margin); !s) return s.error();

    PartialFile file(fs::path(out) += ".partial");
    if (auto s = file.create(); !s) return s.error();
    if (auto s = file.write_at(0, headers(ranges, l)); !s) return s.error();

    DumpStats stats;
    stats.guest_bytes = l.guest_bytes;
    stats.file_bytes = l.file_bytes;
    const std::uint64_t chunk = std::max<std::uint64_t>(opts.chunk_bytes & ~kPageMask, kPageSize);
    std::uint64_t largest = 0;
    for (const DumpRange& r : ranges) largest = std::max(largest, r.size);
    std::vector<std::byte> buf(static_cast<std::size_t>(std::min(chunk, largest)));
    for (std::size_t i = 0; i < ranges.size(); ++i) {
        const DumpRange& r = ranges[i];
        for (std::uint64_t done = 0; done < r.size;) {
            const auto piece =
                std::span(buf).first(static_cast<std::size_t>(std::min(chunk, r.size - done)));
            read_chunk(mem, r.gpa + done, piece, stats);
            if (auto s = file.write_at(l.offsets[i] + done, piece); !s) return s.error();
            done += piece.size();
        }
    }

    if (auto s = file.sync_and_close(); !s) return s.error();
    if (auto s = file.publish(out); !s) return s.error();
    // Make the rename itself durable.
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return io_error(dir, "open to fsync", errno);
    const int rc = ::fsync(dfd);
    const int err = errno;
    ::close(dfd);
    if (rc != 0) return io_error(dir, "fsync after writing " + out.string(), err);
    return stats;
}

}  // namespace vmi
