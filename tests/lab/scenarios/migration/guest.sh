#!/bin/sh
# Guest side of the migration scenario: a syscall-heavy load (process churn) and a heartbeat,
# so the host can tell the guest keeps running across save, restore and its own stops.
churn() {
	while :; do
		/bin/busybox true
	done
}
churn &
churn &
echo "GUEST-CHURNING"
i=0
while :; do
	i=$((i + 1))
	echo "HEARTBEAT $i"
	sleep 1
done
