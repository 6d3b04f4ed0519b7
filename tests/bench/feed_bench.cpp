// feed_bench: the feed's figures. Encode throughput on one core: ECS from a decoded spool
// record, from the spool record's bytes (decode + encode: what a sink does per record), and
// from a JSON document; the capture side's JSON → record. End to end into the file sink (batched
// spool appends of records + worker decoding and writing ECS + fdatasync'd file) on disk, with
// the bound this disk's write rate puts on it, and the same on tmpfs; from Feed::publish of
// JSON documents; and into the HTTP sink (a real local HTTP receiver, NDJSON batches of ECS).
// Targets (issue 6): 1 M events/s/core to encode; spool plus file sink 500 k events/s.
//
//   feed_bench [HTTP_RECEIVER_SCRIPT]
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "feed/encode.hpp"
#include "feed/encoding_sink.hpp"
#include "feed/fd.hpp"
#include "feed/feed.hpp"
#include "feed/file_sink.hpp"
#include "feed/http_sink.hpp"
#include "feed/record.hpp"
#include "feed/spool.hpp"

namespace {
using json = nlohmann::json;
using clk = std::chrono::steady_clock;
namespace fs = std::filesystem;

std::string sample(int i, bool distinct = false) {
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
    // 64 processes make most of the events (each its own task, so its own entity id);
    // `distinct` makes every event another process's (no repeats at all).
    const int proc = distinct ? i : i % 64;
    j["process"]["pid"] = 4000 + proc;
    j["process"]["task"] = "0xffff8880" + std::to_string(10000000 + proc * 4);
    return j.dump();
}

double secs(clk::time_point t0) { return std::chrono::duration<double>(clk::now() - t0).count(); }

// The calling thread's CPU time: the figures are per core, and the machine is shared.
double cpu_secs() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// The whole process's CPU time (every thread, user and system).
double process_cpu_secs() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    const auto tv = [](const timeval& t) {
        return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6;
    };
    return tv(ru.ru_utime) + tv(ru.ru_stime);
}

struct Timing {
    double wall = 0, cpu = 0;
};

// n encodes of the pool's events, round robin.
template <class F>
Timing timed(int n, F&& one) {
    const auto t0 = clk::now();
    const double c0 = cpu_secs();
    for (int i = 0; i < n; ++i) one(static_cast<std::size_t>(i));
    return {secs(t0), cpu_secs() - c0};
}

void report(const char* name, int n, Timing t, std::size_t bytes, const char* what) {
    std::printf(
        "%s: %.0f events/s per core (%.3f us CPU/event; %.0f/s wall clock; %.0f B/event; %s)\n",
        name, n / t.cpu, t.cpu / n * 1e6, n / t.wall, static_cast<double>(bytes) / n, what);
}

void encode_bench() {
    const feed::EncodeContext ctx{"kvm-host", "0.1.0"};
    const int n = 1000000;
    for (const bool distinct : {false, true}) {
        std::vector<json> docs;
        std::vector<std::string> records;
        for (int i = 0; i < 1024; ++i) {
            docs.push_back(json::parse(sample(i, distinct)));
            records.push_back(feed::record::encode(docs.back()));
        }
        std::vector<feed::record::View> views(records.size());
        for (std::size_t i = 0; i < records.size(); ++i) views[i].decode(records[i]);
        std::string out, id = "0123456789abcdef-1";
        std::size_t bytes = 0;
        feed::record::View v;
        if (!distinct) {
            // The sink's output buffer is reused, as EncodingSink does.
            Timing s = timed(n, [&](std::size_t i) {
                out.clear();
                feed::encode_record(feed::Encoding::Ecs, views[i % views.size()], id, i + 1, ctx,
                                    out);
                bytes += out.size();
            });
            report("feed-encode-ecs-from-record", n, s, bytes, "a decoded spool record, in memory");
        }
        bytes = 0;
        Timing s = timed(n, [&](std::size_t i) {
            out.clear();
            if (!v.decode(records[i % records.size()])) std::abort();
            feed::encode_record(feed::Encoding::Ecs, v, id, i + 1, ctx, out);
            bytes += out.size();
        });
        report(distinct ? "feed-encode-ecs-from-spool-all-distinct-processes"
                        : "feed-encode-ecs-from-spool",
               n, s, bytes,
               distinct ? "decode + encode; every event another process: no entity id reuse"
                        : "decode + encode of the record's bytes, what a sink does");
        if (distinct) break;
        bytes = 0;
        s = timed(n, [&](std::size_t i) {
            out.clear();
            if (!v.decode(records[i % records.size()])) std::abort();
            feed::encode_record(feed::Encoding::Native, v, id, i + 1, ctx, out);
            bytes += out.size();
        });
        report("feed-encode-native-from-spool", n, s, bytes, "decode + native JSON");
        bytes = 0;
        s = timed(n / 10, [&](std::size_t i) {
            bytes +=
                feed::encode(feed::Encoding::Ecs, docs[i % docs.size()], id, i + 1, ctx)->size();
        });
        report("feed-encode-ecs-from-json", n / 10, s, bytes,
               "a JSON document: document -> record -> ECS");
        bytes = 0;
        std::string rec;
        s = timed(n / 10, [&](std::size_t i) {
            rec.clear();
            feed::record::encode(docs[i % docs.size()], rec);
            bytes += rec.size();
        });
        report("feed-record-from-json", n / 10, s, bytes,
               "the capture side: a JSON document as a spool record");
    }
}

// This disk's durable write rate, as the file sink writes: 256 KiB writes, an fdatasync every
// 2 MiB. The file sink's end to end writes every event twice (the spool record, then its ECS
// line), so this rate bounds it, whatever the CPU does.
double durable_mb_per_s(const fs::path& dir) {
    const fs::path f = dir / "disk-rate";
    const std::string chunk(256U << 10, 'x');
    feed::Fd fd(::open(f.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd.valid()) return 0;
    const std::size_t total = 512U << 20;
    const auto t0 = clk::now();
    for (std::size_t done = 0; done < total; done += chunk.size()) {
        if (::write(fd.get(), chunk.data(), chunk.size()) != static_cast<ssize_t>(chunk.size()))
            return 0;
        if ((done + chunk.size()) % (2U << 20) == 0) ::fdatasync(fd.get());
    }
    const double s = secs(t0);
    fs::remove(f);
    return static_cast<double>(total) / s / 1e6;
}

// Spool appends of records (as Feed::publish makes them) and the ECS file sink's worker,
// from the first append until the sink has everything on disk. Run `runs` times, each on a
// fresh spool and output: the machine is shared, so the median and the best are printed.
void end_to_end(const char* what, const std::function<std::unique_ptr<feed::Sink>()>& make,
                const fs::path& dir, int n, std::size_t batch_records, std::size_t batch_bytes,
                const fs::path& written, bool disk_bound, const char* where, int runs = 3) {
    feed::WorkerOptions wo;
    wo.batch_records = batch_records;
    wo.batch_bytes = batch_bytes;
    wo.idle_wait = std::chrono::milliseconds(5);
    const std::string ev = feed::record::encode(json::parse(sample(1)));
    // Appended as Feed::publish does: batches of Feed::kBatchRecords, one write each.
    const std::vector<std::string_view> batch(feed::Feed::kBatchRecords, ev);
    std::vector<double> wall, per_cpu, appends, disk;
    double per_event = 0;
    for (int run = 0; run < runs; ++run) {
        const fs::path spool_dir = dir / (std::string("spool-") + what);
        fs::remove_all(spool_dir);
        if (!written.empty()) fs::remove(written);
        // The disk's rate just before (after, its writeback of the run would compete).
        if (disk_bound) disk.push_back(durable_mb_per_s(dir));
        feed::SpoolOptions so;
        so.dir = spool_dir;
        feed::Spool spool(so);
        const auto t0 = clk::now();
        const double c0 = process_cpu_secs();
        {
            feed::SinkWorker w(
                spool, "bench",
                std::make_unique<feed::EncodingSink>(make(), feed::Encoding::Ecs,
                                                     feed::EncodeContext{"kvm-host", "0.1.0"}),
                wo);
            for (int i = 0; i < n; i += static_cast<int>(batch.size())) spool.append_batch(batch);
            spool.sync();
            appends.push_back(n / secs(t0));
            w.drain(std::chrono::minutes(5));
            wall.push_back(n / secs(t0));
            per_cpu.push_back(n / (process_cpu_secs() - c0));
        }
        if (!written.empty())
            per_event =
                static_cast<double>(fs::file_size(written) + spool.stats().appended * 16) / n +
                static_cast<double>(ev.size());
    }
    const auto median = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    };
    const auto best = [](const std::vector<double>& v) {
        return *std::max_element(v.begin(), v.end());
    };
    std::printf(
        "feed-%s-end-to-end%s: %.0f events/s, median of %d runs (best %.0f; %d events each, "
        "records of %zu B, written as ECS in batches of up to %zu; batched spool appends alone "
        "%.0f/s; %.0f events per CPU second, all threads)\n",
        what, where, median(wall), runs, best(wall), n, ev.size(), batch_records, median(appends),
        median(per_cpu));
    if (disk_bound) {
        const double rate = median(disk);
        std::printf(
            "feed-file-sink-disk-bound: this disk wrote %.0f MB/s durably before each run "
            "(median; 256 KiB writes, fdatasync every 2 MiB); at %.0f B per event (spool "
            "record + ECS line) that bounds spool plus file sink on it at about %.0f events/s\n",
            rate, per_event, rate * 1e6 / per_event);
    }
}

// The daemon's whole path: Feed::publish of JSON documents (to records, batched appends, a
// sync at the end) and the ECS file sink's worker.
void feed_end_to_end(const fs::path& dir, int n) {
    const json cfg = {{"spool", {{"dir", (dir / "spool-feed").string()}}},
                      {"sinks",
                       {{{"name", "ecs"},
                         {"type", "file"},
                         {"path", (dir / "feed.jsonl").string()},
                         {"rotate_mb", 0}}}}};
    std::vector<json> docs;
    for (int i = 0; i < 1024; ++i) docs.push_back(json::parse(sample(i)));
    auto fc = feed::parse_feed_config(cfg, "bench");  // the file sink's default batches
    fc.worker.idle_wait = std::chrono::milliseconds(5);
    const auto t0 = clk::now();
    const double c0 = process_cpu_secs();
    feed::Feed f(fc, feed::EncodeContext{"kvm-host", "0.1.0"});
    for (int i = 0; i < n; ++i) f.publish(docs[static_cast<std::size_t>(i) % docs.size()]);
    f.sync();
    const double publish_s = secs(t0);
    f.drain(std::chrono::minutes(5));
    const double s = secs(t0), cpu = process_cpu_secs() - c0;
    std::printf(
        "feed-publish-file-sink-end-to-end: %.0f events/s (%d JSON documents through "
        "Feed::publish to the ECS file sink; publish alone %.0f/s; %.0f events per CPU "
        "second)\n",
        n / s, n, n / publish_s, n / cpu);
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
    // The file sink's default batches (feed::kFileBatchRecords, as a configured one has).
    const std::size_t fr = feed::kFileBatchRecords, fb = feed::kFileBatchBytes;
    const auto file_sink = [&] { return std::make_unique<feed::FileSink>(fo); };
    end_to_end("file-sink", file_sink, dir, 1000000, fr, fb, fo.path, true, " (disk)");
    // The same in memory (tmpfs): what the spool, the encoding and the file sink sustain
    // when the disk is not the bound.
    const fs::path mem = fs::path("/dev/shm") / ("vmi-feed-bench-" + std::to_string(::getpid()));
    if (fs::is_directory("/dev/shm") && fs::create_directories(mem)) {
        fo.path = mem / "events.jsonl";
        end_to_end("file-sink", file_sink, mem, 1000000, fr, fb, fo.path, false, " (tmpfs)");
        fs::remove_all(mem);
    }
    feed_end_to_end(dir, 500000);
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
        end_to_end(
            "http-sink", [&] { return std::make_unique<feed::HttpSink>(ho); }, dir, 200000, 2000,
            4U << 20, {}, false, "", 1);
        ::kill(rx, SIGKILL);
        ::waitpid(rx, nullptr, 0);
    }
    fs::remove_all(dir);
}
