// libvirt handles as RAII types, and the few calls VMInsight makes on a domain: describe it
// (state and VMInsight's metadata), find it, write its monitoring setting.
#pragma once

#include <libvirt/libvirt.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "libvirt/domain_metadata.hpp"

namespace vmid::libvirt {

/// Names the URI or domain, and libvirt's own reason.
struct LibvirtError : std::runtime_error {
    using std::runtime_error::runtime_error;
};
/// The domain does not exist (any more): undefined, or a transient domain that stopped.
struct NoDomain : LibvirtError {
    using LibvirtError::LibvirtError;
};

/// Throws NoDomain when libvirt's last error on this thread says the domain is gone, else
/// LibvirtError (an RPC failure, libvirtd restarting, ...), with `what` and libvirt's reason.
[[noreturn]] void throw_last(const std::string& what);

struct ConnectionClose {
    void operator()(virConnectPtr c) const noexcept { virConnectClose(c); }
};
using Connection = std::unique_ptr<virConnect, ConnectionClose>;

struct DomainFree {
    void operator()(virDomainPtr d) const noexcept { virDomainFree(d); }
};
using Domain = std::unique_ptr<virDomain, DomainFree>;

/// libvirt's message for the last failed call on this thread.
std::string last_error();

/// Opens `uri`; read-only connections can read metadata and follow events but change nothing.
/// libvirt's own error printing is silenced: errors come back as exceptions.
Connection connect(const std::string& uri, bool read_only);

struct DomainInfo {
    std::string name, uuid;
    bool active = false;  // running or paused: it has a QEMU process
    bool persistent = false;
    std::string state;                      // "running", "paused", "shut off", ...
    std::optional<MonitorSetting> monitor;  // none: the domain has no VMInsight metadata
    std::string metadata_error;             // metadata present but not understood
    /// Whether VMInsight should be attached to it now.
    [[nodiscard]] bool monitored() const {
        return active && monitor && monitor->enabled && metadata_error.empty();
    }
};

/// Throws NoDomain when the domain is gone, LibvirtError when libvirt cannot say.
DomainInfo describe(virDomainPtr d);
std::vector<DomainInfo> list_domains(virConnectPtr c);
/// By name or uuid. Throws LibvirtError naming what was asked for.
Domain lookup(virConnectPtr c, const std::string& name_or_uuid);
/// The setting in force (the live one for a running domain); nullopt when absent. Throws
/// MetadataError for an element that is there but malformed.
std::optional<MonitorSetting> read_monitor(virDomainPtr d);
/// Writes `s` to the running domain and to its persistent definition, whichever it has, so the
/// daemon sees it now and it survives a restart. Returns what was written: "live",
/// "persistent" or "live and persistent". Throws LibvirtError.
std::string write_monitor(virDomainPtr d, const MonitorSetting& s);

}  // namespace vmid::libvirt
