# shellcheck shell=sh
# Shared helpers for the lab host side of every scenario (busybox sh). scripts/lab-test.sh
# stages this file next to each scenario; host.sh sources it with . "$LAB_SCENARIO/lib.sh".
# Steps append "STEP name PASS|FAIL detail" to $LAB_OUT/steps.txt; after a FAIL, $failed is 1
# (host.sh ends with: exit "$failed"). Waits are bounded polls on a condition, never a fixed
# sleep standing in for one.

out=$LAB_OUT
P=$LAB_PAYLOAD
steps=$out/steps.txt
# VMI_SCENARIO_* settings from the make test environment (scripts/lab-test.sh).
# shellcheck source=/dev/null
[ ! -f "$P/scenario.env" ] || . "$P/scenario.env"
: >"$steps"
failed=0

step() { # step NAME PASS|FAIL [DETAIL]
	echo "STEP $1 $2 ${3:-}" | tee -a "$steps"
	[ "$2" = PASS ] || failed=1
}

wait_for() { # wait_for SECONDS COMMAND...: poll COMMAND every 0.1 s until it succeeds
	n=$(($1 * 10))
	shift
	while [ "$n" -gt 0 ]; do
		"$@" && return 0
		n=$((n - 1))
		sleep 0.1
	done
	return 1
}

in_file() { grep -q "$2" "$1" 2>/dev/null; }
alive() { kill -0 "$1" 2>/dev/null; }
dead() { ! kill -0 "$1" 2>/dev/null; }
has_vm_fd() { ls -l "/proc/$1/fd" 2>/dev/null | grep -q 'anon_inode:kvm-vm'; }
uptime_ms() { awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime; }

heartbeats() { grep -c HEARTBEAT "$out/guest.log"; }
beating() { [ "$(heartbeats)" -gt "$1" ]; }
guest_beats_on() { # the guest's heartbeat advances within 20 s
	hb=$(heartbeats)
	wait_for 20 beating "$hb"
}

# start_guest LOG [QEMU OPTIONS...]: boot the lab guest under the lab host's KVM with its
# console in LOG; sets $qemu to QEMU's pid. GUEST_SMP: its vCPUs (1).
start_guest() {
	log=$1
	shift
	# shellcheck disable=SC2086 # LAB_QEMU is a command prefix
	$LAB_QEMU -enable-kvm -cpu host -m 256 -smp "${GUEST_SMP:-1}" -nodefaults -display none -no-reboot \
		-kernel "$LAB_GUEST_KERNEL" -initrd "$LAB_GUEST_INITRD" \
		-append "console=ttyS0 quiet panic=-1" -serial "file:$log" "$@" \
		</dev/null >"$log.qemu" 2>&1 &
	qemu=$!
}

# A libvirt domain (full host) booting the lab guest directly, its console to CONSOLE_LOG.
libvirt_domain_xml() { # NAME CONSOLE_LOG
	cat <<XML
<domain type='kvm'>
  <name>$1</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$LAB_GUEST_KERNEL</kernel>
    <initrd>$LAB_GUEST_INITRD</initrd>
    <cmdline>console=ttyS0 quiet panic=-1 vmi_lab_domain=$1</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='host-passthrough'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <serial type='file'><source path='$2'/><target port='0'/></serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
XML
}
