#!/bin/sh
# Demo: boot a guest under the lab's real KVM, attach vminsightd, and stream its events to
# the console as they happen ("EV <json>"; scripts/demo.sh formats them).
set -eu
P=$LAB_PAYLOAD
echo "DEMO loading vminsight.ko"
insmod "$P/vminsight.ko"
# shellcheck disable=SC2086 # LAB_QEMU is a command prefix
$LAB_QEMU -enable-kvm -cpu host -m 256 -smp 1 -nodefaults -display none -no-reboot \
	-kernel "$LAB_GUEST_KERNEL" -initrd "$LAB_GUEST_INITRD" \
	-append "console=ttyS0 quiet panic=-1" -serial "file:$LAB_OUT/guest.log" </dev/null >/dev/null 2>&1 &
qemu=$!
n=300
until ls -l "/proc/$qemu/fd" 2>/dev/null | grep -q kvm-vm; do
	n=$((n - 1))
	[ "$n" -gt 0 ] || { echo "DEMO qemu did not create a VM"; exit 1; }
	sleep 0.1
done
echo "DEMO guest started (qemu pid $qemu); attaching vminsightd"
# Each event line goes to the console as it comes (the daemon flushes per line) and to a file.
# The default policy (its alerts follow the events they match, and the syscalls its rules look
# at are trapped), the process lifecycle, and one program the host forbids.
"$P/vminsightd" --qemu-pid "$qemu" --vm-name demo-guest \
	--output - --rescan-interval-ms 200 --policy "$P/policies/default.yaml" --lifecycle \
	--deny-exec /tmp/cryptominer |
	while IFS= read -r line; do
		echo "EV $line"
		echo "$line" >>"$LAB_OUT/events.jsonl"
	done
echo "DEMO guest finished; vminsightd detached"
wait "$qemu" 2>/dev/null || true
