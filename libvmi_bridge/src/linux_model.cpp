#include "vmi/linux_model.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <unordered_set>

#include "vmi/entity_id.hpp"
#include "vmi/page_cache.hpp"
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

// A user-space pointer: canonical, lower half.
bool plausible_user_ptr(std::uint64_t va, bool la57) {
    return is_canonical(va, la57) && (va >> 63) == 0;
}

// Kernel-pointer reads of one listing.
struct KReader {
    GuestMemory& mem;
    std::uint64_t kcr3;
    bool la57;

    Result<std::uint64_t> u64(std::uint64_t va) const {
        if (!range_fits(va, 8)) return Fault::kBadPointer;
        return read_virt_u64(mem, kcr3, va, la57);
    }
    Result<std::uint32_t> u32(std::uint64_t va) const {
        if (!range_fits(va, 4)) return Fault::kBadPointer;
        return read_virt_u32(mem, kcr3, va, la57);
    }
    // A kernel pointer at base+off that must look like a kernel object pointer.
    Result<std::uint64_t> ptr(std::uint64_t base, std::uint64_t off) const {
        if (!range_fits(base, off + 8)) return Fault::kBadPointer;
        auto v = u64(base + off);
        if (!v) return v;
        if (!plausible_kernel_ptr(*v, la57)) return Fault::kBadPointer;
        return v;
    }
};

// d_path-like walk from {mnt, dentry} up to the root of the mount tree. Every step is bounded:
// depth (dentries plus mount crossings), each name, and the total length.
Result<std::string> read_exe_path(const KReader& r, const LinuxOffsets& o, std::uint64_t mm) {
    auto file = r.u64(mm + o.mm_exe_file);
    if (!file) return std::move(file).error();
    if (*file == 0) return std::string{};  // no executable (e.g. exiting)
    if (!plausible_kernel_ptr(*file, r.la57)) return Fault::kBadPointer;
    auto vfsmnt = r.u64(*file + o.file_f_path + o.path_mnt);
    if (!vfsmnt) return std::move(vfsmnt).error();
    auto dentry_r = r.ptr(*file, o.file_f_path + o.path_dentry);
    if (!dentry_r) return std::move(dentry_r).error();
    std::uint64_t dentry = *dentry_r;
    std::uint64_t mnt = *vfsmnt;  // struct vfsmount*; 0 or junk disables mount crossing
    const bool cross = o.has_mount && plausible_kernel_ptr(mnt, r.la57) && mnt >= o.mount_mnt;

    std::vector<std::string> parts;
    std::size_t total = 0;
    for (std::size_t depth = 0;; ++depth) {
        if (depth >= LinuxGuest::kMaxPathDepth) {
            return Error{Fault::kLimitExceeded,
                         "exe path deeper than " + std::to_string(LinuxGuest::kMaxPathDepth)};
        }
        auto parent = r.ptr(dentry, o.dentry_d_parent);
        if (!parent) return std::move(parent).error();
        std::uint64_t mnt_root = 0;
        if (cross) mnt_root = r.ptr(mnt, o.vfsmount_mnt_root).value_or(0);
        if (dentry == *parent || dentry == mnt_root) {
            if (!cross) break;  // root of this file system: as far as we can go
            const std::uint64_t mount = mnt - o.mount_mnt;
            auto mparent = r.ptr(mount, o.mount_mnt_parent);
            if (!mparent || *mparent == mount) break;  // root of the mount tree
            auto mp = r.ptr(mount, o.mount_mnt_mountpoint);
            if (!mp || !range_fits(*mparent, o.mount_mnt)) break;
            dentry = *mp;
            mnt = *mparent + o.mount_mnt;
            continue;
        }
        const std::uint64_t qstr = dentry + o.dentry_d_name;
        if (!range_fits(qstr, std::max(o.qstr_len + 4, o.qstr_name + 8))) {
            return Fault::kBadPointer;
        }
        auto len = r.u32(qstr + o.qstr_len);
        if (!len) return std::move(len).error();
        if (*len == 0 || *len > LinuxGuest::kMaxNameLen) {
            return Error{Fault::kInvalidFormat, "dentry name length " + std::to_string(*len)};
        }
        total += *len + 1;
        if (total > LinuxGuest::kMaxPathLen) {
            return Error{Fault::kLimitExceeded,
                         "exe path longer than " + std::to_string(LinuxGuest::kMaxPathLen)};
        }
        auto name_va = r.u64(qstr + o.qstr_name);
        if (!name_va) return std::move(name_va).error();
        if (!plausible_kernel_ptr(*name_va & ~std::uint64_t{7}, r.la57)) {
            return Fault::kBadPointer;
        }
        std::array<std::byte, LinuxGuest::kMaxNameLen> raw{};
        std::span<std::byte> name(raw.data(), *len);
        if (auto st = read_virt(r.mem, r.kcr3, *name_va, name, r.la57); !st) {
            return std::move(st).error();
        }
        std::string part;
        for (std::byte b : name) {
            const auto c = static_cast<char>(b);
            part.push_back(c == '/' || c == '\0' ? '?' : c);  // impossible in a real name
        }
        parts.push_back(std::move(part));
        dentry = *parent;
    }
    std::string path;
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) path += "/" + *it;
    return path.empty() ? std::string("/") : path;
}

// argv from [arg_start, arg_end) in the process's own address space, page by page; stops at
// the first unreadable page (the prefix read so far is kept).
void read_argv(GuestMemory& mem, const KReader& r, const LinuxOffsets& o, Process& p) {
    auto start = r.u64(p.mm_va + o.mm_arg_start);
    auto end = r.u64(p.mm_va + o.mm_arg_end);
    if (!start || !end || *end <= *start || !plausible_user_ptr(*start, r.la57)) return;
    std::uint64_t len = *end - *start;
    if (len > LinuxGuest::kMaxArgBytes) {
        len = LinuxGuest::kMaxArgBytes;
        p.argv_truncated = true;
    }
    if (!range_fits(*start, len)) return;
    std::array<std::byte, LinuxGuest::kMaxArgBytes> buf{};
    std::size_t got = 0;
    while (got < len) {
        const std::uint64_t va = *start + got;
        const std::size_t n = std::min<std::uint64_t>(kPageSize - (va & kPageMask), len - got);
        if (!read_virt(mem, p.pgd_pa, va, std::span(buf).subspan(got, n), r.la57)) {
            p.argv_truncated = true;
            break;
        }
        got += n;
    }
    std::string cur;
    bool open = false;
    for (std::size_t i = 0; i < got; ++i) {
        const auto c = static_cast<char>(buf[i]);
        if (c == '\0') {
            p.argv.push_back(std::move(cur));
            cur.clear();
            open = false;
        } else {
            cur.push_back(c);
            open = true;
        }
    }
    if (open) p.argv.push_back(std::move(cur));
}

// Tasks on signal->thread_head; -1 if the list does not return to its head within bounds.
std::int32_t count_threads(const KReader& r, const LinuxOffsets& o, std::uint64_t task,
                           std::size_t& budget) {
    auto signal = r.ptr(task, o.task_signal);
    if (!signal || !range_fits(*signal, o.signal_thread_head + 16)) return -1;
    const std::uint64_t head = *signal + o.signal_thread_head;
    auto node = r.u64(head);
    for (std::int32_t n = 0; node && static_cast<std::size_t>(n) < LinuxGuest::kMaxThreads; ++n) {
        if (*node == head) return n;
        if (budget == 0 || !plausible_kernel_ptr(*node, r.la57)) return -1;
        --budget;
        node = r.u64(*node);
    }
    return -1;
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

// What one listing (or one read_process) may spend on secondary reads.
struct LinuxGuest::Budgets {
    std::size_t threads = kMaxThreadSteps;
    std::size_t detail = kMaxDetailBytes;
};

Result<Process> LinuxGuest::read_task(GuestMemory& mem, std::uint64_t kcr3, std::uint64_t task,
                                      std::span<std::byte> buf, const ListOptions& opts,
                                      Budgets& budget, std::uint64_t* next) const {
    const KReader kr{mem, kcr3, la57_};
    const std::uint64_t comm_len = std::min<std::uint64_t>(off_.task_comm_size, kMaxComm);
    const Span span = task_span(off_, comm_len);
    auto field = [&](std::uint64_t off) { return off - span.lo; };
    if (!plausible_kernel_ptr(task, la57_) || !range_fits(task, span.hi)) {
        return Error{Fault::kBadPointer, "task_struct pointer " + std::to_string(task)};
    }
    if (auto st = read_virt(mem, kcr3, task + span.lo, buf, la57_); !st) {
        return Error{st.fault(), "reading task_struct at " + std::to_string(task)};
    }
    Process p;
    p.task_va = task;
    p.pid = load<std::int32_t>(buf, field(off_.task_tgid));
    p.comm = sanitize_comm(buf.subspan(field(off_.task_comm), comm_len));
    p.mm_va = load<std::uint64_t>(buf, field(off_.task_mm));
    p.start_time_ns = load<std::uint64_t>(buf, field(off_.task_start_time));
    p.exec_id = load<std::uint64_t>(buf, field(off_.task_self_exec_id));
    p.flags = load<std::uint32_t>(buf, field(off_.task_flags));
    if (next) *next = load<std::uint64_t>(buf, field(off_.task_tasks));

    const auto parent = load<std::uint64_t>(buf, field(off_.task_real_parent));
    if (plausible_kernel_ptr(parent, la57_) && range_fits(parent, off_.task_tgid + 4)) {
        if (auto t = read_virt_u32(mem, kcr3, parent + off_.task_tgid, la57_)) {
            p.ppid = static_cast<std::int32_t>(*t);
        }
    }
    if (p.mm_va != 0 && plausible_kernel_ptr(p.mm_va, la57_) &&
        range_fits(p.mm_va, off_.mm_pgd + 8)) {
        if (auto pgd = read_virt_u64(mem, kcr3, p.mm_va + off_.mm_pgd, la57_)) {
            p.pgd_pa = translate(mem, kcr3, *pgd, la57_).value_or(0);
        }
    }
    if (off_.task_cred != 0 && off_.cred_uid != 0 && range_fits(task, off_.task_cred + 8)) {
        auto cred = read_virt_u64(mem, kcr3, task + off_.task_cred, la57_);
        if (cred && plausible_kernel_ptr(*cred, la57_) && range_fits(*cred, off_.cred_uid + 4)) {
            if (auto uid = read_virt_u32(mem, kcr3, *cred + off_.cred_uid, la57_)) {
                p.uid = *uid;
            }
            if (off_.cred_euid != 0 && off_.cred_gid != 0 &&
                range_fits(*cred, std::max(off_.cred_euid, off_.cred_gid) + 4)) {
                if (auto v = kr.u32(*cred + off_.cred_euid)) p.euid = *v;
                if (auto v = kr.u32(*cred + off_.cred_gid)) p.gid = *v;
            }
        }
    }
    const bool user = p.mm_va != 0 && plausible_kernel_ptr(p.mm_va, la57_) &&
                      range_fits(p.mm_va, std::max(off_.mm_exe_file, off_.mm_arg_end) + 8);
    if (opts.exe && off_.has_exe && user && budget.detail > 0) {
        if (auto exe = read_exe_path(kr, off_, p.mm_va)) {
            budget.detail -= std::min(budget.detail, exe->size());
            p.exe = std::move(*exe);
        }
    }
    if (opts.argv && off_.has_args && user && p.pgd_pa != 0 && budget.detail > 0) {
        read_argv(mem, kr, off_, p);
        for (const auto& a : p.argv) budget.detail -= std::min(budget.detail, a.size() + 1);
    }
    if (opts.threads && off_.has_threads) {
        p.threads = count_threads(kr, off_, task, budget.threads);
    }
    if (!opts.vm_name.empty())
        p.entity_id = process_entity_id(opts.vm_name, p.task_va, p.start_time_ns);
    return p;
}

// Offsets come from BTF, which may itself have been read from the guest.
Result<std::vector<std::byte>> LinuxGuest::task_buffer() const {
    const std::uint64_t comm_len = std::min<std::uint64_t>(off_.task_comm_size, kMaxComm);
    const Span span = task_span(off_, comm_len);
    if (span.hi < span.lo || span.hi - span.lo > kMaxTaskSpan || span.hi > kMaxTaskSpan * 4) {
        return Error{Fault::kInvalidFormat, "task_struct offsets span too large"};
    }
    return std::vector<std::byte>(span.hi - span.lo);
}

Result<Process> LinuxGuest::read_process(std::uint64_t any_cr3, std::uint64_t task_va,
                                         const ListOptions& opts) const {
    PageCache cache(*mem_);
    auto buf = task_buffer();
    if (!buf) return buf.error();
    Budgets budget;
    return read_task(cache, kernel_pgd_from_cr3(any_cr3), task_va, *buf, opts, budget, nullptr);
}

Result<std::vector<Process>> LinuxGuest::list_processes(std::uint64_t any_cr3,
                                                        const ListOptions& opts) const {
    const std::uint64_t kcr3 = kernel_pgd_from_cr3(any_cr3);
    // One cache per listing: never carried over to the next call (live guests change).
    PageCache cache(*mem_);
    auto buf = task_buffer();
    if (!buf) return buf.error();
    Budgets budget;
    std::vector<Process> out;
    std::unordered_set<std::uint64_t> seen;
    const std::uint64_t head = init_task_va_ + off_.task_tasks;
    std::uint64_t task = init_task_va_;

    for (std::size_t n = 0; n < max_tasks_; ++n) {
        std::uint64_t next = 0;
        auto p = read_task(cache, kcr3, task, *buf, opts, budget, &next);
        if (!p) return p.error();
        out.push_back(std::move(*p));
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
