#include "libvirt/domain_metadata.hpp"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include <algorithm>
#include <cctype>
#include <memory>

namespace vmid::libvirt {

namespace {

struct DocFree {
    void operator()(xmlDoc* d) const { xmlFreeDoc(d); }
};
using Doc = std::unique_ptr<xmlDoc, DocFree>;
struct XmlFree {
    void operator()(xmlChar* s) const { xmlFree(s); }
};
using XmlString = std::unique_ptr<xmlChar, XmlFree>;
struct BufferFree {
    void operator()(xmlBuffer* b) const { xmlBufferFree(b); }
};

constexpr std::size_t kMaxXml = 64 * 1024;
constexpr std::size_t kMaxLabels = 64;
constexpr std::size_t kMaxValue = 256;

std::string name_of(const xmlNode* n) { return reinterpret_cast<const char*>(n->name); }

std::string text(const xmlChar* s) { return s ? reinterpret_cast<const char*>(s) : ""; }

std::string attr(const xmlNode* n, const char* name) {
    const XmlString v(xmlGetNoNsProp(n, reinterpret_cast<const xmlChar*>(name)));
    return text(v.get());
}

bool parse_bool(const std::string& where, std::string v) {
    std::transform(v.begin(), v.end(), v.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (v == "yes" || v == "true" || v == "1") return true;
    if (v == "no" || v == "false" || v == "0") return false;
    throw MetadataError(where + ": '" + v + "' is not yes or no");
}

// Names a policy or a label: printable, short, nothing a log line or a shell could misread.
void check_name(const std::string& where, const std::string& v) {
    if (v.empty() || v.size() > kMaxValue)
        throw MetadataError(where + ": must be 1 to " + std::to_string(kMaxValue) + " characters");
    for (unsigned char c : v)
        if (!std::isalnum(c) && c != '-' && c != '_' && c != '.' && c != ':' && c != '/')
            throw MetadataError(where + ": '" + v +
                                "' may hold only letters, digits and - _ . : /");
}

}  // namespace

MonitorSetting parse_monitor_metadata(std::string_view xml) {
    if (xml.size() > kMaxXml) throw MetadataError("<monitor>: larger than 64 KiB");
    const Doc doc(xmlReadMemory(xml.data(), static_cast<int>(xml.size()), "metadata", nullptr,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING));
    if (!doc) {
        const xmlError* e = xmlGetLastError();
        std::string why = e && e->message ? e->message : "not XML";
        while (!why.empty() && std::isspace(static_cast<unsigned char>(why.back()))) why.pop_back();
        throw MetadataError("VMInsight metadata is not well-formed XML: " + why);
    }
    const xmlNode* root = xmlDocGetRootElement(doc.get());
    if (!root || name_of(root) != "monitor")
        throw MetadataError("VMInsight metadata: the element must be <monitor>, not <" +
                            (root ? name_of(root) : std::string()) + ">");
    MonitorSetting s;
    bool has_enabled = false;
    for (const xmlAttr* a = root->properties; a; a = a->next) {
        const std::string n = text(a->name);
        if (n == "enabled") {
            s.enabled = parse_bool("<monitor enabled>", attr(root, "enabled"));
            has_enabled = true;
        } else if (n == "policy") {
            s.policy = attr(root, "policy");
            check_name("<monitor policy>", s.policy);
        } else {
            throw MetadataError("<monitor>: unknown attribute '" + n + "' (enabled, policy)");
        }
    }
    if (!has_enabled) throw MetadataError("<monitor>: no enabled attribute (yes or no)");
    for (const xmlNode* c = root->children; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE) continue;  // whitespace, comments
        if (name_of(c) != "label")
            throw MetadataError("<monitor>: unknown element <" + name_of(c) + "> (label)");
        if (s.labels.size() >= kMaxLabels)
            throw MetadataError("<monitor>: more than " + std::to_string(kMaxLabels) + " labels");
        const std::string key = attr(c, "name");
        check_name("<label name>", key);
        const XmlString content(xmlNodeGetContent(c));
        std::string value = text(content.get());
        if (value.size() > kMaxValue)
            throw MetadataError("<label name=\"" + key + "\">: longer than " +
                                std::to_string(kMaxValue) + " characters");
        if (!s.labels.emplace(key, std::move(value)).second)
            throw MetadataError("<label name=\"" + key + "\">: given twice");
    }
    return s;
}

std::string format_monitor_metadata(const MonitorSetting& s) {
    check_name("policy", s.policy.empty() ? "-" : s.policy);
    const Doc doc(xmlNewDoc(reinterpret_cast<const xmlChar*>("1.0")));
    xmlNode* root = xmlNewNode(nullptr, reinterpret_cast<const xmlChar*>("monitor"));
    xmlDocSetRootElement(doc.get(), root);
    xmlSetProp(root, reinterpret_cast<const xmlChar*>("enabled"),
               reinterpret_cast<const xmlChar*>(s.enabled ? "yes" : "no"));
    if (!s.policy.empty())
        xmlSetProp(root, reinterpret_cast<const xmlChar*>("policy"),
                   reinterpret_cast<const xmlChar*>(s.policy.c_str()));
    for (const auto& [k, v] : s.labels) {
        check_name("label", k);
        // xmlNewTextChild escapes the content.
        xmlNode* l = xmlNewTextChild(root, nullptr, reinterpret_cast<const xmlChar*>("label"),
                                     reinterpret_cast<const xmlChar*>(v.c_str()));
        xmlSetProp(l, reinterpret_cast<const xmlChar*>("name"),
                   reinterpret_cast<const xmlChar*>(k.c_str()));
    }
    const std::unique_ptr<xmlBuffer, BufferFree> buf(xmlBufferCreate());
    if (xmlNodeDump(buf.get(), doc.get(), root, 0, 0) < 0)
        throw MetadataError("cannot format the <monitor> element");
    return text(xmlBufferContent(buf.get()));
}

}  // namespace vmid::libvirt
