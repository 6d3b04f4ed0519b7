#!/bin/sh
# Lab host side of the tamper scenario: the guest loads vmi_tamper.ko (test tooling) and, one
# step at a time on the host's command, hides a process from the task list, replaces a
# sys_call_table entry, overwrites a byte of kernel text, unlinks itself from the module list,
# and rewrites LSTAR; each step is undone before the next. After each step the host dumps guest
# memory (HMP dump-guest-memory) and runs `vminsight-inspect integrity` on the dump against the
# baseline dump taken before the first step, and checks the finding names the process, the
# syscall number, the symbol or the module. Clean sweeps (the baseline alone, a later dump of
# the busy guest, the dump after every step was undone) must find nothing. For LSTAR, a vCPU
# register no dump shows, vminsightd is attached around the step: vminsight.ko intercepts the
# guest's WRMSR, and the daemon reports it as it happens, naming the writer's RIP.
# Each step appends "STEP name PASS|FAIL detail" to $LAB_OUT/steps.txt.
set -u
# shellcheck source=../../lib.sh
. "$LAB_SCENARIO/lib.sh"
P=$LAB_PAYLOAD
base=/tmp/base.elf
dump=/tmp/now.elf
mon=/tmp/mon
ctl=/tmp/ctl

extra=/tmp/guest-extra
rm -rf "$extra" && mkdir -p "$extra/modules"
if cp "$P/guest-modules/vmi_tamper.ko" "$extra/modules/" &&
	(cd "$extra" && find modules | cpio -o -H newc >/tmp/guest-extra.cpio 2>/dev/null) &&
	cat "$LAB_GUEST_INITRD" /tmp/guest-extra.cpio >/tmp/guest-initrd.cpio; then
	LAB_GUEST_INITRD=/tmp/guest-initrd.cpio
	step guest-modules PASS vmi_tamper.ko
else
	step guest-modules FAIL "no $P/guest-modules/vmi_tamper.ko"
fi
rm -rf "$extra" /tmp/guest-extra.cpio

insmod "$P/vminsight.ko" && step load PASS || step load FAIL insmod

rm -f "$mon.in" "$mon.out" "$ctl.in" "$ctl.out"
mkfifo "$mon.in" "$mon.out" "$ctl.in" "$ctl.out"
cat "$mon.out" >"$out/monitor.log" &
mreader=$!
cat "$ctl.out" >/dev/null &
creader=$!
# ttyS1 of the guest carries the host's commands.
start_guest "$out/guest.log" -chardev "pipe,id=mon0,path=$mon" -mon chardev=mon0,mode=readline \
	-chardev "pipe,id=ctl0,path=$ctl" -serial chardev:ctl0
exec 3>"$ctl.in"

wait_for 240 in_file "$out/guest.log" TAMPER-READY &&
	step guest-ready PASS || step guest-ready FAIL "guest did not load vmi_tamper"
hide=$(tr -d '\r' <"$out/guest.log" | sed -n 's/^TAMPER-HIDEME pid=\([0-9]*\)$/\1/p')

dumps=0
snapshot() { # snapshot FILE: dump guest memory (the VM pauses for the dump)
	rm -f "$1"
	dumps=$((dumps + 1))
	echo "dump-guest-memory $1" >"$mon.in"
	echo "info status" >"$mon.in"
	# One "VM status" line per dump: wait for this dump's.
	wait_for 300 sh -c "[ \$(grep -c 'VM status' '$out/monitor.log') -ge $dumps ]"
}

# integrity NAME SNAPSHOT [--against FILE]: one sweep, JSON in $out/NAME.json.
integrity() {
	name=$1 snap=$2
	shift 2
	t0=$(uptime_ms)
	"$P/vminsight-inspect" integrity --snapshot "$snap" --json "$@" >"$out/$name.json" \
		2>"$out/$name.err"
	rc=$?
	echo "${name}_wall_ms=$(($(uptime_ms) - t0)) rc=$rc" >>"$out/metrics.txt"
	return 0
}
findings() { grep -o '"findings":\[.*' "$out/$1.json" 2>/dev/null; }
clean() { # clean NAME: no findings at all
	if findings "$1" | grep -q '^"findings":\[\]'; then
		step "$1" PASS "$(grep -o '"pages_read":[0-9]*' "$out/$1.json")"
	else
		step "$1" FAIL "$(head -c 600 "$out/$1.json") $(head -c 300 "$out/$1.err")"
	fi
}
expect() { # expect NAME PATTERN...: every pattern in one finding
	f=$(findings "$1" | sed 's/},{/}\n{/g')
	for p in "$@"; do
		[ "$p" = "$1" ] && continue
		f=$(echo "$f" | grep -F "$p")
	done
	if [ -n "$f" ]; then
		step "$1" PASS "$(echo "$f" | head -n1 | grep -o '"message":"[^"]*"')"
	else
		step "$1" FAIL "$(head -c 800 "$out/$1.json") $(head -c 300 "$out/$1.err")"
	fi
}
tamper() { # tamper COMMAND [ARG]: run it in the guest, wait for its answer
	n=$(grep -c "TAMPER-DONE $1 " "$out/guest.log")
	echo "$*" >&3
	if wait_for 60 sh -c "[ \$(grep -c 'TAMPER-DONE $1 ' '$out/guest.log') -gt $n ]" &&
		tr -d '\r' <"$out/guest.log" | grep "TAMPER-DONE $1 " | tail -n1 | grep -q 'rc=0'; then
		step "guest-$1" PASS
	else
		step "guest-$1" FAIL "$(tr -d '\r' <"$out/guest.log" | grep "TAMPER-DONE $1 " | tail -n1)"
	fi
}

snapshot "$base" && step baseline-dump PASS || step baseline-dump FAIL "no answer from the monitor"
integrity clean-absolute "$base"
clean clean-absolute
sleep 5 # the guest keeps churning
snapshot "$dump"
integrity clean-later "$dump" --against "$base"
clean clean-later

tamper hide_pid
snapshot "$dump"
integrity hide-pid "$dump" --against "$base"
expect hide-pid '"kind":"hidden_task"' "\"index\":$hide," '"name":"vmi-hideme"'
tamper unhide_pid

tamper hook_syscall 39
snapshot "$dump"
integrity hook-syscall "$dump" --against "$base"
expect hook-syscall '"kind":"syscall_hook"' '"index":39,' '"check":"sys_call_table"' \
	'"severity":"critical"' '[vmi_tamper]'
tamper unhook_syscall

tamper poke __x64_sys_pivot_root
snapshot "$dump"
integrity poke-text "$dump" --against "$base"
expect poke-text '"kind":"text_modified"' '__x64_sys_pivot_root'
tamper unpoke

tamper hide_module
snapshot "$dump"
integrity hide-module "$dump" --against "$base"
expect hide-module '"kind":"hidden_module"' '"name":"vmi_tamper"' '"severity":"critical"'
tamper unhide_module

# LSTAR is a vCPU register, not memory: a dump cannot show it. vminsight.ko makes the guest's
# writes of it exit (MSR permission map): the daemon reports the write as it happens, with
# the RIP of the WRMSR. The guest keeps working through the stub, and the undo.
sock=/tmp/vminsightd.sock
"$P/vminsightd" --qemu-pid "$qemu" --vm-name lab-guest --output "$out/events-msr.jsonl" \
	--control "$sock" 2>>"$out/daemon.err" &
daemon=$!
vmctl() { "$P/vminsightctl" --socket "$sock" "$@"; }
intercepting() { vmctl status 2>/dev/null | grep -q 'entry MSRs intercept'; }
if wait_for 60 intercepting; then
	step msr-intercept PASS "$(vmctl status | grep '^traps')"
else
	step msr-intercept FAIL "$(vmctl status 2>&1 | head -c 600)"
fi
# A WRMSR the CPU refuses (non-canonical LSTAR, #GP in the guest) is a write too: recorded as
# faulted, and no finding (the MSR kept its value).
tamper lstar_bad
tamper lstar
# The finding: LSTAR, intercepted, the writer's RIP a kernel address.
lstar_hook() { grep '"action":"guest-tampered"' "$out/events-msr.jsonl" 2>/dev/null | grep -F '"target":"LSTAR"'; }
if wait_for 30 lstar_hook >/dev/null && lstar_hook | grep -F '"intercepted":true' |
	grep -q '"writer_rip":"0xffff'; then
	step msr-lstar-write PASS "$(lstar_hook | head -n1 | grep -o '"writer_rip":"[^"]*"')"
else
	step msr-lstar-write FAIL "$(grep guest-tampered "$out/events-msr.jsonl" | head -c 600)"
fi
tamper unlstar
kill -TERM "$daemon"
wait_for 20 dead "$daemon" && wait "$daemon"
rc=$?
# Its final figures: the three writes (refused, hook, undo) intercepted, the refused one as
# faulted, one finding (neither the refused write nor the undo is one).
stats=$(grep '"action":"vm-monitor-stats"' "$out/events-msr.jsonl" | tail -n1)
writes=$(echo "$stats" | sed -n 's/.*"msr_writes_intercepted":\([0-9]*\).*/\1/p')
faulted=$(echo "$stats" | sed -n 's/.*"msr_writes_faulted":\([0-9]*\).*/\1/p')
if [ "$rc" = 0 ] && [ "${writes:-0}" -ge 3 ] && [ "${faulted:-0}" = 1 ] &&
	echo "$stats" | grep -q '"tamper_findings":1[,}]'; then
	step msr-daemon PASS "$writes writes intercepted, $faulted faulted"
else
	step msr-daemon FAIL "rc=$rc $(echo "$stats" | grep -o '"msr[^,]*\|"tamper_findings":[0-9]*' | tr '\n' ' ')"
fi

snapshot "$dump"
integrity clean-after "$dump" --against "$base"
clean clean-after

echo quit >&3
wait_for 60 in_file "$out/guest.log" GUEST-SCENARIO-DONE &&
	step guest-done PASS "$(tr -d '\r' <"$out/guest.log" | grep TAMPER-RMMOD)" ||
	step guest-done FAIL "guest did not finish"
exec 3>&-
kill -KILL "$qemu" 2>/dev/null
wait "$qemu" 2>/dev/null
kill "$mreader" "$creader" 2>/dev/null
rm -f "$base" "$dump" "$mon.in" "$mon.out" "$ctl.in" "$ctl.out"
rmmod vminsight && step rmmod PASS || step rmmod FAIL "module busy"
dmesg >"$out/dmesg.txt"
exit "$failed"
