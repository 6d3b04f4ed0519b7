#include "feed/spool.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "feed/crc32.hpp"

namespace feed {
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kHeader = 16;  // u32 len, u32 crc, u64 seq
constexpr std::size_t kReadChunk = 256U << 10;
constexpr std::size_t kWriteChunk = 256U << 10;

std::string errtext(int err) { return std::strerror(err); }

[[noreturn]] void fail(const fs::path& p, const std::string& what, int err = 0) {
    throw SpoolError("spool " + p.string() + ": " + what + (err ? ": " + errtext(err) : ""));
}

std::uint32_t crc_of(std::uint64_t seq, std::string_view payload) {
    unsigned char s[8];
    for (int i = 0; i < 8; ++i) s[i] = static_cast<unsigned char>(seq >> (8 * i));
    return crc32(crc32(0, s, 8), payload.data(), payload.size());
}

void put32(unsigned char* p, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
void put64(unsigned char* p, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
std::uint32_t get32(const unsigned char* p) {
    std::uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}
std::uint64_t get64(const unsigned char* p) {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

bool pread_all(int fd, void* buf, std::size_t n, std::uint64_t off) {
    auto* b = static_cast<char*>(buf);
    while (n) {
        const ssize_t r = ::pread(fd, b, n, static_cast<off_t>(off));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        b += r;
        n -= static_cast<std::size_t>(r);
        off += static_cast<std::uint64_t>(r);
    }
    return true;
}

std::string seg_name(std::uint64_t first) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%020llu.seg", static_cast<unsigned long long>(first));
    return buf;
}

void fsync_dir(const fs::path& dir) {
    Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (d.valid()) ::fsync(d.get());
}

std::string new_id() {
    unsigned char b[8];
    if (::getrandom(b, sizeof b, 0) != static_cast<ssize_t>(sizeof b))
        throw SpoolError("spool: getrandom failed");
    static const char* hex = "0123456789abcdef";
    std::string s;
    for (unsigned char c : b) {
        s += hex[c >> 4];
        s += hex[c & 15];
    }
    return s;
}

}  // namespace

bool valid_sink_name(std::string_view name) {
    return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
    });
}

Spool::Spool(SpoolOptions opts) : opts_(std::move(opts)) {
    std::error_code ec;
    fs::create_directories(opts_.dir, ec);
    if (ec) fail(opts_.dir, "cannot create: " + ec.message());
    ::chmod(opts_.dir.c_str(), 0700);
    const fs::path idp = opts_.dir / "id";
    if (std::ifstream in(idp); in) std::getline(in, id_);
    if (id_.size() != 16) {
        id_ = new_id();
        const fs::path tmp = opts_.dir / "id.tmp";
        {
            std::ofstream out(tmp, std::ios::trunc);
            out << id_ << '\n';
            if (!out) fail(tmp, "cannot write");
        }
        fs::rename(tmp, idp, ec);
        if (ec) fail(idp, "cannot write: " + ec.message());
    }
    recover();
}

std::uint64_t Spool::scan(Segment& s, bool last) {
    Fd fd(::open(s.path.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd.valid()) fail(s.path, "cannot open", errno);
    struct stat st {};
    ::fstat(fd.get(), &st);
    const auto size = static_cast<std::uint64_t>(st.st_size);
    std::uint64_t off = 0, seq = s.first;
    std::string payload;
    unsigned char h[kHeader];
    while (off + kHeader <= size && pread_all(fd.get(), h, kHeader, off)) {
        const std::uint32_t len = get32(h);
        if (len > opts_.max_record || off + kHeader + len > size || get64(h + 8) != seq) break;
        payload.resize(len);
        if (!pread_all(fd.get(), payload.data(), len, off + kHeader)) break;
        if (crc_of(seq, payload) != get32(h + 4)) break;
        off += kHeader + len;
        ++seq;
    }
    if (off < size) {
        // A torn or damaged tail: cut it, so appends go on after the last whole record.
        stats_.truncated_tail_bytes += size - off;
        if (::ftruncate(fd.get(), static_cast<off_t>(off)) != 0) fail(s.path, "truncate", errno);
    }
    s.end = seq;
    s.bytes = off;
    if (last) {
        ::lseek(fd.get(), static_cast<off_t>(off), SEEK_SET);
        active_ = std::move(fd);
    }
    return seq;
}

void Spool::recover() {
    std::vector<Segment> found;
    for (const auto& e : fs::directory_iterator(opts_.dir)) {
        const std::string n = e.path().filename().string();
        if (n.size() != 24 || !n.ends_with(".seg")) continue;
        Segment s;
        s.first = std::stoull(n.substr(0, 20));
        s.path = e.path();
        found.push_back(std::move(s));
    }
    std::sort(found.begin(), found.end(),
              [](const Segment& a, const Segment& b) { return a.first < b.first; });
    for (std::size_t i = 0; i < found.size(); ++i) scan(found[i], i + 1 == found.size());
    segs_ = std::move(found);
    if (segs_.empty()) {
        next_ = 1;
        roll();
    } else {
        next_ = segs_.back().end;
    }
    for (const auto& s : segs_) stats_.bytes += s.bytes;
    stats_.segments = segs_.size();
}

void Spool::roll() {
    // The finished segment is made durable by the next sync(), outside the lock.
    if (active_.valid()) unsynced_.push_back(std::move(active_));
    Segment s;
    s.first = s.end = next_;
    s.path = opts_.dir / seg_name(next_);
    Fd fd(::open(s.path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    if (!fd.valid()) fail(s.path, "cannot create", errno);
    fsync_dir(opts_.dir);
    active_ = std::move(fd);
    segs_.push_back(std::move(s));
    stats_.segments = segs_.size();
}

std::uint64_t Spool::append(std::string_view payload, Purge* purged) {
    return append_batch(std::span<const std::string_view>(&payload, 1), purged);
}

std::uint64_t Spool::append_batch(std::span<const std::string_view> payloads, Purge* purged) {
    std::size_t total = 0;
    for (const std::string_view p : payloads) {
        if (p.size() > opts_.max_record)
            throw SpoolError("spool " + opts_.dir.string() + ": record of " +
                             std::to_string(p.size()) + " bytes, more than " +
                             std::to_string(opts_.max_record));
        total += kHeader + p.size();
    }
    std::lock_guard lk(mu_);
    if (payloads.empty()) return next_;
    // A batch goes whole into one segment (which may pass segment_bytes by one batch).
    if (segs_.back().bytes >= opts_.segment_bytes) roll();
    Segment& s = segs_.back();
    const std::uint64_t first = next_;
    // One buffer: the batch is on disk whole or (after the truncate) not at all.
    wbuf_.resize(total);
    auto* h = reinterpret_cast<unsigned char*>(wbuf_.data());
    std::uint64_t seq = first;
    for (const std::string_view p : payloads) {
        put32(h, static_cast<std::uint32_t>(p.size()));
        put64(h + 8, seq);
        std::memcpy(h + kHeader, p.data(), p.size());
        // The CRC covers seq and payload, which lie back to back here: one pass.
        put32(h + 4, crc32(0, h + 8, 8 + p.size()));
        h += kHeader + p.size();
        ++seq;
    }
    std::size_t done = 0;
    while (done < total) {
        // Pieces of at most kWriteChunk: a write of megabytes costs the kernel several times
        // more CPU per byte than the same bytes in pieces (measured on ext4, Linux 6.18). A
        // crash could tear one write as well, so recovery's cut at the last whole record
        // covers either way, and readers see the batch only once it is all written.
        const ssize_t w =
            ::write(active_.get(), wbuf_.data() + done, std::min(total - done, kWriteChunk));
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            const int err = errno;
            // Nothing half-written stays behind: the next append starts clean.
            if (::ftruncate(active_.get(), static_cast<off_t>(s.bytes)) != 0) {
            }
            fail(s.path, "append", err);
        }
        done += static_cast<std::size_t>(w);
    }
    if (wbuf_.capacity() > (4U << 20)) std::string().swap(wbuf_);  // one huge batch: let go
    s.bytes += total;
    next_ = seq;
    s.end = next_;
    stats_.bytes += total;
    stats_.appended += payloads.size();
    std::vector<std::string> behind;
    std::uint64_t lost_first = 0, lost_last = 0;
    while (stats_.bytes > opts_.max_bytes && segs_.size() > 1) {
        if (!lost_first) lost_first = segs_.front().first;
        lost_last = segs_.front().end - 1;
        drop_front(&behind);
    }
    if (purged && !behind.empty()) *purged = Purge{lost_first, lost_last, behind};
    cv_.notify_all();
    return first;
}

void Spool::drop_front(std::vector<std::string>* behind) {
    const Segment s = segs_.front();
    segs_.erase(segs_.begin());
    std::error_code ec;
    fs::remove(s.path, ec);
    stats_.bytes -= s.bytes;
    stats_.segments = segs_.size();
    for (auto& [name, next] : cursors_) {
        if (next < s.end) {
            if (next >= s.first) stats_.purged_records += s.end - std::max(next, s.first);
            if (behind && std::find(behind->begin(), behind->end(), name) == behind->end())
                behind->push_back(name);
            next = s.end;
        }
    }
}

void Spool::sync() {
    // fdatasync outside the lock: appends never wait for the disk.
    std::vector<Fd> to_sync;
    fs::path path;
    {
        std::lock_guard lk(mu_);
        to_sync = std::move(unsynced_);
        unsynced_.clear();
        to_sync.emplace_back(::dup(active_.get()));
        path = segs_.back().path;
    }
    for (const Fd& fd : to_sync)
        if (fd.valid() && ::fdatasync(fd.get()) != 0) fail(path, "fdatasync", errno);
}

std::vector<SpoolRecord> Spool::read(std::uint64_t from, std::size_t max_records,
                                     std::size_t max_bytes) const {
    std::vector<SpoolRecord> out;
    out.resize(read(from, max_records, max_bytes, out));
    return out;
}

std::size_t Spool::read(std::uint64_t from, std::size_t max_records, std::size_t max_bytes,
                        std::vector<SpoolRecord>& out) const {
    // Which segments, and where to start in the first: under the lock. The reading itself is
    // not (segments only grow; a deleted one stays readable through the open fd), so appends
    // never wait for a sink.
    struct Part {
        std::uint64_t first, end, off;
        fs::path path;
    };
    std::vector<Part> parts;
    {
        std::lock_guard lk(mu_);
        from = std::max(from, segs_.front().first);
        for (const Segment& s : segs_) {
            if (s.end <= from) continue;
            Part p{s.first, s.end, 0, s.path};
            // Resume where a read of this segment stopped (each sink reads forward; several
            // sinks leave several places): the nearest one at or before `from`.
            if (const auto h = hints_.find(s.first); h != hints_.end())
                for (const auto& [seq, off] : h->second)
                    if (seq <= from && seq > p.first) {
                        p.first = seq;
                        p.off = off;
                    }
            parts.push_back(std::move(p));
        }
    }
    std::size_t count = 0;
    std::size_t bytes = 0;
    std::string buf;  // a window of the segment: one pread for many records
    for (Part& p : parts) {
        Fd fd(::open(p.path.c_str(), O_RDONLY | O_CLOEXEC));
        if (!fd.valid()) {
            if (errno == ENOENT) continue;  // consumed or purged meanwhile
            fail(p.path, "cannot open", errno);
        }
        std::uint64_t buf_off = 0;
        buf.clear();
        // `n` bytes at file offset `at`, from the window (refilled when it does not hold them).
        const auto bytes_at = [&](std::uint64_t at, std::size_t n) -> const char* {
            if (at < buf_off || at + n > buf_off + buf.size()) {
                buf.resize(std::max<std::size_t>(n, kReadChunk));
                const ssize_t r = ::pread(fd.get(), buf.data(), buf.size(), static_cast<off_t>(at));
                if (r < 0 || static_cast<std::size_t>(r) < n) {
                    // EINTR or a short read: the exact way, or fail.
                    buf.resize(n);
                    if (!pread_all(fd.get(), buf.data(), n, at)) fail(p.path, "short read");
                } else {
                    buf.resize(static_cast<std::size_t>(r));
                }
                buf_off = at;
            }
            return buf.data() + (at - buf_off);
        };
        const std::uint64_t seg_first = p.first;
        std::uint64_t off = p.off;
        std::uint64_t seq = seg_first;
        for (; seq < p.end; ++seq) {
            const auto* h = reinterpret_cast<const unsigned char*>(bytes_at(off, kHeader));
            const std::uint32_t len = get32(h);
            if (len > opts_.max_record) fail(p.path, "record length " + std::to_string(len));
            if (seq >= from) {
                if (count == out.size()) out.emplace_back();
                SpoolRecord& r = out[count++];
                r.seq = seq;
                r.payload.assign(bytes_at(off + kHeader, len), len);
                bytes += len;
            }
            off += kHeader + len;
            if (count >= max_records || bytes >= max_bytes) {
                ++seq;
                break;
            }
        }
        {
            std::lock_guard lk(mu_);
            for (const Segment& s : segs_) {
                if (s.path != p.path) continue;
                auto& places = hints_[s.first];
                if (places.size() >= kHintsPerSegment) places.erase(places.begin());
                places.emplace_back(seq, off);
            }
            // Hints of segments gone are dropped.
            while (!hints_.empty() && hints_.begin()->first < segs_.front().first)
                hints_.erase(hints_.begin());
        }
        if (count >= max_records || bytes >= max_bytes) break;
    }
    return count;
}

bool Spool::wait_for(std::uint64_t seq, std::chrono::milliseconds timeout) const {
    std::unique_lock lk(mu_);
    const std::uint64_t gen = wake_gen_;
    cv_.wait_for(lk, timeout, [&] { return next_ > seq || wake_gen_ != gen; });
    return next_ > seq;
}

void Spool::wake_all() {
    std::lock_guard lk(mu_);
    ++wake_gen_;
    cv_.notify_all();
}

std::uint64_t Spool::cursor(const std::string& sink) {
    if (!valid_sink_name(sink)) throw SpoolError("spool: bad sink name '" + sink + "'");
    std::lock_guard lk(mu_);
    auto it = cursors_.find(sink);
    if (it == cursors_.end()) {
        std::uint64_t next = segs_.front().first;
        if (std::ifstream in(opts_.dir / (sink + ".cursor")); in) {
            std::uint64_t v = 0;
            if (in >> v) next = v;
        }
        it = cursors_.emplace(sink, std::clamp(next, segs_.front().first, next_)).first;
    }
    return it->second = std::max(it->second, segs_.front().first);
}

void Spool::write_cursor(const std::string& sink, std::uint64_t next) {
    const fs::path p = opts_.dir / (sink + ".cursor"), tmp = opts_.dir / (sink + ".cursor.tmp");
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd.valid()) fail(tmp, "cannot write", errno);
    const std::string v = std::to_string(next) + "\n";
    if (::write(fd.get(), v.data(), v.size()) != static_cast<ssize_t>(v.size()) ||
        ::fdatasync(fd.get()) != 0)
        fail(tmp, "cannot write", errno);
    if (::rename(tmp.c_str(), p.c_str()) != 0) fail(p, "rename", errno);
}

void Spool::commit(const std::string& sink, std::uint64_t next) {
    {
        std::lock_guard lk(mu_);
        auto it = cursors_.find(sink);
        if (it == cursors_.end()) throw SpoolError("spool: commit for unknown sink '" + sink + "'");
        next = std::min(next, next_);
        if (next <= it->second) return;
    }
    // Each sink commits only its own cursor, from its own thread: the file is written outside
    // the lock, so appends never wait for it.
    write_cursor(sink, next);
    std::lock_guard lk(mu_);
    auto it = cursors_.find(sink);
    it->second = std::max(it->second, next);
    gc();
}

void Spool::gc() {
    // Segments every registered sink is past, except the one appended to.
    std::uint64_t min = next_;
    for (const auto& [name, next] : cursors_) min = std::min(min, next);
    while (segs_.size() > 1 && segs_.front().end <= min) drop_front(nullptr);
}

std::uint64_t Spool::next_seq() const {
    std::lock_guard lk(mu_);
    return next_;
}

std::uint64_t Spool::first_seq() const {
    std::lock_guard lk(mu_);
    return segs_.front().first;
}

SpoolStats Spool::stats() const {
    std::lock_guard lk(mu_);
    return stats_;
}

}  // namespace feed
