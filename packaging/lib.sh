# shellcheck shell=bash
# Shared by the install, uninstall and .deb scripts: the version, and the module's source
# tree as DKMS wants it. Sourced; ROOT is the repository.

# The version: project(vminsight VERSION x.y.z) in the top-level CMakeLists.txt.
vmi_version() {
	local root=$1 v
	v=$(sed -n 's/^project(vminsight VERSION \([0-9][0-9.]*\).*/\1/p' "$root/CMakeLists.txt")
	[ -n "$v" ] || { echo "no project() VERSION in $root/CMakeLists.txt" >&2; return 1; }
	echo "$v"
}

# The files of the DKMS source tree, relative to it: kmod/'s sources and dkms.conf.
vmi_dkms_files() {
	local root=$1 f
	(cd "$root/kmod" && for f in Kbuild Makefile ./*.c ./*.h uapi/*.h; do echo "${f#./}"; done)
	echo dkms.conf
}

# vmi_stage_dkms_source ROOT DIR VERSION: DIR becomes /usr/src/vminsight-VERSION's content.
vmi_stage_dkms_source() {
	local root=$1 dir=$2 version=$3 f
	mkdir -p "$dir/uapi"
	while read -r f; do
		[ "$f" = dkms.conf ] && continue
		install -m 0644 "$root/kmod/$f" "$dir/$f"
	done < <(vmi_dkms_files "$root")
	sed "s/@VERSION@/$version/" "$root/packaging/dkms/dkms.conf" >"$dir/dkms.conf"
	chmod 0644 "$dir/dkms.conf"
}

# True when a kernel's headers are there to build against (what dkms needs).
vmi_have_headers() {
	[ -e "/lib/modules/$1/build/Makefile" ]
}

# Where make install records what it placed for this DESTDIR (make uninstall reads it):
# one absolute path per line, without DESTDIR.
vmi_manifest() {
	local build=$1 destdir=${2:-}
	if [ -z "$destdir" ]; then
		echo "$build/install-manifest.txt"
	else
		echo "$build/install-manifest-$(printf '%s' "$destdir" | md5sum | cut -c1-12).txt"
	fi
}

# True when systemd runs this machine (not merely installed).
vmi_systemd_running() {
	[ -d /run/systemd/system ]
}
