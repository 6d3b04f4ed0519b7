#!/bin/sh
# Demo workload: a few named services, then short-lived jobs coming and going.
cp /bin/vmi-canary /tmp/web-server
cp /bin/vmi-canary /tmp/db-worker
/tmp/web-server &
/tmp/db-worker &
i=0
while [ "$i" -lt 12 ]; do
	i=$((i + 1))
	cp /bin/vmi-canary "/tmp/job-$i"
	"/tmp/job-$i" &
	job=$!
	sleep 1
	kill "$job"
	rm -f "/tmp/job-$i"
done
# Suspicious activity: reading the password hashes, and a program the host denies.
cat /etc/shadow >/dev/null 2>&1 || true
cp /bin/vmi-canary /tmp/cryptominer
/tmp/cryptominer --exit || echo "DEMO guest: /tmp/cryptominer could not run (denied by the host)"
echo "DEMO-GUEST-DONE"
