// A sink delivers encoded events (one spool record each) to one receiver, and says what the
// receiver acknowledged. Each sink runs on its own SinkWorker thread, reading the spool from
// its own cursor: a slow or dead receiver holds back nobody but itself, and never the capture
// path, which only appends to the spool.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>

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

class Sink {
  public:
    virtual ~Sink() = default;
    [[nodiscard]] virtual std::string_view kind() const = 0;
    /// Sends the batch and waits for the receiver's answer. Must not throw for receiver or
    /// network trouble: that is a SendResult with an error.
    virtual SendResult send(const Delivery& d) = 0;
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
    void run(const std::stop_token& stop);

    Spool& spool_;
    std::unique_ptr<Sink> sink_;
    WorkerOptions opts_;
    StateChange on_state_;
    mutable std::mutex mu_;
    SinkStatus st_;
    std::jthread thread_;
};

}  // namespace feed
