#!/bin/sh
# Smoke scenario, run inside the lab host: boot the nested guest under the
# lab host's KVM and pass iff the guest's marker reached its console.
# Environment: LAB_QEMU LAB_GUEST_KERNEL LAB_GUEST_INITRD LAB_OUT (see README).
log=$LAB_OUT/guest.log
limit=${GUEST_TIMEOUT:-240} # seconds; TCG-hosted KVM is slow but not this slow
: >"$log"

# -nodefaults: no VGA/NIC/floppy to emulate; the only device we need is the
# serial console, sent to a file that LAB_OUT ships back.
# shellcheck disable=SC2086 # LAB_QEMU is a command prefix
$LAB_QEMU -enable-kvm -cpu host -m 256 -smp 1 -nodefaults -display none \
	-no-reboot -serial "file:$log" \
	-kernel "$LAB_GUEST_KERNEL" -initrd "$LAB_GUEST_INITRD" \
	-append 'console=ttyS0 quiet panic=-1' &
qpid=$!

# Poll until the guest powers off (QEMU exits) or the bound is hit.
t=0
while kill -0 "$qpid" 2>/dev/null && [ "$t" -lt $((limit * 5)) ]; do
	sleep 0.2
	t=$((t + 1))
done
if kill -0 "$qpid" 2>/dev/null; then
	echo "host.sh: nested guest still running after ${limit}s, killing it"
	kill "$qpid"
fi
wait "$qpid"
echo "host.sh: nested QEMU exited rc=$?"
echo "----- guest console -----"
cat "$log"
echo "-------------------------"
grep -q 'GUEST-MARKER hello from' "$log"
