// Reading and writing guest memory by physical address, virtual address (a process's or the
// kernel's) or kernel symbol; every form funnels into access() below.
#include <cstdlib>
#include <cstring>
#include <span>

#include "instance.hpp"
#include "vmi/page_walker.hpp"

namespace {

using vmi_capi::fail;
using vmi_capi::guarded;

constexpr std::size_t kMaxAccess = 16U << 20;  // per call: a hostile count must not allocate GBs
constexpr std::size_t kMaxString = 4096;
constexpr std::uint64_t kPage = 4096;

// Where an access goes: guest-physical, or virtual through page table root `dtb`.
struct Target {
    bool physical = true;
    std::uint64_t dtb = 0;
    std::uint64_t addr = 0;
};

vmi::Result<Target> resolve(vmi_instance& v, const access_context_t* ctx) {
    if (!ctx) return vmi::Error{vmi::Fault::kInvalidFormat, "no access context"};
    switch (ctx->translate_mechanism) {
        case VMI_TM_NONE:
            return Target{true, 0, ctx->addr};
        case VMI_TM_PROCESS_DTB:
            return Target{false, ctx->dtb, ctx->addr};
        case VMI_TM_PROCESS_PID: {
            auto dtb = vmi_capi::pid_dtb(v, ctx->pid);
            if (!dtb) return dtb.error();
            return Target{false, *dtb, ctx->addr};
        }
        case VMI_TM_KERNEL_SYMBOL: {
            auto va = vmi_capi::ksym(v, ctx->ksym);
            if (!va) return va.error();
            return Target{false, vmi_capi::kernel_dtb(v), *va + ctx->addr};
        }
        default:
            return vmi::Error{vmi::Fault::kInvalidFormat, "unknown translate_mechanism"};
    }
}

// Reads or writes `len` bytes at `t`, page by page for virtual targets; `done` counts the
// bytes moved before any failure.
vmi::Status access(vmi_instance& v, const Target& t, std::byte* buf, std::size_t len, bool write,
                   std::size_t& done) {
    done = 0;
    if (len > kMaxAccess)
        return vmi::Error{vmi::Fault::kLimitExceeded, "more than 16 MiB in one call"};
    if (write && !v.write_allowed)
        return vmi::Error{vmi::Fault::kInvalidFormat,
                          "writes are disabled: open with VMI_INIT_VMINSIGHT_WRITE or set "
                          "VMINSIGHT_ALLOW_WRITE=1 (see vminsight/libvmi.h for the risks)"};
    if (write && !v.live) return vmi::Error{vmi::Fault::kIo, "a snapshot is read-only"};
    while (done < len) {
        const std::uint64_t at = t.addr + done;
        std::uint64_t pa = at;
        std::size_t n = len - done;
        if (!t.physical) {
            auto tr = vmi::translate(*v.mem, t.dtb, at, false);
            if (!tr) return tr.error();
            pa = *tr;
            n = static_cast<std::size_t>(std::min<std::uint64_t>(n, kPage - (at & (kPage - 1))));
        }
        if (write) {
            std::size_t w = 0;
            auto st = v.live->memory().write_phys(pa, {buf + done, n}, &w);
            done += w;
            if (!st) return st;
        } else {
            auto st = v.mem->read_phys(pa, {buf + done, n});
            if (!st && v.live) {  // the guest's memory map may have changed since init
                v.live->refresh_memslots();
                st = v.mem->read_phys(pa, {buf + done, n});
            }
            if (!st) return st;
            done += n;
        }
    }
    return {};
}

status_t rw(vmi_instance_t vmi, const access_context_t* ctx, std::size_t count, void* buf,
            std::size_t* moved, bool write) {
    if (moved) *moved = 0;
    if (!vmi || (!buf && count)) return fail("null instance or buffer");
    return guarded([&]() -> status_t {
        auto t = resolve(*vmi, ctx);
        if (!t) return fail(t.error());
        std::size_t done = 0;
        auto st = access(*vmi, *t, static_cast<std::byte*>(buf), count, write, done);
        if (moved) *moved = done;
        return st ? VMI_SUCCESS : fail(st.error());
    });
}

access_context_t pa_ctx(addr_t pa) {
    access_context_t c{};
    c.translate_mechanism = VMI_TM_NONE;
    c.addr = pa;
    return c;
}

access_context_t va_ctx(addr_t va, vmi_pid_t pid) {
    access_context_t c{};
    c.translate_mechanism = VMI_TM_PROCESS_PID;
    c.addr = va;
    c.pid = pid;
    return c;
}

access_context_t ksym_ctx(const char* sym) {
    access_context_t c{};
    c.translate_mechanism = VMI_TM_KERNEL_SYMBOL;
    c.ksym = sym;
    return c;
}

// Exactly sizeof(T) bytes or failure.
template <class T>
status_t read_n(vmi_instance_t vmi, const access_context_t& ctx, T* value) {
    if (!value) return fail("null value pointer");
    T tmp{};
    std::size_t got = 0;
    if (rw(vmi, &ctx, sizeof tmp, &tmp, &got, false) != VMI_SUCCESS) return VMI_FAILURE;
    *value = tmp;
    return VMI_SUCCESS;
}

template <class T>
status_t write_n(vmi_instance_t vmi, const access_context_t& ctx, const T* value) {
    if (!value) return fail("null value pointer");
    T tmp = *value;
    return rw(vmi, &ctx, sizeof tmp, &tmp, nullptr, true);
}

// A NUL-terminated string of at most kMaxString bytes, read page by page (a string that ends
// just before an unmapped page still reads).
char* read_string(vmi_instance_t vmi, const access_context_t& ctx) {
    if (!vmi) return nullptr;
    std::string out;
    status_t st = guarded([&]() -> status_t {
        auto t = resolve(*vmi, &ctx);
        if (!t) return fail(t.error());
        Target at = *t;
        while (out.size() < kMaxString) {
            const std::size_t n = static_cast<std::size_t>(
                std::min<std::uint64_t>(kMaxString - out.size(), kPage - (at.addr & (kPage - 1))));
            std::string chunk(n, '\0');
            std::size_t done = 0;
            auto rs = access(*vmi, at, reinterpret_cast<std::byte*>(chunk.data()), n, false, done);
            if (!rs) return fail(rs.error());
            const std::size_t nul = chunk.find('\0');
            out.append(chunk, 0, nul == std::string::npos ? n : nul);
            if (nul != std::string::npos) return VMI_SUCCESS;
            at.addr += n;
        }
        return VMI_SUCCESS;  // truncated at kMaxString
    });
    if (st != VMI_SUCCESS) return nullptr;
    return strdup(out.c_str());
}

}  // namespace

extern "C" {

status_t vmi_read(vmi_instance_t vmi, const access_context_t* ctx, size_t count, void* buf,
                  size_t* bytes_read) {
    return rw(vmi, ctx, count, buf, bytes_read, false);
}
status_t vmi_read_8(vmi_instance_t vmi, const access_context_t* ctx, uint8_t* value) {
    return ctx ? read_n(vmi, *ctx, value) : fail("no access context");
}
status_t vmi_read_16(vmi_instance_t vmi, const access_context_t* ctx, uint16_t* value) {
    return ctx ? read_n(vmi, *ctx, value) : fail("no access context");
}
status_t vmi_read_32(vmi_instance_t vmi, const access_context_t* ctx, uint32_t* value) {
    return ctx ? read_n(vmi, *ctx, value) : fail("no access context");
}
status_t vmi_read_64(vmi_instance_t vmi, const access_context_t* ctx, uint64_t* value) {
    return ctx ? read_n(vmi, *ctx, value) : fail("no access context");
}
status_t vmi_read_addr(vmi_instance_t vmi, const access_context_t* ctx, addr_t* value) {
    return ctx ? read_n(vmi, *ctx, value) : fail("no access context");
}
char* vmi_read_str(vmi_instance_t vmi, const access_context_t* ctx) {
    return ctx ? read_string(vmi, *ctx) : nullptr;
}

status_t vmi_read_pa(vmi_instance_t vmi, addr_t paddr, size_t count, void* buf,
                     size_t* bytes_read) {
    const auto c = pa_ctx(paddr);
    return rw(vmi, &c, count, buf, bytes_read, false);
}
status_t vmi_read_8_pa(vmi_instance_t vmi, addr_t paddr, uint8_t* value) {
    return read_n(vmi, pa_ctx(paddr), value);
}
status_t vmi_read_16_pa(vmi_instance_t vmi, addr_t paddr, uint16_t* value) {
    return read_n(vmi, pa_ctx(paddr), value);
}
status_t vmi_read_32_pa(vmi_instance_t vmi, addr_t paddr, uint32_t* value) {
    return read_n(vmi, pa_ctx(paddr), value);
}
status_t vmi_read_64_pa(vmi_instance_t vmi, addr_t paddr, uint64_t* value) {
    return read_n(vmi, pa_ctx(paddr), value);
}
status_t vmi_read_addr_pa(vmi_instance_t vmi, addr_t paddr, addr_t* value) {
    return read_n(vmi, pa_ctx(paddr), value);
}
char* vmi_read_str_pa(vmi_instance_t vmi, addr_t paddr) { return read_string(vmi, pa_ctx(paddr)); }

status_t vmi_read_va(vmi_instance_t vmi, addr_t vaddr, vmi_pid_t pid, size_t count, void* buf,
                     size_t* bytes_read) {
    const auto c = va_ctx(vaddr, pid);
    return rw(vmi, &c, count, buf, bytes_read, false);
}
status_t vmi_read_8_va(vmi_instance_t vmi, addr_t vaddr, vmi_pid_t pid, uint8_t* value) {
    return read_n(vmi, va_ctx(vaddr, pid), value);
}
status_t vmi_read_16_va(vmi_instance_t vmi, addr_t vaddr, vmi_pid_t pid, uint16_t* value) {
    return read_n(vmi, va_ctx(vaddr, pid), value);
}
status_t vmi_read_32_va(vmi_instance_t vmi, addr_t vaddr, vmi_pid_t pid, uint32_t* value) {
    return read_n(vmi, va_ctx(vaddr, pid), value);
}
status_t vmi_read_64_va(vmi_instance_t vmi, addr_t vaddr, vmi_pid_t pid, uint64_t* value) {
    return read_n(vmi, va_ctx(vaddr, pid), value);
}
status_t vmi_read_addr_va(vmi_instance_t vmi, addr_t vaddr, vmi_pid_t pid, addr_t* value) {
    return read_n(vmi, va_ctx(vaddr, pid), value);
}
char* vmi_read_str_va(vmi_instance_t vmi, addr_t vaddr, vmi_pid_t pid) {
    return read_string(vmi, va_ctx(vaddr, pid));
}

status_t vmi_read_ksym(vmi_instance_t vmi, const char* sym, size_t count, void* buf,
                       size_t* bytes_read) {
    const auto c = ksym_ctx(sym);
    return rw(vmi, &c, count, buf, bytes_read, false);
}
status_t vmi_read_8_ksym(vmi_instance_t vmi, const char* sym, uint8_t* value) {
    return read_n(vmi, ksym_ctx(sym), value);
}
status_t vmi_read_16_ksym(vmi_instance_t vmi, const char* sym, uint16_t* value) {
    return read_n(vmi, ksym_ctx(sym), value);
}
status_t vmi_read_32_ksym(vmi_instance_t vmi, const char* sym, uint32_t* value) {
    return read_n(vmi, ksym_ctx(sym), value);
}
status_t vmi_read_64_ksym(vmi_instance_t vmi, const char* sym, uint64_t* value) {
    return read_n(vmi, ksym_ctx(sym), value);
}
status_t vmi_read_addr_ksym(vmi_instance_t vmi, const char* sym, addr_t* value) {
    return read_n(vmi, ksym_ctx(sym), value);
}
char* vmi_read_str_ksym(vmi_instance_t vmi, const char* sym) {
    return read_string(vmi, ksym_ctx(sym));
}

status_t vmi_write(vmi_instance_t vmi, const access_context_t* ctx, size_t count, const void* buf,
                   size_t* bytes_written) {
    // rw() only reads from buf when writing.
    return rw(vmi, ctx, count, const_cast<void*>(buf), bytes_written, true);
}
status_t vmi_write_pa(vmi_instance_t vmi, addr_t paddr, size_t count, const void* buf,
                      size_t* bytes_written) {
    const auto c = pa_ctx(paddr);
    return vmi_write(vmi, &c, count, buf, bytes_written);
}
status_t vmi_write_va(vmi_instance_t vmi, addr_t vaddr, vmi_pid_t pid, size_t count,
                      const void* buf, size_t* bytes_written) {
    const auto c = va_ctx(vaddr, pid);
    return vmi_write(vmi, &c, count, buf, bytes_written);
}
status_t vmi_write_ksym(vmi_instance_t vmi, const char* sym, size_t count, const void* buf,
                        size_t* bytes_written) {
    const auto c = ksym_ctx(sym);
    return vmi_write(vmi, &c, count, buf, bytes_written);
}
status_t vmi_write_8_pa(vmi_instance_t vmi, addr_t paddr, uint8_t* value) {
    return write_n(vmi, pa_ctx(paddr), value);
}
status_t vmi_write_16_pa(vmi_instance_t vmi, addr_t paddr, uint16_t* value) {
    return write_n(vmi, pa_ctx(paddr), value);
}
status_t vmi_write_32_pa(vmi_instance_t vmi, addr_t paddr, uint32_t* value) {
    return write_n(vmi, pa_ctx(paddr), value);
}
status_t vmi_write_64_pa(vmi_instance_t vmi, addr_t paddr, uint64_t* value) {
    return write_n(vmi, pa_ctx(paddr), value);
}
status_t vmi_write_8_va(vmi_instance_t vmi, addr_t vaddr, vmi_pid_t pid, uint8_t* value) {
    return write_n(vmi, va_ctx(vaddr, pid), value);
}
status_t vmi_write_16_va(vmi_instance_t vmi, addr_t vaddr, vmi_pid_t pid, uint16_t* value) {
    return write_n(vmi, va_ctx(vaddr, pid), value);
}
status_t vmi_write_32_va(vmi_instance_t vmi, addr_t vaddr, vmi_pid_t pid, uint32_t* value) {
    return write_n(vmi, va_ctx(vaddr, pid), value);
}
status_t vmi_write_64_va(vmi_instance_t vmi, addr_t vaddr, vmi_pid_t pid, uint64_t* value) {
    return write_n(vmi, va_ctx(vaddr, pid), value);
}

}  // extern "C"
