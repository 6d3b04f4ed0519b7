// Events as JSON lines in a file, acknowledged once fdatasync'd. Rotation by size or age:
// the file is renamed to FILE.<UTC time>.<nnnn> and compressed to .gz; the oldest beyond `keep`
// are deleted.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

#include "feed/fd.hpp"
#include "feed/sink.hpp"

namespace feed {

struct FileSinkOptions {
    std::filesystem::path path;
    std::uint64_t rotate_bytes = 256ULL << 20;  // 0: never by size
    std::chrono::seconds rotate_age{0};         // 0: never by age
    unsigned keep = 10;                         // rotated files kept
    bool compress = true;
};

class FileSink final : public Sink {
  public:
    /// Throws std::runtime_error naming the path if it cannot be opened.
    explicit FileSink(FileSinkOptions opts);
    [[nodiscard]] std::string_view kind() const override { return "file"; }
    SendResult send(const Delivery& d) override;

  private:
    void open();
    std::string rotate();  // empty, or what went wrong
    FileSinkOptions opts_;
    Fd fd_;
    std::uint64_t size_ = 0;
    std::chrono::system_clock::time_point opened_;
    std::string buf_;  // a batch's lines gathered, when not handed over whole; reused
};

}  // namespace feed
