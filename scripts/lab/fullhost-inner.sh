#!/bin/bash
# Runs inside the full host, as root, from vmi-lab.service (After=multi-user.target),
# once the per-run disk is mounted at /lab/in. fullhost-run.sh ships it on that disk,
# so it can change without rebuilding the image. Same protocol as the busybox lab's
# init (run.sh): ttyS1 carries the files of $LAB_OUT, ttyS2 the single result line.
set -uo pipefail # no -e: whatever happens, a result must be reported

IN=/lab/in

# result, send_artifacts
# shellcheck source=scripts/lab/serial-protocol.sh
. "$IN/serial-protocol.sh"

# Immediate power-off, like the busybox lab's `poweroff -f`: the disk is a
# throwaway overlay and everything worth keeping has been shipped.
power_off() { systemctl poweroff -ff; }

fail_setup() {
	echo "lab-host: setup failed: $*"
	result "FAIL setup: $*"
	power_off
	exit 1
}

# What the boot looked like, for every scenario: $LAB_OUT/lab-host/.
host_report() {
	local d=$LAB_OUT/lab-host
	mkdir -p "$d"
	{
		echo "is-system-running: $(systemctl is-system-running)"
		systemd-analyze time
		echo "--- failed units"
		systemctl --failed --no-legend --plain
		echo "--- blame (top 25)"
		systemd-analyze blame --no-pager | head -n 25
	} >"$d/boot.txt" 2>&1
	journalctl -b --no-pager -o short-monotonic >"$d/journal.txt" 2>&1
}

export LAB_OUT=/lab/out LAB_SCENARIO=/scenario LAB_PAYLOAD=/lab/payload
export LAB_GUEST_KERNEL=/lab/guest/vmlinuz LAB_GUEST_INITRD=/lab/guest/initrd.cpio
export LAB_QEMU=/usr/bin/qemu-system-x86_64 HOME=/root
KVER=$(uname -r)
export KVER
mkdir -p "$LAB_OUT" /scenario /lab/payload /lab/guest
for d in scenario:/scenario payload:/lab/payload guest:/lab/guest; do
	mount --bind "$IN/${d%%:*}" "${d#*:}" || fail_setup "bind $IN/${d%%:*}"
done

# A WARN anywhere must end the run (also on the kernel command line, for early ones).
echo 1 >/proc/sys/kernel/panic_on_warn
modprobe kvm_amd || fail_setup "modprobe kvm_amd"
[ -c /dev/kvm ] || fail_setup "no /dev/kvm after modprobe kvm_amd"
echo "lab-host: kvm_amd loaded, /dev/kvm present"

if grep -qw vmi_lab_shell /proc/cmdline; then
	cat >/etc/profile.d/vmi-lab.sh <<EOF
export LAB_OUT=$LAB_OUT LAB_SCENARIO=$LAB_SCENARIO LAB_PAYLOAD=$LAB_PAYLOAD KVER=$KVER
export LAB_GUEST_KERNEL=$LAB_GUEST_KERNEL LAB_GUEST_INITRD=$LAB_GUEST_INITRD LAB_QEMU=$LAB_QEMU
cd /scenario
EOF
	cat >/dev/ttyS0 <<MSG
lab-host: interactive full host ($KVER). The lab environment is exported.
Run the scenario with:  sh /scenario/host.sh; echo rc=\$?
Leave with: exit (powers off). Ctrl-a x kills QEMU.
MSG
	setsid --ctty --wait bash -l <>/dev/ttyS0 >&0 2>&1
	power_off
	exit 0
fi

# Start from a finished boot: host.sh sees the state a user would see.
timeout 300 systemctl is-system-running --wait >/dev/null
echo "lab-host: boot finished ($(systemctl is-system-running)) at $(cut -d' ' -f1 /proc/uptime)s uptime"
echo "lab-host: running /scenario/host.sh"
cd /scenario || fail_setup "no /scenario"
sh /scenario/host.sh </dev/null
rc=$?
echo "lab-host: host.sh exited rc=$rc at $(cut -d' ' -f1 /proc/uptime)s uptime"
host_report
send_artifacts
if [ "$rc" = 0 ]; then result PASS; else result "FAIL rc=$rc"; fi
power_off
