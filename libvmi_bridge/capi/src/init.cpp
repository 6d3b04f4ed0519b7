// Opening and closing an instance, and what it tells about itself.
#include <sys/stat.h>

#include <cctype>
#include <cstdlib>
#include <cstring>

#include "instance.hpp"
#include "qmp_client.hpp"
#include "vm_locator.hpp"
#include "vmi/elf_core_memory.hpp"
#include "vmi/image_memory.hpp"

namespace {

thread_local std::string last_error;

bool all_digits(const std::string& s) {
    if (s.empty() || s.size() > 9) return false;
    for (char c : s)
        if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    return true;
}

// "cr3=0xHEX" anywhere in a VMI_CONFIG_STRING (LibVMI's config strings are free-form).
std::optional<std::uint64_t> config_cr3(vmi_config_t mode, const void* config) {
    if (mode != VMI_CONFIG_STRING || config == nullptr) return std::nullopt;
    const auto* text = static_cast<const char*>(config);
    const std::string s(text, strnlen(text, 4096));
    for (std::size_t at = s.find("cr3"); at != std::string::npos; at = s.find("cr3", at + 3)) {
        std::size_t i = at + 3;
        while (i < s.size() && (s[i] == ' ' || s[i] == '=' || s[i] == '"')) ++i;
        if (s.compare(i, 2, "0x") != 0) continue;
        char* end = nullptr;
        const unsigned long long v = std::strtoull(s.c_str() + i, &end, 16);
        if (end != s.c_str() + i + 2) return v;
    }
    return std::nullopt;
}

bool is_file(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

void set_error(vmi_init_error_t* error, vmi_init_error_t e) {
    if (error) *error = e;
}

// Opens the memory behind `domain`; returns the init stage that failed, or NONE.
vmi_init_error_t open_memory(vmi_instance& v, const void* domain, uint64_t flags) {
    pid_t pid = 0;
    if (flags & VMI_INIT_DOMAINID) {
        const std::uint64_t id = *static_cast<const std::uint64_t*>(domain);
        if (id == 0 || id > 0x3fffffff) {
            vmi_capi::fail("domain id " + std::to_string(id) + " is not a QEMU pid");
            return VMI_INIT_ERROR_VM_NOT_FOUND;
        }
        pid = static_cast<pid_t>(id);
        v.name = std::to_string(id);
    } else {
        v.name.assign(static_cast<const char*>(domain),
                      strnlen(static_cast<const char*>(domain), 4096));
        if (all_digits(v.name)) {
            pid = static_cast<pid_t>(std::stol(v.name));
        } else if (is_file(v.name)) {
            if (vmi::is_elf_file(v.name)) {
                auto core = vmi::ElfCoreMemory::open(v.name);
                if (!core) {
                    vmi_capi::fail(v.name + ": " + core.error().message());
                    return VMI_INIT_ERROR_DRIVER;
                }
                for (std::uint64_t c : (*core)->vcpu_cr3s()) v.snapshot_cr3s.push_back(c);
                v.snapshot = std::move(*core);
            } else {
                auto img = std::make_unique<vmi::ImageMemory>(v.name);
                v.snapshot_max_pa = img->size();
                v.snapshot = std::move(img);
            }
            v.mem = v.snapshot.get();
            return VMI_INIT_ERROR_NONE;
        } else {
            try {
                pid = vmid::find_qemu_by_name(v.name);
            } catch (const std::exception& e) {
                vmi_capi::fail(e.what());
                return VMI_INIT_ERROR_VM_NOT_FOUND;
            }
        }
    }
    try {
        v.live = std::make_unique<vmid::LiveGuest>(pid);
    } catch (const std::exception& e) {
        vmi_capi::fail(e.what());
        return VMI_INIT_ERROR_DRIVER;
    }
    v.mem = &v.live->memory();
    if (const char* env = std::getenv("VMINSIGHT_QMP_SOCKET"); env && *env) {
        if (std::strcmp(env, "none") != 0) v.qmp_socket = env;  // "none": always signals
    } else {
        v.qmp_socket = vmid::qmp_socket_from_cmdline(vmid::process_cmdline(pid));
    }
    return VMI_INIT_ERROR_NONE;
}

// Finds the guest kernel: BTF offsets and init_task, with the first CR3 that works.
vmi_init_error_t profile(vmi_instance& v) {
    std::vector<std::uint64_t> cr3s;
    if (v.config_cr3) cr3s.push_back(*v.config_cr3);
    cr3s.insert(cr3s.end(), v.snapshot_cr3s.begin(), v.snapshot_cr3s.end());
    if (v.live)
        for (std::uint64_t c : v.live->cr3s()) cr3s.push_back(c);
    if (cr3s.empty()) {
        vmi_capi::fail(v.name + ": no CR3 to translate with (a raw image needs config cr3=0xHEX)");
        return VMI_INIT_ERROR_PAGING;
    }
    std::string errors;
    for (std::uint64_t c : cr3s) {
        if (c == 0) continue;
        auto p = vmi::discover_kernel(*v.mem, c);
        if (p) {
            v.profile = *p;
            v.cr3 = c;
            return VMI_INIT_ERROR_NONE;
        }
        char hex[24];
        std::snprintf(hex, sizeof hex, "%#llx", static_cast<unsigned long long>(c));
        errors += std::string("; cr3 ") + hex + ": " + p.error().message();
    }
    vmi_capi::fail(v.name + ": no Linux kernel found in guest memory" + errors);
    return VMI_INIT_ERROR_OS;
}

}  // namespace

namespace vmi_capi {

status_t fail(const std::string& why) {
    last_error = why;
    return VMI_FAILURE;
}

}  // namespace vmi_capi

extern "C" {

const char* vmi_vminsight_last_error(void) { return last_error.c_str(); }

status_t vmi_init_complete(vmi_instance_t* vmi, const void* domain, uint64_t init_flags,
                           void* /*init_data*/, vmi_config_t config_mode, void* config,
                           vmi_init_error_t* error) {
    set_error(error, VMI_INIT_ERROR_NONE);
    if (vmi) *vmi = nullptr;
    if (!vmi || !domain) {
        set_error(error, VMI_INIT_ERROR_VM_NOT_FOUND);
        return vmi_capi::fail("vmi_init: no instance pointer or no domain");
    }
    if (init_flags & VMI_INIT_EVENTS) {
        set_error(error, VMI_INIT_ERROR_EVENTS);
        return vmi_capi::fail("vmi_init: events are not supported (VMI_INIT_EVENTS)");
    }
    return vmi_capi::guarded([&]() -> status_t {
        auto v = std::make_unique<vmi_instance>();
        const char* env = std::getenv("VMINSIGHT_ALLOW_WRITE");
        v->write_allowed =
            (init_flags & VMI_INIT_VMINSIGHT_WRITE) || (env && std::strcmp(env, "1") == 0);
        v->config_cr3 = config_cr3(config_mode, config);
        if (auto e = open_memory(*v, domain, init_flags); e != VMI_INIT_ERROR_NONE) {
            set_error(error, e);
            return VMI_FAILURE;
        }
        if (auto e = profile(*v); e != VMI_INIT_ERROR_NONE) {
            set_error(error, e);
            return VMI_FAILURE;
        }
        *vmi = v.release();  // owned by the caller until vmi_destroy
        return VMI_SUCCESS;
    });
}

status_t vmi_init(vmi_instance_t* vmi, vmi_mode_t /*mode*/, const void* domain, uint64_t init_flags,
                  void* init_data, vmi_init_error_t* error) {
    return vmi_init_complete(vmi, domain, init_flags, init_data, VMI_CONFIG_GLOBAL_FILE_ENTRY,
                             nullptr, error);
}

status_t vmi_destroy(vmi_instance_t vmi) {
    if (!vmi) return VMI_FAILURE;
    while (vmi->pauses > 0)
        if (vmi_resume_vm(vmi) != VMI_SUCCESS) break;
    std::unique_ptr<vmi_instance> owned(vmi);  // detaches from the VM on scope exit
    return VMI_SUCCESS;
}

os_t vmi_get_ostype(vmi_instance_t vmi) { return vmi ? VMI_OS_LINUX : VMI_OS_UNKNOWN; }

page_mode_t vmi_get_page_mode(vmi_instance_t vmi, unsigned long /*vcpu*/) {
    return vmi ? VMI_PM_IA32E : VMI_PM_UNKNOWN;
}

uint8_t vmi_get_address_width(vmi_instance_t vmi) { return vmi ? 8 : 0; }

unsigned int vmi_get_num_vcpus(vmi_instance_t vmi) {
    if (!vmi) return 0;
    if (!vmi->live) return 1;
    unsigned n = 0;
    vmi_capi::guarded([&]() -> status_t {
        n = vmi->live->nr_vcpus();
        return VMI_SUCCESS;
    });
    return n;
}

uint64_t vmi_get_memsize(vmi_instance_t vmi) {
    if (!vmi) return 0;
    return vmi->live ? vmi->live->memory_size() : vmi->snapshot_max_pa;
}

addr_t vmi_get_max_physical_address(vmi_instance_t vmi) {
    if (!vmi) return 0;
    return vmi->live ? vmi->live->max_physical_address() : vmi->snapshot_max_pa;
}

char* vmi_get_name(vmi_instance_t vmi) { return vmi ? strdup(vmi->name.c_str()) : nullptr; }

uint64_t vmi_get_vmid(vmi_instance_t vmi) {
    return vmi && vmi->live ? static_cast<uint64_t>(vmi->live->qemu_pid()) : 0;
}

status_t vmi_get_offset(vmi_instance_t vmi, const char* offset_name, addr_t* offset) {
    if (!vmi || !offset_name || !offset) return vmi_capi::fail("vmi_get_offset: null argument");
    const vmi::LinuxOffsets& o = vmi->profile.offsets;
    const std::string n = offset_name;
    if (n == "linux_tasks")
        *offset = o.task_tasks;
    else if (n == "linux_mm")
        *offset = o.task_mm;
    else if (n == "linux_pid")
        *offset = o.task_tgid;
    else if (n == "linux_pgd")
        *offset = o.mm_pgd;
    else if (n == "linux_name")
        *offset = o.task_comm;
    else
        return vmi_capi::fail("vmi_get_offset: unknown offset " + n);
    return VMI_SUCCESS;
}

}  // extern "C"
