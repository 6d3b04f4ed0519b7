// The ECS and native record encoders as they were before the output-buffer rewrite (escaper,
// record_json and encode_record, verbatim but for this namespace): the reference the
// comparison test (feed_encode_compare_test.cpp) holds the current encoders to, byte for byte.
// NOLINTBEGIN
#include "feed_ecs_reference.hpp"

#include <array>
#include <charconv>
#include <cstring>
#include <ctime>

#include "feed/encode.hpp"

namespace feed_ref {
using feed::EncodeContext;
using feed::Encoding;
using feed::process_entity_id;
using feed::syslog_severity;
using feed::record::Key;
using feed::record::Type;
using feed::record::View;
namespace record {
using namespace feed::record;
void append_json(std::string& out, const View& v, std::uint32_t i);
void append_int(std::string& out, std::int64_t v);
void append_uint(std::string& out, std::uint64_t v);
}  // namespace record
namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 if it is not one.
std::size_t utf8_len(std::string_view s, std::size_t i) {
    const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = b(i);
    const auto cont = [&](std::size_t k) { return k < s.size() && (b(k) & 0xC0) == 0x80; };
    if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (!cont(i + 1) || !cont(i + 2)) return 0;
        if (c == 0xE0 && b(i + 1) < 0xA0) return 0;  // overlong
        if (c == 0xED && b(i + 1) > 0x9F) return 0;  // surrogates
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
        if (c == 0xF0 && b(i + 1) < 0x90) return 0;
        if (c == 0xF4 && b(i + 1) > 0x8F) return 0;
        return 4;
    }
    return 0;
}

}  // namespace

namespace {

// Bytes written as they are: printable ASCII but '"' and '\\'. A table: the hot loop is a
// load and a test per byte.
constexpr std::array<bool, 256> kPlain = [] {
    std::array<bool, 256> t{};
    for (int c = 0x20; c < 0x80; ++c) t[static_cast<std::size_t>(c)] = c != '"' && c != '\\';
    return t;
}();

// How many bytes one U+FFFD stands for, nlohmann's way: the longest start of a valid sequence
// (at least the byte itself), so the byte that broke it is looked at again.
std::size_t maximal_subpart(std::string_view s, std::size_t i) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t need = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        need = 1;
    else if (c >= 0xE0 && c <= 0xEF)
        need = 2;
    else if (c >= 0xF0 && c <= 0xF4)
        need = 3;
    else
        return 1;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
    std::size_t k = 1;
    for (; k <= need && i + k < s.size(); ++k) {
        const auto b = static_cast<unsigned char>(s[i + k]);
        if (b < lo || b > hi) break;
        lo = 0x80;
        hi = 0xBF;
    }
    return k;
}

// Where the run of plain bytes from i ends: eight at a time while none needs care.
std::size_t plain_run(const unsigned char* p, std::size_t i, std::size_t n) {
    constexpr std::uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    const auto has_zero = [&](std::uint64_t v) { return (v - ones) & ~v & highs; };
    for (; i + 8 <= n; i += 8) {
        std::uint64_t w = 0;
        std::memcpy(&w, p + i, 8);
        // A byte >= 0x80, < 0x20, '"' or '\\' somewhere in these eight: look at each.
        const std::uint64_t special = (w & highs) | ((w - 0x2020202020202020ULL) & ~w & highs) |
                                      has_zero(w ^ (ones * '"')) | has_zero(w ^ (ones * '\\'));
        if (special) break;
    }
    while (i < n && kPlain[p[i]]) ++i;
    return i;
}

template <bool kPerByte>
void escape(std::string& out, std::string_view s) {
    static const char* hex = "0123456789abcdef";
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const std::size_t n = s.size();
    std::size_t i = 0;
    while (i < n) {
        // Runs of plain ASCII in one go (the whole string, for most names and paths).
        std::size_t j = plain_run(p, i, n);
        out.append(s.data() + i, j - i);
        i = j;
        if (i >= n) break;
        const unsigned char c = p[i];
        if (c >= 0x80) {
            if (const std::size_t len = utf8_len(s, i)) {
                out.append(s.data() + i, len);
                i += len;
            } else {
                out += "\xEF\xBF\xBD";  // U+FFFD
                i += kPerByte ? 1 : maximal_subpart(s, i);
            }
            continue;
        }
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            default: {
                const char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                out.append(u, 6);
            }
        }
        ++i;
    }
}

}  // namespace

void append_escaped(std::string& out, std::string_view s) { escape<true>(out, s); }

void append_escaped_like_dump(std::string& out, std::string_view s) { escape<false>(out, s); }

namespace record {
void append_int(std::string& out, std::int64_t v) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, static_cast<std::size_t>(r.ptr - buf));
}

void append_uint(std::string& out, std::uint64_t v) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, static_cast<std::size_t>(r.ptr - buf));
}

void append_json(std::string& out, const View& v, std::uint32_t i) {
    const Node& n = v[i];
    switch (n.type) {
        case Type::Null:
            out += "null";
            return;
        case Type::False:
            out += "false";
            return;
        case Type::True:
            out += "true";
            return;
        case Type::Int:
            append_int(out, n.num.i);
            return;
        case Type::Uint:
            append_uint(out, n.num.u);
            return;
        case Type::Double:
            // nlohmann's shortest round-trip form ("1.0", "1e+100"); rare in events.
            out += nlohmann::json(n.num.d).dump();
            return;
        case Type::String:
            out += '"';
            append_escaped_like_dump(out, n.str);
            out += '"';
            return;
        case Type::Array:
        case Type::Object: {
            const bool obj = n.type == Type::Object;
            out += obj ? '{' : '[';
            for (std::uint32_t c = i + 1; c < n.end; c = v[c].end) {
                if (c != i + 1) out += ',';
                if (obj) {
                    out += '"';
                    append_escaped_like_dump(out, v[c].key);
                    out += "\":";
                }
                append_json(out, v, c);
            }
            out += obj ? '}' : ']';
            return;
        }
    }
}

}  // namespace record

namespace {

constexpr std::uint32_t npos = View::npos;

// An object being written: commas between members that may or may not be there.
class Obj {
  public:
    Obj(std::string& out) : out_(out) { out_ += '{'; }
    // `k` is ours: plain ASCII with its quotes and colon, e.g. "\"pid\":".
    std::string& key(std::string_view k) {
        if (!first_) out_ += ',';
        first_ = false;
        out_.append(k);
        return out_;
    }
    void close() { out_ += '}'; }

  private:
    std::string& out_;
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

void quoted(std::string& out, std::string_view s) {
    out += '"';
    append_escaped(out, s);
    out += '"';
}

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

// process_entity_id hashes (SHA-256); the same few processes make most events, so the last
// ids are remembered per thread.
void append_entity_id(std::string& out, std::string_view vm, std::string_view task,
                      std::uint64_t start) {
    struct Entry {
        std::string vm, task;
        std::uint64_t start = 0;
        std::string id;
    };
    thread_local std::array<Entry, 256> cache;
    std::size_t h = std::hash<std::string_view>{}(task) ^ (start * 0x9E3779B97F4A7C15ULL);
    h ^= std::hash<std::string_view>{}(vm)*31;
    Entry& e = cache[h & 255];
    if (e.id.empty() || e.start != start || e.task != task || e.vm != vm) {
        e.vm.assign(vm);
        e.task.assign(task);
        e.start = start;
        e.id = process_entity_id(vm, task, start);
    }
    quoted(out, e.id);
}

// Strings of an array joined by spaces (non-strings skipped), as join() does.
void append_joined(std::string& out, const View& v, std::uint32_t arr) {
    bool any = false;
    for (std::uint32_t c = arr + 1; c < v[arr].end; c = v[c].end) {
        const auto* s = v.str(c);
        if (!s) continue;
        if (any) out += ' ';
        append_escaped(out, *s);
        any = any || !s->empty();
    }
}

void ecs_process(std::string& out, const View& v, std::uint32_t p, std::string_view vm) {
    enum { Pid, Name, Exe, Args, Euid, Uid, Gid, Parent, Ppid, Task, Start };
    const Fields<Key::kPid, Key::kName, Key::kExe, Key::kArgs, Key::kEuid, Key::kUid, Key::kGid,
                 Key::kParent, Key::kPpid, Key::kTask, Key::kStartTimeNs>
        f(v, p);
    Obj o(out);
    if (v.is_number(f[Pid])) record::append_int(o.key("\"pid\":"), v.as_i64(f[Pid]));
    if (const auto* s = v.str(f[Name])) quoted(o.key("\"name\":"), *s);
    if (const auto* s = v.str(f[Exe])) quoted(o.key("\"executable\":"), *s);
    if (const auto args = f[Args]; v.is(args, Type::Array)) {
        std::string& a = o.key("\"args\":[");
        bool first = true;
        for (std::uint32_t c = args + 1; c < v[args].end; c = v[c].end) {
            const auto* s = v.str(c);
            if (!s) continue;
            if (!first) a += ',';
            first = false;
            quoted(a, *s);
        }
        a += ']';
        record::append_uint(o.key("\"args_count\":"), v[args].count);
        std::string& cl = o.key("\"command_line\":\"");
        append_joined(cl, v, args);
        cl += '"';
    }
    const auto id_of = [&](std::uint32_t i, std::string_view as) {
        if (!v.is_number(i)) return;
        std::string& s = o.key(as);
        s += "{\"id\":\"";
        record::append_int(s, v.as_i64(i));
        s += "\"}";
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
            record::append_int(po.key("\"pid\":"), v.as_i64(pf[0]));
        else if (v.is_number(ppid))
            record::append_int(po.key("\"pid\":"), v.as_i64(ppid));
        if (const auto* s = v.str(pf[1])) quoted(po.key("\"name\":"), *s);
        if (const auto* s = v.str(pf[2])) quoted(po.key("\"executable\":"), *s);
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

void ecs(std::string& out, const View& v, std::string_view id, std::uint64_t seq,
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
    quoted(o.key("\"@timestamp\":"), ts ? *ts : created);
    o.key("\"ecs\":{\"version\":\"8.11.0\"}");
    // event.*
    const auto [category, type] = kind_of(action, kind);
    {
        Obj e(o.key("\"event\":"));
        quoted(e.key("\"kind\":"), kind);
        quoted(e.key("\"action\":"), action);
        quoted(e.key("\"id\":"), id);
        record::append_uint(e.key("\"sequence\":"), seq);
        quoted(e.key("\"created\":"), created);
        e.key("\"module\":\"vminsight\"");
        e.key(kind == "alert" ? "\"dataset\":\"vminsight.alert\""
                              : "\"dataset\":\"vminsight.event\"");
        std::string& c = e.key("\"category\":[\"");
        c.append(category);
        c += "\"]";
        std::string& t = e.key("\"type\":[\"");
        t.append(type);
        t += "\"]";
        const auto sc = root[Syscall];
        std::string_view outcome;
        if (const auto* oc = v.str(nev[2]))
            outcome = *oc == "success" || *oc == "failure" ? *oc : std::string_view("unknown");
        if (action == "syscall-denied" || v.is(v.find(sc, Key::kDenied), Type::True))
            outcome = "failure";
        if (!outcome.empty()) quoted(e.key("\"outcome\":"), outcome);
        if (const auto* r = v.str(nev[3])) quoted(e.key("\"reason\":"), *r);
        if (const auto* pr = v.str(rf[RPriority]))
            record::append_int(e.key("\"severity\":"), 7 - syslog_severity(*pr).value_or(4));
        e.close();
    }
    // The guest is the host the events are about; the sensor is the observer.
    {
        Obj h(o.key("\"host\":"));
        quoted(h.key("\"name\":"), vm);
        h.key("\"type\":\"virtual-machine\"");
        if (const auto* u = v.str(vmf[1])) quoted(h.key("\"id\":"), *u);
        h.close();
    }
    {
        Obj ob(o.key("\"observer\":"));
        quoted(ob.key("\"hostname\":"), ctx.observer_hostname);
        ob.key("\"type\":\"hypervisor-sensor\"");
        ob.key("\"vendor\":\"VMInsight\"");
        ob.key("\"product\":\"vminsightd\"");
        quoted(ob.key("\"version\":"), ctx.version);
        ob.close();
    }
    const auto proc = root[Process];
    if (v.is(proc, Type::Object)) ecs_process(o.key("\"process\":"), v, proc, vm);
    if (const auto* m = v.str(root[Message])) quoted(o.key("\"message\":"), *m);
    const auto rule = root[Rule];
    if (v.is(rule, Type::Object)) {
        Obj r(o.key("\"rule\":"));
        if (const auto n = rf[RName]; n != npos)
            record::append_json(r.key("\"name\":"), v, n);
        else
            r.key("\"name\":null");
        if (const auto* s = v.str(rf[RPolicy])) quoted(r.key("\"ruleset\":"), *s);
        if (const auto* s = v.str(rf[RSource])) quoted(r.key("\"reference\":"), *s);
        const auto tags = rf[RTags];
        if (v.is(tags, Type::Array)) {
            std::string& c = r.key("\"category\":\"");
            append_joined(c, v, tags);
            c += '"';
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
                    out += ',';
                any = true;
                out += '"';
                out.append(*s);  // matched the pattern: plain ASCII
                out += '"';
            }
            if (any) out += "]}}";
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
                std::string& s = x.key("\"");
                append_escaped(s, v[c].key);
                s += "\":";
                record::append_json(s, v, c);
            }
        if (cr3) quoted(x.key("\"cr3\":"), *cr3);
        x.close();
    }
    o.close();
}

// Native: the event as it is, plus event.id and event.sequence (members stay sorted).
bool native(std::string& out, const View& v, std::string_view id, std::uint64_t seq) {
    // A null root or event becomes an object, as nlohmann's operator[] makes it.
    if (v.is(0, Type::Null)) {
        out += "{\"event\":{\"id\":";
        quoted(out, id);
        out += ",\"sequence\":";
        record::append_uint(out, seq);
        out += "}}";
        return true;
    }
    if (!v.is(0, Type::Object)) return false;
    const auto ev = v.find(0, Key::kEvent);
    if (ev != npos && !v.is(ev, Type::Object) && !v.is(ev, Type::Null)) return false;
    out += '{';
    bool wrote_event = false;
    const auto write_event = [&] {
        out += "\"event\":{";
        bool any = false;
        bool id_done = false, seq_done = false;
        const auto put_id = [&] {
            if (any) out += ',';
            any = true;
            out += "\"id\":";
            quoted(out, id);
            id_done = true;
        };
        const auto put_seq = [&] {
            if (any) out += ',';
            any = true;
            out += "\"sequence\":";
            record::append_uint(out, seq);
            seq_done = true;
        };
        if (ev != npos)
            for (std::uint32_t c = ev + 1; c < v[ev].end; c = v[c].end) {
                const std::string_view k = v[c].key;
                if (!id_done && k >= "id") put_id();
                if (!seq_done && k >= "sequence") put_seq();
                if (k == "id" || k == "sequence") continue;  // replaced
                if (any) out += ',';
                any = true;
                out += '"';
                append_escaped_like_dump(out, k);
                out += "\":";
                record::append_json(out, v, c);
            }
        if (!id_done) put_id();
        if (!seq_done) put_seq();
        out += '}';
        wrote_event = true;
    };
    bool first = true;
    for (std::uint32_t c = 1; c < v[0].end; c = v[c].end) {
        const std::string_view k = v[c].key;
        if (!wrote_event && k >= "event") {
            if (!first) out += ',';
            first = false;
            write_event();
            if (k == "event") continue;
        }
        if (!first) out += ',';
        first = false;
        out += '"';
        append_escaped_like_dump(out, k);
        out += "\":";
        record::append_json(out, v, c);
    }
    if (!wrote_event) {
        if (!first) out += ',';
        write_event();
    }
    out += '}';
    return true;
}

}  // namespace

bool encode_record(Encoding enc, const View& v, std::string_view id, std::uint64_t seq,
                   const EncodeContext& ctx, std::string& out) {
    switch (enc) {
        case Encoding::Ecs:
            if (v.empty()) break;
            ecs(out, v, id, seq, ctx);
            return true;
        case Encoding::Native:
            if (!v.empty() && !native(out, v, id, seq)) record::append_json(out, v, 0);
            if (!v.empty()) return true;
            break;
        case Encoding::Ocsf:
        case Encoding::Falco:
            break;
    }
    auto line = feed::encode(enc, v.to_json(), id, seq, ctx);
    if (!line) return false;
    out += *line;
    return true;
}

}  // namespace feed_ref
// NOLINTEND
