#!/bin/sh
# Lab host side of the syscall-cost bench: the guest times getppid batches; the host runs
# three phases and writes the guest.log offset where each begins to phases.txt: no daemon;
# the daemon recording getppid; the daemon trapping syscalls but recording only openat (so
# getppid exits twice and is dropped in the kernel).
set -u
# shellcheck source=../../lib.sh
. "$LAB_SCENARIO/lib.sh"

samples_after() { # samples_after OFFSET N: N timings printed after byte OFFSET
	[ "$(tail -c +"$(($1 + 1))" "$out/guest.log" | grep -c 'SYSBENCH ns_per_call=')" -ge "$2" ]
}

phase() { # phase NAME [DAEMON OPTIONS...]: collect 5 timings
	name=$1
	shift
	daemon=
	if [ $# -gt 0 ]; then
		"$P/vminsightd" --qemu-pid "$qemu" --vm-name lab-guest --output "$out/events-$name.jsonl" \
			--ring-pages 1024 "$@" 2>>"$out/daemon.err" &
		daemon=$!
		wait_for 60 in_file "$out/events-$name.jsonl" '"action":"vm-attached"'
	fi
	# The batch running at the switch is mixed: skip it.
	offset=$(stat -c %s "$out/guest.log")
	wait_for 60 samples_after "$offset" 1
	offset=$(stat -c %s "$out/guest.log")
	echo "$name $offset" >>"$out/phases.txt"
	wait_for 120 samples_after "$offset" 5 && step "$name" PASS || step "$name" FAIL "no timings"
	if [ -n "$daemon" ]; then
		kill -TERM "$daemon"
		wait_for 20 dead "$daemon" && wait "$daemon"
	fi
}

insmod "$P/vminsight.ko" || step load FAIL insmod
: >"$out/phases.txt"
start_guest "$out/guest.log"
wait_for 30 has_vm_fd "$qemu"
wait_for 120 in_file "$out/guest.log" SYSBENCH
phase untrapped
phase recorded --syscalls getppid
phase filtered --syscalls openat
kill -KILL "$qemu"
wait "$qemu" 2>/dev/null
exit "$failed"
