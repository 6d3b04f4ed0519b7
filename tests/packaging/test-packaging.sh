#!/usr/bin/env bash
# Installation and packaging, without the lab: make install into a DESTDIR (layout, the
# unit's verification and sandboxing, the installed daemon starting with the unit's own
# command line and default configuration, man pages, completion), make deb (fields, files,
# conffiles), the DKMS source tree of the package building vminsight.ko for each supported
# kernel in a private DKMS tree, and make uninstall leaving nothing behind.
#   tests/packaging/test-packaging.sh [BUILD]   (BUILD/release built, as make test does)
# Prints PASS/FAIL/SKIP per check and what failed; the exit status is the result.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
# shellcheck source=packaging/lib.sh
. packaging/lib.sh
# shellcheck source=scripts/lab/kernels.sh
. scripts/lab/kernels.sh

build=$(mkdir -p "${1:-${BUILD:-build}}" && cd "${1:-${BUILD:-build}}" && pwd)
version=$(vmi_version "$root")
tmp=$(mktemp -d /tmp/vmi-packaging.XXXXXX)
dest=$tmp/dest
daemon_pid=
cleanup() {
	[ -z "$daemon_pid" ] || kill "$daemon_pid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

failed=()
passed=0
fail() { # fail CHECK WHY
	echo "FAIL $1: $2"
	failed+=("$1: $2")
}
pass() {
	echo "PASS $1"
	passed=$((passed + 1))
}
skip() { echo "SKIP $1: $2"; }

# --- make install ---------------------------------------------------------------------------
expected_files=(
	usr/sbin/vminsightd usr/bin/vminsightctl usr/bin/vminsight-inspect
	usr/lib/systemd/system/vminsightd.service
	etc/vminsight/feed.json etc/vminsight/policies/default.yaml etc/default/vminsightd
	usr/share/man/man8/vminsightd.8.gz usr/share/man/man8/vminsightctl.8.gz
	usr/share/man/man1/vminsight-inspect.1.gz
	usr/share/bash-completion/completions/vminsightctl
	usr/share/doc/vminsight/README.md
	"usr/src/vminsight-$version/dkms.conf" "usr/src/vminsight-$version/Kbuild"
	"usr/src/vminsight-$version/Makefile" "usr/src/vminsight-$version/uapi/vminsight.h"
)

check_install() {
	local log=$tmp/install.log f missing=()
	# KERNELS= : no prebuild of the module here; the DKMS check below builds it.
	if ! make -s install DESTDIR="$dest" BUILD="$build" KERNELS= >"$log" 2>&1; then
		cat "$log"
		fail install "make install DESTDIR=$dest failed"
		return
	fi
	for f in "${expected_files[@]}"; do [ -f "$dest/$f" ] || missing+=("$f"); done
	for f in usr/sbin/vminsightd usr/bin/vminsightctl usr/bin/vminsight-inspect; do
		[ -x "$dest/$f" ] || missing+=("$f (executable)")
	done
	if [ "${#missing[@]}" -gt 0 ]; then
		fail install "missing: ${missing[*]}"
	elif [ -e "$dest/usr/etc" ] || [ -e "$dest/usr/local" ]; then
		fail install "files under usr/etc or usr/local: $(find "$dest/usr/etc" "$dest/usr/local" 2>/dev/null | head -3)"
	elif [ "$(find "$dest" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort | tr '\n' ' ')" != "etc usr " ]; then
		fail install "unexpected top-level entries: $(find "$dest" -mindepth 1 -maxdepth 1 -printf '%f ')"
	else
		pass install
	fi
}

# A second install keeps configuration an administrator changed.
check_reinstall_keeps_config() {
	local log=$tmp/reinstall.log
	echo '# changed by the administrator' >>"$dest/etc/default/vminsightd"
	if ! make -s install DESTDIR="$dest" BUILD="$build" KERNELS= >"$log" 2>&1; then
		cat "$log"
		fail reinstall "second make install failed"
	elif ! grep -q 'changed by the administrator' "$dest/etc/default/vminsightd"; then
		fail reinstall "/etc/default/vminsightd was overwritten"
	else
		pass reinstall-keeps-config
	fi
}

# The installed unit, with its daemon at its DESTDIR path: verify offline, no warnings.
check_unit_verify() {
	local unit=$tmp/verify/vminsightd.service out
	if ! command -v systemd-analyze >/dev/null; then
		skip unit-verify "no systemd-analyze"
		return
	fi
	mkdir -p "$tmp/verify"
	sed "s|/usr/sbin/vminsightd|$dest/usr/sbin/vminsightd|" \
		"$dest/usr/lib/systemd/system/vminsightd.service" >"$unit"
	if ! out=$(cd "$tmp" && MANPATH=$dest/usr/share/man systemd-analyze verify "$unit" 2>&1); then
		fail unit-verify "systemd-analyze verify: $out"
	elif [ -n "$out" ]; then
		fail unit-verify "systemd-analyze verify warned: $out"
	else
		pass unit-verify
	fi
}

check_unit_security() {
	local out level
	if ! command -v systemd-analyze >/dev/null; then
		skip unit-security "no systemd-analyze"
		return
	fi
	out=$(cd "$tmp" && systemd-analyze security --offline=true --no-pager \
		"$dest/usr/lib/systemd/system/vminsightd.service" 2>&1) || true
	level=$(sed -n 's/.*Overall exposure level for vminsightd.service: \([0-9.]*\).*/\1/p' <<<"$out")
	if [ -z "$level" ]; then
		fail unit-security "no exposure level in: $(tail -n3 <<<"$out")"
	elif awk -v l="$level" 'BEGIN { exit !(l > 5.0) }'; then
		fail unit-security "exposure $level > 5.0: $(grep '✗' <<<"$out" | head -n 8)"
	else
		echo "     exposure $level"
		pass unit-security
	fi
}

# The installed daemon, run with the unit's own ExecStart (paths moved into $tmp, libvirt's
# test driver instead of qemu:///system), loads the default rules and feed, serves the control
# socket and writes the file sink.
check_daemon_starts() {
	local run=$tmp/run exec status i
	mkdir -p "$run/state" "$run/log" "$run/rt"
	sed -e "s|/var/lib/vminsight|$run/state|g" -e "s|/var/log/vminsight|$run/log|g" \
		"$dest/etc/vminsight/feed.json" >"$run/feed.json"
	exec=$(sed -n 's/^ExecStart=//p' "$dest/usr/lib/systemd/system/vminsightd.service")
	exec=${exec//qemu:\/\/\/system/test:\/\/\/default}
	exec=${exec//\/etc\/vminsight\/feed.json/$run/feed.json}
	exec=${exec//\/etc\/vminsight/$dest/etc/vminsight}
	exec=${exec//\/run\/vminsight/$run/rt}
	exec=${exec//\/var\/lib\/vminsight/$run/state}
	exec=${exec//\$VMINSIGHTD_OPTS/}
	exec=${exec//\/usr\/sbin/$dest/usr/sbin}
	read -r -a argv <<<"$exec"
	"${argv[@]}" >"$run/daemon.log" 2>&1 &
	daemon_pid=$!
	for ((i = 0; i < 100; i++)); do
		[ -S "$run/rt/control.sock" ] && break
		kill -0 "$daemon_pid" 2>/dev/null || break
		sleep 0.1
	done
	status=$("$dest/usr/bin/vminsightctl" --socket "$run/rt/control.sock" --json status 2>&1) || true
	kill "$daemon_pid" 2>/dev/null || true
	wait "$daemon_pid" 2>/dev/null || true
	daemon_pid=
	if ! python3 -c '
import json, sys
s = json.loads(sys.argv[1])
sinks = s["feed"]["sinks"]
assert s["ok"] and s["libvirt"]["state"] == "connected", "libvirt not connected"
assert s["rules"] > 0, "no rules loaded"
assert [(k["name"], k["type"], k["up"]) for k in sinks] == [("local", "file", True)], sinks
' "$status" 2>"$run/why"; then
		fail daemon-starts "status: $(tail -n1 "$run/why"); daemon: $(tail -n3 "$run/daemon.log")"
	elif ! grep -q libvirt-connected "$run/log/events.jsonl" 2>/dev/null; then
		fail daemon-starts "no libvirt-connected event in the file sink's events.jsonl"
	else
		pass daemon-starts
	fi
}

check_man_pages() {
	local page src warn bad=()
	if ! command -v groff >/dev/null; then
		skip man-pages "no groff"
		return
	fi
	for page in vminsightd.8 vminsightctl.8 vminsight-inspect.1; do
		src=docs/man/$page
		warn=$(LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$src" 2>&1)
		[ -z "$warn" ] || bad+=("$page: $warn")
		zcat "$dest/usr/share/man/man${page##*.}/$page.gz" | cmp -s - "$src" ||
			bad+=("$page: installed copy differs")
	done
	if [ "${#bad[@]}" -gt 0 ]; then fail man-pages "${bad[*]}"; else pass man-pages; fi
}

check_completion() {
	local out
	out=$(bash -c '
		shopt -s extglob
		. "$1"
		t() {
			COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=()
			_vminsightctl; echo "${COMPREPLY[*]}"
		}
		t vminsightctl en
		t vminsightctl policy ""
		t vminsightctl --connect test:///default enable ""
		t vminsightctl events --f
	' _ "$dest/usr/share/bash-completion/completions/vminsightctl" 2>&1)
	if [ "$out" != $'enable\ncheck reload\ntest\n--follow --filter' ]; then
		fail completion "got: $(tr '\n' '|' <<<"$out")"
		return
	fi
	# A domain's name is its owner's choice: completing it must never run it.
	local node=$tmp/completion-node.xml hostile
	# shellcheck disable=SC2016 # the $(...) is the point: it must stay unexpanded
	hostile='$(touch${IFS}completion-ran)' # libvirt names cannot hold '/': runs in $tmp
	cat >"$node" <<XML
<node><domain type='test'><name>web1</name><memory>65536</memory><os><type>hvm</type></os></domain>
<domain type='test'><name>$hostile</name><memory>65536</memory><os><type>hvm</type></os></domain></node>
XML
	out=$(cd "$tmp" && bash -c '
		shopt -s extglob
		. "$1"
		COMP_WORDS=(vminsightctl --connect "test://$2" disable ""); COMP_CWORD=4; COMPREPLY=()
		_vminsightctl; printf "%s\n" "${COMPREPLY[@]}"
	' _ "$dest/usr/share/bash-completion/completions/vminsightctl" "$node" 2>&1)
	if [ -e "$tmp/completion-ran" ]; then
		fail completion "a domain name was executed by the completion"
	elif ! grep -qx 'web1' <<<"$out" || ! grep -qF 'touch' <<<"$out"; then
		fail completion "hostile-name domains: got: $(tr '\n' '|' <<<"$out")"
	else
		pass completion
	fi
}

# --- make deb -------------------------------------------------------------------------------
check_deb() {
	local log=$tmp/deb.log deb dkms info files want bad=()
	if ! make -s deb BUILD="$build" >"$log" 2>&1; then
		cat "$log"
		fail deb "make deb failed"
		return
	fi
	deb=$build/deb/vminsight_${version}_$(dpkg --print-architecture).deb
	dkms=$build/deb/vminsight-dkms_${version}_all.deb
	for f in "$deb" "$dkms"; do [ -f "$f" ] || bad+=("no $f"); done
	if [ "${#bad[@]}" -gt 0 ]; then
		fail deb "${bad[*]}"
		return
	fi
	info=$(dpkg-deb -I "$deb")
	for want in "Package: vminsight" "Version: $version" "Architecture: $(dpkg --print-architecture)" \
		"Depends: .*libc6 (>= " "Depends: .*libvirt0" "Depends: .*libsystemd0" \
		"Recommends: vminsight-dkms (= $version)" " postinst " " prerm " " postrm " " conffiles "; do
		grep -q -- "$want" <<<"$info" || bad+=("vminsight: no '$want' in dpkg-deb -I")
	done
	[ "$(dpkg-deb -f "$deb" Maintainer)" != "" ] || bad+=("vminsight: no Maintainer")
	if [ "$(dpkg-deb -I "$deb" conffiles | sort | tr '\n' ' ')" != \
		"/etc/default/vminsightd /etc/vminsight/feed.json /etc/vminsight/policies/default.yaml " ]; then
		bad+=("vminsight: conffiles are: $(dpkg-deb -I "$deb" conffiles | tr '\n' ' ')")
	fi
	files=$(dpkg-deb -c "$deb" | awk '{ print $1, $2, $6 }')
	for want in "-rwxr-xr-x root/root ./usr/sbin/vminsightd" "-rwxr-xr-x root/root ./usr/bin/vminsightctl" \
		"-rwxr-xr-x root/root ./usr/bin/vminsight-inspect" ./usr/lib/systemd/system/vminsightd.service \
		./etc/vminsight/feed.json ./etc/vminsight/policies/default.yaml ./etc/default/vminsightd \
		./usr/share/man/man8/vminsightd.8.gz ./usr/share/man/man8/vminsightctl.8.gz \
		./usr/share/man/man1/vminsight-inspect.1.gz ./usr/share/bash-completion/completions/vminsightctl; do
		grep -q -- "$want\$" <<<"$files" || bad+=("vminsight: no $want")
	done
	grep -q -- '/usr/src/' <<<"$files" && bad+=("vminsight: carries the module source")
	# Binaries are stripped in the package.
	dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/sbin/vminsightd >"$tmp/vminsightd.deb"
	file "$tmp/vminsightd.deb" | grep -q 'not stripped' && bad+=("vminsight: vminsightd not stripped")

	info=$(dpkg-deb -I "$dkms")
	for want in "Package: vminsight-dkms" "Version: $version" "Architecture: all" "Depends: dkms" \
		" postinst " " prerm "; do
		grep -q -- "$want" <<<"$info" || bad+=("vminsight-dkms: no '$want' in dpkg-deb -I")
	done
	files=$(dpkg-deb -c "$dkms" | awk '{ print $6 }')
	for want in dkms.conf Kbuild Makefile main.c kvm_shim.c uapi/vminsight.h; do
		grep -qx -- "./usr/src/vminsight-$version/$want" <<<"$files" || bad+=("vminsight-dkms: no $want")
	done
	dpkg-deb -x "$dkms" "$tmp/dkms-root"
	grep -qx "PACKAGE_VERSION=\"$version\"" "$tmp/dkms-root/usr/src/vminsight-$version/dkms.conf" ||
		bad+=("vminsight-dkms: dkms.conf does not say PACKAGE_VERSION=\"$version\"")
	if command -v shellcheck >/dev/null; then
		dpkg-deb -e "$deb" "$tmp/ctl-vminsight"
		dpkg-deb -e "$dkms" "$tmp/ctl-dkms"
		shellcheck -s sh "$tmp"/ctl-vminsight/{postinst,prerm,postrm} "$tmp"/ctl-dkms/{postinst,prerm} \
			>"$tmp/sc.log" 2>&1 || bad+=("maintainer scripts: $(head -n5 "$tmp/sc.log")")
	fi
	if [ "${#bad[@]}" -gt 0 ]; then fail deb "$(printf '%s; ' "${bad[@]}")"; else pass deb; fi
}

# The package's module source, built by DKMS for each supported kernel in a private tree
# (nothing under /var/lib/dkms; a throwaway signing key).
check_dkms_build() {
	local series abi tree=$tmp/dkms-tree src=$tmp/dkms-root/usr/src ko log
	if ! command -v dkms >/dev/null; then
		fail dkms-build "dkms is not installed (scripts/deps.sh installs it)"
		return
	fi
	if [ ! -f "$src/vminsight-$version/dkms.conf" ]; then
		fail dkms-build "no module source from the vminsight-dkms package (see deb)"
		return
	fi
	mkdir -p "$tree"
	export mok_signing_key=$tmp/mok.key mok_certificate=$tmp/mok.pub
	if ! dkms add -m vminsight -v "$version" --dkmstree "$tree" --sourcetree "$src" >"$tmp/dkms-add.log" 2>&1; then
		fail dkms-build "dkms add: $(tail -n3 "$tmp/dkms-add.log")"
		return
	fi
	for series in ${VMI_KERNELS:-6.1 6.12}; do
		if ! abi=$(vmi_kernel_abi "$series"); then
			fail "dkms-build-$series" "no kernel ABI for $series"
			continue
		fi
		if ! vmi_have_headers "$abi"; then
			fail "dkms-build-$series" "no headers for $abi (scripts/deps.sh installs them)"
			continue
		fi
		log=$tmp/dkms-$series.log
		if ! dkms build -m vminsight -v "$version" -k "$abi" --dkmstree "$tree" --sourcetree "$src" \
			>"$log" 2>&1; then
			fail "dkms-build-$series" "dkms build for $abi: $(tail -n5 "$log"; tail -n 20 "$tree/vminsight/$version/build/make.log" 2>/dev/null)"
		elif ! ko=$(compgen -G "$tree/vminsight/$version/$abi/*/module/vminsight.ko*"); then
			# (compressed as the kernel's own modules are: .ko.xz on 6.12)
			fail "dkms-build-$series" "no vminsight.ko in $tree/vminsight/$version/$abi"
		elif [ "$(modinfo -F vermagic "$ko" | cut -d' ' -f1)" != "$abi" ]; then
			fail "dkms-build-$series" "vminsight.ko is for $(modinfo -F vermagic "$ko"), not $abi"
		else
			pass "dkms-build-$series"
		fi
	done
	unset mok_signing_key mok_certificate
}

# --- make uninstall -------------------------------------------------------------------------
check_uninstall() {
	local log=$tmp/uninstall.log left
	if ! make -s uninstall DESTDIR="$dest" BUILD="$build" >"$log" 2>&1; then
		cat "$log"
		fail uninstall "make uninstall DESTDIR=$dest failed"
		return
	fi
	left=$(find "$dest" ! -type d)
	if [ -n "$left" ]; then
		fail uninstall "left behind: $(tr '\n' ' ' <<<"$left")"
	elif [ -e "$dest/etc/vminsight" ] || [ -e "$dest/usr/src/vminsight-$version" ] ||
		[ -e "$dest/usr/share/doc/vminsight" ]; then
		fail uninstall "VMInsight's own directories left behind"
	elif [ -f "$(vmi_manifest "$build" "$dest")" ]; then
		fail uninstall "its install manifest is still there"
	else
		pass uninstall
	fi
}

check_shellcheck() {
	if ! command -v shellcheck >/dev/null; then
		skip shellcheck "shellcheck is not installed"
		return
	fi
	if shellcheck -x packaging/*.sh packaging/deb/build.sh packaging/completion/vminsightctl \
		tests/packaging/test-packaging.sh >"$tmp/shellcheck.log" 2>&1; then
		pass shellcheck
	else
		fail shellcheck "$(head -n 20 "$tmp/shellcheck.log")"
	fi
}

check_install
if [ -f "$dest/usr/sbin/vminsightd" ]; then
	check_reinstall_keeps_config
	check_unit_verify
	check_unit_security
	check_daemon_starts
	check_man_pages
	check_completion
fi
check_deb
check_dkms_build
check_uninstall
check_shellcheck

echo "packaging: $passed passed, ${#failed[@]} failed"
if [ "${#failed[@]}" -gt 0 ]; then
	printf '  failed: %s\n' "${failed[@]}"
	exit 1
fi
