#include "feed/encoding_sink.hpp"

#include <algorithm>

#include "feed/record_json.hpp"

namespace feed {
using json = nlohmann::json;

EncodingSink::EncodingSink(std::unique_ptr<Sink> inner, Encoding enc, EncodeContext ctx)
    : inner_(std::move(inner)), enc_(enc), ctx_(std::move(ctx)) {}

bool EncodingSink::encode_one(std::string_view spool_id, const RecordView& r, std::string& out) {
    id_.assign(spool_id);
    id_ += '-';
    record::append_uint(id_, r.seq);
    if (record::is_record(r.payload)) {
        if (view_.decode(r.payload)) return encode_record(enc_, view_, id_, r.seq, ctx_, out);
        // Damaged on disk yet past its CRC: say so in its place rather than send garbage.
        const json gone = {{"event",
                            {{"kind", "event"},
                             {"category", "host"},
                             {"action", "record-unreadable"},
                             {"reason", view_.error()}}}};
        auto line = encode(enc_, gone, id_, r.seq, ctx_);
        if (line) out += *line;
        return line.has_value();
    }
    // JSON text, from a spool written before records existed.
    const json native = json::parse(r.payload, nullptr, false);
    if (native.is_discarded()) {
        out += r.payload;
        return true;
    }
    auto line = encode(enc_, native, id_, r.seq, ctx_);
    if (line) out += *line;
    return line.has_value();
}

SendResult EncodingSink::send(const Delivery& d) {
    // Every encoded record into one buffer, newline after each: views of it for sinks that
    // take records one by one, the whole for sinks that write lines.
    lines_.clear();
    ends_.clear();
    origin_.clear();
    for (std::size_t i = 0; i < d.records.size(); ++i) {
        const std::size_t start = lines_.size();
        if (!encode_one(d.spool_id, d.records[i], lines_)) {  // skipped
            lines_.resize(start);
            continue;
        }
        ends_.push_back(lines_.size());
        lines_ += '\n';
        origin_.push_back(i);
    }
    // Views only now: lines_ may have moved while it grew.
    const std::size_t n = origin_.size();
    encoded_.resize(n);
    for (std::size_t i = 0, start = 0; i < n; start = ends_[i] + 1, ++i)
        encoded_[i] = {d.records[origin_[i]].seq,
                       std::string_view(lines_).substr(start, ends_[i] - start)};
    SendResult res;
    if (n) res = inner_->send(Delivery{d.spool_id, encoded_, lines_});
    // Map back: everything up to the last encoded record handled, plus skipped ones after it.
    const std::size_t handled = res.accepted + res.rejected;
    std::size_t upto = 0;
    if (handled == n)
        upto = d.records.size();
    else if (handled > 0)
        upto = origin_[handled - 1] + 1;
    SendResult out = res;
    out.rejected = std::min(res.rejected, upto);
    out.accepted = upto - out.rejected;
    return out;
}

}  // namespace feed
