// libFuzzer target: hostile guest memory through every parser of libvmi_bridge.
//
// Input: one mode byte, then a mode-specific body.
//   mode % 6 == 0  raw guest RAM. Body: u64 cr3, u64 init_task_va, u8 flags, u8 offset_tweak,
//                  then the image (guest-physical 0..n). Runs page walks, LinuxGuest process
//                  listing (exe, argv, threads) with the compact synthetic offsets (optionally
//                  perturbed), and zero-config discover_kernel (bounded scan).
//   mode % 6 == 1  a QEMU dump-guest-memory ELF core (the body is the file): ElfCoreMemory
//                  parsing, then discovery and listing from each vCPU's CR3, as
//                  `vminsight-inspect ps` does; parse_qemu_notes() on the raw body too.
//   mode % 6 == 2  a BTF blob: BtfProfile::from_blob + linux_offsets() + member lookups.
//   mode % 6 == 3  a kernel image for kallsyms. Body: u8 flags, u32 init_task offset, then
//                  the image at kText (read directly, no page tables). KernelSymbols::find
//                  with _text (and, flags & 1, init_task) cross-checks, then lookups,
//                  symbolize and modules_list_head.
//   mode % 6 == 4  the kernel module list. Body: u64 cr3, u64 modules head, u8 flags, u8
//                  offset_tweak, then guest RAM. list_modules() with a 6.4-style struct module
//                  (flags & 1: 6.1 style), optionally perturbed (flags & 2).
//   mode % 6 == 5  ISF JSON text: load_isf_profile (validation, Linux offsets) + lookups.
//
// With VMI_FUZZ_WRITE_SEEDS=DIR set, the binary writes a seed corpus (a synthetic guest with
// exe/argv/threads and an in-memory kernel BTF, as raw RAM and as an ELF core; a BTF blob; a
// kernel image with kallsyms tables; a guest with three modules; an ISF profile) to DIR and
// exits.
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <elf.h>
#include <linux/btf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "bridge_btf_to_isf.hpp"
#include "bridge_synthetic_guest.hpp"
#include "bridge_synthetic_kallsyms.hpp"
#include "vmi/btf_profile.hpp"
#include "vmi/buffer_memory.hpp"
#include "vmi/elf_core_memory.hpp"
#include "vmi/kallsyms.hpp"
#include "vmi/kernel_discovery.hpp"
#include "vmi/linux_model.hpp"
#include "vmi/modules.hpp"
#include "vmi/page_walker.hpp"
#include "vmi/profile_file.hpp"

namespace {

using vmi::test::SyntheticLinux;
using vmi::test::SynthProcess;

constexpr std::uint64_t kText = 0xffff'ffff'8100'0000ULL;
constexpr std::size_t kRawHeader = 8 + 8 + 1 + 1;
constexpr std::size_t kMaxTasks = 512;  // per listing: keeps each input fast
constexpr std::size_t kKallsymsHeader = 1 + 4;
constexpr std::size_t kMaxFuzzSymbols = 1U << 14;  // keeps each input fast
constexpr std::size_t kMaxFuzzModules = 256;

template <class T>
T get(const std::uint8_t* p) {
    T v{};
    std::memcpy(&v, p, sizeof v);
    return v;
}

void list(vmi::GuestMemory& mem, const vmi::LinuxOffsets& off, std::uint64_t init_task,
          std::uint64_t cr3, bool la57) {
    vmi::LinuxGuest g(mem, off, init_task, la57, kMaxTasks);
    auto procs = g.list_processes(cr3);
    if (procs) {
        std::size_t sum = 0;
        for (const auto& p : *procs) {
            sum += p.exe.size() + p.argv.size() + p.comm.size();
            (void)vmi::find_by_cr3(*procs, p.pgd_pa);
        }
        if (sum == SIZE_MAX) std::abort();  // keep the work observable
    }
}

void discover_and_list(vmi::GuestMemory& mem, std::uint64_t cr3, bool la57) {
    vmi::DiscoveryOptions o;
    o.la57 = la57;
    o.scan_len = 4ULL << 20;
    o.use_cache = false;
    auto prof = vmi::discover_kernel(mem, cr3, o);
    if (prof) list(mem, prof->offsets, prof->init_task_va, cr3, la57);
}

void fuzz_raw(const std::uint8_t* data, std::size_t size) {
    if (size < kRawHeader) return;
    const auto cr3 = get<std::uint64_t>(data);
    const auto init_task = get<std::uint64_t>(data + 8);
    const std::uint8_t flags = data[16];
    const std::uint8_t tweak = data[17];
    const bool la57 = (flags & 1) != 0;
    vmi::BufferMemory mem;
    mem.write(0, std::as_bytes(std::span(data + kRawHeader, size - kRawHeader)));

    for (std::uint64_t va : {init_task, init_task + 0x1000, SyntheticLinux::kDirectMap,
                             SyntheticLinux::kUserArgs, kText}) {
        (void)vmi::translate_ex(mem, cr3, va, la57, (flags & 2) ? 46 : 52);
        std::byte buf[64];
        (void)vmi::read_virt(mem, cr3, va - 8, buf, la57);
    }
    vmi::LinuxOffsets off = vmi::test::compact_offsets();
    if (flags & 4) {  // perturb one offset: misaligned / overlapping layouts
        std::uint64_t* fields[] = {&off.task_tasks,       &off.task_mm,         &off.mm_exe_file,
                                   &off.dentry_d_name,    &off.qstr_len,        &off.mm_arg_start,
                                   &off.task_signal,      &off.mount_mnt,       &off.file_f_path,
                                   &off.task_thread_node, &off.dentry_d_parent, &off.cred_euid};
        *fields[tweak % std::size(fields)] += (tweak >> 4) - 8;
    }
    list(mem, off, init_task, cr3, la57);
    if (flags & 8) discover_and_list(mem, cr3, la57);
}

void fuzz_elf(const std::uint8_t* data, std::size_t size) {
    std::vector<vmi::VcpuState> cpus;
    (void)vmi::parse_qemu_notes(std::as_bytes(std::span(data, size)), cpus);

    const int fd = memfd_create("fuzz-core", MFD_CLOEXEC);
    if (fd < 0) return;
    std::size_t done = 0;
    while (done < size) {
        const ssize_t n = write(fd, data + done, size - done);
        if (n <= 0) break;
        done += static_cast<std::size_t>(n);
    }
    auto core = vmi::ElfCoreMemory::open("/proc/self/fd/" + std::to_string(fd));
    close(fd);
    if (!core) return;
    const auto cr3s = (*core)->vcpu_cr3s();
    for (std::size_t i = 0; i < cr3s.size() && i < 2; ++i)
        discover_and_list(**core, cr3s[i], false);
}

void fuzz_btf(const std::uint8_t* data, std::size_t size) {
    auto prof = vmi::BtfProfile::from_blob(std::as_bytes(std::span(data, size)));
    if (!prof) return;
    (void)prof->linux_offsets();
    (void)prof->struct_size("task_struct");
    (void)prof->member("task_struct", "comm");
    (void)prof->member("qstr", "len");
}

// The fuzz input as kernel-virtual memory at kText: every byte readable, nothing else.
class ImageKernelMemory final : public vmi::KernelVirtualMemory {
  public:
    explicit ImageKernelMemory(std::span<const std::uint8_t> image) : image_(image) {}
    std::size_t read_prefix(std::uint64_t va, std::span<std::byte> out) override {
        if (va < kText || va - kText >= image_.size()) return 0;
        const std::size_t n = std::min<std::size_t>(out.size(), image_.size() - (va - kText));
        std::memcpy(out.data(), image_.data() + (va - kText), n);
        return n;
    }
    std::uint64_t hole_size(std::uint64_t va) override {
        if (va < kText) return kText - va;
        return UINT64_MAX - va;  // nothing mapped past the image
    }

  private:
    std::span<const std::uint8_t> image_;
};

void fuzz_kallsyms(const std::uint8_t* data, std::size_t size) {
    if (size < kKallsymsHeader) return;
    const std::uint8_t flags = data[0];
    const auto init_off = get<std::uint32_t>(data + 1);
    ImageKernelMemory mem(std::span(data + kKallsymsHeader, size - kKallsymsHeader));
    vmi::KallsymsOptions o;
    o.scan_start = kText;
    o.scan_len = size - kKallsymsHeader;
    o.text_va = kText;
    if (flags & 1) o.init_task_va = kText + init_off;
    o.max_symbols = kMaxFuzzSymbols;
    auto ks = vmi::KernelSymbols::find(mem, o);
    if (!ks) return;
    std::size_t sum = 0;
    for (std::size_t i = 0; i < ks->size() && i < 64; ++i) {
        const vmi::KernelSymbol s = ks->at(i);
        sum += ks->lookup(s.name).size();
        if (auto loc = ks->symbolize(s.address + 1)) sum += loc->offset;
    }
    (void)ks->address_of("init_task");
    (void)vmi::modules_list_head(*ks);
    if (sum == SIZE_MAX) std::abort();
}

// struct module shaped like 6.12's (mem[7]) or 6.1's (core_layout + init_layout).
vmi::LinuxOffsets fuzz_module_offsets(bool mem_array) {
    vmi::LinuxOffsets o;
    o.has_modules = true;
    o.module_struct_size = 0x500;
    o.module_state = 0;
    o.module_list = 8;
    o.module_name = 24;
    o.module_name_size = 56;
    o.module_refcnt = 0x4a0;
    o.module_base = 0x140;
    if (mem_array) {
        o.module_size_count = 7;
        for (std::size_t i = 0; i < 7; ++i) o.module_sizes[i] = 0x148 + i * 0x50;
    } else {
        o.module_size_count = 2;
        o.module_sizes[0] = 0x148;
        o.module_sizes[1] = 0x198;
    }
    return o;
}

void fuzz_modules(const std::uint8_t* data, std::size_t size) {
    if (size < kRawHeader) return;
    const auto cr3 = get<std::uint64_t>(data);
    const auto head = get<std::uint64_t>(data + 8);
    const std::uint8_t flags = data[16];
    const std::uint8_t tweak = data[17];
    vmi::BufferMemory mem;
    mem.write(0, std::as_bytes(std::span(data + kRawHeader, size - kRawHeader)));
    vmi::LinuxOffsets off = fuzz_module_offsets((flags & 1) == 0);
    if (flags & 2) {  // perturb one offset: misaligned / overlapping / huge layouts
        std::uint64_t* fields[] = {&off.module_list,     &off.module_name,     &off.module_state,
                                   &off.module_base,     &off.module_sizes[0], &off.module_refcnt,
                                   &off.module_name_size};
        *fields[tweak % std::size(fields)] += (tweak >> 4) - 8;
    }
    auto mods = vmi::list_modules(mem, cr3, off, head, false, kMaxFuzzModules);
    if (mods) {
        std::size_t sum = 0;
        for (const auto& m : *mods) sum += m.name.size() + vmi::module_state_name(m.state).size();
        if (sum == SIZE_MAX) std::abort();
    }
}

void fuzz_isf(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto isf = vmi::IsfProfile::parse(text, "fuzz.json");
    if (!isf) return;
    (void)isf->linux_offsets();
    (void)isf->member("task_struct", "comm");
    (void)isf->member("task_struct", "nosuch");  // walks every anonymous member
    (void)isf->struct_size("module");
    (void)isf->symbol("init_task");
    auto file = vmi::load_isf_profile(text, "fuzz.json");
    if (file && file->offsets.task_struct_size == 0) std::abort();  // validated non-zero
}

// --- Seed corpus -------------------------------------------------------------------------

// A 4-process guest with its kernel image (init_task and BTF) at kText; returns dense RAM.
std::vector<std::uint8_t> seed_ram(std::uint64_t& cr3, std::uint64_t& init_task) {
    SyntheticLinux g(vmi::test::compact_offsets(), 2ULL << 20);
    g.map_kernel_image(kText);
    g.add_mount("/usr");
    std::vector<SynthProcess> v(4);
    v[0] = {0, 0, "swapper/0", "", {}, 0, 0, 0, 1};
    v[1] = {1, 0, "init", "/sbin/init", {"/sbin/init", "splash"}, 0, 0, 0, 1};
    v[2] = {2, 0, "kthreadd", "", {}, 0, 0, 0, 1};
    v[3] = {40, 1, "sh", "/usr/bin/sh", {"sh", "-c", "sleep 1"}, 1000, 1000, 100, 3};
    g.build(v);
    const auto btf = vmi::test::compact_kernel_btf();
    const std::uint64_t at = g.alloc(btf.size(), 8);
    g.mem().write(SyntheticLinux::pa(at), btf);
    cr3 = g.cr3();
    init_task = g.init_task_va();
    std::vector<std::uint8_t> ram((g.used_bytes() + 4095) & ~std::uint64_t{4095});  // whole pages
    for (std::uint64_t pg = 0; pg < ram.size(); pg += 4096) {
        const std::size_t n = std::min<std::size_t>(4096, ram.size() - pg);
        (void)g.mem().read_phys(pg, std::as_writable_bytes(std::span(ram.data() + pg, n)));
    }
    return ram;
}

template <class T>
void put(std::vector<std::uint8_t>& v, const T& x) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(&x);
    v.insert(v.end(), p, p + sizeof x);
}

// ELF core: header, PT_NOTE (one QEMU note with cr3), one PT_LOAD of `ram` at gpa 0.
std::vector<std::uint8_t> seed_core(const std::vector<std::uint8_t>& ram, std::uint64_t cr3) {
    std::vector<std::uint8_t> note;
    Elf64_Nhdr nh{5, 432, 0};
    put(note, nh);
    note.insert(note.end(), {'Q', 'E', 'M', 'U', 0, 0, 0, 0});
    std::vector<std::uint8_t> st(432);
    const std::uint32_t ver = 1, sz = 432;
    std::memcpy(st.data(), &ver, 4);
    std::memcpy(st.data() + 4, &sz, 4);
    std::memcpy(st.data() + 392 + 3 * 8, &cr3, 8);
    note.insert(note.end(), st.begin(), st.end());

    std::vector<std::uint8_t> f;
    Elf64_Ehdr eh{};
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = ET_CORE;
    eh.e_machine = EM_X86_64;
    eh.e_version = EV_CURRENT;
    eh.e_phoff = sizeof eh;
    eh.e_ehsize = sizeof eh;
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = 2;
    put(f, eh);
    const std::uint64_t notes_at = sizeof eh + 2 * sizeof(Elf64_Phdr);
    Elf64_Phdr pn{};
    pn.p_type = PT_NOTE;
    pn.p_offset = notes_at;
    pn.p_filesz = pn.p_memsz = note.size();
    put(f, pn);
    Elf64_Phdr pl{};
    pl.p_type = PT_LOAD;
    pl.p_offset = notes_at + note.size();
    pl.p_filesz = pl.p_memsz = ram.size();
    put(f, pl);
    f.insert(f.end(), note.begin(), note.end());
    f.insert(f.end(), ram.begin(), ram.end());
    return f;
}

void write_seed(const std::string& dir, const std::string& name, std::uint8_t mode,
                const std::vector<std::uint8_t>& body) {
    std::ofstream out(dir + "/" + name, std::ios::binary);
    out.put(static_cast<char>(mode));
    out.write(reinterpret_cast<const char*>(body.data()),
              static_cast<std::streamsize>(body.size()));
    if (!out) {
        std::fprintf(stderr, "cannot write %s/%s\n", dir.c_str(), name.c_str());
        std::exit(1);
    }
}

// A kernel image: noise, then the kallsyms tables of a small kernel at +0x20048, init_task
// at +0x30000.
std::vector<std::uint8_t> seed_kallsyms() {
    std::vector<vmi::test::SynthSym> syms = {
        {0, 'A', "__per_cpu_start", true},
        {0x2c000, 'A', "current_task", true},
        {kText, 'T', "_text"},
        {kText, 'T', "_stext"},
    };
    for (std::size_t i = 0; i < 40; ++i) {
        syms.push_back({kText + 0x1000 + i * 0x40, 'T', "func_" + std::to_string(i)});
    }
    syms.push_back({kText + 0x20000, 'D', "sys_call_table"});
    syms.push_back({kText + 0x30000, 'D', "init_task"});
    syms.push_back({kText + 0x31000, 'D', "modules"});
    const auto blob = vmi::test::KallsymsEncoder::build(syms, kText);
    std::vector<std::uint8_t> body = {1};
    put(body, std::uint32_t{0x30000});
    std::vector<std::uint8_t> image(0x20048 + blob.bytes.size());
    for (std::size_t i = 0; i < 0x20000; ++i) image[i] = static_cast<std::uint8_t>(i * 131 + 7);
    std::memcpy(image.data() + 0x20048, blob.bytes.data(), blob.bytes.size());
    body.insert(body.end(), image.begin(), image.end());
    return body;
}

// A guest with three modules on the list headed at a direct-map address.
std::vector<std::uint8_t> seed_modules() {
    SyntheticLinux g(vmi::test::compact_offsets(), 2ULL << 20);
    const vmi::LinuxOffsets o = fuzz_module_offsets(true);
    const std::uint64_t head = g.alloc(16);
    std::vector<std::uint64_t> nodes = {head};
    for (int i = 0; i < 3; ++i) nodes.push_back(g.alloc(o.module_struct_size) + o.module_list);
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        g.wu64(nodes[i], nodes[(i + 1) % nodes.size()]);
        g.wu64(nodes[i] + 8, nodes[(i + nodes.size() - 1) % nodes.size()]);
    }
    for (std::size_t i = 1; i < nodes.size(); ++i) {
        const std::uint64_t m = nodes[i] - o.module_list;
        std::string name = "mod" + std::to_string(i);
        name.resize(o.module_name_size, '\0');
        g.mem().write(SyntheticLinux::pa(m + o.module_name), std::as_bytes(std::span(name)));
        g.wu64(m + o.module_base, 0xffff'ffff'c000'0000ULL + i * 0x10'0000);
        g.wu32(m + o.module_sizes[0], 0x4000);
        g.wu32(m + o.module_refcnt, 1);
    }
    std::vector<std::uint8_t> body;
    put(body, g.cr3());
    put(body, head);
    body.push_back(0);
    body.push_back(0);
    std::vector<std::uint8_t> ram((g.used_bytes() + 4095) & ~std::uint64_t{4095});
    for (std::uint64_t pg = 0; pg < ram.size(); pg += 4096) {
        (void)g.mem().read_phys(pg, std::as_writable_bytes(std::span(ram.data() + pg, 4096)));
    }
    body.insert(body.end(), ram.begin(), ram.end());
    return body;
}

std::vector<std::uint8_t> seed_isf() {
    const std::string text =
        vmi::test::BtfToIsf::convert(vmi::test::compact_kernel_btf(),
                                     {{"_text", kText}, {"init_task", kText + 0x30000}})
            .dump(1);
    return {text.begin(), text.end()};
}

void write_seeds(const std::string& dir) {
    std::uint64_t cr3 = 0, init_task = 0;
    const auto ram = seed_ram(cr3, init_task);
    for (std::uint8_t flags : {0, 8}) {
        std::vector<std::uint8_t> raw;
        put(raw, cr3);
        put(raw, init_task);
        raw.push_back(flags);
        raw.push_back(0);
        raw.insert(raw.end(), ram.begin(), ram.end());
        write_seed(dir, "raw-guest-" + std::to_string(flags), 0, raw);
    }
    write_seed(dir, "elf-core", 1, seed_core(ram, cr3));
    const auto btf = vmi::test::compact_kernel_btf();
    const auto* b = reinterpret_cast<const std::uint8_t*>(btf.data());
    write_seed(dir, "btf", 2, std::vector<std::uint8_t>(b, b + btf.size()));
    write_seed(dir, "kallsyms", 3, seed_kallsyms());
    write_seed(dir, "modules", 4, seed_modules());
    write_seed(dir, "isf", 5, seed_isf());
    std::printf("seeds: 7 files in %s (guest RAM %zu bytes)\n", dir.c_str(), ram.size());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
    libbpf_set_print(nullptr);  // libbpf's complaints about garbage BTF are expected
    if (const char* dir = std::getenv("VMI_FUZZ_WRITE_SEEDS")) {
        write_seeds(dir);
        std::exit(0);
    }
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    switch (data[0] % 6) {
        case 0:
            fuzz_raw(data + 1, size - 1);
            break;
        case 1:
            fuzz_elf(data + 1, size - 1);
            break;
        case 2:
            fuzz_btf(data + 1, size - 1);
            break;
        case 3:
            fuzz_kallsyms(data + 1, size - 1);
            break;
        case 4:
            fuzz_modules(data + 1, size - 1);
            break;
        default:
            fuzz_isf(data + 1, size - 1);
    }
    return 0;
}
