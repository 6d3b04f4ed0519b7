#include "guest_kernel.hpp"

#include <cstdio>
#include <stdexcept>

#include "vmi/kaslr.hpp"
#include "vmi/kernel_discovery.hpp"
#include "vmi/kernel_image.hpp"

namespace vmid {
namespace {

template <class T>
T must(vmi::Result<T> r, const std::string& what) {
    if (!r) throw std::runtime_error(what + ": " + r.error().message());
    return std::move(r).value();
}

std::vector<vmi::Memslot> to_bridge(const std::vector<GuestMemslot>& slots) {
    std::vector<vmi::Memslot> out;
    out.reserve(slots.size());
    for (const auto& s : slots) out.push_back({s.gpa, s.size, s.hva});
    return out;
}

}  // namespace

GuestKernel::GuestKernel(const KmodSession& session, pid_t qemu_pid, const std::string& vmlinux,
                         std::shared_ptr<const vmi::KernelProfileFile> profile)
    : session_(session),
      from_file_(!vmlinux.empty()),
      memory_(qemu_pid, {}),
      profile_file_(std::move(profile)) {
    if (!from_file_) return;
    offsets_ = must(must(vmi::BtfProfile::from_file(vmlinux), vmlinux).linux_offsets(), vmlinux);
    const auto syms = must(vmi::find_kernel_image_symbols(vmlinux, offsets_), vmlinux);
    sym_text_ = syms.text_va;
    sym_init_task_ = syms.init_task_va;
}

vmi::Status GuestKernel::refresh_memory() {
    std::uint64_t gen = 0;
    auto slots = session_.memslots(&gen);
    if (gen == memslot_generation_) return {};
    auto st = memory_.set_memslots(to_bridge(slots));
    if (st) memslot_generation_ = gen;
    return st;
}

vmi::Status GuestKernel::locate_kernel(std::uint64_t cr3) {
    return from_file_ ? locate_from_file(cr3) : discover(cr3);
}

// Zero configuration: the kernel's BTF and init_task are found in guest memory. While the
// guest kernel is not up yet this fails; retry at most once a second (it scans the image).
vmi::Status GuestKernel::discover(std::uint64_t cr3) {
    const auto now = std::chrono::steady_clock::now();
    if (now < next_discovery_)
        return vmi::Error{vmi::Fault::kNotFound, "guest kernel not found yet"};
    next_discovery_ = now + std::chrono::seconds(1);
    vmi::DiscoveryOptions opts;
    opts.profile = profile_file_.get();
    auto prof = vmi::discover_kernel(memory_, cr3, opts);
    if (!prof) return prof.error();
    offsets_ = prof->offsets;
    linux_.emplace(memory_, offsets_, prof->init_task_va);
    profile_ = *prof;
    char text[19], init[19];
    std::snprintf(text, sizeof text, "0x%llx", static_cast<unsigned long long>(prof->text_va));
    std::snprintf(init, sizeof init, "0x%llx", static_cast<unsigned long long>(prof->init_task_va));
    report_ = nlohmann::json{
        {"source", profile_file_ ? std::string(vmi::to_string(prof->source)) : "guest-memory"},
        {"text", text},
        {"init_task", init},
        {"btf_bytes", prof->btf_size},
        {"discovery_ms", std::chrono::duration<double, std::milli>(prof->total_time).count()}};
    return {};
}

// From a vmlinux file: the first present page of the kernel image window is _text; init_task
// then names itself "swapper", which tells a real kernel from boot-time page tables or garbage.
vmi::Status GuestKernel::locate_from_file(std::uint64_t cr3) {
    auto slide = vmi::find_kaslr_slide(memory_, cr3, false, sym_text_);
    if (!slide) return slide.error();
    vmi::LinuxGuest candidate(memory_, offsets_, sym_init_task_ + *slide);
    auto procs = candidate.list_processes(cr3);
    if (!procs) return procs.error();
    if (procs->empty() || procs->front().comm.rfind("swapper", 0) != 0)
        return vmi::Error{vmi::Fault::kNotFound, "init_task is not swapper: kernel not up yet"};
    linux_.emplace(candidate);
    report_ = nlohmann::json{{"source", "vmlinux"}};
    return {};
}

vmi::Result<std::vector<GuestProcess>> GuestKernel::list(std::uint64_t cr3) {
    if (auto st = refresh_memory(); !st) return st.error();
    if (!linux_)
        if (auto st = locate_kernel(cr3); !st) return st.error();
    auto procs = linux_->list_processes(cr3);
    if (!procs) return procs.error();
    std::vector<GuestProcess> out;
    out.reserve(procs->size());
    for (const vmi::Process& p : *procs) {
        if (p.pid == 0) continue;  // init_task, the idle task, is not a process
        constexpr std::uint32_t kPfKthread = 0x00200000;  // PF_KTHREAD, stable since 2.6
        GuestProcess g;
        g.task = p.task_va;
        g.pid = p.pid;
        g.ppid = p.ppid;
        g.comm = p.comm;
        g.pgd = p.pgd_pa;
        g.start_time_ns = p.start_time_ns;
        g.kernel_thread = (p.flags & kPfKthread) != 0;
        g.exec_id = p.exec_id;
        g.uid = p.uid;
        g.euid = p.euid;
        g.gid = p.gid;
        g.exe = p.exe;
        g.args = p.argv;
        g.threads = p.threads;
        out.push_back(std::move(g));
    }
    return out;
}

}  // namespace vmid
