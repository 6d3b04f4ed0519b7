#!/usr/bin/env bash
# make uninstall: removes what make install placed for the same DESTDIR (its manifest), the
# now empty directories of VMInsight's own, and, without DESTDIR, the module from DKMS.
# Configuration that existed before the install was kept by it and is kept now.
#   packaging/uninstall.sh BUILD        (DESTDIR env)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=packaging/lib.sh
. "$root/packaging/lib.sh"

build=${1:?usage: uninstall.sh BUILD}
destdir=${DESTDIR:-}
manifest=$(vmi_manifest "$build" "$destdir")
[ -f "$manifest" ] || {
	echo "uninstall: nothing recorded for DESTDIR='$destdir' ($manifest): was make install run with this BUILD and DESTDIR?" >&2
	exit 1
}
version=$(sed -n '1s/^# vminsight \([^,]*\),.*/\1/p' "$manifest")

if [ -z "$destdir" ]; then
	if vmi_systemd_running && systemctl cat vminsightd.service >/dev/null 2>&1; then
		systemctl disable --now vminsightd.service || true
	fi
	if command -v dkms >/dev/null && [ -n "$version" ] &&
		[ -n "$(dkms status -m vminsight -v "$version")" ]; then
		dkms remove -m vminsight -v "$version" --all
	fi
fi

removed=0
dirs=()
while IFS= read -r f; do
	case "$f" in '#'* | '') continue ;; esac
	if [ -e "$destdir$f" ] || [ -L "$destdir$f" ]; then
		rm -f "$destdir$f"
		removed=$((removed + 1))
	fi
	dirs+=("$(dirname "$f")")
done <"$manifest"

# Directories are removed only when empty and only VMInsight's own (a path component that
# starts with "vminsight"), deepest first.
while IFS= read -r d; do
	while [[ "/$d/" == *"/vminsight"* ]] && [ -d "$destdir$d" ]; do
		[[ "$(basename "$d")" == vminsight* ]] || [[ "$d" == */vminsight*/* ]] || break
		rmdir "$destdir$d" 2>/dev/null || break
		d=$(dirname "$d")
	done
done < <(printf '%s\n' "${dirs[@]}" | sort -u -r)

rm -f "$manifest"
echo "uninstall: removed $removed files"
if [ -z "$destdir" ] && vmi_systemd_running; then
	systemctl daemon-reload
fi
