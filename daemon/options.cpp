#include "options.hpp"

#include <charconv>

namespace vmid {

const char* const kUsage =
    "usage: vminsightd --qemu-pid PID [--guest-kernel VMLINUX]\n"
    "                  [--vm-name NAME] [--output FILE|-] [--device PATH]\n"
    "                  [--ring-pages N] [--rescan-interval-ms N] [--cr3-exiting on|off]\n"
    "Attaches vminsight.ko to the KVM VM of QEMU process PID and writes one JSON line\n"
    "per guest process seen, started, exec'd or exited. The guest kernel is understood from\n"
    "its own memory (its BTF); --guest-kernel gives a vmlinux ELF instead, for kernels\n"
    "without BTF (scripts/extract-vmlinux.sh turns a vmlinuz into one).\n";

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
        else if (a == "--output")
            o.output = value();
        else if (a == "--cr3-exiting") {
            const std::string& v = value();
            if (v != "on" && v != "off") throw UsageError(a + ": '" + v + "' is not on or off");
            o.cr3_exiting = v == "on";
        } else if (a == "--ring-pages")
            o.ring_pages = number<std::uint32_t>(a, value(), 1, 8192);
        else if (a == "--rescan-interval-ms")
            o.rescan_interval = std::chrono::milliseconds(number<int>(a, value(), 10, 60000));
        else
            throw UsageError("unknown option " + a);
    }
    if (!o.qemu_pid) throw UsageError("--qemu-pid is required");
    if (o.vm_name.empty()) o.vm_name = "qemu-" + std::to_string(o.qemu_pid);
    return o;
}

}  // namespace vmid
