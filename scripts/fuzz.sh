#!/usr/bin/env bash
# Fuzz libvmi_bridge's guest-memory parsers (snapshots, page tables, kallsyms-free discovery,
# BTF, process walking, kallsyms derivation, the module list, ISF profiles) with libFuzzer for
# a bounded time; fails on any crash, leak, hang or sanitizer report.
#   scripts/fuzz.sh [SECONDS]      default 60
# Builds build/fuzz/fuzz_guest_memory with clang (-fsanitize=fuzzer,address,undefined), writes a
# seed corpus with the target's own generator (VMI_FUZZ_WRITE_SEEDS), and keeps the corpus it
# grows in build/fuzz/corpus between runs. Crash inputs land in build/fuzz/artifacts/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
secs=${1:-60}
out=${BUILD:-build}/fuzz
cxx=${CXX_FUZZ:-$(command -v clang++ || command -v clang++-14)}
mkdir -p "$out/corpus" "$out/seeds" "$out/artifacts"

srcs=(libvmi_bridge/src/*.cpp tests/fuzz/fuzz_guest_memory.cpp)
bin=$out/fuzz_guest_memory
helpers=(tests/unit/bridge_synthetic_guest.hpp tests/unit/bridge_synthetic_kallsyms.hpp
	tests/unit/bridge_btf_to_isf.hpp)
if [ ! -x "$bin" ] || [ -n "$(find "${srcs[@]}" libvmi_bridge/include "${helpers[@]}" \
	-newer "$bin" -print -quit)" ]; then
	echo "fuzz: building $bin with $cxx"
	# shellcheck disable=SC2046 # pkg-config output is a list of flags
	"$cxx" -std=c++20 -O1 -g -fno-omit-frame-pointer \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-Ilibvmi_bridge/include -Itests/unit $(pkg-config --cflags libbpf) \
		"${srcs[@]}" $(pkg-config --libs libbpf libcrypto) -o "$bin"
fi

VMI_FUZZ_WRITE_SEEDS=$out/seeds "$bin"
echo "fuzz: running for ${secs}s"
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
	"$bin" -max_total_time="$secs" -max_len=262144 -rss_limit_mb=2048 -timeout=10 \
	-print_final_stats=1 -artifact_prefix="$out/artifacts/" "$out/corpus" "$out/seeds"
