#!/bin/sh
# Lab host side of the syscalls scenario: vminsightd traps the guest probe's syscalls and
# denies one execve; then, with the filter set to openat alone, nothing else is recorded;
# then a live session's filter is changed six times, denial included (vmi-lab-probe filter).
# phases.txt records, per phase, the guest.log offset from which every probe run started
# while the daemon was attached and knew the guest kernel (check compares those runs with the
# events).
set -u
# shellcheck source=../../lib.sh
. "$LAB_SCENARIO/lib.sh"

# runs_done_after OFFSET N: N probe runs began after byte OFFSET and finished (the end of a
# run already under way at OFFSET does not count, as in check).
runs_done_after() {
	[ "$(tail -c +"$(($1 + 1))" "$out/guest.log" | sed -n '/SYSPROBE pid=/,$p' |
		grep -c 'SYSPROBE done')" -ge "$2" ]
}

phase() { # phase NAME RUNS DAEMON_OPTIONS...: watch RUNS complete probe runs
	name=$1 runs=$2
	shift 2
	"$P/vminsightd" --qemu-pid "$qemu" --vm-name lab-guest --output "$out/events-$name.jsonl" \
		--ring-pages 256 --rescan-interval-ms 200 "$@" 2>>"$out/daemon.err" &
	daemon=$!
	# From guest-kernel-found on, the module names every call with the caller's pid and comm.
	if ! wait_for 60 in_file "$out/events-$name.jsonl" '"action":"guest-kernel-found"'; then
		step "$name-attach" FAIL "no guest-kernel-found event"
		return
	fi
	offset=$(stat -c %s "$out/guest.log")
	echo "$name $offset" >>"$out/phases.txt"
	wait_for 120 runs_done_after "$offset" "$runs" &&
		step "$name-runs" PASS "$runs runs after offset $offset" ||
		step "$name-runs" FAIL "guest did not finish $runs probe runs"
	kill -TERM "$daemon"
	wait_for 20 dead "$daemon" && wait "$daemon"
	rc=$?
	[ "$rc" = 0 ] && step "$name-detach" PASS || step "$name-detach" FAIL "daemon rc=$rc"
}

insmod "$P/vminsight.ko" && step load PASS || step load FAIL insmod
: >"$out/phases.txt"
start_guest "$out/guest.log"
wait_for 30 has_vm_fd "$qemu" || step qemu-vm FAIL "no KVM VM fd in qemu"
wait_for 120 in_file "$out/guest.log" 'SYSPROBE done' || step guest-probe FAIL "probe never ran"

phase full 2 --syscalls openat,getppid,connect --lifecycle --deny-exec /tmp/vmi-canary-denied
phase openat 1 --syscalls openat

# Rules reload on SIGHUP while attached (the trapped syscalls follow them).
"$P/vminsightd" --qemu-pid "$qemu" --vm-name lab-guest --output "$out/events-reload.jsonl" \
	--policy "$P/policies/default.yaml" 2>>"$out/daemon.err" &
daemon=$!
if wait_for 60 in_file "$out/events-reload.jsonl" '"action":"vm-attached"'; then
	kill -HUP "$daemon"
	wait_for 30 in_file "$out/events-reload.jsonl" '"action":"policy-reloaded"' &&
		step policy-reload PASS "$(grep -o '"rules":[0-9]*' "$out/events-reload.jsonl")" ||
		step policy-reload FAIL "no policy-reloaded event"
else
	step policy-reload FAIL "daemon did not attach"
fi
kill -TERM "$daemon"
wait_for 20 dead "$daemon" && wait "$daemon" || step policy-reload-detach FAIL "daemon rc=$?"

# The filter of a live session changes without detaching: numbers and CR3 scope.
if "$P/vmi-lab-probe" filter "$qemu" >"$out/filter.json"; then
	step filter-live PASS "$(cat "$out/filter.json")"
else
	step filter-live FAIL "$(cat "$out/filter.json")"
fi

guest_beats_on && step guest-survives PASS || step guest-survives FAIL "no heartbeat"
kill -KILL "$qemu"
wait "$qemu" 2>/dev/null
rmmod vminsight && step rmmod PASS || step rmmod FAIL "module busy"
dmesg >"$out/dmesg.txt"
exit "$failed"
