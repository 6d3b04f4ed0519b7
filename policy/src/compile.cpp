#include "compile.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <utility>

namespace policy {

namespace {
constexpr std::array<std::string_view, kEventTypeCount> kTypeNames = {
    "exec", "exit", "start", "syscall", "cr3", "rename", "tamper"};
}

std::string_view event_type_name(EventType type) noexcept {
    return kTypeNames[static_cast<std::size_t>(type)];
}

std::optional<EventType> parse_event_type(std::string_view name) noexcept {
    for (std::size_t i = 0; i < kTypeNames.size(); ++i) {
        if (kTypeNames[i] == name) return static_cast<EventType>(i);
    }
    if (name == "fork") return EventType::Start;
    return std::nullopt;
}

void Event::set_args(std::vector<std::string> a) {
    std::string joined;
    for (const auto& s : a) {
        if (!joined.empty()) joined += ' ';
        joined += s;
    }
    proc.cmdline = std::move(joined);
    proc.args = std::move(a);
}

}  // namespace policy

namespace policy::detail {

namespace {

using FT = FieldType;
constexpr std::array<FieldDef, 30> kFields = {{
    {"vm.name", FieldId::VmName, FT::String, false, false, 0},
    {"vm.uuid", FieldId::VmUuid, FT::String, false, false, 0},
    {"evt.type", FieldId::EvtType, FT::String, false, false, 0},
    {"proc.pid", FieldId::ProcPid, FT::Number, false, false, 0},
    {"proc.ppid", FieldId::ProcPpid, FT::Number, false, false, 0},
    {"proc.name", FieldId::ProcName, FT::String, false, false, 0},
    {"proc.exe", FieldId::ProcExe, FT::String, false, false, 0},
    {"proc.cmdline", FieldId::ProcCmdline, FT::String, false, false, 0},
    {"proc.args", FieldId::ProcArgs, FT::String, true, false, 0},
    {"proc.uid", FieldId::ProcUid, FT::Number, false, false, 0},
    {"proc.euid", FieldId::ProcEuid, FT::Number, false, false, 0},
    {"proc.gid", FieldId::ProcGid, FT::Number, false, false, 0},
    {"proc.pname", FieldId::ProcPname, FT::String, false, false, 0},
    {"proc.pexe", FieldId::ProcPexe, FT::String, false, false, 0},
    {"proc.aname", FieldId::ProcAname, FT::String, true, false, 1},
    {"proc.entity_id", FieldId::ProcEntityId, FT::String, false, false, 0},
    {"proc.previous_name", FieldId::ProcPreviousName, FT::String, false, false, 0},
    {"syscall.name", FieldId::SysName, FT::String, false, false, 0},
    {"syscall.nr", FieldId::SysNr, FT::Number, false, false, 0},
    {"syscall.path", FieldId::SysPath, FT::String, false, false, 0},
    {"syscall.addr", FieldId::SysAddr, FT::String, false, false, 0},
    {"syscall.port", FieldId::SysPort, FT::Number, false, false, 0},
    {"syscall.flags", FieldId::SysFlags, FT::Number, false, false, 0},
    {"syscall.arg", FieldId::SysArg, FT::Number, true, false, 0},
    {"tamper.kind", FieldId::TamperKind, FT::String, false, false, 0},
    {"tamper.target", FieldId::TamperTarget, FT::String, false, false, 0},
    {"tamper.name", FieldId::TamperName, FT::String, false, false, 0},
    {"tamper.symbol", FieldId::TamperSymbol, FT::String, false, false, 0},
    {"tamper.expected", FieldId::TamperExpected, FT::String, false, false, 0},
    {"tamper.actual", FieldId::TamperActual, FT::String, false, false, 0},
}};

struct NamedOp {
    std::string_view name;
    Op op;
};
constexpr std::array<NamedOp, 15> kOps = {{
    {"=", Op::Eq},
    {"!=", Op::Ne},
    {"<", Op::Lt},
    {"<=", Op::Le},
    {">", Op::Gt},
    {">=", Op::Ge},
    {"&", Op::BitAnd},
    {"in", Op::In},
    {"contains", Op::Contains},
    {"icontains", Op::IContains},
    {"startswith", Op::StartsWith},
    {"endswith", Op::EndsWith},
    {"glob", Op::Glob},
    {"regex", Op::Regex},
    {"exists", Op::Exists},
}};

bool is_string_op(Op op) {
    return op == Op::Contains || op == Op::IContains || op == Op::StartsWith ||
           op == Op::EndsWith || op == Op::Glob || op == Op::Regex;
}
bool is_number_op(Op op) {
    return op == Op::Lt || op == Op::Le || op == Op::Gt || op == Op::Ge || op == Op::BitAnd;
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool icontains(std::string_view hay, std::string_view lower_needle) {
    if (lower_needle.size() > hay.size()) return false;
    const std::size_t last = hay.size() - lower_needle.size();
    for (std::size_t i = 0; i <= last; ++i) {
        std::size_t j = 0;
        while (j < lower_needle.size() && lower(hay[i + j]) == lower_needle[j]) ++j;
        if (j == lower_needle.size()) return true;
    }
    return false;
}

// Equality with cheap rejects before memcmp (most comparisons fail on length or first byte).
inline bool same(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && (a.empty() || (a[0] == b[0] && a == b));
}

std::optional<std::string_view> opt_sv(const std::optional<std::string>& s) noexcept {
    if (!s) return std::nullopt;
    return std::string_view(*s);
}

struct OpenFlag {
    std::string_view name;
    std::int64_t value;
};
constexpr std::array<OpenFlag, 12> kOpenFlags = {{
    {"O_RDONLY", 0},
    {"O_WRONLY", 01},
    {"O_RDWR", 02},
    {"O_CREAT", 0100},
    {"O_EXCL", 0200},
    {"O_NOCTTY", 0400},
    {"O_TRUNC", 01000},
    {"O_APPEND", 02000},
    {"O_NONBLOCK", 04000},
    {"O_DIRECTORY", 0200000},
    {"O_CLOEXEC", 02000000},
    {"O_TMPFILE", 020200000},
}};

std::optional<std::int64_t> parse_number(std::string_view s, const FieldRef& f) {
    if (f.def->id == FieldId::SysFlags) {
        for (const auto& fl : kOpenFlags) {
            if (fl.name == s) return fl.value;
        }
    }
    if (s.empty()) return std::nullopt;
    bool neg = false;
    std::string_view body = s;
    if (body.front() == '-') {
        neg = true;
        body.remove_prefix(1);
    }
    int base = 10;
    if (body.size() > 2 && body[0] == '0' && (body[1] == 'x' || body[1] == 'X')) {
        base = 16;
        body.remove_prefix(2);
    } else if (body.size() > 1 && body[0] == '0') {
        base = 8;
        body.remove_prefix(1);
    }
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(body.data(), body.data() + body.size(), v, base);
    if (ec != std::errc() || p != body.data() + body.size() || body.empty()) return std::nullopt;
    const auto sv = static_cast<std::int64_t>(v);
    return neg ? -sv : sv;
}

}  // namespace

const FieldDef* find_field(std::string_view name) noexcept {
    for (const auto& f : kFields) {
        if (f.name == name) return &f;
    }
    return nullptr;
}

std::optional<FieldRef> parse_field_ref(std::string_view text, std::string& error) {
    error.clear();
    std::string_view base = text;
    int index = -1;
    const auto br = text.find('[');
    if (br != std::string_view::npos) {
        base = text.substr(0, br);
        if (text.back() != ']') {
            if (find_field(base)) error = "bad index in '" + std::string(text) + "'";
            return std::nullopt;
        }
        const auto digits = text.substr(br + 1, text.size() - br - 2);
        int v = 0;
        auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
        if (ec != std::errc() || p != digits.data() + digits.size() || digits.empty()) {
            if (find_field(base)) error = "bad index in '" + std::string(text) + "'";
            return std::nullopt;
        }
        index = v;
    }
    const FieldDef* def = find_field(base);
    if (!def) return std::nullopt;
    if (index >= 0 && !def->list) {
        error = "field '" + std::string(base) + "' does not take an index";
        return std::nullopt;
    }
    if (index >= 0 && index < def->min_index) {
        error = "index of '" + std::string(base) + "' starts at " + std::to_string(def->min_index);
        return std::nullopt;
    }
    if (index < 0 && def->index_required) {
        error =
            "field '" + std::string(base) + "' needs an index, e.g. " + std::string(base) + "[0]";
        return std::nullopt;
    }
    return FieldRef{def, index};
}

std::string_view op_name(Op op) noexcept {
    for (const auto& o : kOps) {
        if (o.op == op) return o.name;
    }
    return "?";
}

std::optional<Op> parse_op(std::string_view word) noexcept {
    for (const auto& o : kOps) {
        if (o.name == word) return o.op;
    }
    return std::nullopt;
}

bool glob_match(std::string_view pat, std::string_view text) noexcept {
    std::size_t p = 0, t = 0;
    std::size_t star_p = std::string_view::npos, star_t = 0;
    while (t < text.size()) {
        if (p < pat.size()) {
            const char c = pat[p];
            if (c == '*') {
                star_p = p++;
                star_t = t;
                continue;
            }
            if (c == '?') {
                ++p;
                ++t;
                continue;
            }
            if (c == '[') {
                std::size_t q = p + 1;
                bool negate = false;
                if (q < pat.size() && (pat[q] == '!' || pat[q] == '^')) {
                    negate = true;
                    ++q;
                }
                bool matched = false;
                bool first = true;
                while (q < pat.size() && (first || pat[q] != ']')) {
                    first = false;
                    if (q + 2 < pat.size() && pat[q + 1] == '-' && pat[q + 2] != ']') {
                        if (text[t] >= pat[q] && text[t] <= pat[q + 2]) matched = true;
                        q += 3;
                    } else {
                        if (text[t] == pat[q]) matched = true;
                        ++q;
                    }
                }
                if (matched != negate) {
                    p = q + 1;
                    ++t;
                    continue;
                }
            } else if (c == '\\' && p + 1 < pat.size()) {
                if (pat[p + 1] == text[t]) {
                    p += 2;
                    ++t;
                    continue;
                }
            } else if (c == text[t]) {
                ++p;
                ++t;
                continue;
            }
        }
        if (star_p == std::string_view::npos) return false;
        p = star_p + 1;
        t = ++star_t;
    }
    while (p < pat.size() && pat[p] == '*') ++p;
    return p == pat.size();
}

std::string glob_error(std::string_view pat) {
    for (std::size_t i = 0; i < pat.size(); ++i) {
        if (pat[i] == '\\') {
            ++i;
            continue;
        }
        if (pat[i] == '[') {
            std::size_t q = i + 1;
            if (q < pat.size() && (pat[q] == '!' || pat[q] == '^')) ++q;
            if (q < pat.size()) ++q;  // a leading ']' is literal
            while (q < pat.size() && pat[q] != ']') ++q;
            if (q >= pat.size()) return "unterminated '[' in glob";
            i = q;
        }
    }
    return {};
}

std::optional<std::string_view> get_str(const Event& e, const FieldRef& f) noexcept {
    switch (f.def->id) {
        case FieldId::VmName:
            return opt_sv(e.vm.name);
        case FieldId::VmUuid:
            return opt_sv(e.vm.uuid);
        case FieldId::EvtType:
            return event_type_name(e.type);
        case FieldId::ProcName:
            return opt_sv(e.proc.name);
        case FieldId::ProcExe:
            return opt_sv(e.proc.exe);
        case FieldId::ProcCmdline:
            return opt_sv(e.proc.cmdline);
        case FieldId::ProcArgs:
            if (!e.proc.args || f.index < 0 ||
                static_cast<std::size_t>(f.index) >= e.proc.args->size())
                return std::nullopt;
            return std::string_view((*e.proc.args)[static_cast<std::size_t>(f.index)]);
        case FieldId::ProcPname:
            return opt_sv(e.proc.pname);
        case FieldId::ProcPexe:
            return opt_sv(e.proc.pexe);
        case FieldId::ProcAname:
            if (f.index == 1 && e.proc.anames.empty()) return opt_sv(e.proc.pname);
            if (f.index < 1 || static_cast<std::size_t>(f.index) > e.proc.anames.size())
                return std::nullopt;
            return std::string_view(e.proc.anames[static_cast<std::size_t>(f.index) - 1]);
        case FieldId::ProcEntityId:
            return opt_sv(e.proc.entity_id);
        case FieldId::ProcPreviousName:
            return opt_sv(e.proc.previous_name);
        case FieldId::SysName:
            return opt_sv(e.syscall.name);
        case FieldId::SysPath:
            return opt_sv(e.syscall.path);
        case FieldId::SysAddr:
            return opt_sv(e.syscall.addr);
        case FieldId::TamperKind:
            return opt_sv(e.tamper.kind);
        case FieldId::TamperTarget:
            return opt_sv(e.tamper.target);
        case FieldId::TamperName:
            return opt_sv(e.tamper.name);
        case FieldId::TamperSymbol:
            return opt_sv(e.tamper.symbol);
        case FieldId::TamperExpected:
            return opt_sv(e.tamper.expected);
        case FieldId::TamperActual:
            return opt_sv(e.tamper.actual);
        default:
            return std::nullopt;
    }
}

std::optional<std::int64_t> get_num(const Event& e, const FieldRef& f) noexcept {
    switch (f.def->id) {
        case FieldId::ProcPid:
            return e.proc.pid;
        case FieldId::ProcPpid:
            return e.proc.ppid;
        case FieldId::ProcUid:
            return e.proc.uid;
        case FieldId::ProcEuid:
            return e.proc.euid;
        case FieldId::ProcGid:
            return e.proc.gid;
        case FieldId::SysNr:
            return e.syscall.nr;
        case FieldId::SysPort:
            return e.syscall.port;
        case FieldId::SysFlags:
            return e.syscall.flags;
        case FieldId::SysArg:
            if (f.index < 0 || static_cast<std::size_t>(f.index) >= e.syscall.args.size())
                return std::nullopt;
            return e.syscall.args[static_cast<std::size_t>(f.index)];
        default:
            return std::nullopt;
    }
}

namespace {
// Elements of an un-indexed list field; nullptr when unset.
const std::vector<std::string>* get_list(const Event& e, const FieldRef& f) noexcept {
    if (f.def->id == FieldId::ProcArgs) return e.proc.args ? &*e.proc.args : nullptr;
    if (f.def->id == FieldId::ProcAname) {
        return e.proc.anames.empty() ? nullptr : &e.proc.anames;
    }
    return nullptr;
}
}  // namespace

std::string render_field(const Event& e, const FieldRef& f) {
    if (f.type() == FieldType::Number) {
        if (f.multi()) {
            std::string out;
            for (auto v : e.syscall.args) {
                if (!out.empty()) out += ' ';
                out += std::to_string(v);
            }
            return e.syscall.args.empty() ? "<NA>" : out;
        }
        const auto v = get_num(e, f);
        return v ? std::to_string(*v) : "<NA>";
    }
    if (f.multi()) {
        const auto* list = get_list(e, f);
        if (!list) {
            if (f.def->id == FieldId::ProcAname && e.proc.pname) return *e.proc.pname;
            return "<NA>";
        }
        std::string out;
        for (const auto& s : *list) {
            if (!out.empty()) out += ' ';
            out += s;
        }
        return out;
    }
    const auto v = get_str(e, f);
    return v ? std::string(*v) : "<NA>";
}

bool Pred::test_str(std::string_view v) const {
    switch (op) {
        case Op::Eq:
            return same(v, strs[0]);
        case Op::Ne:
            return !same(v, strs[0]);
        case Op::In:
            if (!set.empty()) return set.find(v) != set.end();
            for (const auto& s : strs) {
                if (same(v, s)) return true;
            }
            return false;
        case Op::Contains:
            for (const auto& s : strs) {
                if (v.find(s) != std::string_view::npos) return true;
            }
            return false;
        case Op::IContains:
            for (const auto& s : strs) {
                if (icontains(v, s)) return true;
            }
            return false;
        case Op::StartsWith:
            for (const auto& s : strs) {
                if (v.starts_with(s)) return true;
            }
            return false;
        case Op::EndsWith:
            for (const auto& s : strs) {
                if (v.ends_with(s)) return true;
            }
            return false;
        case Op::Glob:
            for (std::size_t i = 0; i < strs.size(); ++i) {
                if (v.starts_with(glob_prefixes[i]) && glob_match(strs[i], v)) return true;
            }
            return false;
        case Op::Regex:
            for (const auto& re : regexes) {
                if (std::regex_search(v.begin(), v.end(), re)) return true;
            }
            return false;
        default:
            return false;
    }
}

bool Pred::test_num(std::int64_t v) const {
    switch (op) {
        case Op::Eq:
            return v == nums[0];
        case Op::Ne:
            return v != nums[0];
        case Op::Lt:
            return v < nums[0];
        case Op::Le:
            return v <= nums[0];
        case Op::Gt:
            return v > nums[0];
        case Op::Ge:
            return v >= nums[0];
        case Op::BitAnd:
            return (v & mask) != 0;
        case Op::In:
            for (auto n : nums) {
                if (v == n) return true;
            }
            return false;
        default:
            return false;
    }
}

bool Pred::test(const Event& e) const {
    if (field.def->id == FieldId::EvtType && op != Op::Exists) {
        const bool in = (type_mask >> static_cast<unsigned>(e.type)) & 1u;
        return op == Op::Ne ? !in : in;
    }
    if (field.type() == FieldType::Number) {
        if (field.multi()) {
            if (op == Op::Exists) return !e.syscall.args.empty();
            for (auto v : e.syscall.args) {
                if (test_num(v)) return true;
            }
            return false;
        }
        const auto v = get_num(e, field);
        if (op == Op::Exists) return v.has_value();
        return v && test_num(*v);
    }
    if (field.multi()) {
        const auto* list = get_list(e, field);
        if (!list && field.def->id == FieldId::ProcAname && e.proc.pname) {
            if (op == Op::Exists) return true;
            return test_str(*e.proc.pname);
        }
        if (op == Op::Exists) return list != nullptr;
        if (!list) return false;
        for (const auto& s : *list) {
            if (test_str(s)) return true;
        }
        return false;
    }
    const auto v = get_str(e, field);
    if (op == Op::Exists) return v.has_value();
    return v && test_str(*v);
}

bool eval(const Node& n, const Event& e, Memo& memo) {
    switch (n.kind) {
        case Node::Kind::And:
            for (const auto& k : n.kids) {
                if (!eval(*k, e, memo)) return false;
            }
            return true;
        case Node::Kind::Or:
            for (const auto& k : n.kids) {
                if (eval(*k, e, memo)) return true;
            }
            return false;
        case Node::Kind::Not:
            return !eval(*n.kids[0], e, memo);
        case Node::Kind::Pred:
            return n.pred->test(e);
        case Node::Kind::Const:
            return n.value;
        case Node::Kind::Memo: {
            std::uint8_t& st = memo.state[n.slot];
            if (st == 0) st = eval(*n.kids[0], e, memo) ? 2 : 1;
            return st == 2;
        }
    }
    return false;
}

NodePtr make_memo(NodePtr inner, std::uint32_t slot) {
    auto n = std::make_shared<Node>();
    n->kind = Node::Kind::Memo;
    n->slot = slot;
    n->kids = {std::move(inner)};
    return n;
}

namespace {
// Types an evt.type predicate accepts, or nullopt if not an evt.type predicate.
std::optional<std::uint32_t> evt_type_pred_mask(const Node& n) {
    if (n.kind != Node::Kind::Pred || n.pred->field.def->id != FieldId::EvtType) {
        return std::nullopt;
    }
    const Pred& p = *n.pred;
    auto mask_of = [](const std::string& s) -> std::uint32_t {
        const auto t = parse_event_type(s);
        return t ? (1u << static_cast<unsigned>(*t)) : 0u;
    };
    std::uint32_t m = 0;
    switch (p.op) {
        case Op::Eq:
            return mask_of(p.strs[0]);
        case Op::Ne:
            return kAllTypes & ~mask_of(p.strs[0]);
        case Op::In:
            for (const auto& s : p.strs) m |= mask_of(s);
            return m;
        case Op::Exists:
            return kAllTypes;
        default:
            return std::nullopt;
    }
}
}  // namespace

std::uint32_t type_mask(const Node& n) {
    switch (n.kind) {
        case Node::Kind::And: {
            std::uint32_t m = kAllTypes;
            for (const auto& k : n.kids) m &= type_mask(*k);
            return m;
        }
        case Node::Kind::Or: {
            std::uint32_t m = 0;
            for (const auto& k : n.kids) m |= type_mask(*k);
            return m;
        }
        case Node::Kind::Not: {
            const auto inner = evt_type_pred_mask(*n.kids[0]);
            if (inner) return kAllTypes & ~*inner;
            return kAllTypes;
        }
        case Node::Kind::Memo:
            return type_mask(*n.kids[0]);
        case Node::Kind::Pred:
            return evt_type_pred_mask(n).value_or(kAllTypes);
        case Node::Kind::Const:
            return n.value ? kAllTypes : 0u;
    }
    return kAllTypes;
}

std::optional<std::vector<std::string>> syscall_names(const Node& n) {
    using Names = std::vector<std::string>;
    switch (n.kind) {
        case Node::Kind::Pred: {
            const Pred& p = *n.pred;
            if (p.field.def->id != FieldId::SysName) return std::nullopt;
            if (p.op == Op::Eq || p.op == Op::In) return p.strs;
            return std::nullopt;
        }
        case Node::Kind::Memo:
            return syscall_names(*n.kids[0]);
        case Node::Kind::And: {
            std::optional<Names> acc;
            for (const auto& k : n.kids) {
                auto s = syscall_names(*k);
                if (!s) continue;
                if (!acc) {
                    acc = std::move(s);
                    continue;
                }
                Names both;
                for (const auto& x : *acc) {
                    if (std::find(s->begin(), s->end(), x) != s->end()) both.push_back(x);
                }
                acc = std::move(both);
            }
            return acc;
        }
        case Node::Kind::Or: {
            Names all;
            for (const auto& k : n.kids) {
                // A branch that cannot match a syscall event (evt.type = exec ...) adds no name.
                if (!(type_mask(*k) & (1u << static_cast<unsigned>(EventType::Syscall)))) continue;
                auto s = syscall_names(*k);
                if (!s) return std::nullopt;
                all.insert(all.end(), s->begin(), s->end());
            }
            return all;
        }
        case Node::Kind::Const:
            if (!n.value) return Names{};
            return std::nullopt;
        case Node::Kind::Not:
            return std::nullopt;
    }
    return std::nullopt;
}

NodePtr make_and(NodePtr a, NodePtr b) {
    auto n = std::make_shared<Node>();
    n->kind = Node::Kind::And;
    n->kids = {std::move(a), std::move(b)};
    return n;
}

NodePtr make_or(std::vector<NodePtr> kids) {
    if (kids.size() == 1) return std::move(kids[0]);
    auto n = std::make_shared<Node>();
    n->kind = Node::Kind::Or;
    n->kids = std::move(kids);
    return n;
}

NodePtr make_not(NodePtr a) {
    auto n = std::make_shared<Node>();
    n->kind = Node::Kind::Not;
    n->kids = {std::move(a)};
    return n;
}

NodePtr make_pred(const FieldRef& field, Op op, const std::vector<ValueItem>& values,
                  bool value_list, const CompileEnv& env, std::size_t op_offset,
                  std::size_t op_len) {
    const std::string fname(field.def->name);
    auto err = [](std::size_t off, std::size_t len, std::string msg) {
        return CondError{off, len, std::move(msg), false};
    };
    if (field.type() == FieldType::Number && is_string_op(op)) {
        throw err(op_offset, op_len,
                  "type mismatch: operator '" + std::string(op_name(op)) +
                      "' needs a string field, but '" + fname + "' is a number");
    }
    if (field.type() == FieldType::String && is_number_op(op)) {
        throw err(op_offset, op_len,
                  "type mismatch: operator '" + std::string(op_name(op)) +
                      "' needs a number field, but '" + fname + "' is a string");
    }
    auto p = std::make_unique<Pred>();
    p->field = field;
    p->op = op;
    if (op != Op::Exists) {
        // Expand list names.
        std::vector<ValueItem> items;
        for (const auto& v : values) {
            const std::vector<std::string>* list =
                (value_list && !v.quoted && env.find_list) ? env.find_list(v.text) : nullptr;
            if (list) {
                for (const auto& s : *list) items.push_back(ValueItem{s, true, v.offset, v.len});
            } else {
                items.push_back(v);
            }
        }
        if (field.type() == FieldType::Number) {
            for (const auto& v : items) {
                const auto n = parse_number(v.text, field);
                if (!n) {
                    if (value_list && !v.quoted) {
                        throw err(v.offset, v.len,
                                  "unknown list '" + v.text + "' (or a non-numeric value for '" +
                                      fname + "', which is a number)");
                    }
                    throw err(v.offset, v.len,
                              "type mismatch: '" + fname + "' is a number, got '" + v.text + "'");
                }
                p->nums.push_back(*n);
                p->mask |= *n;
            }
        } else {
            for (const auto& v : items) {
                if (field.def->id == FieldId::EvtType && !parse_event_type(v.text)) {
                    throw err(v.offset, v.len,
                              "unknown event type '" + v.text +
                                  "' (exec, exit, start, fork, syscall, cr3, rename, tamper)");
                }
                if (op == Op::Regex) {
                    try {
                        p->regexes.emplace_back(v.text,
                                                std::regex::ECMAScript | std::regex::optimize);
                    } catch (const std::regex_error& e) {
                        throw err(v.offset, v.len,
                                  "bad regex '" + v.text + "': " + std::string(e.what()));
                    }
                }
                if (op == Op::Glob) {
                    auto ge = glob_error(v.text);
                    if (!ge.empty()) throw err(v.offset, v.len, "bad glob '" + v.text + "': " + ge);
                }
                std::string s = v.text;
                if (field.def->id == FieldId::EvtType) {  // "fork" -> "start"
                    s = std::string(event_type_name(*parse_event_type(v.text)));
                }
                if (op == Op::IContains) {
                    std::transform(s.begin(), s.end(), s.begin(), lower);
                }
                p->strs.push_back(std::move(s));
            }
            for (const auto& g : op == Op::Glob ? p->strs : std::vector<std::string>{}) {
                p->glob_prefixes.push_back(g.substr(0, g.find_first_of("*?[\\")));
            }
            if (field.def->id == FieldId::EvtType) {
                for (const auto& t : p->strs) {
                    p->type_mask |= 1u << static_cast<unsigned>(*parse_event_type(t));
                }
            }
            if (op == Op::In && p->strs.size() > 6) {
                p->set.insert(p->strs.begin(), p->strs.end());
            }
        }
        if (op == Op::In && items.empty()) {
            // `x in ()` matches nothing.
            auto n = std::make_shared<Node>();
            n->kind = Node::Kind::Const;
            n->value = false;
            return n;
        }
    }
    auto n = std::make_shared<Node>();
    n->kind = Node::Kind::Pred;
    n->pred = std::move(p);
    return n;
}

// ---------------------------------------------------------------------------------------------
// Condition parser.

namespace {

enum class Tok : std::uint8_t { LParen, RParen, Comma, Word, Str, Op, End };

struct Token {
    Tok kind;
    std::string text;
    std::size_t offset;
    std::size_t len;
};

std::vector<Token> lex(std::string_view s) {
    std::vector<Token> out;
    std::size_t i = 0;
    auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    auto is_special = [&](char c) {
        return is_space(c) || c == '(' || c == ')' || c == ',' || c == '"' || c == '\'' ||
               c == '=' || c == '<' || c == '>' || c == '!' || c == '&';
    };
    while (i < s.size()) {
        const char c = s[i];
        if (is_space(c)) {
            ++i;
            continue;
        }
        const std::size_t start = i;
        if (c == '(' || c == ')' || c == ',') {
            out.push_back({c == '('   ? Tok::LParen
                           : c == ')' ? Tok::RParen
                                      : Tok::Comma,
                           std::string(1, c), start, 1});
            ++i;
            continue;
        }
        if (c == '"' || c == '\'') {
            std::string text;
            ++i;
            bool closed = false;
            while (i < s.size()) {
                if (s[i] == '\\' && i + 1 < s.size()) {
                    text += s[i + 1];
                    i += 2;
                    continue;
                }
                if (s[i] == c) {
                    closed = true;
                    ++i;
                    break;
                }
                text += s[i++];
            }
            if (!closed) throw CondError{start, 1, "unterminated string", false};
            out.push_back({Tok::Str, std::move(text), start, i - start});
            continue;
        }
        if (c == '=' || c == '&') {
            out.push_back({Tok::Op, std::string(1, c), start, 1});
            ++i;
            continue;
        }
        if (c == '<' || c == '>' || c == '!') {
            if (i + 1 < s.size() && s[i + 1] == '=') {
                out.push_back({Tok::Op, std::string(s.substr(i, 2)), start, 2});
                i += 2;
                continue;
            }
            if (c == '!') throw CondError{start, 1, "unexpected '!' (use 'not' or '!=')", false};
            out.push_back({Tok::Op, std::string(1, c), start, 1});
            ++i;
            continue;
        }
        while (i < s.size() && !is_special(s[i])) ++i;
        out.push_back({Tok::Word, std::string(s.substr(start, i - start)), start, i - start});
    }
    out.push_back({Tok::End, "", s.size(), 0});
    return out;
}

class Parser {
  public:
    Parser(std::string_view text, const CompileEnv& env) : toks_(lex(text)), env_(env) {}

    NodePtr parse() {
        if (peek().kind == Tok::End) throw error(peek(), "empty condition");
        auto n = parse_or();
        if (peek().kind != Tok::End) {
            throw error(peek(), "unexpected '" + peek().text + "'; expected 'and', 'or' or end");
        }
        return n;
    }

  private:
    const Token& peek() const { return toks_[pos_]; }
    const Token& next() { return toks_[pos_++]; }
    bool is_word(std::string_view w) const { return peek().kind == Tok::Word && peek().text == w; }
    CondError error(const Token& t, std::string msg) const {
        if (t.kind == Tok::End) {
            // Point just past the last real token.
            if (pos_ > 0 || toks_.size() > 1) {
                const Token& last = toks_[toks_.size() >= 2 ? toks_.size() - 2 : 0];
                return CondError{last.offset, last.len, std::move(msg) + " (at end)", false};
            }
        }
        return CondError{t.offset, t.len, std::move(msg), false};
    }

    NodePtr parse_or() {
        std::vector<NodePtr> kids{parse_and()};
        while (is_word("or")) {
            next();
            kids.push_back(parse_and());
        }
        if (kids.size() == 1) return kids[0];
        auto n = std::make_shared<Node>();
        n->kind = Node::Kind::Or;
        n->kids = std::move(kids);
        return n;
    }

    NodePtr parse_and() {
        std::vector<NodePtr> kids{parse_unary()};
        while (is_word("and")) {
            next();
            kids.push_back(parse_unary());
        }
        if (kids.size() == 1) return kids[0];
        auto n = std::make_shared<Node>();
        n->kind = Node::Kind::And;
        n->kids = std::move(kids);
        return n;
    }

    NodePtr parse_unary() {
        // Bound recursion so a hostile file cannot exhaust the stack.
        if (++depth_ > kMaxDepth) throw error(peek(), "condition nested too deeply");
        NodePtr n;
        if (is_word("not")) {
            next();
            n = make_not(parse_unary());
        } else {
            n = parse_primary();
        }
        --depth_;
        return n;
    }

    NodePtr parse_primary() {
        const Token& t = peek();
        if (t.kind == Tok::LParen) {
            next();
            auto n = parse_or();
            if (peek().kind != Tok::RParen) throw error(peek(), "expected ')'");
            next();
            return n;
        }
        if (t.kind != Tok::Word || t.text == "and" || t.text == "or") {
            throw error(t, t.kind == Tok::End
                               ? std::string("unexpected end of condition")
                               : "unexpected '" + t.text + "'; expected a field or macro");
        }
        const Token& w = next();
        std::string ferr;
        const auto field = parse_field_ref(w.text, ferr);
        if (!ferr.empty()) throw error(w, ferr);
        if (field) return parse_predicate(*field, w);
        const bool followed_by_op =
            peek().kind == Tok::Op || (peek().kind == Tok::Word && parse_op(peek().text));
        if (!followed_by_op || w.text.find('.') == std::string::npos) {
            bool known = false;
            if (env_.find_macro) {
                auto m = env_.find_macro(w.text, known, w.offset, w.len);
                if (known) {
                    if (!m) throw CondError{w.offset, w.len, "", true};
                    return m;
                }
            }
            if (env_.find_list && env_.find_list(w.text)) {
                throw error(w, "'" + w.text + "' is a list, not a macro or field");
            }
            if (followed_by_op) throw error(w, "unknown field '" + w.text + "'");
            throw error(w, "unknown macro '" + w.text + "'");
        }
        throw error(w, "unknown field '" + w.text + "'");
    }

    NodePtr parse_predicate(const FieldRef& field, const Token& ftok) {
        const Token& ot = peek();
        std::optional<Op> op;
        if (ot.kind == Tok::Op || ot.kind == Tok::Word) op = parse_op(ot.text);
        if (!op) {
            throw error(ot, "expected an operator after '" + ftok.text + "'" +
                                (ot.kind == Tok::End ? "" : ", got '" + ot.text + "'"));
        }
        next();
        std::vector<ValueItem> values;
        bool list = false;
        if (*op == Op::Exists) {
            return make_pred(field, *op, values, false, env_, ot.offset, ot.len);
        }
        if (peek().kind == Tok::LParen) {
            const bool list_ok = *op == Op::In || *op == Op::Contains || *op == Op::IContains ||
                                 *op == Op::StartsWith || *op == Op::EndsWith || *op == Op::Glob ||
                                 *op == Op::Regex || *op == Op::BitAnd;
            if (!list_ok) {
                throw error(peek(), "operator '" + ot.text + "' takes a single value, not a list");
            }
            list = true;
            next();
            if (peek().kind != Tok::RParen) {
                while (true) {
                    const Token& v = next();
                    if (v.kind != Tok::Word && v.kind != Tok::Str) {
                        throw error(v, "expected a value in list");
                    }
                    values.push_back({v.text, v.kind == Tok::Str, v.offset, v.len});
                    if (peek().kind == Tok::Comma) {
                        next();
                        continue;
                    }
                    break;
                }
            }
            if (peek().kind != Tok::RParen) throw error(peek(), "expected ',' or ')' in list");
            next();
        } else {
            if (*op == Op::In) throw error(peek(), "'in' needs a parenthesised list");
            const Token& v = peek();
            if (v.kind != Tok::Word && v.kind != Tok::Str) {
                throw error(v, "expected a value after '" + ot.text + "'");
            }
            next();
            values.push_back({v.text, v.kind == Tok::Str, v.offset, v.len});
        }
        return make_pred(field, *op, values, list, env_, ot.offset, ot.len);
    }

    static constexpr int kMaxDepth = 256;
    std::vector<Token> toks_;
    std::size_t pos_ = 0;
    int depth_ = 0;
    const CompileEnv& env_;
};

}  // namespace

NodePtr compile_condition(std::string_view text, const CompileEnv& env) {
    Parser p(text, env);
    return p.parse();
}

}  // namespace policy::detail
