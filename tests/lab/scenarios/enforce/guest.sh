#!/bin/sh
# Guest side of the enforce scenario: every second, one numbered round of three attempts,
# each printed with what the guest saw: run a program dropped in /tmp, load a (bogus) kernel
# module, run a marked canary. The host changes the rules between rounds; the rounds show
# what the guest felt (denied or not) while the events show what VMInsight did.
cp /bin/vmi-canary /tmp/vmi-drop
printf 'not a kernel module' >/tmp/vmi-fake.ko
echo "ENFORCE shell pid=$$"
n=0
while :; do
	n=$((n + 1))
	/tmp/vmi-drop --exit 2>/dev/null
	a=$?
	insmod /tmp/vmi-fake.ko 2>/tmp/insmod.err
	b=$?
	e=$(tr ' ' _ </tmp/insmod.err | head -c 80)
	/bin/vmi-canary --exit pause-me
	c=$?
	echo "ENFORCE round=$n tmp_exec=$a insmod=$b insmod_err=$e canary=$c"
	echo "HEARTBEAT $n"
	sleep 1
done
