// Struct layout of the guest kernel from its BTF (CONFIG_DEBUG_INFO_BTF): no per-kernel
// profile file needed. The Linux offsets themselves are derived in type_layout.hpp.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vmi/result.hpp"
#include "vmi/type_layout.hpp"

struct btf;  // libbpf; kept out of the public interface

namespace vmi {

class BtfProfile final : public TypeLayout {
  public:
    /// Parses an ELF vmlinux with a .BTF section or a raw BTF file (e.g. /sys/kernel/btf/vmlinux).
    static Result<BtfProfile> from_file(const std::string& path);
    /// Parses a raw BTF blob (magic 0xEB9F), e.g. one copied out of guest memory.
    static Result<BtfProfile> from_blob(std::span<const std::byte> blob);

    /// Struct size in bytes; kNotFound if no struct of that name.
    [[nodiscard]] Result<std::uint64_t> struct_size(std::string_view struct_name) const override;

    /// Finds `member` in struct `struct_name`, descending into anonymous struct/union members
    /// (bounded depth and member visits -> kLimitExceeded). kNotFound errors name
    /// "struct.member"; bitfield members are kInvalidFormat (not byte addressable).
    [[nodiscard]] Result<MemberInfo> member(std::string_view struct_name,
                                            std::string_view member_name) const override;

    /// Function-pointer members of a struct (PTR -> FUNC_PROTO through typedefs/modifiers).
    [[nodiscard]] Result<std::vector<NamedMember>> function_pointers(
        std::string_view struct_name) const override;
    /// All offsets the Linux model needs (linux_offsets_from()).
    [[nodiscard]] Result<LinuxOffsets> linux_offsets() const { return linux_offsets_from(*this); }
    /// From the BTF DATASEC ".data..percpu" (pahole lists per-CPU variables there).
    [[nodiscard]] std::optional<std::uint64_t> percpu_variable(
        std::string_view name) const override;
    /// Fills the module group of `o` (module_offsets_from()).
    void module_offsets(LinuxOffsets& o) const { module_offsets_from(*this, o); }
    /// FNV-1a 64 of the raw BTF (the same value for a file and the blob in guest memory).
    [[nodiscard]] std::uint64_t hash() const;

  private:
    struct BtfDeleter {
        void operator()(struct btf* b) const noexcept;
    };
    explicit BtfProfile(std::unique_ptr<struct btf, BtfDeleter> b) : btf_(std::move(b)) {}

    std::unique_ptr<struct btf, BtfDeleter> btf_;
};

}  // namespace vmi
