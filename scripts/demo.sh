#!/usr/bin/env bash
# make demo: the main job on the built-in lab. Boots Debian's kernel under QEMU/TCG with
# emulated AMD SVM, KVM inside it, a guest under that KVM; vminsight.ko and vminsightd watch
# the guest from the hypervisor side and its process events stream to this screen.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${BUILD:-build}
kernel=${LAB_KERNEL:-6.1}
out=$build/lab-out/demo-$kernel

make -s userspace BUILD="$build"
echo "demo: booting the lab (Debian $kernel kernel, KVM inside QEMU/TCG); events appear below"
rm -rf "$out" "$out.run.log" && mkdir -p "$(dirname "$out")"
bash scripts/lab-test.sh "$kernel" tests/lab/demo "$out" >"$out.run.log" 2>&1 &
lab=$!
# QEMU writes the lab host's console to host.log as it happens; show our lines of it.
tail -n +1 -F "$out/host.log" 2>/dev/null | python3 -u scripts/format-events.py &
viewer=$!
rc=0
wait "$lab" || rc=$?
kill "$viewer" 2>/dev/null || true
wait "$viewer" 2>/dev/null || true
tail -n 1 "$out.run.log"
exit "$rc"
