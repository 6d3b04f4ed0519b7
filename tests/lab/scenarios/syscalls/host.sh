#!/bin/sh
set -u
# shellcheck source=../../lib.sh
. "$LAB_SCENARIO/lib.sh"
insmod "$P/vminsight.ko" && step load PASS || step load FAIL insmod
start_guest "$out/guest.log"
wait_for 30 has_vm_fd "$qemu" || step qemu-vm FAIL "no KVM VM fd in qemu"
wait_for 120 in_file "$out/guest.log" "SYSPROBE done" || step guest-probe FAIL "no probe output"
"$P/vmi-lab-probe" trace "$qemu" 5000 >"$out/trace.jsonl" 2>"$out/trace.err"
step trace PASS "rc=$? $(tail -n1 "$out/trace.jsonl")"
guest_beats_on && step guest-survives PASS || step guest-survives FAIL
kill -KILL "$qemu"
wait "$qemu" 2>/dev/null
rmmod vminsight && step rmmod PASS || step rmmod FAIL
dmesg >"$out/dmesg.txt"
exit "$failed"
