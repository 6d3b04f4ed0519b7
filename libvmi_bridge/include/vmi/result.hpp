// Error model of the bridge: a Fault code plus an optional human-readable detail.
// Hot-path functions return Result<T> instead of throwing; a Fault-only Error does not
// allocate (the empty detail string stays in the small-string buffer).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace vmi {

enum class Fault : std::uint8_t {
    kUnmapped,       // physical address not backed by any memory (no slot, past image end)
    kReadFailed,     // backend I/O failed (process_vm_readv / pread error, short read)
    kNotPresent,     // page-table entry without the present bit
    kReservedBit,    // page-table entry with a reserved bit set
    kNonCanonical,   // virtual address not canonical for the paging mode
    kBadPointer,     // guest pointer fails a sanity check (NULL, user half, ...)
    kLimitExceeded,  // a bounded walk hit its limit (list too long, buffer too large)
    kCycle,          // a list loops without returning to its head
    kNotFound,       // symbol / type / member / mapping absent
    kInvalidFormat,  // malformed input (BTF, System.map, arguments)
    kIo,             // host-side file error
};

/// Short stable name of a fault, for logs.
std::string_view to_string(Fault f) noexcept;

struct Error {
    Fault fault;
    std::string detail;  // optional context, e.g. "task_struct.comm" or "System.map:12"

    /// "fault-name: detail" (or just the fault name).
    [[nodiscard]] std::string message() const;
};

/// Either a value or an Error. Minimal stand-in for C++23 std::expected.
template <class T>
class [[nodiscard]] Result {
  public:
    Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
    Result(Error err) : v_(std::in_place_index<1>, std::move(err)) {}  // NOLINT
    Result(Fault f) : v_(std::in_place_index<1>, Error{f, {}}) {}      // NOLINT

    [[nodiscard]] bool ok() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }

    /// Precondition: ok().
    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    /// Precondition: !ok().
    [[nodiscard]] const Error& error() const& { return std::get<1>(v_); }
    Error&& error() && { return std::get<1>(std::move(v_)); }
    [[nodiscard]] Fault fault() const { return error().fault; }

    T value_or(T fallback) const& { return ok() ? value() : std::move(fallback); }

  private:
    std::variant<T, Error> v_;
};

/// Success-or-error with no value.
template <>
class [[nodiscard]] Result<void> {
  public:
    Result() = default;
    Result(Error err) : err_(std::move(err)), ok_(false) {}  // NOLINT
    Result(Fault f) : err_{f, {}}, ok_(false) {}             // NOLINT

    [[nodiscard]] bool ok() const noexcept { return ok_; }
    explicit operator bool() const noexcept { return ok_; }
    [[nodiscard]] const Error& error() const& { return err_; }
    Error&& error() && { return std::move(err_); }
    [[nodiscard]] Fault fault() const { return err_.fault; }

  private:
    Error err_{Fault::kNotFound, {}};  // meaningless while ok_
    bool ok_ = true;
};

using Status = Result<void>;

}  // namespace vmi
