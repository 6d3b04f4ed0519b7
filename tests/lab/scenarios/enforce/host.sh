#!/bin/sh
# Lab host side of the enforce scenario: rule actions on a live guest, driven through
# vminsightctl. (1) deny rules are enforced by the module (exec under /tmp, module loading);
# (2) a dump_memory rule writes an ELF core that vminsight-inspect reads; (3) a bad policy
# reloaded over the control socket is refused whole and enforcement goes on; (4) a monitor-mode
# policy stops enforcing, and a pause_vm rule pauses the VM through QMP until
# `vminsightctl resume`. check compares the guest's rounds with the events.
set -u
# shellcheck source=../../lib.sh
. "$LAB_SCENARIO/lib.sh"

sock=/tmp/vmi-ctl.sock
ctl() { "$P/vminsightctl" --socket "$sock" "$@"; }
rounds() { grep -c '^ENFORCE round=' "$out/guest.log"; }
# Round N's line is whole once the heartbeat printed after it has begun.
round_done() { grep -q "^HEARTBEAT $1" "$out/guest.log"; }
round() { grep "^ENFORCE round=$1 " "$out/guest.log" | tail -1; }
# wait_round N: round N finished; prints it
wait_round() { wait_for 60 round_done "$1" && round "$1"; }
mark() { echo "$1 $(rounds)" >>"$out/marks.txt"; } # guest rounds done when a phase began

insmod "$P/vminsight.ko" && step load PASS || step load FAIL insmod
: >"$out/marks.txt"
start_guest "$out/guest.log" -qmp unix:/tmp/vmi-qmp.sock,server=on,wait=off -uuid 6f2c1b2a-0000-4000-8000-0000000000aa
wait_for 30 has_vm_fd "$qemu" || step qemu-vm FAIL "no KVM VM fd in qemu"
wait_for 120 in_file "$out/guest.log" '^ENFORCE round=' || step guest-rounds FAIL "no rounds"

cp "$LAB_SCENARIO/rules-enforce.yaml" /tmp/rules.yaml
# The feed: every event also goes through the spool to an ECS file sink.
printf '{"spool": {"dir": "/tmp/spool"}, "sinks": [{"name": "ecs-file", "type": "file", "path": "%s"}]}\n' \
	"$out/feed-ecs.jsonl" >/tmp/feed.json
"$P/vminsightd" --qemu-pid "$qemu" --vm-name lab-guest --output "$out/events.jsonl" \
	--rescan-interval-ms 200 --policy /tmp/rules.yaml --control "$sock" \
	--feed-config /tmp/feed.json --dump-dir /tmp/dumps 2>>"$out/daemon.err" &
daemon=$!
wait_for 60 in_file "$out/events.jsonl" '"action":"vm-attached"' || step attach FAIL "no vm-attached"

# 1. Denials: the second full round after attach felt them.
mark enforce
r=$(($(rounds) + 2))
line=$(wait_round "$r")
case $line in
*tmp_exec=126*insmod=1*Operation_not_permitted*canary=42*) step deny PASS "$line" ;;
*) step deny FAIL "round $r: $line" ;;
esac
[ "$(stat -c %a "$sock" 2>/dev/null)" = 600 ] && step control-socket-mode PASS ||
	step control-socket-mode FAIL "$(stat -c %a "$sock" 2>&1)"
if ctl status >"$out/status.txt" 2>&1 && grep -q 'exec control deny-list' "$out/status.txt" &&
	grep -q 'lab-guest 6f2c1b2a-0000-4000-8000-0000000000aa' "$out/status.txt"; then
	step status PASS "$(tr '\n' ';' <"$out/status.txt")"
else
	step status FAIL "$(cat "$out/status.txt")"
fi

# 2. The forensic dump, read back with no profile, no System.map: the guest's shell is in it.
if wait_for 90 in_file "$out/events.jsonl" '"action":"memory-dump-written"'; then
	ev=$(grep '"action":"memory-dump-written"' "$out/events.jsonl" | head -1)
	dump=$(echo "$ev" | sed 's/.*"path":"\([^"]*\)".*/\1/')
	cr3=$(echo "$ev" | sed 's/.*"cr3":"\([^"]*\)".*/\1/')
	shell=$(sed -n 's/^ENFORCE shell pid=\([0-9]*\).*/\1/p' "$out/guest.log" | head -1)
	ls -l "$dump" >"$out/dump.txt"
	if "$P/vminsight-inspect" ps --snapshot "$dump" --cr3 "$cr3" --json >"$out/dump-ps.json" 2>"$out/dump-ps.err" &&
		grep -q "\"pid\":$shell," "$out/dump-ps.json"; then
		step dump-memory PASS "$(cat "$out/dump.txt"); shell pid $shell listed"
	else
		step dump-memory FAIL "$dump cr3 $cr3 shell $shell: $(head -c 300 "$out/dump-ps.err")"
	fi
	rm -f "$dump"
else
	step dump-memory FAIL "no memory-dump-written event: $(grep -o '"action":"memory-dump-[a-z]*"[^}]*' "$out/events.jsonl")"
fi

# 3. A bad policy over the control socket: refused whole, with file:line:col; still denying.
cp "$LAB_SCENARIO/rules-broken.yaml" /tmp/rules.yaml
if ctl policy reload >"$out/reload-bad.txt" 2>&1; then
	step reload-bad FAIL "accepted: $(cat "$out/reload-bad.txt")"
elif grep -q '/tmp/rules.yaml:2:.*nosuchfield' "$out/reload-bad.txt" &&
	grep -q "/tmp/rules.yaml:6:14: rule 'Not enforceable': action deny: 'proc.pname =' cannot be checked" "$out/reload-bad.txt"; then
	step reload-bad PASS "$(tr '\n' ';' <"$out/reload-bad.txt")"
else
	step reload-bad FAIL "$(cat "$out/reload-bad.txt")"
fi
mark after-bad-reload
r=$(($(rounds) + 2))
line=$(wait_round "$r")
case $line in
*tmp_exec=126*insmod=1*) step still-enforcing PASS "$line" ;;
*) step still-enforcing FAIL "round $r: $line" ;;
esac

# 4. Monitor mode and pause_vm, scoped: the pause rule applies to lab-*, "Never here" does not.
cp "$LAB_SCENARIO/rules-monitor.yaml" /tmp/rules.yaml
if ctl policy reload >"$out/reload-monitor.txt" 2>&1; then
	step reload-monitor PASS "$(cat "$out/reload-monitor.txt")"
else
	step reload-monitor FAIL "$(cat "$out/reload-monitor.txt")"
fi
mark monitor
if wait_for 60 in_file "$out/events.jsonl" '"action":"vm-paused"'; then
	hb=$(heartbeats)
	# Paused: no heartbeat for 3 s where there is one a second.
	if wait_for 3 beating "$hb"; then
		step vm-paused FAIL "the guest went on beating"
	else
		ctl status >"$out/status-paused.txt" 2>&1
		grep -q 'paused      yes' "$out/status-paused.txt" && step vm-paused PASS ||
			step vm-paused FAIL "$(cat "$out/status-paused.txt")"
	fi
	ctl resume >"$out/resume.txt" 2>&1 && wait_for 20 beating "$hb" &&
		step resume PASS "$(cat "$out/resume.txt")" || step resume FAIL "$(cat "$out/resume.txt")"
else
	step vm-paused FAIL "no vm-paused event"
fi
r=$(($(rounds) + 2))
line=$(wait_round "$r")
case $line in
*tmp_exec=42*canary=42*) step monitor-mode PASS "$line" ;;
*) step monitor-mode FAIL "round $r: $line" ;;
esac
mark end

kill -TERM "$daemon"
wait_for 20 dead "$daemon" && wait "$daemon"
rc=$?
[ "$rc" = 0 ] && step detach PASS || step detach FAIL "daemon rc=$rc"
[ ! -e "$sock" ] && step control-socket-removed PASS || step control-socket-removed FAIL

# 5. kill -9 mid-flow, then a restart on the same spool: the feed resumes where its sink was.
feed_daemon() { # feed_daemon OUTPUT: a daemon on the same spool and feed as before
	"$P/vminsightd" --qemu-pid "$qemu" --vm-name lab-guest --output "$1" \
		--rescan-interval-ms 200 --policy "$LAB_SCENARIO/rules-enforce.yaml" \
		--feed-config /tmp/feed.json --dump-dir /tmp/dumps 2>>"$out/daemon.err" &
	daemon=$!
	wait_for 60 in_file "$1" '"action":"vm-attached"'
}
if feed_daemon "$out/events-crash.jsonl"; then
	r=$(($(rounds) + 2))
	wait_round "$r" >/dev/null
	kill -KILL "$daemon"
	wait "$daemon" 2>/dev/null
	if feed_daemon "$out/events-restart.jsonl"; then
		r=$(($(rounds) + 2))
		wait_round "$r" >/dev/null
		kill -TERM "$daemon"
		wait_for 20 dead "$daemon" && wait "$daemon" && step feed-crash-restart PASS ||
			step feed-crash-restart FAIL "daemon rc=$?"
	else
		step feed-crash-restart FAIL "no restart"
	fi
else
	step feed-crash-restart FAIL "no attach"
fi
guest_beats_on && step guest-survives PASS || step guest-survives FAIL "no heartbeat"
kill -KILL "$qemu"
wait "$qemu" 2>/dev/null
rmmod vminsight && step rmmod PASS || step rmmod FAIL "module busy"
dmesg >"$out/dmesg.txt"
exit "$failed"
