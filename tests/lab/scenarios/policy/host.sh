#!/bin/sh
# Lab host side of the policy scenario: vminsightd with the default policy (and the lifecycle
# syscalls, so exec rules see short-lived programs) watches one full guest round, attack
# phase then benign phase. phases.txt holds the guest.log offset after which the daemon was
# attached and knew the guest kernel (so syscalls were named with pid and comm at the call);
# check judges the first round that began after it.
set -u
# shellcheck source=../../lib.sh
. "$LAB_SCENARIO/lib.sh"

after() { # after OFFSET: guest.log from byte OFFSET on
	tail -c +"$(($1 + 1))" "$out/guest.log"
}
first_round() { after "$offset" | sed -n 's/^ROUND \([0-9]*\) BEGIN.*/\1/p' | head -n1; }
round_begun() { [ -n "$(first_round)" ]; }
round_done() { after "$offset" | grep -q "^ROUND $round END"; }

insmod "$P/vminsight.ko" && step load PASS || step load FAIL insmod
start_guest "$out/guest.log"
wait_for 30 has_vm_fd "$qemu" || step qemu-vm FAIL "no KVM VM fd in qemu"
wait_for 120 in_file "$out/guest.log" VMI-SETUP && step guest-setup PASS ||
	step guest-setup FAIL "guest did not finish its setup"

"$P/vminsightd" --qemu-pid "$qemu" --vm-name lab-guest --output "$out/events.jsonl" \
	--rescan-interval-ms 200 --lifecycle --policy "$P/policies/default.yaml" 2>>"$out/daemon.err" &
daemon=$!
if wait_for 60 in_file "$out/events.jsonl" '"action":"guest-kernel-found"'; then
	offset=$(stat -c %s "$out/guest.log")
	echo "attached $offset" >"$out/phases.txt"
	step attach PASS "guest.log offset $offset"
	if wait_for 60 round_begun; then
		round=$(first_round)
		wait_for 240 round_done && step round PASS "round $round watched" ||
			step round FAIL "round $round did not finish"
	else
		step round FAIL "no round began after the attach"
	fi
else
	step attach FAIL "daemon did not find the guest kernel"
fi
kill -TERM "$daemon"
wait_for 20 dead "$daemon" && wait "$daemon"
rc=$?
[ "$rc" = 0 ] && step detach PASS || step detach FAIL "daemon rc=$rc"

kill -KILL "$qemu"
wait "$qemu" 2>/dev/null
rmmod vminsight && step rmmod PASS || step rmmod FAIL "module busy"
dmesg >"$out/dmesg.txt"
exit "$failed"
