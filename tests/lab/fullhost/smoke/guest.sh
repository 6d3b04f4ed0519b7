#!/bin/sh
# Nested guest workload (libvirt domain): say who we are, then stay up until
# the host destroys the domain.
dom=$(sed -n 's/.*vmi_lab_domain=\([^ ]*\).*/\1/p' /proc/cmdline)
echo "GUEST-MARKER domain=$dom uuid=$(cat /sys/class/dmi/id/product_uuid 2>/dev/null) kernel=$(uname -r)"
while :; do
	echo HEARTBEAT
	sleep 1
done
