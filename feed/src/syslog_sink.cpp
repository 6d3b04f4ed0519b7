#include "feed/syslog_sink.hpp"

#include "feed/encode.hpp"

#include <sys/socket.h>

#include <cerrno>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <nlohmann/json.hpp>

namespace feed {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

// RFC 5424 fields are printable US-ASCII without spaces; anything else becomes '_'.
std::string field(std::string_view s, std::size_t max) {
    std::string out;
    for (char c : s.substr(0, max)) out += (c > 32 && c < 127) ? c : '_';
    return out.empty() ? "-" : out;
}

int severity_of(const nlohmann::json& ev) {
    const auto kind = ev.contains("event") && ev["event"].is_object()
                          ? ev["event"].value("kind", "")
                          : std::string();
    std::string pri;
    if (ev.contains("rule") && ev["rule"].is_object()) pri = ev["rule"].value("priority", "");
    if (ev.contains("priority") && ev["priority"].is_string()) pri = ev["priority"];  // Falco
    return syslog_severity(pri).value_or(kind == "alert" ? 4 : 6);
}

}  // namespace

std::string syslog_frame(const SyslogSinkOptions& o, int severity, std::string_view msg,
                         std::string_view timestamp, std::string_view msgid) {
    std::string m = "<" + std::to_string(o.facility * 8 + severity) + ">1 " + field(timestamp, 64) +
                    " " + field(o.hostname, 255) + " " + field(o.app_name, 48) + " - " +
                    field(msgid, 32) + " - " + std::string(msg);
    return std::to_string(m.size()) + " " + m;
}

struct SyslogSink::Conn {
    asio::io_context io;
    asio::ssl::context ctx{asio::ssl::context::tls_client};
    std::unique_ptr<tcp::socket> plain;
    std::unique_ptr<asio::ssl::stream<tcp::socket>> tls;
    bool open = false;
};

SyslogSink::SyslogSink(SyslogSinkOptions opts) : opts_(std::move(opts)) {}
SyslogSink::~SyslogSink() = default;

SendResult SyslogSink::send(const Delivery& d) {
    SendResult r;
    std::string buf;
    for (const auto& rec : d.records) {
        const auto ev = nlohmann::json::parse(rec.payload, nullptr, false);
        std::string ts = "-", msgid = "event";
        if (ev.is_object()) {
            if (ev.contains("@timestamp") && ev["@timestamp"].is_string()) ts = ev["@timestamp"];
            if (ev.contains("time") && ev["time"].is_string()) ts = ev["time"];  // Falco
            if (ev.contains("event") && ev["event"].is_object())
                msgid = ev["event"].value("action", "event");
            if (ev.contains("class_name") && ev["class_name"].is_string()) msgid = ev["class_name"];
        }
        buf += syslog_frame(opts_, ev.is_object() ? severity_of(ev) : 6, rec.payload, ts, msgid);
    }
    const auto fail = [&](const std::string& why) {
        conn_.reset();  // reconnect next time
        r.error = "syslog " + opts_.host + ":" + opts_.port + ": " + why;
        return r;
    };
    try {
        // A receiver that went away closed the connection: notice before writing into it.
        if (conn_ && conn_->open) {
            auto& sock = opts_.tls ? conn_->tls->next_layer() : *conn_->plain;
            char c;
            const ssize_t n = ::recv(sock.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) conn_.reset();
        }
        if (!conn_ || !conn_->open) {
            conn_ = std::make_unique<Conn>();
            tcp::resolver res(conn_->io);
            const auto eps = res.resolve(opts_.host, opts_.port);
            if (opts_.tls) {
                if (opts_.verify_tls) {
                    conn_->ctx.set_verify_mode(asio::ssl::verify_peer);
                    if (opts_.ca_file.empty())
                        conn_->ctx.set_default_verify_paths();
                    else
                        conn_->ctx.load_verify_file(opts_.ca_file);
                }
                conn_->tls =
                    std::make_unique<asio::ssl::stream<tcp::socket>>(conn_->io, conn_->ctx);
                if (opts_.verify_tls)
                    conn_->tls->set_verify_callback(asio::ssl::host_name_verification(opts_.host));
                SSL_set_tlsext_host_name(conn_->tls->native_handle(), opts_.host.c_str());
            } else {
                conn_->plain = std::make_unique<tcp::socket>(conn_->io);
            }
            auto& sock = opts_.tls ? conn_->tls->next_layer() : *conn_->plain;
            boost::system::error_code ec = asio::error::timed_out;
            asio::async_connect(sock, eps,
                                [&](boost::system::error_code e, const tcp::endpoint&) { ec = e; });
            conn_->io.restart();
            conn_->io.run_for(opts_.timeout);
            if (ec) return fail("connect: " + ec.message());
            if (opts_.tls) {
                ec = asio::error::timed_out;
                conn_->tls->async_handshake(asio::ssl::stream_base::client,
                                            [&](boost::system::error_code e) { ec = e; });
                conn_->io.restart();
                conn_->io.run_for(opts_.timeout);
                if (ec) return fail("TLS handshake: " + ec.message());
            }
            conn_->open = true;
        }
        boost::system::error_code ec = asio::error::timed_out;
        auto done = [&](boost::system::error_code e, std::size_t) { ec = e; };
        if (opts_.tls)
            asio::async_write(*conn_->tls, asio::buffer(buf), done);
        else
            asio::async_write(*conn_->plain, asio::buffer(buf), done);
        conn_->io.restart();
        conn_->io.run_for(opts_.timeout);
        if (ec) return fail("write: " + ec.message());
    } catch (const std::exception& e) {
        return fail(e.what());
    }
    r.accepted = d.records.size();
    return r;
}

}  // namespace feed
