#include "feed/encode.hpp"

#include "feed/json_writer.hpp"

#include "vmi/entity_id.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <regex>
#include <utility>

namespace feed {
using json = nlohmann::json;

namespace {

const json& at(const json& j, const char* k) {
    static const json null;
    if (!j.is_object()) return null;
    const auto it = j.find(k);
    return it == j.end() ? null : *it;
}

template <class T>
void copy(json& to, const char* key, const json& from, const char* src) {
    const json& v = at(from, src);
    if (v.is_null()) return;
    if constexpr (std::is_same_v<T, std::string>) {
        if (v.is_string()) to[key] = v;
    } else {
        if (v.is_number()) to[key] = v;
    }
}

std::string join(const json& args) {
    std::string out;
    if (!args.is_array()) return out;
    for (const auto& a : args) {
        if (!a.is_string()) continue;
        if (!out.empty()) out += ' ';
        out += a.get<std::string>();
    }
    return out;
}

std::string now_utc() {
    const auto t = std::chrono::system_clock::now();
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch());
    const std::time_t s = static_cast<std::time_t>(us.count() / 1000000);
    std::tm tm{};
    gmtime_r(&s, &tm);
    char buf[96];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<long long>(us.count() % 1000000));
    return buf;
}

json threat_of(const json& tags) {
    static const std::regex technique(R"(^T\d{4}(\.\d{3})?$)");
    json techniques = json::array();
    if (tags.is_array())
        for (const auto& t : tags)
            if (t.is_string() && std::regex_match(t.get<std::string>(), technique))
                techniques.push_back(t);
    if (techniques.empty()) return nullptr;
    return {{"framework", "MITRE ATT&CK"}, {"technique", {{"id", techniques}}}};
}

// ECS and OCSF count severity upwards (debug 0 .. emergency 7); unknown: warning.
int severity_of(const std::string& priority) { return 7 - syslog_severity(priority).value_or(4); }

}  // namespace

std::optional<Encoding> parse_encoding(std::string_view n) {
    if (n == "native") return Encoding::Native;
    if (n == "ecs") return Encoding::Ecs;
    if (n == "ocsf") return Encoding::Ocsf;
    if (n == "falco") return Encoding::Falco;
    return std::nullopt;
}

std::string_view encoding_name(Encoding e) {
    switch (e) {
        case Encoding::Native:
            return "native";
        case Encoding::Ecs:
            return "ecs";
        case Encoding::Ocsf:
            return "ocsf";
        case Encoding::Falco:
            return "falco";
    }
    return "?";
}

std::string utc_timestamp() { return now_utc(); }

std::optional<int> syslog_severity(std::string_view priority) {
    static const char* names[] = {"emergency", "alert",  "critical",      "error",
                                  "warning",   "notice", "informational", "debug"};
    for (int i = 0; i < 8; ++i) {
        const std::string_view n = names[i];
        if (n.size() == priority.size() &&
            std::equal(n.begin(), n.end(), priority.begin(), [](char a, char b) {
                return a == std::tolower(static_cast<unsigned char>(b));
            }))
            return i;
    }
    return std::nullopt;
}

std::string process_entity_id(std::string_view vm, std::string_view task,
                              std::uint64_t start_time_ns) {
    return vmi::process_entity_id(vm, task, start_time_ns);
}

std::string ecs_text(const json& n, std::string_view id, std::uint64_t seq,
                     const EncodeContext& ctx) {
    // One writer for both paths: the document becomes a record, as the spool would hold it.
    const std::string rec = record::encode(n);
    record::View v;
    v.decode(rec);
    std::string out;
    out.reserve(1024);
    encode_record(Encoding::Ecs, v, id, seq, ctx, out);
    return out;
}

json to_ecs(const json& n, std::string_view id, std::uint64_t seq, const EncodeContext& ctx) {
    return json::parse(ecs_text(n, id, seq, ctx));
}

json to_ocsf(const json& n, std::string_view id, std::uint64_t seq, const EncodeContext& ctx) {
    const json& nev = at(n, "event");
    const std::string action =
        at(nev, "action").is_string() ? at(nev, "action").get<std::string>() : "";
    const bool alert = at(nev, "kind") == "alert";
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
    json out = {
        {"time", ms},
        {"metadata",
         {{"version", "1.1.0"},
          {"uid", std::string(id)},
          {"sequence", seq},
          {"product",
           {{"name", "vminsightd"}, {"vendor_name", "VMInsight"}, {"version", ctx.version}}}}},
        {"device", {{"hostname", at(at(n, "vm"), "name")}, {"type_id", 6}, {"type", "Virtual"}}},
        {"observables", json::array()}};
    if (at(at(n, "vm"), "uuid").is_string()) out["device"]["uid"] = at(at(n, "vm"), "uuid");
    json proc = json::object();
    const json& p = at(n, "process");
    copy<std::int64_t>(proc, "pid", p, "pid");
    copy<std::string>(proc, "name", p, "name");
    if (at(p, "exe").is_string()) proc["file"] = {{"path", at(p, "exe")}, {"name", at(p, "name")}};
    if (at(p, "args").is_array()) proc["cmd_line"] = join(at(p, "args"));
    if (at(p, "uid").is_number())
        proc["user"] = {{"uid", std::to_string(at(p, "uid").get<std::int64_t>())}};
    if (at(p, "parent").is_object()) {
        json pp = json::object();
        copy<std::int64_t>(pp, "pid", at(p, "parent"), "pid");
        copy<std::string>(pp, "name", at(p, "parent"), "name");
        proc["parent_process"] = pp;
    }
    if (alert) {
        const json& rule = at(n, "rule");
        const int sev = severity_of(
            at(rule, "priority").is_string() ? at(rule, "priority").get<std::string>() : "");
        out["class_uid"] = 2004;
        out["class_name"] = "Detection Finding";
        out["category_uid"] = 2;
        out["activity_id"] = 1;  // Create
        out["type_uid"] = 200401;
        out["severity_id"] = std::min(6, std::max(1, sev - 1));
        out["message"] = at(n, "message");
        out["finding_info"] = {
            {"uid", std::string(id)},
            {"title", at(rule, "name")},
            {"analytic", {{"name", at(rule, "name")}, {"type_id", 1}, {"type", "Rule"}}}};
        if (auto t = threat_of(at(rule, "tags")); !t.is_null()) {
            json attacks = json::array();
            for (const auto& tid : t["technique"]["id"])
                attacks.push_back({{"technique", {{"uid", tid}}}});
            out["finding_info"]["attacks"] = attacks;
        }
        out["evidences"] = json::array({{{"process", proc}}});
        return out;
    }
    int activity = 99;                                                          // Other
    if (action == "process-started" || action == "process-exec") activity = 1;  // Launch
    if (action == "process-exited") activity = 2;                               // Terminate
    out["class_uid"] = 1007;
    out["class_name"] = "Process Activity";
    out["category_uid"] = 1;
    out["activity_id"] = activity;
    out["type_uid"] = 100700 + activity;
    out["severity_id"] = 1;
    out["process"] = proc;
    out["actor"] = {{"process", proc}};
    if (at(n, "syscall").is_object()) out["unmapped"] = {{"syscall", at(n, "syscall")}};
    return out;
}

std::optional<json> to_falco(const json& n, const EncodeContext& ctx) {
    if (at(at(n, "event"), "kind") != "alert") return std::nullopt;
    const json& rule = at(n, "rule");
    std::string pri =
        at(rule, "priority").is_string() ? at(rule, "priority").get<std::string>() : "warning";
    if (!pri.empty()) pri[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(pri[0])));
    const json& p = at(n, "process");
    json fields = json::object();
    copy<std::int64_t>(fields, "proc.pid", p, "pid");
    copy<std::string>(fields, "proc.name", p, "name");
    copy<std::string>(fields, "proc.exepath", p, "exe");
    if (at(p, "args").is_array()) fields["proc.cmdline"] = join(at(p, "args"));
    copy<std::string>(fields, "proc.pname", at(p, "parent"), "name");
    copy<std::int64_t>(fields, "user.uid", p, "uid");
    if (at(at(n, "syscall"), "name").is_string()) fields["evt.type"] = at(at(n, "syscall"), "name");
    fields["vm.name"] = at(at(n, "vm"), "name");
    return json{{"time", at(n, "@timestamp").is_string() ? at(n, "@timestamp") : json(now_utc())},
                {"rule", at(rule, "name")},
                {"priority", pri},
                {"output", at(n, "message")},
                {"output_fields", fields},
                {"source", "vminsight"},
                {"tags", at(rule, "tags").is_array() ? at(rule, "tags") : json::array()},
                {"hostname", ctx.observer_hostname}};
}

std::optional<std::string> encode(Encoding enc, const json& native, std::string_view id,
                                  std::uint64_t seq, const EncodeContext& ctx) {
    json out;
    switch (enc) {
        case Encoding::Native:
            out = native;
            out["event"]["id"] = std::string(id);
            out["event"]["sequence"] = seq;
            break;
        case Encoding::Ecs:
            return ecs_text(native, id, seq, ctx);  // written directly: the hot encoding
        case Encoding::Ocsf:
            out = to_ocsf(native, id, seq, ctx);
            break;
        case Encoding::Falco: {
            auto f = to_falco(native, ctx);
            if (!f) return std::nullopt;
            out = std::move(*f);
            break;
        }
    }
    // ensure_ascii off, invalid UTF-8 replaced: one valid JSON line for any guest bytes.
    return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace feed
