#!/bin/sh
# Guest side: start canary processes with distinctive names (one the child of another),
# print how the guest itself sees them, then keep running with a heartbeat so the host
# can check the guest survives attach, detach and rmmod.
set -eu
tag=$(od -An -N2 -tx2 /dev/urandom | tr -d ' \n' | cut -c1-3)
mkdir -p /tmp/canary
for i in 1 2 3; do
	cp /bin/vmi-canary "/tmp/canary/vmi-canary-$tag$i"
done
/tmp/canary/vmi-canary-${tag}1 &
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
		exe=$(readlink "$p/exe")
		set -- $(cat "$p/stat")
		echo "CANARY pid=$1 ppid=$4 comm=$comm exe=$exe"
		;;
	esac
done
echo "GUEST-SCENARIO-DONE"
exec /bin/vmi-heartbeat
