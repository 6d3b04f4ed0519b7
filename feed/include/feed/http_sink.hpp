// Events POSTed in batches to an HTTP(S) receiver, in one of three shapes: NDJSON (a generic
// webhook: any 2xx acknowledges the batch), Elasticsearch _bulk (create with _id = the event
// id, so a retried batch never duplicates; per-item results are checked: 409 is "already
// there", 429/5xx are retried, other item errors are rejected documents), Splunk HEC
// ({"event": ...} per line, "Authorization: Splunk TOKEN"). 429 and 503 honour Retry-After.
#pragma once

#include <chrono>
#include <map>
#include <string>

#include "feed/sink.hpp"

namespace feed {

enum class HttpFormat { Ndjson, ElasticBulk, SplunkHec };

struct HttpSinkOptions {
    std::string url;  // http://host[:port]/path or https://...
    HttpFormat format = HttpFormat::Ndjson;
    std::map<std::string, std::string> headers;  // e.g. Authorization
    std::string index = "vminsight";             // ElasticBulk
    std::string ca_file;                         // https: trust these (else the system's)
    bool verify_tls = true;
    std::chrono::milliseconds timeout{10'000};
};

/// Parses "http[s]://host[:port][/path]"; throws std::invalid_argument naming the URL.
struct Url {
    bool tls = false;
    std::string host, port, target;
};
Url parse_url(const std::string& url);

class HttpSink final : public Sink {
  public:
    explicit HttpSink(HttpSinkOptions opts);  // throws std::invalid_argument for a bad URL
    [[nodiscard]] std::string_view kind() const override { return "http"; }
    SendResult send(const Delivery& d) override;

    /// The request body for a batch (exposed for tests and benchmarks).
    std::string body(const Delivery& d) const;
    /// Reads a receiver's answer into a SendResult for a batch of `n` records.
    SendResult judge(unsigned status, const std::string& response, std::size_t n,
                     const std::string& retry_after) const;

  private:
    HttpSinkOptions opts_;
    Url url_;
};

}  // namespace feed
