// Events as RFC 5424 syslog messages over TCP, or TLS (RFC 5425), with octet-counting framing
// ("LEN SP MSG"): the message is the encoded event (JSON), so any bytes a guest put in it stay
// inside one frame. Priority: facility (local0 by default) and a severity from the alert's
// priority (events: informational). Plain syslog has no application-level acknowledgement:
// a batch counts as delivered once the receiver's TCP stack took every byte; a broken
// connection is reopened and the batch sent again (receivers see the same event ids).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "feed/sink.hpp"

namespace feed {

struct SyslogSinkOptions {
    std::string host = "127.0.0.1";
    std::string port = "6514";
    bool tls = true;
    std::string ca_file;  // tls: trust these (else the system's)
    bool verify_tls = true;
    int facility = 16;     // local0
    std::string hostname;  // HOSTNAME field (the sensor's)
    std::string app_name = "vminsightd";
    std::chrono::milliseconds timeout{10'000};
};

/// One RFC 5424 message with octet-counting framing, for `msg` (an encoded event).
std::string syslog_frame(const SyslogSinkOptions& o, int severity, std::string_view msg,
                         std::string_view timestamp, std::string_view msgid);

class SyslogSink final : public Sink {
  public:
    explicit SyslogSink(SyslogSinkOptions opts);
    ~SyslogSink() override;
    [[nodiscard]] std::string_view kind() const override { return "syslog"; }
    SendResult send(const Delivery& d) override;

  private:
    struct Conn;
    SyslogSinkOptions opts_;
    std::unique_ptr<Conn> conn_;  // kept open between batches
};

}  // namespace feed
