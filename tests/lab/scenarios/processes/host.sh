#!/bin/sh
# Lab host side of the walking-skeleton scenario. Each step appends "STEP name PASS|FAIL
# detail" to $LAB_OUT/steps.txt; the run fails if any step fails. Waits are bounded polls
# on a condition, never a fixed sleep standing in for one.
set -u
# shellcheck source=../../lib.sh
. "$LAB_SCENARIO/lib.sh"

canaries_in() { # every canary comm printed by the guest appears in events file $1
	for c in $(sed -n 's/.*comm=\(vmi-canary-[0-9a-f]*\).*/\1/p' "$out/guest.log"); do
		grep -q "\"name\":\"$c\"" "$1" || return 1
	done
	grep -q 'comm=vmi-canary' "$out/guest.log"
}

start_daemon() { # start_daemon EVENTS [OPTIONS...]: starts vminsightd on $qemu, sets $daemon
	events=$1
	shift
	"$P/vminsightd" --qemu-pid "$qemu" --vm-name lab-guest --output "$events" \
		--rescan-interval-ms 200 --syscalls execve,exit_group "$@" 2>>"$out/daemon.err" &
	daemon=$!
}

insmod "$P/vminsight.ko" && [ -c /dev/vminsight ] &&
	step load PASS "mode $(stat -c %a /dev/vminsight)" || step load FAIL "insmod"
[ "$(stat -c %a /dev/vminsight)" = 600 ] && step device-root-only PASS || step device-root-only FAIL

# 1. Attach while the guest boots; its canaries must show up with pid, ppid and name.
t0=$(uptime_ms)
start_guest "$out/guest.log"
wait_for 30 has_vm_fd "$qemu" || step qemu-vm FAIL "no KVM VM fd in qemu"
start_daemon "$out/events.jsonl"
echo "qemu_start_ms=$t0" >"$out/metrics.txt"
if wait_for 60 in_file "$out/events.jsonl" '"action":"process-'; then
	echo "first_event_ms=$(uptime_ms)" >>"$out/metrics.txt"
fi
wait_for 240 in_file "$out/guest.log" GUEST-SCENARIO-DONE &&
	step guest-scenario PASS || step guest-scenario FAIL "guest did not finish its scenario"
wait_for 30 canaries_in "$out/events.jsonl" &&
	step canaries-seen PASS || step canaries-seen FAIL "not every canary reached the events"

# 2. rmmod while attached is refused; nothing breaks.
if rmmod vminsight 2>"$out/rmmod-attached.err"; then
	step rmmod-while-attached FAIL "rmmod succeeded under an attached session"
else
	alive "$daemon" && [ -c /dev/vminsight ] && step rmmod-while-attached PASS "$(cat "$out/rmmod-attached.err")" ||
		step rmmod-while-attached FAIL "daemon or device gone"
fi

# 3. Detach (daemon stops): clean detach event, guest keeps running.
kill -TERM "$daemon"
wait_for 20 dead "$daemon" && wait "$daemon"
rc=$?
hb=$(heartbeats)
if [ "$rc" = 0 ] && in_file "$out/events.jsonl" '"reason":"daemon-stopped"' && wait_for 20 beating "$hb"; then
	step detach PASS
else
	step detach FAIL "daemon rc=$rc"
fi

# 4. Re-attach to the running guest: its processes are seen again. This time the guest
#    kernel comes from its vmlinux file (the fallback for kernels without BTF in memory).
start_daemon "$out/events-reattach.jsonl" --guest-kernel "$P/vmlinux"
wait_for 60 canaries_in "$out/events-reattach.jsonl" && step reattach PASS || step reattach FAIL

# 5. QEMU killed while attached: the daemon notices, detaches and exits by itself.
kill -KILL "$qemu"
wait_for 30 dead "$daemon" && wait "$daemon"
rc=$?
in_file "$out/events-reattach.jsonl" '"reason":"qemu-exited"' && [ "$rc" = 0 ] &&
	step qemu-killed-while-attached PASS || step qemu-killed-while-attached FAIL "daemon rc=$rc"
wait "$qemu" 2>/dev/null

# 6. Daemon killed -9 while attached: the kernel detaches on close; rmmod then succeeds.
#    This daemon takes the struct layouts from a BTF file (--btf, for kernels without BTF in
#    memory) and still finds the kernel in guest memory.
start_guest "$out/guest2.log"
wait_for 30 has_vm_fd "$qemu"
start_daemon "$out/events-killed.jsonl" --btf "$P/vmlinux"
if wait_for 120 in_file "$out/events-killed.jsonl" guest-kernel-found &&
	grep guest-kernel-found "$out/events-killed.jsonl" | grep -q '"source":"btf-file"'; then
	step btf-file-profile PASS "$(grep -o '"discovery_ms":[0-9.]*' "$out/events-killed.jsonl")"
else
	step btf-file-profile FAIL "$(grep -m1 -o '"profile":{[^}]*}' "$out/events-killed.jsonl")"
fi
kill -KILL "$daemon"
wait "$daemon" 2>/dev/null
if wait_for 10 rmmod vminsight; then
	step rmmod-after-daemon-killed PASS
else
	step rmmod-after-daemon-killed FAIL "module still busy"
fi
alive "$qemu" && step guest-survives PASS || step guest-survives FAIL "qemu died"
kill -KILL "$qemu"
wait "$qemu" 2>/dev/null

dmesg >"$out/dmesg.txt"
exit "$failed"
