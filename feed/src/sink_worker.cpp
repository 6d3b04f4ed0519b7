#include <algorithm>
#include <condition_variable>

#include "feed/sink.hpp"

namespace feed {

SinkWorker::SinkWorker(Spool& spool, std::string name, std::unique_ptr<Sink> sink,
                       WorkerOptions opts, StateChange on_state)
    : spool_(spool), sink_(std::move(sink)), opts_(opts), on_state_(std::move(on_state)) {
    st_.name = std::move(name);
    st_.kind = std::string(sink_->kind());
    st_.cursor = spool_.cursor(st_.name);
    thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
}

SinkWorker::~SinkWorker() {
    thread_.request_stop();
    spool_.wake_all();
    if (thread_.joinable()) thread_.join();
}

SinkStatus SinkWorker::status() const {
    std::lock_guard lk(mu_);
    SinkStatus s = st_;
    const std::uint64_t next = spool_.next_seq();
    s.backlog = next > s.cursor ? next - s.cursor : 0;
    return s;
}

bool SinkWorker::drain(std::chrono::milliseconds timeout) const {
    const std::uint64_t target = spool_.next_seq();
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
        {
            std::lock_guard lk(mu_);
            if (st_.cursor >= target) return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
}

void SinkWorker::run(const std::stop_token& stop) {
    std::chrono::milliseconds backoff = opts_.backoff_min;
    std::mutex sleep_mu;
    std::condition_variable_any sleep_cv;
    const auto pause = [&](std::chrono::milliseconds d) {
        std::unique_lock lk(sleep_mu);
        sleep_cv.wait_for(lk, stop, d, [] { return false; });
    };
    std::uint64_t cursor = spool_.cursor(st_.name);
    std::vector<SpoolRecord> records;  // reused from batch to batch, payloads and all
    std::vector<RecordView> views;
    while (!stop.stop_requested()) {
        // The cap may have purged records this sink still needed: start after them.
        cursor = std::max(cursor, spool_.cursor(st_.name));
        const std::size_t n = spool_.read(cursor, opts_.batch_records, opts_.batch_bytes, records);
        views.resize(n);
        for (std::size_t i = 0; i < n; ++i) views[i] = {records[i].seq, records[i].payload};
        const std::span<const RecordView> batch(views);
        if (batch.empty()) {
            spool_.wait_for(cursor, opts_.idle_wait);
            continue;
        }
        const SendResult r = sink_->send(Delivery{spool_.id(), batch, {}});
        const std::size_t done = std::min(batch.size(), r.accepted + r.rejected);
        if (done) {
            cursor = batch[done - 1].seq + 1;
            spool_.commit(st_.name, cursor);
        }
        bool changed = false;
        SinkStatus snapshot;
        {
            std::lock_guard lk(mu_);
            st_.cursor = cursor;
            st_.delivered += r.accepted;
            st_.rejected += r.rejected;
            ++st_.batches;
            const bool ok = r.error.empty();
            if (!ok) {
                ++st_.failures;
                st_.last_error = r.error;
            }
            changed = ok != st_.up;
            st_.up = ok;
            snapshot = st_;
        }
        if (changed && on_state_) on_state_(snapshot);
        if (r.error.empty()) {
            backoff = opts_.backoff_min;
            continue;
        }
        // Retry what is left after a pause: the receiver's if it asked, else doubling.
        // (A receiver's Retry-After is honoured past our own ceiling, up to ten minutes.)
        pause(r.retry_after
                  ? std::min<std::chrono::milliseconds>(*r.retry_after, std::chrono::minutes(10))
                  : backoff);
        backoff = std::min(backoff * 2, opts_.backoff_max);
    }
}

}  // namespace feed
