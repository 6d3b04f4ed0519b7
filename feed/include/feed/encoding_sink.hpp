// A sink that encodes each spool record before the inner sink sends it. Records are binary
// event records (feed/record.hpp), decoded without a JSON parse and written straight out;
// JSON text from older spools is parsed as before. Records the encoding skips (Falco: not an
// alert) count as delivered; a record that does not decode is sent as a "record-unreadable"
// event in its place, with its id, so the loss shows in the receiver.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "feed/encode.hpp"
#include "feed/record.hpp"
#include "feed/sink.hpp"

namespace feed {

class EncodingSink final : public Sink {
  public:
    EncodingSink(std::unique_ptr<Sink> inner, Encoding enc, EncodeContext ctx);
    [[nodiscard]] std::string_view kind() const override { return inner_->kind(); }
    SendResult send(const Delivery& d) override;
    /// Encodes every record of `d` into `p` (the worker's read-ahead thread does this).
    bool prepare(const Delivery& d, PreparedBatch& p) override;
    SendResult send_prepared(const Delivery& d, const PreparedBatch& p) override;

    /// One record as this sink's encoding; false if it skips it. `out` is appended to.
    bool encode_one(std::string_view spool_id, const RecordView& r, std::string& out);

  private:
    std::unique_ptr<Sink> inner_;
    Encoding enc_;
    EncodeContext ctx_;
    // Reused from batch to batch: no allocation per record once warm. view_ and id_ are
    // prepare()'s, own_ is send()'s (prepare, then send_prepared, on one thread).
    record::View view_;
    std::string id_;
    PreparedBatch own_;
};

}  // namespace feed
