#!/usr/bin/env bash
# Run the end-to-end tests (tests/e2e) against the sluice binary in SLUICE_BIN
# (default: build/sluice). Extra arguments go to pytest, e.g.
#   scripts/run-e2e.sh -k auth
#   SLUICE_BIN=/usr/sbin/pgbouncer scripts/run-e2e.sh   # check the tests on PgBouncer
# Uses Debian's interpreter on purpose: the pytest/psycopg packages live there.
set -euo pipefail

cd "$(dirname "$0")/.."
export SLUICE_BIN="${SLUICE_BIN:-$PWD/build/sluice}"
export PYTHONDONTWRITEBYTECODE=1
PY=/usr/bin/python3

if [ ! -x "$SLUICE_BIN" ]; then
	echo "run-e2e: sluice binary not found: $SLUICE_BIN (run make first)" >&2
	exit 1
fi
if ! "$PY" -c 'import pytest, psycopg' 2>/dev/null; then
	echo "run-e2e: $PY lacks pytest or psycopg; run scripts/install-deps.sh" >&2
	exit 1
fi

# Tests run in E2E_JOBS processes at once (pytest-xdist, Debian's
# python3-pytest-xdist), each with its own PostgreSQL: the tests mostly wait
# on sockets and timers (about one CPU busy in all), so five share two CPUs
# well: the whole suite took 292 s with three and 232 s with six, 339 s
# and 302 s under ASan with three and five. E2E_JOBS=1, or no xdist, runs
# them one after the other.
jobs="${E2E_JOBS:-5}"
case "$jobs" in
''|*[!0-9]*) echo "run-e2e: E2E_JOBS must be a whole number, not '$jobs'" >&2; exit 2 ;;
esac
parallel=()
if [ "$jobs" -gt 1 ] && "$PY" -c 'import xdist' 2>/dev/null; then
	# loadgroup: tests marked xdist_group(name) share one process (and
	# whatever module fixture it builds); the rest spread as before.
	parallel=(-n "$jobs" --dist loadgroup)
fi

echo "e2e: testing $SLUICE_BIN${parallel[*]:+ (${jobs} at once)}"
# Each test has its own limit (tests/e2e/pytest.ini); this bounds the whole run.
# Test paths given on the command line replace the default tests/e2e.
paths=(tests/e2e)
for a in "$@"; do
	case "$a" in
	-*) ;;
	*) if [ -e "${a%%::*}" ]; then paths=(); break; fi ;;
	esac
done
exec timeout --kill-after=30 1200 "$PY" -m pytest -q -p no:cacheprovider ${parallel[@]+"${parallel[@]}"} \
	${paths[@]+"${paths[@]}"} "$@"
