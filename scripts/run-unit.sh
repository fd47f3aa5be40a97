#!/usr/bin/env bash
# Run unit test binaries (each bounded by a 60 s timeout), show their output,
# and sum their "FILE: N passed, M failed" summary lines.
# Usage: scripts/run-unit.sh build/unit/test_a build/unit/test_b ...
set -uo pipefail

total_pass=0
total_fail=0
bad=0

if [ $# -eq 0 ]; then
	echo "run-unit: no unit test binaries given" >&2
	echo "unit: 0 passed, 0 failed"
	exit 0
fi

for bin in "$@"; do
	if [ ! -x "$bin" ]; then
		echo "run-unit: $bin: not found or not executable" >&2
		bad=$((bad + 1))
		continue
	fi
	echo "== $bin"
	out=$(timeout --kill-after=5 60 "$bin" 2>&1)
	rc=$?
	printf '%s\n' "$out"
	summary=$(printf '%s\n' "$out" | grep -E ': [0-9]+ passed, [0-9]+ failed$' | tail -n 1)
	if [ -n "$summary" ]; then
		p=$(printf '%s\n' "$summary" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\1/')
		f=$(printf '%s\n' "$summary" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\2/')
		total_pass=$((total_pass + p))
		total_fail=$((total_fail + f))
	fi
	if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
		echo "run-unit: $bin: timed out after 60 s" >&2
		bad=$((bad + 1))
	elif [ $rc -gt 128 ]; then
		echo "run-unit: $bin: killed by signal $((rc - 128))" >&2
		bad=$((bad + 1))
	elif [ $rc -ne 0 ]; then
		echo "run-unit: $bin: exit status $rc" >&2
		bad=$((bad + 1))
	elif [ -z "$summary" ]; then
		echo "run-unit: $bin: no summary line printed" >&2
		bad=$((bad + 1))
	fi
done

echo "unit: $total_pass passed, $total_fail failed"
if [ $bad -ne 0 ] || [ $total_fail -ne 0 ]; then
	[ $bad -ne 0 ] && echo "unit: $bad binar$([ $bad -eq 1 ] && echo y || echo ies) failed, crashed or timed out" >&2
	exit 1
fi
exit 0
