/*
 * vminsight/libvmi.h: the most-used part of LibVMI's C API (libvmi/libvmi.h), implemented
 * by libvminsight-vmi.so over VMInsight's own introspection. Names, types and signatures are
 * LibVMI's, so a LibVMI-based tool compiles against this header unchanged (where LibVMI takes
 * `char *` or `void *` for input, this header takes the const version, which accepts both)
 * and links with -lvminsight-vmi. Only x86-64 Linux guests under KVM are supported.
 *
 * Zero configuration: no libvmi.conf, no profile. Struct offsets come from the guest kernel's
 * own BTF and kernel symbols from its kallsyms tables, both found in its memory.
 *
 * Opening a VM (vmi_init, vmi_init_complete), `domain` is one of:
 *   - VMI_INIT_DOMAINID:   a `uint64_t *` holding the pid of the VM's QEMU process;
 *   - VMI_INIT_DOMAINNAME: a `const char *`: a QEMU pid in decimal ("1234"); a libvirt
 *     domain name (its pid in /run/libvirt/qemu/NAME.pid) or the name a bare QEMU was started
 *     with (`-name NAME` or `-name guest=NAME,...`); or the path of a memory snapshot (a QEMU
 *     `dump-guest-memory` ELF; a raw image needs config "cr3=0xHEX", see below).
 * A live VM needs root and vminsight.ko: guest RAM is read from QEMU with process_vm_readv
 * through the module's memory map, and CR3 values come from the module's records. The module
 * allows one session per VM: while vminsightd monitors the VM, init fails
 * (VMI_INIT_ERROR_DRIVER; `vminsightctl ps DOMAIN` gives the daemon's live view instead).
 * `mode` VMI_KVM or VMI_FILE is accepted as a hint; it does not change the lookup. init_data
 * is ignored. config_mode VMI_CONFIG_STRING with config "cr3=0xHEX" gives the CR3 to use
 * (required for a raw image); other configuration is ignored.
 *
 * Every function is safe to call with any input: guest memory is hostile, walks are bounded,
 * and no C++ exception crosses this interface (a failure is VMI_FAILURE, NULL or 0).
 * An instance is not thread-safe: use one per thread or lock around it.
 *
 * Writes (vmi_write_*) go into QEMU's memory with process_vm_writev(2), behind the guest's
 * back: no vCPU is stopped, caches and TLBs are not flushed, a write can race the guest and
 * corrupt it, and writing page tables or kernel text can crash it. They are refused unless
 * the instance was opened with VMI_INIT_VMINSIGHT_WRITE in init_flags or the environment has
 * VMINSIGHT_ALLOW_WRITE=1. Snapshots are read-only. Pause the VM around writes that must be
 * atomic with respect to the guest.
 */
#ifndef VMINSIGHT_LIBVMI_H
#define VMINSIGHT_LIBVMI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

#define VMI_INIT_DOMAINNAME (1u << 0) /**< domain is a name string */
#define VMI_INIT_DOMAINID (1u << 1)   /**< domain is a uint64_t * (QEMU pid) */
#define VMI_INIT_EVENTS (1u << 2)     /**< not supported: init fails (VMI_INIT_ERROR_EVENTS) */
/** VMInsight extension: allow vmi_write_* on this instance (see the risks above). */
#define VMI_INIT_VMINSIGHT_WRITE (1u << 30)

typedef enum vmi_mode { VMI_XEN, VMI_KVM, VMI_FILE } vmi_mode_t;

typedef enum vmi_config {
    VMI_CONFIG_GLOBAL_FILE_ENTRY,
    VMI_CONFIG_STRING,
    VMI_CONFIG_GHASHTABLE,
} vmi_config_t;

typedef enum status { VMI_SUCCESS, VMI_FAILURE } status_t;

typedef enum vmi_init_error {
    VMI_INIT_ERROR_NONE,
    VMI_INIT_ERROR_DRIVER_NOT_DETECTED,
    VMI_INIT_ERROR_DRIVER,       /**< the VM was found but could not be opened */
    VMI_INIT_ERROR_VM_NOT_FOUND, /**< no QEMU process / snapshot of that name */
    VMI_INIT_ERROR_PAGING,       /**< no CR3 to translate with */
    VMI_INIT_ERROR_OS,           /**< the guest kernel could not be profiled */
    VMI_INIT_ERROR_EVENTS,
    VMI_INIT_ERROR_SHM,
    VMI_INIT_ERROR_NO_CONFIG,
    VMI_INIT_ERROR_NO_CONFIG_ENTRY,
} vmi_init_error_t;

typedef enum os { VMI_OS_UNKNOWN, VMI_OS_LINUX, VMI_OS_WINDOWS, VMI_OS_FREEBSD } os_t;

typedef enum page_mode {
    VMI_PM_UNKNOWN,
    VMI_PM_LEGACY,
    VMI_PM_PAE,
    VMI_PM_IA32E,
    VMI_PM_AARCH32,
    VMI_PM_AARCH64
} page_mode_t;

typedef enum translation_mechanism {
    VMI_TM_INVALID,
    VMI_TM_NONE,          /**< addr is guest-physical */
    VMI_TM_PROCESS_DTB,   /**< translate addr with dtb */
    VMI_TM_PROCESS_PID,   /**< translate addr in process pid's address space (0: kernel) */
    VMI_TM_KERNEL_SYMBOL, /**< the address of kernel symbol ksym, plus addr */
} translation_mechanism_t;

typedef uint64_t reg_t;
typedef uint64_t addr_t;
typedef int32_t vmi_pid_t;

/* Register names (LibVMI's numbering). Only CR3 is available; see vmi_get_vcpureg. */
#define RAX 0
#define RBX 1
#define RCX 2
#define RDX 3
#define RBP 4
#define RSI 5
#define RDI 6
#define RSP 7
#define RIP 8
#define RFLAGS 9
#define CR0 18
#define CR2 19
#define CR3 20
#define CR4 21

/** How an access is addressed (LibVMI's access_context_t). */
typedef struct {
    translation_mechanism_t translate_mechanism;
    addr_t addr;      /**< VMI_TM_NONE, _PROCESS_DTB, _PROCESS_PID; offset for _KERNEL_SYMBOL */
    const char* ksym; /**< VMI_TM_KERNEL_SYMBOL */
    addr_t dtb;       /**< VMI_TM_PROCESS_DTB */
    vmi_pid_t pid;    /**< VMI_TM_PROCESS_PID */
} access_context_t;

typedef struct vmi_instance* vmi_instance_t;

/* ---- Opening and closing ---------------------------------------------------------------- */

/** Opens a VM or snapshot (see the top of this file) and profiles its kernel: every function
 *  below works afterwards. On failure *vmi is NULL and *error (if given) says which stage. */
status_t vmi_init(vmi_instance_t* vmi, vmi_mode_t mode, const void* domain, uint64_t init_flags,
                  void* init_data, vmi_init_error_t* error);
/** The same as vmi_init (everything is initialized at once); config as described above. */
status_t vmi_init_complete(vmi_instance_t* vmi, const void* domain, uint64_t init_flags,
                           void* init_data, vmi_config_t config_mode, void* config,
                           vmi_init_error_t* error);
/** Closes the instance: detaches from the VM (resuming it if this instance paused it). */
status_t vmi_destroy(vmi_instance_t vmi);
/** Why the last failing call on this thread failed (VMInsight extension; never NULL). */
const char* vmi_vminsight_last_error(void);

/* ---- Information --------------------------------------------------------------------------- */

os_t vmi_get_ostype(vmi_instance_t vmi);
page_mode_t vmi_get_page_mode(vmi_instance_t vmi, unsigned long vcpu);
uint8_t vmi_get_address_width(vmi_instance_t vmi);
/** vCPUs of a live VM (the module's count); 1 for a snapshot. */
unsigned int vmi_get_num_vcpus(vmi_instance_t vmi);
/** Guest RAM bytes (sum of the memory map; a snapshot's max address). */
uint64_t vmi_get_memsize(vmi_instance_t vmi);
addr_t vmi_get_max_physical_address(vmi_instance_t vmi);
/** The domain string given to init; the caller frees it. */
char* vmi_get_name(vmi_instance_t vmi);
/** The QEMU pid of a live VM, 0 for a snapshot. */
uint64_t vmi_get_vmid(vmi_instance_t vmi);
/** Linux offsets by LibVMI's names: linux_tasks, linux_mm, linux_pid, linux_pgd, linux_name
 *  (task_struct.tasks, .mm, .tgid, mm_struct.pgd, task_struct.comm), from the guest's BTF.
 *  linux_pid is the tgid, the pid a user sees, as LibVMI's process lists use it. */
status_t vmi_get_offset(vmi_instance_t vmi, const char* offset_name, addr_t* offset);

/* ---- Translation --------------------------------------------------------------------------- */

status_t vmi_translate_kv2p(vmi_instance_t vmi, addr_t vaddr, addr_t* paddr);
/** pid 0 is the kernel's address space. */
status_t vmi_translate_uv2p(vmi_instance_t vmi, addr_t vaddr, vmi_pid_t pid, addr_t* paddr);
/** From the guest's kallsyms (found in its memory on first use; the first of equal names). */
status_t vmi_translate_ksym2v(vmi_instance_t vmi, const char* symbol, addr_t* vaddr);
/** The physical address of the process's page table root (mm->pgd), as CR3 holds it without
 *  PCID bits; pid 0 gives the kernel's. Kernel threads (no mm) fail. */
status_t vmi_pid_to_dtb(vmi_instance_t vmi, vmi_pid_t pid, addr_t* dtb);
status_t vmi_dtb_to_pid(vmi_instance_t vmi, addr_t dtb, vmi_pid_t* pid);
status_t vmi_pagetable_lookup(vmi_instance_t vmi, addr_t dtb, addr_t vaddr, addr_t* paddr);

/* ---- Reading -------------------------------------------------------------------------------
 * A read crossing an unmapped page fails; *bytes_read (optional) says how much was read. At
 * most 16 MiB per call. Strings are at most 4096 bytes, returned malloc'd (free them). */

status_t vmi_read(vmi_instance_t vmi, const access_context_t* ctx, size_t count, void* buf,
                  size_t* bytes_read);
status_t vmi_read_8(vmi_instance_t vmi, const access_context_t* ctx, uint8_t* value);
status_t vmi_read_16(vmi_instance_t vmi, const access_context_t* ctx, uint16_t* value);
status_t vmi_read_32(vmi_instance_t vmi, const access_context_t* ctx, uint32_t* value);
status_t vmi_read_64(vmi_instance_t vmi, const access_context_t* ctx, uint64_t* value);
status_t vmi_read_addr(vmi_instance_t vmi, const access_context_t* ctx, addr_t* value);
char* vmi_read_str(vmi_instance_t vmi, const access_context_t* ctx);

status_t vmi_read_pa(vmi_instance_t vmi, addr_t paddr, size_t count, void* buf, size_t* bytes_read);
status_t vmi_read_8_pa(vmi_instance_t vmi, addr_t paddr, uint8_t* value);
status_t vmi_read_16_pa(vmi_instance_t vmi, addr_t paddr, uint16_t* value);
status_t vmi_read_32_pa(vmi_instance_t vmi, addr_t paddr, uint32_t* value);
status_t vmi_read_64_pa(vmi_instance_t vmi, addr_t paddr, uint64_t* value);
status_t vmi_read_addr_pa(vmi_instance_t vmi, addr_t paddr, addr_t* value);
char* vmi_read_str_pa(vmi_instance_t vmi, addr_t paddr);

status_t vmi_read_va(vmi_instance_t vmi, addr_t vaddr, vmi_pid_t pid, size_t count, void* buf,
                     size_t* bytes_read);
status_t vmi_read_8_va(vmi_instance_t vmi, addr_t vaddr, vmi_pid_t pid, uint8_t* value);
status_t vmi_read_16_va(vmi_instance_t vmi, addr_t vaddr, vmi_pid_t pid, uint16_t* value);
status_t vmi_read_32_va(vmi_instance_t vmi, addr_t vaddr, vmi_pid_t pid, uint32_t* value);
status_t vmi_read_64_va(vmi_instance_t vmi, addr_t vaddr, vmi_pid_t pid, uint64_t* value);
status_t vmi_read_addr_va(vmi_instance_t vmi, addr_t vaddr, vmi_pid_t pid, addr_t* value);
char* vmi_read_str_va(vmi_instance_t vmi, addr_t vaddr, vmi_pid_t pid);

status_t vmi_read_ksym(vmi_instance_t vmi, const char* sym, size_t count, void* buf,
                       size_t* bytes_read);
status_t vmi_read_8_ksym(vmi_instance_t vmi, const char* sym, uint8_t* value);
status_t vmi_read_16_ksym(vmi_instance_t vmi, const char* sym, uint16_t* value);
status_t vmi_read_32_ksym(vmi_instance_t vmi, const char* sym, uint32_t* value);
status_t vmi_read_64_ksym(vmi_instance_t vmi, const char* sym, uint64_t* value);
status_t vmi_read_addr_ksym(vmi_instance_t vmi, const char* sym, addr_t* value);
char* vmi_read_str_ksym(vmi_instance_t vmi, const char* sym);

/* ---- Writing (guarded: see the top of this file) ------------------------------------------ */

status_t vmi_write(vmi_instance_t vmi, const access_context_t* ctx, size_t count, const void* buf,
                   size_t* bytes_written);
status_t vmi_write_pa(vmi_instance_t vmi, addr_t paddr, size_t count, const void* buf,
                      size_t* bytes_written);
status_t vmi_write_va(vmi_instance_t vmi, addr_t vaddr, vmi_pid_t pid, size_t count,
                      const void* buf, size_t* bytes_written);
status_t vmi_write_ksym(vmi_instance_t vmi, const char* sym, size_t count, const void* buf,
                        size_t* bytes_written);
status_t vmi_write_8_pa(vmi_instance_t vmi, addr_t paddr, uint8_t* value);
status_t vmi_write_16_pa(vmi_instance_t vmi, addr_t paddr, uint16_t* value);
status_t vmi_write_32_pa(vmi_instance_t vmi, addr_t paddr, uint32_t* value);
status_t vmi_write_64_pa(vmi_instance_t vmi, addr_t paddr, uint64_t* value);
status_t vmi_write_8_va(vmi_instance_t vmi, addr_t vaddr, vmi_pid_t pid, uint8_t* value);
status_t vmi_write_16_va(vmi_instance_t vmi, addr_t vaddr, vmi_pid_t pid, uint16_t* value);
status_t vmi_write_32_va(vmi_instance_t vmi, addr_t vaddr, vmi_pid_t pid, uint32_t* value);
status_t vmi_write_64_va(vmi_instance_t vmi, addr_t vaddr, vmi_pid_t pid, uint64_t* value);

/* ---- vCPUs and the VM ---------------------------------------------------------------------- */

/** Only CR3 is available: for a live VM, the CR3 the vCPU ran with at the last VM entry
 *  vminsight.ko recorded (the module reads no other register state: every other register
 *  fails with VMI_FAILURE); for an ELF snapshot, the CR3 in its QEMU notes. */
status_t vmi_get_vcpureg(vmi_instance_t vmi, uint64_t* value, reg_t reg, unsigned long vcpu);
/** Pause/resume a live VM: through QEMU's QMP socket ("stop"/"cont") when its command line
 *  has `-qmp unix:PATH` (or the environment gives VMINSIGHT_QMP_SOCKET; "none" means
 *  never QMP), else by stopping
 *  and continuing the QEMU process (SIGSTOP/SIGCONT: every vCPU thread stops; the guest
 *  sees the time jump on resume). Nested pauses count. No-ops on a snapshot. A VM that
 *  libvirt manages should be paused through libvirt (virsh suspend) instead. */
status_t vmi_pause_vm(vmi_instance_t vmi);
status_t vmi_resume_vm(vmi_instance_t vmi);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif /* VMINSIGHT_LIBVMI_H */
