// Where events go. v0 writes JSON lines; sinks with queues and spools come later.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace vmid {

class EventSink {
  public:
    virtual ~EventSink() = default;
    virtual void emit(const nlohmann::json& event) = 0;
};

/// One JSON object per line, flushed per line so a reader tailing the file sees it at once.
/// Guest strings may hold any bytes: invalid UTF-8 is replaced, never allowed to break a line.
/// Every event to each of several sinks, in order.
class TeeSink final : public EventSink {
  public:
    void add(EventSink& s) { sinks_.push_back(&s); }
    void emit(const nlohmann::json& event) override {
        for (EventSink* s : sinks_) s->emit(event);
    }

  private:
    std::vector<EventSink*> sinks_;  // not owned
};

/// Names the VM in every event (vm.uuid where the producer gave only the name).
class VmStampSink final : public EventSink {
  public:
    VmStampSink(EventSink& next, std::string uuid) : next_(next), uuid_(std::move(uuid)) {}
    void emit(const nlohmann::json& event) override {
        if (uuid_.empty() || !event.contains("vm") || event["vm"].contains("uuid")) {
            next_.emit(event);
            return;
        }
        nlohmann::json ev = event;
        ev["vm"]["uuid"] = uuid_;
        next_.emit(ev);
    }

  private:
    EventSink& next_;
    std::string uuid_;
};

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
