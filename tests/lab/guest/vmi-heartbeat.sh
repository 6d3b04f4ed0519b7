#!/bin/sh
# Prints "HEARTBEAT n" every second, forever: the host tells the guest is alive by the count
# going up (lib.sh guest_beats_on). Scenarios end their guest.sh with exec vmi-heartbeat.
i=0
while :; do
	i=$((i + 1))
	echo "HEARTBEAT $i"
	sleep 1
done
