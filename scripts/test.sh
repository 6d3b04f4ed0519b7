#!/usr/bin/env bash
# make test: every test VMInsight has, ending with one "N passed, M failed" line.
#   unit tests (GoogleTest via ctest), the same under ASan+UBSan, the feed's under TSan,
#   formatting, kernel style, a bounded libFuzzer run over guest-memory parsing, the kernel
#   module built against each supported kernel, and the lab scenarios on each lab kernel
#   (busybox lab host, then the full host: systemd and libvirtd, VMInsight installed from its
#   package).
# VMI_TEST_LAB=0 skips the lab (it needs a few minutes of TCG time).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
build=${BUILD:-build}
jobs=$(nproc)
passed=0 failed=0
summary=()

note() { # note NAME STATUS
	summary+=("$2 $1")
	if [ "$2" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}

step() { # step NAME COMMAND...: one test that passes when COMMAND does
	local name=$1
	shift
	echo "=== $name"
	if "$@"; then note "$name" PASS; else note "$name" FAIL; fi
}

# ctest_suite NAME BUILD_DIR CMAKE_ARGS...: configure, build, count each test. SUITE_TARGET
# (a target to build instead of all) and SUITE_CTEST (ctest's -R/-E) narrow it.
ctest_suite() {
	local name=$1 dir=$2 log
	shift 2
	echo "=== $name"
	if ! cmake -S . -B "$dir" "$@" >"$dir.configure.log" 2>&1; then
		cat "$dir.configure.log"
		note "$name-configure" FAIL
		return
	fi
	if ! cmake --build "$dir" -j"$jobs" ${SUITE_TARGET:+--target "$SUITE_TARGET"}; then
		note "$name-build" FAIL
		return
	fi
	log=$(mktemp)
	# shellcheck disable=SC2086 # SUITE_CTEST is ctest options, split on purpose
	(cd "$dir" && ctest --output-on-failure -j"$jobs" ${SUITE_CTEST:-}) | tee "$log"
	local line total bad
	line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n1)
	rm -f "$log"
	if [ -z "$line" ]; then
		note "$name" FAIL
		return
	fi
	bad=$(sed -E 's/.*tests passed, ([0-9]+) tests? failed.*/\1/' <<<"$line")
	total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")
	passed=$((passed + total - bad))
	failed=$((failed + bad))
	summary+=("$([ "$bad" = 0 ] && echo PASS || echo FAIL) $name ($((total - bad))/$total)")
}

mkdir -p "$build"
ctest_suite unit "$build/release" -DCMAKE_BUILD_TYPE=RelWithDebInfo
ctest_suite unit-asan-ubsan "$build/asan" -DCMAKE_BUILD_TYPE=Debug -DVMI_SANITIZE=ON
# The feed's threads (spool, read-ahead and sink workers, flusher) under ThreadSanitizer.
# Not Kafka's: librdkafka is not built for TSan, whose runtime then crashes in it.
SUITE_TARGET=feed_tests SUITE_CTEST="-R ^(Feed|Spool) -E ^FeedKafka" \
	ctest_suite unit-tsan-feed "$build/tsan" -DCMAKE_BUILD_TYPE=Debug -DVMI_SANITIZE_THREAD=ON

step clang-format bash scripts/check-format.sh
step checkpatch bash scripts/checkpatch.sh
step policy-check "$build/release/daemon/vminsightctl" policy check policies/*.yaml
step packaging bash tests/packaging/test-packaging.sh "$build"
step fuzz-guest-memory bash scripts/fuzz.sh "${VMI_FUZZ_SECONDS:-60}"
for k in ${VMI_KERNELS:-6.1 6.12}; do
	step "kmod-build-$k" make -s kmod KERNELS="$k" BUILD="$build"
done

# lab_step NAME KERNEL SCENARIO: one lab run; when it fails, its verdict lines (the check's
# findings, the lab's FAIL reason, the lab console's last lines) are repeated under the
# summary, where a CI log's tail shows.
# A lab that hangs with no result and no panic on its console (TCG-emulated KVM, rarely) gets
# one more run; the summary says so and keeps the hung run's console tail. A panic, a WARN, a
# failed check or a second hang fails the step.
why=()
lab_run() { # lab_run KERNEL SCENARIO LOG
	bash -o pipefail -c 'bash scripts/lab-test.sh "$1" "$2" 2>&1 | tee "$3"' _ "$@"
}
lab_verdict() { # lab_verdict LOG: the lines worth repeating
	grep -E '^(check|lab): |FAIL' "$1" | grep -v '^lab: \(running\|artifacts\)' | tail -n 12
	sed -n '/^----- last 40 lines of /,$p' "$1" | grep -v '^lab: ' | tail -n 16
}
lab_hung() { # lab_hung LOG: timed out without a result or a panic
	grep -q '^lab: FAIL: timeout after' "$1" && ! grep -qE 'Kernel panic|WARNING: |BUG: |Oops: ' "$1"
}
lab_step() {
	local name=$1 log
	log=$(mktemp)
	echo "=== $name"
	if lab_run "$2" "$3" "$log"; then
		note "$name" PASS
	elif lab_hung "$log"; then
		why+=("--- $name: hung, run again" "$(lab_verdict "$log")")
		echo "=== $name (again: the first run hung)"
		if lab_run "$2" "$3" "$log"; then
			note "$name (second run; the first hung)" PASS
		else
			note "$name" FAIL
			why+=("--- $name" "$(lab_verdict "$log")")
		fi
	else
		note "$name" FAIL
		why+=("--- $name" "$(lab_verdict "$log")")
	fi
	rm -f "$log"
}

if [ "${VMI_TEST_LAB:-1}" != 0 ]; then
	for k in ${VMI_KERNELS:-6.1 6.12}; do
		for s in tests/lab/scenarios/*/; do
			[ "$(basename "$s")" = demo ] && continue
			lab_step "lab-$k-$(basename "$s")" "$k" "$s"
		done
		# The full host: systemd, libvirtd, VMInsight installed from its .deb.
		for s in tests/lab/fullhost/*/; do
			lab_step "fullhost-$k-$(basename "$s")" "$k" "$s"
		done
	done
fi

echo
printf '%s\n' "${summary[@]}"
[ "${#why[@]}" -gt 0 ] && printf '%s\n' "${why[@]}"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
