#!/bin/sh
# Lab host side of the inspect scenario: zero-configuration introspection of a memory
# snapshot. Boots the guest, waits for its canaries, dumps guest memory as an ELF core through
# the HMP monitor (a QEMU "pipe" chardev: busybox has no unix-socket client), then runs
# vminsight-inspect on the dump with no vmlinux, System.map or CR3 given. Each step appends
# "STEP name PASS|FAIL detail" to $LAB_OUT/steps.txt. Waits are bounded polls.
set -u
# shellcheck source=../../lib.sh
. "$LAB_SCENARIO/lib.sh"
dump=/tmp/guest.elf # not under $LAB_OUT: artifacts travel over a serial line
mon=/tmp/mon


[ -x "$P/vminsight-inspect" ] && step payload PASS || step payload FAIL "no $P/vminsight-inspect"
for f in vmlinux System.map; do rm -f "/tmp/$f"; done

rm -f "$mon.in" "$mon.out" "$dump"
mkfifo "$mon.in" "$mon.out"
cat "$mon.out" >"$out/monitor.log" &
reader=$!
start_guest "$out/guest.log" -chardev "pipe,id=mon0,path=$mon" -mon chardev=mon0,mode=readline

wait_for 240 in_file "$out/guest.log" GUEST-SCENARIO-DONE &&
	step guest-scenario PASS || step guest-scenario FAIL "guest did not finish its scenario"

t0=$(uptime_ms)
echo "dump-guest-memory $dump" >"$mon.in"
echo "info status" >"$mon.in"
if wait_for 300 in_file "$out/monitor.log" "VM status"; then
	step dump PASS "$(stat -c %s "$dump" 2>/dev/null) bytes in $(($(uptime_ms) - t0)) ms"
else
	step dump FAIL "no answer from the monitor"
fi
echo "dump_ms=$(($(uptime_ms) - t0))" >"$out/metrics.txt"
kill -KILL "$qemu" 2>/dev/null
wait "$qemu" 2>/dev/null
kill "$reader" 2>/dev/null

t0=$(uptime_ms)
if "$P/vminsight-inspect" profile --snapshot "$dump" >"$out/profile.txt" 2>"$out/profile.err"; then
	step profile PASS "$(grep '^time' "$out/profile.txt")"
else
	step profile FAIL "$(head -c 400 "$out/profile.err")"
fi
echo "profile_wall_ms=$(($(uptime_ms) - t0))" >>"$out/metrics.txt"
"$P/vminsight-inspect" profile --snapshot "$dump" --json >"$out/profile.json" 2>>"$out/profile.err"

if "$P/vminsight-inspect" ps --snapshot "$dump" --json >"$out/ps.json" 2>"$out/ps.err"; then
	step ps PASS
else
	step ps FAIL "$(head -c 400 "$out/ps.err")"
fi
"$P/vminsight-inspect" ps --snapshot "$dump" >"$out/ps.txt" 2>>"$out/ps.err"
if "$P/vminsight-inspect" pstree --snapshot "$dump" >"$out/pstree.txt" 2>>"$out/ps.err" &&
	grep -q 'vmi-canary' "$out/pstree.txt"; then
	step pstree PASS "$(wc -l <"$out/pstree.txt") lines"
else
	step pstree FAIL "$(head -c 400 "$out/ps.err")"
fi
# Errors must name the file and not crash on garbage.
head -c 100000 "$dump" >/tmp/truncated.elf
if "$P/vminsight-inspect" ps --snapshot /tmp/truncated.elf >/dev/null 2>"$out/truncated.err"; then
	step truncated-dump FAIL "accepted a truncated dump"
else
	rc=$?
	[ "$rc" = 1 ] && in_file "$out/truncated.err" /tmp/truncated.elf &&
		step truncated-dump PASS "$(head -c 200 "$out/truncated.err")" ||
		step truncated-dump FAIL "rc=$rc $(head -c 200 "$out/truncated.err")"
fi
rm -f "$dump" /tmp/truncated.elf "$mon.in" "$mon.out"
exit "$failed"
