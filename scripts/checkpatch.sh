#!/usr/bin/env bash
# Kernel style check of kmod/ with the kernel's own checkpatch.pl, taken from Debian's
# linux-source package (the only package that ships it) and cached outside the repository.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${VMI_LAB_CACHE:-/var/cache/vminsight-lab}/checkpatch
pkg=linux-source-6.1

if [ ! -x "$cache/scripts/checkpatch.pl" ]; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tmp" && apt-get download -qq "$pkg" 2>/dev/null)
	dpkg-deb --fsys-tarfile "$tmp"/"$pkg"_*.deb |
		tar -xf - -C "$tmp" --wildcards './usr/src/linux-source-*.tar.xz'
	mkdir -p "$cache"
	tar -xJf "$tmp"/usr/src/linux-source-*.tar.xz -C "$cache" --strip-components=1 --wildcards \
		'*/scripts/checkpatch.pl' '*/scripts/spelling.txt' '*/scripts/const_structs.checkpatch'
fi

cd "$root/kmod"
"$cache/scripts/checkpatch.pl" --no-tree --strict --terse --show-types \
	--ignore FILE_PATH_CHANGES -f ./*.c ./*.h uapi/*.h
# Test-only guest modules (tests/lab/guest-modules/*/).
cd "$root/tests/lab/guest-modules"
"$cache/scripts/checkpatch.pl" --no-tree --strict --terse --show-types \
	--ignore FILE_PATH_CHANGES -f ./*/*.c
