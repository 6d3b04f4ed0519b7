// Rule files: YAML → lists, macros, rules (with append/override) → compiled PolicySet.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>
#include <utility>

#include "enforce.hpp"
#include "impl.hpp"

namespace policy {

namespace {

using detail::CompileEnv;
using detail::CondError;
using detail::FieldRef;
using detail::NodePtr;
using detail::Op;
using detail::ValueItem;

struct SourceFile {
    std::string path;
    std::string text;
};

struct Loc {
    const SourceFile* file = nullptr;
    YAML::Mark mark;
};

// Text assembled from one or more YAML scalars (append), remembering where each came from.
struct Text {
    struct Piece {
        std::size_t start;
        std::size_t len;
        Loc loc;
    };
    std::string text;
    std::vector<Piece> pieces;

    void set(std::string s, Loc loc) {
        text = std::move(s);
        pieces = {Piece{0, text.size(), loc}};
    }
    void append(const std::string& s, Loc loc) {
        if (!text.empty()) text += ' ';
        pieces.push_back(Piece{text.size(), s.size(), loc});
        text += s;
    }
};

struct ListDef {
    std::vector<std::string> items;
    Loc loc;
};

struct MacroDef {
    std::string name;
    Text cond;
    Loc loc;
};

struct ExcCell {
    std::vector<std::string> items;
    bool seq = false;
    Loc loc;
};

struct ExceptionDef {
    std::string name;
    Loc loc;
    bool single_field = false;
    std::vector<std::pair<FieldRef, Loc>> fields;
    std::vector<std::pair<Op, Loc>> comps;
    std::vector<std::vector<ExcCell>> rows;  // single_field: one cell per row
};

struct CurrentPolicy {
    std::string name;
    std::shared_ptr<const VmScope> scope;
    Mode mode = Mode::Enforce;
};

struct RuleDef {
    Rule rule;
    Mode policy_mode = Mode::Enforce;  // monitor: the rule never enforces, whatever its mode
    Text cond;
    Text output;
    std::vector<ExceptionDef> exceptions;
    Loc loc;
};

class Loader {
  public:
    std::vector<Diagnostic> errors;

    void add_file(const std::filesystem::path& path) {
        std::ifstream in(path, std::ios::binary);
        auto f = std::make_unique<SourceFile>();
        f->path = path.string();
        if (!in) {
            errors.push_back(Diagnostic{f->path, 0, 0, "cannot read file"});
            return;
        }
        std::ostringstream ss;
        ss << in.rdbuf();
        f->text = ss.str();
        add_text(std::move(f));
    }

    void add_string(std::string_view yaml, std::string_view name) {
        auto f = std::make_unique<SourceFile>();
        f->path = std::string(name);
        f->text = std::string(yaml);
        add_text(std::move(f));
    }

    std::shared_ptr<const PolicySet::Impl> compile();

  private:
    // ---- diagnostics -----------------------------------------------------------------------
    void error(const Loc& l, std::string msg) {
        errors.push_back(Diagnostic{l.file ? l.file->path : "", l.mark.line + 1, l.mark.column + 1,
                                    std::move(msg)});
    }
    Loc loc(const YAML::Node& n) const { return Loc{cur_, n.Mark()}; }

    void error_in(const Text& t, std::size_t off, std::size_t len, std::string msg) {
        if (t.pieces.empty()) {
            errors.push_back(Diagnostic{"", 0, 0, std::move(msg)});
            return;
        }
        const Text::Piece* piece = &t.pieces.front();
        for (const auto& p : t.pieces) {
            if (p.start <= off) piece = &p;
        }
        const Loc& l = piece->loc;
        if (len == 0 || !l.file || off < piece->start) {
            error(l, std::move(msg));
            return;
        }
        const std::string_view body = std::string_view(t.text).substr(piece->start, piece->len);
        const std::size_t local = off - piece->start;
        const std::string_view tok = body.substr(local, len);
        // Which occurrence of the token text this is, then find the same occurrence in the
        // file after the scalar's start. Works for plain, quoted and folded scalars.
        std::size_t k = 0;
        for (std::size_t p = body.find(tok); p != std::string_view::npos && p < local;
             p = body.find(tok, p + 1)) {
            ++k;
        }
        const std::string& src = l.file->text;
        std::size_t pos = src.find(tok, static_cast<std::size_t>(std::max(0, l.mark.pos)));
        while (pos != std::string::npos && k > 0) {
            pos = src.find(tok, pos + 1);
            --k;
        }
        if (pos == std::string::npos) {
            error(l, std::move(msg));
            return;
        }
        int line = 1, col = 1;
        for (std::size_t i = 0; i < pos; ++i) {
            if (src[i] == '\n') {
                ++line;
                col = 1;
            } else {
                ++col;
            }
        }
        errors.push_back(Diagnostic{l.file->path, line, col, std::move(msg)});
    }

    // ---- YAML helpers ----------------------------------------------------------------------
    std::optional<std::string> scalar(const YAML::Node& n, std::string_view what) {
        if (!n.IsScalar()) {
            error(loc(n), "'" + std::string(what) + "' must be a string");
            return std::nullopt;
        }
        return n.Scalar();
    }
    std::optional<bool> boolean(const YAML::Node& n, std::string_view what) {
        bool v = false;
        if (!n.IsScalar() || !YAML::convert<bool>::decode(n, v)) {
            error(loc(n), "'" + std::string(what) + "' must be true or false");
            return std::nullopt;
        }
        return v;
    }
    std::optional<std::vector<std::string>> strings(const YAML::Node& n, std::string_view what) {
        if (n.IsNull()) return std::vector<std::string>{};
        if (!n.IsSequence()) {
            error(loc(n), "'" + std::string(what) + "' must be a list");
            return std::nullopt;
        }
        std::vector<std::string> out;
        for (const auto& e : n) {
            auto s = scalar(e, what);
            if (!s) return std::nullopt;
            out.push_back(std::move(*s));
        }
        return out;
    }
    bool check_keys(const YAML::Node& item, std::initializer_list<std::string_view> allowed,
                    std::string_view kind) {
        bool ok = true;
        for (auto it = item.begin(); it != item.end(); ++it) {
            const std::string key = it->first.IsScalar() ? it->first.Scalar() : "?";
            if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
                error(loc(it->first), "unknown key '" + key + "' in " + std::string(kind));
                ok = false;
            }
        }
        return ok;
    }

    // Parses `override:`; returns key → "append"/"replace".
    std::optional<std::map<std::string, std::string>> overrides(const YAML::Node& item,
                                                                std::set<std::string> appendable,
                                                                std::set<std::string> replaceable) {
        std::map<std::string, std::string> out;
        const auto o = item["override"];
        if (!o) return out;
        if (!o.IsMap()) {
            error(loc(o), "'override' must be a mapping of key: append|replace");
            return std::nullopt;
        }
        bool ok = true;
        for (auto it = o.begin(); it != o.end(); ++it) {
            const std::string key = it->first.Scalar();
            const std::string how = it->second.IsScalar() ? it->second.Scalar() : "";
            if (how != "append" && how != "replace") {
                error(loc(it->second), "override of '" + key + "' must be append or replace");
                ok = false;
                continue;
            }
            if ((how == "append" && !appendable.count(key)) ||
                (how == "replace" && !replaceable.count(key))) {
                error(loc(it->first), "'" + key + "' cannot be overridden with " + how);
                ok = false;
                continue;
            }
            if (!item[key]) {
                error(loc(it->first),
                      "override lists '" + key + "' but the item has no '" + key + "'");
                ok = false;
                continue;
            }
            out[key] = how;
        }
        for (auto it = item.begin(); it != item.end(); ++it) {
            const std::string key = it->first.Scalar();
            if (key == "rule" || key == "macro" || key == "list" || key == "override") continue;
            if (!out.count(key) && ok) {
                error(loc(it->first), "'" + key + "' is not listed in override");
                ok = false;
            }
        }
        if (!ok) return std::nullopt;
        return out;
    }

    std::string where(const Loc& l) const {
        return (l.file ? l.file->path : std::string()) + ":" + std::to_string(l.mark.line + 1) +
               ":" + std::to_string(l.mark.column + 1);
    }

    // ---- items -----------------------------------------------------------------------------
    void add_text(std::unique_ptr<SourceFile> f) {
        cur_ = f.get();
        cur_policy_ = {};  // a policy item covers the rest of its own file only
        files_.push_back(std::move(f));
        YAML::Node root;
        try {
            root = YAML::Load(cur_->text);
        } catch (const YAML::ParserException& e) {
            errors.push_back(
                Diagnostic{cur_->path, e.mark.line + 1, e.mark.column + 1, "YAML: " + e.msg});
            return;
        } catch (const YAML::Exception& e) {
            errors.push_back(Diagnostic{cur_->path, 0, 0, std::string("YAML: ") + e.what()});
            return;
        }
        if (root.IsNull()) return;
        if (!root.IsSequence()) {
            error(loc(root), "a rule file must be a list of rule, macro and list items");
            return;
        }
        for (const auto& item : root) {
            try {
                if (!item.IsMap()) {
                    error(loc(item), "expected a rule, macro, list or policy item");
                } else if (item["rule"]) {
                    add_rule(item);
                } else if (item["macro"]) {
                    add_macro(item);
                } else if (item["list"]) {
                    add_list(item);
                } else if (item["policy"]) {
                    add_policy(item);
                } else if (item["required_engine_version"]) {
                    // Accepted for Falco compatibility; nothing to check.
                } else {
                    error(loc(item), "expected a rule, macro, list or policy item");
                }
            } catch (const YAML::Exception& e) {
                error(loc(item), std::string("YAML: ") + e.what());
            }
        }
    }

    // `- policy: NAME` with `vms`, `uuids`, `metadata` and `mode`: the rules after it in this
    // file apply only to the VMs it selects, and never enforce if its mode is monitor.
    void add_policy(const YAML::Node& item) {
        if (!check_keys(item, {"policy", "desc", "vms", "uuids", "metadata", "mode"}, "policy"))
            return;
        auto name = scalar(item["policy"], "policy");
        if (!name) return;
        auto scope = std::make_shared<VmScope>();
        CurrentPolicy p{*name, nullptr, Mode::Enforce};
        if (item["vms"]) {
            auto v = strings(item["vms"], "vms");
            if (!v) return;
            for (const auto& g : *v) {
                if (auto why = detail::glob_error(g); !why.empty()) {
                    error(loc(item["vms"]), "bad glob '" + g + "': " + why);
                    return;
                }
            }
            scope->names = std::move(*v);
        }
        if (item["uuids"]) {
            auto v = strings(item["uuids"], "uuids");
            if (!v) return;
            scope->uuids = std::move(*v);
        }
        if (const auto md = item["metadata"]) {
            if (!md.IsMap()) {
                error(loc(md), "'metadata' must be a mapping of key: glob");
                return;
            }
            for (auto it = md.begin(); it != md.end(); ++it) {
                auto v = scalar(it->second, "metadata value");
                if (!v) return;
                scope->metadata[it->first.Scalar()] = *v;
            }
        }
        if (item["mode"]) {
            auto m = scalar(item["mode"], "mode");
            if (!m) return;
            if (*m != "enforce" && *m != "monitor") {
                error(loc(item["mode"]), "bad mode '" + *m + "' (enforce, monitor)");
                return;
            }
            p.mode = *m == "monitor" ? Mode::Monitor : Mode::Enforce;
        }
        if (!scope->names.empty() || !scope->uuids.empty() || !scope->metadata.empty())
            p.scope = std::move(scope);
        cur_policy_ = std::move(p);
    }

    void add_list(const YAML::Node& item) {
        if (!check_keys(item, {"list", "items", "append", "override"}, "list")) return;
        auto name = scalar(item["list"], "list");
        if (!name) return;
        bool append = false;
        if (item["append"]) {
            auto a = boolean(item["append"], "append");
            if (!a) return;
            append = *a;
        }
        auto ov = overrides(item, {"items"}, {"items"});
        if (!ov) return;
        std::vector<std::string> items;
        if (item["items"]) {
            auto v = strings(item["items"], "items");
            if (!v) return;
            items = std::move(*v);
        } else if (!append) {
            error(loc(item), "list '" + *name + "' has no 'items'");
            return;
        }
        auto it = lists_.find(*name);
        if (append || !ov->empty()) {
            if (it == lists_.end()) {
                error(loc(item["list"]),
                      "cannot append to or override undefined list '" + *name + "'");
                return;
            }
            if (append || (*ov)["items"] == "append") {
                it->second.items.insert(it->second.items.end(), items.begin(), items.end());
            } else {
                it->second.items = std::move(items);
            }
            return;
        }
        if (it != lists_.end()) {
            error(loc(item["list"]), "duplicate list '" + *name + "' (first defined at " +
                                         where(it->second.loc) +
                                         "); use append: true or override:");
            return;
        }
        lists_.emplace(*name, ListDef{std::move(items), loc(item)});
    }

    void add_macro(const YAML::Node& item) {
        if (!check_keys(item, {"macro", "condition", "append", "override"}, "macro")) return;
        auto name = scalar(item["macro"], "macro");
        if (!name) return;
        bool append = false;
        if (item["append"]) {
            auto a = boolean(item["append"], "append");
            if (!a) return;
            append = *a;
        }
        auto ov = overrides(item, {"condition"}, {"condition"});
        if (!ov) return;
        if (!item["condition"]) {
            error(loc(item), "macro '" + *name + "' has no 'condition'");
            return;
        }
        auto cond = scalar(item["condition"], "condition");
        if (!cond) return;
        const Loc cl = loc(item["condition"]);
        auto it = macro_index_.find(*name);
        if (append || !ov->empty()) {
            if (it == macro_index_.end()) {
                error(loc(item["macro"]),
                      "cannot append to or override undefined macro '" + *name + "'");
                return;
            }
            auto& m = macros_[it->second];
            if (append || (*ov)["condition"] == "append") {
                m.cond.append(*cond, cl);
            } else {
                m.cond.set(*cond, cl);
            }
            return;
        }
        if (it != macro_index_.end()) {
            error(loc(item["macro"]), "duplicate macro '" + *name + "' (first defined at " +
                                          where(macros_[it->second].loc) +
                                          "); use append: true or override:");
            return;
        }
        MacroDef m;
        m.name = *name;
        m.cond.set(*cond, cl);
        m.loc = loc(item);
        macro_index_.emplace(*name, macros_.size());
        macros_.push_back(std::move(m));
    }

    std::optional<std::vector<ExceptionDef>> parse_exceptions(const YAML::Node& n) {
        if (!n.IsSequence()) {
            error(loc(n), "'exceptions' must be a list");
            return std::nullopt;
        }
        std::vector<ExceptionDef> out;
        bool ok = true;
        for (const auto& e : n) {
            if (!e.IsMap()) {
                error(loc(e), "an exception must be a mapping with name, fields, comps, values");
                ok = false;
                continue;
            }
            if (!check_keys(e, {"name", "fields", "comps", "values"}, "exception")) {
                ok = false;
                continue;
            }
            ExceptionDef d;
            d.loc = loc(e);
            if (!e["name"]) {
                error(loc(e), "exception has no 'name'");
                ok = false;
                continue;
            }
            auto nm = scalar(e["name"], "name");
            if (!nm) {
                ok = false;
                continue;
            }
            d.name = *nm;
            if (e["fields"]) {
                const auto f = e["fields"];
                std::vector<YAML::Node> fnodes;
                if (f.IsScalar()) {
                    d.single_field = true;
                    fnodes.push_back(f);
                } else if (f.IsSequence()) {
                    for (const auto& x : f) fnodes.push_back(x);
                } else {
                    error(loc(f), "'fields' must be a field or a list of fields");
                    ok = false;
                    continue;
                }
                for (const auto& fn : fnodes) {
                    auto s = scalar(fn, "fields");
                    if (!s) {
                        ok = false;
                        continue;
                    }
                    std::string ferr;
                    auto ref = detail::parse_field_ref(*s, ferr);
                    if (!ref) {
                        error(loc(fn), ferr.empty() ? "unknown field '" + *s + "'" : ferr);
                        ok = false;
                        continue;
                    }
                    d.fields.emplace_back(*ref, loc(fn));
                }
                // comps
                std::vector<YAML::Node> cnodes;
                if (e["comps"]) {
                    const auto c = e["comps"];
                    if (c.IsScalar()) {
                        cnodes.push_back(c);
                    } else if (c.IsSequence()) {
                        for (const auto& x : c) cnodes.push_back(x);
                    }
                    if (cnodes.size() != fnodes.size()) {
                        error(loc(c), "'comps' must have one operator per field");
                        ok = false;
                        continue;
                    }
                }
                for (std::size_t i = 0; i < fnodes.size(); ++i) {
                    if (cnodes.empty()) {
                        d.comps.emplace_back(d.single_field ? Op::In : Op::Eq, loc(fnodes[i]));
                        continue;
                    }
                    auto s = scalar(cnodes[i], "comps");
                    auto op = s ? detail::parse_op(*s) : std::nullopt;
                    if (!op || *op == Op::Exists) {
                        error(loc(cnodes[i]), "bad comparison operator '" + s.value_or("") + "'");
                        ok = false;
                        continue;
                    }
                    d.comps.emplace_back(*op, loc(cnodes[i]));
                }
            }
            if (e["values"]) {
                const auto v = e["values"];
                if (!v.IsSequence()) {
                    error(loc(v), "'values' must be a list");
                    ok = false;
                    continue;
                }
                for (const auto& row : v) {
                    auto cells = parse_row(row, d.single_field || (!e["fields"] && row.IsScalar()));
                    if (!cells) {
                        ok = false;
                        continue;
                    }
                    d.rows.push_back(std::move(*cells));
                }
            }
            out.push_back(std::move(d));
        }
        if (!ok) return std::nullopt;
        return out;
    }

    std::optional<ExcCell> parse_cell(const YAML::Node& n) {
        ExcCell c;
        c.loc = loc(n);
        if (n.IsScalar()) {
            c.items.push_back(n.Scalar());
            return c;
        }
        if (n.IsSequence()) {
            c.seq = true;
            for (const auto& x : n) {
                auto s = scalar(x, "values");
                if (!s) return std::nullopt;
                c.items.push_back(*s);
            }
            return c;
        }
        error(loc(n), "exception value must be a string or a list");
        return std::nullopt;
    }

    std::optional<std::vector<ExcCell>> parse_row(const YAML::Node& row, bool single) {
        std::vector<ExcCell> cells;
        if (single) {
            auto c = parse_cell(row);
            if (!c) return std::nullopt;
            cells.push_back(std::move(*c));
            return cells;
        }
        if (!row.IsSequence()) {
            error(loc(row), "exception values must be lists with one value per field");
            return std::nullopt;
        }
        for (const auto& x : row) {
            auto c = parse_cell(x);
            if (!c) return std::nullopt;
            cells.push_back(std::move(*c));
        }
        return cells;
    }

    bool merge_exceptions(RuleDef& r, std::vector<ExceptionDef> add, bool replace) {
        if (replace) r.exceptions.clear();
        for (auto& e : add) {
            auto it = std::find_if(r.exceptions.begin(), r.exceptions.end(),
                                   [&](const ExceptionDef& x) { return x.name == e.name; });
            if (it == r.exceptions.end()) {
                if (e.fields.empty()) {
                    error(e.loc, "exception '" + e.name + "' has no 'fields'");
                    return false;
                }
                r.exceptions.push_back(std::move(e));
                continue;
            }
            if (!e.fields.empty()) {
                error(e.loc, "appended exception '" + e.name +
                                 "' already exists; give only 'name' and 'values'");
                return false;
            }
            // Rows were parsed without knowing the field form: a single-field exception takes
            // each value as its own row.
            for (auto& row : e.rows) {
                if (it->single_field) {
                    for (auto& cell : row) {
                        if (cell.seq) {
                            for (auto& s : cell.items) {
                                it->rows.push_back({ExcCell{{std::move(s)}, false, cell.loc}});
                            }
                        } else {
                            it->rows.push_back({std::move(cell)});
                        }
                    }
                } else {
                    it->rows.push_back(std::move(row));
                }
            }
        }
        return true;
    }

    // Applies one key of a rule item.
    bool apply_rule_key(RuleDef& r, const std::string& key, const YAML::Node& v, bool append) {
        const Loc l = loc(v);
        if (key == "condition" || key == "output" || key == "desc") {
            auto s = scalar(v, key);
            if (!s) return false;
            if (key == "desc") {
                r.rule.desc = append ? r.rule.desc + " " + *s : *s;
                return true;
            }
            Text& t = key == "condition" ? r.cond : r.output;
            if (append) {
                t.append(*s, l);
            } else {
                t.set(*s, l);
            }
            return true;
        }
        if (key == "tags") {
            auto t = strings(v, "tags");
            if (!t) return false;
            if (!append) r.rule.tags.clear();
            r.rule.tags.insert(r.rule.tags.end(), t->begin(), t->end());
            return true;
        }
        if (key == "exceptions") {
            auto e = parse_exceptions(v);
            if (!e) return false;
            return merge_exceptions(r, std::move(*e), !append);
        }
        if (append) {
            error(l, "'" + key + "' cannot be appended; use override: {" + key + ": replace}");
            return false;
        }
        if (key == "priority") {
            auto s = scalar(v, key);
            if (!s) return false;
            auto p = parse_priority(*s);
            if (!p) {
                error(l, "bad priority '" + *s +
                             "' (emergency, alert, critical, error, warning, notice, "
                             "informational, debug)");
                return false;
            }
            r.rule.priority = *p;
            return true;
        }
        if (key == "enabled") {
            auto b = boolean(v, key);
            if (!b) return false;
            r.rule.enabled = *b;
            return true;
        }
        if (key == "action") {
            auto s = scalar(v, key);
            if (!s) return false;
            for (auto a : {Action::Alert, Action::Deny, Action::PauseVm, Action::DumpMemory}) {
                if (action_name(a) == *s) {
                    r.rule.action = a;
                    return true;
                }
            }
            error(l, "bad action '" + *s + "' (alert, deny, pause_vm, dump_memory)");
            return false;
        }
        if (key == "mode") {
            auto s = scalar(v, key);
            if (!s) return false;
            if (*s == "enforce" || *s == "monitor") {
                r.rule.mode = *s == "enforce" ? Mode::Enforce : Mode::Monitor;
                return true;
            }
            error(l, "bad mode '" + *s + "' (enforce, monitor)");
            return false;
        }
        if (key == "rate_limit") {
            auto s = scalar(v, key);
            if (!s) return false;
            auto rl = parse_rate(*s);
            if (!rl) {
                error(l, "bad rate_limit '" + *s + "' (e.g. 10/s, 100/min, 1000/h)");
                return false;
            }
            r.rule.rate_limit = rl;
            return true;
        }
        if (key == "dedup") {
            auto s = scalar(v, key);
            if (!s) return false;
            auto ns = parse_duration(*s);
            if (!ns) {
                error(l, "bad dedup window '" + *s + "' (e.g. 500ms, 30s, 5min, 1h)");
                return false;
            }
            r.rule.dedup_ns = ns;
            return true;
        }
        error(l, "unknown key '" + key + "'");
        return false;
    }

    static std::optional<std::uint64_t> parse_duration(const std::string& s) {
        std::size_t i = 0;
        std::uint64_t n = 0;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9' && n < 100000000u)
            n = n * 10u + static_cast<std::uint64_t>(s[i++] - '0');
        const std::string unit = s.substr(i);
        std::uint64_t mul = 0;
        if (unit == "ms") mul = 1'000'000ull;
        if (unit == "s") mul = 1'000'000'000ull;
        if (unit == "m" || unit == "min") mul = 60'000'000'000ull;
        if (unit == "h") mul = 3'600'000'000'000ull;
        if (i == 0 || n == 0 || mul == 0) return std::nullopt;
        return n * mul;
    }

    static std::optional<RateLimit> parse_rate(const std::string& s) {
        const auto slash = s.find('/');
        if (slash == std::string::npos || slash == 0) return std::nullopt;
        std::uint32_t n = 0;
        for (std::size_t i = 0; i < slash; ++i) {
            if (s[i] < '0' || s[i] > '9' || n > 100000000u) return std::nullopt;
            n = n * 10u + static_cast<std::uint32_t>(s[i] - '0');
        }
        const std::string unit = s.substr(slash + 1);
        std::uint64_t ns = 0;
        if (unit == "s" || unit == "sec" || unit == "second") {
            ns = 1'000'000'000ull;
        } else if (unit == "m" || unit == "min" || unit == "minute") {
            ns = 60'000'000'000ull;
        } else if (unit == "h" || unit == "hour") {
            ns = 3'600'000'000'000ull;
        } else {
            return std::nullopt;
        }
        if (n == 0) return std::nullopt;
        return RateLimit{n, ns};
    }

    void add_rule(const YAML::Node& item) {
        if (!check_keys(
                item,
                {"rule", "desc", "condition", "output", "priority", "tags", "enabled", "exceptions",
                 "action", "rate_limit", "dedup", "mode", "append", "override"},
                "rule")) {
            return;
        }
        auto name = scalar(item["rule"], "rule");
        if (!name) return;
        bool append = false;
        if (item["append"]) {
            auto a = boolean(item["append"], "append");
            if (!a) return;
            append = *a;
        }
        auto ov = overrides(item, {"condition", "output", "desc", "tags", "exceptions"},
                            {"condition", "output", "desc", "tags", "exceptions", "priority",
                             "enabled", "action", "mode", "rate_limit", "dedup"});
        if (!ov) return;
        std::vector<std::string> keys;
        for (auto it = item.begin(); it != item.end(); ++it) {
            const std::string k = it->first.Scalar();
            if (k != "rule" && k != "append" && k != "override") keys.push_back(k);
        }
        auto it = rule_index_.find(*name);
        if (it == rule_index_.end()) {
            if (append || !ov->empty()) {
                error(loc(item["rule"]),
                      "cannot append to or override undefined rule '" + *name + "'");
                return;
            }
            RuleDef r;
            r.rule.name = *name;
            r.loc = loc(item);
            r.rule.file = cur_->path;
            r.rule.line = item.Mark().line + 1;
            r.rule.policy = cur_policy_.name;
            r.rule.scope = cur_policy_.scope;
            r.policy_mode = cur_policy_.mode;
            bool ok = true;
            for (const char* req : {"condition", "output", "priority"}) {
                if (!item[req]) {
                    error(loc(item["rule"]), "rule '" + *name + "' has no '" + req + "'");
                    ok = false;
                }
            }
            for (const auto& k : keys) ok = apply_rule_key(r, k, item[k], false) && ok;
            // Keep a rule with bad keys (errors are recorded) so its condition is checked too.
            if (!ok && !item["condition"]) return;
            rule_index_.emplace(*name, rules_.size());
            rules_.push_back(std::move(r));
            return;
        }
        RuleDef& r = rules_[it->second];
        if (!append && ov->empty()) {
            if (keys.size() == 1 && keys[0] == "enabled") {
                apply_rule_key(r, "enabled", item["enabled"], false);
                return;
            }
            error(loc(item["rule"]), "duplicate rule '" + *name + "' (first defined at " +
                                         where(r.loc) + "); use append: true or override:");
            return;
        }
        for (const auto& k : keys) {
            bool app = append;
            if (!append) app = (*ov)[k] == "append";
            if (append && k == "enabled") app = false;
            apply_rule_key(r, k, item[k], app);
        }
    }

    // ---- compile ---------------------------------------------------------------------------
    const std::vector<std::string>* expanded_list(std::string_view name, int depth = 0) {
        auto cached = expanded_.find(std::string(name));
        if (cached != expanded_.end()) return &cached->second;
        auto it = lists_.find(std::string(name));
        if (it == lists_.end() || depth > 16) return nullptr;
        std::vector<std::string> out;
        for (const auto& item : it->second.items) {
            const auto* sub = item != name ? expanded_list(item, depth + 1) : nullptr;
            if (sub) {
                out.insert(out.end(), sub->begin(), sub->end());
            } else {
                out.push_back(item);
            }
        }
        return &expanded_.emplace(std::string(name), std::move(out)).first->second;
    }

    CompileEnv env() {
        CompileEnv e;
        e.find_list = [this](std::string_view n) { return expanded_list(n); };
        e.find_macro = [this](std::string_view n, bool& known, std::size_t off,
                              std::size_t len) -> NodePtr {
            auto it = macro_index_.find(std::string(n));
            known = it != macro_index_.end();
            if (!known) return nullptr;
            return macro(it->second, off, len);
        };
        return e;
    }

    NodePtr macro(std::size_t i, std::size_t off, std::size_t len) {
        auto& st = macro_state_[i];
        if (st.state == 2) return st.node;
        if (st.state == 1) {
            std::string chain;
            bool in = false;
            for (auto m : stack_) {
                if (m == i) in = true;
                if (in) chain += macros_[m].name + " -> ";
            }
            chain += macros_[i].name;
            throw CondError{off, len, "macro cycle: " + chain, false};
        }
        st.state = 1;
        stack_.push_back(i);
        NodePtr node;
        try {
            node = detail::compile_condition(macros_[i].cond.text, env());
        } catch (const CondError& e) {
            if (!e.silent) error_in(macros_[i].cond, e.offset, e.len, e.message);
        }
        stack_.pop_back();
        if (node) node = detail::make_memo(std::move(node), static_cast<std::uint32_t>(i));
        macro_state_[i].state = 2;
        macro_state_[i].node = node;
        return node;
    }

    NodePtr compile_exception(const ExceptionDef& d) {
        const CompileEnv e = env();
        std::vector<NodePtr> alts;
        for (const auto& row : d.rows) {
            if (row.size() != d.fields.size()) {
                error(row.empty() ? d.loc : row.front().loc,
                      "exception '" + d.name + "': " + std::to_string(row.size()) + " values for " +
                          std::to_string(d.fields.size()) + " fields");
                return nullptr;
            }
        }
        if (d.single_field) {
            std::vector<ValueItem> items;
            for (const auto& row : d.rows) {
                for (const auto& s : row[0].items) items.push_back(ValueItem{s, false, 0, 0});
            }
            Op op = d.comps[0].first;
            if (op == Op::Eq) op = Op::In;
            try {
                return detail::make_pred(d.fields[0].first, op, items, true, e, 0, 0);
            } catch (const CondError& ce) {
                error(d.loc, "exception '" + d.name + "': " + ce.message);
                return nullptr;
            }
        }
        for (const auto& row : d.rows) {
            NodePtr conj;
            for (std::size_t i = 0; i < row.size(); ++i) {
                const auto& cell = row[i];
                std::vector<ValueItem> items;
                for (const auto& s : cell.items) items.push_back(ValueItem{s, false, 0, 0});
                Op op = d.comps[i].first;
                const bool list = cell.seq || op == Op::In;
                if (cell.seq && op == Op::Eq) op = Op::In;
                NodePtr p;
                try {
                    p = detail::make_pred(d.fields[i].first, op, items, list, e, 0, 0);
                } catch (const CondError& ce) {
                    error(cell.loc, "exception '" + d.name + "': " + ce.message);
                    return nullptr;
                }
                conj = conj ? detail::make_and(conj, p) : p;
            }
            if (conj) alts.push_back(conj);
        }
        if (alts.empty()) {
            auto n = std::make_shared<detail::Node>();
            n->kind = detail::Node::Kind::Const;
            n->value = false;
            return n;
        }
        return detail::make_or(std::move(alts));
    }

    std::optional<std::vector<PolicySet::Impl::OutSeg>> compile_output(const Text& t) {
        std::vector<PolicySet::Impl::OutSeg> out;
        std::string lit;
        const std::string& s = t.text;
        bool ok = true;
        for (std::size_t i = 0; i < s.size(); ++i) {
            if (s[i] != '%') {
                lit += s[i];
                continue;
            }
            if (i + 1 < s.size() && s[i + 1] == '%') {
                lit += '%';
                ++i;
                continue;
            }
            std::size_t j = i + 1;
            while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_' ||
                                    s[j] == '.' || s[j] == '[' || s[j] == ']')) {
                ++j;
            }
            while (j > i + 1 && s[j - 1] == '.') --j;  // "... by %proc.name."
            const std::string name = s.substr(i + 1, j - i - 1);
            std::string ferr;
            auto ref = detail::parse_field_ref(name, ferr);
            if (!ref) {
                error_in(t, i, j - i,
                         ferr.empty() ? "unknown field '" + name + "' in output" : ferr);
                ok = false;
                i = j - 1;
                continue;
            }
            if (!lit.empty()) out.push_back({std::move(lit), std::nullopt});
            lit.clear();
            out.push_back({"", *ref});
            i = j - 1;
        }
        if (!lit.empty()) out.push_back({std::move(lit), std::nullopt});
        if (!ok) return std::nullopt;
        return out;
    }

    const SourceFile* cur_ = nullptr;
    std::vector<std::unique_ptr<SourceFile>> files_;
    std::unordered_map<std::string, ListDef> lists_;
    std::unordered_map<std::string, std::vector<std::string>> expanded_;
    std::vector<MacroDef> macros_;
    std::unordered_map<std::string, std::size_t> macro_index_;
    struct MacroState {
        int state = 0;  // 0 pending, 1 compiling, 2 done
        NodePtr node;
    };
    std::vector<MacroState> macro_state_;
    std::vector<std::size_t> stack_;
    std::vector<RuleDef> rules_;
    std::unordered_map<std::string, std::size_t> rule_index_;
    CurrentPolicy cur_policy_;
};

std::shared_ptr<const PolicySet::Impl> Loader::compile() {
    auto impl = std::make_shared<PolicySet::Impl>();
    impl->memo_slots = macros_.size();
    macro_state_.assign(macros_.size(), MacroState{});
    for (std::size_t i = 0; i < macros_.size(); ++i) macro(i, 0, 0);

    impl->rules.reserve(rules_.size());
    for (const auto& r : rules_) {
        impl->rules.push_back(r.rule);
        if (r.policy_mode == Mode::Monitor) impl->rules.back().mode = Mode::Monitor;
    }

    for (std::size_t i = 0; i < rules_.size(); ++i) {
        const RuleDef& r = rules_[i];
        NodePtr cond;
        try {
            cond = detail::compile_condition(r.cond.text, env());
        } catch (const CondError& e) {
            if (!e.silent) error_in(r.cond, e.offset, e.len, e.message);
        }
        std::vector<NodePtr> excs;
        bool ok = cond != nullptr;
        for (const auto& d : r.exceptions) {
            auto n = compile_exception(d);
            if (!n) ok = false;
            excs.push_back(std::move(n));
        }
        auto out = compile_output(r.output);
        if (!out) ok = false;
        if (!ok || !r.rule.enabled) continue;
        if (!excs.empty()) cond = detail::make_and(cond, detail::make_not(detail::make_or(excs)));
        Rule& rule = impl->rules[i];
        if (rule.action == Action::Deny) {
            auto d = detail::kernel_deny(*cond);
            if (auto* why = std::get_if<std::string>(&d)) {
                error(r.cond.pieces.empty() ? r.loc : r.cond.pieces.front().loc,
                      "rule '" + rule.name + "': action deny: " + *why);
                continue;
            }
            rule.kernel_deny = std::get<KernelDeny>(std::move(d));
        }
        PolicySet::Impl::Compiled c;
        c.rule = &impl->rules[i];
        c.cond = std::move(cond);
        c.output = std::move(*out);
        impl->compiled.push_back(std::move(c));
    }
    impl->index();
    return impl;
}

LoadResult finish(Loader& l) {
    LoadResult res;
    auto impl = l.compile();
    res.errors = std::move(l.errors);
    // File order (as given), then line and column.
    std::vector<std::string> order;
    for (const auto& e : res.errors) {
        if (std::find(order.begin(), order.end(), e.file) == order.end()) order.push_back(e.file);
    }
    auto rank = [&](const Diagnostic& d) {
        return std::find(order.begin(), order.end(), d.file) - order.begin();
    };
    std::stable_sort(res.errors.begin(), res.errors.end(),
                     [&](const Diagnostic& a, const Diagnostic& b) {
                         const auto ra = rank(a), rb = rank(b);
                         if (ra != rb) return ra < rb;
                         if (a.line != b.line) return a.line < b.line;
                         return a.col < b.col;
                     });
    if (res.errors.empty()) res.set.emplace(PolicySet::from_impl(std::move(impl)));
    return res;
}

}  // namespace

LoadResult PolicySet::load(const std::vector<std::filesystem::path>& files) {
    Loader l;
    for (const auto& f : files) l.add_file(f);
    return finish(l);
}

LoadResult PolicySet::load(const std::filesystem::path& file) {
    return load(std::vector<std::filesystem::path>{file});
}

LoadResult PolicySet::load_string(std::string_view yaml, std::string_view name) {
    Loader l;
    l.add_string(yaml, name);
    return finish(l);
}

PolicySet PolicySet::from_impl(std::shared_ptr<const Impl> impl) {
    return PolicySet(std::move(impl));
}

std::vector<Diagnostic> check(const std::vector<std::filesystem::path>& files) {
    return PolicySet::load(files).errors;
}

std::vector<Diagnostic> check(const std::filesystem::path& file) {
    return PolicySet::load(file).errors;
}

}  // namespace policy
