#!/bin/sh
# Lab host side of the tamper scenario. The guest (two vCPUs) loads vmi_tamper.ko (test
# tooling) and, one step at a time on the host's command, hides a process from the task list,
# hides it again from the task list and from its parent's children list (then only the PID
# hash shows it, and a vCPU while it runs), replaces a sys_call_table entry, overwrites a
# byte of kernel text, swaps tcp_prot.getsockopt (writable data) for a wrapper of its own,
# unlinks itself from the module list, and rewrites LSTAR; each step is undone before the next.
# Two views judge every step:
# - vminsightd, attached with the default policy, must raise the step's alert within 5 s of
#   the guest reporting the step done (alert-* steps; latencies in metrics.txt), naming the
#   process, syscall number, symbol, module or MSR. Before the first step the guest runs a
#   clean busy workload for $VMI_SCENARIO_SOAK_SECONDS (default 300: process churn, Debian's
#   dummy.ko loaded and unloaded, CPU 1 offline and back) that must raise no tamper event.
#   The scenario's forensics policy asks for a memory dump on the first finding.
# - A memory dump (HMP dump-guest-memory) after each step, swept by `vminsight-inspect
#   integrity` against the baseline dump: the same findings, from memory alone (LSTAR is a
#   register: the daemon alone sees it, at the guest's WRMSR, which the module intercepts).
# Each step appends "STEP name PASS|FAIL detail" to $LAB_OUT/steps.txt; check judges the
# daemon's events afterwards (alerts' fields, no stray findings).
set -u
# shellcheck source=../../lib.sh
. "$LAB_SCENARIO/lib.sh"
P=$LAB_PAYLOAD
base=/tmp/base.elf
dump=/tmp/now.elf
mon=/tmp/mon
ctl=/tmp/ctl
sock=/tmp/vminsightd.sock
events=$out/events.jsonl
soak_seconds=${VMI_SCENARIO_SOAK_SECONDS:-300}

extra=/tmp/guest-extra
rm -rf "$extra" && mkdir -p "$extra/modules"
if cp "$P/guest-modules/vmi_tamper.ko" "$P/guest-modules/dummy.ko" "$extra/modules/" &&
	(cd "$extra" && find modules | cpio -o -H newc >/tmp/guest-extra.cpio 2>/dev/null) &&
	cat "$LAB_GUEST_INITRD" /tmp/guest-extra.cpio >/tmp/guest-initrd.cpio; then
	LAB_GUEST_INITRD=/tmp/guest-initrd.cpio
	step guest-modules PASS "vmi_tamper.ko dummy.ko"
else
	step guest-modules FAIL "no $P/guest-modules/vmi_tamper.ko or dummy.ko"
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
GUEST_SMP=2 start_guest "$out/guest.log" -qmp unix:/tmp/vmi-qmp.sock,server=on,wait=off -chardev "pipe,id=mon0,path=$mon" \
	-mon chardev=mon0,mode=readline -chardev "pipe,id=ctl0,path=$ctl" -serial chardev:ctl0
exec 3>"$ctl.in"

wait_for 240 in_file "$out/guest.log" TAMPER-READY &&
	step guest-ready PASS || step guest-ready FAIL "guest did not load vmi_tamper"
hide=$(tr -d '\r' <"$out/guest.log" | sed -n 's/^TAMPER-HIDEME pid=\([0-9]*\)$/\1/p')

# The daemon: default policy, plus a rule that dumps memory on the first tamper finding.
mkdir -p /tmp/dumps
# The daemon's output goes through a filter that keeps what this script and check read: the
# soak's syscall and process events (tens of thousands) would take minutes to ship.
rm -f /tmp/events.pipe && mkfifo /tmp/events.pipe
awk '/"guest-tampered"|"kind":"alert"|"vm-monitor-stats"|"integrity-|"memory-dump-|"vm-attached"/ {
	print; fflush() } END { print "events_total=" NR >>"/tmp/events.total" }' </tmp/events.pipe >"$events" &
filter=$!
"$P/vminsightd" --qemu-pid "$qemu" --vm-name lab-guest --output /tmp/events.pipe \
	--policy "$P/policies/default.yaml" --policy "$LAB_SCENARIO/forensics.yaml" \
	--dump-dir /tmp/dumps --control "$sock" 2>>"$out/daemon.err" &
daemon=$!
if wait_for 180 in_file "$events" '"action":"integrity-baseline"'; then
	step daemon-baseline PASS "$(grep -o '"baseline_ms":[0-9.]*' "$events" | head -n1)"
else
	step daemon-baseline FAIL "$(grep -o '"action":"integrity-[a-z]*"[^}]*' "$events" | head -n2)"
fi
intercepting() { "$P/vminsightctl" --socket "$sock" status 2>/dev/null | grep -q 'entry MSRs intercept'; }
if wait_for 60 intercepting; then
	step msr-intercept PASS "$("$P/vminsightctl" --socket "$sock" status | grep '^traps')"
else
	step msr-intercept FAIL "$("$P/vminsightctl" --socket "$sock" status 2>&1 | head -c 600)"
fi
sweeps() {
	"$P/vminsightctl" --socket "$sock" --json stats >"$out/stats.json" 2>>"$out/ctl.err"
	grep -o '"sweeps": *[0-9]*' "$out/stats.json" | head -n1 | tr -dc 0-9
}
mark() { echo "$1 $(wc -l <"$events")" >>"$out/marks.txt"; }
: >"$out/marks.txt"

dumps=0
snapshot() { # snapshot FILE: dump guest memory (the VM pauses for the dump)
	rm -f "$1"
	dumps=$((dumps + 1))
	echo "dump-guest-memory $1" >"$mon.in"
	echo "info status" >"$mon.in"
	echo "host.sh: dump $dumps to $1"
	# One "VM status" line per dump: wait for this dump's.
	wait_for 100 sh -c "[ \$(grep -c 'VM status' '$out/monitor.log') -ge $dumps ]"
}

# integrity NAME SNAPSHOT [OPTIONS]: one sweep of a dump, JSON in $out/NAME.json.
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
	if wait_for "${wait_done:-60}" sh -c "[ \$(grep -c 'TAMPER-DONE $1 ' '$out/guest.log') -gt $n ]" &&
		tr -d '\r' <"$out/guest.log" | grep "TAMPER-DONE $1 " | tail -n1 | grep -q 'rc=0'; then
		step "guest-$1" PASS
	else
		step "guest-$1" FAIL "$(tr -d '\r' <"$out/guest.log" | grep "TAMPER-DONE $1 " | tail -n1)"
	fi
}

# alert NAME RULE PATTERN: after a step, the daemon's alert of RULE whose line holds PATTERN
# must come within 5 s of the guest's TAMPER-DONE (which this host sees within ~0.1 s). Only
# the events written since the step began are searched (from byte $from on).
new_alert() { tail -c +"$((from + 1))" "$events" | grep '"kind":"alert"' | grep -F "\"name\":\"$1\"" | grep -qF "$2"; }
alert() {
	done_ms=$(uptime_ms)
	while ! new_alert "$2" "$3" && [ $(($(uptime_ms) - done_ms)) -le 5000 ]; do
		sleep 0.1
	done
	ms=$(($(uptime_ms) - done_ms))
	if new_alert "$2" "$3" && [ "$ms" -le 5000 ]; then
		echo "alert_${1}_ms=$ms command_to_alert_ms=$((${ms} + done_ms - cmd_ms))" >>"$out/metrics.txt"
		step "alert-$1" PASS "$2 ${ms} ms after the step ($((ms + done_ms - cmd_ms)) ms after the command)"
	else
		step "alert-$1" FAIL "no \"$2\" alert with $3 within 5 s (${ms} ms); tamper events: $(grep -c '"action":"guest-tampered"' "$events")"
	fi
}
# daemon_step NAME COMMAND ARG RULE PATTERN: the step, and the daemon's alert for it.
daemon_step() {
	from=$(stat -c %s "$events")
	mark "$1"
	cmd_ms=$(uptime_ms)
	tamper "$2" ${3:+"$3"}
	alert "$1" "$4" "$5"
}

# 1. A clean, busy guest: no finding, while the daemon sweeps.
s0=$(sweeps)
mark soak
wait_done=$((soak_seconds + 120)) tamper soak "$soak_seconds"
mark soak-end
s1=$(sweeps)
n=$(grep -c '"action":"guest-tampered"' "$events")
if [ "$n" = 0 ] && [ "${s1:-0}" -gt "${s0:-0}" ]; then
	step soak-clean PASS "$(tr -d '\r' <"$out/guest.log" | grep TAMPER-SOAK) sweeps $s0..$s1"
else
	step soak-clean FAIL "$n tamper events, sweeps ${s0:-?}..${s1:-?}: $(grep -m2 guest-tampered "$events")"
fi

snapshot "$base" && step baseline-dump PASS || step baseline-dump FAIL "no answer from the monitor"
integrity clean-absolute "$base"
clean clean-absolute

# 2. Each step: the daemon's alert, then the dump's finding; then undo.
daemon_step hide-pid hide_pid "" "Hidden Process" "name=vmi-hideme"
# The first finding's forensic dump (the VM stopped while it is written) ends before the next
# step is timed.
wait_for 180 in_file "$events" '"action":"memory-dump-' ||
	step forensic-dump FAIL "no memory-dump event within 180 s"
snapshot "$dump"
integrity hide-pid "$dump" --against "$base"
expect hide-pid '"kind":"hidden_task"' "\"index\":$hide," '"name":"vmi-hideme"'
tamper unhide_pid
# The daemon alerts when a finding appears: before the same process is hidden again, it must
# have swept it back on the list (two sweeps: one begun after the undo).
swept() { [ "$(sweeps)" -ge $(($1 + 2)) ]; }
u0=$(sweeps)
wait_for 30 swept "${u0:-0}" || step hide-pid-undone FAIL "no daemon sweep after unhide_pid"

# Off the process tree too: the PID allocator (init_pid_ns.idr) still has it.
daemon_step hide-pid-deep hide_pid_deep "" "Hidden Process" "name=vmi-hideme"
snapshot "$dump"
integrity hide-pid-deep "$dump" --against "$base"
expect hide-pid-deep '"kind":"hidden_task"' "\"index\":$hide," '"name":"vmi-hideme"' \
	'is in the PID hash but is not on the task list'
tamper unhide_pid

daemon_step hook-syscall hook_syscall 39 "Syscall Table Hooked" 'entry=sys_call_table[39]'
snapshot "$dump"
integrity hook-syscall "$dump" --against "$base"
expect hook-syscall '"kind":"syscall_hook"' '"index":39,' '"check":"sys_call_table"' \
	'"severity":"critical"' '[vmi_tamper]'
tamper unhook_syscall

daemon_step poke-text poke __x64_sys_pivot_root "Kernel Text Modified" '__x64_sys_pivot_root'
snapshot "$dump"
integrity poke-text "$dump" --against "$base"
expect poke-text '"kind":"text_modified"' '__x64_sys_pivot_root'
tamper unpoke

# A function pointer in writable data (.data is not hashed): the pointer itself is checked.
daemon_step hook-fptr hook_fptr "" "Kernel Function Pointer Hijacked" 'pointer=tcp_prot.getsockopt'
snapshot "$dump"
integrity hook-fptr "$dump" --against "$base"
expect hook-fptr '"kind":"pointer_hook"' '"name":"tcp_prot.getsockopt"' '"severity":"critical"' \
	'[vmi_tamper]' '"expected_symbol":"tcp_getsockopt+0x0"'
tamper unhook_fptr

daemon_step hide-module hide_module "" "Hidden Kernel Module" 'module=vmi_tamper'
snapshot "$dump"
integrity hide-module "$dump" --against "$base"
expect hide-module '"kind":"hidden_module"' '"name":"vmi_tamper"' '"severity":"critical"'
tamper unhide_module

# LSTAR is a vCPU register, not memory: only the daemon sees it. vminsight.ko makes the
# guest's writes of it exit (MSR permission map) and the daemon reports the write as it
# happens, with the RIP of the WRMSR (check). A WRMSR the CPU refuses (non-canonical LSTAR,
# #GP in the guest) is recorded as faulted and is no finding: the MSR kept its value.
tamper lstar_bad
daemon_step lstar lstar "" "Syscall Entry Hijacked" 'msr=LSTAR'
tamper unlstar
mark steps-end

snapshot "$dump"
integrity clean-after "$dump" --against "$base"
clean clean-after

# The forensic dump the first finding asked for: written, and it shows the hidden process.
if in_file "$events" '"action":"memory-dump-written"'; then
	# (not $f: expect() uses it)
	fdump=$(grep -o '"path":"/tmp/dumps/[^"]*"' "$events" | head -n1 | cut -d'"' -f4)
	cr3=$(grep '"action":"memory-dump-written"' "$events" | grep -o '"cr3":"0x[0-9a-f]*"' | head -n1 | cut -d'"' -f4)
	integrity forensic-dump "$fdump" ${cr3:+--cr3 "$cr3"}
	expect forensic-dump '"kind":"hidden_task"' "\"index\":$hide,"
	rm -f "$fdump"
else
	step forensic-dump FAIL "no memory-dump-written event: $(grep -o '"action":"memory-dump-[a-z]*"[^}]*' "$events")"
fi

# The daemon's sweep cost on this live guest, for make bench.
sweeps >/dev/null
for k in sweeps baseline_ms mean_sweep_ms max_sweep_ms last_sweep_pages; do
	echo "integrity_$k=$(grep -o "\"$k\": *[0-9.]*" "$out/stats.json" | head -n1 | sed 's/.*: *//')"
done >>"$out/metrics.txt"

# Detach: the daemon's last counters (stats event) go into events.jsonl for check.
kill -TERM "$daemon"
wait_for 30 dead "$daemon" && wait "$daemon"
rc=$?
[ "$rc" = 0 ] && step daemon-exit PASS || step daemon-exit FAIL "daemon rc=$rc"

kill -KILL "$daemon" 2>/dev/null # only if it would not stop: the filter ends with it
wait "$filter"
cat /tmp/events.total >>"$out/metrics.txt"

echo quit >&3
wait_for 60 in_file "$out/guest.log" GUEST-SCENARIO-DONE &&
	step guest-done PASS "$(tr -d '\r' <"$out/guest.log" | grep TAMPER-RMMOD)" ||
	step guest-done FAIL "guest did not finish"
exec 3>&-
kill -KILL "$qemu" 2>/dev/null
wait "$qemu" 2>/dev/null
kill "$mreader" "$creader" 2>/dev/null
rmmod vminsight && step rmmod PASS || step rmmod FAIL "module busy"
dmesg >"$out/dmesg.txt"
rm -f "$base" "$dump" "$mon.in" "$mon.out" "$ctl.in" "$ctl.out"
exit "$failed"
