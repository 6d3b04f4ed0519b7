#!/bin/sh
# Full-host smoke test (runs in the full host under dash, see scripts/lab/README.md):
# systemd reached multi-user, libvirtd runs, /dev/kvm exists, libvirt offers kvm, and two
# libvirt domains (direct kernel boot of the busybox lab guest) run at the same time, are
# destroyed and undefined through virsh. Records libvirt's QEMU command lines.
set -u
# shellcheck source=../../lib.sh
. "$LAB_SCENARIO/lib.sh" # step, wait_for, in_file, uptime_ms; $out=$LAB_OUT
VIRSH="virsh -q -c qemu:///system"
DOMS="vmi-smoke-a vmi-smoke-b"
t0=$(uptime_ms)
mark() { echo "$1 $(($(uptime_ms) - t0)) ms (uptime $(cut -d' ' -f1 /proc/uptime) s)" >>"$out/timings.txt"; }
: >"$out/timings.txt"
mark host.sh-start

# check NAME FAIL-DETAIL COMMAND...: one step from a command's status.
check() {
	name=$1 detail=$2
	shift 2
	if "$@"; then step "$name" PASS; else step "$name" FAIL "$detail"; fi
}
# virsh_step NAME DOMAIN SUBCOMMAND: a virsh call as a step, its stderr as the detail.
virsh_step() {
	if $VIRSH "$3" "$2" >/dev/null 2>"$out/$2.$3.err"; then step "$1" PASS; else step "$1" FAIL "$(cat "$out/$2.$3.err")"; fi
}

# 1. systemd: boot finished (degraded is fine; list what failed), multi-user reached.
state=$(systemctl is-system-running)
systemctl --failed --no-legend --plain >"$out/failed-units.txt"
case "$state" in
running | degraded) step systemd PASS "$state, failed units: $(awk '{printf "%s ", $1}' "$out/failed-units.txt")" ;;
*) step systemd FAIL "is-system-running: $state" ;;
esac
check multi-user "not active" systemctl is-active -q multi-user.target
systemd-analyze time >"$out/systemd-analyze.txt" 2>&1

# 2. libvirtd, kvm
check libvirtd "$(systemctl is-active libvirtd)" systemctl is-active -q libvirtd
check dev-kvm "no /dev/kvm" test -c /dev/kvm
mark virsh-capabilities-start
$VIRSH capabilities >"$out/capabilities.xml" 2>&1
$VIRSH domcapabilities --virttype kvm --arch x86_64 >"$out/domcapabilities-kvm.xml" 2>&1
mark virsh-capabilities-done
check capabilities-kvm "no <domain type='kvm'> in virsh capabilities" \
	grep -q "<domain type='kvm'" "$out/capabilities.xml"
check domcapabilities-kvm "$(head -c 300 "$out/domcapabilities-kvm.xml")" \
	grep -q '<domain>kvm</domain>' "$out/domcapabilities-kvm.xml"

# 3. two domains at once: define, start, wait for each guest's marker.
for d in $DOMS; do
	libvirt_domain_xml "$d" "$out/$d.console.log" >"$out/$d.xml"
	if $VIRSH define "$out/$d.xml" >/dev/null 2>"$out/$d.define.err"; then
		step "define-$d" PASS
	else
		step "define-$d" FAIL "$(cat "$out/$d.define.err")"
	fi
done
mark start
for d in $DOMS; do virsh_step "start-$d" "$d" start; done
mark started
for d in $DOMS; do
	if wait_for 240 in_file "$out/$d.console.log" "GUEST-MARKER domain=$d "; then
		mark "marker-$d"
		uuid=$($VIRSH domuuid "$d")
		seen=$(sed -n "s/.*GUEST-MARKER domain=$d uuid=\([^ ]*\).*/\1/p" "$out/$d.console.log" | tr -d '\r')
		step "marker-$d" PASS "guest uuid $seen"
		check "uuid-$d" "libvirt $uuid, guest $seen" test "$seen" = "$uuid"
	else
		step "marker-$d" FAIL "no marker in 240 s"
	fi
done
check both-running "$($VIRSH list --all)" \
	test "$($VIRSH list --state-running --name | grep -c vmi-smoke-)" = 2

# 4. What libvirt made of it: QEMU command lines, the QMP monitor, per-domain state.
for d in $DOMS; do
	pid=$(cat "/run/libvirt/qemu/$d.pid" 2>/dev/null)
	tr '\0' '\n' <"/proc/$pid/cmdline" >"$out/$d.qemu-argv.txt" 2>/dev/null
	check "argv-uuid-$d" "no -uuid" grep -qx -- -uuid "$out/$d.qemu-argv.txt"
	{
		echo "pid $pid user $(ps -o user= -p "$pid")"
		echo "--- monitor chardev in argv"
		grep -A1 -x -- -chardev "$out/$d.qemu-argv.txt" | grep monitor
		echo "--- sockets of the qemu process (ss -xp)"
		ss -xp | grep "pid=$pid," | awk '{print $5}' | sort -u
		echo "--- domain state directory"
		ls -l /var/lib/libvirt/qemu/domain-*-"$d"/ 2>&1
		echo "--- cgroup"
		cat "/proc/$pid/cgroup"
		echo "--- QMP query-status through libvirt"
		$VIRSH qemu-monitor-command "$d" '{"execute":"query-status"}' 2>&1
	} >"$out/$d.qemu-info.txt" 2>&1
done

# 5. destroy and undefine both; their QEMUs must be gone.
for d in $DOMS; do
	virsh_step "destroy-$d" "$d" destroy
	virsh_step "undefine-$d" "$d" undefine
done
mark destroyed
# shellcheck disable=SC2317 # called through check
gone() { [ -z "$($VIRSH list --all --name)" ] && ! pgrep -f qemu-system >/dev/null; }
check cleaned-up "$($VIRSH list --all; pgrep -af qemu-system)" gone

mkdir -p "$out/libvirt-qemu-logs"
cp /var/log/libvirt/qemu/*.log "$out/libvirt-qemu-logs/" 2>/dev/null
journalctl -b -u libvirtd --no-pager >"$out/libvirtd.journal.txt" 2>&1
mark host.sh-end
exit "$failed"
