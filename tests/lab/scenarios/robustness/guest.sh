#!/bin/sh
# Guest side: constant process churn (every fork and exec switches address space), and a
# heartbeat so the host can tell the guest keeps running through everything it does.
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
