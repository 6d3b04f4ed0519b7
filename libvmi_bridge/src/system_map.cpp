#include "vmi/system_map.hpp"

#include <cctype>
#include <charconv>
#include <fstream>
#include <vector>

namespace vmi {

namespace {

// Splits on spaces/tabs; returns at most 5 tokens (more means malformed anyway).
std::vector<std::string_view> tokens(std::string_view line) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < line.size() && out.size() < 5) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
        std::size_t j = i;
        while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
        if (j > i) out.push_back(line.substr(i, j - i));
        i = j;
    }
    return out;
}

Error malformed(std::string_view source, std::size_t lineno, std::string_view why) {
    return Error{Fault::kInvalidFormat,
                 std::string(source) + ":" + std::to_string(lineno) + ": " + std::string(why)};
}

}  // namespace

Result<SystemMap> SystemMap::parse(std::string_view text, std::string_view source_name) {
    SystemMap map;
    std::size_t lineno = 0;
    while (!text.empty()) {
        ++lineno;
        const std::size_t nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

        const auto tok = tokens(line);
        if (tok.empty()) continue;
        if (tok.size() < 3)
            return malformed(source_name, lineno, "expected '<address> <type> <name>'");
        if (tok.size() > 4 || (tok.size() == 4 && tok[3].front() != '[')) {
            return malformed(source_name, lineno, "trailing garbage");
        }
        std::uint64_t addr = 0;
        const auto [ptr, ec] =
            std::from_chars(tok[0].data(), tok[0].data() + tok[0].size(), addr, 16);
        if (ec != std::errc{} || ptr != tok[0].data() + tok[0].size()) {
            return malformed(source_name, lineno, "bad address '" + std::string(tok[0]) + "'");
        }
        if (tok[1].size() != 1 || std::isalpha(static_cast<unsigned char>(tok[1][0])) == 0) {
            return malformed(source_name, lineno, "bad symbol type '" + std::string(tok[1]) + "'");
        }
        map.symbols_.try_emplace(std::string(tok[2]), addr);
    }
    return map;
}

Result<SystemMap> SystemMap::load(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Error{Fault::kIo, "cannot open " + path};
    in.seekg(0, std::ios::end);
    const auto end = in.tellg();
    if (end < 0) return Error{Fault::kIo, "cannot size " + path};
    if (static_cast<std::uint64_t>(end) > kMaxFileSize) {
        return Error{Fault::kLimitExceeded, path + " is larger than the System.map limit"};
    }
    in.seekg(0, std::ios::beg);
    std::string text(static_cast<std::size_t>(end), '\0');
    if (!in.read(text.data(), static_cast<std::streamsize>(text.size()))) {
        return Error{Fault::kIo, "cannot read " + path};
    }
    return parse(text, path);
}

std::optional<std::uint64_t> SystemMap::lookup(std::string_view name) const {
    // unordered_map<std::string> has no heterogeneous find without a custom hash; symbols are
    // looked up at setup time only, so the temporary string is fine.
    auto it = symbols_.find(std::string(name));
    if (it == symbols_.end()) return std::nullopt;
    return it->second;
}

}  // namespace vmi
