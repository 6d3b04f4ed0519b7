#!/bin/sh
# The lab's result protocol, sourced by both lab hosts' init (run.sh's busybox init,
# fullhost-inner.sh): ttyS1 carries the files of $LAB_OUT, ttyS2 the single result line.
# run.sh reads both back on the build machine.

result() {
	stty -F /dev/ttyS2 raw -echo 2>/dev/null
	echo "VMI-LAB-RESULT: $*" >/dev/ttyS2
}

# Frame: "VMI-FILE-BEGIN <bytes> <path>", base64 lines, "VMI-FILE-END".
# Closing the tty waits for the UART to drain, so nothing is lost at poweroff.
send_artifacts() {
	stty -F /dev/ttyS1 raw -echo 2>/dev/null
	(
		cd "$LAB_OUT" || exit 0
		find . -type f | while read -r f; do
			echo "VMI-FILE-BEGIN $(wc -c <"$f") ${f#./}"
			base64 "$f"
			echo "VMI-FILE-END"
		done
		echo "VMI-ARTIFACTS-END"
	) >/dev/ttyS1
}
