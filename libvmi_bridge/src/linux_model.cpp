#include "vmi/linux_model.hpp"

#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "vmi/page_walker.hpp"

namespace vmi {

namespace {

constexpr std::uint64_t kMaxTaskSpan = 64ULL * 1024;

// A kernel object pointer: canonical, in the upper half, 8-byte aligned.
bool plausible_kernel_ptr(std::uint64_t va, bool la57) {
    return is_canonical(va, la57) && (va >> 63) != 0 && (va & 7) == 0;
}

template <class T>
T load(std::span<const std::byte> buf, std::uint64_t off) {
    T v{};
    std::memcpy(&v, buf.data() + off, sizeof(T));
    return v;
}

// The contiguous byte range of task_struct covering every field we read.
struct Span {
    std::uint64_t lo;
    std::uint64_t hi;
};

Span task_span(const LinuxOffsets& o, std::uint64_t comm_len) {
    const std::pair<std::uint64_t, std::uint64_t> fields[] = {
        {o.task_tasks, 8},       {o.task_pid, 4},         {o.task_tgid, 4},
        {o.task_comm, comm_len}, {o.task_real_parent, 8}, {o.task_mm, 8},
        {o.task_flags, 4},       {o.task_start_time, 8},  {o.task_self_exec_id, 8},
    };
    Span s{UINT64_MAX, 0};
    for (const auto& [off, len] : fields) {
        s.lo = std::min(s.lo, off);
        s.hi = std::max(s.hi, off + len);
    }
    return s;
}

}  // namespace

std::string sanitize_comm(std::span<const std::byte> raw) {
    std::string out;
    for (std::byte b : raw) {
        const auto c = static_cast<unsigned char>(b);
        if (c == 0) break;
        out.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
    }
    return out;
}

LinuxGuest::LinuxGuest(GuestMemory& mem, LinuxOffsets offsets, std::uint64_t init_task_va,
                       bool la57, std::size_t max_tasks)
    : mem_(&mem),
      off_(offsets),
      init_task_va_(init_task_va),
      la57_(la57),
      max_tasks_(std::min(max_tasks, kMaxTasks)) {}

Result<std::vector<Process>> LinuxGuest::list_processes(std::uint64_t any_cr3) const {
    const std::uint64_t kcr3 = kernel_pgd_from_cr3(any_cr3);
    const std::uint64_t comm_len = std::min<std::uint64_t>(off_.task_comm_size, kMaxComm);
    const Span span = task_span(off_, comm_len);
    // Offsets come from BTF, which may itself have been read from the guest.
    if (span.hi < span.lo || span.hi - span.lo > kMaxTaskSpan || span.hi > kMaxTaskSpan * 4) {
        return Error{Fault::kInvalidFormat, "task_struct offsets span too large"};
    }
    std::vector<std::byte> buf(span.hi - span.lo);
    auto field = [&](std::uint64_t off) { return off - span.lo; };

    std::vector<Process> out;
    std::unordered_set<std::uint64_t> seen;
    const std::uint64_t head = init_task_va_ + off_.task_tasks;
    std::uint64_t task = init_task_va_;

    for (std::size_t n = 0; n < max_tasks_; ++n) {
        if (!plausible_kernel_ptr(task, la57_) || !range_fits(task, span.hi)) {
            return Error{Fault::kBadPointer, "task_struct pointer " + std::to_string(task)};
        }
        if (auto st = read_virt(*mem_, kcr3, task + span.lo, buf, la57_); !st) {
            return Error{st.fault(), "reading task_struct at " + std::to_string(task)};
        }
        Process p;
        p.task_va = task;
        p.pid = load<std::int32_t>(buf, field(off_.task_tgid));
        p.comm = sanitize_comm(std::span(buf).subspan(field(off_.task_comm), comm_len));
        p.mm_va = load<std::uint64_t>(buf, field(off_.task_mm));
        p.start_time_ns = load<std::uint64_t>(buf, field(off_.task_start_time));
        p.exec_id = load<std::uint64_t>(buf, field(off_.task_self_exec_id));
        p.flags = load<std::uint32_t>(buf, field(off_.task_flags));

        const auto parent = load<std::uint64_t>(buf, field(off_.task_real_parent));
        if (plausible_kernel_ptr(parent, la57_) && range_fits(parent, off_.task_tgid + 4)) {
            if (auto t = read_virt_u32(*mem_, kcr3, parent + off_.task_tgid, la57_)) {
                p.ppid = static_cast<std::int32_t>(*t);
            }
        }
        if (p.mm_va != 0 && plausible_kernel_ptr(p.mm_va, la57_) &&
            range_fits(p.mm_va, off_.mm_pgd + 8)) {
            if (auto pgd = read_virt_u64(*mem_, kcr3, p.mm_va + off_.mm_pgd, la57_)) {
                p.pgd_pa = translate(*mem_, kcr3, *pgd, la57_).value_or(0);
            }
        }
        if (off_.task_cred != 0 && off_.cred_uid != 0 && range_fits(task, off_.task_cred + 8)) {
            auto cred = read_virt_u64(*mem_, kcr3, task + off_.task_cred, la57_);
            if (cred && plausible_kernel_ptr(*cred, la57_) &&
                range_fits(*cred, off_.cred_uid + 4)) {
                if (auto uid = read_virt_u32(*mem_, kcr3, *cred + off_.cred_uid, la57_)) {
                    p.uid = *uid;
                }
            }
        }
        out.push_back(std::move(p));

        const auto next = load<std::uint64_t>(buf, field(off_.task_tasks));
        if (next == head) return out;
        if (!plausible_kernel_ptr(next, la57_) || next < off_.task_tasks) {
            return Error{Fault::kBadPointer, "tasks.next " + std::to_string(next)};
        }
        task = next - off_.task_tasks;
        if (!seen.insert(task).second) {
            return Error{Fault::kCycle, "task list loops without returning to init_task"};
        }
    }
    return Error{Fault::kLimitExceeded, "more than " + std::to_string(max_tasks_) + " tasks"};
}

const Process* find_by_cr3(std::span<const Process> processes, std::uint64_t cr3) {
    const std::uint64_t exact = pgd_from_cr3(cr3);
    const std::uint64_t kernel = kernel_pgd_from_cr3(cr3);
    const Process* loose = nullptr;
    for (const Process& p : processes) {
        if (p.pgd_pa == 0) continue;
        if (p.pgd_pa == exact) return &p;
        if (loose == nullptr && kernel_pgd_from_cr3(p.pgd_pa) == kernel) loose = &p;
    }
    return loose;
}

}  // namespace vmi
