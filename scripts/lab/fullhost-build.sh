#!/usr/bin/env bash
# Build (or reuse) the "full host" lab image: a real Debian system (systemd,
# udev, dbus, libvirtd, QEMU, the cloud kernel of the busybox lab and the
# runtime libraries of vminsightd/vminsightctl), made with debootstrap and
# apt and written to an ext4 disk image. fullhost-run.sh boots it under TCG.
#
# The cache entry ${VMI_LAB_CACHE:-/var/cache/vminsight-lab}/fullhost-<abi>-<hash>/
# is keyed by the suite, the kernel package version, the package list (incl.
# the runtime libraries) and this script; it holds
#   root.img    raw ext4 image of the root file system (label vmi-root)
#   vmlinuz, initrd.img   the image's /boot kernel and initramfs
#   packages.txt          dpkg -l of the image;  versions: what the key covers
# Progress goes to stderr; the last line of stdout is the entry path.
#
# Usage: fullhost-build.sh [--kernel 6.1|6.12]
# Also sourceable (fullhost-run.sh uses fullhost_build) without side effects.
set -euo pipefail

FH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FH_REPO=$(cd "$FH_DIR/../.." && pwd)
# shellcheck source=scripts/lab/build.sh
. "$FH_DIR/build.sh" # lab_build, fetch_kernel_deb, apt_version, LAB_CACHE_ROOT

FH_SUITE=bookworm
# What the image needs besides the kernel and VMInsight's runtime libraries.
FH_PACKAGES=(
	systemd systemd-sysv udev dbus
	libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils dmidecode
	iproute2 procps kmod initramfs-tools zstd
)
FH_HOSTNAME=vmi-fullhost
FH_FREE_MB=1024 # free space left in root.img (the runs write to an overlay)

fh_log() { echo "lab-fullhost-build: $*" >&2; }
fh_die() {
	echo "lab-fullhost-build: error: $*" >&2
	exit 1
}

# Packages providing every library `ldd` lists for vminsightd and
# vminsightctl on this machine (same suite as the image).
fh_runtime_packages() {
	local build=${BUILD:-$FH_REPO/build} bins libs lib p c cands=()
	local -A owner=()
	case "$build" in /*) ;; *) build=$FH_REPO/$build ;; esac
	bins=("$build/release/daemon/vminsightd" "$build/release/daemon/vminsightctl")
	if [ ! -x "${bins[0]}" ] || [ ! -x "${bins[1]}" ]; then
		fh_log "no ${bins[*]}: make userspace"
		make -s -C "$FH_REPO" userspace BUILD="$build" >&2
	fi
	mapfile -t libs < <(ldd "${bins[@]}" | sed -n 's/.*=> \(\/[^ ]*\).*/\1/p' | sort -u)
	# One dpkg -S for all (it is slow); usrmerge: dpkg may know a file under
	# another spelling, so ask for each.
	for lib in "${libs[@]}"; do
		cands+=("$lib" "$(realpath "$lib")" "/usr$lib" "${lib#/usr}")
	done
	while IFS= read -r p; do
		owner[${p#*: }]=${p%%:*}
	done < <(dpkg -S "${cands[@]}" 2>/dev/null || true)
	for lib in "${libs[@]}"; do
		p=""
		for c in "$lib" "$(realpath "$lib")" "/usr$lib" "${lib#/usr}"; do
			[ -z "${owner[$c]:-}" ] || { p=${owner[$c]}; break; }
		done
		[ -n "$p" ] || fh_die "no package owns $lib"
		echo "$p"
	done | sort -u
}

# "deb URI SUITE COMPONENTS" lines for the suite's Debian archives that apt
# on this machine uses (main suite, -updates, -security).
fh_sources() {
	apt-cache policy | awk -v s="$FH_SUITE" '
		$2 ~ /^https?:/ && $4 == "amd64" && $5 == "Packages" {
			split($3, a, "/"); if (a[1] !~ "^" s "(-|$)") next
			k = $2 " " a[1]; if (!(k in c)) o[++n] = k; c[k] = c[k] " " a[2]
		}
		END { for (i = 1; i <= n; i++) print "deb " o[i] c[o[i]] }'
}

# Unmount everything below $1 (deepest first).
fh_umount_all() {
	local m
	for m in $(findmnt -rn -o TARGET | grep "^$1/" | sort -r); do umount -l "$m" || true; done
}

fh_cleanup() {
	local dir=$1
	fh_umount_all "$dir"
	if findmnt -rn -o TARGET | grep -q "^$dir/"; then
		fh_log "still mounted under $dir, not removing it"
		return 0
	fi
	rm -rf --one-file-system "$dir"
}

fh_chroot() { chroot "$FH_ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
	DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@"; }

# Everything apt and the first boot would otherwise do slowly or ask for.
fh_preseed() {
	local r=$FH_ROOT
	# No daemons started by maintainer scripts inside the chroot.
	printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
	chmod 755 "$r/usr/sbin/policy-rc.d"
	cat >"$r/etc/dpkg/dpkg.cfg.d/01-vmi-lab-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
	# Small initramfs: root is on virtio-blk, ext4 is built in.
	mkdir -p "$r/etc/initramfs-tools/conf.d"
	printf 'MODULES=list\nCOMPRESS=zstd\n' >"$r/etc/initramfs-tools/conf.d/vmi-lab.conf"
	printf 'virtio_pci\nvirtio_blk\n' >>"$r/etc/initramfs-tools/modules"
}

fh_configure() {
	local r=$FH_ROOT u
	echo "$FH_HOSTNAME" >"$r/etc/hostname"
	printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost\n' "$FH_HOSTNAME" >"$r/etc/hosts"
	# Pass 0: no fsck (every run starts from the pristine image).
	printf 'LABEL=vmi-root\t/\text4\tdefaults,noatime\t0\t0\n' >"$r/etc/fstab"
	fh_chroot passwd -d root >/dev/null
	# A fixed machine-id: an empty one would make every boot a "first boot".
	rm -f "$r/etc/machine-id" "$r/var/lib/dbus/machine-id"
	fh_chroot systemd-machine-id-setup >/dev/null 2>&1
	mkdir -p "$r/etc/systemd/journald.conf.d"
	printf '[Journal]\nStorage=volatile\n' >"$r/etc/systemd/journald.conf.d/vmi-lab.conf"
	# kvm-amd before libvirtd starts, so its first capability probe sees /dev/kvm.
	echo kvm_amd >"$r/etc/modules-load.d/vmi-lab.conf"
	# libvirtd stays up (Debian's default --timeout 120 lets it exit when idle),
	# and its default network (needs dnsmasq and a bridge) is not started.
	echo 'LIBVIRTD_ARGS=""' >"$r/etc/default/libvirtd"
	rm -f "$r/etc/libvirt/qemu/networks/autostart/default.xml"
	# Nothing on the console but the lab; no timers or scrubbers under TCG.
	for u in getty.target apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
		e2scrub_reap.service fstrim.timer logrotate.timer dpkg-db-backup.timer man-db.timer \
		systemd-networkd-wait-online.service libvirt-guests.service; do
		ln -sf /dev/null "$r/etc/systemd/system/$u"
	done
	fh_units
	fh_chroot systemctl enable vmi-lab.service >/dev/null 2>&1
	fh_chroot systemctl set-default multi-user.target >/dev/null 2>&1
	rm -f "$r/usr/sbin/policy-rc.d"
	fh_chroot apt-get clean
	rm -rf "$r/var/lib/apt/lists/"* "$r/var/log/"*.log "$r/var/cache/debconf/"*-old
	mkdir -p "$r/lab/in" "$r/lab/out" "$r/lab/payload" "$r/lab/guest" "$r/scenario"
	# The boot must not think /usr is newer than /etc and /var (it would run
	# ldconfig, hwdb and catalog updates each time): stamp them last.
	touch -d 'now + 1 minute' "$r/etc/.updated" "$r/var/.updated"
}

# The unit that runs a lab: it mounts the per-run disk (label vmi-lab-in) and
# runs the inner script shipped on it, so changing that script needs no new
# image. If it fails before reporting, vmi-lab-failed.service reports it.
fh_units() {
	local r=$FH_ROOT
	cat >"$r/usr/local/sbin/vmi-lab-start" <<'EOF'
#!/bin/sh
set -e
mountpoint -q /lab/in || mount -t ext4 LABEL=vmi-lab-in /lab/in
exec /bin/bash /lab/in/inner.sh
EOF
	chmod 755 "$r/usr/local/sbin/vmi-lab-start"
	cat >"$r/etc/systemd/system/vmi-lab.service" <<'EOF'
[Unit]
Description=VMInsight lab: run the scenario of the lab disk
After=multi-user.target libvirtd.service
OnFailure=vmi-lab-failed.service

[Service]
# simple, not oneshot: the boot counts as finished once this has started.
Type=simple
ExecStart=/usr/local/sbin/vmi-lab-start
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
EOF
	cat >"$r/etc/systemd/system/vmi-lab-failed.service" <<'EOF'
[Unit]
Description=VMInsight lab: report a failed vmi-lab.service

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'stty -F /dev/ttyS2 raw -echo; echo "VMI-LAB-RESULT: FAIL setup: vmi-lab.service failed" >/dev/ttyS2; systemctl poweroff -ff'
EOF
}

fh_make_image() {
	local dir=$1 mb
	cp "$FH_ROOT/boot/vmlinuz-$FH_ABI" "$dir/vmlinuz"
	cp "$FH_ROOT/boot/initrd.img-$FH_ABI" "$dir/initrd.img"
	mb=$(du -sm --apparent-size "$FH_ROOT" | cut -f1)
	mb=$((mb * 12 / 10 + FH_FREE_MB))
	mkfs.ext4 -q -L vmi-root -d "$FH_ROOT" "$dir/root.img" "${mb}M" >/dev/null
}

fullhost_build() {
	local series=6.1 kver suite key dir tmp deb rt rtpkgs t0=$SECONDS
	while [ $# -gt 0 ]; do
		case "$1" in
		--kernel)
			series=${2:?--kernel needs 6.1 or 6.12}
			shift 2
			;;
		*) fh_die "unknown argument: $1 (usage: fullhost-build.sh [--kernel 6.1|6.12])" ;;
		esac
	done
	command -v debootstrap >/dev/null || fh_die "debootstrap not installed (scripts/deps.sh)"
	FH_ABI=$(vmi_kernel_abi "$series")
	kver=$(apt_version "linux-image-$FH_ABI")
	rt=$(fh_runtime_packages | tr '\n' ' ')
	key=$(printf '%s|%s|%s|%s|%s' "$FH_SUITE" "$kver" "${FH_PACKAGES[*]}" "$rt" \
		"$(sha256sum <"$FH_DIR/fullhost-build.sh")" | sha256sum | cut -c1-12)
	dir=$LAB_CACHE_ROOT/fullhost-$FH_ABI-$key
	if [ -f "$dir/.complete" ]; then
		fh_log "cached: $dir"
		echo "$dir"
		return 0
	fi
	fh_log "building $dir (suite $FH_SUITE, kernel $kver)"
	fh_log "runtime packages: $rt"
	mkdir -p "$LAB_CACHE_ROOT"
	lab_build --kernel "$series" >/dev/null # the kernel .deb, shared with the busybox lab
	deb=$(fetch_kernel_deb "$FH_ABI" "$kver")
	tmp=$(mktemp -d "$LAB_CACHE_ROOT/.fullhost.XXXXXX")
	chmod 755 "$tmp"
	# shellcheck disable=SC2064 # expand $tmp now: it is local
	trap "fh_cleanup '$tmp'" EXIT
	FH_ROOT=$tmp/root
	suite=$(fh_sources | awk -v s="$FH_SUITE" '$3 == s { print $2; exit }')
	[ -n "$suite" ] || fh_die "no $FH_SUITE archive in this machine's apt sources"
	fh_log "debootstrap $FH_SUITE from $suite"
	debootstrap --variant=minbase "$FH_SUITE" "$FH_ROOT" "$suite" >"$tmp/debootstrap.log" 2>&1 ||
		{ tail -n 20 "$tmp/debootstrap.log" >&2; fh_die "debootstrap failed"; }
	fh_sources >"$FH_ROOT/etc/apt/sources.list"
	fh_preseed
	mount -t proc proc "$FH_ROOT/proc"
	mount -t sysfs sysfs "$FH_ROOT/sys"
	cp "$deb" "$FH_ROOT/tmp/"
	fh_log "apt-get install (${#FH_PACKAGES[@]} packages + kernel + runtime libraries)"
	read -ra rtpkgs <<<"$rt"
	{
		fh_chroot apt-get update -q &&
			fh_chroot apt-get install -y -q --no-install-recommends \
				"${FH_PACKAGES[@]}" "${rtpkgs[@]}" "/tmp/$(basename "$deb")"
	} >"$tmp/apt.log" 2>&1 || { tail -n 30 "$tmp/apt.log" >&2; fh_die "apt-get install failed"; }
	rm -f "$FH_ROOT/tmp/"*.deb
	fh_configure
	fh_chroot dpkg -l >"$tmp/packages.txt"
	fh_umount_all "$FH_ROOT"
	fh_log "writing root.img"
	fh_make_image "$tmp"
	rm -rf --one-file-system "$FH_ROOT"
	printf 'abi=%s\nkernel=%s\nsuite=%s\npackages=%s\nruntime=%s\nbuild_seconds=%s\n' \
		"$FH_ABI" "$kver" "$FH_SUITE" "${FH_PACKAGES[*]}" "$rt" "$((SECONDS - t0))" >"$tmp/versions"
	touch "$tmp/.complete"
	rm -rf "$dir"
	mv "$tmp" "$dir"
	trap - EXIT
	# Older images of this kernel (other inputs) are dead weight (~0.5 GB each).
	find "$LAB_CACHE_ROOT" -maxdepth 1 -name "fullhost-$FH_ABI-*" ! -path "$dir" -exec rm -rf {} +
	fh_log "built $dir in $((SECONDS - t0))s: root.img $(du -h --apparent-size "$dir/root.img" | cut -f1) ($(du -h "$dir/root.img" | cut -f1) allocated)"
	echo "$dir"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	fullhost_build "$@"
fi
