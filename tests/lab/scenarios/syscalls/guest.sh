#!/bin/sh
# Guest side of the syscalls scenario: waits until the host says it is watching (a file on
# the 9p-less guest cannot be shared, so the host's signal is a line on the console: the
# guest polls for the marker the host writes through QEMU's monitor... kept simple: the
# guest runs its probe every 2 s, numbered, until the host has what it needs).
set -eu
cp /bin/vmi-canary /tmp/vmi-canary-exec
cp /bin/vmi-canary /tmp/vmi-canary-denied
i=0
while :; do
	i=$((i + 1))
	/bin/vmi-sysprobe "run$i" 4242 /tmp/vmi-canary-exec /tmp/vmi-canary-denied
	echo "HEARTBEAT $i"
	sleep 2
done
