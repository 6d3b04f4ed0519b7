#include "vmi/syscall_abi.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unordered_map>

namespace vmi {
namespace {

// Generated from Linux 6.12's arch/x86/entry/syscalls/syscall_64.tbl ("common" and "64"
// entries; x32's 512+ are not the x86-64 ABI). Gaps are unused numbers.
constexpr std::array<std::string_view, kSyscallCount> kNames = {
    "read",
    "write",
    "open",
    "close",
    "stat",
    "fstat",
    "lstat",
    "poll",
    "lseek",
    "mmap",
    "mprotect",
    "munmap",
    "brk",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "ioctl",
    "pread64",
    "pwrite64",
    "readv",
    "writev",
    "access",
    "pipe",
    "select",
    "sched_yield",
    "mremap",
    "msync",
    "mincore",
    "madvise",
    "shmget",
    "shmat",
    "shmctl",
    "dup",
    "dup2",
    "pause",
    "nanosleep",
    "getitimer",
    "alarm",
    "setitimer",
    "getpid",
    "sendfile",
    "socket",
    "connect",
    "accept",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "shutdown",
    "bind",
    "listen",
    "getsockname",
    "getpeername",
    "socketpair",
    "setsockopt",
    "getsockopt",
    "clone",
    "fork",
    "vfork",
    "execve",
    "exit",
    "wait4",
    "kill",
    "uname",
    "semget",
    "semop",
    "semctl",
    "shmdt",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "fcntl",
    "flock",
    "fsync",
    "fdatasync",
    "truncate",
    "ftruncate",
    "getdents",
    "getcwd",
    "chdir",
    "fchdir",
    "rename",
    "mkdir",
    "rmdir",
    "creat",
    "link",
    "unlink",
    "symlink",
    "readlink",
    "chmod",
    "fchmod",
    "chown",
    "fchown",
    "lchown",
    "umask",
    "gettimeofday",
    "getrlimit",
    "getrusage",
    "sysinfo",
    "times",
    "ptrace",
    "getuid",
    "syslog",
    "getgid",
    "setuid",
    "setgid",
    "geteuid",
    "getegid",
    "setpgid",
    "getppid",
    "getpgrp",
    "setsid",
    "setreuid",
    "setregid",
    "getgroups",
    "setgroups",
    "setresuid",
    "getresuid",
    "setresgid",
    "getresgid",
    "getpgid",
    "setfsuid",
    "setfsgid",
    "getsid",
    "capget",
    "capset",
    "rt_sigpending",
    "rt_sigtimedwait",
    "rt_sigqueueinfo",
    "rt_sigsuspend",
    "sigaltstack",
    "utime",
    "mknod",
    "uselib",
    "personality",
    "ustat",
    "statfs",
    "fstatfs",
    "sysfs",
    "getpriority",
    "setpriority",
    "sched_setparam",
    "sched_getparam",
    "sched_setscheduler",
    "sched_getscheduler",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_rr_get_interval",
    "mlock",
    "munlock",
    "mlockall",
    "munlockall",
    "vhangup",
    "modify_ldt",
    "pivot_root",
    "_sysctl",
    "prctl",
    "arch_prctl",
    "adjtimex",
    "setrlimit",
    "chroot",
    "sync",
    "acct",
    "settimeofday",
    "mount",
    "umount2",
    "swapon",
    "swapoff",
    "reboot",
    "sethostname",
    "setdomainname",
    "iopl",
    "ioperm",
    "create_module",
    "init_module",
    "delete_module",
    "get_kernel_syms",
    "query_module",
    "quotactl",
    "nfsservctl",
    "getpmsg",
    "putpmsg",
    "afs_syscall",
    "tuxcall",
    "security",
    "gettid",
    "readahead",
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "getxattr",
    "lgetxattr",
    "fgetxattr",
    "listxattr",
    "llistxattr",
    "flistxattr",
    "removexattr",
    "lremovexattr",
    "fremovexattr",
    "tkill",
    "time",
    "futex",
    "sched_setaffinity",
    "sched_getaffinity",
    "set_thread_area",
    "io_setup",
    "io_destroy",
    "io_getevents",
    "io_submit",
    "io_cancel",
    "get_thread_area",
    "lookup_dcookie",
    "epoll_create",
    "epoll_ctl_old",
    "epoll_wait_old",
    "remap_file_pages",
    "getdents64",
    "set_tid_address",
    "restart_syscall",
    "semtimedop",
    "fadvise64",
    "timer_create",
    "timer_settime",
    "timer_gettime",
    "timer_getoverrun",
    "timer_delete",
    "clock_settime",
    "clock_gettime",
    "clock_getres",
    "clock_nanosleep",
    "exit_group",
    "epoll_wait",
    "epoll_ctl",
    "tgkill",
    "utimes",
    "vserver",
    "mbind",
    "set_mempolicy",
    "get_mempolicy",
    "mq_open",
    "mq_unlink",
    "mq_timedsend",
    "mq_timedreceive",
    "mq_notify",
    "mq_getsetattr",
    "kexec_load",
    "waitid",
    "add_key",
    "request_key",
    "keyctl",
    "ioprio_set",
    "ioprio_get",
    "inotify_init",
    "inotify_add_watch",
    "inotify_rm_watch",
    "migrate_pages",
    "openat",
    "mkdirat",
    "mknodat",
    "fchownat",
    "futimesat",
    "newfstatat",
    "unlinkat",
    "renameat",
    "linkat",
    "symlinkat",
    "readlinkat",
    "fchmodat",
    "faccessat",
    "pselect6",
    "ppoll",
    "unshare",
    "set_robust_list",
    "get_robust_list",
    "splice",
    "tee",
    "sync_file_range",
    "vmsplice",
    "move_pages",
    "utimensat",
    "epoll_pwait",
    "signalfd",
    "timerfd_create",
    "eventfd",
    "fallocate",
    "timerfd_settime",
    "timerfd_gettime",
    "accept4",
    "signalfd4",
    "eventfd2",
    "epoll_create1",
    "dup3",
    "pipe2",
    "inotify_init1",
    "preadv",
    "pwritev",
    "rt_tgsigqueueinfo",
    "perf_event_open",
    "recvmmsg",
    "fanotify_init",
    "fanotify_mark",
    "prlimit64",
    "name_to_handle_at",
    "open_by_handle_at",
    "clock_adjtime",
    "syncfs",
    "sendmmsg",
    "setns",
    "getcpu",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "finit_module",
    "sched_setattr",
    "sched_getattr",
    "renameat2",
    "seccomp",
    "getrandom",
    "memfd_create",
    "kexec_file_load",
    "bpf",
    "execveat",
    "userfaultfd",
    "membarrier",
    "mlock2",
    "copy_file_range",
    "preadv2",
    "pwritev2",
    "pkey_mprotect",
    "pkey_alloc",
    "pkey_free",
    "statx",
    "io_pgetevents",
    "rseq",
    "uretprobe",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "pidfd_send_signal",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "pidfd_open",
    "clone3",
    "close_range",
    "openat2",
    "pidfd_getfd",
    "faccessat2",
    "process_madvise",
    "epoll_pwait2",
    "mount_setattr",
    "quotactl_fd",
    "landlock_create_ruleset",
    "landlock_add_rule",
    "landlock_restrict_self",
    "memfd_secret",
    "process_mrelease",
    "futex_waitv",
    "set_mempolicy_home_node",
    "cachestat",
    "fchmodat2",
    "map_shadow_stack",
    "futex_wake",
    "futex_wait",
    "futex_requeue",
    "statmount",
    "listmount",
    "lsm_get_self_attr",
    "lsm_set_self_attr",
    "lsm_list_modules",
    "mseal",
};

std::string hex(std::uint64_t v) {
    char buf[19];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

struct Flag {
    std::uint64_t bit;
    const char* name;
};

// Names the set bits of `v` from `flags`, joined with '|', and the rest in hex.
std::string join_flags(std::uint64_t v, std::span<const Flag> flags, std::string out = {}) {
    for (const Flag& f : flags) {
        if (f.bit && (v & f.bit) == f.bit) {
            if (!out.empty()) out += '|';
            out += f.name;
            v &= ~f.bit;
        }
    }
    if (v) {
        if (!out.empty()) out += '|';
        out += hex(v);
    }
    return out.empty() ? "0" : out;
}

struct Named {
    std::uint64_t value;
    const char* name;
};

// Stringizing does not expand its operand, so glibc's self-referencing macros (#define
// SOCK_STREAM SOCK_STREAM) keep their names.
#define VMI_NAMED(x) \
    Named { static_cast<std::uint64_t>(x), #x }

// Linux 6.12's families, from <sys/socket.h> (glibc 2.36 has them all; AF_MAX is 46 in both).
constexpr Named kDomains[] = {
    VMI_NAMED(AF_UNSPEC),     VMI_NAMED(AF_UNIX),      VMI_NAMED(AF_INET),
    VMI_NAMED(AF_AX25),       VMI_NAMED(AF_IPX),       VMI_NAMED(AF_APPLETALK),
    VMI_NAMED(AF_NETROM),     VMI_NAMED(AF_BRIDGE),    VMI_NAMED(AF_ATMPVC),
    VMI_NAMED(AF_X25),        VMI_NAMED(AF_INET6),     VMI_NAMED(AF_ROSE),
    VMI_NAMED(AF_DECnet),     VMI_NAMED(AF_NETBEUI),   VMI_NAMED(AF_SECURITY),
    VMI_NAMED(AF_KEY),        VMI_NAMED(AF_NETLINK),   VMI_NAMED(AF_PACKET),
    VMI_NAMED(AF_ASH),        VMI_NAMED(AF_ECONET),    VMI_NAMED(AF_ATMSVC),
    VMI_NAMED(AF_RDS),        VMI_NAMED(AF_SNA),       VMI_NAMED(AF_IRDA),
    VMI_NAMED(AF_PPPOX),      VMI_NAMED(AF_WANPIPE),   VMI_NAMED(AF_LLC),
    VMI_NAMED(AF_IB),         VMI_NAMED(AF_MPLS),      VMI_NAMED(AF_CAN),
    VMI_NAMED(AF_TIPC),       VMI_NAMED(AF_BLUETOOTH), VMI_NAMED(AF_IUCV),
    VMI_NAMED(AF_RXRPC),      VMI_NAMED(AF_ISDN),      VMI_NAMED(AF_PHONET),
    VMI_NAMED(AF_IEEE802154), VMI_NAMED(AF_CAIF),      VMI_NAMED(AF_ALG),
    VMI_NAMED(AF_NFC),        VMI_NAMED(AF_VSOCK),     VMI_NAMED(AF_KCM),
    VMI_NAMED(AF_QIPCRTR),    VMI_NAMED(AF_SMC),       VMI_NAMED(AF_XDP),
    VMI_NAMED(AF_MCTP),
};

constexpr Named kSocketTypes[] = {
    VMI_NAMED(SOCK_STREAM),    VMI_NAMED(SOCK_DGRAM), VMI_NAMED(SOCK_RAW),    VMI_NAMED(SOCK_RDM),
    VMI_NAMED(SOCK_SEQPACKET), VMI_NAMED(SOCK_DCCP),  VMI_NAMED(SOCK_PACKET),
};
constexpr Named kSocketFlags[] = {VMI_NAMED(SOCK_NONBLOCK), VMI_NAMED(SOCK_CLOEXEC)};
// The kernel's SOCK_TYPE_MASK (include/linux/net.h); not exported to userspace.
constexpr std::uint64_t kSockTypeMask = 0xf;

// <sys/ptrace.h> plus the x86 and 6.12 requests glibc 2.36 lacks (values from Linux 6.12's
// arch/x86/include/uapi/asm/ptrace-abi.h and include/uapi/linux/ptrace.h).
constexpr Named kPtraceRequests[] = {
    VMI_NAMED(PTRACE_TRACEME),
    VMI_NAMED(PTRACE_PEEKTEXT),
    VMI_NAMED(PTRACE_PEEKDATA),
    VMI_NAMED(PTRACE_PEEKUSER),
    VMI_NAMED(PTRACE_POKETEXT),
    VMI_NAMED(PTRACE_POKEDATA),
    VMI_NAMED(PTRACE_POKEUSER),
    VMI_NAMED(PTRACE_CONT),
    VMI_NAMED(PTRACE_KILL),
    VMI_NAMED(PTRACE_SINGLESTEP),
    VMI_NAMED(PTRACE_GETREGS),
    VMI_NAMED(PTRACE_SETREGS),
    VMI_NAMED(PTRACE_GETFPREGS),
    VMI_NAMED(PTRACE_SETFPREGS),
    VMI_NAMED(PTRACE_ATTACH),
    VMI_NAMED(PTRACE_DETACH),
    VMI_NAMED(PTRACE_GETFPXREGS),
    VMI_NAMED(PTRACE_SETFPXREGS),
    {21, "PTRACE_OLDSETOPTIONS"},
    VMI_NAMED(PTRACE_SYSCALL),
    VMI_NAMED(PTRACE_GET_THREAD_AREA),
    VMI_NAMED(PTRACE_SET_THREAD_AREA),
    VMI_NAMED(PTRACE_ARCH_PRCTL),
    VMI_NAMED(PTRACE_SYSEMU),
    VMI_NAMED(PTRACE_SYSEMU_SINGLESTEP),
    VMI_NAMED(PTRACE_SINGLEBLOCK),
    VMI_NAMED(PTRACE_SETOPTIONS),
    VMI_NAMED(PTRACE_GETEVENTMSG),
    VMI_NAMED(PTRACE_GETSIGINFO),
    VMI_NAMED(PTRACE_SETSIGINFO),
    VMI_NAMED(PTRACE_GETREGSET),
    VMI_NAMED(PTRACE_SETREGSET),
    VMI_NAMED(PTRACE_SEIZE),
    VMI_NAMED(PTRACE_INTERRUPT),
    VMI_NAMED(PTRACE_LISTEN),
    VMI_NAMED(PTRACE_PEEKSIGINFO),
    VMI_NAMED(PTRACE_GETSIGMASK),
    VMI_NAMED(PTRACE_SETSIGMASK),
    VMI_NAMED(PTRACE_SECCOMP_GET_FILTER),
    VMI_NAMED(PTRACE_SECCOMP_GET_METADATA),
    VMI_NAMED(PTRACE_GET_SYSCALL_INFO),
    VMI_NAMED(PTRACE_GET_RSEQ_CONFIGURATION),
    {0x4210, "PTRACE_SET_SYSCALL_USER_DISPATCH_CONFIG"},
    {0x4211, "PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG"},
};

#undef VMI_NAMED

const char* find(std::span<const Named> table, std::uint64_t v) {
    for (const Named& n : table)
        if (n.value == v) return n.name;
    return nullptr;
}

using K = ArgKind;

const std::unordered_map<std::uint32_t, SyscallInfo>& infos() {
    // Arguments in ABI order; capture: the argument the hypervisor copies (a path, or a
    // sockaddr with its length argument).
    static const std::unordered_map<std::uint32_t, SyscallInfo> m = [] {
        std::unordered_map<std::uint32_t, SyscallInfo> t;
        auto add = [&](std::string_view name, std::vector<ArgInfo> args, int capture = -1,
                       int capture_len = -1) {
            const auto nr = syscall_number(name);
            if (nr) t[*nr] = SyscallInfo{name, std::move(args), capture, capture_len};
        };
        add("read", {{"fd", K::kFd}, {"buf", K::kHex}, {"count", K::kUint}});
        add("write", {{"fd", K::kFd}, {"buf", K::kHex}, {"count", K::kUint}});
        add("open", {{"path", K::kPath}, {"flags", K::kOpenFlags}, {"mode", K::kMode}}, 0);
        add("openat",
            {{"dirfd", K::kFd}, {"path", K::kPath}, {"flags", K::kOpenFlags}, {"mode", K::kMode}},
            1);
        add("openat2",
            {{"dirfd", K::kFd}, {"path", K::kPath}, {"how", K::kHex}, {"size", K::kUint}}, 1);
        add("creat", {{"path", K::kPath}, {"mode", K::kMode}}, 0);
        add("close", {{"fd", K::kFd}});
        add("execve", {{"path", K::kPath}, {"argv", K::kHex}, {"envp", K::kHex}}, 0);
        add("execveat",
            {{"dirfd", K::kFd},
             {"path", K::kPath},
             {"argv", K::kHex},
             {"envp", K::kHex},
             {"flags", K::kHex}},
            1);
        add("connect", {{"fd", K::kFd}, {"addr", K::kSockaddr}, {"addrlen", K::kUint}}, 1, 2);
        add("bind", {{"fd", K::kFd}, {"addr", K::kSockaddr}, {"addrlen", K::kUint}}, 1, 2);
        add("listen", {{"fd", K::kFd}, {"backlog", K::kInt}});
        add("accept", {{"fd", K::kFd}, {"addr", K::kHex}, {"addrlen", K::kHex}});
        add("accept4",
            {{"fd", K::kFd}, {"addr", K::kHex}, {"addrlen", K::kHex}, {"flags", K::kHex}});
        add("socket",
            {{"domain", K::kSocketDomain}, {"type", K::kSocketType}, {"protocol", K::kInt}});
        add("ptrace",
            {{"request", K::kInt}, {"pid", K::kInt}, {"addr", K::kHex}, {"data", K::kHex}});
        add("kill", {{"pid", K::kInt}, {"sig", K::kSignal}});
        add("tkill", {{"tid", K::kInt}, {"sig", K::kSignal}});
        add("tgkill", {{"tgid", K::kInt}, {"tid", K::kInt}, {"sig", K::kSignal}});
        add("setuid", {{"uid", K::kInt}});
        add("setgid", {{"gid", K::kInt}});
        add("setreuid", {{"ruid", K::kInt}, {"euid", K::kInt}});
        add("setregid", {{"rgid", K::kInt}, {"egid", K::kInt}});
        add("setresuid", {{"ruid", K::kInt}, {"euid", K::kInt}, {"suid", K::kInt}});
        add("setresgid", {{"rgid", K::kInt}, {"egid", K::kInt}, {"sgid", K::kInt}});
        add("init_module", {{"image", K::kHex}, {"len", K::kUint}, {"params", K::kHex}});
        add("finit_module", {{"fd", K::kFd}, {"params", K::kHex}, {"flags", K::kHex}});
        add("delete_module", {{"name", K::kPath}, {"flags", K::kHex}}, 0);
        add("mount",
            {{"source", K::kPath},
             {"target", K::kHex},
             {"fstype", K::kHex},
             {"flags", K::kHex},
             {"data", K::kHex}},
            0);
        add("umount2", {{"target", K::kPath}, {"flags", K::kHex}}, 0);
        add("unlink", {{"path", K::kPath}}, 0);
        add("unlinkat", {{"dirfd", K::kFd}, {"path", K::kPath}, {"flags", K::kHex}}, 1);
        // Renames and links: the destination is what a rule cares about (what got replaced).
        add("rename", {{"oldpath", K::kHex}, {"newpath", K::kPath}}, 1);
        add("renameat",
            {{"olddirfd", K::kFd},
             {"oldpath", K::kHex},
             {"newdirfd", K::kFd},
             {"newpath", K::kPath}},
            3);
        add("renameat2",
            {{"olddirfd", K::kFd},
             {"oldpath", K::kHex},
             {"newdirfd", K::kFd},
             {"newpath", K::kPath},
             {"flags", K::kHex}},
            3);
        add("chmod", {{"path", K::kPath}, {"mode", K::kMode}}, 0);
        add("fchmodat", {{"dirfd", K::kFd}, {"path", K::kPath}, {"mode", K::kMode}}, 1);
        add("chown", {{"path", K::kPath}, {"uid", K::kInt}, {"gid", K::kInt}}, 0);
        add("fchownat",
            {{"dirfd", K::kFd},
             {"path", K::kPath},
             {"uid", K::kInt},
             {"gid", K::kInt},
             {"flags", K::kHex}},
            1);
        add("memfd_create", {{"name", K::kPath}, {"flags", K::kHex}}, 0);
        add("mmap", {{"addr", K::kHex},
                     {"length", K::kUint},
                     {"prot", K::kProt},
                     {"flags", K::kHex},
                     {"fd", K::kFd},
                     {"offset", K::kUint}});
        add("mprotect", {{"addr", K::kHex}, {"length", K::kUint}, {"prot", K::kProt}});
        add("clone", {{"flags", K::kCloneFlags},
                      {"stack", K::kHex},
                      {"parent_tid", K::kHex},
                      {"child_tid", K::kHex},
                      {"tls", K::kHex}});
        add("clone3", {{"args", K::kCloneArgs}, {"size", K::kUint}}, 0, 1);
        add("fork", {});
        add("vfork", {});
        add("exit", {{"status", K::kInt}});
        add("exit_group", {{"status", K::kInt}});
        add("getpid", {});
        add("getppid", {});
        add("bpf", {{"cmd", K::kInt}, {"attr", K::kHex}, {"size", K::kUint}});
        add("kexec_load", {{"entry", K::kHex},
                           {"nr_segments", K::kUint},
                           {"segments", K::kHex},
                           {"flags", K::kHex}});
        add("chroot", {{"path", K::kPath}}, 0);
        add("pivot_root", {{"new_root", K::kPath}, {"put_old", K::kHex}}, 0);
        add("setns", {{"fd", K::kFd}, {"nstype", K::kNsFlags}});
        add("unshare", {{"flags", K::kNsFlags}});
        add("truncate", {{"path", K::kPath}, {"length", K::kInt}}, 0);
        add("link", {{"oldpath", K::kHex}, {"newpath", K::kPath}}, 1);
        add("linkat",
            {{"olddirfd", K::kFd},
             {"oldpath", K::kHex},
             {"newdirfd", K::kFd},
             {"newpath", K::kPath},
             {"flags", K::kHex}},
            3);
        add("symlink", {{"target", K::kHex}, {"linkpath", K::kPath}}, 1);
        add("symlinkat", {{"target", K::kHex}, {"newdirfd", K::kFd}, {"linkpath", K::kPath}}, 2);
        add("mkdir", {{"path", K::kPath}, {"mode", K::kMode}}, 0);
        add("mkdirat", {{"dirfd", K::kFd}, {"path", K::kPath}, {"mode", K::kMode}}, 1);
        add("rmdir", {{"path", K::kPath}}, 0);
        add("sethostname", {{"name", K::kHex}, {"len", K::kUint}});
        add("process_vm_readv", {{"pid", K::kInt},
                                 {"local_iov", K::kHex},
                                 {"liovcnt", K::kUint},
                                 {"remote_iov", K::kHex},
                                 {"riovcnt", K::kUint},
                                 {"flags", K::kHex}});
        add("process_vm_writev", {{"pid", K::kInt},
                                  {"local_iov", K::kHex},
                                  {"liovcnt", K::kUint},
                                  {"remote_iov", K::kHex},
                                  {"riovcnt", K::kUint},
                                  {"flags", K::kHex}});
        add("capset", {{"header", K::kHex}, {"data", K::kHex}});
        add("prctl", {{"option", K::kInt},
                      {"arg2", K::kHex},
                      {"arg3", K::kHex},
                      {"arg4", K::kHex},
                      {"arg5", K::kHex}});
        return t;
    }();
    return m;
}

}  // namespace

std::string_view syscall_name(std::uint64_t nr) {
    return nr < kSyscallCount ? kNames[nr] : std::string_view{};
}

std::optional<std::uint32_t> syscall_number(std::string_view name) {
    static const std::unordered_map<std::string_view, std::uint32_t> by_name = [] {
        std::unordered_map<std::string_view, std::uint32_t> m;
        for (std::uint32_t i = 0; i < kSyscallCount; ++i)
            if (!kNames[i].empty()) m.emplace(kNames[i], i);
        return m;
    }();
    if (name.empty()) return std::nullopt;
    auto it = by_name.find(name);
    if (it == by_name.end()) return std::nullopt;
    return it->second;
}

const SyscallInfo* syscall_info(std::uint64_t nr) {
    if (nr >= kSyscallCount) return nullptr;
    auto it = infos().find(static_cast<std::uint32_t>(nr));
    return it == infos().end() ? nullptr : &it->second;
}

// glibc defines O_LARGEFILE as 0 on x86-64; the kernel's bit is 0100000.
constexpr std::uint64_t kKernelLargefile = 0100000;

std::string decode_open_flags(std::uint64_t flags) {
    static constexpr Flag kFlags[] = {
        {O_CREAT, "O_CREAT"},       {O_EXCL, "O_EXCL"},
        {O_NOCTTY, "O_NOCTTY"},     {O_TRUNC, "O_TRUNC"},
        {O_APPEND, "O_APPEND"},     {O_NONBLOCK, "O_NONBLOCK"},
        {O_TMPFILE, "O_TMPFILE"},   {O_SYNC, "O_SYNC"},
        {O_DSYNC, "O_DSYNC"},       {O_DIRECTORY, "O_DIRECTORY"},
        {O_NOFOLLOW, "O_NOFOLLOW"}, {O_CLOEXEC, "O_CLOEXEC"},
        {O_DIRECT, "O_DIRECT"},     {kKernelLargefile, "O_LARGEFILE"},
        {O_NOATIME, "O_NOATIME"},   {O_PATH, "O_PATH"},
        {O_ASYNC, "O_ASYNC"},
    };
    static constexpr const char* kAccess[] = {"O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE"};
    // O_TMPFILE includes O_DIRECTORY: name the larger set first.
    return join_flags(flags & ~std::uint64_t{O_ACCMODE}, kFlags, kAccess[flags & O_ACCMODE]);
}

std::string decode_prot(std::uint64_t prot) {
    static constexpr Flag kFlags[] = {{PROT_READ, "PROT_READ"},
                                      {PROT_WRITE, "PROT_WRITE"},
                                      {PROT_EXEC, "PROT_EXEC"},
                                      {PROT_GROWSDOWN, "PROT_GROWSDOWN"},
                                      {PROT_GROWSUP, "PROT_GROWSUP"}};
    return prot ? join_flags(prot, kFlags) : "PROT_NONE";
}

// CLONE_* bits; bit 7 is CLONE_NEWTIME for unshare and setns, the signal byte for clone.
constexpr Flag kCloneFlagNames[] = {{CLONE_VM, "CLONE_VM"},
                                    {CLONE_FS, "CLONE_FS"},
                                    {CLONE_FILES, "CLONE_FILES"},
                                    {CLONE_SIGHAND, "CLONE_SIGHAND"},
                                    {CLONE_PIDFD, "CLONE_PIDFD"},
                                    {CLONE_PTRACE, "CLONE_PTRACE"},
                                    {CLONE_VFORK, "CLONE_VFORK"},
                                    {CLONE_PARENT, "CLONE_PARENT"},
                                    {CLONE_THREAD, "CLONE_THREAD"},
                                    {CLONE_NEWNS, "CLONE_NEWNS"},
                                    {CLONE_SYSVSEM, "CLONE_SYSVSEM"},
                                    {CLONE_SETTLS, "CLONE_SETTLS"},
                                    {CLONE_PARENT_SETTID, "CLONE_PARENT_SETTID"},
                                    {CLONE_CHILD_CLEARTID, "CLONE_CHILD_CLEARTID"},
                                    {CLONE_UNTRACED, "CLONE_UNTRACED"},
                                    {CLONE_CHILD_SETTID, "CLONE_CHILD_SETTID"},
                                    {CLONE_NEWCGROUP, "CLONE_NEWCGROUP"},
                                    {CLONE_NEWUTS, "CLONE_NEWUTS"},
                                    {CLONE_NEWIPC, "CLONE_NEWIPC"},
                                    {CLONE_NEWUSER, "CLONE_NEWUSER"},
                                    {CLONE_NEWPID, "CLONE_NEWPID"},
                                    {CLONE_NEWNET, "CLONE_NEWNET"},
                                    {CLONE_IO, "CLONE_IO"}};

std::string decode_clone_flags(std::uint64_t flags) {
    // The low byte is the signal sent to the parent at exit.
    std::string sig = (flags & 0xff) ? decode_signal(flags & 0xff) : std::string{};
    return join_flags(flags & ~std::uint64_t{0xff}, kCloneFlagNames, sig);
}

std::string decode_ns_flags(std::uint64_t flags) {
    constexpr std::uint64_t kNewTime = 0x80;
    std::string time = (flags & kNewTime) ? "CLONE_NEWTIME" : "";
    return join_flags(flags & ~kNewTime, kCloneFlagNames, time);
}

std::string decode_signal(std::uint64_t sig) {
    static constexpr const char* kSig[] = {
        "0",         "SIGHUP",  "SIGINT",    "SIGQUIT", "SIGILL",   "SIGTRAP", "SIGABRT", "SIGBUS",
        "SIGFPE",    "SIGKILL", "SIGUSR1",   "SIGSEGV", "SIGUSR2",  "SIGPIPE", "SIGALRM", "SIGTERM",
        "SIGSTKFLT", "SIGCHLD", "SIGCONT",   "SIGSTOP", "SIGTSTP",  "SIGTTIN", "SIGTTOU", "SIGURG",
        "SIGXCPU",   "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO",   "SIGPWR",  "SIGSYS"};
    if (sig < std::size(kSig)) return kSig[sig];
    if (sig <= 64) return "SIGRTMIN+" + std::to_string(sig - 32);
    return std::to_string(sig);
}

std::string decode_errno(std::int64_t ret) {
    if (ret >= 0 || ret < -4095) return {};
    const int e = static_cast<int>(-ret);
    const char* name = strerrorname_np(e);
    return name ? name : "E" + std::to_string(e);
}

Result<SockAddr> decode_sockaddr(std::span<const std::uint8_t> b) {
    if (b.size() < 2) return Error{Fault::kInvalidFormat, "sockaddr shorter than its family"};
    const unsigned family = b[0] | (unsigned{b[1]} << 8);  // x86-64: little endian
    SockAddr a;
    char text[INET6_ADDRSTRLEN] = {};
    if (family == AF_INET) {
        if (b.size() < 8) return Error{Fault::kInvalidFormat, "sockaddr_in truncated"};
        a.family = "AF_INET";
        inet_ntop(AF_INET, b.data() + 4, text, sizeof text);
        a.address = text;
        a.port = (b[2] << 8) | b[3];
    } else if (family == AF_INET6) {
        if (b.size() < 24) return Error{Fault::kInvalidFormat, "sockaddr_in6 truncated"};
        a.family = "AF_INET6";
        inet_ntop(AF_INET6, b.data() + 8, text, sizeof text);
        a.address = text;
        a.port = (b[2] << 8) | b[3];
    } else if (family == AF_UNIX) {
        a.family = "AF_UNIX";
        const auto path =
            b.subspan(2, std::min<std::size_t>(b.size() - 2, sizeof(sockaddr_un::sun_path)));
        if (!path.empty() && path[0] == 0) {  // abstract: a name, NULs and all, up to addrlen
            a.address =
                "@" + std::string(reinterpret_cast<const char*>(path.data()) + 1, path.size() - 1);
        } else {
            std::size_t n = 0;
            while (n < path.size() && path[n]) ++n;
            a.address.assign(reinterpret_cast<const char*>(path.data()), n);
        }
    } else {
        a.family = "AF_" + std::to_string(family);
    }
    return a;
}

std::optional<CaptureSpec> syscall_capture(std::uint64_t nr) {
    const SyscallInfo* info = syscall_info(nr);
    if (info == nullptr || info->capture_arg < 0) return std::nullopt;
    if (info->capture_len_arg >= 0)
        return CaptureSpec{CaptureSpec::Kind::kBuffer, info->capture_arg, info->capture_len_arg};
    return CaptureSpec{CaptureSpec::Kind::kString, info->capture_arg, -1};
}

std::string decode_ptrace_request(std::uint64_t request) {
    const char* name = find(kPtraceRequests, request);
    return name ? name : hex(request);
}

std::string decode_socket_domain(std::uint64_t domain) {
    const auto d = static_cast<std::int32_t>(static_cast<std::uint32_t>(domain));
    const char* name = find(kDomains, static_cast<std::uint32_t>(d));
    return name ? name : "AF_" + std::to_string(d);
}

std::string decode_socket_type(std::uint64_t type) {
    std::uint64_t rest = type & 0xffffffffULL;
    const std::uint64_t base = rest & kSockTypeMask;
    rest &= ~kSockTypeMask;
    const char* name = find(kSocketTypes, base);
    std::string out = name ? name : std::to_string(base);
    for (const Named& f : kSocketFlags) {
        if (rest & f.value) {
            out += '|';
            out += f.name;
            rest &= ~f.value;
        }
    }
    if (rest) out += "|" + hex(rest);
    return out;
}

}  // namespace vmi
