#!/bin/sh
# Guest side of the tamper scenario: load vmi_tamper.ko (test tooling: rootkit-like steps,
# each undoable), start a process to hide, then run the host's commands one at a time: each
# line read from ttyS1 is written to /proc/vmi_tamper and answered on the console with
# "TAMPER-DONE <command> rc=N". "quit" ends the scenario. Busy work keeps the guest churning
# (processes, files) so clean sweeps are taken on a guest that does things.
set -u
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
	hide_pid) args=$hide ;;
	esac
	rc=0
	# shellcheck disable=SC2320 # the write's own status is the answer
	echo "$cmd${args:+ $args}" >/proc/vmi_tamper || rc=$?
	# The guest still makes syscalls after each step (a broken LSTAR would not get here).
	echo "TAMPER-DONE $cmd rc=$rc $(tr '\n' ' ' </proc/vmi_tamper)"
done
exec 3<&-
kill "$churn" "$hide" 2>/dev/null
rmmod vmi_tamper && echo "TAMPER-RMMOD ok" || echo "TAMPER-RMMOD failed"
echo "GUEST-SCENARIO-DONE"
