#!/usr/bin/env bash
# Run one lab scenario against one lab kernel: build vminsight.ko for that kernel, stage the
# daemon, the guest kernel image it reads and the scenario's static guest programs, then
# boot the lab (scripts/lab/run.sh). Expects the userspace build in $BUILD/release.
# Scenarios under tests/lab/fullhost/ run on the full host (scripts/lab/fullhost-run.sh:
# systemd, libvirtd) and get VMInsight as its packages (make deb) and the module.
# Usage: scripts/lab-test.sh KERNEL SCENARIO_DIR [OUTDIR] [-- run.sh options]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build}
case "$build" in /*) ;; *) build=$root/$build ;; esac
kernel=$1 scenario=$(cd "$2" && pwd)
name=$(basename "$scenario")
out=${3:-$build/lab-out/$kernel-$name}
shift $(($# < 3 ? $# : 3))
[ "${1:-}" = -- ] && shift

# shellcheck source=lab/kernels.sh
. "$root/scripts/lab/kernels.sh"
abi=$(vmi_kernel_abi "$kernel")
cache=$(bash "$root/scripts/lab/build.sh" --kernel "$kernel" | tail -n1)

make -s -C "$root" kmod KERNELS="$kernel" BUILD="$build" >/dev/null
# Test-only guest modules (vmi_tamper.ko ...): shipped in the payload for scenarios that load
# them into the lab guest.
make -s -C "$root" lab-modules KERNELS="$kernel" BUILD="$build" 2>&1 | grep -v '^Skipping BTF' >&2 || true

# The guest kernel image the daemon reads: BTF for struct layouts, .data for init_task.
vmlinux=$build/lab/vmlinux-$abi
if [ ! -s "$vmlinux" ] || [ "$cache/kernel/vmlinuz" -nt "$vmlinux" ]; then
	mkdir -p "$build/lab"
	"$root/scripts/extract-vmlinux.sh" "$cache/kernel/vmlinuz" "$vmlinux.full"
	objcopy -j .text -j .data -j .BTF --set-section-flags .text=alloc "$vmlinux.full" "$vmlinux" 2>/dev/null
	rm -f "$vmlinux.full"
fi

payload=$build/lab/payload-$kernel
rm -rf "$payload" && mkdir -p "$payload"
cp "$build/kmod/$abi/vminsight.ko" "$payload/"
mkdir -p "$payload/guest-modules"
cp "$build"/lab-modules/"$abi"/*/*.ko "$payload/guest-modules/"
cp "$cache"/kernel/guest-modules/*.ko "$payload/guest-modules/" # Debian's own (dummy.ko)
# VMI_SCENARIO_* variables reach the scenario's host side (tests/lab/lib.sh), e.g.
# VMI_SCENARIO_SOAK_SECONDS=30 for a shorter tamper soak while developing.
env | grep -E '^VMI_SCENARIO_[A-Z0-9_]+=[A-Za-z0-9_.,/-]*$' | sed 's/^/export /' >"$payload/scenario.env" || true
runner=$root/scripts/lab/run.sh
case "$scenario" in
*/tests/lab/fullhost/*)
	runner=$root/scripts/lab/fullhost-run.sh
	make -s -C "$root" deb BUILD="$build" >/dev/null
	cp "$build"/deb/vminsight_*.deb "$payload/"
	;;
esac
strip -o "$payload/vminsightd" "$build/release/daemon/vminsightd"
strip -o "$payload/vminsightctl" "$build/release/daemon/vminsightctl"
strip -o "$payload/vminsight-inspect" "$build/release/libvmi_bridge/vminsight-inspect"
cp "$vmlinux" "$payload/vmlinux"
strip -o "$payload/vmi-lab-probe" "$build/release/tests/vmi-lab-probe"
strip -o "$payload/vmi-capi-probe" "$build/release/tests/vmi-capi-probe"
cp -L "$build/release/libvmi_bridge/libvminsight-vmi.so.0" "$payload/"
cp -r "$root/policies" "$payload/policies"

stage=$build/lab/stage/$kernel-$name
rm -rf "$stage" && mkdir -p "$(dirname "$stage")"
cp -r "$scenario" "$stage"
cp "$root/tests/lab/lib.sh" "$stage/lib.sh" # shared host.sh helpers
mkdir -p "$stage/guest-files/bin"
for src in "$root"/tests/lab/guest/*.c; do
	gcc -static -Os -Wall -Werror -o "$stage/guest-files/bin/$(basename "$src" .c)" "$src"
done
for src in "$root"/tests/lab/guest/*.sh; do # shared guest-side helpers
	install -m 0755 "$src" "$stage/guest-files/bin/$(basename "$src" .sh)"
done

mkdir -p "$(dirname "$out")"
# A scenario that needs longer than the lab's default bound says so in lab-timeout (seconds).
if [ -f "$scenario/lab-timeout" ]; then
	set -- --timeout "$(tr -dc 0-9 <"$scenario/lab-timeout")" "$@"
fi
VMI_LAB_PAYLOAD=$payload bash "$runner" --kernel "$kernel" --scenario "$stage" --out "$out" "$@"
