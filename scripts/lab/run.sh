#!/usr/bin/env bash
# Run one scenario in the nested KVM lab: Debian's cloud kernel booted under
# QEMU/TCG with emulated AMD SVM (the "lab host"), kvm-amd loaded inside it,
# and the scenario's host.sh free to start a nested KVM guest.
#
# Usage: run.sh --kernel 6.1|6.12 --scenario DIR --out OUTDIR [--timeout SECS] [--shell]
#
# Channels of the outer QEMU (see README.md):
#   ttyS0 -> OUTDIR/host.log          lab host console (kernel + host.sh output)
#   ttyS1 -> OUTDIR/.lab/ttyS1.raw    files of $LAB_OUT, framed + base64, decoded into OUTDIR/
#   ttyS2 -> OUTDIR/.lab/ttyS2.txt    "VMI-LAB-RESULT: PASS" | "VMI-LAB-RESULT: FAIL ..."
# Exit status 0 only if ttyS2 says PASS and the scenario's optional `check`
# (run here with OUTDIR as argument) passes.
# Also sourceable (fullhost-run.sh reuses its steps) without side effects.
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lab/build.sh
. "$LAB_DIR/build.sh" # for lab_build and lab_copy_ldd_libs

# tsc=reliable: under TCG the TSC follows the host's clock, but on a loaded machine the
# clocksource watchdog sees late HPET reads, calls the TSC unstable and moves timekeeping to
# the HPET, whose every read is an emulated MMIO access: the lab then crawls (seen: a tamper
# run stuck for 14 minutes right after "Switched to clocksource hpet").
KERNEL_CMDLINE="console=ttyS0 panic_on_warn=1 oops=panic panic=-1 tsc=reliable"
OUT_MARKER=.vmi-lab-out # marks a directory run.sh may wipe

series="" scenario="" out="" timeout=600 shell=0
lab_kind="lab host" # for messages
work="" qpid=""

usage() {
	echo "usage: run.sh --kernel 6.1|6.12 --scenario DIR --out OUTDIR [--timeout SECS] [--shell]" >&2
	exit 2
}

say() { echo "lab: $*" >&2; }

parse_args() {
	while [ $# -gt 0 ]; do
		case "$1" in
		--kernel) series=${2:-}; shift 2 ;;
		--scenario) scenario=${2:-}; shift 2 ;;
		--out) out=${2:-}; shift 2 ;;
		--timeout) timeout=${2:-}; shift 2 ;;
		--shell) shell=1; shift ;;
		-h | --help) usage ;;
		*) say "unknown argument: $1"; usage ;;
		esac
	done
	if [ -z "$series" ] || [ -z "$scenario" ] || [ -z "$out" ]; then usage; fi
	[[ "$timeout" =~ ^[0-9]+$ ]] || usage
	[ -d "$scenario" ] || { say "no scenario directory $scenario"; exit 2; }
	scenario=$(cd "$scenario" && pwd)
	if [ "$shell" = 0 ] && [ ! -f "$scenario/host.sh" ]; then
		say "$scenario has no host.sh"
		exit 2
	fi
}

# Always take QEMU down with us (timeout, Ctrl-C, errors) and drop the
# scratch initramfs trees.
cleanup() {
	if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
		kill "$qpid" 2>/dev/null || true
		wait "$qpid" 2>/dev/null || true
	fi
	[ -z "$work" ] || rm -rf "$work"
}

# OUTDIR must not keep artifacts of an earlier run (a stale guest.log would
# let `check` pass), so it is wiped, but only if it is empty or ours.
prepare_out() {
	if [ -d "$out" ] && [ -n "$(ls -A "$out")" ] && [ ! -e "$out/$OUT_MARKER" ]; then
		say "refusing to wipe $out: not empty and not a lab output directory"
		exit 2
	fi
	rm -rf "$out"
	mkdir -p "$out/.lab"
	touch "$out/$OUT_MARKER"
	out=$(cd "$out" && pwd)
}

# Copy a scenario directory into $1/scenario (without guest-files/, which
# belong to the guest root).
copy_scenario() {
	mkdir -p "$1/scenario"
	cp -a "$scenario/." "$1/scenario/"
	rm -rf "$1/scenario/guest-files"
}

write_guest_init() {
	cat >"$1/init" <<'EOF'
#!/bin/sh
# Lab guest init: run the scenario's guest.sh on the console, then power off.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
if [ -f /scenario/guest.sh ]; then
	sh /scenario/guest.sh
	echo "lab-guest: guest.sh exited rc=$?"
else
	echo "lab-guest: no /scenario/guest.sh"
fi
poweroff -f
EOF
	chmod 755 "$1/init"
}

build_guest_initrd() {
	local root=$work/guest
	mkdir -p "$root"
	cp -a "$cache/busybox/." "$root/"
	copy_scenario "$root"
	[ ! -d "$scenario/guest-files" ] || cp -a "$scenario/guest-files/." "$root/"
	write_guest_init "$root"
	make_cpio "$root" "$work/guest.cpio"
}

write_host_init() {
	cat >"$1/init" <<'EOF'
#!/bin/sh
# Lab host init. Results travel on their own serial ports: ttyS1 carries the
# files of $LAB_OUT, ttyS2 the single result line. ttyS0 is the console.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
exec </dev/console >/dev/console 2>&1
# A WARN anywhere must end the run (also on the command line, for early ones).
echo 1 >/proc/sys/kernel/panic_on_warn

# result, send_artifacts
. /lab/serial-protocol.sh

fail_setup() {
	echo "lab-host: setup failed: $*"
	result "FAIL setup: $*"
	poweroff -f
}

while read -r m; do
	insmod "/lab/modules/$m" || fail_setup "insmod $m"
done </lab/modules/modules.load
[ -c /dev/kvm ] || fail_setup "no /dev/kvm after loading kvm modules"
echo "lab-host: kvm modules loaded: $(tr '\n' ' ' </lab/modules/modules.load)"

export LAB_GUEST_KERNEL=/lab/guest/vmlinuz LAB_GUEST_INITRD=/lab/guest/initrd.cpio
export LAB_QEMU="/opt/qemu/bin/qemu-system-x86_64 -L /opt/qemu/share"
export LAB_PAYLOAD=/lab/payload LAB_OUT=/lab/out LAB_SCENARIO=/scenario
KVER=$(uname -r)
export KVER
mkdir -p "$LAB_OUT" "$LAB_PAYLOAD"
cd /scenario || fail_setup "no /scenario"

if grep -qw vmi_lab_shell /proc/cmdline; then
	cat <<MSG
lab-host: interactive lab ($KVER). Environment is exported:
  LAB_QEMU=$LAB_QEMU
  LAB_GUEST_KERNEL=$LAB_GUEST_KERNEL LAB_GUEST_INITRD=$LAB_GUEST_INITRD
  LAB_PAYLOAD=$LAB_PAYLOAD LAB_OUT=$LAB_OUT KVER=$KVER
Run the scenario with:  sh /scenario/host.sh; echo rc=\$?
Leave with: exit (or poweroff -f). Ctrl-a x kills QEMU.
MSG
	setsid cttyhack sh -l
	poweroff -f
fi

echo "lab-host: running /scenario/host.sh"
sh /scenario/host.sh </dev/null
rc=$?
echo "lab-host: host.sh exited rc=$rc"
send_artifacts
if [ "$rc" = 0 ]; then result PASS; else result "FAIL rc=$rc"; fi
poweroff -f
EOF
	chmod 755 "$1/init"
}

# Copy $VMI_LAB_PAYLOAD (module, daemon, ...) to /lab/payload, plus the
# shared libraries of any dynamic executable in it.
add_payload() {
	local root=$1 f
	mkdir -p "$root/lab/payload"
	[ -n "${VMI_LAB_PAYLOAD:-}" ] || return 0
	[ -d "$VMI_LAB_PAYLOAD" ] || { say "VMI_LAB_PAYLOAD=$VMI_LAB_PAYLOAD is not a directory"; exit 2; }
	cp -a "$VMI_LAB_PAYLOAD/." "$root/lab/payload/"
	while IFS= read -r -d '' f; do
		[ "$(head -c4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ] || continue
		lab_copy_ldd_libs "$f" "$root"
	done < <(find "$VMI_LAB_PAYLOAD" -type f -perm -u+x -print0)
}

build_host_initrd() {
	local root=$work/host
	mkdir -p "$root/lab/modules" "$root/lab/guest" "$root/opt/qemu"
	cp -a "$cache/busybox/." "$root/"
	cp "$cache/kernel/"*.ko "$cache/kernel/modules.load" "$root/lab/modules/"
	cp -a "$cache/qemu/bin" "$cache/qemu/share" "$root/opt/qemu/"
	cp -a "$cache/qemu/root/." "$root/"
	cp "$cache/kernel/vmlinuz" "$root/lab/guest/vmlinuz"
	cp "$work/guest.cpio" "$root/lab/guest/initrd.cpio"
	add_payload "$root"
	copy_scenario "$root"
	cp "$LAB_DIR/serial-protocol.sh" "$root/lab/"
	write_host_init "$root"
	make_cpio "$root" "$work/host.cpio"
}

# Uncompressed newc: decompressing under TCG would cost more than it saves.
make_cpio() {
	(cd "$1" && find . -print0 | cpio --null -o -H newc -R 0:0 --quiet) >"$2"
}

qemu_cmd() {
	local append=$KERNEL_CMDLINE
	[ "$shell" = 0 ] || append="$append vmi_lab_shell"
	QEMU=(qemu-system-x86_64 -accel tcg -cpu "qemu64,+svm,+npt" -smp "${VMI_LAB_SMP:-1}" -m 3072
		-nographic -no-reboot -nic none
		-kernel "$cache/kernel/vmlinuz" -initrd "$work/host.cpio" -append "$append")
	lab_serials
}

# The lab's channels (serial-protocol.sh): ttyS0 the console (host.log, or the terminal
# with --shell), ttyS1 the artifacts, ttyS2 the result line.
lab_serials() {
	if [ "$shell" = 1 ]; then
		QEMU+=(-serial mon:stdio)
	else
		QEMU+=(-monitor none -serial "file:$out/host.log")
	fi
	QEMU+=(-serial "file:$out/.lab/ttyS1.raw" -serial "file:$out/.lab/ttyS2.txt")
}

result_line() {
	[ -f "$out/.lab/ttyS2.txt" ] || return 0
	tr -d '\r' <"$out/.lab/ttyS2.txt" | grep -m1 '^VMI-LAB-RESULT: ' || true
}

# Wait for QEMU to exit, at most $timeout s; once a result is in, grant a
# short grace for the poweroff. Returns 0 if QEMU exited by itself.
wait_qemu() {
	local deadline=$((SECONDS + timeout)) graced=0
	while kill -0 "$qpid" 2>/dev/null; do
		if [ "$graced" = 0 ] && [ -n "$(result_line)" ]; then
			graced=1
			[ $((SECONDS + 30)) -ge "$deadline" ] || deadline=$((SECONDS + 30))
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			kill "$qpid" 2>/dev/null || true
			wait "$qpid" 2>/dev/null || true
			qpid=""
			return 1
		fi
		sleep 0.5
	done
	wait "$qpid" 2>/dev/null || true
	qpid=""
}

# Decode the ttyS1 stream into OUTDIR, checking each file's byte count.
decode_artifacts() {
	local raw=$out/.lab/ttyS1.raw line path size tmp=$out/.lab/b64 n=0
	[ -s "$raw" ] || return 0
	path=""
	while IFS= read -r line; do
		line=${line%$'\r'}
		case "$line" in
		"VMI-FILE-BEGIN "*)
			read -r size path <<<"${line#VMI-FILE-BEGIN }"
			: >"$tmp"
			;;
		VMI-FILE-END)
			[ -n "$path" ] || continue
			case "/$path/" in */../* | //*) say "skipping unsafe artifact path $path"; path=""; continue ;; esac
			mkdir -p "$(dirname "$out/$path")"
			base64 -d <"$tmp" >"$out/$path"
			[ "$(wc -c <"$out/$path")" = "$size" ] || say "artifact $path: expected $size bytes, got $(wc -c <"$out/$path")"
			n=$((n + 1))
			path=""
			;;
		VMI-ARTIFACTS-END) break ;;
		*) [ -z "$path" ] || printf '%s\n' "$line" >>"$tmp" ;;
		esac
	done <"$raw"
	rm -f "$tmp"
	say "artifacts: $n file(s) in $out"
}

# The first WARNING/BUG/Oops line says more than the panic line that follows.
panic_reason() {
	tr -d '\r' <"$out/host.log" |
		grep -m1 -oE '(WARNING: |BUG: |Oops: |Kernel panic - ).*' || true
}

fail() {
	say "FAIL: $*"
	if [ -f "$out/host.log" ]; then
		echo "----- last 40 lines of $out/host.log -----" >&2
		tail -n 40 "$out/host.log" | tr -d '\r' >&2
	fi
	exit 1
}

run_check() {
	[ -x "$scenario/check" ] || return 0
	say "running $scenario/check $out"
	"$scenario/check" "$out" || fail "scenario check failed (rc=$?)"
}

main() {
	parse_args "$@"
	trap cleanup EXIT
	trap 'say "interrupted"; exit 130' INT TERM
	cache=$(lab_build --kernel "$series" | tail -n1)
	prepare_out
	work=$(mktemp -d "${TMPDIR:-/tmp}/vmi-lab.XXXXXX")
	build_guest_initrd
	build_host_initrd
	qemu_cmd
	boot_lab
}

# Run $QEMU (on this terminal with --shell), then judge the run by its result
# line and the scenario's check. Shared with fullhost-run.sh.
boot_lab() {
	local res
	printf '%q ' "${QEMU[@]}" >"$out/.lab/qemu-cmd"
	if [ "$shell" = 1 ]; then
		say "interactive $lab_kind on this terminal (Ctrl-a x quits QEMU)"
		"${QEMU[@]}" || true
		return 0
	fi
	say "booting $lab_kind ($series, timeout ${timeout}s); console: $out/host.log"
	"${QEMU[@]}" </dev/null >"$out/.lab/qemu.stdout" 2>&1 &
	qpid=$!
	wait_qemu || fail "timeout after ${timeout}s (QEMU killed)"
	decode_artifacts
	res=$(result_line)
	if [ -z "$res" ]; then
		if grep -q 'Kernel panic' "$out/host.log" 2>/dev/null; then
			fail "$lab_kind panicked before reporting a result: $(panic_reason)"
		fi
		fail "QEMU exited without a result on ttyS2 (see $out/.lab/qemu.stdout)"
	fi
	[ "$res" = "VMI-LAB-RESULT: PASS" ] || fail "scenario reported ${res#VMI-LAB-RESULT: }"
	run_check
	say "PASS ($series, ${SECONDS}s)"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	main "$@"
fi
