// Where events go. v0 writes JSON lines; sinks with queues and spools come later.
#pragma once

#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

namespace vmid {

class EventSink {
  public:
    virtual ~EventSink() = default;
    virtual void emit(const nlohmann::json& event) = 0;
};

/// One JSON object per line, flushed per line so a reader tailing the file sees it at once.
/// Guest strings may hold any bytes: invalid UTF-8 is replaced, never allowed to break a line.
class JsonLineSink final : public EventSink {
  public:
    /// `path` "-" is standard output.
    explicit JsonLineSink(const std::string& path);
    ~JsonLineSink() override;
    JsonLineSink(const JsonLineSink&) = delete;
    JsonLineSink& operator=(const JsonLineSink&) = delete;
    void emit(const nlohmann::json& event) override;

  private:
    std::FILE* out_;
    bool owned_;
};

}  // namespace vmid
