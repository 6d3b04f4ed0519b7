// vminsight-policy check FILE...: prints every error as file:line:col: reason; exit 1 on any.
#include <cstdio>
#include <filesystem>
#include <string_view>
#include <vector>

#include "policy/policy.hpp"

namespace {
int usage() {
    std::fprintf(stderr,
                 "usage: vminsight-policy check FILE...\n"
                 "  Validates rule files (loaded together, in order; later files may append to\n"
                 "  or override earlier ones). Prints each error as file:line:col: reason.\n");
    return 2;
}
}  // namespace

int main(int argc, char** argv) {
    if (argc < 3 || std::string_view(argv[1]) != "check") return usage();
    std::vector<std::filesystem::path> files;
    for (int i = 2; i < argc; ++i) files.emplace_back(argv[i]);
    const auto res = policy::PolicySet::load(files);
    for (const auto& e : res.errors) std::fprintf(stderr, "%s\n", e.str().c_str());
    if (!res) {
        std::fprintf(stderr, "%zu error(s)\n", res.errors.size());
        return 1;
    }
    std::printf(
        "OK: %zu rules enabled of %zu (exec %zu, syscall %zu, start %zu, exit %zu)\n",
        res.set->rule_count(), res.set->rules().size(), res.set->rules_for(policy::EventType::Exec),
        res.set->rules_for(policy::EventType::Syscall),
        res.set->rules_for(policy::EventType::Start), res.set->rules_for(policy::EventType::Exit));
    return 0;
}
