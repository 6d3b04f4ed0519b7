#include "event_sink.hpp"

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace vmid {

JsonLineSink::JsonLineSink(const std::string& path) : out_(stdout), owned_(false) {
    if (path != "-") {
        out_ = std::fopen(path.c_str(), "ae");
        if (!out_)
            throw std::runtime_error("cannot open event output " + path + ": " +
                                     std::strerror(errno));
        owned_ = true;
    }
}

JsonLineSink::~JsonLineSink() {
    if (owned_) std::fclose(out_);
}

void JsonLineSink::emit(const nlohmann::json& event) {
    const std::string line = event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::fwrite(line.data(), 1, line.size(), out_);
    std::fputc('\n', out_);
    std::fflush(out_);
}

}  // namespace vmid
