#!/usr/bin/env bash
# Install every Debian package VMInsight needs to build, test and run its lab.
# Idempotent: packages already present are skipped; apt is only touched when
# something is missing. Kernel headers for the lab kernels are resolved from
# the meta-packages at run time because their ABI changes with each upload.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lab/kernels.sh
. "$here/lab/kernels.sh"

pkgs=(
	# userspace build
	build-essential cmake pkgconf git
	libboost-dev libboost-system-dev nlohmann-json3-dev libbpf-dev libelf-dev zlib1g-dev
	libyaml-cpp-dev librdkafka-dev
	# libvirt (domains, metadata, events; virsh and its test:///default driver in tests), the
	# systemd notify protocol, XML for domain metadata
	libvirt-dev libvirt-clients libsystemd-dev libxml2-dev
	libgtest-dev libgmock-dev libbenchmark-dev
	clang clang-format clang-tidy libclang-rt-14-dev
	# kernel module build and style
	kmod bc flex bison libssl-dev
	# installing and packaging (make install, make deb, tests/packaging): DKMS, the unit's
	# offline checks (systemd-analyze; its man page check runs man), man pages, dpkg-shlibdeps
	dkms systemd groff-base man-db dpkg-dev
	# the lab: QEMU, a static busybox, image tooling (debootstrap, e2fsprogs: the full host image)
	qemu-system-x86 qemu-utils seabios ipxe-qemu busybox-static cpio xz-utils zstd lz4 debootstrap e2fsprogs
	binutils file python3 ca-certificates
	# the feed's tests: JSON Schema validation of encoder output, TLS certificates, a real
	# syslog receiver with TLS
	python3-jsonschema openssl rsyslog rsyslog-gnutls
)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done

apt_updated=0
apt_update_once() {
	if [ "$apt_updated" = 0 ]; then
		apt-get update -qq
		apt_updated=1
	fi
}

if [ "${#missing[@]}" -gt 0 ]; then
	echo "deps: installing ${missing[*]}"
	apt_update_once
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Headers for every lab kernel (default 6.1 and the newest 6.12), so the
# module builds against each supported kernel.
for series in ${VMI_KERNELS:-6.1 6.12}; do
	abi=$(vmi_kernel_abi "$series") || { apt_update_once; abi=$(vmi_kernel_abi "$series"); }
	hdr="linux-headers-$abi"
	if ! dpkg-query -W -f='${Status}' "$hdr" 2>/dev/null | grep -q 'install ok installed'; then
		echo "deps: installing $hdr"
		apt_update_once
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$hdr"
	fi
done
