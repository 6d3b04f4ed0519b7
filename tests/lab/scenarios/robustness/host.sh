#!/bin/sh
# Lab host side: robustness of vminsight.ko under a process-churning guest. Each step appends
# "STEP name PASS|FAIL detail" to $LAB_OUT/steps.txt. A WARN, BUG or oops panics the lab host
# (panic_on_warn), which fails the run by construction.
set -u
out=$LAB_OUT
P=$LAB_PAYLOAD
steps=$out/steps.txt
: >"$steps"
failed=0

step() {
	echo "STEP $1 $2 ${3:-}" | tee -a "$steps"
	[ "$2" = PASS ] || failed=1
}
wait_for() { # wait_for SECONDS COMMAND...: poll every 0.1 s until COMMAND succeeds
	n=$(($1 * 10))
	shift
	while [ "$n" -gt 0 ]; do
		"$@" && return 0
		n=$((n - 1))
		sleep 0.1
	done
	return 1
}
has_vm_fd() { ls -l "/proc/$1/fd" 2>/dev/null | grep -q 'anon_inode:kvm-vm'; }
in_file() { grep -q "$2" "$1" 2>/dev/null; }
heartbeats() { grep -c HEARTBEAT "$out/guest.log"; }
beating() { [ "$(heartbeats)" -gt "$1" ]; }
guest_beats_on() { # the guest's heartbeat advances within 20 s
	hb=$(heartbeats)
	wait_for 20 beating "$hb"
}

insmod "$P/vminsight.ko" || step load FAIL insmod
tp=/sys/kernel/tracing/events/vminsight/vminsight_cr3
echo 1 >"$tp/enable" || step tracepoint-enable FAIL "no $tp"
# shellcheck disable=SC2086 # LAB_QEMU is a command prefix
$LAB_QEMU -enable-kvm -cpu host -m 256 -smp 1 -nodefaults -display none -no-reboot \
	-kernel "$LAB_GUEST_KERNEL" -initrd "$LAB_GUEST_INITRD" \
	-append "console=ttyS0 quiet panic=-1" -serial "file:$out/guest.log" \
	</dev/null >"$out/qemu.err" 2>&1 &
qemu=$!
wait_for 30 has_vm_fd "$qemu" && wait_for 240 in_file "$out/guest.log" GUEST-CHURNING &&
	step guest-churning PASS || step guest-churning FAIL "guest did not start its load"

# 100 attach / CR3-exiting / detach cycles while the guest churns.
if "$P/vmi-lab-probe" cycle "$qemu" 100 >"$out/cycle.json"; then
	step attach-detach-100 PASS "$(cat "$out/cycle.json")"
else
	step attach-detach-100 FAIL "$(cat "$out/cycle.json")"
fi
guest_beats_on && step guest-alive-after-cycles PASS || step guest-alive-after-cycles FAIL

# Ring overflow with nobody reading: lost counts must account for every record.
if "$P/vmi-lab-probe" overflow "$qemu" >"$out/overflow.json"; then
	step overflow-exact PASS "$(cat "$out/overflow.json")"
else
	step overflow-exact FAIL "$(cat "$out/overflow.json")"
fi
guest_beats_on && step guest-alive-after-overflow PASS || step guest-alive-after-overflow FAIL

# The tracepoint mirror saw the same records, the dropped ones marked as such.
echo 0 >"$tp/enable"
grep vminsight_cr3 /sys/kernel/tracing/trace >"$out/trace.txt"
if grep -q 'cr3 0x.* -> 0x' "$out/trace.txt" && grep -q ' lost$' "$out/trace.txt"; then
	step tracepoint-mirror PASS "$(wc -l <"$out/trace.txt") lines"
else
	step tracepoint-mirror FAIL "$(wc -l <"$out/trace.txt") lines"
fi

# Nothing left behind: the module unloads while the guest still runs.
rmmod vminsight && step rmmod-clean PASS || step rmmod-clean FAIL "module still busy"
kill -0 "$qemu" 2>/dev/null && step guest-survives PASS || step guest-survives FAIL
kill -KILL "$qemu"
wait "$qemu" 2>/dev/null
dmesg >"$out/dmesg.txt"
exit "$failed"
