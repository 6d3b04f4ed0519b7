// Kernel integrity from outside the guest: what a rootkit inside it changes and cannot hide
// from the hypervisor. One sweep reads guest memory only (no guest cooperation) and checks:
//
//   syscall tables  every sys_call_table (and ia32_sys_call_table) entry points into kernel
//                   text at a __x64_sys_* / __ia32_sys_* symbol, and at the same symbol as in
//                   the baseline
//   IDT             every present idt_table gate's handler lies in kernel text, unchanged
//   syscall MSRs    LSTAR / CSTAR / SYSENTER_EIP (from vCPU state, when the caller has them)
//                   point at the kernel's entry symbols
//   text, rodata    4 KiB page hashes of [_stext, _etext) and [__start_rodata, __end_rodata)
//                   against the baseline; a changed page is narrowed to 64-byte chunks and
//                   named by kallsyms. Sites the kernel patches itself at run time (jump
//                   labels, static-call and ftrace trampolines, BPF dispatchers) are masked.
//   kernel pointers the function pointers of writable ops structs rootkits hook (tcp_prot,
//                   udp_prot, ..., n_tty_ops; LinuxOffsets::fn_pointer_objects) lie in kernel
//                   text, and equal their values in the baseline
//   hidden modules  modules in the kernel's module address tree (mod_tree) absent from the
//                   `modules` list
//   hidden tasks    tasks reachable through the children/sibling tree from init_task, in
//                   the PID allocator (init_pid_ns.idr), queued on a CPU's run queue, or
//                   running on a vCPU (its per-CPU current task), absent from the task list;
//                   vCPU CR3s that belong to no listed task
//
// Absolute rules need no baseline (a pointer outside kernel text and every known module is
// critical); baseline rules compare with what was seen at attach. Every walk is bounded and
// every guest value hostile: a check that cannot run yields a kCheckFailed finding, never an
// exception or a crash. Pages read are counted for the cost report.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmi/btf_profile.hpp"
#include "vmi/guest_memory.hpp"
#include "vmi/kallsyms.hpp"
#include "vmi/modules.hpp"
#include "vmi/result.hpp"

namespace vmi {

enum class FindingKind : std::uint8_t {
    kSyscallHook,   // a syscall-table entry points somewhere unexpected
    kIdtHook,       // an IDT gate's handler points somewhere unexpected
    kMsrHook,       // LSTAR / CSTAR / SYSENTER_EIP is not the kernel's entry point
    kTextModified,  // kernel text or rodata differs from the baseline
    kPointerHook,   // a kernel function pointer in writable data points somewhere unexpected
    kHiddenModule,  // in the module address tree, not in the modules list
    kHiddenTask,    // reachable by another route than the task list, absent from it
    kCheckFailed,   // a check could not run (unreadable table, missing symbol)
};

enum class Severity : std::uint8_t { kInfo, kWarning, kCritical };

/// Stable lower-case names ("syscall_hook", "critical") for JSON and logs.
std::string_view to_string(FindingKind k) noexcept;
std::string_view to_string(Severity s) noexcept;

struct IntegrityFinding {
    FindingKind kind = FindingKind::kCheckFailed;
    Severity severity = Severity::kInfo;
    /// What was checked: "sys_call_table", "ia32_sys_call_table", "idt_table", "LSTAR",
    /// "text", "rodata", "kernel_pointers", "modules", "tasks".
    std::string check;
    /// The syscall number, IDT vector, pid; -1 when not applicable.
    std::int64_t index = -1;
    /// The symbol, "object.member" (kernel pointers), module name or comm the finding is about.
    std::string name;
    std::uint64_t expected = 0;   // address as in the baseline or as the rule wants; 0 = none
    std::uint64_t actual = 0;     // address found now
    std::string expected_symbol;  // "sym+0x10" or empty
    std::string actual_symbol;    // "sym+0x10", "[module]+0x10" or empty
    std::string message;          // one human sentence
};

/// Sweep cost.
struct IntegrityStats {
    std::uint64_t pages_read = 0;  // distinct guest-physical 4 KiB pages read
    std::uint64_t bytes_read = 0;  // bytes asked of guest memory (cached re-reads excluded)
    std::chrono::nanoseconds duration{0};
};

/// A vCPU as a snapshot or the host module sees it.
struct VcpuView {
    std::uint64_t cr3 = 0;
    std::uint64_t gs_base = 0;  // kernel GS base (per-CPU area) when in kernel mode; 0 = unknown
    std::optional<std::uint64_t> lstar;  // MSRs, when the caller could read them
    std::optional<std::uint64_t> cstar;
    std::optional<std::uint64_t> sysenter_eip;
};

/// What a sweep reads from. References must outlive the sweep.
struct IntegrityContext {
    GuestMemory* mem = nullptr;
    std::uint64_t cr3 = 0;  // any CR3 of the guest
    bool la57 = false;
    const KernelSymbols* symbols = nullptr;
    const LinuxOffsets* offsets = nullptr;
    std::uint64_t init_task_va = 0;
    /// The modules list as walked (list_modules); empty = none loaded or unknown.
    std::vector<KernelModule> modules;
    bool modules_known = false;  // false: the list could not be walked (hidden-module check off)
    std::vector<VcpuView> vcpus;
};

/// Hashes of one kernel range, per 4 KiB page and per 64-byte chunk.
struct RangeHashes {
    std::uint64_t start = 0;  // page aligned
    std::uint64_t end = 0;
    std::vector<std::uint64_t> pages;   // FNV-1a 64 per page (0 = unreadable)
    std::vector<std::uint32_t> chunks;  // FNV-1a 32 per 64 bytes, kChunksPerPage per page
};

/// One kernel function pointer as seen at attach.
struct FnPointerValue {
    std::string name;      // "tcp_prot.getsockopt"
    std::uint64_t va = 0;  // where the pointer is stored
    std::uint64_t value = 0;
};

/// What was seen at attach.
struct IntegrityBaseline {
    std::vector<std::uint64_t> syscalls;       // sys_call_table entries
    std::vector<std::uint64_t> ia32_syscalls;  // ia32_sys_call_table entries (may be empty)
    std::vector<std::uint64_t> idt;            // handler per vector; 0 = gate not present
    RangeHashes text;
    RangeHashes rodata;
    std::vector<FnPointerValue> fn_pointers;  // readable objects only
    IntegrityStats stats;
};

struct IntegrityOptions {
    bool syscalls = true;
    bool idt = true;
    bool msrs = true;
    bool text = true;  // needs a baseline
    bool pointers = true;
    bool modules = true;
    bool tasks = true;
};

struct IntegrityReport {
    std::vector<IntegrityFinding> findings;
    IntegrityStats stats;
};

/// Bounds on what the guest can make a sweep read or keep.
inline constexpr std::size_t kMaxSyscalls = 1024;               // table entries read
inline constexpr std::size_t kIdtVectors = 256;                 // gates of 16 bytes
inline constexpr std::uint64_t kMaxHashedRange = 256ULL << 20;  // per range (text, rodata)
inline constexpr std::size_t kMaxMaskedSites = 1U << 18;        // jump-label sites masked
inline constexpr std::size_t kMaxModTreeNodes = 1U << 16;       // module tree nodes visited
inline constexpr std::size_t kMaxTreeTasks = 1U << 16;          // tasks via children lists
inline constexpr std::size_t kMaxPidHashNodes = 1U << 16;       // xa_nodes of the PID hash
inline constexpr std::size_t kMaxPidHashTasks = 1U << 18;       // struct pid entries read
inline constexpr std::size_t kMaxRunQueueCpus = 4096;           // CPUs whose run queue is read
inline constexpr std::size_t kChunkSize = 64;
inline constexpr std::size_t kChunksPerPage = kPageSize / kChunkSize;

/// Reads the tables and hashes text and rodata as they are now. Fails only when the
/// symbols the baseline needs are missing (kNotFound); unreadable pages hash to 0.
Result<IntegrityBaseline> take_integrity_baseline(const IntegrityContext& ctx);

/// One sweep: absolute rules always, baseline rules when `baseline` is given. Findings are
/// ordered by check.
IntegrityReport sweep_integrity(const IntegrityContext& ctx, const IntegrityBaseline* baseline,
                                const IntegrityOptions& opts = {});

}  // namespace vmi
