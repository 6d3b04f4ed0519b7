// The sinks' hot path: a decoded spool record written straight out as ECS (or native) text,
// into a buffer the caller reuses. The same rules as the document encoders, field for field;
// other encodings go through a document (they are rarer, and alerts only for Falco).
#include <array>
#include <cstring>
#include <ctime>

#include "feed/encode.hpp"
#include "feed/json_out.hpp"
#include "feed/record_json.hpp"

namespace feed {
using record::Key;
using record::Type;
using record::View;

namespace {

constexpr std::uint32_t npos = View::npos;
constexpr std::size_t kRoomHint = 1536;

// An object being written: commas between members that may or may not be there.
class Obj {
  public:
    explicit Obj(JsonOut& out) : out_(out) { out_.put('{'); }
    // `k` is ours: plain ASCII with its quotes and colon, e.g. "\"pid\":".
    JsonOut& key(std::string_view k) {
        out_.room(k.size() + 1);
        if (!first_) out_.put_unchecked(',');
        first_ = false;
        out_.put_unchecked(k);
        return out_;
    }
    void close() { out_.put('}'); }

  private:
    JsonOut& out_;
    bool first_ = true;
};

// The members an encoder needs from one object, found in one pass over it (the first of a
// name wins, as find() does). `Fields<kPid, kName>` then f[0] is pid, f[1] name, npos if absent.
template <Key... Ks>
class Fields {
  public:
    Fields(const View& v, std::uint32_t obj) {
        idx_.fill(npos);
        if (!v.is(obj, Type::Object)) return;
        for (std::uint32_t c = obj + 1, end = v[obj].end; c < end; c = v[c].end) {
            const auto k = static_cast<std::size_t>(v[c].key_id);
            if (const int s = kSlot[k]; s >= 0 && idx_[static_cast<std::size_t>(s)] == npos)
                idx_[static_cast<std::size_t>(s)] = c;
        }
    }
    std::uint32_t operator[](std::size_t i) const { return idx_[i]; }

  private:
    static constexpr auto kSlot = [] {
        std::array<int, static_cast<std::size_t>(Key::Count)> t{};
        t.fill(-1);
        int i = 0;
        ((t[static_cast<std::size_t>(Ks)] = i++), ...);
        return t;
    }();
    std::array<std::uint32_t, sizeof...(Ks)> idx_;
};

// "2026-11-26T10:00:00.000001Z": the date and time formatted once a second per thread.
std::string_view now_utc(char (&buf)[80]) {
    struct Cache {
        std::time_t sec = -1;
        char text[64] = {};
    };
    thread_local Cache c;
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != c.sec) {
        std::tm tm{};
        gmtime_r(&ts.tv_sec, &tm);
        std::snprintf(c.text, sizeof c.text, "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
                      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        c.sec = ts.tv_sec;
    }
    char us[8];
    long v = ts.tv_nsec / 1000;
    for (int k = 5; k >= 0; --k, v /= 10) us[k] = static_cast<char>('0' + v % 10);
    us[6] = 'Z';
    const std::size_t n = std::strlen(c.text);
    std::memcpy(buf, c.text, n);
    std::memcpy(buf + n, us, 7);
    return {buf, n + 7};
}

// process_entity_id hashes (SHA-256); the same processes make most events, so the ids are
// remembered per thread: 256 sets of two, the most recently used first in its set (a direct
// mapped table let two busy processes that share a slot evict each other on every event).
void append_entity_id(JsonOut& out, std::string_view vm, std::string_view task,
                      std::uint64_t start) {
    struct Entry {
        std::uint64_t hash = 0, start = 0;
        std::string vm, task, id;
        [[nodiscard]] bool is(std::uint64_t h, std::string_view v, std::string_view t,
                              std::uint64_t st) const {
            return hash == h && start == st && !id.empty() && task == t && vm == v;
        }
    };
    thread_local std::array<std::array<Entry, 2>, 256> cache;
    std::uint64_t h = std::hash<std::string_view>{}(task) ^ (start * 0x9E3779B97F4A7C15ULL);
    h ^= std::hash<std::string_view>{}(vm)*31;
    auto& set = cache[(h ^ (h >> 29)) & 255];
    if (!set[0].is(h, vm, task, start)) {
        if (!set[1].is(h, vm, task, start)) {
            set[1].hash = h;
            set[1].start = start;
            set[1].vm.assign(vm);
            set[1].task.assign(task);
            set[1].id = process_entity_id(vm, task, start);
        }
        std::swap(set[0], set[1]);
    }
    out.quoted(set[0].id);
}

// Strings of an array joined by spaces (non-strings skipped), as join() does.
void append_joined(JsonOut& out, const View& v, std::uint32_t arr) {
    bool any = false;
    for (std::uint32_t c = arr + 1; c < v[arr].end; c = v[c].end) {
        const auto* s = v.str(c);
        if (!s) continue;
        if (any) out.put(' ');
        out.escaped(*s);
        any = any || !s->empty();
    }
}

void ecs_process(JsonOut& out, const View& v, std::uint32_t p, std::string_view vm) {
    enum { Pid, Name, Exe, Args, Euid, Uid, Gid, Parent, Ppid, Task, Start };
    const Fields<Key::kPid, Key::kName, Key::kExe, Key::kArgs, Key::kEuid, Key::kUid, Key::kGid,
                 Key::kParent, Key::kPpid, Key::kTask, Key::kStartTimeNs>
        f(v, p);
    Obj o(out);
    if (v.is_number(f[Pid])) o.key("\"pid\":").i64(v.as_i64(f[Pid]));
    if (const auto* s = v.str(f[Name])) o.key("\"name\":").quoted(*s);
    if (const auto* s = v.str(f[Exe])) o.key("\"executable\":").quoted(*s);
    if (const auto args = f[Args]; v.is(args, Type::Array)) {
        JsonOut& a = o.key("\"args\":[");
        bool first = true;
        for (std::uint32_t c = args + 1; c < v[args].end; c = v[c].end) {
            const auto* s = v.str(c);
            if (!s) continue;
            if (!first) a.put(',');
            first = false;
            a.quoted(*s);
        }
        a.put(']');
        o.key("\"args_count\":").u64(v[args].count);
        JsonOut& cl = o.key("\"command_line\":\"");
        append_joined(cl, v, args);
        cl.put('"');
    }
    const auto id_of = [&](std::uint32_t i, std::string_view as) {
        if (!v.is_number(i)) return;
        JsonOut& s = o.key(as);
        s.put("{\"id\":\"");
        s.i64(v.as_i64(i));
        s.put("\"}");
    };
    id_of(f[Euid], "\"user\":");
    id_of(f[Uid], "\"real_user\":");
    id_of(f[Gid], "\"group\":");
    const auto par = f[Parent];
    const auto ppid = f[Ppid];
    if (v.is(par, Type::Object) || v.is_number(ppid)) {
        const Fields<Key::kPid, Key::kName, Key::kExe> pf(v, par);
        Obj po(o.key("\"parent\":"));
        if (v.is_number(pf[0]))
            po.key("\"pid\":").i64(v.as_i64(pf[0]));
        else if (v.is_number(ppid))
            po.key("\"pid\":").i64(v.as_i64(ppid));
        if (const auto* s = v.str(pf[1])) po.key("\"name\":").quoted(*s);
        if (const auto* s = v.str(pf[2])) po.key("\"executable\":").quoted(*s);
        po.close();
    }
    const auto* task = v.str(f[Task]);
    if (task && v.is_number(f[Start]))
        append_entity_id(o.key("\"entity_id\":"), vm, *task, v.as_u64(f[Start]));
    o.close();
}

// ECS event.category / event.type, as ecs_kind() (encode.cpp) says.
std::pair<std::string_view, std::string_view> kind_of(std::string_view action,
                                                      std::string_view kind) {
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

bool is_technique(std::string_view t) {
    // ^T\d{4}(\.\d{3})?$
    const auto digits = [&](std::size_t from, std::size_t n) {
        for (std::size_t k = from; k < from + n; ++k)
            if (t[k] < '0' || t[k] > '9') return false;
        return true;
    };
    if ((t.size() != 5 && t.size() != 9) || t[0] != 'T' || !digits(1, 4)) return false;
    return t.size() == 5 || (t[5] == '.' && digits(6, 3));
}

void ecs(JsonOut& out, const View& v, std::string_view id, std::uint64_t seq,
         const EncodeContext& ctx) {
    enum { Ts, Event, Vm, Process, Message, Rule, Syscall, Response, Own };
    const Fields<Key::kAtTimestamp, Key::kEvent, Key::kVm, Key::kProcess, Key::kMessage, Key::kRule,
                 Key::kSyscall, Key::kResponse, Key::kVminsight>
        root(v, 0);
    const Fields<Key::kAction, Key::kKind, Key::kOutcome, Key::kReason> nev(v, root[Event]);
    const auto* action_p = v.str(nev[0]);
    const std::string_view action = action_p ? *action_p : std::string_view();
    const auto* kind_p = v.str(nev[1]);
    const std::string_view kind = kind_p ? *kind_p : std::string_view("event");
    const Fields<Key::kName, Key::kUuid> vmf(v, root[Vm]);
    const auto* vm_p = v.str(vmf[0]);
    const std::string_view vm = vm_p ? *vm_p : std::string_view();
    enum { RName, RPolicy, RSource, RTags, RPriority };
    const Fields<Key::kName, Key::kPolicy, Key::kSource, Key::kTags, Key::kPriority> rf(v,
                                                                                        root[Rule]);
    char buf[80];
    const std::string_view created = now_utc(buf);
    Obj o(out);
    const auto* ts = v.str(root[Ts]);
    o.key("\"@timestamp\":").quoted(ts ? *ts : created);
    o.key("\"ecs\":{\"version\":\"8.11.0\"}");
    // event.*
    const auto [category, type] = kind_of(action, kind);
    {
        Obj e(o.key("\"event\":"));
        e.key("\"kind\":").quoted(kind);
        e.key("\"action\":").quoted(action);
        e.key("\"id\":").quoted(id);
        e.key("\"sequence\":").u64(seq);
        e.key("\"created\":").quoted(created);
        e.key("\"module\":\"vminsight\"");
        e.key(kind == "alert" ? "\"dataset\":\"vminsight.alert\""
                              : "\"dataset\":\"vminsight.event\"");
        JsonOut& c = e.key("\"category\":[\"");
        c.put(category);
        c.put("\"]");
        JsonOut& t = e.key("\"type\":[\"");
        t.put(type);
        t.put("\"]");
        const auto sc = root[Syscall];
        std::string_view outcome;
        if (const auto* oc = v.str(nev[2]))
            outcome = *oc == "success" || *oc == "failure" ? *oc : std::string_view("unknown");
        if (action == "syscall-denied" || v.is(v.find(sc, Key::kDenied), Type::True))
            outcome = "failure";
        if (!outcome.empty()) e.key("\"outcome\":").quoted(outcome);
        if (const auto* r = v.str(nev[3])) e.key("\"reason\":").quoted(*r);
        if (const auto* pr = v.str(rf[RPriority]))
            e.key("\"severity\":").i64(7 - syslog_severity(*pr).value_or(4));
        e.close();
    }
    // The guest is the host the events are about; the sensor is the observer.
    {
        Obj h(o.key("\"host\":"));
        h.key("\"name\":").quoted(vm);
        h.key("\"type\":\"virtual-machine\"");
        if (const auto* u = v.str(vmf[1])) h.key("\"id\":").quoted(*u);
        h.close();
    }
    {
        Obj ob(o.key("\"observer\":"));
        ob.key("\"hostname\":").quoted(ctx.observer_hostname);
        ob.key("\"type\":\"hypervisor-sensor\"");
        ob.key("\"vendor\":\"VMInsight\"");
        ob.key("\"product\":\"vminsightd\"");
        ob.key("\"version\":").quoted(ctx.version);
        ob.close();
    }
    const auto proc = root[Process];
    if (v.is(proc, Type::Object)) ecs_process(o.key("\"process\":"), v, proc, vm);
    if (const auto* m = v.str(root[Message])) o.key("\"message\":").quoted(*m);
    const auto rule = root[Rule];
    if (v.is(rule, Type::Object)) {
        Obj r(o.key("\"rule\":"));
        if (const auto n = rf[RName]; n != npos)
            record::append_json(r.key("\"name\":"), v, n);
        else
            r.key("\"name\":null");
        if (const auto* s = v.str(rf[RPolicy])) r.key("\"ruleset\":").quoted(*s);
        if (const auto* s = v.str(rf[RSource])) r.key("\"reference\":").quoted(*s);
        const auto tags = rf[RTags];
        if (v.is(tags, Type::Array)) {
            JsonOut& c = r.key("\"category\":\"");
            append_joined(c, v, tags);
            c.put('"');
        }
        r.close();
        if (v.is(tags, Type::Array)) {
            bool any = false;
            for (std::uint32_t c = tags + 1; c < v[tags].end; c = v[c].end) {
                const auto* s = v.str(c);
                if (!s || !is_technique(*s)) continue;
                if (!any)
                    o.key("\"threat\":{\"framework\":\"MITRE ATT&CK\",\"technique\":{\"id\":[");
                else
                    out.put(',');
                any = true;
                out.put('"');
                out.put(*s);  // matched the pattern: plain ASCII
                out.put('"');
            }
            if (any) out.put("]}}");
        }
    }
    // What ECS has no field for, under our own namespace.
    const auto sc = root[Syscall];
    const auto resp = root[Response];
    const auto own = root[Own];
    const auto* cr3 = v.str(v.find(proc, Key::kCr3));
    if (v.is(sc, Type::Object) || v.is(resp, Type::Object) ||
        (v.is(own, Type::Object) && v[own].count) || cr3) {
        Obj x(o.key("\"vminsight\":"));
        if (v.is(sc, Type::Object)) record::append_json(x.key("\"syscall\":"), v, sc);
        if (v.is(resp, Type::Object)) record::append_json(x.key("\"response\":"), v, resp);
        if (v.is(own, Type::Object))
            for (std::uint32_t c = own + 1; c < v[own].end; c = v[c].end) {
                const std::string_view k = v[c].key;
                if (k == "syscall" || k == "response" || k == "cr3") continue;
                JsonOut& s = x.key(record::quoted_key_name(v[c].key_id));
                if (v[c].key_id == Key::None) {  // not the dictionary's: escaped (ECS's way)
                    s.put('"');
                    s.escaped(v[c].key);
                    s.put("\":");
                }
                record::append_json(s, v, c);
            }
        if (cr3) x.key("\"cr3\":").quoted(*cr3);
        x.close();
    }
    o.close();
}

// Native: the event as it is, plus event.id and event.sequence (members stay sorted).
bool native(JsonOut& out, const View& v, std::string_view id, std::uint64_t seq) {
    // A null root or event becomes an object, as nlohmann's operator[] makes it.
    if (v.is(0, Type::Null)) {
        out.put("{\"event\":{\"id\":");
        out.quoted(id);
        out.put(",\"sequence\":");
        out.u64(seq);
        out.put("}}");
        return true;
    }
    if (!v.is(0, Type::Object)) return false;
    const auto ev = v.find(0, Key::kEvent);
    if (ev != npos && !v.is(ev, Type::Object) && !v.is(ev, Type::Null)) return false;
    out.put('{');
    bool wrote_event = false;
    const auto write_event = [&] {
        out.put("\"event\":{");
        bool any = false;
        bool id_done = false, seq_done = false;
        const auto put_id = [&] {
            if (any) out.put(',');
            any = true;
            out.put("\"id\":");
            out.quoted(id);
            id_done = true;
        };
        const auto put_seq = [&] {
            if (any) out.put(',');
            any = true;
            out.put("\"sequence\":");
            out.u64(seq);
            seq_done = true;
        };
        if (ev != npos)
            for (std::uint32_t c = ev + 1; c < v[ev].end; c = v[c].end) {
                const std::string_view k = v[c].key;
                if (!id_done && k >= "id") put_id();
                if (!seq_done && k >= "sequence") put_seq();
                if (k == "id" || k == "sequence") continue;  // replaced
                if (any) out.put(',');
                any = true;
                record::key(out, v[c]);
                record::append_json(out, v, c);
            }
        if (!id_done) put_id();
        if (!seq_done) put_seq();
        out.put('}');
        wrote_event = true;
    };
    bool first = true;
    for (std::uint32_t c = 1; c < v[0].end; c = v[c].end) {
        const std::string_view k = v[c].key;
        if (!wrote_event && k >= "event") {
            if (!first) out.put(',');
            first = false;
            write_event();
            if (k == "event") continue;
        }
        if (!first) out.put(',');
        first = false;
        record::key(out, v[c]);
        record::append_json(out, v, c);
    }
    if (!wrote_event) {
        if (!first) out.put(',');
        write_event();
    }
    out.put('}');
    return true;
}

}  // namespace

bool encode_record(Encoding enc, const View& v, std::string_view id, std::uint64_t seq,
                   const EncodeContext& ctx, std::string& out) {
    if (!v.empty() && (enc == Encoding::Ecs || enc == Encoding::Native)) {
        // Written straight into `out`: room for a typical event up front.
        JsonOut o(out, kRoomHint);
        if (enc == Encoding::Ecs)
            ecs(o, v, id, seq, ctx);
        else if (!native(o, v, id, seq))
            record::append_json(o, v, 0);  // no event object to put the id in: as it is
        return true;
    }
    // The document way: rare encodings (and an empty view).
    auto line = encode(enc, v.to_json(), id, seq, ctx);
    if (!line) return false;
    out += *line;
    return true;
}

}  // namespace feed
