#include "metrics_server.hpp"

#include <memory>
#include <sstream>
#include <stdexcept>

#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

namespace vmid {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using json = nlohmann::json;

namespace {

// Label values: backslash, quote and newline escaped, as the format asks.
std::string label(const std::string& v) {
    std::string out;
    for (char c : v) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

std::uint64_t u(const json& j, const char* k) {
    const auto it = j.find(k);
    return it != j.end() && it->is_number() ? it->get<std::uint64_t>() : 0;
}

}  // namespace

std::string prometheus_text(const json& st) {
    std::ostringstream o;
    const std::string vm = label(st.contains("vm") ? st["vm"].value("name", "") : "");
    const json m = st.value("monitor", json::object());
    auto metric = [&](const char* name, const char* type, const char* help, std::uint64_t v) {
        o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n'
          << name << "{vm=\"" << vm << "\"} " << v << '\n';
    };
    metric("vminsight_records_read_total", "counter", "Ring records read.", u(m, "records_read"));
    metric("vminsight_records_lost_total", "counter", "Ring records lost in the kernel.",
           u(m, "records_lost_kernel"));
    metric("vminsight_syscalls_trapped_total", "counter", "Syscalls trapped.",
           u(m, "syscalls_trapped"));
    metric("vminsight_syscalls_denied_total", "counter", "Syscalls denied by the module.",
           u(m, "syscalls_denied"));
    metric("vminsight_scans_total", "counter", "Guest process listings.", u(m, "scans"));
    metric("vminsight_alerts_total", "counter", "Alerts raised.", u(st, "alerts"));
    metric("vminsight_alerts_suppressed_total", "counter", "Alerts held back (rate, dedup).",
           u(st, "alerts_suppressed"));
    metric("vminsight_vm_paused", "gauge", "1 while a rule keeps the VM paused.",
           st.value("paused_by_rule", false) ? 1 : 0);
    const json feed = st.value("feed", json());
    if (feed.is_object()) {
        metric("vminsight_spool_bytes", "gauge", "Bytes in the feed's spool.",
               u(feed, "spool_bytes"));
        metric("vminsight_spool_purged_records_total", "counter",
               "Records dropped from a full spool before a sink had them.",
               u(feed, "spool_purged_records"));
        const char* per_sink[][3] = {
            {"vminsight_sink_up", "gauge", "1 while the sink's receiver takes events."},
            {"vminsight_sink_delivered_total", "counter", "Events the receiver acknowledged."},
            {"vminsight_sink_rejected_total", "counter", "Events the receiver refused for good."},
            {"vminsight_sink_failures_total", "counter", "Failed deliveries (retried)."},
            {"vminsight_sink_backlog", "gauge", "Events not yet acknowledged."}};
        for (const auto& d : per_sink) {
            o << "# HELP " << d[0] << ' ' << d[2] << "\n# TYPE " << d[0] << ' ' << d[1] << '\n';
            for (const auto& s : feed.value("sinks", json::array())) {
                const std::string n(d[0]);
                const std::uint64_t v = n == "vminsight_sink_up" ? (s.value("up", false) ? 1 : 0)
                                        : n == "vminsight_sink_delivered_total" ? u(s, "delivered")
                                        : n == "vminsight_sink_rejected_total"  ? u(s, "rejected")
                                        : n == "vminsight_sink_failures_total"  ? u(s, "failures")
                                                                                : u(s, "backlog");
                o << d[0] << "{vm=\"" << vm << "\",sink=\"" << label(s.value("name", ""))
                  << "\",type=\"" << label(s.value("type", "")) << "\"} " << v << '\n';
            }
        }
    }
    return o.str();
}

MetricsServer::MetricsServer(asio::io_context& io, const std::string& listen,
                             std::function<json()> status)
    : acceptor_(io), status_(std::move(status)) {
    const auto colon = listen.rfind(':');
    if (colon == std::string::npos)
        throw std::runtime_error("metrics " + listen + ": not ADDRESS:PORT");
    boost::system::error_code ec;
    const auto addr = asio::ip::make_address(listen.substr(0, colon), ec);
    int port = -1;
    try {
        port = std::stoi(listen.substr(colon + 1));
    } catch (...) {
    }
    if (ec || port < 0 || port > 65535)
        throw std::runtime_error("metrics " + listen + ": not ADDRESS:PORT");
    const tcp::endpoint ep(addr, static_cast<std::uint16_t>(port));
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(16, ec);
    if (ec) throw std::runtime_error("metrics " + listen + ": " + ec.message());
    accept();
}

std::uint16_t MetricsServer::port() const { return acceptor_.local_endpoint().port(); }

void MetricsServer::accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket s) {
        if (ec == asio::error::operation_aborted) return;
        if (!ec) {
            struct Conn {
                explicit Conn(tcp::socket so) : sock(std::move(so)) {}
                tcp::socket sock;
                asio::streambuf in{8192};  // a request larger than this is not one we serve
                std::string out;
            };
            auto c = std::make_shared<Conn>(std::move(s));
            asio::async_read_until(
                c->sock, c->in, "\r\n\r\n", [this, c](boost::system::error_code e, std::size_t) {
                    std::string line;
                    std::istream is(&c->in);
                    std::getline(is, line);
                    const bool ok =
                        !e && (line.starts_with("GET /metrics ") || line.starts_with("GET / "));
                    const std::string body = ok ? prometheus_text(status_()) : "not found\n";
                    c->out =
                        std::string(ok ? "HTTP/1.1 200 OK\r\n" : "HTTP/1.1 404 Not Found\r\n") +
                        "Content-Type: text/plain; version=0.0.4\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
                    asio::async_write(c->sock, asio::buffer(c->out),
                                      [c](boost::system::error_code, std::size_t) {
                                          boost::system::error_code ignored;
                                          c->sock.shutdown(tcp::socket::shutdown_both, ignored);
                                      });
                });
        }
        accept();
    });
}

}  // namespace vmid
