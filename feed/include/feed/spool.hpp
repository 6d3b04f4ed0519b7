// The feed's write-ahead log: every event is appended here before any sink sees it, and each
// sink reads from its own cursor, advanced only when its receiver acknowledged. A crash or
// kill -9 loses nothing that was synced; a torn tail is cut at the last whole record.
//
// On disk: DIR/id (the spool's identity: event ids are "<id>-<seq>", stable across retries
// and restarts), DIR/<first seq, 20 digits>.seg (records: u32 length, u32 crc32 of seq and
// payload, zlib's (feed/crc32.hpp), u64 seq, payload), DIR/<sink>.cursor (the next seq that
// sink needs). The feed's payloads are binary event records (feed/record.hpp); spools written
// before them hold JSON text, which sinks still read. Appends come in batches: one lock and
// one buffer each.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "feed/fd.hpp"

namespace feed {

struct SpoolError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct SpoolOptions {
    std::filesystem::path dir;
    std::uint64_t max_bytes = 1ULL << 30;       // on disk; past it the oldest segment goes
    std::uint64_t segment_bytes = 16ULL << 20;  // a new segment after this many bytes
    std::uint32_t max_record = 1U << 20;        // a longer payload is refused
};

struct SpoolRecord {
    std::uint64_t seq = 0;
    std::string payload;
};

// Records dropped to keep the spool within max_bytes, while some sink still needed them.
struct Purge {
    std::uint64_t first_seq = 0, last_seq = 0;  // inclusive
    std::vector<std::string> sinks;             // whose cursors were behind
};

struct SpoolStats {
    std::uint64_t appended = 0;
    std::uint64_t bytes = 0;  // on disk now
    std::uint64_t segments = 0;
    std::uint64_t purged_records = 0;        // lost to the cap while a sink needed them
    std::uint64_t truncated_tail_bytes = 0;  // cut at open (a torn write before a crash)
};

class Spool {
  public:
    /// Opens (creating DIR 0700 if needed) and recovers. Throws SpoolError naming the path.
    explicit Spool(SpoolOptions opts);
    Spool(const Spool&) = delete;
    Spool& operator=(const Spool&) = delete;

    /// Appends one record; returns its seq. Thread-safe. `purged` (if given) receives what
    /// keeping within max_bytes cost, if anything. Throws SpoolError (disk full, too long).
    std::uint64_t append(std::string_view payload, Purge* purged = nullptr);
    /// Appends records in order, under one lock from one buffer: all of them or (on an error)
    /// none; returns the first one's seq.
    std::uint64_t append_batch(std::span<const std::string_view> payloads, Purge* purged = nullptr);
    /// Makes every record appended so far durable (fdatasync).
    void sync();

    /// Up to `max_records` records (and about `max_bytes`) from seq `from` on; fewer at the end.
    /// A `from` older than the oldest record kept starts at the oldest.
    std::vector<SpoolRecord> read(std::uint64_t from, std::size_t max_records,
                                  std::size_t max_bytes) const;
    /// The same into `out`, reusing its records (and their payloads' storage: no allocation
    /// per record once warm); returns how many of out's first records it filled. `out` only
    /// grows: its size is not the count.
    std::size_t read(std::uint64_t from, std::size_t max_records, std::size_t max_bytes,
                     std::vector<SpoolRecord>& out) const;
    /// Waits until a record with seq >= `seq` exists or `timeout` passes; true if it does.
    bool wait_for(std::uint64_t seq, std::chrono::milliseconds timeout) const;
    /// Wakes every wait_for (shutdown).
    void wake_all();

    /// A sink's position: the next seq it needs (a new sink starts at the oldest kept).
    std::uint64_t cursor(const std::string& sink);
    /// Records before `next` were acknowledged by `sink`: persisted atomically; segments no
    /// sink needs any more are deleted.
    void commit(const std::string& sink, std::uint64_t next);

    [[nodiscard]] std::uint64_t next_seq() const;
    [[nodiscard]] std::uint64_t first_seq() const;
    [[nodiscard]] const std::string& id() const noexcept { return id_; }
    [[nodiscard]] SpoolStats stats() const;

  private:
    struct Segment {
        std::uint64_t first = 0;  // seq of its first record
        std::uint64_t end = 0;    // seq after its last record
        std::uint64_t bytes = 0;
        std::filesystem::path path;
    };
    void recover();
    std::uint64_t scan(Segment& s, bool last);
    void roll();
    void drop_front(std::vector<std::string>* behind);
    void gc();
    void write_cursor(const std::string& sink, std::uint64_t next);

    SpoolOptions opts_;
    std::string id_;
    mutable std::mutex mu_;
    mutable std::condition_variable cv_;
    std::vector<Segment> segs_;  // oldest first; the last is the one appended to
    Fd active_;
    std::vector<Fd> unsynced_;  // finished segments not yet fdatasync'd
    std::string wbuf_;          // a batch as written (kept: appends reuse it)
    std::uint64_t next_ = 0;
    std::map<std::string, std::uint64_t> cursors_;
    SpoolStats stats_;
    std::uint64_t wake_gen_ = 0;
    // Per segment (by first seq): the seq and offset where the last reads stopped.
    static constexpr std::size_t kHintsPerSegment = 8;
    mutable std::map<std::uint64_t, std::vector<std::pair<std::uint64_t, std::uint64_t>>> hints_;
};

/// The name a sink may have (its cursor file name): [A-Za-z0-9_-], 1..64.
bool valid_sink_name(std::string_view name);

}  // namespace feed
