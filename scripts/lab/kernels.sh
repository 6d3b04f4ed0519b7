# shellcheck shell=bash
# Resolve a supported kernel series ("6.1", "6.12") to the ABI string of
# Debian's current cloud kernel package for it, e.g. "6.1.0-56-cloud-amd64".
# Sourced by deps.sh and the lab scripts; needs apt lists (apt-get update).

vmi_kernel_abi() {
	local series=$1 pkg
	case "$series" in
	6.1)
		pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
			sed -n 's/.*Depends: linux-image-\(6\.1\.[^ ]*-cloud-amd64\)$/\1/p' | head -n1)
		;;
	6.12)
		pkg=$(apt-cache pkgnames linux-image-6.12. 2>/dev/null |
			sed -n 's/^linux-image-\(6\.12\.[0-9]*+deb12-cloud-amd64\)$/\1/p' |
			sort -V | tail -n1)
		;;
	*)
		echo "unsupported kernel series: $series (use 6.1 or 6.12)" >&2
		return 2
		;;
	esac
	[ -n "$pkg" ] || { echo "no Debian cloud kernel found for $series" >&2; return 1; }
	echo "$pkg"
}
