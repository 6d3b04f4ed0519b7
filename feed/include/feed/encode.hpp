// Encoders: the daemon's native event (JSON) as ECS, OCSF or a Falco alert, with the feed's
// event id and sequence. Guest strings may hold any bytes: invalid UTF-8 becomes U+FFFD and
// control characters are escaped, so every output is one valid JSON line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "feed/record.hpp"

namespace feed {

enum class Encoding {
    Native,  // the daemon's own shape, plus event.id / event.sequence
    Ecs,     // Elastic Common Schema 8.x (docs/schema/vminsight-ecs.schema.json)
    Ocsf,    // OCSF 1.1: Process Activity (1007), Detection Finding (2004)
    Falco,   // Falco's alert envelope (alerts only; other events are skipped)
};

std::optional<Encoding> parse_encoding(std::string_view name);
std::string_view encoding_name(Encoding e);

struct EncodeContext {
    std::string observer_hostname;  // the KVM host running the sensor
    std::string version = "0.1.0";
};

/// The event as one JSON line (no newline), or nullopt when this encoding skips it.
std::optional<std::string> encode(Encoding enc, const nlohmann::json& native, std::string_view id,
                                  std::uint64_t seq, const EncodeContext& ctx);

/// The sinks' path: a decoded spool record appended to `out` as one JSON line (no newline),
/// ECS and native written directly; false when this encoding skips it (Falco: not an alert).
bool encode_record(Encoding enc, const record::View& event, std::string_view id, std::uint64_t seq,
                   const EncodeContext& ctx, std::string& out);

/// ECS as text, written directly (no document in between).
std::string ecs_text(const nlohmann::json& native, std::string_view id, std::uint64_t seq,
                     const EncodeContext& ctx);

/// The pieces, for tests and for sinks that need an object.
nlohmann::json to_ecs(const nlohmann::json& native, std::string_view id, std::uint64_t seq,
                      const EncodeContext& ctx);
nlohmann::json to_ocsf(const nlohmann::json& native, std::string_view id, std::uint64_t seq,
                       const EncodeContext& ctx);
std::optional<nlohmann::json> to_falco(const nlohmann::json& native, const EncodeContext& ctx);

/// A rule priority ("critical", any case) as a syslog severity: emergency 0 .. debug 7.
std::optional<int> syslog_severity(std::string_view priority);

/// Now, as the events' @timestamp ("2026-11-26T10:00:00.000001Z").
std::string utc_timestamp();

/// A stable process entity id: VM, guest task address and start time, hashed (hex). The
/// bridge computes it (vmi::process_entity_id); the feed only forwards.
std::string process_entity_id(std::string_view vm, std::string_view task,
                              std::uint64_t start_time_ns);

}  // namespace feed
