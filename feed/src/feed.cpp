#include "feed/feed.hpp"

#include <condition_variable>
#include <fstream>
#include <set>

#include "feed/file_sink.hpp"
#include "feed/http_sink.hpp"
#include "feed/kafka_sink.hpp"
#include "feed/record.hpp"
#include "feed/syslog_sink.hpp"

namespace feed {
using json = nlohmann::json;

namespace {

[[noreturn]] void bad(const std::string& where, const std::string& field, const std::string& why) {
    throw ConfigError(where + ": " + field + ": " + why);
}

std::string str(const json& o, const char* k, const std::string& where, const std::string& at,
                const std::string& def = {}, bool required = false) {
    const auto it = o.find(k);
    if (it == o.end()) {
        if (required) bad(where, at + k, "missing");
        return def;
    }
    if (!it->is_string()) bad(where, at + k, "must be a string");
    return it->get<std::string>();
}

std::uint64_t num(const json& o, const char* k, const std::string& where, const std::string& at,
                  std::uint64_t def, std::uint64_t min, std::uint64_t max) {
    const auto it = o.find(k);
    if (it == o.end()) return def;
    if (!it->is_number_unsigned() && !(it->is_number_integer() && it->get<std::int64_t>() >= 0))
        bad(where, at + k, "must be a whole number");
    const auto v = it->get<std::uint64_t>();
    if (v < min || v > max)
        bad(where, at + k, "must be in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
    return v;
}

bool flag(const json& o, const char* k, const std::string& where, bool def) {
    const auto it = o.find(k);
    if (it == o.end()) return def;
    if (!it->is_boolean()) bad(where, k, "must be true or false");
    return it->get<bool>();
}

// An object of strings (HTTP headers, librdkafka properties).
std::map<std::string, std::string> string_map(const json& o, const char* k,
                                              const std::string& where) {
    std::map<std::string, std::string> out;
    const auto it = o.find(k);
    if (it == o.end()) return out;
    if (!it->is_object()) bad(where, k, "must be an object");
    for (auto e = it->begin(); e != it->end(); ++e) {
        if (!e->is_string()) bad(where, std::string(k) + "." + e.key(), "must be a string");
        out[e.key()] = e->get<std::string>();
    }
    return out;
}

void only(const json& o, std::set<std::string> keys, const std::string& where,
          const std::string& at) {
    for (auto it = o.begin(); it != o.end(); ++it)
        if (!keys.count(it.key())) bad(where, at + it.key(), "unknown key");
}

class StdoutSink final : public Sink {
  public:
    std::string_view kind() const override { return "stdout"; }
    SendResult send(const Delivery& d) override {
        for (const auto& r : d.records) {
            std::fwrite(r.payload.data(), 1, r.payload.size(), stdout);
            std::fputc('\n', stdout);
        }
        SendResult res;
        if (std::fflush(stdout) != 0) {
            res.error = "stdout: write failed";
            return res;
        }
        res.accepted = d.records.size();
        return res;
    }
};

}  // namespace

FeedConfig parse_feed_config(const json& j, const std::string& where) {
    if (!j.is_object()) bad(where, "(top)", "must be an object");
    only(j, {"spool", "sinks", "batch_records", "backoff_max_ms"}, where, "");
    FeedConfig c;
    const json spool = j.value("spool", json::object());
    if (!spool.is_object()) bad(where, "spool", "must be an object");
    only(spool, {"dir", "max_mb", "segment_mb"}, where, "spool.");
    c.spool.dir = str(spool, "dir", where, "spool.", "/var/lib/vminsight/spool");
    c.spool.max_bytes = num(spool, "max_mb", where, "spool.", 1024, 16, 1 << 22) << 20;
    c.spool.segment_bytes = num(spool, "segment_mb", where, "spool.", 16, 1, 1024) << 20;
    c.worker.batch_records = num(j, "batch_records", where, "", 500, 1, 100000);
    c.worker.backoff_max =
        std::chrono::milliseconds(num(j, "backoff_max_ms", where, "", 30000, 100, 3600000));
    const json sinks = j.value("sinks", json::array());
    if (!sinks.is_array()) bad(where, "sinks", "must be a list");
    std::set<std::string> names;
    for (std::size_t i = 0; i < sinks.size(); ++i) {
        const std::string at = "sinks[" + std::to_string(i) + "].";
        const json& s = sinks[i];
        if (!s.is_object()) bad(where, at.substr(0, at.size() - 1), "must be an object");
        SinkConfig sc;
        sc.name = str(s, "name", where, at, "", true);
        if (!valid_sink_name(sc.name))
            bad(where, at + "name", "'" + sc.name + "' is not [A-Za-z0-9_-], 1 to 64");
        if (!names.insert(sc.name).second) bad(where, at + "name", "'" + sc.name + "' twice");
        sc.type = str(s, "type", where, at, "", true);
        const std::string enc = str(s, "encoding", where, at, "ecs");
        const auto e = parse_encoding(enc);
        if (!e) bad(where, at + "encoding", "'" + enc + "' (native, ecs, ocsf, falco)");
        sc.encoding = *e;
        if (sc.type == "file") {
            sc.batch_records = kFileBatchRecords;
            sc.batch_bytes = kFileBatchBytes;
        }
        if (j.contains("batch_records")) sc.batch_records = c.worker.batch_records;
        sc.batch_records = num(s, "batch_records", where, at, sc.batch_records, 1, 100000);
        sc.settings = s;
        make_sink(sc, EncodeContext{}, where + ": " + at.substr(0, at.size() - 1));  // validates
        c.sinks.push_back(std::move(sc));
    }
    return c;
}

FeedConfig load_feed_config(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw ConfigError(path + ": cannot read");
    json j;
    try {
        j = json::parse(in);
    } catch (const json::parse_error& e) {
        throw ConfigError(path + ": not JSON: " + e.what());
    }
    return parse_feed_config(j, path);
}

std::unique_ptr<Sink> make_sink(const SinkConfig& c, const EncodeContext& ctx,
                                const std::string& where) {
    const json& s = c.settings;
    const std::set<std::string> common = {"name", "type", "encoding", "batch_records"};
    auto with = [&](std::set<std::string> extra) {
        extra.insert(common.begin(), common.end());
        return extra;
    };
    std::unique_ptr<Sink> inner;
    if (c.type == "stdout") {
        only(s, common, where, "");
        inner = std::make_unique<StdoutSink>();
    } else if (c.type == "file") {
        only(s, with({"path", "rotate_mb", "rotate_minutes", "keep", "compress"}), where, "");
        FileSinkOptions o;
        o.path = str(s, "path", where, "", "", true);
        o.rotate_bytes = num(s, "rotate_mb", where, "", 256, 0, 1 << 20) << 20;
        o.rotate_age = std::chrono::minutes(num(s, "rotate_minutes", where, "", 0, 0, 1 << 20));
        o.keep = static_cast<unsigned>(num(s, "keep", where, "", 10, 0, 100000));
        o.compress = flag(s, "compress", where, true);
        try {
            inner = std::make_unique<FileSink>(o);
        } catch (const std::exception& e) {
            bad(where, "path", e.what());
        }
    } else if (c.type == "http") {
        only(s, with({"url", "format", "headers", "index", "ca_file", "verify_tls", "timeout_ms"}),
             where, "");
        HttpSinkOptions o;
        o.url = str(s, "url", where, "", "", true);
        const std::string fmt = str(s, "format", where, "", "ndjson");
        if (fmt == "ndjson")
            o.format = HttpFormat::Ndjson;
        else if (fmt == "elastic-bulk")
            o.format = HttpFormat::ElasticBulk;
        else if (fmt == "splunk-hec")
            o.format = HttpFormat::SplunkHec;
        else
            bad(where, "format", "'" + fmt + "' (ndjson, elastic-bulk, splunk-hec)");
        o.headers = string_map(s, "headers", where);
        // No header injection from a config: no CR or LF anywhere.
        for (const auto& [k, v] : o.headers)
            if (v.find_first_of("\r\n") != std::string::npos ||
                k.find_first_of("\r\n: ") != std::string::npos)
                bad(where, "headers." + k, "contains a line break or bad name");
        o.index = str(s, "index", where, "", "vminsight");
        o.ca_file = str(s, "ca_file", where, "", "");
        o.verify_tls = flag(s, "verify_tls", where, true);
        o.timeout = std::chrono::milliseconds(num(s, "timeout_ms", where, "", 10000, 100, 600000));
        try {
            inner = std::make_unique<HttpSink>(o);
        } catch (const std::invalid_argument& e) {
            bad(where, "url", e.what());
        }
    } else if (c.type == "syslog") {
        only(s, with({"host", "port", "tls", "ca_file", "verify_tls", "facility", "timeout_ms"}),
             where, "");
        SyslogSinkOptions o;
        o.host = str(s, "host", where, "", "", true);
        o.port = std::to_string(num(s, "port", where, "", 6514, 1, 65535));
        o.tls = flag(s, "tls", where, true);
        o.verify_tls = flag(s, "verify_tls", where, true);
        o.ca_file = str(s, "ca_file", where, "", "");
        o.facility = static_cast<int>(num(s, "facility", where, "", 16, 0, 23));
        o.hostname = ctx.observer_hostname;
        o.timeout = std::chrono::milliseconds(num(s, "timeout_ms", where, "", 10000, 100, 600000));
        inner = std::make_unique<SyslogSink>(o);
    } else if (c.type == "kafka") {
        only(s, with({"brokers", "topic", "properties", "timeout_ms"}), where, "");
        KafkaSinkOptions o;
        o.brokers = str(s, "brokers", where, "", "", true);
        o.topic = str(s, "topic", where, "", "", true);
        o.properties = string_map(s, "properties", where);
        o.timeout = std::chrono::milliseconds(num(s, "timeout_ms", where, "", 10000, 100, 600000));
        try {
            inner = std::make_unique<KafkaSink>(o);
        } catch (const std::runtime_error& e) {
            bad(where, "properties", e.what());
        }
    } else {
        bad(where, "type", "'" + c.type + "' (stdout, file, http, syslog, kafka)");
    }
    return std::make_unique<EncodingSink>(std::move(inner), c.encoding, ctx);
}

Feed::Feed(FeedConfig cfg, EncodeContext ctx) : cfg_(std::move(cfg)), spool_(cfg_.spool) {
    for (const auto& sc : cfg_.sinks) {
        WorkerOptions wo = cfg_.worker;
        wo.batch_records = sc.batch_records;
        wo.batch_bytes = sc.batch_bytes;
        workers_.push_back(std::make_unique<SinkWorker>(
            spool_, sc.name, make_sink(sc, ctx, sc.name), wo, [this](const SinkStatus& st) {
                account({{"event",
                          {{"kind", "event"},
                           {"category", "host"},
                           {"action", st.up ? "sink-recovered" : "sink-down"}}},
                         {"vminsight",
                          {{"sink", st.name},
                           {"sink_type", st.kind},
                           {"error", st.last_error},
                           {"backlog", st.backlog},
                           {"delivered", st.delivered}}}});
            }));
    }
    flusher_ = std::jthread([this](const std::stop_token& stop) { flush_every(stop); });
}

Feed::~Feed() {
    flusher_ = {};  // stops and joins
    try {
        std::lock_guard lk(mu_);
        flush_locked();
    } catch (...) {
    }
    workers_.clear();  // join: what is not acknowledged stays in the spool for next time
    try {
        spool_.sync();
    } catch (...) {
    }
}

void Feed::account(const json& event) {
    // The feed's own trouble goes through the feed too (a sink that is down gets it later).
    json ev = event;
    ev["@timestamp"] = utc_timestamp();
    try {
        spool_.append(record::encode(ev));
    } catch (const SpoolError&) {
    }
}

void Feed::publish(const json& event) {
    std::lock_guard lk(mu_);
    const std::size_t at = batch_.size();
    record::encode(event, batch_);
    ends_.push_back(batch_.size());
    if (batch_.size() - at > cfg_.spool.max_record) {
        // Refused alone, as append would: the events before it still go.
        batch_.resize(at);
        ends_.pop_back();
        flush_locked();
        throw SpoolError("spool " + cfg_.spool.dir.string() + ": record of more than " +
                         std::to_string(cfg_.spool.max_record) + " bytes");
    }
    if (ends_.size() >= kBatchRecords || batch_.size() >= kBatchBytes) flush_locked();
}

void Feed::flush_locked() {
    if (ends_.empty()) return;
    views_.clear();
    std::size_t from = 0;
    for (const std::size_t end : ends_) {
        views_.emplace_back(batch_.data() + from, end - from);
        from = end;
    }
    Purge purged;
    // Whatever happens, the batch is gone from here: appended, or refused (disk full) as a
    // single event was before.
    struct Clear {
        Feed* f;
        ~Clear() {
            f->batch_.clear();
            f->ends_.clear();
            if (f->batch_.capacity() > 4 * kBatchBytes) std::string().swap(f->batch_);
        }
    } clear{this};
    spool_.append_batch(views_, &purged);
    if (!purged.sinks.empty())
        account({{"event", {{"kind", "event"}, {"category", "host"}, {"action", "events-purged"}}},
                 {"vminsight",
                  {{"first_seq", purged.first_seq},
                   {"last_seq", purged.last_seq},
                   {"records", purged.last_seq - purged.first_seq + 1},
                   {"sinks", purged.sinks},
                   {"reason", "spool full (spool.max_mb)"}}}});
}

void Feed::flush() {
    std::lock_guard lk(mu_);
    flush_locked();
}

void Feed::sync() {
    flush();
    spool_.sync();
}

void Feed::flush_every(const std::stop_token& stop) {
    std::mutex m;
    std::condition_variable_any cv;
    while (!stop.stop_requested()) {
        {
            std::unique_lock lk(m);
            cv.wait_for(lk, stop, kFlushEvery, [] { return false; });
        }
        if (stop.stop_requested()) break;
        try {
            flush();
        } catch (const SpoolError&) {
            // publish() and sync() report it; this thread only keeps latency low.
        }
    }
}

std::vector<SinkStatus> Feed::sinks() const {
    std::vector<SinkStatus> out;
    for (const auto& w : workers_) out.push_back(w->status());
    return out;
}

bool Feed::drain(std::chrono::milliseconds timeout) {
    flush();
    for (const auto& w : workers_)
        if (!w->drain(timeout)) return false;
    return true;
}

}  // namespace feed
