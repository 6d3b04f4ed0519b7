// vminsight-inspect: list the processes, kernel symbols and loaded modules of a Linux guest
// from a memory snapshot or a running VM with zero configuration (no vmlinux, no System.map,
// no profile):
// struct layouts come from the guest kernel's own BTF, init_task from its run-time comm,
// symbols from the kernel's kallsyms tables in its memory.
//
//   vminsight-inspect ps      SOURCE [COMMON...]
//   vminsight-inspect pstree  SOURCE [COMMON...]
//   vminsight-inspect profile SOURCE [COMMON...]
//   vminsight-inspect symbols SOURCE [NAME|0xADDRESS...] [COMMON...]
//   vminsight-inspect modules SOURCE [COMMON...]
//   vminsight-inspect integrity --snapshot FILE [--against EARLIER] [COMMON...]
//   SOURCE: --snapshot FILE | --live QEMU_PID
//   COMMON: [--cr3 HEX] [--la57] [--json] [--btf FILE | --isf FILE] [--vm-name NAME]
//
// --btf / --isf: kernels without BTF in memory; the file's struct layouts are used instead of
// searching guest memory for the BTF (an ISF's init_task symbol, slid, also spares the scan).
// --vm-name: the VM part of each process's entity_id in `ps --json` / `pstree --json`;
// default: the snapshot's file name without its directory (live: qemu-PID).
// integrity runs one kernel integrity sweep (vmi/integrity.hpp): syscall tables, IDT, hidden
// modules and tasks by absolute rules, and kernel text/rodata and table targets against the
// baseline of EARLIER, a snapshot of the same boot. Exit status 3 if a finding is critical.
//
// symbols with no NAME prints every symbol like /proc/kallsyms; a NAME prints each symbol of
// that name, an address the symbol it falls in. Exit status 1 if a NAME or address is unknown.
//
// FILE is a QEMU `dump-guest-memory` ELF (CR3 from its QEMU notes) or a raw `pmemsave` image
// (file offset == guest-physical address; needs --cr3). --live reads the running VM of that
// QEMU process through vminsight.ko (root; not while vminsightd holds the VM).
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "inspect_integrity.hpp"
#include "inspect_source.hpp"
#include "vmi/kallsyms.hpp"
#include "vmi/kernel_discovery.hpp"
#include "vmi/linux_model.hpp"
#include "vmi/modules.hpp"
#include "vmi/profile_file.hpp"

namespace {

constexpr const char* kUsage =
    "usage: vminsight-inspect ps|pstree|profile|modules SOURCE [OPTIONS]\n"
    "       vminsight-inspect symbols SOURCE [NAME|0xADDRESS...] [OPTIONS]\n"
    "       vminsight-inspect integrity --snapshot FILE [--against EARLIER] [OPTIONS]\n"
    "  SOURCE: --snapshot FILE: QEMU dump-guest-memory ELF (CR3 taken from its notes) or raw\n"
    "          pmemsave image (needs --cr3).\n"
    "          --live QEMU_PID (or --qemu-pid): the running VM, through vminsight.ko (root).\n"
    "  OPTIONS: [--cr3 HEX] [--la57] [--json] [--btf FILE | --isf FILE] [--vm-name NAME]\n"
    "  --btf FILE: kernel BTF file (vmlinux with .BTF, /sys/kernel/btf/vmlinux copy) and\n"
    "  --isf FILE: Volatility 3 ISF JSON profile, for kernels without BTF in memory.\n"
    "  --vm-name NAME: VM part of the process entity_id (default: the snapshot's file name).\n"
    "  symbols: every kernel symbol (like /proc/kallsyms), or the named ones, or the symbol an\n"
    "           address falls in.\n"
    "  integrity: syscall tables, IDT, hidden modules and tasks; with --against, also kernel\n"
    "           text/rodata changes since EARLIER (same boot). Exit 3 on a critical finding.\n";

struct Args {
    std::string cmd;
    std::string snapshot;
    pid_t live = 0;
    std::vector<std::uint64_t> cr3s;
    std::vector<std::string> names;  // symbols: names or 0x addresses
    std::string against;             // integrity: the baseline snapshot
    std::string btf_file;
    std::string isf_file;
    std::string vm_name;  // default: the snapshot's base name
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
    if (a.cmd != "ps" && a.cmd != "pstree" && a.cmd != "profile" && a.cmd != "symbols" &&
        a.cmd != "modules" && a.cmd != "integrity")
        usage_error("unknown command '" + a.cmd + "'");
    for (int i = 2; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage_error(arg + " needs a value");
            return argv[++i];
        };
        if (arg == "--snapshot") {
            a.snapshot = value();
        } else if (arg == "--live" || arg == "--qemu-pid") {
            const std::string v = value();
            char* end = nullptr;
            errno = 0;
            const long pid = std::strtol(v.c_str(), &end, 10);
            if (v.empty() || *end != '\0' || errno != 0 || pid <= 0 || pid > 0x3fffffff)
                usage_error(arg + " '" + v + "' is not a process id");
            a.live = static_cast<pid_t>(pid);
        } else if (arg == "--cr3") {
            const std::string v = value();
            char* end = nullptr;
            errno = 0;
            const unsigned long long cr3 = std::strtoull(v.c_str(), &end, 16);
            if (v.empty() || end == nullptr || *end != '\0' || errno != 0) {
                usage_error("--cr3 '" + v + "' is not a hex number");
            }
            a.cr3s.push_back(cr3);
        } else if (arg == "--against" && a.cmd == "integrity") {
            a.against = value();
        } else if (arg == "--btf") {
            a.btf_file = value();
        } else if (arg == "--isf") {
            a.isf_file = value();
        } else if (arg == "--vm-name") {
            a.vm_name = value();
            if (a.vm_name.empty()) usage_error("--vm-name needs a non-empty NAME");
        } else if (arg == "--json") {
            a.json = true;
        } else if (arg == "--la57") {
            a.la57 = true;
        } else if (a.cmd == "symbols" && !arg.empty() && arg[0] != '-') {
            a.names.push_back(arg);
        } else {
            usage_error("unknown argument '" + arg + "'");
        }
    }
    if (a.snapshot.empty() == (a.live == 0))
        usage_error("one of --snapshot FILE and --live QEMU_PID is required");
    if (a.cmd == "integrity" && a.live)
        usage_error("integrity reads snapshots (vminsightd sweeps a live VM itself)");
    if (!a.btf_file.empty() && !a.isf_file.empty())
        usage_error("--btf and --isf exclude each other");
    if (a.vm_name.empty() && a.live) a.vm_name = "qemu-" + std::to_string(a.live);
    if (a.vm_name.empty()) {
        const auto slash = a.snapshot.find_last_of('/');
        a.vm_name = slash == std::string::npos ? a.snapshot : a.snapshot.substr(slash + 1);
    }
    return a;
}

std::string hex(std::uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

double ms(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e6; }

std::string label(const Args& a) {
    return a.live ? "qemu pid " + std::to_string(a.live) : a.snapshot;
}

[[noreturn]] void fail(const Args& a, const std::string& what) {
    // Errors of a live VM already start with "qemu pid N:".
    if (what.rfind(label(a) + ":", 0) == 0) {
        std::fprintf(stderr, "vminsight-inspect: %s\n", what.c_str());
    } else {
        std::fprintf(stderr, "vminsight-inspect: %s: %s\n", label(a).c_str(), what.c_str());
    }
    std::exit(1);
}

// Where the JSON documents say the memory came from.
nlohmann::json source_doc(const Args& a) {
    if (a.live) return {{"qemu_pid", a.live}};
    return {{"snapshot", a.snapshot}};
}

nlohmann::json profile_json(const vmi::GuestKernelProfile& p, std::uint64_t cr3) {
    const vmi::LinuxOffsets& o = p.offsets;
    return {
        {"cr3", hex(cr3)},
        {"source", std::string(vmi::to_string(p.source))},
        {"kaslr_slide", p.kaslr_slide ? nlohmann::json(hex(*p.kaslr_slide)) : nlohmann::json()},
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
          {"task_signal", o.task_signal},
          {"has_modules", o.has_modules},
          {"module_list", o.module_list},
          {"module_name", o.module_name},
          {"module_base", o.module_base},
          {"module_size_fields", o.module_size_count},
          {"has_children", o.has_children},
          {"has_pid_hash", o.has_pid_hash},
          {"xa_node_slots", o.xa_node_slots},
          {"xa_chunk", o.xa_chunk},
          {"pid_tasks", o.pid_tasks},
          {"task_pid_links", o.task_pid_links},
          {"has_runqueues", o.has_runqueues},
          {"percpu_runqueues", o.percpu_runqueues},
          {"rq_cfs_tasks", o.rq_cfs_tasks},
          {"task_se_group_node", o.task_se_group_node}}},
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
    nlohmann::json j = {{"pid", p.pid},
                        {"ppid", p.ppid},
                        {"comm", p.comm},
                        {"kernel_thread", p.mm_va == 0},
                        {"task", hex(p.task_va)},
                        {"start_time_ns", p.start_time_ns},
                        {"entity_id", p.entity_id}};
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

nlohmann::json kallsyms_json(const vmi::KernelSymbols& ks) {
    const vmi::KallsymsInfo& i = ks.info();
    return {
        {"count", ks.size()},
        {"num_syms_va", hex(i.num_syms_va)},
        {"names_va", hex(i.names_va)},
        {"markers_va", hex(i.markers_va)},
        {"token_table_va", hex(i.token_table_va)},
        {"token_index_va", hex(i.token_index_va)},
        {"offsets_va", hex(i.offsets_va)},
        {"relative_base_va", hex(i.relative_base_va)},
        {"relative_base", hex(i.relative_base)},
        {"slide", hex(i.slide)},
        {"absolute_percpu", i.absolute_percpu},
        {"offsets_after_token_index", i.offsets_after_token_index},
        {"bytes_scanned", i.bytes_scanned},
        {"token_index_candidates", i.token_index_candidates},
        {"scan_ms", ms(i.scan_time)},
        {"decode_ms", ms(i.decode_time)},
        {"total_ms", ms(i.total_time)},
        {"missing_well_known", i.missing_well_known},
    };
}

nlohmann::json symbol_json(const vmi::KernelSymbol& s) {
    return {{"name", std::string(s.name)},
            {"type", std::string(1, s.type)},
            {"address", hex(s.address)}};
}

// A "0x..." argument of `symbols`: an address to symbolize.
bool parse_address(const std::string& s, std::uint64_t& out) {
    if (s.size() < 3 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X')) return false;
    char* end = nullptr;
    errno = 0;
    out = std::strtoull(s.c_str() + 2, &end, 16);
    return end != nullptr && *end == '\0' && errno == 0;
}

// `symbols`: every symbol, or the named ones / the symbols the addresses fall in. Returns the
// exit status (1 if something asked for is unknown).
int print_symbols(const Args& a, std::uint64_t cr3, const vmi::KernelSymbols& ks) {
    int rc = 0;
    nlohmann::json list = nlohmann::json::array();
    nlohmann::json missing = nlohmann::json::array();
    auto emit = [&](const vmi::KernelSymbol& s) {
        if (a.json) {
            list.push_back(symbol_json(s));
        } else {
            std::printf("%016llx %c %s\n", static_cast<unsigned long long>(s.address), s.type,
                        std::string(s.name).c_str());
        }
    };
    if (a.names.empty()) {
        for (std::size_t i = 0; i < ks.size(); ++i) emit(ks.at(i));
    }
    for (const std::string& q : a.names) {
        std::uint64_t addr = 0;
        if (parse_address(q, addr)) {
            auto loc = ks.symbolize(addr);
            if (!loc) {
                missing.push_back(q);
                rc = 1;
                continue;
            }
            if (a.json) {
                nlohmann::json j = symbol_json(loc->symbol);
                j["query"] = q;
                j["offset"] = hex(loc->offset);
                j["size"] = hex(loc->size);
                list.push_back(std::move(j));
            } else {
                std::printf("%016llx %c %s+%s/%s\n", static_cast<unsigned long long>(addr),
                            loc->symbol.type, std::string(loc->symbol.name).c_str(),
                            hex(loc->offset).c_str(), hex(loc->size).c_str());
            }
            continue;
        }
        const auto all = ks.lookup(q);
        if (all.empty()) {
            missing.push_back(q);
            rc = 1;
        }
        for (const auto& s : all) emit(s);
    }
    if (a.json) {
        nlohmann::json doc = source_doc(a);
        doc["cr3"] = hex(cr3);
        doc["kallsyms"] = kallsyms_json(ks);
        doc["symbols"] = std::move(list);
        doc["missing"] = std::move(missing);
        std::printf("%s\n",
                    doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
        for (const auto& q : missing) {
            std::fprintf(stderr, "vminsight-inspect: %s: no kernel symbol %s\n", label(a).c_str(),
                         printable(q.get<std::string>()).c_str());
        }
    }
    return rc;
}

void print_module_table(const std::vector<vmi::KernelModule>& mods) {
    std::printf("%-24s %10s %5s %-9s %s\n", "MODULE", "SIZE", "REFS", "STATE", "ADDRESS");
    for (const auto& m : mods) {
        std::printf("%-24s %10llu %5s %-9s %s\n", m.name.c_str(),
                    static_cast<unsigned long long>(m.size), num(m.refcount).c_str(),
                    std::string(vmi::module_state_name(m.state)).c_str(), hex(m.base).c_str());
    }
}

// `ks` is null when the list head came from an ISF profile instead of kallsyms.
void print_modules(const Args& a, std::uint64_t cr3, const vmi::KernelSymbols* ks,
                   std::uint64_t head, const std::vector<vmi::KernelModule>& mods) {
    if (a.json) {
        nlohmann::json list = nlohmann::json::array();
        for (const auto& m : mods) {
            list.push_back({{"name", m.name},
                            {"size", m.size},
                            {"refcount", opt(m.refcount)},
                            {"state", std::string(vmi::module_state_name(m.state))},
                            {"address", hex(m.base)},
                            {"module", hex(m.module_va)}});
        }
        nlohmann::json doc = source_doc(a);
        doc["cr3"] = hex(cr3);
        doc["kallsyms"] = ks ? kallsyms_json(*ks) : nlohmann::json();
        doc["modules_head"] = hex(head);
        doc["modules"] = std::move(list);
        std::printf("%s\n",
                    doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
        return;
    }
    print_module_table(mods);
}

// --btf / --isf, parsed once for every CR3 tried.
std::optional<vmi::KernelProfileFile> load_profile(const Args& a) {
    if (a.btf_file.empty() && a.isf_file.empty()) return std::nullopt;
    auto f = a.btf_file.empty() ? vmi::load_isf_profile_file(a.isf_file)
                                : vmi::load_btf_profile_file(a.btf_file);
    if (!f) fail(a, "profile: " + f.error().message());
    return std::move(*f);
}

// `modules` with an ISF profile whose kallsyms search failed: the slid `modules` symbol.
std::optional<std::uint64_t> isf_modules_head(const vmi::GuestKernelProfile& prof,
                                              const std::optional<vmi::KernelProfileFile>& file) {
    if (!file || !file->isf || !prof.kaslr_slide) return std::nullopt;
    auto head = file->isf->symbol("modules");
    if (!head) return std::nullopt;
    return *head + *prof.kaslr_slide;
}

int run(const Args& a) {
    const std::optional<vmi::KernelProfileFile> file = load_profile(a);
    inspect::Source src;
    try {
        src = a.live ? inspect::open_live(a.live, a.cr3s)
                     : inspect::open_snapshot(a.snapshot, a.cr3s);
    } catch (const std::exception& e) {
        fail(a, e.what());
    }
    vmi::GuestMemory* mem = src.mem;
    const std::vector<std::uint64_t>& cr3s = src.cr3s;

    // Try each CR3 (vCPUs may be halted in odd states); keep the first that works.
    std::string errors;
    for (std::uint64_t cr3 : cr3s) {
        vmi::DiscoveryOptions opts;
        opts.la57 = a.la57;
        if (file) opts.profile = &*file;
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
                std::printf("%-13s %s\n", a.live ? "qemu pid" : "snapshot", label(a).c_str());
                std::printf("cr3           %s\n", hex(cr3).c_str());
                std::printf("_text         %s\n", hex(p.text_va).c_str());
                std::printf("init_task     %s (_text + %s)\n", hex(p.init_task_va).c_str(),
                            hex(p.init_task_va - p.text_va).c_str());
                if (p.source == vmi::ProfileSource::kGuestBtf) {
                    std::printf("BTF           %s (_text + %s), %llu bytes, hash %s%s\n",
                                hex(p.btf_va).c_str(), hex(p.btf_va - p.text_va).c_str(),
                                static_cast<unsigned long long>(p.btf_size),
                                hex(p.btf_hash).c_str(), p.from_cache ? " (cached)" : "");
                } else {
                    std::printf("profile       %s %s, hash %s%s\n",
                                std::string(vmi::to_string(p.source)).c_str(), file->path.c_str(),
                                hex(p.btf_hash).c_str(), p.from_cache ? " (cached)" : "");
                }
                if (p.kaslr_slide) {
                    std::printf("KASLR slide   %s\n", hex(*p.kaslr_slide).c_str());
                }
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
        if (a.cmd == "integrity") {
            const vmi::tools::IntegrityArgs ia{a.snapshot, a.against, a.cr3s, a.json, a.la57};
            std::string why;
            const int rc = vmi::tools::inspect_integrity(*mem, cr3, *prof, src.vcpus, ia, why);
            if (rc >= 0) return rc;
            errors += "\n  cr3 " + hex(cr3) + ": " + why;
            continue;
        }
        if (a.cmd == "symbols" || a.cmd == "modules") {
            auto ks = vmi::discover_kernel_symbols(*mem, cr3, *prof, a.la57);
            if (!ks && a.cmd == "modules") {
                // No kallsyms: an ISF profile's `modules` symbol, slid, still finds the list.
                if (auto head = isf_modules_head(*prof, file)) {
                    auto mods = vmi::list_modules(*mem, cr3, prof->offsets, *head, a.la57);
                    if (mods) {
                        print_modules(a, cr3, nullptr, *head, *mods);
                        return 0;
                    }
                    errors += "\n  cr3 " + hex(cr3) +
                              ": listing modules (ISF `modules`): " + mods.error().message();
                }
            }
            if (!ks) {
                errors += "\n  cr3 " + hex(cr3) + ": kallsyms: " + ks.error().message();
                continue;
            }
            if (a.cmd == "symbols") return print_symbols(a, cr3, *ks);
            const auto head = vmi::modules_list_head(*ks);
            if (!head) {
                errors += "\n  cr3 " + hex(cr3) + ": kallsyms has no `modules` list head";
                continue;
            }
            auto mods = vmi::list_modules(*mem, cr3, prof->offsets, *head, a.la57);
            if (!mods) {
                errors += "\n  cr3 " + hex(cr3) + ": listing modules: " + mods.error().message();
                continue;
            }
            print_modules(a, cr3, &*ks, *head, *mods);
            return 0;
        }
        vmi::LinuxGuest guest(*mem, prof->offsets, prof->init_task_va, a.la57);
        vmi::ListOptions lopts;
        lopts.vm_name = a.vm_name;
        auto procs = guest.list_processes(cr3, lopts);
        if (!procs) {
            errors += "\n  cr3 " + hex(cr3) + ": listing processes: " + procs.error().message();
            continue;
        }
        if (a.json) {
            nlohmann::json list = nlohmann::json::array();
            for (const auto& p : *procs) list.push_back(process_json(p));
            nlohmann::json doc = source_doc(a);
            doc["vm_name"] = a.vm_name;
            doc["cr3"] = hex(cr3);
            doc["profile"] = profile_json(*prof, cr3);
            doc["processes"] = std::move(list);
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
