#!/usr/bin/env bash
# Extract the uncompressed vmlinux ELF from an x86 bzImage (vmlinuz).
# Usage: extract-vmlinux.sh VMLINUZ OUT
# The boot protocol's setup header says where the compressed payload is
# (payload_offset at 0x248, payload_length at 0x24c, both relative to the
# protected-mode code after the setup sectors); its magic says the format.
set -euo pipefail
in=$1 out=$2

u() { od -An -tu"$1" -j "$2" -N "$1" "$in" | tr -d ' '; }

[ "$(od -An -c -j 0x202 -N4 "$in" | tr -d ' ')" = HdrS ] ||
	{ echo "extract-vmlinux: $in is not a bzImage" >&2; exit 1; }
setup_sects=$(u 1 0x1f1)
[ "$setup_sects" = 0 ] && setup_sects=4
start=$(((setup_sects + 1) * 512 + $(u 4 0x248)))
len=$(u 4 0x24c)
magic=$(od -An -tx1 -j "$start" -N 6 "$in" | tr -d ' ')

case "$magic" in
02214c18*) dec=(lz4 -dc) ;;
28b52ffd*) dec=(zstd -dc) ;;
fd377a585a00) dec=(xz -dc) ;;
1f8b*) dec=(gzip -dc) ;;
5d00*) dec=(lzma -dc) ;;
*) echo "extract-vmlinux: unknown payload format (magic $magic) in $in" >&2; exit 1 ;;
esac

# Decompressors may complain about trailing bytes; the ELF check decides.
tail -c +$((start + 1)) "$in" | head -c "$len" | "${dec[@]}" >"$out.tmp" 2>/dev/null || true
if [ "$(head -c 4 "$out.tmp" | od -An -tx1 | tr -d ' ')" != 7f454c46 ]; then
	rm -f "$out.tmp"
	echo "extract-vmlinux: ${dec[0]} payload of $in did not decompress to an ELF" >&2
	exit 1
fi
mv "$out.tmp" "$out"
