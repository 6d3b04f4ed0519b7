// Internal: what the kernel module can enforce of a deny rule's condition.
#pragma once

#include <string>
#include <variant>

#include "compile.hpp"
#include "policy/policy.hpp"

namespace policy::detail {

// The module's part of a deny rule, or why the condition cannot be enforced at the trap.
std::variant<KernelDeny, std::string> kernel_deny(const Node& cond);

}  // namespace policy::detail
