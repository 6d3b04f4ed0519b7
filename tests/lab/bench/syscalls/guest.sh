#!/bin/sh
# Guest side of the syscall-cost bench: time batches of getppid calls, forever.
while :; do
	/bin/vmi-sysprobe --bench 5000
done
