#!/usr/bin/env bash
# Build the libFuzzer harnesses of tests/fuzz/ into build/fuzz/ and run each
# for a bounded time. Prints the executions of every target (libFuzzer's
# final "Done N runs" line) and their total; exits non-zero when a target
# crashed, leaked, timed out, ran out of memory or did not finish cleanly.
#
# Environment:
#   FUZZ_SECONDS   seconds per target (default 60)
#   FUZZ_TARGETS   space separated subset (default: all of them)
#   FUZZ_JOBS      targets run at the same time (default 1)
#   FUZZ_CC        compiler (default clang-14, else clang)
#   FUZZ_FRESH=1   start from the repo seeds only (drop build/fuzz/corpus-*)
#
# The repo seeds (tests/fuzz/corpus/NAME) are copied into
# build/fuzz/corpus-NAME, which libFuzzer grows; the repo is never written.
# Crash inputs land in build/fuzz/artifacts-NAME/; reproduce one with
#   build/fuzz/fuzz_NAME build/fuzz/artifacts-NAME/crash-...
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2

ALL_TARGETS="startup framer scram config hba ident pgframe mysql mysql_session sqlread my_sqlread shardroute shardcopy"
TARGETS=${FUZZ_TARGETS:-$ALL_TARGETS}
SECONDS_PER=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-1}
OUT=build/fuzz

# clang and its fuzzer runtime come from Debian; install them when missing.
need=()
for pkg in clang libclang-rt-14-dev binutils; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
	echo "run-fuzz: installing ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null ||
		{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; }
fi

if [ -n "${FUZZ_CC:-}" ]; then
	CC=$FUZZ_CC
elif command -v clang-14 >/dev/null 2>&1; then
	CC=clang-14
else
	CC=clang
fi
if ! command -v "$CC" >/dev/null 2>&1; then
	echo "run-fuzz: $CC not found (Debian: apt-get install clang libclang-rt-14-dev)" >&2
	exit 2
fi

CFLAGS="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -g -O1 -D_GNU_SOURCE -Isrc -Isrc/core -Isrc/pg -Isrc/mysql -Isrc/bpf"
WARN="-Wall -Wextra -Wno-unused-parameter"
LIBS="-lssl -lcrypto -lpg_query"

# src files each harness links (nothing else from src/).
srcs_of() {
	case $1 in
	startup|framer|pgframe) echo "src/pg/pg_proto.c src/core/iobuf.c" ;;
	scram) echo "src/pg/auth_crypto.c" ;;
	config) echo "src/core/config.c src/core/hba.c src/core/hba_lex.c src/core/ident.c" ;;
	hba) echo "src/core/hba.c src/core/hba_lex.c src/core/ident.c" ;;
	ident) echo "src/core/ident.c src/core/hba_lex.c" ;;
	mysql) echo "src/mysql/my_proto.c src/core/iobuf.c" ;;
	mysql_session) echo "src/mysql/my_session.c src/mysql/my_proto.c src/core/iobuf.c" ;;
	sqlread) echo "src/pg/sqlread.c src/pg/sqlparse.c" ;;
	shardroute) echo "src/pg/shardroute.c src/pg/pghash.c src/pg/sqlread.c src/pg/sqlparse.c src/pg/sqlshape.c" ;;
	my_sqlread) echo "src/mysql/my_sqlread.c" ;;
	shardcopy) echo "src/pg/shard_copy.c src/pg/pghash.c" ;;
	*) return 1 ;;
	esac
}

build_one() {
	local t=$1 objs=() s o
	mkdir -p "$OUT/obj-$t"
	for s in $(srcs_of "$t"); do
		o="$OUT/obj-$t/$(basename "$s" .c).o"
		$CC $CFLAGS $WARN -c -o "$o" "$s" || return 1
		objs+=("$o")
	done
	if [ "$t" = config ]; then
		# Only config.c's fopen goes to the harness's in-memory files
		# (see tests/fuzz/fuzz_config.c); libFuzzer's own I/O is untouched.
		objcopy --redefine-sym fopen=fuzz_config_fopen \
			--redefine-sym hba_load=fuzz_config_hba_load \
			--redefine-sym ident_load=fuzz_config_ident_load "$OUT/obj-$t/config.o" || return 1
	fi
	$CC $CFLAGS $WARN -o "$OUT/fuzz_$t" "tests/fuzz/fuzz_$t.c" "${objs[@]}" $LIBS
}

mkdir -p "$OUT"
for t in $TARGETS; do
	if ! srcs_of "$t" >/dev/null; then
		echo "run-fuzz: unknown target '$t' (known: $ALL_TARGETS)" >&2
		exit 2
	fi
	echo "== build fuzz_$t"
	if ! build_one "$t"; then
		echo "run-fuzz: build of fuzz_$t failed" >&2
		exit 2
	fi
done

# One target: fresh artifacts dir, corpus seeded from the repo, bounded run.
run_one() {
	local t=$1 corpus="$OUT/corpus-$t" art="$OUT/artifacts-$t" dict=()
	[ "${FUZZ_FRESH:-0}" = 1 ] && rm -rf "$corpus"
	rm -rf "$art"
	mkdir -p "$corpus" "$art"
	cp -n tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null
	[ -f "tests/fuzz/dict/$t.dict" ] && dict=(-dict="tests/fuzz/dict/$t.dict")
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
	timeout --kill-after=30 $((SECONDS_PER + 120)) \
		"$OUT/fuzz_$t" -max_total_time="$SECONDS_PER" -rss_limit_mb=2048 -timeout=20 \
		-print_final_stats=1 -artifact_prefix="$art/" "${dict[@]}" "$corpus" \
		>"$OUT/fuzz_$t.log" 2>&1
	echo $? >"$OUT/fuzz_$t.rc"
}

echo "== run: ${SECONDS_PER}s per target, $JOBS at a time"
running=0
for t in $TARGETS; do
	run_one "$t" &
	running=$((running + 1))
	if [ "$running" -ge "$JOBS" ]; then
		wait -n
		running=$((running - 1))
	fi
done
wait

total=0
bad=0
for t in $TARGETS; do
	log="$OUT/fuzz_$t.log"
	rc=$(cat "$OUT/fuzz_$t.rc" 2>/dev/null || echo 99)
	runs=$(grep -E '^Done [0-9]+ runs' "$log" | tail -n 1 | sed -E 's/^Done ([0-9]+) runs.*/\1/')
	arts=$(find "$OUT/artifacts-$t" -type f 2>/dev/null)
	if [ "$rc" -ne 0 ] || [ -z "$runs" ] || [ -n "$arts" ]; then
		bad=$((bad + 1))
		printf 'fuzz_%-8s FAILED (exit %s), log %s\n' "$t" "$rc" "$log"
		grep -E 'ERROR: |runtime error|invariant failed|SUMMARY' "$log" | head -n 5 | sed 's/^/    /'
		for a in $arts; do
			echo "    input: $a ($(wc -c <"$a") bytes): $(od -An -tx1 -v "$a" | tr -d ' \n' | cut -c1-200)"
			echo "    reproduce: $OUT/fuzz_$t $a"
		done
	fi
	runs=${runs:-0}
	total=$((total + runs))
	printf 'fuzz_%-8s %12d executions\n' "$t" "$runs"
done
printf 'fuzz total    %12d executions\n' "$total"
if [ "$bad" -ne 0 ]; then
	echo "run-fuzz: $bad target(s) failed" >&2
	exit 1
fi
exit 0
