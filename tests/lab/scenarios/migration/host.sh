#!/bin/sh
# Lab host side of the migration scenario: a VM whose syscalls vminsight.ko traps is stopped
# and saved (QEMU's migration to a file, as virsh save does), then restored in a new QEMU on
# a host without an attached session: the restored guest must run on, the saved state
# holding nothing of ours. Stops are where a save sees a vCPU: the module completes trapped
# SYSRETs before a vCPU returns to QEMU (pause.json counts them).
set -u
# shellcheck source=../../lib.sh
. "$LAB_SCENARIO/lib.sh"

mon() { # mon COMMAND [NAME]: one command to a QEMU's monitor (NAME mon: the source)
	echo "$1" >"$out/${2:-mon}.in"
}
migrated() { # migrated [NAME]: the migration out of (or into) that QEMU has completed
	mon "info migrate" "${1:-mon}" && grep -q 'Migration status: completed' "$out/${1:-mon}.log"
}
beats_in() { [ "$(grep -c HEARTBEAT "$1")" -gt "$2" ]; }

insmod "$P/vminsight.ko" && step load PASS || step load FAIL insmod
mkfifo "$out/mon.in" "$out/mon.out"
start_guest "$out/guest.log" -m 128 -monitor "pipe:$out/mon"
cat "$out/mon.out" >"$out/mon.log" &
wait_for 30 has_vm_fd "$qemu" && wait_for 120 in_file "$out/guest.log" GUEST-CHURNING &&
	step guest-churning PASS || step guest-churning FAIL

# 1. Stops under syscall traps: every one leaves the vCPU in a state QEMU may save.
if "$P/vmi-lab-probe" pause "$qemu" 100 >"$out/pause.json"; then
	step stops-under-traps PASS "$(cat "$out/pause.json")"
else
	step stops-under-traps FAIL "$(cat "$out/pause.json")"
fi
guest_beats_on && step guest-alive-after-stops PASS || step guest-alive-after-stops FAIL

# 2. Save while the daemon traps syscalls, restore elsewhere (a new QEMU, nothing attached).
"$P/vminsightd" --qemu-pid "$qemu" --vm-name lab-guest --output "$out/events.jsonl" \
	--syscalls execve,openat,getppid 2>>"$out/daemon.err" &
daemon=$!
wait_for 60 in_file "$out/events.jsonl" '"action":"syscall"' &&
	step daemon-traps PASS || step daemon-traps FAIL "no syscall event"
mon stop
mon "migrate exec:cat>$out/state"
wait_for 120 migrated && step saved PASS "$(stat -c %s "$out/state") bytes" ||
	step saved FAIL "migration did not complete"
kill -KILL "$qemu"
wait "$qemu" 2>/dev/null
wait_for 20 dead "$daemon" && wait "$daemon" && in_file "$out/events.jsonl" '"reason":"qemu-exited"' &&
	step daemon-detached PASS || step daemon-detached FAIL

mkfifo "$out/mon2.in" "$out/mon2.out"
start_guest "$out/guest-restored.log" -m 128 -incoming "exec:cat $out/state" \
	-monitor "pipe:$out/mon2"
cat "$out/mon2.out" >"$out/mon2.log" &
t0=$(uptime_ms)
wait_for 120 migrated mon2 || step restore FAIL "incoming migration did not complete"
rm -f "$out/state" # not an artifact: too big for the serial line back
mon cont mon2 # saved stopped, restored stopped: as virsh restore does, let it run
if wait_for 120 beats_in "$out/guest-restored.log" 3; then
	step restored-guest-runs PASS "$(grep -c HEARTBEAT "$out/guest-restored.log") heartbeats, $(($(uptime_ms) - t0)) ms"
else
	echo "info status" >"$out/mon2.in"
	echo "info migrate" >"$out/mon2.in"
	sleep 1
	step restored-guest-runs FAIL "restored guest: $(tail -c 600 "$out/mon2.log")"
fi
kill -KILL "$qemu"
wait "$qemu" 2>/dev/null
wait_for 10 rmmod vminsight && step rmmod PASS || step rmmod FAIL "module busy"
dmesg >"$out/dmesg.txt"
exit "$failed"
