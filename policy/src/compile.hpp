// Internal: fields, compiled condition trees, condition parser.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
// GCC 12 reports a false -Wmaybe-uninitialized inside <regex> in sanitizer builds.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <regex>
#pragma GCC diagnostic pop
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "policy/event.hpp"

namespace policy::detail {

enum class FieldType : std::uint8_t { String, Number };

enum class FieldId : std::uint8_t {
    VmName,
    VmUuid,
    EvtType,
    ProcPid,
    ProcPpid,
    ProcName,
    ProcExe,
    ProcCmdline,
    ProcArgs,
    ProcUid,
    ProcEuid,
    ProcGid,
    ProcPname,
    ProcPexe,
    ProcAname,
    ProcEntityId,
    ProcPreviousName,
    SysName,
    SysNr,
    SysPath,
    SysAddr,
    SysPort,
    SysFlags,
    SysArg,
    TamperKind,
    TamperTarget,
    TamperName,
    TamperSymbol,
    TamperExpected,
    TamperActual,
};

struct FieldDef {
    std::string_view name;
    FieldId id;
    FieldType type;  // element type for list fields
    bool list;       // proc.args, proc.aname, syscall.arg: indexable with [n]
    bool index_required;
    int min_index;
};

const FieldDef* find_field(std::string_view name) noexcept;

struct FieldRef {
    const FieldDef* def = nullptr;
    int index = -1;  // list element; -1 = any element (list fields)
    FieldType type() const noexcept { return def->type; }
    bool multi() const noexcept { return def->list && index < 0; }
};

// Parses "proc.aname[2]" etc. Returns nullopt and sets `error` when the name is a field name
// with a bad index; returns nullopt with empty error when the name is not a field.
std::optional<FieldRef> parse_field_ref(std::string_view text, std::string& error);

enum class Op : std::uint8_t {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    BitAnd,
    In,
    Contains,
    IContains,
    StartsWith,
    EndsWith,
    Glob,
    Regex,
    Exists,
};
std::string_view op_name(Op op) noexcept;
std::optional<Op> parse_op(std::string_view word) noexcept;

struct SvHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
        return std::hash<std::string_view>{}(s);
    }
};
using StringSet = std::unordered_set<std::string, SvHash, std::equal_to<>>;

bool glob_match(std::string_view pattern, std::string_view text) noexcept;
// Empty string if the pattern is well formed.
std::string glob_error(std::string_view pattern);

struct Pred {
    FieldRef field;
    Op op = Op::Exists;
    std::vector<std::string> strs;  // needles (lower case for icontains)
    StringSet set;                  // Op::In on strings with many values
    std::vector<std::int64_t> nums;
    std::int64_t mask = 0;
    std::vector<std::regex> regexes;
    std::vector<std::string> glob_prefixes;  // literal prefix of each glob (fast reject)
    std::uint32_t type_mask = 0;             // evt.type predicates: accepted types

    bool test(const Event& e) const;
    bool test_str(std::string_view v) const;
    bool test_num(std::int64_t v) const;
};

struct Node {
    // Memo: a macro's root; its value is computed once per event and shared by every rule
    // that uses the macro (slot indexes the per-evaluation memo table).
    enum class Kind : std::uint8_t { And, Or, Not, Pred, Const, Memo };
    Kind kind = Kind::Const;
    bool value = false;
    std::uint32_t slot = 0;
    std::vector<std::shared_ptr<const Node>> kids;
    std::unique_ptr<Pred> pred;
};
using NodePtr = std::shared_ptr<const Node>;

// Per-evaluation memo of macro values: 0 unknown, 1 false, 2 true.
struct Memo {
    std::vector<std::uint8_t> state;
    void reset(std::size_t slots) { state.assign(slots, 0); }
};

bool eval(const Node& n, const Event& e, Memo& memo);
NodePtr make_memo(NodePtr inner, std::uint32_t slot);
// Bit i set when the condition may match an event of type i.
std::uint32_t type_mask(const Node& n);
// syscall.name values the condition requires (nullopt: any, or no constraint found).
std::optional<std::vector<std::string>> syscall_names(const Node& n);
inline constexpr std::uint32_t kAllTypes = (1u << kEventTypeCount) - 1;

std::optional<std::string_view> get_str(const Event& e, const FieldRef& f) noexcept;
std::optional<std::int64_t> get_num(const Event& e, const FieldRef& f) noexcept;
// Rendered value for outputs ("<NA>" when unset).
std::string render_field(const Event& e, const FieldRef& f);

// Error raised while compiling a condition; offset/len index the condition text.
struct CondError {
    std::size_t offset = 0;
    std::size_t len = 0;
    std::string message;
    bool silent = false;  // already reported elsewhere (e.g. inside a macro)
};

// A value as written in a condition or an exception: quoted values are never list names.
struct ValueItem {
    std::string text;
    bool quoted = false;
    std::size_t offset = 0;
    std::size_t len = 0;
};

struct CompileEnv {
    // Expands a list name into its items; nullptr if no such list.
    std::function<const std::vector<std::string>*(std::string_view)> find_list;
    // Resolves a macro; returns nullptr node + sets `known` false if no such macro; throws
    // CondError for cycles; returns nullptr with known=true if the macro failed to compile.
    std::function<NodePtr(std::string_view, bool& known, std::size_t offset, std::size_t len)>
        find_macro;
};

// Builds a predicate node; throws CondError (offsets of the field/value items) on type errors.
NodePtr make_pred(const FieldRef& field, Op op, const std::vector<ValueItem>& values,
                  bool value_list, const CompileEnv& env, std::size_t op_offset,
                  std::size_t op_len);

NodePtr compile_condition(std::string_view text, const CompileEnv& env);

NodePtr make_and(NodePtr a, NodePtr b);
NodePtr make_or(std::vector<NodePtr> kids);
NodePtr make_not(NodePtr a);

}  // namespace policy::detail
