#!/bin/sh
# Guest side of the inspect scenario: load two kernel modules, start canary processes with
# distinctive names (one the child of another), print how the guest itself sees them, its
# symbols, its modules and its /proc/version, then keep running with a heartbeat while the host snapshots guest
# memory.
set -eu
# Two modules of this very kernel build (host.sh appends /modules to our initramfs): kvm needs
# irqbypass, so the list has a dependency and a reference count above zero.
for m in irqbypass kvm; do
	if [ -f "/modules/$m.ko" ]; then
		insmod "/modules/$m.ko" 2>&1 | sed "s/^/MODULE-NOTE insmod $m: /" || true
	else
		echo "MODULE-NOTE no /modules/$m.ko"
	fi
done
tag=$(od -An -N2 -tx2 /dev/urandom | tr -d ' \n' | cut -c1-3)
mkdir -p /tmp/canary
for i in 1 2 3; do
	cp /bin/vmi-canary "/tmp/canary/vmi-canary-$tag$i"
done
# Canary 1 runs as an unprivileged user (busybox su as root asks no password), so the uid
# columns are checked with a value other than 0; plain root if su is unusable here.
grep -q '^vmicanary:' /etc/passwd 2>/dev/null ||
	echo 'vmicanary:x:1234:4321:canary:/tmp:/bin/sh' >>/etc/passwd
if su -s /bin/sh vmicanary -c true 2>/dev/null; then
	su -s /bin/sh vmicanary -c "exec /tmp/canary/vmi-canary-${tag}1" &
else
	echo "CANARY-NOTE su unusable, canary 1 runs as root"
	/tmp/canary/vmi-canary-${tag}1 &
fi
/tmp/canary/vmi-canary-${tag}2 "/tmp/canary/vmi-canary-${tag}3" >/tmp/canary/child &

# The guest's own view, from /proc: pid, comm, ppid (fields 1, 2, 4 of stat).
seen=0
while [ "$seen" -lt 3 ]; do
	seen=0
	for p in /proc/[0-9]*; do
		case "$(cat "$p/comm" 2>/dev/null)" in vmi-canary-*) seen=$((seen + 1)) ;; esac
	done
done
for p in /proc/[0-9]*; do
	comm=$(cat "$p/comm" 2>/dev/null) || continue
	case "$comm" in
	vmi-canary-*)
		# shellcheck disable=SC2046 # stat's fields, split on purpose
		set -- $(cat "$p/stat")
		echo "CANARY pid=$1 ppid=$4 comm=$comm"
		# mm->arg_start (field 48): where the C API probe reads argv[0] in this process.
		echo "CANARY-ARGSTART pid=$1 arg_start=${48}"
		# uid, euid (real, effective) and gid from status; exe; argv with NULs as spaces.
		uid=$(awk '/^Uid:/ { print $2 " " $3 }' "$p/status")
		gid=$(awk '/^Gid:/ { print $2 }' "$p/status")
		echo "CANARY-DETAIL pid=$1 uid=${uid% *} euid=${uid#* } gid=$gid" \
			"exe=$(readlink "$p/exe") argv=$(tr '\0' ' ' <"$p/cmdline")"
		;;
	esac
done
# Every process as the guest sees it (builtins where possible: forks are slow under TCG).
for p in /proc/[0-9]*; do
	pid=${p#/proc/}
	read -r comm <"$p/comm" 2>/dev/null || continue
	ppid='' uid='' euid='' gid='' threads=''
	{ while read -r k a b _; do
		case $k in
		PPid:) ppid=$a ;;
		Uid:) uid=$a euid=$b ;;
		Gid:) gid=$a ;;
		Threads:) threads=$a ;;
		esac
	done <"$p/status"; } 2>/dev/null || continue
	exe=$(readlink "$p/exe" 2>/dev/null) || exe=''
	argv=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || argv=''
	echo "PROC pid=$pid ppid=$ppid uid=$uid euid=$euid gid=$gid threads=$threads" \
		"comm=$comm exe=$exe argv=$argv"
done
# Kernel symbols as the guest itself shows them (root: real addresses; core kernel lines only,
# module symbols end in "[module]"), and its modules.
grep -E ' (_text|_stext|_etext|_end|init_task|modules|sys_call_table|idt_table|schedule|do_sys_open|kallsyms_lookup_name|fixed_percpu_data|jiffies_64|start_kernel)$' \
	/proc/kallsyms | sed 's/^/KALLSYMS /'
sed 's/^/MODULE /' /proc/modules
echo "PROCVERSION $(cat /proc/version)" # linux_banner, as the C API probe reads it
echo "GUEST-SCENARIO-DONE"
exec /bin/vmi-heartbeat
