#!/usr/bin/env bash
# make install: the userspace build (cmake --install), and the kernel module's source for
# DKMS in /usr/src/vminsight-VERSION. Without DESTDIR, also registers the module with DKMS
# and builds it for the running kernel when its headers are there.
#   packaging/install.sh BUILD        (BUILD/release is the cmake build; PREFIX, DESTDIR env)
set -euo pipefail
umask 022
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=packaging/lib.sh
. "$root/packaging/lib.sh"

build=${1:?usage: install.sh BUILD}
prefix=${PREFIX:-/usr}
destdir=${DESTDIR:-}
version=$(vmi_version "$root")
manifest=$(vmi_manifest "$build" "$destdir")
src=/usr/src/vminsight-$version

[ -f "$build/release/cmake_install.cmake" ] || {
	echo "install: $build/release is not built (make userspace)" >&2
	exit 1
}

# Userspace, unit, configuration, man pages, completion, documentation.
DESTDIR=$destdir cmake --install "$build/release" --prefix "$prefix"

# A module of this version already known to DKMS is replaced, as Debian's dkms packages do.
if [ -z "$destdir" ] && command -v dkms >/dev/null && [ -n "$(dkms status -m vminsight -v "$version")" ]; then
	dkms remove -m vminsight -v "$version" --all
fi
rm -rf "$destdir$src"
vmi_stage_dkms_source "$root" "$destdir$src" "$version"

# The record for uninstall: what this install placed, and what an earlier one for the same
# DESTDIR placed and is still there (configuration kept from it, files since dropped).
{
	while IFS= read -r f || [ -n "$f" ]; do echo "${f#"$destdir"}"; done <"$build/release/install_manifest.txt"
	vmi_dkms_files "$root" | sed "s|^|$src/|"
	if [ -f "$manifest" ]; then
		while IFS= read -r f; do
			[[ "$f" == /* ]] && [ -e "$destdir$f" ] && echo "$f"
		done <"$manifest"
	fi
} | sort -u >"$manifest.new"
{
	echo "# vminsight $version, DESTDIR=$destdir, PREFIX=$prefix"
	cat "$manifest.new"
} >"$manifest"
rm -f "$manifest.new"
echo "install: $(grep -vc '^#' "$manifest") files (list: $manifest)"

[ -z "$destdir" ] || exit 0

kernel=$(uname -r)
if command -v dkms >/dev/null; then
	dkms add -m vminsight -v "$version"
	if vmi_have_headers "$kernel"; then
		dkms build -m vminsight -v "$version" -k "$kernel"
		dkms install -m vminsight -v "$version" -k "$kernel"
	else
		echo "install: no headers for the running kernel $kernel: vminsight.ko is not built for it;"
		echo "         DKMS builds it when linux-headers-$kernel is installed (or: dkms autoinstall)."
	fi
else
	echo "install: dkms is not installed: the module's source is in $src (build it with"
	echo "         make -C $src KDIR=/lib/modules/\$(uname -r)/build)."
fi
if vmi_systemd_running; then
	systemctl daemon-reload
	echo "install: start monitoring with: systemctl enable --now vminsightd"
fi
