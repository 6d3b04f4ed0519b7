// Kernel symbol table from a System.map file ("ffffffff81000000 T _text").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "vmi/result.hpp"

namespace vmi {

class SystemMap {
  public:
    /// Reads and parses `path`. kIo if unreadable; kInvalidFormat naming "path:line" for a
    /// malformed line. Files above kMaxFileSize are rejected (kLimitExceeded).
    static Result<SystemMap> load(const std::string& path);

    /// Parses text already in memory; `source_name` is used in error messages.
    /// Accepted line: <hex address> <one-letter type> <name> [optional "[module]"].
    /// Blank lines are skipped. For duplicate names the first occurrence wins.
    static Result<SystemMap> parse(std::string_view text, std::string_view source_name);

    static constexpr std::size_t kMaxFileSize = 256U << 20;

    /// Unslid address of `name`, if present.
    [[nodiscard]] std::optional<std::uint64_t> lookup(std::string_view name) const;
    [[nodiscard]] std::size_t size() const noexcept { return symbols_.size(); }

  private:
    std::unordered_map<std::string, std::uint64_t> symbols_;
};

}  // namespace vmi
