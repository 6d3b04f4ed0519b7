#!/bin/sh
# Constant process churn, forever: every fork and exec switches address space and makes
# syscalls, the load robustness scenarios run under.
while :; do
	/bin/busybox true
done
