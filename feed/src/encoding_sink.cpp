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

bool EncodingSink::prepare(const Delivery& d, PreparedBatch& p) {
    // Every encoded record into one buffer, newline after each: views of it for sinks that
    // take records one by one, the whole for sinks that write lines.
    p.lines.clear();
    p.ends.clear();
    p.origin.clear();
    for (std::size_t i = 0; i < d.records.size(); ++i) {
        const std::size_t start = p.lines.size();
        if (!encode_one(d.spool_id, d.records[i], p.lines)) {  // skipped
            p.lines.resize(start);
            continue;
        }
        p.ends.push_back(p.lines.size());
        p.lines += '\n';
        p.origin.push_back(i);
    }
    // Views only now: lines may have moved while it grew.
    const std::size_t n = p.origin.size();
    p.records.resize(n);
    for (std::size_t i = 0, start = 0; i < n; start = p.ends[i] + 1, ++i)
        p.records[i] = {d.records[p.origin[i]].seq,
                        std::string_view(p.lines).substr(start, p.ends[i] - start)};
    return true;
}

SendResult EncodingSink::send_prepared(const Delivery& d, const PreparedBatch& p) {
    const std::size_t n = p.records.size();
    SendResult res;
    if (n) res = inner_->send(Delivery{d.spool_id, p.records, p.lines});
    // Map back: everything up to the last encoded record handled, plus skipped ones after it.
    const std::size_t handled = res.accepted + res.rejected;
    std::size_t upto = 0;
    if (handled == n)
        upto = d.records.size();
    else if (handled > 0)
        upto = p.origin[handled - 1] + 1;
    SendResult out = res;
    out.rejected = std::min(res.rejected, upto);
    out.accepted = upto - out.rejected;
    return out;
}

SendResult EncodingSink::send(const Delivery& d) {
    prepare(d, own_);
    return send_prepared(d, own_);
}

}  // namespace feed
