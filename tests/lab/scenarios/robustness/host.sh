#!/bin/sh
# Lab host side: robustness of vminsight.ko under a process-churning guest. Each step appends
# "STEP name PASS|FAIL detail" to $LAB_OUT/steps.txt. A WARN, BUG or oops panics the lab host
# (panic_on_warn), which fails the run by construction.
set -u
# shellcheck source=../../lib.sh
. "$LAB_SCENARIO/lib.sh"

insmod "$P/vminsight.ko" || step load FAIL insmod
tp=/sys/kernel/tracing/events/vminsight
for ev in vminsight_cr3 vminsight_syscall vminsight_sysret; do
	echo 1 >"$tp/$ev/enable" || step tracepoint-enable FAIL "no $tp/$ev"
done
start_guest "$out/guest.log"
wait_for 30 has_vm_fd "$qemu" && wait_for 240 in_file "$out/guest.log" GUEST-CHURNING &&
	step guest-churning PASS || step guest-churning FAIL "guest did not start its load"

# 100 attach / trap (CR3 writes, every syscall, entry-MSR writes) / detach cycles while the
# guest churns: detach lands mid-syscall, with SYSRETs still to complete.
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
for ev in vminsight_cr3 vminsight_syscall vminsight_sysret; do echo 0 >"$tp/$ev/enable"; done
grep vminsight_ /sys/kernel/tracing/trace >"$out/trace.txt"
if grep -q 'cr3 0x.* -> 0x' "$out/trace.txt" && grep -q ' lost$' "$out/trace.txt" &&
	grep -q 'vminsight_syscall: .* nr 59 ' "$out/trace.txt" &&
	grep -q 'vminsight_sysret: .* nr .* = ' "$out/trace.txt"; then
	step tracepoint-mirror PASS "$(wc -l <"$out/trace.txt") lines"
else
	step tracepoint-mirror FAIL "$(wc -l <"$out/trace.txt") lines"
fi

# Detach while the vCPU cannot run (QEMU stopped) with syscall traps armed: the session must
# linger, holding the module, until the vCPU has run again and dropped them; then nothing is
# left behind and the module unloads while the guest still runs.
if "$P/vmi-lab-probe" linger "$qemu" >"$out/linger.json"; then
	if rmmod vminsight 2>/dev/null; then
		step linger-holds-module FAIL "module unloaded under a vCPU with traps armed"
	else
		step linger-holds-module PASS "$(cat "$out/linger.json")"
	fi
else
	step linger-holds-module FAIL "$(cat "$out/linger.json")"
fi
kill -CONT "$qemu"
wait_for 10 rmmod vminsight && step rmmod-clean PASS || step rmmod-clean FAIL "module still busy"
guest_beats_on && step guest-alive-after-linger PASS || step guest-alive-after-linger FAIL
kill -0 "$qemu" 2>/dev/null && step guest-survives PASS || step guest-survives FAIL
kill -KILL "$qemu"
wait "$qemu" 2>/dev/null
dmesg >"$out/dmesg.txt"
exit "$failed"
