// A sink delivers encoded events (one spool record each) to one receiver, and says what the
// receiver acknowledged. Each sink has its own SinkWorker, reading the spool from its own
// cursor: a slow or dead receiver holds back nobody but itself, and never the capture path,
// which only appends to the spool.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "feed/spool.hpp"

namespace feed {

// One record as a sink is given it: a view of bytes its caller owns for the call.
struct RecordView {
    std::uint64_t seq = 0;
    std::string_view payload;
};

struct Delivery {
    std::string_view spool_id;  // event ids are "<spool_id>-<seq>"
    std::span<const RecordView> records;
    // The same payloads each followed by '\n', back to back, when the sender has them so
    // (EncodingSink does): a sink writing lines writes this without gathering. Else empty.
    std::string_view lines;
};

struct SendResult {
    // Records acknowledged, from the front of the batch (a receiver may take a prefix).
    std::size_t accepted = 0;
    // Records after those the receiver refused for good (bad documents): counted, skipped.
    std::size_t rejected = 0;
    std::string error;  // why the rest was not delivered (empty: everything was)
    std::optional<std::chrono::milliseconds> retry_after;  // the receiver asked for a pause
};

// What a sink made of a batch before sending it (its encoding): lines, and views of them.
struct PreparedBatch {
    std::string lines;                // the encoded records, each followed by '\n'
    std::vector<std::size_t> ends;    // where each encoded record ends in lines
    std::vector<RecordView> records;  // views of lines (seq: the spool record's)
    std::vector<std::size_t> origin;  // records[i] came from the delivery's origin[i]-th
};

class Sink {
  public:
    virtual ~Sink() = default;
    [[nodiscard]] virtual std::string_view kind() const = 0;
    /// Sends the batch and waits for the receiver's answer. Must not throw for receiver or
    /// network trouble: that is a SendResult with an error.
    virtual SendResult send(const Delivery& d) = 0;

    /// The part of sending that needs no receiver (encoding), done into `p`; false if this
    /// sink has none. The worker calls it on its read-ahead thread for the next batch while
    /// the one before is sent, so the encoding's CPU overlaps the receiver's wait (an
    /// fdatasync, a round trip). prepare() calls come from one thread, one at a time.
    virtual bool prepare(const Delivery& d, PreparedBatch& p) {
        (void)d;
        (void)p;
        return false;
    }
    /// Sends a batch prepare() made ready (`p`, from `d`); the result counts d's records.
    virtual SendResult send_prepared(const Delivery& d, const PreparedBatch& p) {
        (void)p;
        return send(d);
    }
};

struct WorkerOptions {
    std::size_t batch_records = 500;
    std::size_t batch_bytes = 1U << 20;
    std::chrono::milliseconds backoff_min{200};
    std::chrono::milliseconds backoff_max{30'000};
    std::chrono::milliseconds idle_wait{500};  // how long to wait for new records at a time
};

struct SinkStatus {
    std::string name;
    std::string kind;
    bool up = true;
    std::uint64_t delivered = 0, rejected = 0, batches = 0, failures = 0;
    std::uint64_t cursor = 0, backlog = 0;
    std::string last_error;
};

// Two threads per sink: the read-ahead thread reads the next batch from the spool and has the
// sink prepare it, while the worker thread sends the batch before and commits the cursor.
class SinkWorker {
  public:
    /// `on_state(status)` runs on the worker thread when the sink goes down (a send failed
    /// after it was up) or comes back up: the feed turns these into events.
    using StateChange = std::function<void(const SinkStatus&)>;

    SinkWorker(Spool& spool, std::string name, std::unique_ptr<Sink> sink, WorkerOptions opts,
               StateChange on_state = nullptr);
    ~SinkWorker();  // stops and joins; what was not acknowledged stays in the spool
    SinkWorker(const SinkWorker&) = delete;
    SinkWorker& operator=(const SinkWorker&) = delete;

    [[nodiscard]] SinkStatus status() const;
    /// Waits until every record appended before the call is acknowledged (tests, shutdown).
    bool drain(std::chrono::milliseconds timeout) const;

  private:
    // A batch on its way: read from the spool, prepared, sent. Storage is kept for the next.
    struct Slot {
        std::vector<SpoolRecord> records;
        std::vector<RecordView> views;  // of the batch's records
        PreparedBatch prepared;
        bool is_prepared = false;
    };
    static constexpr std::size_t kSlots = 2;  // one being sent, one being read ahead

    void run(const std::stop_token& stop);
    void read_ahead(const std::stop_token& stop);
    void restart_from(std::uint64_t seq, Slot* held);

    Spool& spool_;
    std::unique_ptr<Sink> sink_;
    WorkerOptions opts_;
    StateChange on_state_;
    mutable std::mutex mu_;
    SinkStatus st_;

    // The pipeline between the two threads.
    std::mutex pipe_mu_;
    std::condition_variable_any pipe_cv_;
    std::array<Slot, kSlots> slots_;
    std::deque<Slot*> ready_;  // read and prepared, in seq order
    std::vector<Slot*> free_;
    std::uint64_t read_from_ = 0;   // where the read-ahead goes on
    std::uint64_t generation_ = 0;  // bumped by a restart: a batch read before it is dropped

    std::jthread reader_;
    std::jthread thread_;
};

}  // namespace feed
