/*
 * vmi-capi-probe: a LibVMI-style C program written only against vminsight/libvmi.h, run in the
 * lab against a live guest. It prints what it reads as "CAPI ..." lines for the scenario's
 * check to compare with the guest's own view: linux_banner (against /proc/version), the
 * process list walked the LibVMI way (init_task, linux_tasks/linux_pid/linux_name offsets),
 * one process's argv[0] through vmi_pid_to_dtb and a page table lookup, and jiffies_64 across
 * vmi_pause_vm / vmi_resume_vm.
 *
 * Usage: vmi-capi-probe QEMU_PID PID ARG_START
 *   PID: a guest process; ARG_START: its mm->arg_start (field 48 of /proc/PID/stat).
 * Exit status: 0 when every call worked (the check judges the values), 1 otherwise.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vminsight/libvmi.h"

static int failures;

static void bad(const char* what) {
    printf("CAPI FAIL %s: %s\n", what, vmi_vminsight_last_error());
    failures++;
}

/* The guest's task list from init_task, as LibVMI's process-list example walks it. */
static void list_tasks(vmi_instance_t vmi) {
    addr_t tasks_off, pid_off, name_off, head, next;
    if (vmi_get_offset(vmi, "linux_tasks", &tasks_off) != VMI_SUCCESS ||
        vmi_get_offset(vmi, "linux_pid", &pid_off) != VMI_SUCCESS ||
        vmi_get_offset(vmi, "linux_name", &name_off) != VMI_SUCCESS) {
        bad("vmi_get_offset");
        return;
    }
    if (vmi_translate_ksym2v(vmi, "init_task", &head) != VMI_SUCCESS) {
        bad("vmi_translate_ksym2v init_task");
        return;
    }
    head += tasks_off;
    if (vmi_read_addr_va(vmi, head, 0, &next) != VMI_SUCCESS) {
        bad("vmi_read_addr_va init_task.tasks");
        return;
    }
    int n = 0;
    while (next != head && n < 4096) { /* guest memory is hostile: bounded */
        const addr_t task = next - tasks_off;
        uint32_t pid = 0;
        if (vmi_read_32_va(vmi, task + pid_off, 0, &pid) != VMI_SUCCESS) {
            bad("vmi_read_32_va pid");
            return;
        }
        char* name = vmi_read_str_va(vmi, task + name_off, 0);
        if (!name) {
            bad("vmi_read_str_va comm");
            return;
        }
        printf("CAPI task pid=%" PRIu32 " comm=%s\n", pid, name);
        free(name);
        if (vmi_read_addr_va(vmi, next, 0, &next) != VMI_SUCCESS) {
            bad("vmi_read_addr_va tasks.next");
            return;
        }
        n++;
    }
    printf("CAPI tasks %d\n", n);
}

static void read_argv0(vmi_instance_t vmi, vmi_pid_t pid, addr_t arg_start) {
    addr_t dtb = 0, pa = 0, pa2 = 0;
    if (vmi_pid_to_dtb(vmi, pid, &dtb) != VMI_SUCCESS) {
        bad("vmi_pid_to_dtb");
        return;
    }
    if (vmi_pagetable_lookup(vmi, dtb, arg_start, &pa) != VMI_SUCCESS) {
        bad("vmi_pagetable_lookup");
        return;
    }
    if (vmi_translate_uv2p(vmi, arg_start, pid, &pa2) != VMI_SUCCESS || pa2 != pa) {
        bad("vmi_translate_uv2p differs from the page table lookup");
        return;
    }
    char* by_pa = vmi_read_str_pa(vmi, pa);
    char* by_va = vmi_read_str_va(vmi, arg_start, pid);
    access_context_t ctx = {
        .translate_mechanism = VMI_TM_PROCESS_DTB, .addr = arg_start, .dtb = dtb};
    char* by_dtb = vmi_read_str(vmi, &ctx);
    if (!by_pa || !by_va || !by_dtb || strcmp(by_pa, by_va) != 0 || strcmp(by_pa, by_dtb) != 0) {
        bad("argv[0] read by pa, va and dtb differ");
    } else {
        printf("CAPI argv0 pid=%d dtb=0x%" PRIx64 " va=0x%" PRIx64 " pa=0x%" PRIx64 " %s\n", pid,
               dtb, arg_start, pa, by_pa);
    }
    free(by_pa);
    free(by_va);
    free(by_dtb);
}

static int read_jiffies(vmi_instance_t vmi, uint64_t* j) {
    if (vmi_read_64_ksym(vmi, "jiffies_64", j) == VMI_SUCCESS) return 1;
    bad("vmi_read_64_ksym jiffies_64");
    return 0;
}

/* jiffies_64 must stand still while paused and move again once resumed. */
static void pause_resume(vmi_instance_t vmi) {
    uint64_t before, paused_a, paused_b, resumed;
    if (!read_jiffies(vmi, &before)) return;
    if (vmi_pause_vm(vmi) != VMI_SUCCESS) {
        bad("vmi_pause_vm");
        return;
    }
    usleep(200000);
    int ok = read_jiffies(vmi, &paused_a);
    sleep(2);
    ok = ok && read_jiffies(vmi, &paused_b);
    if (vmi_resume_vm(vmi) != VMI_SUCCESS) {
        bad("vmi_resume_vm");
        return;
    }
    sleep(2);
    if (!ok || !read_jiffies(vmi, &resumed)) return;
    printf("CAPI pause before=%" PRIu64 " paused_a=%" PRIu64 " paused_b=%" PRIu64
           " resumed=%" PRIu64 "\n",
           before, paused_a, paused_b, resumed);
}

int main(int argc, char** argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: vmi-capi-probe QEMU_PID PID ARG_START\n");
        return 2;
    }
    vmi_instance_t vmi = NULL;
    vmi_init_error_t err = VMI_INIT_ERROR_NONE;
    if (vmi_init_complete(&vmi, argv[1], VMI_INIT_DOMAINNAME, NULL, VMI_CONFIG_GLOBAL_FILE_ENTRY,
                          NULL, &err) != VMI_SUCCESS) {
        printf("CAPI init FAIL error=%d: %s\n", (int)err, vmi_vminsight_last_error());
        return 1;
    }
    char* name = vmi_get_name(vmi);
    printf("CAPI init name=%s vmid=%" PRIu64 " vcpus=%u memsize=%" PRIu64 " os=%d\n", name,
           vmi_get_vmid(vmi), vmi_get_num_vcpus(vmi), vmi_get_memsize(vmi),
           (int)vmi_get_ostype(vmi));
    free(name);

    char* banner = vmi_read_str_ksym(vmi, "linux_banner");
    if (banner) {
        banner[strcspn(banner, "\n")] = '\0';
        printf("CAPI banner %s\n", banner);
        free(banner);
    } else {
        bad("vmi_read_str_ksym linux_banner");
    }
    addr_t va = 0, pa = 0;
    uint64_t by_sym = 0, by_pa = 0;
    if (vmi_translate_ksym2v(vmi, "linux_banner", &va) != VMI_SUCCESS ||
        vmi_translate_kv2p(vmi, va, &pa) != VMI_SUCCESS ||
        vmi_read_64_ksym(vmi, "linux_banner", &by_sym) != VMI_SUCCESS ||
        vmi_read_64_pa(vmi, pa, &by_pa) != VMI_SUCCESS || by_sym != by_pa)
        bad("linux_banner through ksym2v + kv2p + read_pa");
    else
        printf("CAPI banner-va 0x%" PRIx64 " pa 0x%" PRIx64 "\n", va, pa);

    uint64_t cr3 = 0;
    if (vmi_get_vcpureg(vmi, &cr3, CR3, 0) == VMI_SUCCESS)
        printf("CAPI cr3 0x%" PRIx64 "\n", cr3);
    else
        bad("vmi_get_vcpureg CR3");
    if (vmi_get_vcpureg(vmi, &cr3, RIP, 0) == VMI_SUCCESS) bad("vmi_get_vcpureg RIP succeeded");
    uint8_t byte = 0;
    if (vmi_write_8_pa(vmi, pa, &byte) == VMI_SUCCESS) bad("a write without opt-in succeeded");

    list_tasks(vmi);
    read_argv0(vmi, (vmi_pid_t)strtol(argv[2], NULL, 10), (addr_t)strtoull(argv[3], NULL, 0));
    pause_resume(vmi);
    vmi_destroy(vmi);
    printf("CAPI done failures=%d\n", failures);
    return failures ? 1 : 0;
}
