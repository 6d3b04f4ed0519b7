#include "vmi/entity_id.hpp"

#include <openssl/sha.h>

#include <cstdio>

namespace vmi {

std::string task_address_text(std::uint64_t task_va) {
    char buf[19];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(task_va));
    return buf;
}

std::string process_entity_id(std::string_view vm, std::string_view task,
                              std::uint64_t start_time_ns) {
    const std::string key =
        std::string(vm) + '\0' + std::string(task) + '\0' + std::to_string(start_time_ns);
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), md);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(32);
    for (int i = 0; i < 16; ++i) {
        out += kHex[md[i] >> 4];
        out += kHex[md[i] & 15];
    }
    return out;
}

}  // namespace vmi
