// make bench: kallsyms derivation on a real kernel image. Each argument is a vmlinux ELF
// (scripts/extract-vmlinux.sh of the lab's Debian vmlinuz) whose sections are read at their
// link addresses, as a guest's page tables would map them; the symbol tables are searched from
// .text with no symbol file. Prints one line per image: symbols, where the tables are, and the
// time to find and decode them (best of a few runs).
//   kallsyms_bench VMLINUX [LABEL] [VMLINUX LABEL ...]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include "vmi/kallsyms.hpp"

namespace {

double ms(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e6; }

int bench(const std::string& path, const std::string& label) {
    auto img = vmi::VmlinuxMemory::open(path);
    if (!img) {
        std::fprintf(stderr, "kallsyms_bench: %s\n", img.error().message().c_str());
        return 1;
    }
    const auto text = (*img)->section_addr(".text");
    if (!text) {
        std::fprintf(stderr, "kallsyms_bench: %s has no .text\n", path.c_str());
        return 1;
    }
    vmi::KallsymsOptions o;
    o.scan_start = *text;
    o.text_va = *text;
    std::chrono::nanoseconds best{INT64_MAX}, scan{0};
    std::size_t count = 0;
    std::uint64_t scanned = 0, names_off = 0;
    for (int run = 0; run < 3; ++run) {
        auto ks = vmi::KernelSymbols::find(**img, o);
        if (!ks) {
            std::fprintf(stderr, "kallsyms_bench: %s: %s\n", path.c_str(),
                         ks.error().message().c_str());
            return 1;
        }
        if (ks->info().total_time < best) {
            best = ks->info().total_time;
            scan = ks->info().scan_time;
        }
        count = ks->size();
        scanned = ks->info().bytes_scanned;
        names_off = ks->info().names_va - *text;
    }
    std::printf(
        "kallsyms-derivation (%s): %zu symbols in %.1f ms (token table scan %.1f ms over %.1f MiB, "
        "names at _text + 0x%llx), from a vmlinux read by section\n",
        label.c_str(), count, ms(best), ms(scan), static_cast<double>(scanned) / (1 << 20),
        static_cast<unsigned long long>(names_off));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: kallsyms_bench VMLINUX [LABEL] [VMLINUX LABEL ...]\n");
        return 2;
    }
    int rc = 0;
    for (int i = 1; i < argc; i += 2) {
        const std::string label = i + 1 < argc ? argv[i + 1] : argv[i];
        rc |= bench(argv[i], label);
    }
    return rc;
}
