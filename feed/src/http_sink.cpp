#include "feed/http_sink.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace feed {
namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;

Url parse_url(const std::string& url) {
    Url u;
    std::string rest;
    if (url.starts_with("http://")) {
        rest = url.substr(7);
    } else if (url.starts_with("https://")) {
        u.tls = true;
        rest = url.substr(8);
    } else {
        throw std::invalid_argument("url '" + url + "': not http:// or https://");
    }
    const auto slash = rest.find('/');
    const std::string authority = rest.substr(0, slash);
    u.target = slash == std::string::npos ? "/" : rest.substr(slash);
    const auto colon = authority.rfind(':');
    if (colon != std::string::npos && authority.find(']') == std::string::npos) {
        u.host = authority.substr(0, colon);
        u.port = authority.substr(colon + 1);
    } else {
        u.host = authority;
        u.port = u.tls ? "443" : "80";
    }
    if (u.host.empty() || u.port.empty() ||
        u.port.find_first_not_of("0123456789") != std::string::npos)
        throw std::invalid_argument("url '" + url + "': bad host or port");
    return u;
}

HttpSink::HttpSink(HttpSinkOptions opts) : opts_(std::move(opts)), url_(parse_url(opts_.url)) {}

std::string HttpSink::body(const Delivery& d) const {
    // NDJSON is the lines as they come, when they come whole.
    if (opts_.format == HttpFormat::Ndjson && !d.lines.empty()) return std::string(d.lines);
    std::string out;
    for (const auto& r : d.records) {
        switch (opts_.format) {
            case HttpFormat::Ndjson:
                out += r.payload;
                break;
            case HttpFormat::ElasticBulk:
                out += R"({"create":{"_index":)" + nlohmann::json(opts_.index).dump() +
                       R"(,"_id":")" + std::string(d.spool_id) + "-" + std::to_string(r.seq) +
                       "\"}}\n";
                out += r.payload;
                break;
            case HttpFormat::SplunkHec:
                out += R"({"sourcetype":"vminsight","event":)";
                out += r.payload;
                out += '}';
                break;
        }
        out += '\n';
    }
    return out;
}

SendResult HttpSink::judge(unsigned status, const std::string& response, std::size_t n,
                           const std::string& retry_after) const {
    SendResult r;
    if (status == 429 || status == 503) {
        if (!retry_after.empty() &&
            retry_after.find_first_not_of("0123456789") == std::string::npos &&
            retry_after.size() < 7)
            r.retry_after = std::chrono::seconds(std::stoi(retry_after));
    }
    if (status < 200 || status >= 300) {
        r.error = "HTTP " + std::to_string(status) + " from " + opts_.url;
        return r;
    }
    if (opts_.format == HttpFormat::SplunkHec) {
        const auto j = nlohmann::json::parse(response, nullptr, false);
        if (j.is_object() && j.value("code", 0) != 0) {
            r.error = "HEC code " + std::to_string(j.value("code", 0)) + ": " +
                      j.value("text", std::string());
            return r;
        }
    }
    if (opts_.format != HttpFormat::ElasticBulk) {
        r.accepted = n;
        return r;
    }
    // _bulk answers 200 even when items failed: each item says.
    const auto j = nlohmann::json::parse(response, nullptr, false);
    if (!j.is_object() || !j.contains("items") || !j["items"].is_array()) {
        r.error = "bulk response without items from " + opts_.url;
        return r;
    }
    const auto& items = j["items"];
    std::size_t i = 0;
    for (; i < n && i < items.size(); ++i) {
        const auto& it = items[i].is_object() && !items[i].empty() ? items[i].begin().value()
                                                                   : nlohmann::json::object();
        const int st = it.value("status", 0);
        if ((st >= 200 && st < 300) || st == 409) {  // 409: created by an earlier try
            if (r.rejected) break;                   // keep accepted, rejected in order
            ++r.accepted;
            continue;
        }
        if (st == 429 || st >= 500) {
            r.error = "bulk item " + std::to_string(i) + ": status " + std::to_string(st);
            return r;
        }
        ++r.rejected;  // a document the receiver will never take (mapping error, ...)
    }
    if (r.accepted + r.rejected < n && r.error.empty())
        r.error = "bulk response covers " + std::to_string(items.size()) + " of " +
                  std::to_string(n) + " items";
    return r;
}

namespace {

// One request and its answer, all asynchronous on a private io_context so the stream's
// expiry bounds every step (connect, handshake, write, read): a receiver that hangs costs this
// sink `timeout`, never a blocked thread.
struct Exchange {
    asio::io_context io;
    beast::flat_buffer buf;
    http::response_parser<http::string_body> parser;
    beast::error_code err;
    std::string step = "connect";
    bool done = false;
};

template <class Stream>
void write_then_read(Exchange& x, Stream& stream, http::request<http::string_body>& req,
                     std::chrono::milliseconds timeout) {
    x.step = "write";
    beast::get_lowest_layer(stream).expires_after(timeout);
    http::async_write(stream, req, [&x, &stream, timeout](beast::error_code ec, std::size_t) {
        if (ec) {
            x.err = ec;
            return;
        }
        x.step = "read";
        beast::get_lowest_layer(stream).expires_after(timeout);
        http::async_read(stream, x.buf, x.parser, [&x](beast::error_code ec2, std::size_t) {
            x.err = ec2;
            x.done = !ec2;
        });
    });
}

}  // namespace

SendResult HttpSink::send(const Delivery& d) {
    http::request<http::string_body> req{http::verb::post, url_.target, 11};
    req.set(http::field::host, url_.host);
    req.set(http::field::user_agent, "vminsight");
    req.set(http::field::content_type,
            opts_.format == HttpFormat::SplunkHec ? "application/json" : "application/x-ndjson");
    for (const auto& [k, v] : opts_.headers) req.set(k, v);
    req.body() = body(d);
    req.prepare_payload();
    const auto fail = [&](const std::string& why) {
        return SendResult{0, 0, opts_.url + ": " + why, std::nullopt};
    };
    try {
        Exchange x;
        x.parser.body_limit(16U << 20);
        asio::ip::tcp::resolver resolver(x.io);
        const auto endpoints = resolver.resolve(url_.host, url_.port);
        const auto t = opts_.timeout;
        if (!url_.tls) {
            beast::tcp_stream stream(x.io);
            stream.expires_after(t);
            stream.async_connect(endpoints, [&](beast::error_code ec, const auto&) {
                if (ec)
                    x.err = ec;
                else
                    write_then_read(x, stream, req, t);
            });
            x.io.run();
            if (!x.done) return fail(x.step + ": " + x.err.message());
        } else {
            asio::ssl::context ctx(asio::ssl::context::tls_client);
            if (opts_.verify_tls) {
                ctx.set_verify_mode(asio::ssl::verify_peer);
                if (opts_.ca_file.empty())
                    ctx.set_default_verify_paths();
                else
                    ctx.load_verify_file(opts_.ca_file);
            }
            beast::ssl_stream<beast::tcp_stream> stream(x.io, ctx);
            if (!SSL_set_tlsext_host_name(stream.native_handle(), url_.host.c_str()))
                return fail("TLS SNI failed");
            if (opts_.verify_tls)
                stream.set_verify_callback(asio::ssl::host_name_verification(url_.host));
            beast::get_lowest_layer(stream).expires_after(t);
            beast::get_lowest_layer(stream).async_connect(endpoints, [&](beast::error_code ec,
                                                                         const auto&) {
                if (ec) {
                    x.err = ec;
                    return;
                }
                x.step = "TLS handshake";
                stream.async_handshake(asio::ssl::stream_base::client, [&](beast::error_code ec2) {
                    if (ec2)
                        x.err = ec2;
                    else
                        write_then_read(x, stream, req, t);
                });
            });
            x.io.run();
            if (!x.done) return fail(x.step + ": " + x.err.message());
        }
        const auto& res = x.parser.get();
        return judge(res.result_int(), res.body(), d.records.size(),
                     std::string(res[http::field::retry_after]));
    } catch (const std::exception& e) {
        return fail(e.what());
    }
}

}  // namespace feed
