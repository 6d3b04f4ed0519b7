// kallsyms from guest memory: synthetic tables with the kernel's own encoding in a synthetic
// guest (both table orders, both offset encodings, KASLR), hostile variants, the loaded
// modules list, and the real Debian kernels of the lab cache read from their vmlinux.
#include <bpf/btf.h>
#include <elf.h>
#include <gtest/gtest.h>
#include <linux/btf.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "bridge_synthetic_guest.hpp"
#include "bridge_synthetic_kallsyms.hpp"
#include "bridge_test_support.hpp"
#include "vmi/btf_profile.hpp"
#include "vmi/buffer_memory.hpp"
#include "vmi/kallsyms.hpp"
#include "vmi/kernel_discovery.hpp"
#include "vmi/kernel_image.hpp"
#include "vmi/modules.hpp"

namespace vmi {
namespace {

using test::k4K;
using test::KallsymsBlob;
using test::KallsymsBuildOptions;
using test::KallsymsEncoder;
using test::KallsymsLayout;
using test::PageTableBuilder;
using test::SynthSym;

constexpr std::uint64_t kText = 0xffff'ffff'8a00'0000ULL;      // slid _text (2 MiB aligned)
constexpr std::uint64_t kLinkText = 0xffff'ffff'8100'0000ULL;  // _text as linked
constexpr std::uint64_t kImagePa = 0x0100'0000;
constexpr std::uint64_t kImageLen = 0x60'0000;
constexpr std::uint64_t kTablesOff = 0x20'0048;  // ".rodata": where the tables go
constexpr std::uint64_t kInitTaskOff = 0x50'01c0;
constexpr std::uint64_t kModulesOff = 0x50'2000;
constexpr std::uint64_t kDirectMap = 0xffff'8880'0000'0000ULL;
constexpr std::uint64_t kHeapPa = 0x0080'0000;

// A small kernel's symbols with _text at `text`, sorted like kallsyms (per-CPU first).
std::vector<SynthSym> kernel_symbols(std::uint64_t text, std::size_t funcs = 600) {
    std::vector<SynthSym> s = {
        {0, 'A', "fixed_percpu_data", true},
        {0, 'A', "__per_cpu_start", true},
        {0x1000, 'A', "cpu_debug_store", true},
        {0x2c000, 'A', "current_task", true},
        {text, 'T', "_text"},
        {text, 'T', "_stext"},
        {text + 0x40, 'T', "startup_64"},
    };
    for (std::size_t i = 0; i < funcs; ++i) {
        char name[32];
        std::snprintf(name, sizeof name, "%s_%04zu", i % 3 ? "vfs_func" : "do_sys", i);
        s.push_back({text + 0x1000 + i * 0x40, i % 5 ? 'T' : 't', name});
    }
    s.push_back({text + 0x10'0000, 't', "helper"});  // two static functions of the same name
    s.push_back({text + 0x10'0100, 't', "helper"});
    // A name that needs the two-byte ULEB128 length once compressed.
    std::string longname = "rust_";
    std::mt19937 rng(7);
    const std::string alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    for (int i = 0; i < 400; ++i) longname.push_back(alphabet[rng() % alphabet.size()]);
    s.push_back({text + 0x10'0200, 'T', longname});
    s.push_back({text + 0x1f'0000, 'T', "_etext"});
    s.push_back({text + 0x20'0000, 'D', "__start_rodata"});
    s.push_back({text + 0x20'0040, 'D', "sys_call_table"});
    s.push_back({text + kInitTaskOff, 'D', "init_task"});
    s.push_back({text + kModulesOff, 'D', "modules"});
    s.push_back({text + 0x58'0000, 'b', "idt_table"});
    s.push_back({text + 0x5f'f000, 'B', "_end"});
    return s;
}

std::string long_name() { return kernel_symbols(0, 0)[9].name; }

class KallsymsGuest {
  public:
    explicit KallsymsGuest(bool with_noise = true) : pt_(mem_, false, 0x10'0000) {
        pt_.map_range(kText, kImagePa, kImageLen);
        for (std::uint64_t o = 0; o < kImageLen; o += k4K) mem_.map_page(kImagePa + o);
        pt_.map_range(kDirectMap + kHeapPa, kHeapPa, 0x10'0000);
        for (std::uint64_t o = 0; o < 0x10'0000; o += k4K) mem_.map_page(kHeapPa + o);
        if (!with_noise) return;
        // ".text": pseudo-random bytes (deterministic) the scan has to wade through.
        std::mt19937_64 rng(42);
        std::vector<std::byte> noise(0x20'0000);
        for (auto& b : noise) b = static_cast<std::byte>(rng());
        mem_.write(kImagePa, noise);
    }

    BufferMemory& mem() { return mem_; }
    PageTableBuilder& pt() { return pt_; }
    [[nodiscard]] std::uint64_t cr3() const { return pt_.cr3(); }
    static std::uint64_t pa_of(std::uint64_t va) {
        return va >= kText ? kImagePa + (va - kText) : kHeapPa + (va - kDirectMap - kHeapPa);
    }
    static std::uint64_t heap_va(std::uint64_t off) { return kDirectMap + kHeapPa + off; }

    const KallsymsBlob& place(KallsymsBlob b, std::uint64_t off = kTablesOff) {
        blob_ = std::move(b);
        off_ = off;
        mem_.write(kImagePa + off, blob_.bytes);
        return blob_;
    }
    // Address of a byte of the placed tables.
    [[nodiscard]] std::uint64_t va(std::size_t blob_off) const { return kText + off_ + blob_off; }
    [[nodiscard]] std::uint64_t pa(std::size_t blob_off) const {
        return kImagePa + off_ + blob_off;
    }
    [[nodiscard]] const KallsymsBlob& blob() const { return blob_; }

    static GuestKernelProfile profile() {
        GuestKernelProfile p;
        p.text_va = kText;
        p.init_task_va = kText + kInitTaskOff;
        return p;
    }
    Result<KernelSymbols> discover() { return discover_kernel_symbols(mem_, cr3(), profile()); }

  private:
    BufferMemory mem_;
    PageTableBuilder pt_;
    KallsymsBlob blob_;
    std::uint64_t off_ = 0;
};

void expect_symbols(const KernelSymbols& ks, const std::vector<SynthSym>& want) {
    ASSERT_EQ(ks.size(), want.size());
    for (std::size_t i = 0; i < want.size(); ++i) {
        const KernelSymbol s = ks.at(i);
        EXPECT_EQ(s.name, want[i].name) << i;
        EXPECT_EQ(s.type, want[i].type) << want[i].name;
        EXPECT_EQ(s.address, want[i].addr) << want[i].name;
    }
}

TEST(BridgeKallsyms, EncoderUsesTheKernelsFeatures) {
    const auto b = KallsymsEncoder::build(kernel_symbols(kText), kText);
    EXPECT_GE(b.max_entry_len, 0x80U) << "no two-byte length";
    EXPECT_GT(b.entry_offsets.size(), 512U) << "fewer than three markers";
    for (const auto& t : b.tokens) EXPECT_FALSE(t.empty());
}

TEST(BridgeKallsyms, Finds612LayoutAndLooksUpBothWays) {
    KallsymsGuest g;
    const auto want = kernel_symbols(kText);
    const auto& b = g.place(KallsymsEncoder::build(want, kText));
    auto ks = g.discover();
    ASSERT_TRUE(ks.ok()) << ks.error().message();
    expect_symbols(*ks, want);
    const KallsymsInfo& i = ks->info();
    EXPECT_EQ(i.num_syms_va, g.va(b.num_syms));
    EXPECT_EQ(i.names_va, g.va(b.names));
    EXPECT_EQ(i.markers_va, g.va(b.markers));
    EXPECT_EQ(i.token_table_va, g.va(b.token_table));
    EXPECT_EQ(i.token_index_va, g.va(b.token_index));
    EXPECT_EQ(i.offsets_va, g.va(b.offsets));
    EXPECT_EQ(i.relative_base_va, g.va(b.relative_base));
    EXPECT_EQ(i.relative_base, kText);
    EXPECT_EQ(i.slide, 0U);
    EXPECT_TRUE(i.absolute_percpu);
    EXPECT_TRUE(i.offsets_after_token_index);
    EXPECT_TRUE(i.missing_well_known.empty());
    EXPECT_GT(i.bytes_scanned, kTablesOff);

    // name -> address
    EXPECT_EQ(ks->address_of("init_task"), kText + kInitTaskOff);
    EXPECT_EQ(ks->address_of("current_task"), 0x2c000U);
    EXPECT_EQ(ks->address_of(long_name()), kText + 0x10'0200);
    EXPECT_FALSE(ks->address_of("no_such_symbol"));
    EXPECT_FALSE(ks->address_of(""));
    const auto helpers = ks->lookup("helper");
    ASSERT_EQ(helpers.size(), 2U);
    EXPECT_EQ(helpers[0].address, kText + 0x10'0000);
    EXPECT_EQ(helpers[1].address, kText + 0x10'0100);
    EXPECT_EQ(helpers[1].type, 't');
    // address -> symbol
    auto loc = ks->symbolize(kText + 0x1000 + 4 * 0x40 + 0x11);
    ASSERT_TRUE(loc);
    EXPECT_EQ(loc->symbol.name, "vfs_func_0004");
    EXPECT_EQ(loc->offset, 0x11U);
    EXPECT_EQ(loc->size, 0x40U);
    loc = ks->symbolize(kText);
    ASSERT_TRUE(loc);
    EXPECT_EQ(loc->offset, 0U);
    EXPECT_EQ(loc->symbol.address, kText);
    EXPECT_EQ(loc->size, 0x40U);
    loc = ks->symbolize(kText + 0x5f'f000);
    ASSERT_TRUE(loc);
    EXPECT_EQ(loc->symbol.name, "_end");
    EXPECT_EQ(loc->size, 0U);
    EXPECT_FALSE(ks->symbolize(kText - 1));
    EXPECT_FALSE(ks->symbolize(kText + 0x5f'f001));
    EXPECT_FALSE(ks->symbolize(0x2c000));  // per-CPU offsets are not addresses
}

TEST(BridgeKallsyms, Finds61LayoutWithUnsignedOffsets) {
    KallsymsGuest g;
    auto want = kernel_symbols(kText);
    // Without absolute per-CPU symbols every address is relative_base + (u32)offset.
    std::erase_if(want, [](const SynthSym& s) { return s.percpu; });
    KallsymsBuildOptions o;
    o.layout = KallsymsLayout::k61;
    o.absolute_percpu = false;
    const auto& b = g.place(KallsymsEncoder::build(want, kText, o));
    auto ks = g.discover();
    ASSERT_TRUE(ks.ok()) << ks.error().message();
    expect_symbols(*ks, want);
    EXPECT_FALSE(ks->info().offsets_after_token_index);
    EXPECT_FALSE(ks->info().absolute_percpu);
    EXPECT_EQ(ks->info().offsets_va, g.va(b.offsets));
    EXPECT_EQ(ks->info().relative_base_va, g.va(b.relative_base));
    EXPECT_EQ(ks->info().names_va, g.va(b.names));
}

TEST(BridgeKallsyms, Finds61LayoutWithAbsolutePercpu) {
    KallsymsGuest g;
    const auto want = kernel_symbols(kText);
    KallsymsBuildOptions o;
    o.layout = KallsymsLayout::k61;
    g.place(KallsymsEncoder::build(want, kText, o));
    auto ks = g.discover();
    ASSERT_TRUE(ks.ok()) << ks.error().message();
    expect_symbols(*ks, want);
    EXPECT_TRUE(ks->info().absolute_percpu);
}

TEST(BridgeKallsyms, EmptyTokensOfASmallTableDecode) {
    KallsymsGuest g;
    auto want = kernel_symbols(kText, 0);
    std::erase_if(want, [](const SynthSym& s) { return s.name.size() > 100; });
    KallsymsBuildOptions o;
    o.fill_unused_tokens = false;
    const auto& b = g.place(KallsymsEncoder::build(want, kText, o));
    ASSERT_TRUE(std::any_of(b.tokens.begin(), b.tokens.end(),
                            [](const std::string& t) { return t.empty(); }));
    auto ks = g.discover();
    ASSERT_TRUE(ks.ok()) << ks.error().message();
    expect_symbols(*ks, want);
}

TEST(BridgeKallsyms, UnrelocatedRelativeBaseGetsTheKaslrSlide) {
    KallsymsGuest g;
    const auto linked = kernel_symbols(kLinkText);  // link-time addresses in memory
    g.place(KallsymsEncoder::build(linked, kLinkText));
    auto ks = g.discover();
    ASSERT_TRUE(ks.ok()) << ks.error().message();
    EXPECT_EQ(ks->info().slide, kText - kLinkText);
    EXPECT_EQ(ks->info().relative_base, kLinkText);
    expect_symbols(*ks, kernel_symbols(kText));  // per-CPU offsets do not move
}

TEST(BridgeKallsyms, TextElsewhereThanThePageTablesSayIsRejected) {
    KallsymsGuest g;
    g.place(KallsymsEncoder::build(kernel_symbols(kText + 0x1000), kText + 0x1000));
    auto ks = g.discover();
    ASSERT_FALSE(ks.ok());
    EXPECT_EQ(ks.fault(), Fault::kInvalidFormat);
    EXPECT_NE(ks.error().detail.find("_text"), std::string::npos) << ks.error().detail;
}

TEST(BridgeKallsyms, InitTaskMustAgreeWithDiscovery) {
    KallsymsGuest g;
    g.place(KallsymsEncoder::build(kernel_symbols(kText), kText));
    GuestKernelProfile p = KallsymsGuest::profile();
    p.init_task_va += 0x40;
    auto ks = discover_kernel_symbols(g.mem(), g.cr3(), p);
    ASSERT_FALSE(ks.ok());
    EXPECT_EQ(ks.fault(), Fault::kInvalidFormat);
    EXPECT_NE(ks.error().detail.find("init_task"), std::string::npos) << ks.error().detail;
}

TEST(BridgeKallsyms, MissingWellKnownSymbolsAreReported) {
    KallsymsGuest g;
    auto want = kernel_symbols(kText);
    std::erase_if(want, [](const SynthSym& s) { return s.name == "idt_table"; });
    g.place(KallsymsEncoder::build(want, kText));
    auto ks = g.discover();
    ASSERT_TRUE(ks.ok()) << ks.error().message();
    EXPECT_EQ(ks->info().missing_well_known, std::vector<std::string>{"idt_table"});
}

TEST(BridgeKallsyms, DecoyTokenIndexesAreSkipped) {
    KallsymsGuest g;
    // Before the real tables: an index-shaped u16 run with garbage before it, and a real
    // token table + index with no names before them.
    std::vector<std::uint16_t> fake(256);
    for (int i = 0; i < 256; ++i) fake[i] = static_cast<std::uint16_t>(i * 3);
    g.mem().write(kImagePa + 0x1000, std::as_bytes(std::span(fake)));
    const auto other = KallsymsEncoder::build(kernel_symbols(kText, 5), kText);
    g.mem().write(kImagePa + 0x8000,
                  std::span(other.bytes)
                      .subspan(other.token_table, 512 + other.token_index - other.token_table));
    g.place(KallsymsEncoder::build(kernel_symbols(kText), kText));
    auto ks = g.discover();
    ASSERT_TRUE(ks.ok()) << ks.error().message();
    EXPECT_GE(ks->info().token_index_candidates, 3U);
    EXPECT_EQ(ks->info().token_table_va, g.va(g.blob().token_table));
}

TEST(BridgeKallsyms, ATableAcrossUnmappedTextIsFound) {
    KallsymsGuest g;
    // Holes in ".text": unmapped pages and a mapped page without RAM behind it.
    g.mem().write_u64(g.pt().entry_pa(kText + 0x3000, 1), 0);
    g.mem().unmap_page(kImagePa + 0x5000);
    g.place(KallsymsEncoder::build(kernel_symbols(kText), kText));
    auto ks = g.discover();
    ASSERT_TRUE(ks.ok()) << ks.error().message();
    EXPECT_EQ(ks->size(), kernel_symbols(kText).size());
}

// --- hostile tables: errors, never a crash or a hang --------------------------------------

class BridgeKallsymsHostile : public ::testing::Test {
  protected:
    void SetUp() override { g_.place(KallsymsEncoder::build(kernel_symbols(kText), kText)); }
    void expect_error(Fault f) {
        const auto t0 = std::chrono::steady_clock::now();
        auto ks = g_.discover();
        EXPECT_FALSE(ks.ok());
        if (!ks.ok()) {
            EXPECT_EQ(ks.fault(), f) << ks.error().message();
        }
        EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
    }
    void poke_u32(std::size_t blob_off, std::uint32_t v) { g_.mem().write_u32(g_.pa(blob_off), v); }
    [[nodiscard]] std::uint32_t load_u32(std::size_t blob_off) const {
        std::uint32_t v = 0;
        std::memcpy(&v, g_.blob().bytes.data() + blob_off, 4);
        return v;
    }
    void poke_u8(std::size_t blob_off, std::uint8_t v) {
        const std::byte b{v};
        g_.mem().write(g_.pa(blob_off), std::span(&b, 1));
    }
    KallsymsGuest g_;
};

TEST_F(BridgeKallsymsHostile, TruncatedNames) {
    // The page holding the middle of the names is gone.
    g_.place(KallsymsEncoder::build(kernel_symbols(kText, 4000), kText));
    ASSERT_GT(g_.blob().token_table - g_.blob().names, 0x3000U);
    const std::uint64_t mid = g_.va(g_.blob().names + 0x1000);
    g_.mem().write_u64(g_.pt().entry_pa(mid, 1), 0);
    expect_error(Fault::kNotFound);
}

TEST_F(BridgeKallsymsHostile, TruncatedTokenTable) {
    g_.mem().unmap_page(g_.pa(g_.blob().token_table) & ~0xfffULL);
    g_.mem().unmap_page(g_.pa(g_.blob().token_index) & ~0xfffULL);
    expect_error(Fault::kNotFound);
}

TEST_F(BridgeKallsymsHostile, TokenIndexPointingOutsideTheTable) {
    const auto& b = g_.blob();
    // Token 200 "starts" 60 KiB before the table; the offsets stay increasing.
    std::vector<std::uint16_t> idx(256);
    std::memcpy(idx.data(), b.bytes.data() + b.token_index, 512);
    for (int i = 200; i < 256; ++i) idx[i] = static_cast<std::uint16_t>(60000 + i);
    g_.mem().write(g_.pa(b.token_index), std::as_bytes(std::span(idx)));
    expect_error(Fault::kNotFound);
}

TEST_F(BridgeKallsymsHostile, HugeNumSyms) {
    poke_u32(g_.blob().num_syms, 0x7fff'ffff);  // cannot fit before the token table
    expect_error(Fault::kNotFound);
}

TEST_F(BridgeKallsymsHostile, MoreSymbolsThanTheLimit) {
    PagedKernelMemory km(g_.mem(), g_.cr3());
    KallsymsOptions o;
    o.scan_start = kText;
    o.text_va = kText;
    o.max_symbols = 100;
    auto ks = KernelSymbols::find(km, o);
    ASSERT_FALSE(ks.ok());
    EXPECT_EQ(ks.fault(), Fault::kLimitExceeded) << ks.error().message();
}

TEST_F(BridgeKallsymsHostile, NumSymsOffByOne) {
    poke_u32(g_.blob().num_syms, static_cast<std::uint32_t>(kernel_symbols(kText).size() + 1));
    expect_error(Fault::kInvalidFormat);
}

TEST_F(BridgeKallsymsHostile, NameLengthPastTheEnd) {
    const auto& b = g_.blob();
    const std::size_t last = b.names + b.entry_offsets.back();
    poke_u8(last, 0xff);  // two-byte length 0x3fff: far past the token table
    poke_u8(last + 1, 0x7f);
    expect_error(Fault::kInvalidFormat);
}

TEST_F(BridgeKallsymsHostile, ZeroLengthName) {
    poke_u8(g_.blob().names + g_.blob().entry_offsets[7], 0);
    expect_error(Fault::kNotFound);
}

TEST_F(BridgeKallsymsHostile, MarkersDisagreeWithTheNames) {
    poke_u32(g_.blob().markers + 4, 12345);
    expect_error(Fault::kInvalidFormat);
}

TEST_F(BridgeKallsymsHostile, UnsortedOffsets) {
    const auto& b = g_.blob();
    const auto a = load_u32(b.offsets + 4 * 100), c = load_u32(b.offsets + 4 * 300);
    poke_u32(b.offsets + 4 * 100, c);
    poke_u32(b.offsets + 4 * 300, a);
    expect_error(Fault::kNotFound);
}

TEST_F(BridgeKallsymsHostile, UserHalfRelativeBase) {
    g_.mem().write_u64(g_.pa(g_.blob().relative_base), 0x0000'7fff'0000'0000ULL);
    expect_error(Fault::kNotFound);
}

TEST_F(BridgeKallsymsHostile, NameWithAControlCharacterToken) {
    const auto& b = g_.blob();
    // Token 0's first byte becomes a control character: the table no longer validates.
    std::uint16_t first = 0;
    std::memcpy(&first, b.bytes.data() + b.token_index, 2);
    poke_u8(b.token_table + first, 0x07);
    expect_error(Fault::kNotFound);
}

TEST_F(BridgeKallsymsHostile, ManyFakeTokenIndexesAreBounded) {
    // 4097 index-shaped runs: the scan gives up rather than validating forever.
    std::vector<std::uint16_t> fake(256);
    for (int i = 0; i < 256; ++i) fake[i] = static_cast<std::uint16_t>(i * 2);
    const auto bytes = std::as_bytes(std::span(fake));
    for (std::size_t k = 0; k <= kMaxTokenIndexCandidates; ++k) {
        g_.mem().write(kImagePa + 0x1000 + k * 512, bytes);
    }
    g_.place(KallsymsEncoder::build(kernel_symbols(kText), kText), 0x40'0048);
    expect_error(Fault::kLimitExceeded);
}

// Random corruptions of valid tables (bytes, u16 and u32 fields anywhere in them): each
// search ends with symbols or an error, quickly.
TEST(BridgeKallsyms, RandomCorruptionsNeverCrash) {
    const auto good = KallsymsEncoder::build(kernel_symbols(kText, 300), kText);
    std::mt19937_64 rng(2026);
    std::size_t found = 0;
    const auto t0 = std::chrono::steady_clock::now();
    KallsymsGuest g(false);  // each round rewrites the whole table at the same place
    for (int round = 0; round < 300; ++round) {
        KallsymsBlob b = good;
        const int edits = 1 + static_cast<int>(rng() % 6);
        for (int e = 0; e < edits; ++e) {
            const std::size_t at = rng() % (b.bytes.size() - 4);
            const std::uint32_t v = static_cast<std::uint32_t>(rng());
            const std::size_t width = std::size_t{1} << (rng() % 3);  // 1, 2 or 4 bytes
            std::memcpy(b.bytes.data() + at, &v, width);
        }
        g.place(std::move(b), 0x1048);
        auto ks = g.discover();
        if (!ks) continue;
        ++found;
        ASSERT_LE(ks->size(), kMaxKallsyms);
        for (std::size_t i = 0; i < ks->size(); i += 37) {
            const KernelSymbol s = ks->at(i);
            ASSERT_LE(s.name.size(), kMaxSymbolName);
            ASSERT_FALSE(ks->lookup(s.name).empty());
            (void)ks->symbolize(s.address + 1);
        }
    }
    std::printf(
        "[ corrupt  ] %zu of 300 corrupted tables still decode (%.0f ms)\n", found,
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
}

// The name index stays O(N log N) when every name is the same.
TEST(BridgeKallsyms, ThousandsOfIdenticalNames) {
    KallsymsGuest g;
    std::vector<SynthSym> s = {{kText, 'T', "_text"}};
    for (int i = 0; i < 20000; ++i) s.push_back({kText + 0x100 + i * 8ULL, 't', "x"});
    s.push_back({kText + kInitTaskOff, 'D', "init_task"});
    g.place(KallsymsEncoder::build(s, kText));
    auto ks = g.discover();
    ASSERT_TRUE(ks.ok()) << ks.error().message();
    EXPECT_EQ(ks->lookup("x").size(), 20000U);
    EXPECT_EQ(ks->address_of("x"), kText + 0x100);
}

TEST(BridgeKallsyms, NothingMappedIsNotFound) {
    BufferMemory mem;
    PageTableBuilder pt(mem, false);
    auto ks = discover_kernel_symbols(mem, pt.cr3(), KallsymsGuest::profile());
    ASSERT_FALSE(ks.ok());
    EXPECT_EQ(ks.fault(), Fault::kNotFound);
}

// --- modules -------------------------------------------------------------------------------

// struct module shaped like 6.12's (mem[7]) or 6.1's (core_layout + init_layout).
LinuxOffsets module_offsets(bool mem_array) {
    LinuxOffsets o;
    o.has_modules = true;
    o.module_struct_size = 0x500;
    o.module_state = 0;
    o.module_list = 8;
    o.module_name = 24;
    o.module_name_size = 56;
    o.module_refcnt = 0x4a0;
    if (mem_array) {
        o.module_base = 0x140;  // mem[0].base; struct module_memory is 0x50 bytes
        o.module_size_count = 7;
        for (std::size_t i = 0; i < 7; ++i) o.module_sizes[i] = 0x148 + i * 0x50;
    } else {
        o.module_base = 0x140;  // core_layout.base; init_layout at +0x50
        o.module_size_count = 2;
        o.module_sizes = {0x148, 0x198};
    }
    return o;
}

struct ModuleSpec {
    std::string name;
    std::uint32_t size = 0;
    std::int32_t state = 0;
    std::int32_t refcnt = 1;
};

class ModulesGuest : public KallsymsGuest {
  public:
    explicit ModulesGuest(bool mem_array) : off_(module_offsets(mem_array)) {}
    [[nodiscard]] const LinuxOffsets& off() const { return off_; }
    static std::uint64_t head() { return kText + kModulesOff; }
    [[nodiscard]] std::uint64_t module(std::size_t i) const { return heap_va(0x1000 + i * 0x1000); }

    void build(const std::vector<ModuleSpec>& mods) {
        std::vector<std::uint64_t> nodes = {head()};
        for (std::size_t i = 0; i < mods.size(); ++i) nodes.push_back(module(i) + off_.module_list);
        for (std::size_t i = 0; i < nodes.size(); ++i) {
            wu64(nodes[i], nodes[(i + 1) % nodes.size()]);
            wu64(nodes[i] + 8, nodes[(i + nodes.size() - 1) % nodes.size()]);
        }
        for (std::size_t i = 0; i < mods.size(); ++i) {
            const std::uint64_t m = module(i);
            mem().write_u32(pa_of(m + off_.module_state),
                            static_cast<std::uint32_t>(mods[i].state));
            std::string name = mods[i].name;
            name.resize(off_.module_name_size, '\0');
            mem().write(pa_of(m + off_.module_name), std::as_bytes(std::span(name)));
            wu64(m + off_.module_base, 0xffff'ffff'c000'0000ULL + i * 0x10'0000);
            mem().write_u32(pa_of(m + off_.module_sizes[0]), mods[i].size);
            mem().write_u32(pa_of(m + off_.module_sizes[1]), 0x1000);
            mem().write_u32(pa_of(m + off_.module_refcnt),
                            static_cast<std::uint32_t>(mods[i].refcnt));
        }
    }
    void wu64(std::uint64_t va, std::uint64_t v) { mem().write_u64(pa_of(va), v); }
    Result<std::vector<KernelModule>> list(std::size_t max = kMaxModules) {
        return list_modules(mem(), cr3(), off_, head(), false, max);
    }

  private:
    LinuxOffsets off_;
};

TEST(BridgeModules, ListsModulesOfBothLayouts) {
    for (bool mem_array : {true, false}) {
        ModulesGuest g(mem_array);
        g.build({{"kvm", 0x11'0000, 0, 1}, {"irqbypass", 0x3000, 0, 2}, {"dying", 0x2000, 2, 1}});
        auto mods = g.list();
        ASSERT_TRUE(mods.ok()) << mods.error().message();
        ASSERT_EQ(mods->size(), 3U);
        EXPECT_EQ((*mods)[0].name, "kvm");
        EXPECT_EQ((*mods)[0].size, 0x11'0000U + 0x1000U);
        EXPECT_EQ((*mods)[0].refcount, 0);
        EXPECT_EQ((*mods)[0].base, 0xffff'ffff'c000'0000ULL);
        EXPECT_EQ((*mods)[0].module_va, g.module(0));
        EXPECT_EQ(module_state_name((*mods)[0].state), "Live");
        EXPECT_EQ((*mods)[1].name, "irqbypass");
        EXPECT_EQ((*mods)[1].refcount, 1);
        EXPECT_EQ((*mods)[1].base, 0xffff'ffff'c010'0000ULL);
        EXPECT_EQ(module_state_name((*mods)[2].state), "Unloading");
    }
}

TEST(BridgeModules, EmptyListAndFoundThroughKallsyms) {
    ModulesGuest g(true);
    g.build({});
    g.place(KallsymsEncoder::build(kernel_symbols(kText), kText));
    auto ks = g.discover();
    ASSERT_TRUE(ks.ok()) << ks.error().message();
    const auto head = modules_list_head(*ks);
    ASSERT_TRUE(head);
    EXPECT_EQ(*head, ModulesGuest::head());
    auto mods = list_modules(g.mem(), g.cr3(), g.off(), *head);
    ASSERT_TRUE(mods.ok()) << mods.error().message();
    EXPECT_TRUE(mods->empty());
}

TEST(BridgeModules, CyclicListIsAnError) {
    ModulesGuest g(true);
    g.build({{"a", 1}, {"b", 1}, {"c", 1}});
    // c -> b instead of c -> head; back-links along the way stay consistent for b.
    g.wu64(g.module(2) + g.off().module_list, g.module(1) + g.off().module_list);
    auto mods = g.list();
    ASSERT_FALSE(mods.ok());
    EXPECT_TRUE(mods.fault() == Fault::kCycle || mods.fault() == Fault::kBadPointer)
        << mods.error().message();
    // A self-loop that also keeps its back-link right is a cycle.
    ModulesGuest h(true);
    h.build({{"a", 1}, {"b", 1}});
    const std::uint64_t b = h.module(1) + h.off().module_list;
    h.wu64(b, b);
    h.wu64(b + 8, b);
    h.wu64(h.module(0) + h.off().module_list, b);
    auto again = h.list();
    ASSERT_FALSE(again.ok());
}

TEST(BridgeModules, LoopThroughLinkedBackNodesIsACycle) {
    ModulesGuest g(true);
    g.build({{"a", 1}, {"b", 1}});
    // a <-> b forever: each back-link checks out, the head never comes back.
    const std::uint64_t a = g.module(0) + g.off().module_list;
    const std::uint64_t b = g.module(1) + g.off().module_list;
    g.wu64(b, a);
    g.wu64(a + 8, b);
    auto mods = list_modules(g.mem(), g.cr3(), g.off(), ModulesGuest::head());
    ASSERT_FALSE(mods.ok());
    // head -> a (a.prev == b != head): caught as a broken back-link at once.
    EXPECT_EQ(mods.fault(), Fault::kBadPointer);
}

TEST(BridgeModules, NameWithoutNulIsAnError) {
    ModulesGuest g(false);
    g.build({{"ok", 1}, {"bad", 1}});
    const std::string junk(56, 'A');
    g.mem().write(KallsymsGuest::pa_of(g.module(1) + g.off().module_name),
                  std::as_bytes(std::span(junk)));
    auto mods = g.list();
    ASSERT_FALSE(mods.ok());
    EXPECT_EQ(mods.fault(), Fault::kInvalidFormat);
    EXPECT_NE(mods.error().detail.find("NUL"), std::string::npos) << mods.error().detail;
}

TEST(BridgeModules, WildLinksAndLimits) {
    ModulesGuest g(true);
    g.build({{"a", 1}, {"b", 1}, {"c", 1}});
    auto limited = g.list(2);
    ASSERT_FALSE(limited.ok());
    EXPECT_EQ(limited.fault(), Fault::kLimitExceeded);

    g.wu64(g.module(1) + g.off().module_list, 0x4141'4141'4141'4141ULL);
    auto wild = g.list();
    ASSERT_FALSE(wild.ok());
    EXPECT_EQ(wild.fault(), Fault::kBadPointer);

    g.wu64(g.module(1) + g.off().module_list, 0xffff'ffff'ff00'0000ULL);  // unmapped
    auto unmapped = g.list();
    ASSERT_FALSE(unmapped.ok());

    EXPECT_FALSE(list_modules(g.mem(), g.cr3(), g.off(), 0x1234).ok());
    LinuxOffsets none;
    EXPECT_EQ(list_modules(g.mem(), g.cr3(), none, ModulesGuest::head()).fault(), Fault::kNotFound);
    LinuxOffsets spread = g.off();
    spread.module_refcnt = 1ULL << 20;
    EXPECT_EQ(list_modules(g.mem(), g.cr3(), spread, ModulesGuest::head()).fault(),
              Fault::kInvalidFormat);
}

TEST(BridgeModules, HeadPrevMustPointAtTheLastModule) {
    ModulesGuest g(true);
    g.build({{"a", 1}, {"b", 1}});
    g.wu64(ModulesGuest::head() + 8, g.module(0) + g.off().module_list);
    auto mods = g.list();
    ASSERT_FALSE(mods.ok());
    EXPECT_EQ(mods.fault(), Fault::kBadPointer);
}

// struct module from BTF, both layouts.
std::vector<std::byte> module_btf(bool mem_array) {
    struct BtfFree {
        void operator()(struct btf* b) const { btf__free(b); }
    };
    std::unique_ptr<struct btf, BtfFree> b(btf__new_empty());
    struct btf* p = b.get();
    const int u32 = btf__add_int(p, "unsigned int", 4, 0);
    const int i32 = btf__add_int(p, "int", 4, BTF_INT_SIGNED);
    const int chr = btf__add_int(p, "char", 1, BTF_INT_CHAR);
    const int voidp = btf__add_ptr(p, 0);
    const int list_head = btf__add_struct(p, "list_head", 16);
    btf__add_field(p, "next", voidp, 0, 0);
    btf__add_field(p, "prev", voidp, 64, 0);
    const int state = btf__add_enum(p, "module_state", 4);
    btf__add_enum_value(p, "MODULE_STATE_LIVE", 0);
    const int name = btf__add_array(p, i32, chr, 56);
    const int atomic = btf__add_struct(p, nullptr, 4);
    btf__add_field(p, "counter", i32, 0, 0);
    const int atomic_t = btf__add_typedef(p, "atomic_t", atomic);
    int region = 0;
    if (mem_array) {
        const int mm = btf__add_struct(p, "module_memory", 0x50);
        btf__add_field(p, "base", voidp, 0, 0);
        btf__add_field(p, "size", u32, 64, 0);
        region = btf__add_array(p, i32, mm, 7);
    } else {
        region = btf__add_struct(p, "module_layout", 0x50);
        btf__add_field(p, "base", voidp, 0, 0);
        btf__add_field(p, "size", u32, 64, 0);
        btf__add_field(p, "text_size", u32, 96, 0);
    }
    btf__add_struct(p, "module", 0x500);
    btf__add_field(p, "state", state, 0, 0);
    btf__add_field(p, "list", list_head, 64, 0);
    btf__add_field(p, "name", name, 24 * 8, 0);
    if (mem_array) {
        btf__add_field(p, "mem", region, 0x140 * 8, 0);
    } else {
        btf__add_field(p, "core_layout", region, 0x140 * 8, 0);
        btf__add_field(p, "init_layout", region, 0x190 * 8, 0);
    }
    btf__add_field(p, "refcnt", atomic_t, 0x4a0 * 8, 0);
    std::uint32_t size = 0;
    const auto* raw = static_cast<const std::byte*>(btf__raw_data(p, &size));
    return {raw, raw + size};
}

TEST(BridgeModules, OffsetsFromBtfOfBothLayouts) {
    for (bool mem_array : {true, false}) {
        const auto blob = module_btf(mem_array);
        auto prof = BtfProfile::from_blob(blob);
        ASSERT_TRUE(prof.ok());
        LinuxOffsets o;
        prof->module_offsets(o);
        const LinuxOffsets want = module_offsets(mem_array);
        EXPECT_TRUE(o.has_modules);
        EXPECT_EQ(o.module_struct_size, 0x500U);
        EXPECT_EQ(o.module_list, want.module_list);
        EXPECT_EQ(o.module_name, want.module_name);
        EXPECT_EQ(o.module_name_size, want.module_name_size);
        EXPECT_EQ(o.module_state, want.module_state);
        EXPECT_EQ(o.module_refcnt, want.module_refcnt);
        EXPECT_EQ(o.module_base, want.module_base);
        ASSERT_EQ(o.module_size_count, want.module_size_count);
        for (std::size_t i = 0; i < o.module_size_count; ++i) {
            EXPECT_EQ(o.module_sizes[i], want.module_sizes[i]) << i;
        }
    }
    // No struct module at all: the group stays off.
    auto prof = BtfProfile::from_blob(test::compact_kernel_btf());
    ASSERT_TRUE(prof.ok());
    LinuxOffsets o;
    prof->module_offsets(o);
    EXPECT_FALSE(o.has_modules);
}

// A minimal vmlinux: two PROGBITS sections in one page with a gap, one a page further on, one
// not allocated, one in the user half.
std::string write_tiny_vmlinux(bool truncate) {
    struct Sec {
        const char* name;
        std::uint64_t addr, size, flags;
        std::uint32_t type;
    };
    const Sec secs[] = {{".text", kLinkText, 0x100, SHF_ALLOC | SHF_EXECINSTR, SHT_PROGBITS},
                        {".rodata", kLinkText + 0x180, 0x80, SHF_ALLOC, SHT_PROGBITS},
                        {".data", kLinkText + 0x2000, 0x10, SHF_ALLOC | SHF_WRITE, SHT_PROGBITS},
                        {".comment", 0, 0x10, 0, SHT_PROGBITS},
                        {".data..percpu", 0, 0x40, SHF_ALLOC, SHT_PROGBITS}};
    std::string shstr(1, '\0');
    std::vector<Elf64_Shdr> sh(1);
    std::string body;
    for (const Sec& s : secs) {
        Elf64_Shdr h{};
        h.sh_name = static_cast<std::uint32_t>(shstr.size());
        shstr += std::string(s.name) + '\0';
        h.sh_type = s.type;
        h.sh_flags = s.flags;
        h.sh_addr = s.addr;
        h.sh_size = s.size;
        h.sh_offset = sizeof(Elf64_Ehdr) + body.size();
        for (std::uint64_t i = 0; i < s.size; ++i) body.push_back(static_cast<char>(0x41 + i % 26));
        sh.push_back(h);
    }
    Elf64_Shdr strs{};
    strs.sh_type = SHT_STRTAB;
    strs.sh_offset = sizeof(Elf64_Ehdr) + body.size();
    strs.sh_size = shstr.size();
    body += shstr;
    sh.push_back(strs);
    Elf64_Ehdr eh{};
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_shoff = sizeof(Elf64_Ehdr) + body.size();
    eh.e_shentsize = sizeof(Elf64_Shdr);
    eh.e_shnum = static_cast<std::uint16_t>(sh.size());
    eh.e_shstrndx = static_cast<std::uint16_t>(sh.size() - 1);
    std::string file(reinterpret_cast<const char*>(&eh), sizeof eh);
    file += body;
    file.append(reinterpret_cast<const char*>(sh.data()), sh.size() * sizeof(Elf64_Shdr));
    if (truncate) sh.clear(), file.resize(file.size() - sizeof(Elf64_Shdr));
    const auto path = std::filesystem::temp_directory_path() /
                      ("vmi-tiny-vmlinux-" + std::to_string(getpid()) + (truncate ? "-t" : ""));
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr) return {};
    std::fwrite(file.data(), 1, file.size(), f);
    std::fclose(f);
    return path.string();
}

TEST(BridgeKallsyms, VmlinuxMemoryReadsSectionsAndGaps) {
    const std::string path = write_tiny_vmlinux(false);
    ASSERT_FALSE(path.empty());
    auto img = VmlinuxMemory::open(path);
    std::filesystem::remove(path);
    ASSERT_TRUE(img.ok()) << img.error().message();
    ASSERT_EQ((*img)->sections().size(), 3U);  // not .comment, not the user-half percpu section
    EXPECT_EQ((*img)->section_addr(".rodata"), kLinkText + 0x180);
    EXPECT_FALSE((*img)->section_addr(".comment"));
    // .text, the gap (zeros), .rodata, then zeros to the end of the page; the next page has no
    // section.
    std::vector<std::byte> buf(0x3000, std::byte{0xee});
    EXPECT_EQ((*img)->read_prefix(kLinkText, buf), 0x1000U);
    EXPECT_EQ(buf[0], std::byte{'A'});
    EXPECT_EQ(buf[0x100], std::byte{0});
    EXPECT_EQ(buf[0x180], std::byte{'A'});
    EXPECT_EQ(buf[0x200], std::byte{0});
    EXPECT_EQ((*img)->read_prefix(kLinkText + 0x1000, buf), 0U);
    EXPECT_EQ((*img)->hole_size(kLinkText + 0x1000), 0x1000U);
    EXPECT_EQ((*img)->read_prefix(kLinkText + 0x2008, std::span(buf).first(8)), 8U);
    EXPECT_EQ(buf[0], std::byte{'A' + 8});
    EXPECT_FALSE((*img)->read(kLinkText + 0xff0, std::span(buf).first(0x20)).ok());
    EXPECT_TRUE((*img)->read(kLinkText + 0xfe0, std::span(buf).first(0x20)).ok());

    const std::string bad = write_tiny_vmlinux(true);
    auto truncated = VmlinuxMemory::open(bad);
    std::filesystem::remove(bad);
    ASSERT_FALSE(truncated.ok());
    EXPECT_EQ(truncated.fault(), Fault::kInvalidFormat);
    EXPECT_EQ(VmlinuxMemory::open("/nonexistent/vmlinux").fault(), Fault::kIo);
}

// --- the lab's real Debian kernels -----------------------------------------------------------

// vmlinux ELFs extracted from the lab cache's vmlinuz into a scratch directory that goes away
// with this object (empty when the cache is absent).
struct LabVmlinux {
    std::filesystem::path dir;
    std::vector<std::pair<std::string, std::string>> images;  // (label, path)

    LabVmlinux() {
        const std::filesystem::path cache = "/var/cache/vminsight-lab";
        std::error_code ec;
        if (!std::filesystem::is_directory(cache, ec)) return;
        dir = std::filesystem::temp_directory_path() /
              ("vmi-kallsyms-test-" + std::to_string(getpid()));
        std::filesystem::create_directories(dir, ec);
        for (const auto& e : std::filesystem::directory_iterator(cache, ec)) {
            const auto vmlinuz = e.path() / "kernel" / "vmlinuz";
            const std::string name = e.path().filename().string();
            if (name.rfind("fullhost", 0) == 0 || !std::filesystem::exists(vmlinuz, ec)) continue;
            const auto out = dir / ("vmlinux-" + name);
            const std::string cmd = std::string("bash '") + VMI_SOURCE_DIR +
                                    "/scripts/extract-vmlinux.sh' '" + vmlinuz.string() + "' '" +
                                    out.string() + "' 2>/dev/null";
            if (std::system(cmd.c_str()) == 0) images.emplace_back(name, out.string());
        }
    }
    ~LabVmlinux() {
        std::error_code ec;
        if (!dir.empty()) std::filesystem::remove_all(dir, ec);
    }
    LabVmlinux(const LabVmlinux&) = delete;
    LabVmlinux& operator=(const LabVmlinux&) = delete;
};

TEST(BridgeKallsymsReal, DebianKernelsOfTheLab) {
    const LabVmlinux lab;
    if (lab.images.empty()) GTEST_SKIP() << "no lab kernel cache";
    for (const auto& [label, path] : lab.images) {
        SCOPED_TRACE(label);
        auto img = VmlinuxMemory::open(path);
        ASSERT_TRUE(img.ok()) << img.error().message();
        const auto text = (*img)->section_addr(".text");
        const auto rodata = (*img)->section_addr(".rodata");
        const auto data = (*img)->section_addr(".data");
        ASSERT_TRUE(text && rodata && data);
        auto btf = BtfProfile::from_file(path);
        ASSERT_TRUE(btf.ok()) << btf.error().message();
        auto off = btf->linux_offsets();
        ASSERT_TRUE(off.ok()) << off.error().message();
        EXPECT_TRUE(off->has_modules);
        auto image_syms = find_kernel_image_symbols(path, *off);
        ASSERT_TRUE(image_syms.ok()) << image_syms.error().message();

        KallsymsOptions o;
        o.scan_start = *text;
        o.text_va = *text;
        o.init_task_va = image_syms->init_task_va;  // found in .data without any symbol
        auto ks = KernelSymbols::find(**img, o);
        ASSERT_TRUE(ks.ok()) << ks.error().message();
        const KallsymsInfo& i = ks->info();
        std::printf(
            "[ kallsyms ] %s: %zu symbols, names at _text + 0x%llx, offsets %s, scan "
            "%.1f ms over %.1f MiB, total %.1f ms\n",
            label.c_str(), ks->size(), static_cast<unsigned long long>(i.names_va - *text),
            i.offsets_after_token_index ? "after the token index" : "before num_syms",
            static_cast<double>(i.scan_time.count()) / 1e6,
            static_cast<double>(i.bytes_scanned) / (1 << 20),
            static_cast<double>(i.total_time.count()) / 1e6);
        EXPECT_GT(ks->size(), 50'000U);
        EXPECT_TRUE(i.missing_well_known.empty());
        EXPECT_EQ(i.slide, 0U);
        EXPECT_TRUE(i.absolute_percpu);
        EXPECT_EQ(ks->address_of("_text"), *text);
        EXPECT_EQ(ks->address_of("__start_rodata"), *rodata);
        EXPECT_EQ(ks->address_of("init_task"), image_syms->init_task_va);
        const auto in = [](std::optional<std::uint64_t> a, std::uint64_t lo, std::uint64_t hi) {
            return a && *a >= lo && *a < hi;
        };
        EXPECT_TRUE(in(ks->address_of("sys_call_table"), *rodata, *data));
        EXPECT_TRUE(in(ks->address_of("modules"), *data, *data + (16ULL << 20)));
        EXPECT_EQ(ks->address_of("fixed_percpu_data"), 0U);
        auto loc = ks->symbolize(*ks->address_of("schedule") + 5);
        ASSERT_TRUE(loc);
        EXPECT_EQ(loc->symbol.name, "schedule");
        EXPECT_EQ(loc->offset, 5U);
        EXPECT_GT(loc->size, 5U);
        // The tables the kernel itself names (6.12 lists them in kallsyms) are where we found
        // them.
        const std::pair<const char*, std::uint64_t> named[] = {
            {"kallsyms_names", i.names_va},
            {"kallsyms_token_table", i.token_table_va},
            {"kallsyms_relative_base", i.relative_base_va}};
        for (const auto& [name, va] : named) {
            if (auto a = ks->address_of(name)) {
                EXPECT_EQ(*a, va) << name;
            }
        }
    }
}

}  // namespace
}  // namespace vmi
