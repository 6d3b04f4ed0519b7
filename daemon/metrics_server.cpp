#include "metrics_server.hpp"

#include <chrono>
#include <functional>
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
    // One VM (--qemu-pid): its status is the whole status. Under libvirt: one per attached VM.
    const bool many = st.contains("vms");
    const json vms = many ? st["vms"] : json::array({st});
    const auto vm_name = [](const json& v) {
        return label(v.contains("vm") ? v["vm"].value("name", "") : "");
    };
    const auto header = [&](const char* name, const char* type, const char* help) {
        o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
    };
    // A per-VM metric: one line per VM; `value` reads it from that VM's status.
    const auto per_vm = [&](const char* name, const char* type, const char* help,
                            const std::function<std::uint64_t(const json&)>& value) {
        header(name, type, help);
        for (const auto& v : vms) o << name << "{vm=\"" << vm_name(v) << "\"} " << value(v) << '\n';
    };
    const auto mon = [](const char* k) {
        return [k](const json& v) { return u(v.value("monitor", json::object()), k); };
    };
    const auto own = [](const char* k) { return [k](const json& v) { return u(v, k); }; };
    per_vm("vminsight_records_read_total", "counter", "Ring records read.", mon("records_read"));
    per_vm("vminsight_records_lost_total", "counter", "Ring records lost in the kernel.",
           mon("records_lost_kernel"));
    per_vm("vminsight_syscalls_trapped_total", "counter", "Syscalls trapped.",
           mon("syscalls_trapped"));
    per_vm("vminsight_syscalls_denied_total", "counter", "Syscalls denied by the module.",
           mon("syscalls_denied"));
    per_vm("vminsight_scans_total", "counter", "Guest process listings.", mon("scans"));
    per_vm("vminsight_alerts_total", "counter", "Alerts raised.", own("alerts"));
    per_vm("vminsight_alerts_suppressed_total", "counter", "Alerts held back (rate, dedup).",
           own("alerts_suppressed"));
    per_vm("vminsight_vm_paused", "gauge", "1 while a rule keeps the VM paused.",
           [](const json& v) { return v.value("paused_by_rule", false) ? 1U : 0U; });
    if (many) {
        header("vminsight_vms_attached", "gauge", "VMs attached now.");
        o << "vminsight_vms_attached " << vms.size() << '\n';
        header("vminsight_libvirt_connected", "gauge", "1 while the libvirt connection is up.");
        o << "vminsight_libvirt_connected "
          << (st.value("libvirt", json::object()).value("state", "") == "connected" ? 1 : 0)
          << '\n';
    }
    // The feed is the daemon's: labelled with the VM only when there is one.
    const std::string feed_vm = many ? "" : "vm=\"" + vm_name(st) + "\",";
    const json feed = st.value("feed", json());
    if (feed.is_object()) {
        const auto daemon_metric = [&](const char* name, const char* type, const char* help,
                                       std::uint64_t v) {
            header(name, type, help);
            o << name;
            if (!many) o << "{vm=\"" << vm_name(st) << "\"}";
            o << ' ' << v << '\n';
        };
        daemon_metric("vminsight_spool_bytes", "gauge", "Bytes in the feed's spool.",
                      u(feed, "spool_bytes"));
        daemon_metric("vminsight_spool_purged_records_total", "counter",
                      "Records dropped from a full spool before a sink had them.",
                      u(feed, "spool_purged_records"));
        const char* per_sink[][3] = {
            {"vminsight_sink_up", "gauge", "1 while the sink's receiver takes events."},
            {"vminsight_sink_delivered_total", "counter", "Events the receiver acknowledged."},
            {"vminsight_sink_rejected_total", "counter", "Events the receiver refused for good."},
            {"vminsight_sink_failures_total", "counter", "Failed deliveries (retried)."},
            {"vminsight_sink_backlog", "gauge", "Events not yet acknowledged."}};
        for (const auto& d : per_sink) {
            header(d[0], d[1], d[2]);
            for (const auto& s : feed.value("sinks", json::array())) {
                const std::string n(d[0]);
                const std::uint64_t v = n == "vminsight_sink_up" ? (s.value("up", false) ? 1 : 0)
                                        : n == "vminsight_sink_delivered_total" ? u(s, "delivered")
                                        : n == "vminsight_sink_rejected_total"  ? u(s, "rejected")
                                        : n == "vminsight_sink_failures_total"  ? u(s, "failures")
                                                                                : u(s, "backlog");
                o << d[0] << "{" << feed_vm << "sink=\"" << label(s.value("name", ""))
                  << "\",type=\"" << label(s.value("type", "")) << "\"} " << v << '\n';
            }
        }
    }
    return o.str();
}

MetricsServer::MetricsServer(asio::io_context& io, const std::string& listen,
                             std::function<json()> status)
    : acceptor_(io), retry_(io), status_(std::move(status)) {
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

// Scrapers are few and quick: at most kMaxConnections at once, each closed after kDeadline,
// so idle connections cannot use up the daemon's file descriptors (which it needs for
// /dev/vminsight and pidfds). Out of descriptors, accepting pauses instead of spinning.
void MetricsServer::accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket s) {
        if (ec == asio::error::operation_aborted) return;
        if (ec) {
            retry_.expires_after(std::chrono::milliseconds(100));
            retry_.async_wait([this](boost::system::error_code e) {
                if (!e) accept();
            });
            return;
        }
        if (*open_ < kMaxConnections) serve(std::move(s));
        accept();
    });
}

void MetricsServer::serve(tcp::socket s) {
    struct Conn {
        Conn(tcp::socket so, std::shared_ptr<std::size_t> n)
            : sock(std::move(so)), deadline(sock.get_executor()), open(std::move(n)) {
            ++*open;
        }
        ~Conn() { --*open; }
        Conn(const Conn&) = delete;
        Conn& operator=(const Conn&) = delete;
        tcp::socket sock;
        asio::steady_timer deadline;
        std::shared_ptr<std::size_t> open;
        asio::streambuf in{8192};  // a request larger than this is not one we serve
        std::string out;
    };
    auto c = std::make_shared<Conn>(std::move(s), open_);
    c->deadline.expires_after(kDeadline);
    c->deadline.async_wait([w = std::weak_ptr<Conn>(c)](boost::system::error_code e) {
        if (auto conn = w.lock(); conn && !e) {
            boost::system::error_code ignored;
            conn->sock.close(ignored);
        }
    });
    asio::async_read_until(
        c->sock, c->in, "\r\n\r\n", [this, c](boost::system::error_code e, std::size_t) {
            std::string line;
            std::istream is(&c->in);
            std::getline(is, line);
            const bool ok = !e && (line.starts_with("GET /metrics ") || line.starts_with("GET / "));
            std::string status = ok ? "200 OK" : "404 Not Found";
            std::string body = "not found\n";
            if (ok) {
                try {
                    body = prometheus_text(status_());
                } catch (const std::exception& ex) {  // never into the event loop
                    status = "500 Internal Server Error";
                    body = std::string(ex.what()) + "\n";
                }
            }
            c->out = "HTTP/1.1 " + status +
                     "\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
            asio::async_write(c->sock, asio::buffer(c->out),
                              [c](boost::system::error_code, std::size_t) {
                                  boost::system::error_code ignored;
                                  c->sock.shutdown(tcp::socket::shutdown_both, ignored);
                                  c->deadline.cancel();
                              });
        });
}

}  // namespace vmid
