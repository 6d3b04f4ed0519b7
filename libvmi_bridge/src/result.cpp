#include "vmi/result.hpp"

namespace vmi {

std::string_view to_string(Fault f) noexcept {
    switch (f) {
        case Fault::kUnmapped:
            return "unmapped";
        case Fault::kReadFailed:
            return "read-failed";
        case Fault::kNotPresent:
            return "not-present";
        case Fault::kReservedBit:
            return "reserved-bit";
        case Fault::kNonCanonical:
            return "non-canonical";
        case Fault::kBadPointer:
            return "bad-pointer";
        case Fault::kLimitExceeded:
            return "limit-exceeded";
        case Fault::kCycle:
            return "cycle";
        case Fault::kNotFound:
            return "not-found";
        case Fault::kInvalidFormat:
            return "invalid-format";
        case Fault::kIo:
            return "io";
    }
    return "unknown";
}

std::string Error::message() const {
    std::string out(to_string(fault));
    if (!detail.empty()) {
        out += ": ";
        out += detail;
    }
    return out;
}

}  // namespace vmi
