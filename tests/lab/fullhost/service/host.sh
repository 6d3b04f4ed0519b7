#!/bin/sh
# Issue 7 end to end on the full host (systemd, libvirtd, Debian's QEMU), driven only by what
# an operator types: VMInsight installed from its own .deb, the service run by systemd,
# monitoring toggled per domain with vminsightctl, domains driven with virsh.
#   web: enable → its process events reach the sink; disable → they stop; destroy + start →
#        re-attached; save → detached, restore → re-attached; a pause_vm rule pauses it
#        through libvirt until vminsightctl resume; systemctl restart vminsightd →
#        re-attached; libvirtd restarted → still followed.
#   db:  runs throughout, never enabled: not one event names it.
# Every wait is a bounded poll on a file or a command; "no more events" is judged over the
# guest's own next heartbeats, not a sleep.
. "$LAB_SCENARIO/lib.sh" # step, wait_for, in_file, uptime_ms; $out=$LAB_OUT
P=$LAB_PAYLOAD
VIRSH="virsh -q -c qemu:///system"
EV=/var/log/vminsight/events.jsonl
t0=$(uptime_ms)
mark() { echo "$1 $(($(uptime_ms) - t0)) ms" >>"$out/timings.txt"; }

# Events of one domain in the sink (ECS: the guest is host.name), by action.
n_events() { # DOMAIN [ACTION]
	grep -F "\"host\":{\"name\":\"$1\"" "$EV" 2>/dev/null | grep -cF "\"action\":\"${2:-}"
}
more_events() { [ "$(n_events "$1" "${3:-}")" -gt "$2" ]; }
beats() { grep -c HEARTBEAT "$out/$1.console.log" 2>/dev/null || echo 0; }
beats_past() { [ "$(beats "$1")" -ge "$2" ]; }
ctl() { vminsightctl "$@"; }

# 1. Install the package and the module built for this kernel (DKMS builds it on a real host;
#    here the module comes prebuilt, as a DKMS build would leave it).
dpkg -i "$P"/vminsight_*.deb >"$out/dpkg.log" 2>&1 && step install-deb PASS "$(dpkg-query -W vminsight)" ||
	step install-deb FAIL "$(tail -n5 "$out/dpkg.log")"
mkdir -p "/lib/modules/$KVER/updates" && cp "$P/vminsight.ko" "/lib/modules/$KVER/updates/" && depmod -a &&
	step module-installed PASS "$(modinfo -F vermagic vminsight)" || step module-installed FAIL
systemctl is-enabled -q vminsightd && step service-enabled PASS || step service-enabled FAIL "$(systemctl is-enabled vminsightd)"
mark installed

# 2. Two domains, running before the daemon starts.
for d in web db; do
	libvirt_domain_xml "$d" "$out/$d.console.log" >"/tmp/$d.xml"
	$VIRSH define "/tmp/$d.xml" >/dev/null && $VIRSH start "$d" >/dev/null 2>"$out/$d.start.err" &&
		step "start-$d" PASS || step "start-$d" FAIL "$(cat "$out/$d.start.err")"
done
for d in web db; do
	wait_for 240 in_file "$out/$d.console.log" HEARTBEAT && step "guest-$d" PASS ||
		step "guest-$d" FAIL "no heartbeat"
done
mark guests-up

# 3. The service: Type=notify, so start returns once it serves.
systemctl start vminsightd 2>"$out/start.err" && systemctl is-active -q vminsightd &&
	step service-start PASS "$(systemctl show -p StatusText --value vminsightd)" ||
	step service-start FAIL "$(cat "$out/start.err"; systemctl status --no-pager vminsightd | tail -n 15)"
systemctl show -p WatchdogUSec -p NRestarts -p Type vminsightd >"$out/service-props.txt"
mark service-started

# 4. enable web: attached, and its processes reach the sink within seconds.
t=$(uptime_ms)
ctl enable web >"$out/enable.txt" 2>&1 && step enable PASS "$(cat "$out/enable.txt")" ||
	step enable FAIL "$(cat "$out/enable.txt")"
if wait_for 60 more_events web 0 process-; then
	step web-events PASS "first process event $(($(uptime_ms) - t)) ms after enable"
else
	step web-events FAIL "no process event for web; $(ctl domains 2>&1 | tr '\n' ';')"
fi
mark web-events
# A live tail with a filter, as an operator would watch one domain.
vminsightctl events --follow --domain web --filter event.action=process-exited \
	>"$out/follow.jsonl" 2>"$out/follow.err" &
follower=$!
wait_for 30 in_file "$out/follow.jsonl" '"process-exited"' &&
	! grep -v '"action":"process-exited"' "$out/follow.jsonl" | grep -q . &&
	step events-follow PASS "$(wc -l <"$out/follow.jsonl") lines, all process-exited of web" ||
	step events-follow FAIL "$(head -c 300 "$out/follow.jsonl" "$out/follow.err")"
kill "$follower" 2>/dev/null
ctl domains >"$out/domains.txt" 2>&1
ctl --json domains >"$out/domains.json" 2>&1
ctl ps web >"$out/ps-web.txt" 2>&1
grep -q 'vmi-heartbeat\|sleep' "$out/ps-web.txt" && step ps PASS "$(wc -l <"$out/ps-web.txt") lines" ||
	step ps FAIL "$(head -c 300 "$out/ps-web.txt")"
ctl status >"$out/status.txt" 2>&1
grep -E '^web +running +on +- +yes' "$out/domains.txt" >/dev/null && grep -E '^db +running +off +- +no' "$out/domains.txt" >/dev/null &&
	step domains PASS || step domains FAIL "$(cat "$out/domains.txt")"

# 5. disable web: detached; over the guest's next 5 heartbeats (5 new processes) no event.
#    (lib.sh's wait_for uses $n: counts here have other names.)
ctl disable web >"$out/disable.txt" 2>&1 || step disable FAIL "$(cat "$out/disable.txt")"
if wait_for 30 more_events web 0 vm-detached; then
	before=$(n_events web)
	b0=$(beats web)
	wait_for 60 beats_past web $((b0 + 5))
	[ "$(n_events web)" = "$before" ] && step disable PASS "no event over 5 heartbeats" ||
		step disable FAIL "$(($(n_events web) - before)) events after detaching"
else
	step disable FAIL "no vm-detached for web"
fi

# 6. enable again, then destroy and start: attached again by itself.
ctl enable web >/dev/null 2>&1
wait_for 60 more_events web 1 vm-attached && step re-enable PASS || step re-enable FAIL
$VIRSH destroy web >/dev/null && wait_for 30 more_events web 1 vm-detached ||
	step destroy FAIL "no vm-detached after virsh destroy"
a=$(n_events web vm-attached)
$VIRSH start web >/dev/null 2>&1
wait_for 120 more_events web "$a" vm-attached && step restart-domain PASS "re-attached after virsh destroy/start" ||
	step restart-domain FAIL "not re-attached; $(ctl domains 2>&1 | tr '\n' ';')"
p=$(n_events web process-)
wait_for 120 more_events web "$p" process- && step restart-domain-events PASS ||
	step restart-domain-events FAIL "no process events after the restart"
mark domain-restarted

# 6b. virsh save detaches (QEMU ends); virsh restore is a new QEMU: attached again.
d0=$(n_events web vm-detached)
a0=$(n_events web vm-attached)
$VIRSH save web /var/lib/libvirt/qemu/save/web.save >/dev/null 2>"$out/save.err" &&
	wait_for 120 more_events web "$d0" vm-detached && step save PASS ||
	step save FAIL "$(cat "$out/save.err")"
$VIRSH restore /var/lib/libvirt/qemu/save/web.save >/dev/null 2>"$out/restore.err" &&
	wait_for 120 more_events web "$a0" vm-attached && step restore PASS "re-attached after virsh restore" ||
	step restore FAIL "$(cat "$out/restore.err")"
rm -f /var/lib/libvirt/qemu/save/web.save
mark saved-restored

# 6c. A pause_vm rule in a policy of its own, named by the domain's metadata: libvirt pauses
#     web (virsh sees it paused, its heartbeat stops) until `vminsightctl resume web`. The
#     policy also selects VMs by a label set in the same metadata write, so the rule cannot
#     fire in web's current attachment before the new one (a VM paused between the two could
#     not be attached again until resumed).
cat >/etc/vminsight/policies/lab-pause.yaml <<'YAML'
- policy: lab-pause
  metadata: {lab-pause: "yes"}
- rule: Pause on heartbeat
  condition: evt.type = exec and proc.name = sleep
  output: "pause (cmdline=%proc.cmdline)"
  priority: critical
  action: pause_vm
  rate_limit: 1/h
YAML
domstate() { $VIRSH domstate web 2>/dev/null | head -n1; }
is_state() { [ "$(domstate)" = "$1" ]; }
ctl policy reload >"$out/reload-pause.txt" 2>&1 && ctl enable web --policy lab-pause --label lab-pause=yes >>"$out/reload-pause.txt" 2>&1 ||
	step pause-policy FAIL "$(cat "$out/reload-pause.txt")"
if wait_for 60 more_events web 0 vm-paused && wait_for 10 is_state paused; then
	b0=$(beats web)
	! wait_for 3 beats_past web $((b0 + 1)) && step pause-vm PASS "virsh domstate: $(domstate)" ||
		step pause-vm FAIL "paused, but the guest went on beating"
	ctl resume web >"$out/resume.txt" 2>&1 && wait_for 10 is_state running &&
		wait_for 20 beats_past web $((b0 + 1)) && step resume-vm PASS "$(cat "$out/resume.txt")" ||
		step resume-vm FAIL "$(cat "$out/resume.txt"); virsh domstate: $(domstate)"
else
	step pause-vm FAIL "no vm-paused for web; virsh domstate: $(domstate); $(grep -F '"host":{"name":"web"' "$EV" | grep -F 'Pause on heartbeat' | tail -c 400)"
fi
rm -f /etc/vminsight/policies/lab-pause.yaml
ctl enable web >/dev/null 2>&1 && ctl policy reload >/dev/null 2>&1
mark paused-resumed

# 7. systemctl restart vminsightd: detached at stop, attached again at start.
a=$(n_events web vm-attached)
systemctl restart vminsightd 2>"$out/restart.err" &&
	wait_for 60 more_events web "$a" vm-attached && step restart-service PASS "$(systemctl show -p StatusText --value vminsightd)" ||
	step restart-service FAIL "$(cat "$out/restart.err")"

# 8. libvirtd restarts: the daemon says so, reconnects, and still follows the domain: a
#    metadata change made after the restart reaches it (the attachment itself never needed
#    libvirtd).
connected() { grep -c '"action":"libvirt-connected"' "$EV"; }
reconnected() { [ "$(connected)" -gt "$1" ]; }
disabled() { grep -F '"host":{"name":"web"' "$EV" | grep -c '"reason":"monitoring-disabled"'; }
more_disabled() { [ "$(disabled)" -gt "$1" ]; }
c0=$(connected)
systemctl restart libvirtd
if wait_for 90 reconnected "$c0"; then
	grep -q '"action":"libvirt-disconnected"' "$EV" && step libvirtd-restart PASS ||
		step libvirtd-restart FAIL "reconnected without saying it was lost"
	d0=$(disabled)
	ctl disable web >/dev/null 2>&1
	wait_for 30 more_disabled "$d0" && step events-after-libvirtd-restart PASS ||
		step events-after-libvirtd-restart FAIL "disable after the libvirtd restart was not seen"
else
	step libvirtd-restart FAIL "no libvirt-connected after restarting libvirtd"
fi

# 8b. The watchdog: a daemon whose event loop stops is killed and restarted by systemd.
#     (WatchdogSec shortened for the test with a runtime drop-in.)
systemctl show -p NRestarts --value vminsightd >"$out/nrestarts.txt"
restarts() { systemctl show -p NRestarts --value vminsightd; }
restarted() { [ "$(restarts)" -gt "$1" ] && systemctl is-active -q vminsightd; }
mkdir -p /run/systemd/system/vminsightd.service.d
printf '[Service]\nWatchdogSec=4s\n' >/run/systemd/system/vminsightd.service.d/50-lab-watchdog.conf
systemctl daemon-reload && systemctl restart vminsightd
r0=$(restarts)
kill -STOP "$(systemctl show -p MainPID --value vminsightd)"
if wait_for 60 restarted "$r0"; then
	journalctl -b -u vminsightd --no-pager | grep -q 'Watchdog timeout' &&
		step watchdog PASS "stopped loop killed and restarted" ||
		step watchdog FAIL "restarted, but not by the watchdog"
else
	step watchdog FAIL "not restarted after SIGSTOP: $(systemctl show -p ActiveState -p NRestarts vminsightd | tr '\n' ' ')"
fi
rm -rf /run/systemd/system/vminsightd.service.d && systemctl daemon-reload

# 9. db was never enabled: not one event names it.
[ "$(n_events db)" = 0 ] && step db-silent PASS || step db-silent FAIL "$(n_events db) events for db"

# 10. What systemd thinks of the unit.
systemd-analyze security --no-pager vminsightd.service >"$out/security.txt" 2>&1
step security PASS "$(tail -n1 "$out/security.txt")"
journalctl -b -u vminsightd --no-pager >"$out/vminsightd.journal.txt" 2>&1
cp "$EV" "$out/events.jsonl"
systemctl stop vminsightd
# Both guests down before their console logs are shipped (a file still growing is torn).
for d in web db; do $VIRSH destroy "$d" >/dev/null 2>&1; done
mark done
exit "$failed"
