#!/usr/bin/env bash
# Build (or reuse) the cached, reusable parts of the nested KVM lab:
#   kernel/  vmlinuz, System.map-$ABI, the kvm modules (decompressed) and
#            modules.load (their insmod order), guest-modules/ (ordinary Debian
#            modules a lab guest loads and unloads, as a clean workload does)
#   qemu/    bin/qemu-system-x86_64, share/ (firmware for -L), root/ (every
#            library ldd lists, at the absolute path ldd gives)
#   busybox/ a base root tree: static busybox + applet symlinks
# The cache lives outside the repo in ${VMI_LAB_CACHE:-/var/cache/vminsight-lab}
# and is keyed by the versions of the kernel package, qemu-system-x86 and
# busybox-static, so a Debian upload of any of them gives a fresh entry.
# Progress goes to stderr; the last line of stdout is the cache entry path.
#
# Usage: build.sh [--kernel 6.1|6.12]
# Also sourceable (run.sh uses lab_copy_ldd_libs) without side effects.
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lab/kernels.sh
. "$LAB_DIR/kernels.sh"

LAB_CACHE_ROOT=${VMI_LAB_CACHE:-/var/cache/vminsight-lab}
# What the lab host must insmod; dependencies come from modules.dep.
LAB_KVM_TOP_MODULE=kvm-amd
# Legitimate modules for the guest's busy workload (no dependencies).
LAB_GUEST_MODULES=(dummy)
# Bumped when the cache entry's layout changes, so old entries are not reused.
LAB_CACHE_LAYOUT=2
# Firmware the x86 machine asks for with the default devices (SeaBIOS,
# option ROMs for -kernel boot, default VGA and e1000 NIC).
LAB_FIRMWARE=(
	/usr/share/seabios/bios-256k.bin /usr/share/seabios/bios.bin
	/usr/share/seabios/vgabios-stdvga.bin /usr/share/seabios/vgabios-virtio.bin
	/usr/share/qemu/kvmvapic.bin /usr/share/qemu/linuxboot.bin
	/usr/share/qemu/linuxboot_dma.bin /usr/share/qemu/multiboot.bin
	/usr/share/qemu/multiboot_dma.bin /usr/share/qemu/pvh.bin
	/usr/lib/ipxe/qemu/efi-e1000.rom /usr/lib/ipxe/qemu/efi-virtio.rom
)

log() { echo "lab-build: $*" >&2; }
die() {
	echo "lab-build: error: $*" >&2
	exit 1
}

pkg_version() { dpkg-query -W -f='${Version}' "$1"; }

# Candidate version of a (not installed) package from the apt lists.
apt_version() {
	apt-cache policy "$1" | sed -n 's/^ *Candidate: //p' | head -n1
}

# Copy every library `ldd` lists for ELF file $1 into root dir $2, at the
# same absolute path (including the dynamic loader), so the loader inside
# the lab finds them without any LD_LIBRARY_PATH. No-op for static files.
lab_copy_ldd_libs() {
	local elf=$1 root=$2 lib
	ldd "$elf" >/dev/null 2>&1 || return 0 # static or not an executable
	while read -r lib; do
		[ -e "$lib" ] || continue
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done < <(ldd "$elf" | sed -n 's/.*=> \(\/[^ ]*\).*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (0x.*/\1/p')
}

# Fetch the kernel image .deb into the cache (apt-get download, no install).
fetch_kernel_deb() {
	local abi=$1 ver=$2 debs=$LAB_CACHE_ROOT/debs deb
	mkdir -p "$debs"
	deb=$(find "$debs" -maxdepth 1 -name "linux-image-${abi}_${ver//:/%3a}_amd64.deb" | head -n1)
	if [ -z "$deb" ]; then
		log "downloading linux-image-$abi=$ver"
		# As root apt warns it cannot sandbox the download: harmless.
		(cd "$debs" && apt-get download -q "linux-image-$abi=$ver" >&2)
		deb=$(find "$debs" -maxdepth 1 -name "linux-image-${abi}_*.deb" | head -n1)
	fi
	[ -n "$deb" ] || die "could not download linux-image-$abi"
	echo "$deb"
}

# Print the modules $1 needs, dependencies first, as paths relative to the
# module tree (from modules.dep, which depmod generated for the extraction).
module_load_order() {
	local depfile=$1 top=$2 path
	path=$(grep -E "^([^:]*/)?${top}\.ko(\.xz|\.zst|\.gz)?:" "$depfile" | cut -d: -f1)
	[ -n "$path" ] || die "module $top not in modules.dep"
	declare -A seen=()
	_visit() {
		local m=$1 d
		[ -n "${seen[$m]:-}" ] && return 0
		seen[$m]=1
		# modprobe loads a line's dependencies from last to first.
		for d in $(grep -E "^${m//./\\.}:" "$depfile" | cut -d: -f2- | tr ' ' '\n' | tac); do
			_visit "$d"
		done
		echo "$m"
	}
	_visit "$path"
}

# Decompress (or copy) module $1 into directory $2 as a plain .ko.
install_module() {
	local src=$1 dst=$2 name
	name=$(basename "$src")
	case "$src" in
	*.ko.xz) xz -dc "$src" >"$dst/${name%.xz}" ;;
	*.ko.zst) zstd -qdc "$src" >"$dst/${name%.zst}" ;;
	*.ko.gz) gzip -dc "$src" >"$dst/${name%.gz}" ;;
	*) cp "$src" "$dst/$name" ;;
	esac
}

build_kernel() {
	local abi=$1 deb=$2 out=$3 x m order
	x=$(mktemp -d)
	dpkg-deb -x "$deb" "$x"
	# The package ships no modules.dep (its postinst runs depmod): make one.
	depmod -b "$x" "$abi"
	mkdir -p "$out"
	cp "$x/boot/vmlinuz-$abi" "$out/vmlinuz"
	cp "$x/boot/System.map-$abi" "$x/boot/config-$abi" "$out/"
	: >"$out/modules.load"
	order=$(module_load_order "$x/lib/modules/$abi/modules.dep" "$LAB_KVM_TOP_MODULE")
	for m in $order; do
		install_module "$x/lib/modules/$abi/$m" "$out"
		basename "$m" | sed 's/\.\(xz\|zst\|gz\)$//' >>"$out/modules.load"
	done
	log "kvm modules, load order: $(tr '\n' ' ' <"$out/modules.load")"
	mkdir -p "$out/guest-modules"
	for m in "${LAB_GUEST_MODULES[@]}"; do
		[ "$(module_load_order "$x/lib/modules/$abi/modules.dep" "$m" | wc -l)" = 1 ] ||
			die "guest module $m has dependencies"
		install_module "$x/lib/modules/$abi/$(module_load_order "$x/lib/modules/$abi/modules.dep" "$m")" \
			"$out/guest-modules"
	done
	rm -rf "$x"
}

build_qemu() {
	local out=$1 bin f
	bin=$(command -v qemu-system-x86_64) || die "qemu-system-x86_64 not installed (scripts/deps.sh)"
	mkdir -p "$out/bin" "$out/share" "$out/root"
	cp -L "$bin" "$out/bin/"
	for f in "${LAB_FIRMWARE[@]}"; do
		[ -e "$f" ] || die "missing firmware $f (install seabios, ipxe-qemu)"
		cp -L "$f" "$out/share/"
	done
	lab_copy_ldd_libs "$bin" "$out/root"
}

build_busybox() {
	local out=$1 applet
	mkdir -p "$out/bin" "$out/sbin" "$out/usr/bin" "$out/usr/sbin" \
		"$out/dev" "$out/proc" "$out/sys" "$out/tmp" "$out/run" "$out/etc" "$out/root"
	cp /bin/busybox "$out/bin/busybox"
	file -L "$out/bin/busybox" | grep -q 'statically linked' ||
		die "/bin/busybox is not static (install busybox-static)"
	for applet in $("$out/bin/busybox" --list-full); do
		[ -e "$out/$applet" ] || ln -s /bin/busybox "$out/$applet"
	done
}

lab_build() {
	local series=6.1 abi kver qver bver key dir tmp deb
	while [ $# -gt 0 ]; do
		case "$1" in
		--kernel)
			series=${2:?--kernel needs 6.1 or 6.12}
			shift 2
			;;
		*) die "unknown argument: $1 (usage: build.sh [--kernel 6.1|6.12])" ;;
		esac
	done
	abi=$(vmi_kernel_abi "$series")
	kver=$(apt_version "linux-image-$abi")
	if [ -z "$kver" ] || [ "$kver" = "(none)" ]; then
		die "no candidate for linux-image-$abi (apt-get update?)"
	fi
	qver=$(pkg_version qemu-system-x86)
	bver=$(pkg_version busybox-static)
	key="$abi-$(printf '%s|%s|%s|%s' "$kver" "$qver" "$bver" "$LAB_CACHE_LAYOUT" | sha256sum | cut -c1-12)"
	dir=$LAB_CACHE_ROOT/$key
	if [ -f "$dir/.complete" ]; then
		log "cached: $dir"
		echo "$dir"
		return 0
	fi
	log "building $dir (kernel $kver, qemu $qver, busybox $bver)"
	mkdir -p "$LAB_CACHE_ROOT"
	tmp=$(mktemp -d "$LAB_CACHE_ROOT/.build.XXXXXX")
	chmod 755 "$tmp"
	# shellcheck disable=SC2064 # expand $tmp now: it is local
	trap "rm -rf '$tmp'" EXIT
	deb=$(fetch_kernel_deb "$abi" "$kver")
	build_kernel "$abi" "$deb" "$tmp/kernel"
	build_qemu "$tmp/qemu"
	build_busybox "$tmp/busybox"
	printf 'abi=%s\nkernel=%s\nqemu=%s\nbusybox=%s\n' "$abi" "$kver" "$qver" "$bver" >"$tmp/versions"
	touch "$tmp/.complete"
	# Publish atomically so a concurrent or interrupted build never leaves a
	# half-filled entry that looks complete.
	rm -rf "$dir"
	mv "$tmp" "$dir"
	trap - EXIT
	log "built $dir"
	echo "$dir"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	lab_build "$@"
fi
