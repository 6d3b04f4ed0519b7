#!/usr/bin/env bash
# Userspace C++ must match .clang-format (kernel code follows the kernel's own style).
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files -co --exclude-standard -- 'daemon/*.[ch]pp' 'feed/*.[ch]pp' 'libvmi_bridge/*.[ch]pp' 'policy/*.[ch]pp' 'tests/*.[ch]pp')
[ "${#files[@]}" -gt 0 ] || exit 0
clang-format --dry-run -Werror "${files[@]}"
