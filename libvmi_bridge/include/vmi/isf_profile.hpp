// Struct layouts and symbols of a guest kernel from a Volatility 3 ISF profile (the JSON that
// dwarf2json writes from a vmlinux with DWARF): the fallback for kernels built without BTF.
//
// Format (schema 6.x): an object with "metadata" {"format": "6.2.0", ...}, "base_types"
// {name: {size, signed, kind, endian}}, "user_types" {name: {kind: struct|union|class, size,
// fields: {name: {offset, type, anonymous?}}}}, "enums" {name: {size, base, constants}} and
// "symbols" {name: {address, type?, ...}}. A type descriptor is {"kind": "pointer", "subtype"},
// {"kind": "base", "name"}, {"kind": "array", "count", "subtype"}, {"kind": "struct"|"union"|
// "class", "name"}, {"kind": "enum", "name"}, {"kind": "function"} or {"kind": "bitfield",
// "bit_position", "bit_length", "type"}. Anonymous struct/union members (dwarf2json names them
// "unnamed_field_*" with "anonymous": true) are searched like BTF's nameless members.
//
// The file is hostile input: its size and JSON nesting are capped before parsing, then every
// element is validated (required keys, JSON types, unsigned integers within bounds); errors are
// kInvalidFormat / kLimitExceeded naming the JSON path ("$.user_types.cred.fields.uid.offset").
// Lookups are bounded in depth and visits, and a struct that contains itself through anonymous
// members is kCycle. Unknown keys are ignored (forward compatibility with newer producers).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmi/result.hpp"
#include "vmi/type_layout.hpp"

namespace vmi {

/// Bounds on what an ISF file can make the parser read or keep.
inline constexpr std::uint64_t kMaxIsfFileSize = 128ULL << 20;  // a whole kernel's: tens of MiB
inline constexpr std::size_t kMaxIsfNesting = 64;               // JSON arrays/objects deep
inline constexpr std::uint64_t kMaxIsfTypeSize = 16ULL << 20;   // struct size, offset, array

namespace detail {
struct IsfData;  // the validated profile; defined in isf_profile.cpp
}  // namespace detail

class IsfProfile final : public TypeLayout {
  public:
    /// Reads and parses `path`: kIo if unreadable, kLimitExceeded above kMaxIsfFileSize.
    static Result<IsfProfile> from_file(const std::string& path);
    /// Parses ISF text; `source_name` starts error messages.
    static Result<IsfProfile> parse(std::string_view text, std::string_view source_name = "ISF");

    IsfProfile(IsfProfile&&) noexcept;
    IsfProfile& operator=(IsfProfile&&) noexcept;
    ~IsfProfile() override;

    [[nodiscard]] Result<std::uint64_t> struct_size(std::string_view struct_name) const override;
    /// Errors: kNotFound naming "struct.member", kInvalidFormat for a bitfield or a type that
    /// cannot be sized (function, missing base type), kCycle, kLimitExceeded.
    [[nodiscard]] Result<MemberInfo> member(std::string_view struct_name,
                                            std::string_view member_name) const override;
    /// Fields of kind pointer whose subtype is a function.
    [[nodiscard]] Result<std::vector<NamedMember>> function_pointers(
        std::string_view struct_name) const override;
    /// From the symbols: x86-64 links per-CPU variables at small offsets.
    [[nodiscard]] std::optional<std::uint64_t> percpu_variable(
        std::string_view name) const override;
    /// All offsets the Linux model needs (linux_offsets_from()).
    [[nodiscard]] Result<LinuxOffsets> linux_offsets() const { return linux_offsets_from(*this); }

    /// Link-time (unslid) address of a symbol; add the KASLR slide for the running guest.
    [[nodiscard]] std::optional<std::uint64_t> symbol(std::string_view name) const;
    [[nodiscard]] std::size_t symbol_count() const noexcept;
    /// FNV-1a 64 of the ISF text: identifies the kernel build (profile cache key).
    [[nodiscard]] std::uint64_t hash() const noexcept;

  private:
    explicit IsfProfile(std::unique_ptr<detail::IsfData> d);
    std::unique_ptr<detail::IsfData> d_;
};

}  // namespace vmi
