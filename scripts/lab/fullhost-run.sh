#!/usr/bin/env bash
# Run one scenario on the "full host": a real Debian 12 system (systemd, udev,
# dbus, libvirtd, Debian's QEMU) booted under QEMU/TCG with emulated AMD SVM,
# instead of the busybox lab host. Same command line, channels, result and
# OUTDIR layout as run.sh (whose steps it reuses); see README.md.
#
# Usage: fullhost-run.sh --kernel 6.1|6.12 --scenario DIR --out OUTDIR [--timeout SECS] [--shell]
#
# The image (fullhost-build.sh) is never written: the run boots a qcow2
# overlay of it made in its temp dir. A second disk, made per run (ext4,
# label vmi-lab-in), carries fullhost-inner.sh, the scenario, the payload and
# the nested guest's kernel and initramfs; vmi-lab.service runs the former.
set -euo pipefail

FH_RUN_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lab/run.sh
. "$FH_RUN_DIR/run.sh" # parse_args, prepare_out, build_guest_initrd, boot_lab, ...
# shellcheck source=scripts/lab/fullhost-build.sh
. "$FH_RUN_DIR/fullhost-build.sh" # fullhost_build

lab_kind="full host"

usage() {
	echo "usage: fullhost-run.sh --kernel 6.1|6.12 --scenario DIR --out OUTDIR [--timeout SECS] [--shell]" >&2
	exit 2
}

# The per-run disk: inner.sh, serial-protocol.sh, scenario/ (plus tests/lab/lib.sh as lib.sh if
# the scenario has none, as lab-test.sh stages it), payload/, guest/.
build_lab_disk() {
	local d=$work/in mb
	mkdir -p "$d/payload" "$d/guest"
	cp "$FH_RUN_DIR/fullhost-inner.sh" "$d/inner.sh"
	cp "$FH_RUN_DIR/serial-protocol.sh" "$d/serial-protocol.sh"
	copy_scenario "$d"
	[ -e "$d/scenario/lib.sh" ] || cp "$FH_RUN_DIR/../../tests/lab/lib.sh" "$d/scenario/lib.sh"
	if [ -n "${VMI_LAB_PAYLOAD:-}" ]; then
		[ -d "$VMI_LAB_PAYLOAD" ] || { say "VMI_LAB_PAYLOAD=$VMI_LAB_PAYLOAD is not a directory"; exit 2; }
		cp -a "$VMI_LAB_PAYLOAD/." "$d/payload/"
	fi
	cp "$cache/kernel/vmlinuz" "$d/guest/vmlinuz"
	cp "$work/guest.cpio" "$d/guest/initrd.cpio"
	mb=$(du -sm --apparent-size "$d" | cut -f1)
	mkfs.ext4 -q -L vmi-lab-in -d "$d" "$work/in.img" "$((mb * 12 / 10 + 64))M" >/dev/null
	rm -rf "$d"
}

qemu_cmd() {
	local append="$KERNEL_CMDLINE root=/dev/vda rw SYSTEMD_COLORS=0"
	[ "$shell" = 0 ] || append="$append vmi_lab_shell"
	qemu-img create -q -f qcow2 -F raw -b "$image/root.img" "$work/root.qcow2"
	QEMU=(qemu-system-x86_64 -accel tcg -cpu "qemu64,+svm,+npt" -smp "${VMI_LAB_SMP:-1}"
		-m "${VMI_LAB_MEM:-4096}" -nographic -no-reboot -nic none
		-kernel "$image/vmlinuz" -initrd "$image/initrd.img" -append "$append"
		-drive "file=$work/root.qcow2,format=qcow2,if=virtio,cache=unsafe"
		-drive "file=$work/in.img,format=raw,if=virtio,cache=unsafe")
	lab_serials
}

fullhost_main() {
	parse_args "$@"
	trap cleanup EXIT
	trap 'say "interrupted"; exit 130' INT TERM
	cache=$(lab_build --kernel "$series" | tail -n1)
	image=$(fullhost_build --kernel "$series" | tail -n1)
	prepare_out
	work=$(mktemp -d "${TMPDIR:-/tmp}/vmi-lab-fullhost.XXXXXX")
	build_guest_initrd
	build_lab_disk
	qemu_cmd
	boot_lab
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	fullhost_main "$@"
fi
