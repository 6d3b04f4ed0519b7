#!/usr/bin/env bash
# make bench: print VMInsight's performance figures, one per line.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${BUILD:-build}
bin=$build/release/tests/bench

"$bin/ring_bench"
"$bin/memory_bench"
"$bin/inspect_bench"
# kallsyms derivation on the lab's real Debian kernels: each cached vmlinuz extracted to a
# vmlinux whose sections are read at their link addresses (no symbol file).
ks_tmp=$(mktemp -d)
trap 'rm -rf "$ks_tmp"' EXIT
ks_args=()
for z in "${VMI_LAB_CACHE:-/var/cache/vminsight-lab}"/*/kernel/vmlinuz; do
	[ -f "$z" ] || continue
	abi=$(basename "$(dirname "$(dirname "$z")")")
	bash scripts/extract-vmlinux.sh "$z" "$ks_tmp/$abi" && ks_args+=("$ks_tmp/$abi" "${abi%-*}")
done
if [ "${#ks_args[@]}" -gt 0 ]; then
	"$bin/kallsyms_bench" "${ks_args[@]}"
else
	echo "kallsyms-derivation: no lab kernel cache (scripts/lab/build.sh), skipped"
fi
rm -rf "$ks_tmp"
"$bin/policy_bench"
"$bin/feed_bench" tests/support/http_receiver.py

# Lab boot-to-first-event: from starting the guest's QEMU to the daemon's first process
# event, both on the lab host's clock (metrics.txt of the processes scenario).
for k in ${VMI_KERNELS:-6.1}; do
	out=$build/lab-out/bench-$k
	bash scripts/lab-test.sh "$k" tests/lab/scenarios/processes "$out" >"$out.log" 2>&1 ||
		{ echo "lab-boot-to-first-event ($k): lab run failed, see $out.log"; exit 1; }
	start=$(sed -n 's/^qemu_start_ms=\([0-9]*\)$/\1/p' "$out/metrics.txt")
	first=$(sed -n 's/^first_event_ms=\([0-9]*\)$/\1/p' "$out/metrics.txt")
	echo "lab-boot-to-first-event ($k): $((first - start)) ms from guest QEMU start to the first process event (nested KVM under TCG)"
done

# Syscall trap cost in the lab: median ns per getppid in the guest with no traps, with
# getppid recorded, and with traps on but only openat recorded (dropped in the kernel). The
# lab is nested KVM under TCG, where a VM exit costs ~100 us: compare the phases, not the
# absolute numbers, with hardware.
for k in ${VMI_KERNELS:-6.1}; do
	out=$build/lab-out/bench-syscalls-$k
	bash scripts/lab-test.sh "$k" tests/lab/bench/syscalls "$out" >"$out.log" 2>&1 ||
		{ echo "syscall-trap-cost ($k): lab run failed, see $out.log"; exit 1; }
	echo "syscall-trap-cost ($k): ns per getppid in the lab guest: $(cat "$out/figures.txt")"
done

# Integrity sweep cost (issue 8): vminsightd's sweeps of the live lab guest (two vCPUs, a
# busy workload, then each tamper step): mean and worst time per full sweep and the guest
# pages one sweep reads (syscall tables, IDT, kernel text and rodata, module and task views).
for k in ${VMI_KERNELS:-6.1}; do
	out=$build/lab-out/bench-tamper-$k
	VMI_SCENARIO_SOAK_SECONDS=${VMI_BENCH_SOAK_SECONDS:-30} \
		bash scripts/lab-test.sh "$k" tests/lab/scenarios/tamper "$out" >"$out.log" 2>&1 ||
		{ echo "integrity-sweep ($k): lab run failed, see $out.log"; exit 1; }
	m() { sed -n "s/^integrity_$1=//p" "$out/metrics.txt"; }
	echo "integrity-sweep ($k): $(m mean_sweep_ms) ms mean, $(m max_sweep_ms) ms max over $(m sweeps) sweeps," \
		"$(m last_sweep_pages) guest pages per sweep; baseline $(m baseline_ms) ms (live lab guest, nested KVM under TCG)"
	echo "tamper-alert-latency ($k): $(grep -o 'alert_[a-z-]*_ms=[0-9]*' "$out/metrics.txt" | sed 's/^alert_//; s/_ms=/ /' | tr '\n' ' ')ms from each step to its alert"
done
