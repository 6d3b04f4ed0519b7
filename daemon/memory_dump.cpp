#include "memory_dump.hpp"

#include <sys/stat.h>

#include <cctype>
#include <ctime>
#include <system_error>

#include <boost/asio/post.hpp>

#include "event_fields.hpp"
#include "vmi/elf_core_writer.hpp"

namespace vmid {
namespace {

std::string slug(const std::string& s, std::size_t max) {
    std::string out;
    for (char c : s) {
        if (out.size() >= max) break;
        const auto u = static_cast<unsigned char>(c);
        if (std::isalnum(u) || c == '.' || c == '_' || c == '-')
            out += static_cast<char>(std::tolower(u));
        else if (!out.empty() && out.back() != '-')
            out += '-';
    }
    while (!out.empty() && (out.back() == '-' || out.front() == '.')) {
        if (out.back() == '-')
            out.pop_back();
        else
            out.erase(0, 1);
    }
    return out.empty() ? "x" : out;
}

std::string utc_compact() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
    return buf;
}

}  // namespace

std::string dump_file_name(const std::string& vm, const std::string& reason,
                           const std::string& utc) {
    return slug(vm, 64) + "-" + utc + "-" + slug(reason, 64) + ".elf";
}

MemoryDumper::MemoryDumper(boost::asio::io_context& io, EventSink& sink, std::filesystem::path dir,
                           std::uint64_t max_bytes, std::string vm_name)
    : io_(io),
      sink_(sink),
      dir_(std::move(dir)),
      max_bytes_(max_bytes),
      vm_name_(std::move(vm_name)) {}

MemoryDumper::~MemoryDumper() = default;  // the jthread joins

std::string MemoryDumper::start(pid_t pid, std::vector<vmi::Memslot> slots,
                                const std::string& reason, std::uint64_t cr3,
                                std::function<void()> done) {
    const auto refuse = [&](std::string why) {
        if (done) done();
        return why;
    };
    if (busy_) return refuse("skipped: a dump of this VM is still being written");
    if (slots.empty()) return refuse("failed: no guest memory map yet");
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    if (ec) return refuse("failed: " + dir_.string() + ": " + ec.message());
    ::chmod(dir_.c_str(), 0700);  // guest memory holds secrets: root only
    const std::filesystem::path path = dir_ / dump_file_name(vm_name_, reason, utc_compact());
    std::vector<vmi::DumpRange> ranges;
    for (const auto& s : slots) ranges.push_back({s.gpa, s.size});
    busy_ = true;
    if (worker_.joinable()) worker_.join();  // the last one is over (busy_ was false)
    worker_ = std::jthread([this, pid, slots = std::move(slots), ranges = std::move(ranges), path,
                            reason, cr3, done = std::move(done)]() mutable {
        nlohmann::json ev = {{"@timestamp", ""},
                             {"event", {{"kind", "event"}, {"category", "host"}}},
                             {"vm", {{"name", vm_name_}}}};
        const std::uint64_t t0 = monotonic_ns();
        try {
            vmi::ProcessMemory mem(pid, std::move(slots));
            vmi::DumpOptions opts;
            opts.max_bytes = max_bytes_;
            auto res = vmi::write_elf_core(mem, ranges, path, opts);
            if (res) {
                ev["event"]["action"] = "memory-dump-written";
                ev["vminsight"] = {{"path", path.string()},
                                   {"reason", reason},
                                   {"guest_bytes", res->guest_bytes},
                                   {"file_bytes", res->file_bytes},
                                   {"unreadable_bytes", res->unreadable_bytes},
                                   {"cr3", hex(cr3)},
                                   {"ms", (monotonic_ns() - t0) / 1'000'000}};
            } else {
                ev["event"]["action"] = "memory-dump-failed";
                ev["vminsight"] = {
                    {"path", path.string()}, {"reason", reason}, {"error", res.error().message()}};
            }
        } catch (const std::exception& e) {
            ev["event"]["action"] = "memory-dump-failed";
            ev["vminsight"] = {{"path", path.string()}, {"reason", reason}, {"error", e.what()}};
        }
        // The feed is the io_context's: the event goes out from there.
        boost::asio::post(io_, [this, ev = std::move(ev), done = std::move(done)]() mutable {
            if (done) done();
            ev["@timestamp"] = utc_now();
            sink_.emit(ev);
            busy_ = false;
        });
    });
    return "started: " + path.string();
}

}  // namespace vmid
