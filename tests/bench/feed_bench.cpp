// feed_bench: the feed's figures. Encode throughput (native event → ECS line, one core) and
// end to end into the file sink (spool append + worker + fdatasync'd file) and into the HTTP
// sink (a real local HTTP receiver, NDJSON batches). Targets (issue 6): 1 M events/s/core to
// encode; spool plus file sink 500 k events/s.
//
//   feed_bench [HTTP_RECEIVER_SCRIPT]
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "feed/encode.hpp"
#include "feed/file_sink.hpp"
#include "feed/http_sink.hpp"
#include "feed/spool.hpp"

namespace {
using json = nlohmann::json;
using clk = std::chrono::steady_clock;
namespace fs = std::filesystem;

std::string sample(int i) {
    json j = json::parse(R"({"@timestamp":"2026-11-26T10:00:00.000001Z",
      "event":{"kind":"event","category":"process","action":"syscall","outcome":"success"},
      "vm":{"name":"web-01","uuid":"6f2c1b2a-0000-4000-8000-000000000001"},
      "process":{"pid":4242,"ppid":1,"name":"nginx","exe":"/usr/sbin/nginx",
        "args":["nginx","-g","daemon off;"],"uid":33,"euid":33,"gid":33,
        "task":"0xffff888001234000","start_time_ns":123456789,"cr3":"0x1234000",
        "parent":{"pid":1,"name":"systemd","exe":"/usr/lib/systemd/systemd"},
        "ancestors":["systemd"]},
      "syscall":{"name":"openat","nr":257,"args":{"dirfd":"AT_FDCWD","path":"/var/www/index.html",
        "flags":"O_RDONLY|O_CLOEXEC","mode":"0"},"ret":12}})");
    j["process"]["pid"] = 4000 + i % 500;
    return j.dump();
}

double secs(clk::time_point t0) { return std::chrono::duration<double>(clk::now() - t0).count(); }

void encode_bench() {
    std::vector<json> pool;
    for (int i = 0; i < 1024; ++i) pool.push_back(json::parse(sample(i)));
    const feed::EncodeContext ctx{"kvm-host", "0.1.0"};
    std::size_t bytes = 0;
    const int n = 200000;
    auto t0 = clk::now();
    for (int i = 0; i < n; ++i)
        bytes += feed::encode(feed::Encoding::Ecs, pool[static_cast<std::size_t>(i) % pool.size()],
                              "0123456789abcdef-1", static_cast<std::uint64_t>(i + 1), ctx)
                     ->size();
    const double s = secs(t0);
    std::printf("feed-encode-ecs: %.0f events/s (%.2f us/event, %.0f B/event, from parsed JSON)\n",
                n / s, s / n * 1e6, static_cast<double>(bytes) / n);
    // The sink's own path: each record's native JSON is parsed again before encoding.
    std::vector<std::string> lines;
    for (const auto& j : pool) lines.push_back(j.dump());
    t0 = clk::now();
    for (int i = 0; i < n; ++i) {
        const json j = json::parse(lines[static_cast<std::size_t>(i) % lines.size()]);
        bytes += feed::encode(feed::Encoding::Ecs, j, "0123456789abcdef-1",
                              static_cast<std::uint64_t>(i + 1), ctx)
                     ->size();
    }
    const double s2 = secs(t0);
    std::printf("feed-encode-ecs-from-spool: %.0f events/s (parse + encode)\n", n / s2);
}

void end_to_end(const char* what, std::unique_ptr<feed::Sink> sink, const fs::path& dir, int n) {
    feed::SpoolOptions so;
    so.dir = dir / (std::string("spool-") + what);
    feed::Spool spool(so);
    feed::WorkerOptions wo;
    wo.batch_records = 2000;
    wo.batch_bytes = 4U << 20;
    wo.idle_wait = std::chrono::milliseconds(5);
    const std::string ev = sample(1);
    const auto t0 = clk::now();
    feed::SinkWorker w(spool, "bench", std::move(sink), wo);
    for (int i = 0; i < n; ++i) spool.append(ev);
    spool.sync();
    const double append_s = secs(t0);
    w.drain(std::chrono::minutes(5));
    const double s = secs(t0);
    std::printf(
        "feed-%s-end-to-end: %.0f events/s (%d events of %zu B; spool append alone %.0f/s)\n", what,
        n / s, n, ev.size(), n / append_s);
}

}  // namespace

int main(int argc, char** argv) {
    encode_bench();
    const fs::path dir =
        fs::temp_directory_path() / ("vmi-feed-bench-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    feed::FileSinkOptions fo;
    fo.path = dir / "events.jsonl";
    fo.rotate_bytes = 0;
    end_to_end("file-sink", std::make_unique<feed::FileSink>(fo), dir, 500000);
    if (argc > 1) {
        const fs::path port_file = dir / "port";
        const pid_t rx = ::fork();
        if (rx == 0) {
            ::execlp("python3", "python3", argv[1], "--port-file", port_file.c_str(), "--out",
                     "/dev/null", nullptr);
            ::_exit(127);
        }
        for (int i = 0; i < 500 && !fs::exists(port_file); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        int port = 0;
        std::ifstream(port_file) >> port;
        feed::HttpSinkOptions ho;
        ho.url = "http://127.0.0.1:" + std::to_string(port) + "/";
        end_to_end("http-sink", std::make_unique<feed::HttpSink>(ho), dir, 200000);
        ::kill(rx, SIGKILL);
        ::waitpid(rx, nullptr, 0);
    }
    fs::remove_all(dir);
}
