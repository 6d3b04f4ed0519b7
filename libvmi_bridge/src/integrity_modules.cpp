// Hidden modules: every module in the kernel's module address tree (mod_tree, used to map an
// address to its module for oopses, kallsyms and BPF) must be on the `modules` list. A
// rootkit's list_del(&THIS_MODULE->list) leaves it in the tree.
#include <algorithm>
#include <array>
#include <unordered_set>

#include "integrity_internal.hpp"
#include "vmi/modules.hpp"
#include "vmi/page_walker.hpp"

namespace vmi::integrity {

namespace {

constexpr std::size_t kMaxDepth = 128;  // an rb tree of 2^16 nodes is at most 32 deep

bool kernel_ptr(std::uint64_t va, bool la57) {
    return va != 0 && (va >> 63) != 0 && is_canonical(va, la57) && (va & 7) == 0;
}

// struct module* of every node of tree[0], bounded; nullopt-like empty + failed on errors.
bool walk_mod_tree(Reader& r, std::uint64_t root_va, std::vector<std::uint64_t>& mods) {
    const LinuxOffsets& o = *r.ctx().offsets;
    const bool la57 = r.ctx().la57;
    auto root = r.u64(root_va);
    if (!root) {
        r.failed("modules", "mod_tree unreadable at " + hex(root_va));
        return false;
    }
    std::unordered_set<std::uint64_t> seen;
    std::unordered_set<std::uint64_t> found;
    std::vector<std::pair<std::uint64_t, std::size_t>> stack;  // node, depth
    if (*root != 0) stack.emplace_back(*root, 0);
    while (!stack.empty()) {
        const auto [node, depth] = stack.back();
        stack.pop_back();
        if (!kernel_ptr(node, la57) || node < o.mtn_node || depth > kMaxDepth) {
            r.failed("modules", "mod_tree node " + hex(node) + " is not plausible");
            return false;
        }
        if (!seen.insert(node).second) {
            r.failed("modules", "mod_tree loops at " + hex(node));
            return false;
        }
        if (seen.size() > kMaxModTreeNodes) {
            r.failed("modules", "mod_tree larger than " + std::to_string(kMaxModTreeNodes));
            return false;
        }
        std::array<std::uint64_t, 3> rb{};  // __rb_parent_color, rb_right, rb_left
        auto mod = r.u64(node - o.mtn_node + o.mtn_mod);
        if (!mod || !r.read(node, std::as_writable_bytes(std::span(rb)))) {
            r.failed("modules", "mod_tree node " + hex(node) + " unreadable");
            return false;
        }
        if (kernel_ptr(*mod, la57) && found.insert(*mod).second) mods.push_back(*mod);
        if (rb[1] != 0) stack.emplace_back(rb[1], depth + 1);
        if (rb[2] != 0) stack.emplace_back(rb[2], depth + 1);
    }
    return true;
}

}  // namespace

void check_hidden_modules(Reader& r) {
    const IntegrityContext& ctx = r.ctx();
    const LinuxOffsets& o = *ctx.offsets;
    if (!ctx.modules_known) return r.failed("modules", "the modules list could not be walked");
    if (!o.has_modules || !o.has_mod_tree) {
        return r.failed("modules", "the guest's BTF lacks struct mod_tree_root or module");
    }
    const std::uint64_t tree = r.sym("mod_tree");
    if (tree == 0) return r.failed("modules", "no mod_tree symbol");
    std::vector<std::uint64_t> mods;
    if (!walk_mod_tree(r, tree + o.mod_tree_root + o.latch_tree_tree, mods)) return;
    std::unordered_set<std::uint64_t> listed;
    for (const KernelModule& m : ctx.modules) listed.insert(m.module_va);
    std::vector<std::uint64_t> unlisted;
    for (std::uint64_t m : mods)
        if (listed.count(m) == 0) unlisted.push_back(m);
    // The list was read before this walk, and a loading module joins the list before the
    // tree (an unloading one leaves the list just before the tree): an unlisted module is
    // hidden only if a list read after the walk lacks it too, and the tree still has it after.
    if (!unlisted.empty()) {
        const auto head = modules_list_head(r.syms());
        auto again = head ? list_modules(*ctx.mem, ctx.cr3, o, *head)
                          : Result<std::vector<KernelModule>>(
                                Error{Fault::kInvalidFormat, "no modules symbol"});
        if (!again) return r.failed("modules", "the modules list could not be read again");
        for (const KernelModule& m : *again) listed.insert(m.module_va);
        r.refresh();  // the tree as it is now, not as cached by the first walk
        std::vector<std::uint64_t> tree_again;
        if (!walk_mod_tree(r, tree + o.mod_tree_root + o.latch_tree_tree, tree_again)) return;
        const std::unordered_set<std::uint64_t> still(tree_again.begin(), tree_again.end());
        std::erase_if(unlisted,
                      [&](std::uint64_t m) { return listed.count(m) != 0 || still.count(m) == 0; });
    }
    for (std::uint64_t m : unlisted) {
        std::vector<std::byte> name(std::min<std::uint64_t>(o.module_name_size, 64));
        std::string n;
        if (r.read(m + o.module_name, name)) {
            for (std::byte b : name) {
                const auto c = static_cast<unsigned char>(b);
                if (c == 0) break;
                n.push_back(c > 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
            }
        }
        std::int32_t state = -1;
        if (auto s = r.u64(m + o.module_state)) state = static_cast<std::int32_t>(*s & 0xffffffff);
        IntegrityFinding f;
        f.kind = FindingKind::kHiddenModule;
        // A module being unloaded leaves the list just before the tree.
        f.severity = state == static_cast<std::int32_t>(ModuleState::kLive) ? Severity::kCritical
                                                                            : Severity::kWarning;
        f.check = "modules";
        f.name = n;
        f.actual = m;
        f.message = "module " + (n.empty() ? std::string("?") : n) + " (" + hex(m) + ", " +
                    std::string(module_state_name(state)) +
                    ") is in the module address tree but not on the modules list";
        r.add(std::move(f));
    }
}

}  // namespace vmi::integrity
