#!/bin/sh
# Guest side of the tamper scenario: load vmi_tamper.ko (test tooling: rootkit-like steps,
# each undoable), start a process to hide, then run the host's commands one at a time: each
# line read from ttyS1 is written to /proc/vmi_tamper and answered on the console with
# "TAMPER-DONE <command> rc=N". "soak SECONDS" runs a clean but busy workload instead: process
# churn, Debian's dummy.ko loaded and unloaded, CPU 1 taken offline and back. "quit" ends the
# scenario. Busy work keeps the guest churning (processes, files) so clean sweeps are taken on
# a guest that does things.
set -u
up() { cut -d. -f1 /proc/uptime; }
soak() { # soak SECONDS
	end=$(($(up) + $1)) rounds=0 loads=0 plugs=0 procs=0
	cpu1=/sys/devices/system/cpu/cpu1/online
	while [ "$(up)" -lt "$end" ]; do
		rounds=$((rounds + 1))
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			/bin/true
			sh -c 'cat /proc/self/status >/dev/null'
		done
		procs=$((procs + 20))
		if insmod /modules/dummy.ko; then
			ip link set dummy0 up 2>/dev/null
			rmmod dummy && loads=$((loads + 1))
		fi
		if [ -w "$cpu1" ] && [ $((rounds % 3)) = 0 ]; then
			echo 0 >"$cpu1" && echo 1 >"$cpu1" && plugs=$((plugs + 1))
		fi
	done
	echo "TAMPER-SOAK rounds=$rounds loads=$loads plugs=$plugs procs=$procs cpus=$(cat /sys/devices/system/cpu/online)"
	[ "$loads" -gt 0 ]
}
if ! insmod /modules/vmi_tamper.ko; then
	echo "TAMPER-FAIL insmod"
	exit 1
fi
cp /bin/vmi-canary /tmp/vmi-hideme
/tmp/vmi-hideme &
hide=$!
echo "TAMPER-HIDEME pid=$hide"
(while :; do
	ls -l /proc >/dev/null 2>&1
	cat /proc/modules /proc/meminfo >/dev/null 2>&1
	date >/tmp/churn
	sleep 0.2
done) &
churn=$!
# Held open for the whole loop: a serial port closed between two reads drops what arrives.
exec 3</dev/ttyS1
stty -F /dev/ttyS1 -echo 2>/dev/null
echo "TAMPER-READY"
while read -r cmd args <&3; do
	[ "$cmd" = quit ] && break
	case "$cmd" in
	hide_pid | hide_pid_deep) args=$hide ;;
	esac
	rc=0
	if [ "$cmd" = soak ]; then
		soak "$args" || rc=$?
	else
		# shellcheck disable=SC2320 # the write's own status is the answer
		echo "$cmd${args:+ $args}" >/proc/vmi_tamper || rc=$?
	fi
	# The guest still makes syscalls after each step (a broken LSTAR would not get here).
	echo "TAMPER-DONE $cmd rc=$rc $(tr '\n' ' ' </proc/vmi_tamper)"
done
exec 3<&-
kill "$churn" "$hide" 2>/dev/null
rmmod vmi_tamper && echo "TAMPER-RMMOD ok" || echo "TAMPER-RMMOD failed"
echo "GUEST-SCENARIO-DONE"
