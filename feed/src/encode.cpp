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

// What a native action means in ECS event.category / event.type.
// What a native action means in ECS: its event.category and event.type (one value each).
std::pair<const char*, const char*> ecs_kind(const std::string& action, const std::string& kind) {
    if (kind == "alert") return {"intrusion_detection", "info"};
    if (action == "process-started" || action == "process-exec") return {"process", "start"};
    if (action == "process-exited") return {"process", "end"};
    if (action == "process-seen") return {"process", "info"};
    if (action == "process-renamed") return {"process", "change"};
    if (action == "syscall") return {"process", "info"};
    if (action == "syscall-denied") return {"process", "denied"};
    if (action.starts_with("policy-")) return {"configuration", "change"};
    return {"host", "info"};
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

namespace {

const std::string* str_at(const json& j, const char* k) {
    const json& v = at(j, k);
    return v.is_string() ? v.get_ptr<const std::string*>() : nullptr;
}

void write_ecs_process(JsonWriter& w, const json& p, std::string_view vm) {
    w.begin_object();
    if (at(p, "pid").is_number()) w.key("pid").number(at(p, "pid").get<std::int64_t>());
    if (auto* v = str_at(p, "name")) w.key("name").string(*v);
    if (auto* v = str_at(p, "exe")) w.key("executable").string(*v);
    const json& args = at(p, "args");
    if (args.is_array()) {
        w.key("args").begin_array();
        std::string cmdline;
        for (const auto& a : args) {
            if (!a.is_string()) continue;
            const auto& s = a.get_ref<const std::string&>();
            w.string(s);
            if (!cmdline.empty()) cmdline += ' ';
            cmdline += s;
        }
        w.end_array();
        w.key("args_count").unumber(args.size());
        w.key("command_line").string(cmdline);
    }
    auto id_of = [&](const char* field, const char* as) {
        if (!at(p, field).is_number()) return;
        w.key(as).begin_object().key("id").string(std::to_string(at(p, field).get<std::int64_t>()));
        w.end_object();
    };
    id_of("euid", "user");
    id_of("uid", "real_user");
    id_of("gid", "group");
    const json& par = at(p, "parent");
    if (par.is_object() || at(p, "ppid").is_number()) {
        w.key("parent").begin_object();
        if (at(par, "pid").is_number())
            w.key("pid").number(at(par, "pid").get<std::int64_t>());
        else if (at(p, "ppid").is_number())
            w.key("pid").number(at(p, "ppid").get<std::int64_t>());
        if (auto* v = str_at(par, "name")) w.key("name").string(*v);
        if (auto* v = str_at(par, "exe")) w.key("executable").string(*v);
        w.end_object();
    }
    if (auto* task = str_at(p, "task"); task && at(p, "start_time_ns").is_number())
        w.key("entity_id")
            .string(process_entity_id(vm, *task, at(p, "start_time_ns").get<std::uint64_t>()));
    w.end_object();
}

}  // namespace

std::string ecs_text(const json& n, std::string_view id, std::uint64_t seq,
                     const EncodeContext& ctx) {
    const json& nev = at(n, "event");
    const std::string* action_p = str_at(nev, "action");
    const std::string action = action_p ? *action_p : std::string();
    const std::string kind = str_at(nev, "kind") ? *str_at(nev, "kind") : std::string("event");
    const std::string* vm_p = str_at(at(n, "vm"), "name");
    const std::string vm = vm_p ? *vm_p : std::string();
    const std::string created = now_utc();
    std::string out;
    out.reserve(1024);
    JsonWriter w(out);
    w.begin_object();
    w.key("@timestamp").string(str_at(n, "@timestamp") ? *str_at(n, "@timestamp") : created);
    w.key("ecs").begin_object().key("version").string("8.11.0").end_object();
    // event.*
    const auto [category, type] = ecs_kind(action, kind);
    w.key("event").begin_object();
    w.key("kind").string(kind).key("action").string(action).key("id").string(id);
    w.key("sequence").unumber(seq).key("created").string(created);
    w.key("module").string("vminsight");
    w.key("dataset").string(kind == "alert" ? "vminsight.alert" : "vminsight.event");
    w.key("category").begin_array().string(category).end_array();
    w.key("type").begin_array().string(type).end_array();
    const json& sc = at(n, "syscall");
    std::string outcome;
    if (auto* o = str_at(nev, "outcome"))
        outcome = *o == "success" || *o == "failure" ? *o : std::string("unknown");
    if (action == "syscall-denied" || (sc.is_object() && at(sc, "denied") == true))
        outcome = "failure";
    if (!outcome.empty()) w.key("outcome").string(outcome);
    if (auto* r = str_at(nev, "reason")) w.key("reason").string(*r);
    const json& rule = at(n, "rule");
    if (rule.is_object() && str_at(rule, "priority"))
        w.key("severity").number(severity_of(*str_at(rule, "priority")));
    w.end_object();
    // The guest is the host the events are about; the sensor is the observer.
    w.key("host").begin_object().key("name").string(vm).key("type").string("virtual-machine");
    if (auto* u = str_at(at(n, "vm"), "uuid")) w.key("id").string(*u);
    w.end_object();
    w.key("observer").begin_object();
    w.key("hostname").string(ctx.observer_hostname).key("type").string("hypervisor-sensor");
    w.key("vendor").string("VMInsight").key("product").string("vminsightd");
    w.key("version").string(ctx.version).end_object();
    const json& proc = at(n, "process");
    if (proc.is_object()) {
        w.key("process");
        write_ecs_process(w, proc, vm);
    }
    if (auto* m = str_at(n, "message")) w.key("message").string(*m);
    if (rule.is_object()) {
        w.key("rule").begin_object().key("name").value(at(rule, "name"));
        if (auto* v = str_at(rule, "policy")) w.key("ruleset").string(*v);
        if (auto* v = str_at(rule, "source")) w.key("reference").string(*v);
        if (at(rule, "tags").is_array()) w.key("category").string(join(at(rule, "tags")));
        w.end_object();
        if (auto t = threat_of(at(rule, "tags")); !t.is_null()) w.key("threat").value(t);
    }
    // What ECS has no field for, under our own namespace.
    const json& resp = at(n, "response");
    const json& own = at(n, "vminsight");
    const std::string* cr3 = str_at(proc, "cr3");
    if (sc.is_object() || resp.is_object() || (own.is_object() && !own.empty()) || cr3) {
        w.key("vminsight").begin_object();
        if (sc.is_object()) w.key("syscall").value(sc);
        if (resp.is_object()) w.key("response").value(resp);
        if (own.is_object())
            for (auto it = own.begin(); it != own.end(); ++it) {
                if (it.key() == "syscall" || it.key() == "response" || it.key() == "cr3") continue;
                std::string k;
                append_escaped(k, it.key());
                w.key(k).value(*it);
            }
        if (cr3) w.key("cr3").string(*cr3);
        w.end_object();
    }
    w.end_object();
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
