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
    read_from_ = st_.cursor;
    for (Slot& s : slots_) free_.push_back(&s);
    reader_ = std::jthread([this](std::stop_token stop) { read_ahead(stop); });
    thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
}

SinkWorker::~SinkWorker() {
    thread_.request_stop();
    reader_.request_stop();
    spool_.wake_all();
    if (thread_.joinable()) thread_.join();
    if (reader_.joinable()) reader_.join();
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

void SinkWorker::read_ahead(const std::stop_token& stop) {
    while (!stop.stop_requested()) {
        Slot* s = nullptr;
        std::uint64_t from = 0, generation = 0;
        {
            std::unique_lock lk(pipe_mu_);
            if (!pipe_cv_.wait(lk, stop, [&] { return !free_.empty(); })) return;
            s = free_.back();
            free_.pop_back();
            from = read_from_;
            generation = generation_;
        }
        std::size_t n = 0;
        std::string failed;
        try {
            n = spool_.read(from, opts_.batch_records, opts_.batch_bytes, s->records);
            s->views.resize(n);
            for (std::size_t i = 0; i < n; ++i)
                s->views[i] = {s->records[i].seq, s->records[i].payload};
            if (n)
                s->is_prepared = sink_->prepare(Delivery{spool_.id(), s->views, {}}, s->prepared);
        } catch (const std::exception& e) {
            // The spool could not be read (no file descriptors, a damaged segment) or the
            // batch not encoded (no memory): reported, and tried again after a pause.
            failed = e.what();
        }
        if (!failed.empty()) {
            {
                std::lock_guard lk(mu_);
                st_.last_error = "reading the spool: " + failed;
            }
            std::unique_lock lk(pipe_mu_);
            free_.push_back(s);
            pipe_cv_.wait_for(lk, stop, opts_.backoff_min, [] { return false; });
            continue;
        }
        {
            std::lock_guard lk(pipe_mu_);
            if (n && generation == generation_) {
                ready_.push_back(s);
                read_from_ = s->views.back().seq + 1;
            } else {
                free_.push_back(s);  // nothing new, or read before a restart: dropped
            }
        }
        pipe_cv_.notify_all();
        if (!n) spool_.wait_for(from, opts_.idle_wait);
    }
}

// Drops what was read ahead and reads again from `seq` (after a failed send, or a purge).
void SinkWorker::restart_from(std::uint64_t seq, Slot* held) {
    {
        std::lock_guard lk(pipe_mu_);
        ++generation_;
        read_from_ = seq;
        for (Slot* s : ready_) free_.push_back(s);
        ready_.clear();
        free_.push_back(held);
    }
    pipe_cv_.notify_all();
    spool_.wake_all();  // a read-ahead waiting at the spool's end goes back at once
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
    while (!stop.stop_requested()) {
        Slot* s = nullptr;
        {
            std::unique_lock lk(pipe_mu_);
            if (!pipe_cv_.wait(lk, stop, [&] { return !ready_.empty(); })) return;
            s = ready_.front();
            ready_.pop_front();
        }
        const std::span<const RecordView> batch(s->views);
        // The cap may have purged records this sink still needed: start after them.
        if (const std::uint64_t kept = spool_.cursor(st_.name); kept > batch.front().seq) {
            cursor = std::max(cursor, kept);
            restart_from(cursor, s);
            continue;
        }
        const Delivery d{spool_.id(), batch, {}};
        const SendResult r = s->is_prepared ? sink_->send_prepared(d, s->prepared) : sink_->send(d);
        const std::size_t done = std::min(batch.size(), r.accepted + r.rejected);
        std::string commit_error;
        if (done) {
            cursor = batch[done - 1].seq + 1;
            try {
                spool_.commit(st_.name, cursor);
            } catch (const SpoolError& e) {
                // Delivered all the same: not sent again. The cursor on disk stays behind
                // (a restart would resend, with the same ids) until a later commit succeeds.
                commit_error = e.what();
            }
        }
        bool changed = false;
        SinkStatus snapshot;
        {
            std::lock_guard lk(mu_);
            if (!commit_error.empty()) st_.last_error = commit_error;
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
        if (done == batch.size()) {
            {
                std::lock_guard lk(pipe_mu_);
                free_.push_back(s);
            }
            pipe_cv_.notify_all();
        } else {
            // What is left is read (and encoded) again from the cursor, as a new batch.
            restart_from(cursor, s);
        }
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
