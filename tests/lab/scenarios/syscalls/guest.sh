#!/bin/sh
# Guest side of the syscalls scenario: run the syscall probe every 2 s, numbered, forever; the
# host checks the runs that start after its daemon is attached. After each run a ptrace
# single-stepper walks a child through its syscalls, as a debugger in the guest would. Loopback up so connect()
# reaches the network stack (and is refused: nobody listens on 4242).
set -eu
ip link set lo up
cp /bin/vmi-canary /tmp/vmi-canary-exec
cp /bin/vmi-canary /tmp/vmi-canary-denied
i=0
while :; do
	i=$((i + 1))
	/bin/vmi-sysprobe "run$i" 4242 /tmp/vmi-canary-exec /tmp/vmi-canary-denied
	/bin/vmi-stepper || true # a guest debugger single-stepping through syscalls
	echo "HEARTBEAT $i"
	sleep 2
done
