// The feed as the daemon uses it: configuration (JSON, validated with errors naming the
// field), the spool, one worker per sink, each sink with its own encoding, and the feed's own
// accounting (sink outages and recoveries, purged records) as events in the feed itself.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "feed/encode.hpp"
#include "feed/sink.hpp"
#include "feed/spool.hpp"

namespace feed {

struct ConfigError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct SinkConfig {
    std::string name;
    std::string type;  // file, http, stdout
    Encoding encoding = Encoding::Ecs;
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

/// A sink that encodes each record (native JSON) before the inner sink sends it; records
/// its encoding skips count as delivered.
class EncodingSink final : public Sink {
  public:
    EncodingSink(std::unique_ptr<Sink> inner, Encoding enc, EncodeContext ctx);
    [[nodiscard]] std::string_view kind() const override { return inner_->kind(); }
    SendResult send(const Delivery& d) override;

  private:
    std::unique_ptr<Sink> inner_;
    Encoding enc_;
    EncodeContext ctx_;
};

/// Builds the sink a SinkConfig describes (with its encoding). Throws ConfigError.
std::unique_ptr<Sink> make_sink(const SinkConfig& c, const EncodeContext& ctx,
                                const std::string& where);

class Feed {
  public:
    explicit Feed(FeedConfig cfg, EncodeContext ctx);
    ~Feed();
    /// Appends one native event (the capture path: a spool append, never a network wait).
    void publish(const nlohmann::json& event);
    [[nodiscard]] std::vector<SinkStatus> sinks() const;
    [[nodiscard]] SpoolStats spool_stats() const { return spool_.stats(); }
    [[nodiscard]] const std::string& spool_id() const { return spool_.id(); }
    /// Makes everything published durable (called on a timer and at shutdown).
    void sync() { spool_.sync(); }
    /// Waits until every sink acknowledged everything published (tests, shutdown).
    bool drain(std::chrono::milliseconds timeout) const;

  private:
    void account(const nlohmann::json& event);
    FeedConfig cfg_;
    Spool spool_;
    std::mutex mu_;
    std::vector<std::unique_ptr<SinkWorker>> workers_;
};

}  // namespace feed
