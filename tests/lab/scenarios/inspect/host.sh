#!/bin/sh
# Lab host side of the inspect scenario: zero-configuration introspection of the running VM
# (vminsight-inspect --live: guest RAM read from QEMU through vminsight.ko's memory map) and of
# a memory snapshot. Boots the guest (with two of this kernel's modules added to its initramfs), waits
# for its canaries, lists them live (and checks the clear refusal while vminsightd holds the
# VM), runs a C program against the LibVMI-compatible C API, dumps guest memory as an ELF core through the HMP monitor (a QEMU "pipe"
# chardev: busybox has no unix-socket client), then runs vminsight-inspect on the dump with no
# vmlinux, System.map or CR3 given: processes, kernel symbols (kallsyms) and modules. Each
# step appends "STEP name PASS|FAIL detail" to $LAB_OUT/steps.txt. Waits are bounded polls.
set -u
# shellcheck source=../../lib.sh
. "$LAB_SCENARIO/lib.sh"
dump=/tmp/guest.elf # not under $LAB_OUT: artifacts travel over a serial line
mon=/tmp/mon


[ -x "$P/vminsight-inspect" ] && step payload PASS || step payload FAIL "no $P/vminsight-inspect"
insmod "$P/vminsight.ko" && [ -c /dev/vminsight ] && step load PASS || step load FAIL "insmod"
for f in vmlinux System.map; do rm -f "/tmp/$f"; done

# The guest loads irqbypass.ko and kvm.ko from /modules: the lab host's own copies (same
# kernel build), appended to the guest's initramfs as a second newc archive (the kernel
# unpacks concatenated archives).
extra=/tmp/guest-extra
rm -rf "$extra" && mkdir -p "$extra/modules"
if cp /lab/modules/irqbypass.ko /lab/modules/kvm.ko "$extra/modules/" &&
	(cd "$extra" && find modules | cpio -o -H newc >/tmp/guest-extra.cpio 2>/dev/null) &&
	cat "$LAB_GUEST_INITRD" /tmp/guest-extra.cpio >/tmp/guest-initrd.cpio; then
	LAB_GUEST_INITRD=/tmp/guest-initrd.cpio
	step guest-modules PASS "irqbypass.ko kvm.ko"
else
	step guest-modules FAIL "could not add /lab/modules/{irqbypass,kvm}.ko to the guest initramfs"
fi
rm -rf "$extra" /tmp/guest-extra.cpio

rm -f "$mon.in" "$mon.out" "$dump"
mkfifo "$mon.in" "$mon.out"
cat "$mon.out" >"$out/monitor.log" &
reader=$!
rm -f /tmp/qmp.sock # the C API pauses through QMP when QEMU has it
start_guest "$out/guest.log" -chardev "pipe,id=mon0,path=$mon" -mon chardev=mon0,mode=readline \
	-qmp unix:/tmp/qmp.sock,server=on,wait=off

wait_for 240 in_file "$out/guest.log" GUEST-SCENARIO-DONE &&
	step guest-scenario PASS || step guest-scenario FAIL "guest did not finish its scenario"

# Live: the same listings from the running guest, no dump and no configuration. check compares
# ps-live.json and modules-live.json with the guest's /proc exactly as it does the dump's.
t0=$(uptime_ms)
if "$P/vminsight-inspect" ps --live "$qemu" --json >"$out/ps-live.json" 2>"$out/live.err"; then
	step ps-live PASS "$(($(uptime_ms) - t0)) ms"
else
	step ps-live FAIL "$(head -c 400 "$out/live.err")"
fi
echo "ps_live_ms=$(($(uptime_ms) - t0))" >"$out/metrics.txt"
"$P/vminsight-inspect" ps --live "$qemu" >"$out/ps-live.txt" 2>>"$out/live.err"
if "$P/vminsight-inspect" pstree --qemu-pid "$qemu" >"$out/pstree-live.txt" 2>>"$out/live.err" &&
	grep -q 'vmi-canary' "$out/pstree-live.txt"; then
	step pstree-live PASS "$(wc -l <"$out/pstree-live.txt") lines"
else
	step pstree-live FAIL "$(head -c 400 "$out/live.err")"
fi
if "$P/vminsight-inspect" modules --live "$qemu" --json >"$out/modules-live.json" \
	2>>"$out/live.err"; then
	step modules-live PASS
else
	step modules-live FAIL "$(head -c 400 "$out/live.err")"
fi
# The LibVMI-compatible C API, from a C program: check compares its CAPI lines with the
# guest's view (banner, tasks, a canary's argv[0] through its page tables, pause/resume).
# shellcheck disable=SC2046 # two numbers, split on purpose
set -- $(tr -d '\r' <"$out/guest.log" | sed -n 's/^CANARY-ARGSTART pid=\([0-9]*\) arg_start=\([0-9]*\)$/\1 \2/p')
# Twice: pausing through QEMU's QMP socket (found in its command line), then with SIGSTOP.
if [ $# -ge 2 ] && LD_LIBRARY_PATH=$P "$P/vmi-capi-probe" "$qemu" "$1" "$2" >"$out/capi.txt" \
	2>&1; then
	step capi PASS "$(grep -c '^CAPI task' "$out/capi.txt") tasks"
else
	step capi FAIL "$(grep -v '^CAPI task' "$out/capi.txt" | head -c 400)"
fi
if [ $# -ge 2 ] && VMINSIGHT_QMP_SOCKET=none LD_LIBRARY_PATH=$P "$P/vmi-capi-probe" "$qemu" \
	"$1" "$2" >"$out/capi-signal.txt" 2>&1; then
	step capi-signal PASS
else
	step capi-signal FAIL "$(grep -v '^CAPI task' "$out/capi-signal.txt" | head -c 400)"
fi
# The module allows one session per VM: with vminsightd attached, --live must say so.
"$P/vminsightd" --qemu-pid "$qemu" --vm-name lab-guest --output "$out/daemon.jsonl" \
	2>"$out/daemon.err" &
daemon=$!
if wait_for 30 in_file "$out/daemon.jsonl" vm-attached; then
	if "$P/vminsight-inspect" ps --live "$qemu" >/dev/null 2>"$out/busy.err"; then
		step live-busy FAIL "listed a VM vminsightd holds"
	else
		rc=$?
		[ "$rc" = 1 ] && in_file "$out/busy.err" 'attached by vminsightd' &&
			in_file "$out/busy.err" 'vminsightctl ps' &&
			step live-busy PASS "$(head -c 300 "$out/busy.err")" ||
			step live-busy FAIL "rc=$rc $(head -c 300 "$out/busy.err")"
	fi
else
	step live-busy FAIL "vminsightd did not attach: $(head -c 300 "$out/daemon.err")"
fi
kill -TERM "$daemon" 2>/dev/null
wait_for 20 dead "$daemon"
# A pid without a VM is an error naming it, not a crash.
if "$P/vminsight-inspect" ps --live $$ >/dev/null 2>"$out/novm.err"; then
	step live-no-vm FAIL "listed a process without a VM"
else
	rc=$?
	[ "$rc" = 1 ] && in_file "$out/novm.err" "qemu pid $$" &&
		step live-no-vm PASS "$(head -c 200 "$out/novm.err")" ||
		step live-no-vm FAIL "rc=$rc $(head -c 200 "$out/novm.err")"
fi

t0=$(uptime_ms)
echo "dump-guest-memory $dump" >"$mon.in"
echo "info status" >"$mon.in"
if wait_for 300 in_file "$out/monitor.log" "VM status"; then
	step dump PASS "$(stat -c %s "$dump" 2>/dev/null) bytes in $(($(uptime_ms) - t0)) ms"
else
	step dump FAIL "no answer from the monitor"
fi
echo "dump_ms=$(($(uptime_ms) - t0))" >>"$out/metrics.txt"
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
# Kernel symbols from the guest's kallsyms: the names the guest printed from /proc/kallsyms
# (check compares the addresses), then the whole table (counted here, not shipped).
names=$(tr -d '\r' <"$out/guest.log" | sed -n 's/^KALLSYMS [0-9a-f]* . \([^ ]*\)$/\1/p' | sort -u)
t0=$(uptime_ms)
# shellcheck disable=SC2086 # one argument per name
if "$P/vminsight-inspect" symbols --snapshot "$dump" --json $names >"$out/symbols.json" \
	2>"$out/symbols.err"; then
	step symbols PASS "$(echo $names | wc -w) names"
else
	step symbols FAIL "$(head -c 400 "$out/symbols.err")"
fi
echo "symbols_wall_ms=$(($(uptime_ms) - t0))" >>"$out/metrics.txt"
n=$("$P/vminsight-inspect" symbols --snapshot "$dump" 2>>"$out/symbols.err" | wc -l)
[ "$n" -gt 50000 ] && step symbols-all PASS "$n symbols" || step symbols-all FAIL "$n symbols"
if "$P/vminsight-inspect" symbols --snapshot "$dump" no_such_symbol_vmi >/dev/null \
	2>>"$out/symbols.err"; then
	step symbols-unknown FAIL "an unknown name was not an error"
else
	step symbols-unknown PASS
fi

if "$P/vminsight-inspect" modules --snapshot "$dump" --json >"$out/modules.json" \
	2>"$out/modules.err" &&
	"$P/vminsight-inspect" modules --snapshot "$dump" >"$out/modules.txt" 2>>"$out/modules.err"; then
	step modules PASS "$(($(wc -l <"$out/modules.txt") - 1)) modules"
else
	step modules FAIL "$(head -c 400 "$out/modules.err")"
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
