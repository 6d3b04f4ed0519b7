// Test, bench and fuzz helper: a synthetic Linux guest in a BufferMemory, with a task list,
// credentials, executable paths (dentries, mounts), command lines in each process's own page
// tables, and thread groups. Everything lives in one physical range that the kernel reaches
// through a direct map of 2 MiB pages; every process has its own PGD (kernel half copied).
#pragma once

#include <bpf/btf.h>
#include <linux/btf.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "vmi/btf_profile.hpp"
#include "vmi/buffer_memory.hpp"

namespace vmi::test {

/// Offsets shaped like Debian's 6.1 kernel (task_struct spans several pages).
inline LinuxOffsets realistic_offsets() {
    LinuxOffsets o;
    o.task_struct_size = 0x2600;
    o.task_flags = 0x2c;
    o.task_tasks = 0x4d0;
    o.task_mm = 0x520;
    o.task_pid = 0x5a0;
    o.task_tgid = 0x5a4;
    o.task_real_parent = 0x5b0;
    o.task_thread_node = 0x610;
    o.task_start_time = 0x6d0;
    o.task_cred = 0x728;
    o.task_comm = 0x738;
    o.task_comm_size = 16;
    o.task_signal = 0x780;
    o.task_self_exec_id = 0x8a8;
    o.mm_pgd = 0x48;
    o.mm_arg_start = 0x118;
    o.mm_arg_end = 0x120;
    o.mm_exe_file = 0x388;
    o.cred_uid = 0x4;
    o.cred_gid = 0x8;
    o.cred_euid = 0x14;
    o.has_exe = true;
    o.file_f_path = 0x10;
    o.path_mnt = 0;
    o.path_dentry = 8;
    o.dentry_d_parent = 0x18;
    o.dentry_d_name = 0x20;
    o.qstr_len = 4;
    o.qstr_name = 8;
    o.has_mount = true;
    o.mount_mnt = 0x20;
    o.mount_mnt_parent = 0x10;
    o.mount_mnt_mountpoint = 0x18;
    o.vfsmount_mnt_root = 0;
    o.has_args = true;
    o.has_threads = true;
    o.signal_nr_threads = 0x4;
    o.signal_thread_head = 0x10;
    return o;
}

/// Small offsets (a 256-byte task_struct) for compact fuzzing seeds. The required ones match
/// the flat miniature BTF of the discovery tests and the fuzzer (flags@4 tasks@24 pid@48
/// tgid@52 real_parent@56 mm@64 start_time@72 comm@80 cred@104 self_exec_id@112;
/// mm_struct.pgd@16; cred.uid@4).
inline LinuxOffsets compact_offsets() {
    LinuxOffsets o = realistic_offsets();
    o.task_struct_size = 0x100;
    o.task_flags = 4;
    o.task_tasks = 24;
    o.task_pid = 48;
    o.task_tgid = 52;
    o.task_real_parent = 56;
    o.task_mm = 64;
    o.task_start_time = 72;
    o.task_comm = 80;
    o.task_cred = 104;
    o.task_self_exec_id = 112;
    o.task_thread_node = 120;
    o.task_signal = 136;
    o.mm_pgd = 16;
    o.mm_arg_start = 24;
    o.mm_arg_end = 32;
    o.mm_exe_file = 40;
    return o;
}

/// Raw BTF of a flat miniature kernel matching compact_offsets(), for discovery tests and
/// fuzzing seeds:
//   struct task_struct (256) { u32 __state@0; u32 flags@4; struct list_head tasks@24;
//     pid_t pid@48; pid_t tgid@52; task_struct* real_parent@56; mm_struct* mm@64;
//     u64 start_time@72; char comm[16]@80; const struct cred* cred@104; u64 self_exec_id@112 }
//   struct mm_struct (64) { u64 x@0; pgd_t* pgd@16 }   struct cred (64) { u32 usage@0; kuid_t uid@4
//   }
inline std::vector<std::byte> compact_kernel_btf() {
    struct BtfFree {
        void operator()(struct btf* b) const { btf__free(b); }
    };
    std::unique_ptr<struct btf, BtfFree> b(btf__new_empty());
    struct btf* p = b.get();
    const int i32 = btf__add_int(p, "int", 4, BTF_INT_SIGNED);
    const int u32 = btf__add_int(p, "unsigned int", 4, 0);
    const int u64 = btf__add_int(p, "long long unsigned int", 8, 0);
    const int chr = btf__add_int(p, "char", 1, BTF_INT_CHAR);
    const int pid_t_id = btf__add_typedef(p, "pid_t", i32);
    const int voidp = btf__add_ptr(p, 0);
    const int comm = btf__add_array(p, i32, chr, 16);
    const int list_head = btf__add_struct(p, "list_head", 16);
    btf__add_field(p, "next", voidp, 0, 0);
    btf__add_field(p, "prev", voidp, 64, 0);
    const int kuid = btf__add_struct(p, nullptr, 4);
    btf__add_field(p, "val", u32, 0, 0);
    const int kuid_t = btf__add_typedef(p, "kuid_t", kuid);
    const int cred = btf__add_struct(p, "cred", 64);
    btf__add_field(p, "usage", u32, 0, 0);
    btf__add_field(p, "uid", kuid_t, 32, 0);
    const int cred_ptr = btf__add_ptr(p, cred);
    const int mm = btf__add_struct(p, "mm_struct", 64);
    btf__add_field(p, "x", u64, 0, 0);
    btf__add_field(p, "pgd", voidp, 128, 0);
    const int mm_ptr = btf__add_ptr(p, mm);
    btf__add_struct(p, "task_struct", 256);
    btf__add_field(p, "__state", u32, 0, 0);
    btf__add_field(p, "flags", u32, 32, 0);
    btf__add_field(p, "tasks", list_head, 24 * 8, 0);
    btf__add_field(p, "pid", pid_t_id, 48 * 8, 0);
    btf__add_field(p, "tgid", pid_t_id, 52 * 8, 0);
    btf__add_field(p, "real_parent", voidp, 56 * 8, 0);
    btf__add_field(p, "mm", mm_ptr, 64 * 8, 0);
    btf__add_field(p, "start_time", u64, 72 * 8, 0);
    btf__add_field(p, "comm", comm, 80 * 8, 0);
    btf__add_field(p, "cred", cred_ptr, 104 * 8, 0);
    btf__add_field(p, "self_exec_id", u64, 112 * 8, 0);
    std::uint32_t size = 0;
    const auto* raw = static_cast<const std::byte*>(btf__raw_data(p, &size));
    return {raw, raw + size};
}

struct SynthProcess {
    std::int32_t pid = 0;
    std::size_t parent = 0;  // index in the process vector (0 = init_task)
    std::string comm;
    std::string exe;  // absolute path; empty = kernel thread (no mm)
    std::vector<std::string> argv;
    std::uint32_t uid = 0, euid = 0, gid = 0;
    int threads = 1;
};

/// Addresses of what was built for one process, for tests that corrupt it.
struct SynthAddrs {
    std::uint64_t task = 0, mm = 0, cred = 0, file = 0, dentry = 0, signal = 0, pgd_pa = 0;
    std::uint64_t arg_start = 0;
};

class SyntheticLinux {
  public:
    static constexpr std::uint64_t kDirectMap = 0xffff'8880'0000'0000ULL;
    static constexpr std::uint64_t kUserArgs = 0x0000'7ffd'1234'0000ULL;

    /// RAM is [0, ram_size) (a multiple of 2 MiB), direct-mapped at kDirectMap.
    explicit SyntheticLinux(LinuxOffsets o, std::uint64_t ram_size = 64ULL << 20)
        : o_(o), ram_(ram_size) {
        kpgd_ = pa(alloc(4096, 8192));  // PGDs are 8 KiB aligned (KPTI pairs)
        for (std::uint64_t pa = 0; pa < ram_; pa += 2ULL << 20) map(kpgd_, kDirectMap + pa, pa, 2);
        root_mnt_ = mount_object(0, 0);
    }

    BufferMemory& mem() { return mem_; }
    [[nodiscard]] std::uint64_t cr3() const { return kpgd_; }
    [[nodiscard]] const LinuxOffsets& offsets() const { return o_; }
    [[nodiscard]] std::uint64_t init_task_va() const { return addrs_.empty() ? 0 : addrs_[0].task; }
    [[nodiscard]] const std::vector<SynthAddrs>& addrs() const { return addrs_; }
    [[nodiscard]] std::uint64_t used_bytes() const { return next_; }

    /// Physical address of a direct-map address.
    static std::uint64_t pa(std::uint64_t va) { return va - kDirectMap; }
    /// Physical address of a direct-map or kernel-image address.
    [[nodiscard]] std::uint64_t any_pa(std::uint64_t va) const {
        return text_ != 0 && va >= text_ ? va - text_ : va - kDirectMap;
    }
    void wu64(std::uint64_t va, std::uint64_t v) { mem_.write_u64(any_pa(va), v); }
    void wu32(std::uint64_t va, std::uint32_t v) { mem_.write_u32(any_pa(va), v); }

    /// A file system mounted at `mountpoint` (an absolute directory path on the root fs).
    void add_mount(const std::string& mountpoint) {
        const std::uint64_t mp = dentry_for(root_mnt_, split(mountpoint));
        mounts_.push_back({mountpoint, mount_object(root_mnt_, mp)});
    }

    /// Maps the first 2 MiB of RAM as the kernel image at `text_va` (2 MiB aligned, in the
    /// kernel image window): build() then addresses init_task there, as in a real kernel.
    void map_kernel_image(std::uint64_t text_va) {
        map(kpgd_, text_va, 0, 2);
        text_ = text_va;
    }

    /// Builds the task list: procs[0] is init_task (pid 0, normally "swapper/0").
    void build(const std::vector<SynthProcess>& procs) {
        const LinuxOffsets& o = o_;
        addrs_.assign(procs.size(), {});
        for (auto& a : addrs_) a.task = alloc(o.task_struct_size);
        if (text_ != 0 && !addrs_.empty() && pa(addrs_[0].task) + o.task_struct_size < (2U << 20)) {
            addrs_[0].task = text_ + pa(addrs_[0].task);
        }
        for (std::size_t i = 0; i < procs.size(); ++i) {
            const SynthProcess& p = procs[i];
            SynthAddrs& a = addrs_[i];
            const std::uint64_t t = a.task;
            wu32(t + o.task_pid, static_cast<std::uint32_t>(p.pid));
            wu32(t + o.task_tgid, static_cast<std::uint32_t>(p.pid));
            wu32(t + o.task_flags, p.exe.empty() ? 0x00208040 : 0x00400100);
            wu64(t + o.task_start_time, 1'000'000ULL * i);
            wu64(t + o.task_self_exec_id, i + 1);
            wu64(t + o.task_real_parent, addrs_.at(p.parent).task);
            std::string comm = p.comm;
            comm.resize(16, '\0');
            mem_.write(any_pa(t + o.task_comm), std::as_bytes(std::span(comm)));
            const std::uint64_t next = addrs_[(i + 1) % procs.size()].task;
            const std::uint64_t prev = addrs_[(i + procs.size() - 1) % procs.size()].task;
            wu64(t + o.task_tasks, next + o.task_tasks);
            wu64(t + o.task_tasks + 8, prev + o.task_tasks);

            a.cred = alloc(std::max({o.cred_uid, o.cred_euid, o.cred_gid}) + 4);
            wu32(a.cred + o.cred_uid, p.uid);
            wu32(a.cred + o.cred_euid, p.euid);
            wu32(a.cred + o.cred_gid, p.gid);
            wu64(t + o.task_cred, a.cred);

            a.signal = alloc(std::max(o.signal_thread_head + 16, o.signal_nr_threads + 4));
            wu32(a.signal + o.signal_nr_threads, static_cast<std::uint32_t>(p.threads));
            wu64(t + o.task_signal, a.signal);
            std::vector<std::uint64_t> nodes{t + o.task_thread_node};
            for (int k = 1; k < p.threads; ++k)
                nodes.push_back(alloc(o.task_thread_node + 16) + o.task_thread_node);
            std::uint64_t prev_node = a.signal + o.signal_thread_head;
            for (std::uint64_t n : nodes) {
                wu64(prev_node, n);
                prev_node = n;
            }
            wu64(prev_node, a.signal + o.signal_thread_head);

            if (p.exe.empty()) continue;  // kernel thread
            a.mm = alloc(std::max({o.mm_pgd, o.mm_exe_file, o.mm_arg_end}) + 8);
            wu64(t + o.task_mm, a.mm);
            a.pgd_pa = pa(alloc(4096, 8192));
            for (std::uint64_t e = 256; e < 512; ++e) {  // kernel half, as Linux copies it
                mem_.write_u64(a.pgd_pa + e * 8, *mem_.read_u64(kpgd_ + e * 8));
            }
            wu64(a.mm + o.mm_pgd, kDirectMap + a.pgd_pa);
            // exe: the longest mount prefix decides the vfsmount and the path below it.
            std::uint64_t mnt = root_mnt_;
            std::string rest = p.exe;
            std::size_t best = 0;
            for (const auto& m : mounts_) {
                if (p.exe.rfind(m.path + "/", 0) == 0 && m.path.size() > best) {
                    best = m.path.size();
                    mnt = m.vfsmnt;
                    rest = p.exe.substr(m.path.size());
                }
            }
            a.dentry = dentry_for(mnt, split(rest));
            a.file = alloc(o.file_f_path + 16);
            wu64(a.file + o.file_f_path + o.path_mnt, mnt);
            wu64(a.file + o.file_f_path + o.path_dentry, a.dentry);
            wu64(a.mm + o.mm_exe_file, a.file);
            // argv in user memory at an unaligned address, NUL-terminated strings.
            std::string args;
            for (const auto& s : p.argv) args += s + '\0';
            a.arg_start = kUserArgs + 0x10;
            const std::uint64_t len = args.size();
            for (std::uint64_t off = 0; off < 0x10 + len; off += 4096) {
                const std::uint64_t data = frame();
                map(a.pgd_pa, kUserArgs + off, data, 1);
                const std::uint64_t lo = off == 0 ? 0x10 : 0;
                const std::uint64_t n = std::min<std::uint64_t>(4096 - lo, 0x10 + len - off - lo);
                if (n > 0) {
                    mem_.write(data + lo,
                               std::as_bytes(std::span(args))
                                   .subspan(off + lo - 0x10, static_cast<std::size_t>(n)));
                }
            }
            wu64(a.mm + o.mm_arg_start, a.arg_start);
            wu64(a.mm + o.mm_arg_end, a.arg_start + len);
        }
    }

    /// Maps a 4 KiB (level 1) or 2 MiB (level 2) page in the tables rooted at `root`.
    void map(std::uint64_t root, std::uint64_t va, std::uint64_t to_pa, int leaf) {
        std::uint64_t table = root;
        for (int level = 4; level > leaf; --level) {
            const std::uint64_t slot = table + ((va >> (12 + 9 * (level - 1))) & 0x1ff) * 8;
            std::uint64_t e = *mem_.read_u64(slot);
            if ((e & 1) == 0) {
                e = frame() | 0x3;
                mem_.write_u64(slot, e);
            }
            table = e & 0x000F'FFFF'FFFF'F000ULL;
        }
        mem_.write_u64(table + ((va >> (12 + 9 * (leaf - 1))) & 0x1ff) * 8,
                       to_pa | 0x7 | (leaf > 1 ? 0x80 : 0));
    }

    /// Bump allocation of zeroed guest memory; returns a direct-map virtual address.
    std::uint64_t alloc(std::uint64_t size, std::uint64_t align = 64) {
        next_ = (next_ + align - 1) & ~(align - 1);
        const std::uint64_t p = next_;
        next_ += std::max<std::uint64_t>(size, 8);
        if (next_ > ram_) throw std::length_error("synthetic guest RAM exhausted");
        for (std::uint64_t f = p & ~0xfffULL; f < next_; f += 4096) mem_.map_page(f);
        return kDirectMap + p;
    }
    std::uint64_t frame() { return pa(alloc(4096, 4096)); }

  private:
    struct Mount {
        std::string path;
        std::uint64_t vfsmnt;
    };

    static std::vector<std::string> split(const std::string& path) {
        std::vector<std::string> out;
        std::string cur;
        for (char c : path) {
            if (c == '/') {
                if (!cur.empty()) out.push_back(cur);
                cur.clear();
            } else {
                cur.push_back(c);
            }
        }
        if (!cur.empty()) out.push_back(cur);
        return out;
    }

    std::uint64_t dentry_object(std::uint64_t parent, const std::string& name) {
        const std::uint64_t d = alloc(std::max(o_.dentry_d_parent + 8, o_.dentry_d_name + 16));
        const std::uint64_t n = alloc(name.size() + 1, 8);
        mem_.write(pa(n), std::as_bytes(std::span(name)));
        wu64(d + o_.dentry_d_parent, parent == 0 ? d : parent);
        wu32(d + o_.dentry_d_name, 0x9e3779b9U);  // hash
        wu32(d + o_.dentry_d_name + o_.qstr_len, static_cast<std::uint32_t>(name.size()));
        wu64(d + o_.dentry_d_name + o_.qstr_name, n);
        return d;
    }

    // struct mount with its root dentry "/"; returns the embedded vfsmount's address.
    std::uint64_t mount_object(std::uint64_t parent_vfsmnt, std::uint64_t mountpoint) {
        const std::uint64_t m =
            alloc(std::max({o_.mount_mnt + o_.vfsmount_mnt_root + 8, o_.mount_mnt_parent + 8,
                            o_.mount_mnt_mountpoint + 8}));
        const std::uint64_t root = dentry_object(0, "/");
        const std::uint64_t vfs = m + o_.mount_mnt;
        wu64(vfs + o_.vfsmount_mnt_root, root);
        wu64(m + o_.mount_mnt_parent, parent_vfsmnt == 0 ? m : parent_vfsmnt - o_.mount_mnt);
        wu64(m + o_.mount_mnt_mountpoint, mountpoint == 0 ? root : mountpoint);
        roots_[vfs] = root;
        return vfs;
    }

    // The dentry of `parts` below the root of mount `vfsmnt`, sharing directory dentries.
    std::uint64_t dentry_for(std::uint64_t vfsmnt, const std::vector<std::string>& parts) {
        std::uint64_t d = roots_.at(vfsmnt);
        std::string key = std::to_string(vfsmnt);
        for (const auto& part : parts) {
            key += "/" + part;
            auto it = dentries_.find(key);
            if (it == dentries_.end()) it = dentries_.emplace(key, dentry_object(d, part)).first;
            d = it->second;
        }
        return d;
    }

    LinuxOffsets o_;
    std::uint64_t ram_;
    BufferMemory mem_;
    std::uint64_t next_ = 0x1000;  // keep frame 0 free
    std::uint64_t kpgd_ = 0;
    std::uint64_t root_mnt_ = 0;
    std::uint64_t text_ = 0;
    std::vector<Mount> mounts_;
    std::map<std::uint64_t, std::uint64_t> roots_;   // vfsmount -> root dentry
    std::map<std::string, std::uint64_t> dentries_;  // "mnt/a/b" -> dentry
    std::vector<SynthAddrs> addrs_;
};

}  // namespace vmi::test
