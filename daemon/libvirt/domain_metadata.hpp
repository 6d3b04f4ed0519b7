// VMInsight's per-domain setting, kept in the domain's own libvirt XML under VMInsight's
// namespace, so `virsh metadata` shows and edits it and it travels with the domain:
//   <metadata>
//     <vminsight:monitor xmlns:vminsight="https://vminsight.dev/xmlns/domain/1"
//                        enabled="yes" policy="web">
//       <vminsight:label name="env">prod</vminsight:label>
//     </vminsight:monitor>
//   </metadata>
// `policy` names the policy (a `- policy:` item) the domain is judged by; labels are
// metadata a policy's scope can select on.
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <string_view>

namespace vmid::libvirt {

inline constexpr const char* kMetadataNs = "https://vminsight.dev/xmlns/domain/1";
inline constexpr const char* kMetadataPrefix = "vminsight";

struct MonitorSetting {
    bool enabled = false;
    std::string policy;                         // empty: every policy whose scope matches
    std::map<std::string, std::string> labels;  // for policy scopes (`metadata:`)
    bool operator==(const MonitorSetting&) const = default;
};

/// A <monitor> element that is not what VMInsight writes: the message names the attribute or
/// element, so a typo ("enable=") is reported rather than silently not monitoring.
struct MetadataError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// Parses the element libvirt returns for kMetadataNs (virDomainGetMetadata). Throws
/// MetadataError.
MonitorSetting parse_monitor_metadata(std::string_view xml);

/// The element to hand to virDomainSetMetadata (without the namespace: libvirt adds it).
std::string format_monitor_metadata(const MonitorSetting& setting);

}  // namespace vmid::libvirt
