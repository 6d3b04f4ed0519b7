// The feed as the daemon uses it: configuration (JSON, validated with errors naming the
// field), the spool, one worker per sink, each sink with its own encoding, and the feed's own
// accounting (sink outages and recoveries, purged records) as events in the feed itself.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "feed/encode.hpp"
#include "feed/encoding_sink.hpp"
#include "feed/sink.hpp"
#include "feed/spool.hpp"

namespace feed {

struct ConfigError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The most a file sink's batch holds by default. A file takes any size, and on a backlog the
// bigger fdatasync unit writes faster (feed_bench on this project's VMs: about 1.4x the
// events/s of 2000-record batches); a receiver may not take big bodies, so other sinks
// default to WorkerOptions' 500.
inline constexpr std::size_t kFileBatchRecords = 8192;
inline constexpr std::size_t kFileBatchBytes = 4U << 20;

struct SinkConfig {
    std::string name;
    std::string type;  // file, http, stdout
    Encoding encoding = Encoding::Ecs;
    // The most one batch holds (records, spool payload bytes): the sink's own "batch_records",
    // else the feed's, else the type's default. Batches fill only while the sink is behind.
    std::size_t batch_records = 500;
    std::size_t batch_bytes = 1U << 20;
    nlohmann::json settings;  // the type's own keys, validated by make_sink
};

struct FeedConfig {
    SpoolOptions spool;
    std::vector<SinkConfig> sinks;
    WorkerOptions worker;
};

/// Parses and validates a feed configuration; throws ConfigError "FILE: sinks[1].url: why".
FeedConfig parse_feed_config(const nlohmann::json& j, const std::string& where);
FeedConfig load_feed_config(const std::string& path);

/// Builds the sink a SinkConfig describes (with its encoding). Throws ConfigError.
std::unique_ptr<Sink> make_sink(const SinkConfig& c, const EncodeContext& ctx,
                                const std::string& where);

class Feed {
  public:
    explicit Feed(FeedConfig cfg, EncodeContext ctx);
    ~Feed();
    /// Queues one native event for the spool (the capture path: no disk or network wait).
    /// Events go to the spool in batches: when kBatchRecords or kBatchBytes are queued, every
    /// kFlushEvery, and at sync(), drain() and destruction. Throws SpoolError (disk full, an
    /// event too long).
    void publish(const nlohmann::json& event);
    /// Appends what is queued to the spool now.
    void flush();
    [[nodiscard]] std::vector<SinkStatus> sinks() const;
    [[nodiscard]] SpoolStats spool_stats() const { return spool_.stats(); }
    [[nodiscard]] const std::string& spool_id() const { return spool_.id(); }
    /// Makes everything published durable (called on a timer and at shutdown): once it
    /// returns, a kill -9 or a power cut loses none of it.
    void sync();
    /// Waits until every sink acknowledged everything published (tests, shutdown).
    bool drain(std::chrono::milliseconds timeout);

    static constexpr std::size_t kBatchRecords = 256;
    static constexpr std::size_t kBatchBytes = 256U << 10;
    static constexpr std::chrono::milliseconds kFlushEvery{10};

  private:
    void account(const nlohmann::json& event);
    void flush_locked();
    void flush_every(const std::stop_token& stop);
    FeedConfig cfg_;
    Spool spool_;
    std::mutex mu_;                  // the queued batch
    std::string batch_;              // queued records, back to back
    std::vector<std::size_t> ends_;  // where each ends in batch_
    std::vector<std::string_view> views_;
    std::vector<std::unique_ptr<SinkWorker>> workers_;
    std::jthread flusher_;  // last: stopped first
};

}  // namespace feed
