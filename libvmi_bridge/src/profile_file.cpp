#include "vmi/profile_file.hpp"

#include <utility>

#include "vmi/btf_profile.hpp"

namespace vmi {

namespace {

Error prefixed(const std::string& path, Error e) {
    e.detail = path + ": " + (e.detail.empty() ? std::string(to_string(e.fault)) : e.detail);
    return e;
}

Result<KernelProfileFile> from_isf(Result<IsfProfile> isf, const std::string& path) {
    if (!isf) return std::move(isf).error();  // already names the file
    auto off = isf->linux_offsets();
    if (!off) return prefixed(path, std::move(off).error());
    KernelProfileFile f;
    f.source = ProfileSource::kIsf;
    f.path = path;
    f.hash = isf->hash();
    f.offsets = *off;
    f.link_text = isf->symbol("_text").value_or(0);
    f.link_init_task = isf->symbol("init_task").value_or(0);
    f.isf = std::make_shared<const IsfProfile>(std::move(*isf));
    return f;
}

}  // namespace

std::string_view to_string(ProfileSource s) noexcept {
    switch (s) {
        case ProfileSource::kGuestBtf:
            return "guest-btf";
        case ProfileSource::kBtfFile:
            return "btf-file";
        case ProfileSource::kIsf:
            return "isf";
    }
    return "?";
}

Result<KernelProfileFile> load_btf_profile_file(const std::string& path) {
    auto btf = BtfProfile::from_file(path);
    if (!btf) return std::move(btf).error();  // already names the file
    auto off = btf->linux_offsets();
    if (!off) return prefixed(path, std::move(off).error());
    KernelProfileFile f;
    f.source = ProfileSource::kBtfFile;
    f.path = path;
    f.hash = btf->hash();
    f.offsets = *off;
    return f;
}

Result<KernelProfileFile> load_isf_profile_file(const std::string& path) {
    return from_isf(IsfProfile::from_file(path), path);
}

Result<KernelProfileFile> load_isf_profile(std::string_view text, std::string_view name) {
    return from_isf(IsfProfile::parse(text, name), std::string(name));
}

}  // namespace vmi
