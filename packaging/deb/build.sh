#!/usr/bin/env bash
# make deb: two Debian packages from the built tree, with dpkg-deb (no debian/ source tree):
#   BUILD/deb/vminsight_VERSION_ARCH.deb     userspace, systemd unit, configuration
#                                             (conffiles), man pages, completion
#   BUILD/deb/vminsight-dkms_VERSION_all.deb  the module's source for DKMS
# Depends of the first come from dpkg-shlibdeps on its binaries.
#   packaging/deb/build.sh BUILD   (BUILD/release is the cmake build; DEBFULLNAME, DEBEMAIL)
set -euo pipefail
umask 022
root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=packaging/lib.sh
. "$root/packaging/lib.sh"

build=$(cd "${1:?usage: build.sh BUILD}" && pwd)
version=$(vmi_version "$root")
arch=$(dpkg --print-architecture)
maintainer="${DEBFULLNAME:-VMInsight maintainers} <${DEBEMAIL:-vminsight@localhost}>"
out=$build/deb
work=$out/work # dpkg-shlibdeps wants debian/control and debian/PACKAGE
here=$root/packaging/deb

rm -rf "$work" "$out"/*.deb
mkdir -p "$work/debian"

# control FILE PACKAGE_DIR DEPENDS: the package's control file with its fields filled in.
control() {
	local size
	size=$(du -sk --exclude=DEBIAN "$2" | cut -f1)
	sed -e "s|@VERSION@|$version|g" -e "s|@ARCH@|$arch|g" -e "s|@MAINTAINER@|$maintainer|g" \
		-e "s|@SIZE@|$size|g" -e "s|@DEPENDS@|$3|g" "$1" >"$2/DEBIAN/control"
}

# scripts NAME PACKAGE_DIR: maintainer scripts, with the version filled in.
scripts() {
	local s
	for s in postinst prerm postrm; do
		[ -f "$here/$1/$s" ] || continue
		sed "s|@VERSION@|$version|g" "$here/$1/$s" >"$2/DEBIAN/$s"
		chmod 0755 "$2/DEBIAN/$s"
	done
}

md5sums() { # the payload's checksums, as dpkg records them
	(cd "$1" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
		xargs -0 -r md5sum >DEBIAN/md5sums)
}

package() { # package PACKAGE_DIR: the .deb, root-owned files
	dpkg-deb --root-owner-group -Zxz --build "$1" "$out" >/dev/null
}

# vminsight: what cmake --install lays out under /usr, stripped, and /etc.
pkg=$work/debian/vminsight
mkdir -p "$pkg/DEBIAN"
DESTDIR=$pkg cmake --install "$build/release" --prefix /usr --strip >/dev/null
printf 'Source: vminsight\n\nPackage: vminsight\nArchitecture: any\n' >"$work/debian/control"
mapfile -t bins < <(find "$pkg/usr/bin" "$pkg/usr/sbin" -type f -perm -u+x)
depends=$(cd "$work" && dpkg-shlibdeps -O "${bins[@]/#/-e}" | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
(cd "$pkg" && find etc -type f | sort | sed 's|^|/|') >"$pkg/DEBIAN/conffiles"
scripts vminsight "$pkg"
md5sums "$pkg"
control "$here/vminsight/control" "$pkg" "$depends"
package "$pkg"

# vminsight-dkms: /usr/src/vminsight-VERSION with dkms.conf.
pkg=$work/debian/vminsight-dkms
mkdir -p "$pkg/DEBIAN"
vmi_stage_dkms_source "$root" "$pkg/usr/src/vminsight-$version" "$version"
scripts vminsight-dkms "$pkg"
md5sums "$pkg"
control "$here/vminsight-dkms/control" "$pkg" ""
package "$pkg"

rm -rf "$work"
ls -l "$out"/*.deb
