#include "options.hpp"

#include <algorithm>
#include <charconv>
#include <filesystem>

#include "syscall_event.hpp"
#include "vmi/syscall_abi.hpp"

namespace vmid {

const char* const kUsage =
    "usage: vminsightd --qemu-pid PID | --libvirt URI\n"
    "                  [--guest-kernel VMLINUX | --btf FILE | --isf FILE]\n"
    "                  [--vm-name NAME] [--output FILE|-] [--device PATH]\n"
    "                  [--ring-pages N] [--rescan-interval-ms N] [--cr3-exiting on|off]\n"
    "                  [--integrity-interval-ms N]\n"
    "                  [--syscalls NAME,...] [--lifecycle] [--deny-exec PATH]...\n"
    "                  [--allow-exec PATH]... [--policy RULES.yaml]... [--policy-dir DIR]...\n"
    "                  [--deny-errno N] [--vm-uuid UUID] [--vm-meta KEY=VALUE]...\n"
    "                  [--qmp SOCKET] [--dump-dir DIR] [--dump-max-mb N]\n"
    "                  [--control SOCKET] [--feed-config FEED.json]\n"
    "                  [--metrics ADDRESS:PORT]\n"
    "--libvirt follows a libvirt connection (e.g. qemu:///system): every domain whose\n"
    "VMInsight metadata enables monitoring (vminsightctl enable) is attached when it runs\n"
    "and detached when it stops, is saved or migrates; libvirtd restarts are ridden out.\n"
    "Attaches vminsight.ko to the KVM VM of QEMU process PID and writes one JSON line\n"
    "per guest process seen, started, exec'd or exited, and per syscall named in\n"
    "--syscalls; --lifecycle adds the fork, clone, exec and exit_group calls, each event\n"
    "saying what it means (fork with the child's pid, exec, exit with its code).\n"
    "--deny-exec makes execve of that exact path fail in the guest with\n"
    "--deny-errno (default 1, EPERM); --allow-exec denies every other path instead.\n"
    "--policy loads rule files (--policy-dir: every *.yaml in DIR, in name order): each\n"
    "event matching a rule is followed by an alert, and\n"
    "the syscalls the rules look at are trapped too; deny rules are enforced by the\n"
    "module, pause_vm through QEMU's QMP socket (--qmp, or QEMU's own -qmp unix:),\n"
    "dump_memory writes an ELF core under --dump-dir. Rules in a policy scoped to VMs\n"
    "apply when --vm-name, --vm-uuid and --vm-meta match it.\n"
    "--control serves vminsightctl (status, policy reload, resume) on a Unix socket.\n"
    "--feed-config sends every event through a disk spool to the sinks it names (file,\n"
    "HTTP(S) webhook / Elasticsearch / Splunk HEC, stdout) in ECS, OCSF, Falco or native\n"
    "JSON; each sink acknowledges on its own, so none is lost while a receiver is down.\n"
    "--metrics serves Prometheus metrics (GET /metrics), e.g. 127.0.0.1:9477.\n"
    "The guest kernel is understood from its own memory (its BTF); --guest-kernel gives a\n"
    "vmlinux ELF instead, for kernels without BTF (scripts/extract-vmlinux.sh turns a\n"
    "vmlinuz into one); --btf FILE (a vmlinux with .BTF, or a copy of a guest's\n"
    "/sys/kernel/btf/vmlinux) or --isf FILE (a Volatility 3 ISF JSON) gives only the\n"
    "struct layouts, and the kernel is still found in guest memory.\n"
    "Every --integrity-interval-ms (default 1000; 0: never) the guest kernel's syscall\n"
    "tables, IDT, entry MSRs, text and rodata, module list and task list are checked\n"
    "against what they were at attach and against the kernel's own symbols; a change is\n"
    "a guest-tampered event (evt.type = tamper in rules).\n";

namespace {

template <class T>
T number(const std::string& opt, const std::string& v, T min, T max) {
    T out{};
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    if (ec != std::errc() || p != v.data() + v.size() || out < min || out > max)
        throw UsageError(opt + ": '" + v + "' is not a number in [" + std::to_string(min) + ", " +
                         std::to_string(max) + "]");
    return out;
}

}  // namespace

Options parse_options(const std::vector<std::string>& args) {
    Options o;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        auto value = [&]() -> const std::string& {
            if (i + 1 >= args.size()) throw UsageError(a + ": missing value");
            return args[++i];
        };
        if (a == "--qemu-pid")
            o.qemu_pid = number<pid_t>(a, value(), 1, 1 << 22);
        else if (a == "--vm-name")
            o.vm_name = value();
        else if (a == "--device")
            o.device = value();
        else if (a == "--guest-kernel")
            o.guest_kernel = value();
        else if (a == "--btf" || a == "--isf") {
            if (o.profile) throw UsageError("--btf and --isf exclude each other");
            const std::string& path = value();
            auto f =
                a == "--btf" ? vmi::load_btf_profile_file(path) : vmi::load_isf_profile_file(path);
            if (!f) throw UsageError(a + " " + path + ": " + f.error().message());
            o.profile = std::make_shared<const vmi::KernelProfileFile>(std::move(*f));
        } else if (a == "--output") {
            o.output = value();
            o.output_given = true;
        } else if (a == "--feed-config")
            o.feed_config = value();
        else if (a == "--metrics")
            o.metrics = value();
        else if (a == "--cr3-exiting") {
            const std::string& v = value();
            if (v != "on" && v != "off") throw UsageError(a + ": '" + v + "' is not on or off");
            o.cr3_exiting = v == "on";
        } else if (a == "--ring-pages")
            o.ring_pages = number<std::uint32_t>(a, value(), 1, 8192);
        else if (a == "--syscalls") {
            const std::string& v = value();
            for (std::size_t b = 0; b <= v.size();) {
                std::size_t e = v.find(',', b);
                if (e == std::string::npos) e = v.size();
                if (e == b) throw UsageError(a + ": empty name in '" + v + "'");
                std::string name = v.substr(b, e - b);
                if (!vmi::syscall_number(name))
                    throw UsageError(a + ": unknown syscall '" + name + "'");
                o.syscalls.push_back(std::move(name));
                b = e + 1;
            }
        } else if (a == "--policy") {
            o.policies.push_back(value());
        } else if (a == "--policy-dir") {
            o.policy_dirs.push_back(value());
        } else if (a == "--libvirt") {
            o.libvirt = value();
            if (o.libvirt.empty()) throw UsageError(a + ": empty URI");
        } else if (a == "--lifecycle") {
            for (std::string_view n : kLifecycleSyscalls)
                if (std::find(o.syscalls.begin(), o.syscalls.end(), n) == o.syscalls.end())
                    o.syscalls.emplace_back(n);
        } else if (a == "--deny-exec" || a == "--allow-exec") {
            const std::string& v = value();
            if (v.empty() || v[0] != '/')
                throw UsageError(a + ": '" + v + "' is not an absolute path");
            (a == "--deny-exec" ? o.deny_exec : o.allow_exec).push_back(v);
        } else if (a == "--deny-errno")
            o.deny_errno = number<int>(a, value(), 1, 4095);
        else if (a == "--vm-uuid")
            o.vm_uuid = value();
        else if (a == "--vm-meta") {
            const std::string& v = value();
            const auto eq = v.find('=');
            if (eq == std::string::npos || eq == 0)
                throw UsageError(a + ": '" + v + "' is not KEY=VALUE");
            o.vm_metadata[v.substr(0, eq)] = v.substr(eq + 1);
        } else if (a == "--qmp")
            o.qmp = value();
        else if (a == "--dump-dir")
            o.dump_dir = value();
        else if (a == "--dump-max-mb")
            o.dump_max_bytes = number<std::uint64_t>(a, value(), 1, 1ULL << 24) << 20;
        else if (a == "--control")
            o.control = value();
        else if (a == "--rescan-interval-ms")
            o.rescan_interval = std::chrono::milliseconds(number<int>(a, value(), 10, 60000));
        else if (a == "--integrity-interval-ms")
            o.integrity_interval = std::chrono::milliseconds(number<int>(a, value(), 0, 3600000));
        else
            throw UsageError("unknown option " + a);
    }
    if (!o.qemu_pid && o.libvirt.empty()) throw UsageError("--qemu-pid or --libvirt is required");
    if (o.qemu_pid && !o.libvirt.empty())
        throw UsageError("--qemu-pid and --libvirt exclude each other");
    if (!o.libvirt.empty())
        for (const char* one_vm :
             {"--vm-name", "--vm-uuid", "--qmp", "--guest-kernel", "--btf", "--isf"})
            for (const auto& a : args)
                if (a == one_vm)
                    throw UsageError(std::string(one_vm) +
                                     " names one VM: with --libvirt, libvirt names each");
    if (!o.policy_dirs.empty()) {  // an unreadable directory is a usage error now, not later
        Options dirs_only;
        dirs_only.policy_dirs = o.policy_dirs;
        policy_files(dirs_only);
    }
    if (o.profile && !o.guest_kernel.empty())
        throw UsageError("--guest-kernel and --btf/--isf exclude each other");
    if (!o.deny_exec.empty() && !o.allow_exec.empty())
        throw UsageError("--deny-exec and --allow-exec exclude each other");
    if (o.vm_name.empty() && o.qemu_pid) o.vm_name = "qemu-" + std::to_string(o.qemu_pid);
    return o;
}

std::vector<std::string> policy_files(const Options& opts) {
    namespace fs = std::filesystem;
    std::vector<std::string> files = opts.policies;
    for (const auto& dir : opts.policy_dirs) {
        std::error_code ec;
        std::vector<std::string> here;
        for (const auto& e : fs::directory_iterator(dir, ec)) {
            const auto ext = e.path().extension();
            if ((ext == ".yaml" || ext == ".yml") && e.is_regular_file()) here.push_back(e.path());
        }
        if (ec) throw UsageError("--policy-dir " + dir + ": " + ec.message());
        std::sort(here.begin(), here.end());
        files.insert(files.end(), here.begin(), here.end());
    }
    return files;
}

}  // namespace vmid
