// `vminsightctl events --follow`: control connections that asked for the live feed. Each gets
// the events its filter selects, one JSON line each. A follower that reads too slowly never
// holds the daemon back: past a bounded backlog its events are dropped and counted, and it is
// told how many when it catches up.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <nlohmann/json.hpp>

#include "event_sink.hpp"

namespace vmid {

/// What a follower asked for: a domain (name or uuid) and KEY=VALUE tests on dotted fields
/// ("event.action=exec", "process.name=sh"); all must hold.
class EventFilter {
  public:
    /// From {"domain": ..., "filter": ["KEY=VALUE", ...]}. Throws std::invalid_argument naming
    /// the bad test.
    static EventFilter from_request(const nlohmann::json& req);
    [[nodiscard]] bool matches(const nlohmann::json& ev) const;

  private:
    std::string domain_;
    std::vector<std::pair<nlohmann::json::json_pointer, std::string>> tests_;
};

class EventFollowers final : public EventSink {
  public:
    using Socket = boost::asio::local::stream_protocol::socket;
    static constexpr std::size_t kMaxFollowers = 16;
    static constexpr std::size_t kMaxBacklog = 4 << 20;  // bytes queued per follower

    /// Takes over a control connection whose request was {"cmd": "events", ...}: replies
    /// {"ok": true, "following": ...} (or the error, and closes), then streams.
    void add(const nlohmann::json& req, Socket sock);
    void emit(const nlohmann::json& ev) override;
    [[nodiscard]] std::size_t size() const noexcept { return followers_.size(); }

    struct Follower;

  private:
    std::vector<std::shared_ptr<Follower>> followers_;
};

}  // namespace vmid
