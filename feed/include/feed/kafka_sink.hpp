// Events produced to a Kafka topic (librdkafka), for deployments that outgrow one SIEM
// endpoint. acks=all with the idempotent producer: a batch counts as delivered only when every
// in-sync replica has it; each message is keyed by its event id, so a consumer can dedup the
// ones a retry sends again.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "feed/sink.hpp"

namespace feed {

struct KafkaSinkOptions {
    std::string brokers;  // host:port,...
    std::string topic;
    std::map<std::string, std::string> properties;  // more librdkafka settings (TLS, SASL)
    std::chrono::milliseconds timeout{10'000};      // per batch (message.timeout.ms)
};

class KafkaSink final : public Sink {
  public:
    /// Throws std::runtime_error naming the setting librdkafka refused.
    explicit KafkaSink(KafkaSinkOptions opts);
    ~KafkaSink() override;
    [[nodiscard]] std::string_view kind() const override { return "kafka"; }
    SendResult send(const Delivery& d) override;

    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace feed
