#include "event_followers.hpp"

#include <deque>
#include <optional>
#include <stdexcept>

#include <boost/asio/write.hpp>

namespace vmid {
namespace asio = boost::asio;

EventFilter EventFilter::from_request(const nlohmann::json& req) {
    EventFilter f;
    if (auto d = req.find("domain"); d != req.end() && d->is_string()) f.domain_ = *d;
    if (auto t = req.find("filter"); t != req.end()) {
        if (!t->is_array()) throw std::invalid_argument("filter: a list of KEY=VALUE");
        for (const auto& item : *t) {
            const std::string s = item.is_string() ? item.get<std::string>() : item.dump();
            const auto eq = s.find('=');
            if (!item.is_string() || eq == std::string::npos || eq == 0)
                throw std::invalid_argument("filter '" + s + "': not KEY=VALUE");
            std::string path = "/" + s.substr(0, eq);
            for (char& c : path)
                if (c == '.') c = '/';
            try {
                f.tests_.emplace_back(nlohmann::json::json_pointer(path), s.substr(eq + 1));
            } catch (const nlohmann::json::exception&) {
                throw std::invalid_argument("filter '" + s + "': not a field name");
            }
        }
    }
    return f;
}

bool EventFilter::matches(const nlohmann::json& ev) const {
    if (!domain_.empty()) {
        const auto vm = ev.find("vm");
        if (vm == ev.end() || !vm->is_object()) return false;
        if (vm->value("name", "") != domain_ && vm->value("uuid", "") != domain_) return false;
    }
    // A follower's pointer can be anything (an array index past 2^64): it never throws into
    // the event path, it just does not match.
    try {
        for (const auto& [ptr, want] : tests_) {
            if (!ev.contains(ptr)) return false;
            const auto& v = ev.at(ptr);
            if (v.is_string() ? v.get_ref<const std::string&>() != want : v.dump() != want)
                return false;
        }
    } catch (const std::exception&) {
        return false;
    }
    return true;
}

struct EventFollowers::Follower : std::enable_shared_from_this<Follower> {
    Socket sock;
    EventFilter filter;
    std::deque<std::string> queue;
    std::size_t queued_bytes = 0;
    std::uint64_t dropped = 0;
    bool writing = false;
    bool closed = false;
    char probe = 0;

    Follower(Socket s, EventFilter f) : sock(std::move(s)), filter(std::move(f)) {}

    // The client never sends after its request: any read completion means it went away.
    void watch_close() {
        sock.async_read_some(
            asio::buffer(&probe, 1),
            [self = shared_from_this()](boost::system::error_code, std::size_t) { self->close(); });
    }

    void close() {
        if (closed) return;
        closed = true;
        boost::system::error_code ignored;
        sock.close(ignored);
    }

    void push(std::string line) {
        if (closed) return;
        if (queued_bytes + line.size() > kMaxBacklog) {
            ++dropped;
            return;
        }
        queued_bytes += line.size();
        queue.push_back(std::move(line));
        write_next();
    }

    void write_next() {
        if (writing || closed) return;
        if (queue.empty()) {
            if (dropped == 0) return;
            const std::string notice =
                nlohmann::json{{"vminsight_follow", {{"dropped", dropped}}}}.dump() + "\n";
            dropped = 0;
            queued_bytes += notice.size();
            queue.push_back(notice);
        }
        writing = true;
        asio::async_write(sock, asio::buffer(queue.front()),
                          [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                              self->writing = false;
                              self->queued_bytes -= self->queue.front().size();
                              self->queue.pop_front();
                              if (ec) {
                                  self->close();
                                  return;
                              }
                              self->write_next();
                          });
    }
};

void EventFollowers::add(const nlohmann::json& req, Socket sock) {
    std::erase_if(followers_, [](const auto& f) { return f->closed; });
    nlohmann::json reply;
    std::optional<EventFilter> filter;
    try {
        if (followers_.size() >= kMaxFollowers)
            throw std::invalid_argument("already " + std::to_string(kMaxFollowers) + " followers");
        filter = EventFilter::from_request(req);
        reply = {{"ok", true},
                 {"following",
                  {{"domain", req.value("domain", "")},
                   {"filter", req.value("filter", nlohmann::json::array())}}}};
    } catch (const std::exception& e) {
        reply = {{"ok", false}, {"error", e.what()}};
    }
    auto f = std::make_shared<Follower>(std::move(sock), filter.value_or(EventFilter{}));
    f->push(reply.dump() + "\n");
    if (!filter) {
        f->closed = true;  // after the error line is written (the write holds the socket)
        boost::system::error_code ignored;
        f->sock.shutdown(Socket::shutdown_receive, ignored);
        return;
    }
    f->watch_close();
    followers_.push_back(std::move(f));
}

void EventFollowers::emit(const nlohmann::json& ev) {
    if (followers_.empty()) return;
    std::string line;
    for (auto& f : followers_) {
        if (f->closed || !f->filter.matches(ev)) continue;
        if (line.empty())
            line = ev.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
        f->push(line);
    }
    std::erase_if(followers_, [](const auto& f) { return f->closed && !f->writing; });
}

}  // namespace vmid
