#include "libvirt/connection.hpp"

#include <libvirt/virterror.h>

#include <array>
#include <mutex>

namespace vmid::libvirt {

namespace {

void quiet(void*, virErrorPtr) {}

std::string state_name(int state) {
    switch (state) {
        case VIR_DOMAIN_RUNNING:
            return "running";
        case VIR_DOMAIN_BLOCKED:
            return "blocked";
        case VIR_DOMAIN_PAUSED:
            return "paused";
        case VIR_DOMAIN_SHUTDOWN:
            return "shutting down";
        case VIR_DOMAIN_SHUTOFF:
            return "shut off";
        case VIR_DOMAIN_CRASHED:
            return "crashed";
        case VIR_DOMAIN_PMSUSPENDED:
            return "suspended";
        default:
            return "unknown";
    }
}

std::string domain_name(virDomainPtr d) {
    const char* n = virDomainGetName(d);
    return n ? n : "?";
}

}  // namespace

std::string last_error() {
    const char* m = virGetLastErrorMessage();
    return m ? m : "unknown libvirt error";
}

void throw_last(const std::string& what) {
    const virErrorPtr e = virGetLastError();
    const std::string msg = what + ": " + last_error();
    if (e && e->code == VIR_ERR_NO_DOMAIN) throw NoDomain(msg);
    throw LibvirtError(msg);
}

Connection connect(const std::string& uri, bool read_only) {
    static std::once_flag once;
    std::call_once(once, [] { virSetErrorFunc(nullptr, quiet); });
    Connection c(read_only ? virConnectOpenReadOnly(uri.c_str()) : virConnectOpen(uri.c_str()));
    if (!c) throw LibvirtError("libvirt " + uri + ": " + last_error());
    return c;
}

std::optional<MonitorSetting> read_monitor(virDomainPtr d) {
    char* xml = virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, kMetadataNs,
                                     VIR_DOMAIN_AFFECT_CURRENT);
    if (!xml) {
        const virErrorPtr e = virGetLastError();
        if (e && e->code == VIR_ERR_NO_DOMAIN_METADATA) return std::nullopt;
        throw LibvirtError("domain " + domain_name(d) + ": reading metadata: " + last_error());
    }
    const std::unique_ptr<char, decltype(&free)> owned(xml, &free);
    try {
        return parse_monitor_metadata(xml);
    } catch (const MetadataError& e) {
        throw MetadataError("domain " + domain_name(d) + ": " + e.what());
    }
}

DomainInfo describe(virDomainPtr d) {
    DomainInfo info;
    info.name = domain_name(d);
    std::array<char, VIR_UUID_STRING_BUFLEN> uuid{};
    if (virDomainGetUUIDString(d, uuid.data()) == 0) info.uuid = uuid.data();
    int state = 0, reason = 0;
    if (virDomainGetState(d, &state, &reason, 0) < 0) throw_last("domain " + info.name);
    info.state = state_name(state);
    info.active = virDomainIsActive(d) == 1;
    info.persistent = virDomainIsPersistent(d) == 1;
    try {
        info.monitor = read_monitor(d);
    } catch (const MetadataError& e) {
        info.metadata_error = e.what();
    }
    return info;
}

std::vector<DomainInfo> list_domains(virConnectPtr c) {
    virDomainPtr* doms = nullptr;
    const int n = virConnectListAllDomains(c, &doms, 0);
    if (n < 0) throw LibvirtError("listing domains: " + last_error());
    std::vector<Domain> owned;
    owned.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) owned.emplace_back(doms[i]);
    free(doms);
    std::vector<DomainInfo> out;
    for (const auto& d : owned) {
        try {
            out.push_back(describe(d.get()));
        } catch (const NoDomain&) {
            // undefined between the listing and now: not a domain any more. Any other error
            // (libvirtd going away) goes up: a partial list must not detach anything.
        }
    }
    return out;
}

Domain lookup(virConnectPtr c, const std::string& name_or_uuid) {
    Domain d(virDomainLookupByName(c, name_or_uuid.c_str()));
    if (!d) d.reset(virDomainLookupByUUIDString(c, name_or_uuid.c_str()));
    if (!d) throw_last("no domain '" + name_or_uuid + "'");
    return d;
}

std::string write_monitor(virDomainPtr d, const MonitorSetting& s) {
    const bool live = virDomainIsActive(d) == 1;
    const bool persistent = virDomainIsPersistent(d) == 1;
    unsigned int flags = 0;
    if (live) flags |= VIR_DOMAIN_AFFECT_LIVE;
    if (persistent) flags |= VIR_DOMAIN_AFFECT_CONFIG;
    const std::string xml = format_monitor_metadata(s);
    if (virDomainSetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, xml.c_str(), kMetadataPrefix,
                             kMetadataNs, flags) < 0)
        throw LibvirtError("domain " + domain_name(d) + ": writing metadata: " + last_error());
    if (live && persistent) return "live and persistent";
    return live ? "live" : "persistent";
}

}  // namespace vmid::libvirt
