// Prometheus metrics over a real socket.
#include "metrics_server.hpp"

#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

namespace {
namespace asio = boost::asio;

std::string get(std::uint16_t port, const std::string& path) {
    asio::io_context io;
    asio::ip::tcp::socket s(io);
    s.connect({asio::ip::make_address("127.0.0.1"), port});
    asio::write(s, asio::buffer("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n"));
    std::string out;
    boost::system::error_code ec;
    char buf[4096];
    for (std::size_t n; (n = s.read_some(asio::buffer(buf), ec)) > 0 && !ec;) out.append(buf, n);
    return out;
}

TEST(Metrics, ServesThePrometheusTextOfTheStatus) {
    asio::io_context io;
    const nlohmann::json st = {
        {"vm", {{"name", "web \"1\""}}},
        {"alerts", 7},
        {"monitor", {{"records_read", 100}, {"records_lost_kernel", 2}, {"syscalls_denied", 3}}},
        {"feed",
         {{"spool_bytes", 4096},
          {"sinks", {{{"name", "siem"}, {"type", "http"}, {"up", false}, {"backlog", 12}}}}}}};
    vmid::MetricsServer m(io, "127.0.0.1:0", [&] { return st; });
    std::thread t([&] { io.run(); });
    const std::string r = get(m.port(), "/metrics");
    io.stop();
    t.join();
    EXPECT_NE(r.find("HTTP/1.1 200 OK"), std::string::npos);
    EXPECT_NE(r.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
    EXPECT_NE(r.find("vminsight_records_lost_total{vm=\"web \\\"1\\\"\"} 2\n"), std::string::npos)
        << r;
    EXPECT_NE(r.find("# TYPE vminsight_alerts_total counter\n"), std::string::npos);
    EXPECT_NE(r.find("vminsight_sink_up{vm=\"web \\\"1\\\"\",sink=\"siem\",type=\"http\"} 0\n"),
              std::string::npos);
    EXPECT_NE(
        r.find("vminsight_sink_backlog{vm=\"web \\\"1\\\"\",sink=\"siem\",type=\"http\"} 12\n"),
        std::string::npos);
}

// Under libvirt: one line per attached VM, the feed's metrics without a VM label, and the
// daemon's own gauges.
TEST(Metrics, OneSeriesPerAttachedVm) {
    const nlohmann::json st = {
        {"libvirt", {{"uri", "qemu:///system"}, {"state", "connected"}}},
        {"vms",
         {{{"vm", {{"name", "web"}}}, {"alerts", 1}, {"monitor", {{"records_read", 10}}}},
          {{"vm", {{"name", "db"}}}, {"alerts", 2}, {"monitor", {{"records_read", 20}}}}}},
        {"feed",
         {{"spool_bytes", 1}, {"sinks", {{{"name", "local"}, {"type", "file"}, {"up", true}}}}}}};
    const std::string r = vmid::prometheus_text(st);
    EXPECT_NE(r.find("vminsight_records_read_total{vm=\"web\"} 10\n"), std::string::npos) << r;
    EXPECT_NE(r.find("vminsight_records_read_total{vm=\"db\"} 20\n"), std::string::npos);
    EXPECT_NE(r.find("vminsight_alerts_total{vm=\"db\"} 2\n"), std::string::npos);
    EXPECT_NE(r.find("vminsight_vms_attached 2\n"), std::string::npos);
    EXPECT_NE(r.find("vminsight_libvirt_connected 1\n"), std::string::npos);
    EXPECT_NE(r.find("vminsight_sink_up{sink=\"local\",type=\"file\"} 1\n"), std::string::npos);
    EXPECT_NE(r.find("vminsight_spool_bytes 1\n"), std::string::npos);
    // HELP and TYPE once per metric, however many VMs.
    std::size_t types = 0;
    for (std::size_t at = 0;
         (at = r.find("# TYPE vminsight_records_read_total", at)) != std::string::npos; ++at)
        ++types;
    EXPECT_EQ(types, 1U);
}

// Idle connections cannot pile up: past kMaxConnections a new one is closed unserved, and
// serving resumes once they go.
TEST(Metrics, ConnectionsAreCapped) {
    asio::io_context io;
    vmid::MetricsServer m(io, "127.0.0.1:0", [] { return nlohmann::json::object(); });
    std::thread t([&] { io.run(); });
    std::vector<asio::ip::tcp::socket> idle;
    for (std::size_t i = 0; i < vmid::MetricsServer::kMaxConnections; ++i) {
        idle.emplace_back(io);
        idle.back().connect({asio::ip::make_address("127.0.0.1"), m.port()});
    }
    // Accepted in order, so the next one is over the cap: closed before any reply.
    {
        asio::io_context cio;
        asio::ip::tcp::socket s(cio);
        s.connect({asio::ip::make_address("127.0.0.1"), m.port()});
        boost::system::error_code ec;
        asio::write(s, asio::buffer(std::string("GET /metrics HTTP/1.1\r\n\r\n")), ec);
        std::string out(4096, '\0');
        const std::size_t n = asio::read(s, asio::buffer(out), ec);
        EXPECT_EQ(n, 0U) << out.substr(0, n);
    }
    for (auto& s : idle) s.close();
    std::string r;
    for (int i = 0; i < 100 && r.find("200 OK") == std::string::npos; ++i)
        r = get(m.port(), "/metrics");
    io.stop();
    t.join();
    EXPECT_NE(r.find("200 OK"), std::string::npos);
}

TEST(Metrics, OtherPathsAreNotFoundAndBadAddressesAreErrors) {
    asio::io_context io;
    vmid::MetricsServer m(io, "127.0.0.1:0", [] { return nlohmann::json::object(); });
    std::thread t([&] { io.run(); });
    const std::string r = get(m.port(), "/admin");
    io.stop();
    t.join();
    EXPECT_NE(r.find("404"), std::string::npos);
    EXPECT_THROW(vmid::MetricsServer(io, "localhost", [] { return nlohmann::json(); }),
                 std::runtime_error);
    EXPECT_THROW(vmid::MetricsServer(io, "not-an-ip:99", [] { return nlohmann::json(); }),
                 std::runtime_error);
}

}  // namespace
