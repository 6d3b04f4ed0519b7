// vminsight-inspect: list the processes of a Linux guest from a memory snapshot with zero
// configuration (no vmlinux, no System.map, no profile): struct layouts come from the guest
// kernel's own BTF, init_task from its run-time comm.
//
//   vminsight-inspect ps      --snapshot FILE [--cr3 HEX] [--la57] [--json]
//   vminsight-inspect pstree  --snapshot FILE [--cr3 HEX] [--la57] [--json]
//   vminsight-inspect profile --snapshot FILE [--cr3 HEX] [--la57] [--json]
//
// FILE is a QEMU `dump-guest-memory` ELF (CR3 from its QEMU notes) or a raw `pmemsave` image
// (file offset == guest-physical address; needs --cr3).
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "vmi/elf_core_memory.hpp"
#include "vmi/image_memory.hpp"
#include "vmi/kernel_discovery.hpp"
#include "vmi/linux_model.hpp"

namespace {

constexpr const char* kUsage =
    "usage: vminsight-inspect ps|pstree|profile --snapshot FILE [--cr3 HEX] [--la57] [--json]\n"
    "  FILE: QEMU dump-guest-memory ELF (CR3 taken from its notes) or raw pmemsave image\n"
    "        (needs --cr3).\n";

struct Args {
    std::string cmd;
    std::string snapshot;
    std::vector<std::uint64_t> cr3s;
    bool json = false;
    bool la57 = false;
};

[[noreturn]] void usage_error(const std::string& why) {
    std::fprintf(stderr, "vminsight-inspect: %s\n%s", why.c_str(), kUsage);
    std::exit(2);
}

Args parse(int argc, char** argv) {
    Args a;
    if (argc < 2) usage_error("missing command");
    a.cmd = argv[1];
    if (a.cmd == "-h" || a.cmd == "--help") {
        std::fputs(kUsage, stdout);
        std::exit(0);
    }
    if (a.cmd != "ps" && a.cmd != "pstree" && a.cmd != "profile")
        usage_error("unknown command '" + a.cmd + "'");
    for (int i = 2; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage_error(arg + " needs a value");
            return argv[++i];
        };
        if (arg == "--snapshot") {
            a.snapshot = value();
        } else if (arg == "--cr3") {
            const std::string v = value();
            char* end = nullptr;
            errno = 0;
            const unsigned long long cr3 = std::strtoull(v.c_str(), &end, 16);
            if (v.empty() || end == nullptr || *end != '\0' || errno != 0) {
                usage_error("--cr3 '" + v + "' is not a hex number");
            }
            a.cr3s.push_back(cr3);
        } else if (arg == "--json") {
            a.json = true;
        } else if (arg == "--la57") {
            a.la57 = true;
        } else {
            usage_error("unknown argument '" + arg + "'");
        }
    }
    if (a.snapshot.empty()) usage_error("--snapshot FILE is required");
    return a;
}

std::string hex(std::uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

double ms(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e6; }

[[noreturn]] void fail(const Args& a, const std::string& what) {
    std::fprintf(stderr, "vminsight-inspect: %s: %s\n", a.snapshot.c_str(), what.c_str());
    std::exit(1);
}

nlohmann::json profile_json(const vmi::GuestKernelProfile& p, std::uint64_t cr3) {
    const vmi::LinuxOffsets& o = p.offsets;
    return {
        {"cr3", hex(cr3)},
        {"text_va", hex(p.text_va)},
        {"init_task_va", hex(p.init_task_va)},
        {"init_task_offset_from_text", hex(p.init_task_va - p.text_va)},
        {"btf_va", hex(p.btf_va)},
        {"btf_offset_from_text", hex(p.btf_va - p.text_va)},
        {"btf_size", p.btf_size},
        {"btf_hash", hex(p.btf_hash)},
        {"bytes_scanned", p.bytes_scanned},
        {"from_cache", p.from_cache},
        {"btf_scan_ms", ms(p.btf_time)},
        {"init_task_ms", ms(p.init_task_time)},
        {"total_ms", ms(p.total_time)},
        {"offsets",
         {{"task_struct_size", o.task_struct_size},
          {"task_tasks", o.task_tasks},
          {"task_pid", o.task_pid},
          {"task_tgid", o.task_tgid},
          {"task_comm", o.task_comm},
          {"task_comm_size", o.task_comm_size},
          {"task_real_parent", o.task_real_parent},
          {"task_mm", o.task_mm},
          {"task_flags", o.task_flags},
          {"task_start_time", o.task_start_time},
          {"task_cred", o.task_cred},
          {"cred_uid", o.cred_uid},
          {"cred_euid", o.cred_euid},
          {"cred_gid", o.cred_gid},
          {"mm_pgd", o.mm_pgd},
          {"has_exe", o.has_exe},
          {"mm_exe_file", o.mm_exe_file},
          {"has_mount", o.has_mount},
          {"has_args", o.has_args},
          {"mm_arg_start", o.mm_arg_start},
          {"has_threads", o.has_threads},
          {"task_signal", o.task_signal}}},
    };
}

std::string num(std::int64_t v) { return v >= 0 ? std::to_string(v) : "?"; }

nlohmann::json opt(std::int64_t v) { return v >= 0 ? nlohmann::json(v) : nlohmann::json(nullptr); }

// Terminal output: control bytes from the guest must not reach the terminal.
std::string printable(const std::string& s) {
    std::string out;
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        out.push_back(u < 0x20 || u == 0x7f ? '?' : c);
    }
    return out;
}

std::string join_args(const vmi::Process& p) {
    std::string out;
    for (std::size_t i = 0; i < p.argv.size(); ++i) out += (i ? " " : "") + p.argv[i];
    if (p.argv_truncated) out += " ...";
    return out;
}

nlohmann::json process_json(const vmi::Process& p) {
    nlohmann::json j = {{"pid", p.pid},           {"ppid", p.ppid},
                        {"comm", p.comm},         {"kernel_thread", p.mm_va == 0},
                        {"task", hex(p.task_va)}, {"start_time_ns", p.start_time_ns}};
    j["uid"] = opt(p.uid);
    j["euid"] = opt(p.euid);
    j["gid"] = opt(p.gid);
    j["exe"] = p.exe.empty() ? nlohmann::json(nullptr) : nlohmann::json(p.exe);
    j["argv"] = p.argv;
    j["argv_truncated"] = p.argv_truncated;
    j["threads"] = opt(p.threads);
    return j;
}

// Children by parent pid. Roots: pid 0, and any process whose parent is not in the list.
// Each pid is printed once, so a hostile parent cycle cannot loop.
struct Tree {
    std::map<std::int32_t, std::vector<const vmi::Process*>> children;
    std::vector<const vmi::Process*> roots;
};

Tree build_tree(const std::vector<vmi::Process>& procs) {
    Tree t;
    std::set<std::int32_t> pids;
    for (const auto& p : procs) pids.insert(p.pid);
    for (const auto& p : procs) {
        if (p.pid == 0 || p.ppid == p.pid || pids.count(p.ppid) == 0) {
            t.roots.push_back(&p);
        } else {
            t.children[p.ppid].push_back(&p);
        }
    }
    return t;
}

nlohmann::json tree_node(const Tree& t, const vmi::Process& p, std::set<std::int32_t>& done,
                         int depth) {
    nlohmann::json j = {{"pid", p.pid}, {"comm", p.comm}, {"children", nlohmann::json::array()}};
    if (!done.insert(p.pid).second || depth > 512) return j;
    if (auto it = t.children.find(p.pid); it != t.children.end()) {
        for (const auto* c : it->second) {
            if (done.count(c->pid) == 0) j["children"].push_back(tree_node(t, *c, done, depth + 1));
        }
    }
    return j;
}

nlohmann::json tree_json(const std::vector<vmi::Process>& procs) {
    const Tree t = build_tree(procs);
    std::set<std::int32_t> done;
    nlohmann::json out = nlohmann::json::array();
    for (const auto* r : t.roots) {
        if (done.count(r->pid) == 0) out.push_back(tree_node(t, *r, done, 0));
    }
    return out;
}

void print_node(const Tree& t, const vmi::Process& p, const std::string& prefix, bool last,
                bool root, std::set<std::int32_t>& done, int depth) {
    if (!done.insert(p.pid).second) return;
    const std::string name = p.mm_va == 0 ? "[" + p.comm + "]" : p.comm;
    std::printf("%s%s%s(%d)%s%s\n", prefix.c_str(), root ? "" : (last ? "`- " : "|- "),
                printable(name).c_str(), p.pid, p.exe.empty() ? "" : " ", printable(p.exe).c_str());
    if (depth > 512) return;
    auto it = t.children.find(p.pid);
    if (it == t.children.end()) return;
    const std::string next = root ? prefix : prefix + (last ? "   " : "|  ");
    for (std::size_t i = 0; i < it->second.size(); ++i) {
        print_node(t, *it->second[i], next, i + 1 == it->second.size(), false, done, depth + 1);
    }
}

void print_tree(const std::vector<vmi::Process>& procs) {
    const Tree t = build_tree(procs);
    std::set<std::int32_t> done;
    for (const auto* r : t.roots) print_node(t, *r, "", true, true, done, 0);
}

int run(const Args& a) {
    std::unique_ptr<vmi::GuestMemory> mem;
    std::vector<std::uint64_t> cr3s = a.cr3s;
    if (vmi::is_elf_file(a.snapshot)) {
        auto core = vmi::ElfCoreMemory::open(a.snapshot);
        if (!core) fail(a, core.error().message());
        if (cr3s.empty()) {
            for (std::uint64_t c : (*core)->vcpu_cr3s()) {
                if (c != 0) cr3s.push_back(c);
            }
            if (cr3s.empty()) fail(a, "ELF dump has no QEMU vCPU notes with a CR3; pass --cr3");
        }
        mem = std::move(*core);
    } else {
        try {
            mem = std::make_unique<vmi::ImageMemory>(a.snapshot);
        } catch (const std::exception& e) {
            fail(a, e.what());
        }
        if (cr3s.empty()) fail(a, "raw memory image: --cr3 HEX is required");
    }

    // Try each CR3 (vCPUs may be halted in odd states); keep the first that works.
    std::string errors;
    for (std::uint64_t cr3 : cr3s) {
        vmi::DiscoveryOptions opts;
        opts.la57 = a.la57;
        auto prof = vmi::discover_kernel(*mem, cr3, opts);
        if (!prof) {
            errors += "\n  cr3 " + hex(cr3) + ": " + prof.error().message();
            continue;
        }
        if (a.cmd == "profile") {
            if (a.json) {
                std::printf("%s\n", profile_json(*prof, cr3).dump(2).c_str());
            } else {
                const auto& p = *prof;
                const auto& o = p.offsets;
                std::printf("snapshot      %s\n", a.snapshot.c_str());
                std::printf("cr3           %s\n", hex(cr3).c_str());
                std::printf("_text         %s\n", hex(p.text_va).c_str());
                std::printf("init_task     %s (_text + %s)\n", hex(p.init_task_va).c_str(),
                            hex(p.init_task_va - p.text_va).c_str());
                std::printf("BTF           %s (_text + %s), %llu bytes, hash %s%s\n",
                            hex(p.btf_va).c_str(), hex(p.btf_va - p.text_va).c_str(),
                            static_cast<unsigned long long>(p.btf_size), hex(p.btf_hash).c_str(),
                            p.from_cache ? " (cached)" : "");
                std::printf("scanned       %llu bytes\n",
                            static_cast<unsigned long long>(p.bytes_scanned));
                std::printf("time          scan+BTF %.1f ms, init_task %.1f ms, total %.1f ms\n",
                            ms(p.btf_time), ms(p.init_task_time), ms(p.total_time));
                std::printf(
                    "offsets       task_struct size %llu: tasks %llu pid %llu tgid %llu comm "
                    "%llu[%llu] real_parent %llu mm %llu flags %llu start_time %llu cred %llu; "
                    "cred.uid %llu; mm_struct.pgd %llu\n",
                    static_cast<unsigned long long>(o.task_struct_size),
                    static_cast<unsigned long long>(o.task_tasks),
                    static_cast<unsigned long long>(o.task_pid),
                    static_cast<unsigned long long>(o.task_tgid),
                    static_cast<unsigned long long>(o.task_comm),
                    static_cast<unsigned long long>(o.task_comm_size),
                    static_cast<unsigned long long>(o.task_real_parent),
                    static_cast<unsigned long long>(o.task_mm),
                    static_cast<unsigned long long>(o.task_flags),
                    static_cast<unsigned long long>(o.task_start_time),
                    static_cast<unsigned long long>(o.task_cred),
                    static_cast<unsigned long long>(o.cred_uid),
                    static_cast<unsigned long long>(o.mm_pgd));
            }
            return 0;
        }
        vmi::LinuxGuest guest(*mem, prof->offsets, prof->init_task_va, a.la57);
        auto procs = guest.list_processes(cr3);
        if (!procs) {
            errors += "\n  cr3 " + hex(cr3) + ": listing processes: " + procs.error().message();
            continue;
        }
        if (a.json) {
            nlohmann::json list = nlohmann::json::array();
            for (const auto& p : *procs) list.push_back(process_json(p));
            nlohmann::json doc = {{"snapshot", a.snapshot},
                                  {"cr3", hex(cr3)},
                                  {"profile", profile_json(*prof, cr3)},
                                  {"processes", std::move(list)}};
            if (a.cmd == "pstree") doc["tree"] = tree_json(*procs);
            // Guest strings need not be UTF-8: replace bad bytes rather than throw.
            std::printf("%s\n",
                        doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
        } else if (a.cmd == "pstree") {
            print_tree(*procs);
        } else {
            std::printf("%7s %7s %6s %4s  %-16s %-32s %s\n", "PID", "PPID", "UID", "THR", "COMM",
                        "EXE", "ARGS");
            for (const auto& p : *procs) {
                const bool kthread = p.mm_va == 0;
                const std::string comm = kthread ? "[" + p.comm + "]" : p.comm;
                std::printf("%7d %7d %6s %4s  %-16s %-32s %s\n", p.pid, p.ppid, num(p.uid).c_str(),
                            num(p.threads).c_str(), comm.c_str(), printable(p.exe).c_str(),
                            printable(join_args(p)).c_str());
            }
        }
        return 0;
    }
    fail(a, "could not profile the guest kernel from its memory:" + errors);
}

}  // namespace

int main(int argc, char** argv) { return run(parse(argc, argv)); }
