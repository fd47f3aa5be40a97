#!/usr/bin/env bash
# bench/bench.sh: compare sluice with PgBouncer (and a direct connection) on
# this machine. `make bench` builds sluice first and then runs this script;
# `make bench-bypass` runs it on the workloads that compare sluice's kernel
# fast path (bpf_bypass = on) with sluice in user space and PgBouncer.
#
# What it does, all on 127.0.0.1 and all torn down again on exit:
#   1. starts a throwaway PostgreSQL 15 (fsync=off, max_connections=400,
#      md5 passwords), creates user bench / password bench and database bench
#      and loads it with `pgbench -i -s $SCALE`;
#   2. starts the poolers among TARGETS: PgBouncer (/usr/sbin/pgbouncer),
#      sluice ($SLUICE_BIN) and a second sluice with bpf_bypass = on, all
#      with pool_mode=transaction, default_pool_size=20, auth_type=md5;
#   3. runs ROUNDS rounds; in each round every workload is run against every
#      target, the target order rotating from round to round (direct pgbouncer
#      sluice sluice_bypass, then pgbouncer sluice sluice_bypass direct, ...),
#      so slow drift of the machine is spread evenly; the figures reported
#      are medians over rounds;
#   4. measures pooler memory per idle client once, at the end;
#   5. prints a table (and, with both sluice targets, a "bypass" summary:
#      bpf_bypass on/off ratios from the same run) and writes
#      build/bench/results.csv (medians), build/bench/runs.csv (every single
#      figure) and build/bench/table.txt.
#
# Targets (TARGETS, space- or comma-separated, default: direct pgbouncer
# sluice, plus other when OTHER_POOLER_PORT is set):
#   direct        PostgreSQL itself, no pooler
#   pgbouncer     PgBouncer
#   sluice        sluice, bpf_bypass = off (its default)
#   sluice_bypass a second sluice with the same configuration plus
#                 bpf_bypass = on and admin_users = bench. After start-up the
#                 script asks its console for SHOW BYPASS; if the kernel path
#                 is not enabled (no BPF support built in, not root, old
#                 kernel...) it prints the reason and drops the target, and
#                 the run goes on without it. In every run it records the
#                 change of kernel_transactions and user_transactions (and
#                 fallbacks, kernel_bytes) and prints the share of
#                 transactions the kernel carried.
#   other         the extra pooler of OTHER_POOLER_* below (in the default
#                 only when OTHER_POOLER_PORT is set)
#
# Workloads (WORKLOADS, space- or comma-separated, default: all of them):
#   select_c16    pgbench -S -c 16 -j 2: TPS; for the poolers also the CPU
#                 they burn per transaction (utime+stime from /proc/PID/stat,
#                 split into user and system)
#   select_c1     pgbench -S -c 1 -j 1 --log: TPS and p50/p99 latency in
#                 microseconds from the per-transaction log
#   extended_c16  pgbench -S -M extended -c 16 -j 2: TPS
#   prepared_c16  pgbench -S -M prepared -c 16 -j 2: TPS; the poolers are
#                 used through database "bench_session", a second [databases]
#                 entry with pool_mode=session (prepared statements need a
#                 server connection per client); direct uses "bench"
#   tpcb_c16      pgbench (built-in TPC-B-like script) -c 16 -j 2: TPS
#   connect_c4    pgbench -S -C -c 4 -j 2, a new connection per transaction:
#                 TPS (compare the poolers with each other; a direct
#                 PostgreSQL connect is far more expensive and is shown only
#                 for reference)
#   idle_c8       IDLE_CLIENTS (2000) idle, authenticated connections are
#                 opened to the pooler (bench/idle_clients.py) and held while
#                 pgbench -S -c 8 -j 2 runs: TPS, and the growth of the
#                 pooler's VmRSS per idle client. Direct: -c 8 WITHOUT idle
#                 clients (2000 backends would exceed max_connections).
#   stream_c2     pgbench -f with "select repeat('x', 1000) from
#                 generate_series(1, 20000)" -c 2 -j 2: about 20 MB of result
#                 per transaction; reported as MB/s (TPS x wire bytes of the
#                 result)
#   rate_c8       pgbench -S -c 8 -j 2 -R RATE (4000 tx/s, a fixed offered
#                 load): busy jiffies of the whole machine from /proc/stat
#                 (user+nice+system+irq+softirq) per transaction, so it
#                 includes PostgreSQL, pgbench and the kernel's work for the
#                 pooler. Steal (time the hypervisor gave to other guests
#                 while ours wanted to run) is not work done here and varies
#                 with the neighbours: it is recorded apart (steal_us_per_tx)
#   syscalls      once, after the rounds, not timed: strace -c -f on each
#                 pooler during pgbench -S -c 16 -t SYSCALL_TX; system calls
#                 per transaction, in total and per call (second table)
#   scaling       after the rounds: a fake PostgreSQL that answers every
#                 query at once (bench/fakepg.c, one thread per CPU) behind
#                 PgBouncer and behind sluice with workers = 1, 2 and 4
#                 (adaptive_workers on, as by default), ROUNDS interleaved
#                 runs of pgbench -S -c 16 -j 2 each: TPS against the
#                 number of workers when the pooler, not the database, is
#                 the limit. Printed as a table of its own; on a machine
#                 with fewer CPUs than workers + pgbench + fakepg need it
#                 cannot show scaling, but it is printed anyway.
#   clients       after the rounds, once: pgbench -S -c N -j min(N,2) for N in
#                 CLIENT_COUNTS (1 2 4 ... 256), CLIENTS_DURATION (3) seconds
#                 each, every target at each N (the order rotating from one
#                 N to the next; a second more per 16 clients, for
#                 connecting): throughput by number of clients. Written to
#                 build/bench/clients.csv and clients.txt (a table), and drawn
#                 into build/bench/clients.png with the chart (CHART).
#   (idle_rss is accepted as an old name of idle_c8.)
#
# Environment:
#   TARGETS=...       subset of the targets above, in column order
#   ROUNDS=5          rounds (medians are taken over them)
#   DURATION=5        seconds per pgbench run
#   WORKLOADS=...     subset of the workloads above
#   SCALE=10          pgbench scale factor
#   IDLE_CLIENTS=2000 idle connections held open during idle_c8
#   RATE=4000         offered transactions per second for rate_c8
#   SYSCALL_TX=500    transactions per client (x16) for the strace run
#   CLIENT_COUNTS="1 2 4 8 16 32 64 128 256"  client counts of `clients`
#   CLIENTS_DURATION=3 seconds per point of `clients`
#   CHART=1           write build/bench/chart.png (and clients.png) with gnuplot, installing
#                     Debian package gnuplot-nox first if it is missing (as
#                     root). Without CHART=1 the chart is drawn only if
#                     gnuplot is already installed; CHART=0 never draws it.
#   SLUICE_BIN        sluice binary (default build/sluice)
#   FAKEPG_BIN        the fake server of the scaling workload (default
#                     build/fakepg; compiled from bench/fakepg.c when missing)
#   SLUICE_WORKERS    if set, written as `workers =` in sluice's config
#                     (default: sluice's own default, one per CPU)
#   PGBOUNCER_BIN     PgBouncer binary (default /usr/sbin/pgbouncer)
#   PG_PORT           fixed TCP port for the throwaway PostgreSQL (default: a
#                     free one); useful with OTHER_POOLER_* below
#   KEEP_TMP=1        keep the temporary directory (configs, logs) on exit
#
# Adding another pooler (for example Odyssey) as an extra column:
#   OTHER_POOLER_PORT   port on 127.0.0.1 where it listens; it must serve
#                       database "bench" to user "bench" (password "bench")
#                       from the throwaway PostgreSQL, in transaction mode
#                       with a pool of 20 to be comparable, and database
#                       "bench_session" (dbname bench) in session mode for
#                       prepared_c16.
#   OTHER_POOLER_CMD    optional shell command that starts it. It is run once
#                       PostgreSQL is up, in its own process group, with
#                       BENCH_PG_PORT (PostgreSQL's port), BENCH_OTHER_PORT and
#                       BENCH_DIR (a scratch directory) in its environment, and
#                       the whole group is stopped on exit. Without it, the
#                       pooler must already be running: start it yourself
#                       pointing at 127.0.0.1:$PG_PORT and set PG_PORT.
#   OTHER_POOLER_PID    optional pid of that pooler for the CPU, memory and
#                       syscall figures; by default the process listening on
#                       OTHER_POOLER_PORT (found with ss) is used.
#   OTHER_POOLER_NAME   column title (default "other").
#   Example:
#     OTHER_POOLER_PORT=6544 \
#     OTHER_POOLER_CMD='sed "s/@PGPORT@/$BENCH_PG_PORT/" ~/ody.conf >$BENCH_DIR/ody.conf && exec odyssey $BENCH_DIR/ody.conf' \
#     bench/bench.sh
#
# With the defaults the whole run takes about 22 minutes on 2 CPUs (9 timed
# workloads x 3 targets x 5 rounds x 5 s, plus set-up, opening the idle
# clients, the strace runs, the scaling row and the 2 minutes of `clients`); `make bench-bypass` (3
# workloads x 4 targets) about 6 minutes.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD
PGBIN=/usr/lib/postgresql/15/bin
PY=/usr/bin/python3
PGBOUNCER_BIN=${PGBOUNCER_BIN:-/usr/sbin/pgbouncer}
SLUICE_BIN=${SLUICE_BIN:-build/sluice}
case $SLUICE_BIN in /*) ;; *) SLUICE_BIN=$REPO/$SLUICE_BIN ;; esac
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
SCALE=${SCALE:-10}
IDLE_CLIENTS=${IDLE_CLIENTS:-2000}
RATE=${RATE:-4000}
SYSCALL_TX=${SYSCALL_TX:-500}
CHART=${CHART:-}
CLIENT_COUNTS=${CLIENT_COUNTS:-1 2 4 8 16 32 64 128 256}
CLIENT_COUNTS=${CLIENT_COUNTS//,/ }
CLIENTS_DURATION=${CLIENTS_DURATION:-3}
POOL_SIZE=20
ALL_WORKLOADS="select_c16 select_c1 extended_c16 prepared_c16 tpcb_c16 connect_c4 idle_c8 stream_c2 rate_c8 syscalls scaling clients"
WORKLOADS=${WORKLOADS:-$ALL_WORKLOADS}
WORKLOADS=${WORKLOADS//,/ }
WORKLOADS=" $WORKLOADS "
WORKLOADS=${WORKLOADS// idle_rss / idle_c8 }
# Rows of the stream workload: 20000 x 1000 bytes. On the wire each row is a
# DataRow message: 1 type byte + 4 length + 2 column count + 4 value length +
# 1000 bytes of value = 1011 bytes.
STREAM_ROWS=20000
STREAM_WIDTH=1000
STREAM_BYTES=$((STREAM_ROWS * (STREAM_WIDTH + 11)))
OUT_DIR=$REPO/build/bench
BENCH_DIR=$REPO/bench
OTHER_POOLER_PORT=${OTHER_POOLER_PORT:-}
OTHER_POOLER_CMD=${OTHER_POOLER_CMD:-}
OTHER_POOLER_NAME=${OTHER_POOLER_NAME:-other}
ALL_TARGETS="direct pgbouncer sluice sluice_bypass other"
# sluice_bypass is make bench-bypass's business: five rounds of four
# targets would take half an hour.
DEFAULT_TARGETS="direct pgbouncer sluice"
[ -n "$OTHER_POOLER_PORT" ] && DEFAULT_TARGETS+=" other"
# TARGETS arrives as a string; from the set-up on, TARGETS is the array of
# the targets that started.
WANT_TARGETS=${TARGETS:-$DEFAULT_TARGETS}
WANT_TARGETS=${WANT_TARGETS//,/ }
unset TARGETS

die() { echo "bench: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }

# --- checks
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "DURATION must be a positive integer"
[[ $IDLE_CLIENTS =~ ^[1-9][0-9]*$ ]] || die "IDLE_CLIENTS must be a positive integer"
[[ $RATE =~ ^[1-9][0-9]*$ ]] || die "RATE must be a positive integer"
[[ $SYSCALL_TX =~ ^[1-9][0-9]*$ ]] || die "SYSCALL_TX must be a positive integer"
[[ $CLIENTS_DURATION =~ ^[1-9][0-9]*$ ]] || die "CLIENTS_DURATION must be a positive integer"
for n in $CLIENT_COUNTS; do
	# 256 direct connections plus the poolers' fit in max_connections (400).
	[[ $n =~ ^[1-9][0-9]*$ ]] && [ "$n" -le 300 ] || die "CLIENT_COUNTS: '$n' is not a number of clients from 1 to 300"
done
for w in $WORKLOADS; do
	[[ " $ALL_WORKLOADS " == *" $w "* ]] || die "unknown workload '$w' (known: $ALL_WORKLOADS)"
done
wanted=
for t in $WANT_TARGETS; do
	[[ " $ALL_TARGETS " == *" $t "* ]] || die "unknown target '$t' (known: $ALL_TARGETS)"
	[[ " $wanted " == *" $t "* ]] || wanted+=" $t"
done
WANT_TARGETS=${wanted# }
[ -n "$WANT_TARGETS" ] || die "TARGETS is empty"
if [[ " $WANT_TARGETS " == *" other "* ]] && [ -z "$OTHER_POOLER_PORT" ]; then
	die "target 'other' needs OTHER_POOLER_PORT (see the top of bench/bench.sh)"
fi
# wants TARGET: is TARGET among TARGETS?
wants() { [[ " $WANT_TARGETS " == *" $1 "* ]]; }
[ -x "$SLUICE_BIN" ] || die "sluice binary not found: $SLUICE_BIN (run make first)"
[ -x "$PGBIN/initdb" ] || die "PostgreSQL 15 not found in $PGBIN (run scripts/install-deps.sh)"
[ -x "$PGBOUNCER_BIN" ] || die "PgBouncer not found: $PGBOUNCER_BIN (run scripts/install-deps.sh)"
[ -x "$PY" ] || die "$PY not found"
PGBENCH=$PGBIN/pgbench
CLK_TCK=$(getconf CLK_TCK)
IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1
STRACE=$(command -v strace || true)
if [[ " $WORKLOADS " == *" syscalls "* ]] && [ -z "$STRACE" ]; then
	note "strace not found (Debian package strace): the syscalls workload is skipped"
	WORKLOADS=${WORKLOADS// syscalls / }
fi
# The poolers and idle_clients.py need a file descriptor per connection.
want_fds=$((IDLE_CLIENTS + 1000))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $want_fds ]; then
	ulimit -n "$want_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
	[ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $want_fds ] &&
		note "open-file limit $(ulimit -n) is below $want_fds; idle_c8 may fail"
fi

# Run a command as the postgres user when we are root (initdb, pg_ctl and
# PgBouncer refuse to run as root).
as_pg() {
	if [ $IS_ROOT -eq 1 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
# Same, but exec'ing directly (no runuser parent), so that $! is the pid of
# the program itself.
exec_as_pg() {
	if [ $IS_ROOT -eq 1 ]; then
		exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
	else
		exec "$@"
	fi
}

free_port() {
	"$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_port PORT SECONDS PID: wait until 127.0.0.1:PORT accepts connections;
# fails early if PID (optional) has exited.
wait_port() {
	local port=$1 secs=$2 pid=${3:-} i
	for ((i = 0; i < secs * 10; i++)); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
		sleep 0.1
	done
	return 1
}

# stop_pid PID [SECONDS]: SIGTERM, wait, then SIGKILL.
stop_pid() {
	local pid=$1 secs=${2:-10} i
	[ -n "$pid" ] || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < secs * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

WORK=$(mktemp -d /tmp/sluice-bench.XXXXXX)
chmod 755 "$WORK"
PGDATA_DIR=$WORK/pgdata
PG_STARTED=
PGB_PID=
SLUICE_PID=
BYPASS_PID=
OTHER_PID=
OTHER_PGID=
IDLE_PID=
IDLE_FIFO=
STRACE_PID=
PGBENCH_PID=
FAKEPG_PID=
SCALING_PIDS=()
SCALING_NEW_PID=

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	exec 9>&- 2>/dev/null || true
	# strace first: it detaches from the pooler when it is stopped.
	stop_pid "$STRACE_PID" 5
	stop_pid "$PGBENCH_PID" 10
	stop_pid "$IDLE_PID" 5
	if [ -n "$OTHER_PGID" ]; then
		kill -TERM -- "-$OTHER_PGID" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 -- "-$OTHER_PGID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL -- "-$OTHER_PGID" 2>/dev/null || true
	fi
	stop_pid "$SLUICE_PID" 10
	stop_pid "$BYPASS_PID" 10
	for p in "${SCALING_PIDS[@]}" "$SCALING_NEW_PID"; do stop_pid "$p" 10; done
	stop_pid "$FAKEPG_PID" 5
	stop_pid "$PGB_PID" 10
	if [ -n "$PG_STARTED" ]; then
		# pg_ctl -t bounds the wait.
		as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 30 stop >/dev/null 2>&1 ||
			as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
	fi
	if [ -d "$WORK" ]; then
		mkdir -p "$OUT_DIR/logs"
		for f in "$WORK"/*.log "$WORK"/pgbouncer/*.log; do
			[ -f "$f" ] && cp "$f" "$OUT_DIR/logs/" 2>/dev/null || true
		done
		if [ "${KEEP_TMP:-0}" = 1 ]; then
			note "kept $WORK"
		else
			rm -rf "$WORK"
		fi
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$OUT_DIR"
rm -rf "$OUT_DIR/logs"
RUNS_CSV=$OUT_DIR/runs.csv
echo "round,workload,target,metric,value" >"$RUNS_CSV"

n_pgbench_workloads=0
for w in $WORKLOADS; do
	case $w in syscalls | scaling | clients) ;; *) n_pgbench_workloads=$((n_pgbench_workloads + 1)) ;; esac
done
n_targets=$(wc -w <<<"$WANT_TARGETS")
note "$ROUNDS round(s) x $n_pgbench_workloads workload(s) x $n_targets targets x ${DURATION}s" \
	"= about $(((ROUNDS * n_pgbench_workloads * n_targets * (DURATION + 1) + 59) / 60)) min of pgbench, plus set-up"

# --- is the machine idle? (other load shows up as noise in every figure)
busy_pct() {
	local a b
	a=$(awk '/^cpu / {t=0; for (i=2;i<=NF;i++) t+=$i; print t, $5+$6}' /proc/stat)
	sleep 2
	b=$(awk '/^cpu / {t=0; for (i=2;i<=NF;i++) t+=$i; print t, $5+$6}' /proc/stat)
	"$PY" -c 'import sys; t0,i0,t1,i1=map(int,sys.argv[1:]); print(round(100*(1-(i1-i0)/max(1,t1-t0))))' $a $b
}
BUSY=$(busy_pct)
if [ "$BUSY" -ge 20 ]; then
	note "WARNING: the machine is already ${BUSY}% busy before the benchmark starts;" \
		"figures will be noisy (see: top)"
fi

# --- PostgreSQL
PG_PORT=${PG_PORT:-$(free_port)}
[ $IS_ROOT -eq 1 ] && chown postgres: "$WORK"
note "starting PostgreSQL 15 on 127.0.0.1:$PG_PORT"
as_pg "$PGBIN/initdb" -D "$PGDATA_DIR" -U postgres -A trust -E UTF8 --locale=C --no-sync \
	>"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
cat >>"$PGDATA_DIR/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$WORK'
max_connections = 400
password_encryption = md5
fsync = off
shared_buffers = 256MB
CONF
cat >"$PGDATA_DIR/pg_hba.conf" <<HBA
local all postgres trust
host all all 127.0.0.1/32 md5
HBA
as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$WORK/postgres.log" -w -t 60 start >/dev/null ||
	{ cat "$WORK/postgres.log" >&2; die "PostgreSQL did not start"; }
PG_STARTED=1
as_pg timeout 30 "$PGBIN/psql" -X -q -h "$WORK" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 \
	-c "CREATE ROLE bench LOGIN PASSWORD 'bench'" -c "CREATE DATABASE bench OWNER bench" >/dev/null ||
	die "could not create user/database bench"

export PGPASSWORD=bench PGUSER=bench PGDATABASE=bench PGHOST=127.0.0.1
unset PGSERVICE PGSSLMODE PGOPTIONS 2>/dev/null || true
note "pgbench -i -s $SCALE (directly)"
timeout 600 "$PGBENCH" -i -s "$SCALE" -q -p "$PG_PORT" >"$WORK/pgbench-init.log" 2>&1 ||
	{ tail -20 "$WORK/pgbench-init.log" >&2; die "pgbench -i failed"; }

# smoke_query PORT [DBNAME]: one SELECT through md5 authentication.
smoke_query() {
	timeout 20 "$PGBIN/psql" -X -q -At -p "$1" -d "${2:-bench}" -c "select 1" 2>&1
}
[ "$(smoke_query "$PG_PORT")" = 1 ] || die "md5 login to PostgreSQL failed"

declare -A PORT=([direct]=$PG_PORT)
declare -A PID=()
declare -A LABEL=([direct]=direct [pgbouncer]=pgbouncer [sluice]=sluice [sluice_bypass]=sluice_bypass
	[other]=$OTHER_POOLER_NAME)

# --- PgBouncer
if wants pgbouncer; then
	PGB_PORT=$(free_port)
	mkdir -p "$WORK/pgbouncer"
	printf '"bench" "bench"\n' >"$WORK/pgbouncer/userlist.txt"
	cat >"$WORK/pgbouncer/pgbouncer.ini" <<INI
[databases]
bench = host=127.0.0.1 port=$PG_PORT dbname=bench
bench_session = host=127.0.0.1 port=$PG_PORT dbname=bench pool_mode=session

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = md5
auth_file = $WORK/pgbouncer/userlist.txt
pool_mode = transaction
default_pool_size = $POOL_SIZE
max_client_conn = $((IDLE_CLIENTS + 200))
logfile = $WORK/pgbouncer/pgbouncer.log
pidfile = $WORK/pgbouncer/pgbouncer.pid
INI
	[ $IS_ROOT -eq 1 ] && chown -R postgres: "$WORK/pgbouncer"
	note "starting PgBouncer on 127.0.0.1:$PGB_PORT"
	(exec_as_pg "$PGBOUNCER_BIN" -q "$WORK/pgbouncer/pgbouncer.ini") >"$WORK/pgbouncer-stderr.log" 2>&1 &
	PGB_PID=$!
	wait_port "$PGB_PORT" 30 "$PGB_PID" ||
		{ cat "$WORK/pgbouncer-stderr.log" "$WORK/pgbouncer/pgbouncer.log" >&2 2>/dev/null; die "PgBouncer did not start"; }
	[ "$(smoke_query "$PGB_PORT")" = 1 ] ||
		{ tail -20 "$WORK/pgbouncer/pgbouncer.log" >&2; die "query through PgBouncer failed"; }
	[ "$(smoke_query "$PGB_PORT" bench_session)" = 1 ] ||
		{ tail -20 "$WORK/pgbouncer/pgbouncer.log" >&2; die "query through PgBouncer (bench_session) failed"; }
	PORT[pgbouncer]=$PGB_PORT
	PID[pgbouncer]=$PGB_PID
fi

# --- sluice
BYPASS_DROPPED=
BACKEND_PORT=$PG_PORT       # where the poolers' [databases] point (scaling: fakepg)
SLUICE_DEFAULT_WORKERS=1    # write SLUICE_WORKERS (scaling gives its own)
# start_sluice NAME PIDVAR [LINE...]: start a sluice with the common
# configuration plus LINEs in its [sluice] section ($WORK/NAME/sluice.ini,
# log $WORK/NAME.log), and check that it serves both databases. The pid goes
# into the variable PIDVAR as soon as it exists, so that cleanup stops the
# process whatever fails next; the port goes into PORT[NAME].
start_sluice() {
	local name=$1 pidvar=$2 port pid line
	shift 2
	port=$(free_port)
	mkdir -p "$WORK/$name"
	printf '"bench" "bench"\n' >"$WORK/$name/userlist.txt"
	{
		cat <<INI
[databases]
bench = host=127.0.0.1 port=$BACKEND_PORT dbname=bench
bench_session = host=127.0.0.1 port=$BACKEND_PORT dbname=bench pool_mode=session

[sluice]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = md5
auth_file = $WORK/$name/userlist.txt
pool_mode = transaction
default_pool_size = $POOL_SIZE
max_client_conn = $((IDLE_CLIENTS + 200))
INI
		[ -n "${SLUICE_WORKERS:-}" ] && [ -n "$SLUICE_DEFAULT_WORKERS" ] && echo "workers = $SLUICE_WORKERS"
		for line in "$@"; do echo "$line"; done
	} >"$WORK/$name/sluice.ini"
	local extra=
	for line in "$@"; do extra+=", $line"; done
	note "starting $name ($SLUICE_BIN$extra) on 127.0.0.1:$port"
	"$SLUICE_BIN" -q "$WORK/$name/sluice.ini" >"$WORK/$name.log" 2>&1 &
	pid=$!
	printf -v "$pidvar" '%s' "$pid"
	wait_port "$port" 30 "$pid" || { cat "$WORK/$name.log" >&2; die "$name did not start"; }
	[ "$(smoke_query "$port")" = 1 ] || { tail -20 "$WORK/$name.log" >&2; die "query through $name failed"; }
	[ "$(smoke_query "$port" bench_session)" = 1 ] ||
		{ tail -20 "$WORK/$name.log" >&2; die "query through $name (bench_session) failed"; }
	PORT[$name]=$port
	PID[$name]=$pid
}

# bypass_show PORT: SHOW BYPASS on the admin console of the sluice at PORT,
# as "name|value" lines (on failure: psql's error message, and status 1).
bypass_show() {
	timeout 20 "$PGBIN/psql" -X -q -At -p "$1" -d sluice -c "SHOW BYPASS" 2>&1
}

# bypass_value TEXT NAME: the value of row NAME in bypass_show's output.
bypass_value() {
	awk -F'|' -v n="$2" '$1 == n {print $2; exit}' <<<"$1"
}

if wants sluice; then
	start_sluice sluice SLUICE_PID
fi

# The same sluice with the kernel fast path. admin_users lets the script
# read SHOW BYPASS as user bench.
if wants sluice_bypass; then
	start_sluice sluice_bypass BYPASS_PID "bpf_bypass = on" "admin_users = bench"
	drop_why=
	bp=
	if ! bp=$(bypass_show "${PORT[sluice_bypass]}"); then
		drop_why="SHOW BYPASS failed: $bp"
	elif [ "$(bypass_value "$bp" enabled)" != yes ]; then
		drop_why="SHOW BYPASS says enabled = $(bypass_value "$bp" enabled), reason: $(bypass_value "$bp" reason)"
	fi
	if [ -n "$drop_why" ]; then
		BYPASS_DROPPED="sluice_bypass was dropped: the kernel fast path is not active ($drop_why)"
		note "$BYPASS_DROPPED (see build/bench/logs/sluice_bypass.log)"
		stop_pid "$BYPASS_PID" 10
		BYPASS_PID=
		unset 'PORT[sluice_bypass]' 'PID[sluice_bypass]'
	else
		note "sluice_bypass: SHOW BYPASS says enabled = yes"
	fi
fi

# --- optional other pooler
if wants other; then
	[[ $OTHER_POOLER_PORT =~ ^[0-9]+$ ]] || die "OTHER_POOLER_PORT must be a port number"
	if [ -n "$OTHER_POOLER_CMD" ]; then
		mkdir -p "$WORK/other"
		[ $IS_ROOT -eq 1 ] && chown postgres: "$WORK/other"
		note "starting $OTHER_POOLER_NAME: $OTHER_POOLER_CMD"
		BENCH_PG_PORT=$PG_PORT BENCH_OTHER_PORT=$OTHER_POOLER_PORT BENCH_DIR=$WORK/other \
			setsid bash -c "$OTHER_POOLER_CMD" >"$WORK/other.log" 2>&1 &
		OTHER_PGID=$!
	fi
	wait_port "$OTHER_POOLER_PORT" 30 "$OTHER_PGID" ||
		{ cat "$WORK/other.log" >&2 2>/dev/null; die "$OTHER_POOLER_NAME is not listening on 127.0.0.1:$OTHER_POOLER_PORT"; }
	[ "$(smoke_query "$OTHER_POOLER_PORT")" = 1 ] || die "query through $OTHER_POOLER_NAME failed"
	OTHER_PID=${OTHER_POOLER_PID:-}
	if [ -z "$OTHER_PID" ]; then
		OTHER_PID=$(ss -ltnpH "sport = :$OTHER_POOLER_PORT" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2 || true)
	fi
	[ -n "$OTHER_PID" ] || note "pid of $OTHER_POOLER_NAME unknown: no CPU or memory figures for it"
	PORT[other]=$OTHER_POOLER_PORT
	PID[other]=$OTHER_PID
elif [ -n "$OTHER_POOLER_PORT" ]; then
	note "OTHER_POOLER_PORT is set but TARGETS does not name 'other': it is left out"
fi

# The targets that are up, in the order TARGETS gave them.
TARGETS=()
for t in $WANT_TARGETS; do
	[ -n "${PORT[$t]:-}" ] && TARGETS+=("$t")
done
note "targets: ${TARGETS[*]}"

# --- measuring helpers
record() { echo "$1,$2,$3,$4,$5" >>"$RUNS_CSV"; }

# cpu_ticks PID -> "UTIME STIME" (clock ticks, all threads of the process)
cpu_ticks() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	local -a f
	read -ra f <<<"$s"
	# f[0] is field 3 (state); utime and stime are fields 14 and 15.
	echo "${f[11]} ${f[12]}"
}

vmrss_kb() {
	awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null
}

alive() {
	local t=$1
	[ "$t" = direct ] && return 0
	[ -z "${PID[$t]:-}" ] && return 0
	kill -0 "${PID[$t]}" 2>/dev/null
}

declare -A DEAD=()
# Targets whose memory per idle client has been measured. Only the first
# time counts: after the idle clients disconnect, the pooler keeps the freed
# memory and reuses it in later rounds, so VmRSS no longer grows.
declare -A RSS_DONE=()

# busy_jiffies: busy time of the whole machine so far and, after a space, the
# steal time, in clock ticks (busy = user + nice + system + irq + softirq;
# guest time is already part of user and nice).
busy_jiffies() {
	awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $9; exit}' /proc/stat
}

# idle_open TARGET N: open N idle authenticated connections to TARGET in the
# background (IDLE_PID); returns 1 if they could not all be opened.
idle_open() {
	local t=$1 n=$2 port=${PORT[$1]} i
	IDLE_FIFO=$WORK/idle-$t.in
	IDLE_OUT=$WORK/idle-$t.out
	rm -f "$IDLE_FIFO"
	mkfifo "$IDLE_FIFO"
	: >"$IDLE_OUT"
	"$PY" "$BENCH_DIR/idle_clients.py" 127.0.0.1 "$port" bench bench bench "$n" \
		<"$IDLE_FIFO" >"$IDLE_OUT" 2>"$WORK/idle-$t.err" &
	IDLE_PID=$!
	exec 9>"$IDLE_FIFO"
	for ((i = 0; i < 1800; i++)); do
		grep -q '^ready' "$IDLE_OUT" && return 0
		kill -0 "$IDLE_PID" 2>/dev/null || break
		sleep 0.1
	done
	note "$t: could not hold $n idle connections:"
	sed 's/^/    /' "$WORK/idle-$t.err" >&2
	idle_close
	return 1
}

# idle_close: let idle_clients.py send Terminate on every connection and exit.
idle_close() {
	local i
	exec 9>&-
	if [ -n "$IDLE_PID" ]; then
		for ((i = 0; i < 100; i++)); do kill -0 "$IDLE_PID" 2>/dev/null || break; sleep 0.1; done
		stop_pid "$IDLE_PID" 1
	fi
	IDLE_PID=
	rm -f "$IDLE_FIFO"
}

# run_one ROUND WORKLOAD TARGET
run_one() {
	local round=$1 w=$2 t=$3 port=${PORT[$3]} pid=${PID[$3]:-}
	local -a args
	local out=$WORK/pgbench-$w-$t-r$round.log latdir= db=bench
	case $w in
	select_c16) args=(-S -c 16 -j 2) ;;
	select_c1)
		latdir=$WORK/lat-$t-r$round
		mkdir -p "$latdir"
		args=(-S -c 1 -j 1 --log "--log-prefix=$latdir/tx")
		;;
	extended_c16) args=(-S -M extended -c 16 -j 2) ;;
	prepared_c16)
		args=(-S -M prepared -c 16 -j 2)
		[ "$t" != direct ] && db=bench_session
		;;
	tpcb_c16) args=(-c 16 -j 2) ;;
	connect_c4) args=(-S -C -c 4 -j 2) ;;
	idle_c8) args=(-S -c 8 -j 2) ;;
	stream_c2) args=(-f "$WORK/stream.sql" -c 2 -j 2) ;;
	rate_c8) args=(-S -c 8 -j 2 -R "$RATE") ;;
	esac
	if [ -n "${DEAD[$t]:-}" ]; then
		note "round $round $w $t: skipped ($t is no longer running)"
		return 0
	fi

	local idle_msg=
	if [ "$w" = idle_c8 ] && [ "$t" != direct ]; then
		local rss0= rss1=
		[ -n "$pid" ] && [ -z "${RSS_DONE[$t]:-}" ] && rss0=$(vmrss_kb "$pid")
		if ! idle_open "$t" "$IDLE_CLIENTS"; then
			note "round $round $w $t: skipped"
			alive "$t" || { note "$t (pid $pid) has exited; it is skipped from now on"; DEAD[$t]=1; }
			return 0
		fi
		sleep 1
		if [ -n "$rss0" ]; then
			rss1=$(vmrss_kb "$pid")
			if [ -n "$rss1" ]; then
				RSS_DONE[$t]=1
				local per
				per=$("$PY" -c "import sys; print('%.1f' % ((int(sys.argv[2]) - int(sys.argv[1])) * 1024 / int(sys.argv[3])))" \
					"$rss0" "$rss1" "$IDLE_CLIENTS")
				record "$round" "$w" "$t" rss_bytes_per_client "$per"
				idle_msg=$(printf '  VmRSS %d -> %d kB with %d idle: %s B/client' "$rss0" "$rss1" "$IDLE_CLIENTS" "$per")
			fi
		fi
	fi

	# sluice_bypass: the console's counters before and after the run, read
	# outside the measured window (psql's own work is not counted).
	local bp0= bp1= bypass_msg=
	if [ "$t" = sluice_bypass ]; then
		bp0=$(bypass_show "$port") || { note "round $round $w $t: SHOW BYPASS failed: $bp0"; bp0=; }
	fi

	local before= after= rc=0 j0 j1
	[ -n "$pid" ] && before=$(cpu_ticks "$pid" || true)
	j0=$(busy_jiffies)
	# In the background + wait, so that a SIGTERM/Ctrl-C is acted on at once.
	timeout -k 5 $((DURATION + 60)) "$PGBENCH" -n -T "$DURATION" -p "$port" "${args[@]}" "$db" >"$out" 2>&1 &
	PGBENCH_PID=$!
	wait "$PGBENCH_PID" || rc=$?
	PGBENCH_PID=
	j1=$(busy_jiffies)
	[ -n "$pid" ] && after=$(cpu_ticks "$pid" || true)
	[ -n "$IDLE_PID" ] && idle_close

	local k_tx= u_tx= k_share= k_bytes= k_fb=
	if [ -n "$bp0" ]; then
		bp1=$(bypass_show "$port") || { note "round $round $w $t: SHOW BYPASS failed: $bp1"; bp1=; }
	fi
	if [ -n "$bp0" ] && [ -n "$bp1" ]; then
		local name
		for name in kernel_transactions user_transactions kernel_bytes fallbacks; do
			[[ $(bypass_value "$bp0" $name) =~ ^[0-9]+$ && $(bypass_value "$bp1" $name) =~ ^[0-9]+$ ]] ||
				{ note "round $round $w $t: SHOW BYPASS has no number for $name"; k_tx=; break; }
			case $name in
			kernel_transactions) k_tx=$(($(bypass_value "$bp1" $name) - $(bypass_value "$bp0" $name))) ;;
			user_transactions) u_tx=$(($(bypass_value "$bp1" $name) - $(bypass_value "$bp0" $name))) ;;
			kernel_bytes) k_bytes=$(($(bypass_value "$bp1" $name) - $(bypass_value "$bp0" $name))) ;;
			fallbacks) k_fb=$(($(bypass_value "$bp1" $name) - $(bypass_value "$bp0" $name))) ;;
			esac
		done
		if [ -n "$k_tx" ]; then
			if [ $((k_tx + u_tx)) -gt 0 ]; then
				k_share=$("$PY" -c "import sys; print('%.1f' % (100.0 * int(sys.argv[1]) / int(sys.argv[2])))" \
					"$k_tx" "$((k_tx + u_tx))")
			fi
			bypass_msg=$(printf '  kernel %s%% of tx (kernel %d, user %d, fallbacks %d)' \
				"${k_share:--}" "$k_tx" "$u_tx" "$k_fb")
		fi
	fi

	local tps tx
	tps=$(awk '/^tps = / {print $3; exit}' "$out")
	tx=$(awk -F': *' '/^number of transactions actually processed/ {split($2, a, "/"); print a[1]; exit}' "$out")
	if [ $rc -ne 0 ] || [ -z "$tps" ]; then
		note "round $round $w $t: pgbench failed (exit $rc)${bypass_msg:+;$bypass_msg}"
		if grep -q -E 'error|abort|FATAL|ERROR' "$out"; then
			note "  pgbench's errors (first 8):"
			grep -E -m 8 'error|abort|FATAL|ERROR' "$out" | sed 's/^/    /' >&2
		fi
		note "  last lines of $(basename "$out"):"
		tail -5 "$out" | sed 's/^/    /' >&2
		if ! alive "$t"; then
			note "$t (pid $pid) has exited; it is skipped from now on"
			DEAD[$t]=1
		fi
		return 0
	fi
	record "$round" "$w" "$t" tps "$tps"
	record "$round" "$w" "$t" transactions "$tx"
	if [ -n "$k_tx" ]; then
		record "$round" "$w" "$t" kernel_transactions "$k_tx"
		record "$round" "$w" "$t" user_transactions "$u_tx"
		record "$round" "$w" "$t" kernel_bytes "$k_bytes"
		record "$round" "$w" "$t" fallbacks "$k_fb"
		[ -n "$k_share" ] && record "$round" "$w" "$t" kernel_share_pct "$k_share"
	fi
	local msg
	msg=$(printf '%-13s %-13s %10.0f tps' "$w" "${LABEL[$t]}" "$tps")

	if [ "$w" = stream_c2 ]; then
		local mbs
		mbs=$("$PY" -c "import sys; print('%.1f' % (float(sys.argv[1]) * int(sys.argv[2]) / 1e6))" "$tps" "$STREAM_BYTES")
		record "$round" "$w" "$t" mb_per_s "$mbs"
		msg+="  $mbs MB/s"
	fi

	if [ "$w" = rate_c8 ] && [ "${tx:-0}" -gt 0 ]; then
		local mcpu steal
		# j0/j1: "busy steal" in ticks
		read -r mcpu steal < <("$PY" -c "
import sys
b0, s0, b1, s1 = map(int, sys.argv[1:5])
per = 1e6 / int(sys.argv[5]) / int(sys.argv[6])
print('%.1f %.1f' % ((b1 - b0) * per, (s1 - s0) * per))" $j0 $j1 "$CLK_TCK" "$tx")
		record "$round" "$w" "$t" machine_cpu_us_per_tx "$mcpu"
		record "$round" "$w" "$t" steal_us_per_tx "$steal"
		msg+="  machine cpu $mcpu us/tx (steal $steal)"
	fi

	if [ -n "$latdir" ]; then
		local lat
		lat=$("$PY" "$BENCH_DIR/bench_stats.py" latency "$latdir"/tx.* 2>/dev/null || true)
		if [ -n "$lat" ]; then
			local n p50 p99
			read -r n p50 p99 <<<"$lat"
			record "$round" "$w" "$t" p50_us "$p50"
			record "$round" "$w" "$t" p99_us "$p99"
			msg+=$(printf '  p50 %5d us  p99 %5d us' "$p50" "$p99")
		fi
		rm -rf "$latdir"
	fi

	if [ -n "$before" ] && [ -n "$after" ] && [ "${tx:-0}" -gt 0 ]; then
		local cpu
		cpu=$("$PY" - "$before" "$after" "$tx" "$CLK_TCK" <<'PYEOF'
import sys
b, a, tx, hz = sys.argv[1].split(), sys.argv[2].split(), int(sys.argv[3]), int(sys.argv[4])
u = (int(a[0]) - int(b[0])) * 1e6 / hz / tx
s = (int(a[1]) - int(b[1])) * 1e6 / hz / tx
print("%.3f %.3f %.3f" % (u + s, u, s))
PYEOF
		)
		local total user sys
		read -r total user sys <<<"$cpu"
		record "$round" "$w" "$t" cpu_us_per_tx "$total"
		record "$round" "$w" "$t" cpu_user_us_per_tx "$user"
		record "$round" "$w" "$t" cpu_sys_us_per_tx "$sys"
		msg+=$(printf '  cpu %6.1f us/tx (user %.1f, sys %.1f)' "$total" "$user" "$sys")
	fi
	note "round $round/$ROUNDS $msg$idle_msg$bypass_msg"
	if ! alive "$t"; then
		note "$t (pid $pid) has exited; it is skipped from now on"
		DEAD[$t]=1
	fi
}

# syscalls TARGET: strace -c -f on the pooler (all its threads) while pgbench
# -S -c 16 runs SYSCALL_TX transactions per client; records the calls per
# transaction, in total and per system call. A separate, untimed run, so that
# strace's overhead does not touch the TPS figures.
syscalls() {
	local t=$1 pid=${PID[$1]:-} port=${PORT[$1]}
	if [ -z "$pid" ] || [ -n "${DEAD[$t]:-}" ]; then
		note "syscalls $t: skipped (no running process to trace)"
		return 0
	fi
	local sout=$WORK/strace-$t.txt serr=$WORK/strace-$t.err out=$WORK/pgbench-syscalls-$t.log i rc=0
	"$STRACE" -c -f -p "$pid" -o "$sout" 2>"$serr" &
	STRACE_PID=$!
	# Wait until strace has attached to the pooler.
	for ((i = 0; i < 100; i++)); do
		grep -q 'attached' "$serr" 2>/dev/null && break
		kill -0 "$STRACE_PID" 2>/dev/null || break
		sleep 0.1
	done
	if ! grep -q 'attached' "$serr" 2>/dev/null; then
		note "syscalls $t: strace could not attach:"
		sed 's/^/    /' "$serr" >&2
		stop_pid "$STRACE_PID" 2
		STRACE_PID=
		return 0
	fi
	sleep 0.2
	timeout -k 5 300 "$PGBENCH" -n -t "$SYSCALL_TX" -p "$port" -S -c 16 -j 2 bench >"$out" 2>&1 &
	PGBENCH_PID=$!
	wait "$PGBENCH_PID" || rc=$?
	PGBENCH_PID=
	# SIGINT makes strace detach and write its summary.
	kill -INT "$STRACE_PID" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do kill -0 "$STRACE_PID" 2>/dev/null || break; sleep 0.1; done
	stop_pid "$STRACE_PID" 2
	STRACE_PID=
	local tx
	tx=$(awk -F': *' '/^number of transactions actually processed/ {split($2, a, "/"); print a[1]; exit}' "$out")
	if [ $rc -ne 0 ] || [ -z "$tx" ] || [ "$tx" -eq 0 ]; then
		note "syscalls $t: pgbench failed (exit $rc); last lines:"
		tail -5 "$out" | sed 's/^/    /' >&2
		return 0
	fi
	local rows
	rows=$("$PY" "$BENCH_DIR/bench_stats.py" strace "$sout" "$tx") || {
		note "syscalls $t: could not read strace's summary ($sout)"
		return 0
	}
	local name val total=
	while read -r name val; do
		[ -n "$name" ] || continue
		if [ "$name" = total ]; then
			total=$val
			record 1 syscalls "$t" syscalls_per_tx "$val"
		else
			record 1 syscalls "$t" "sc_$name" "$val"
		fi
	done <<<"$rows"
	note "syscalls      $(printf '%-13s' "${LABEL[$t]}") $tx transactions under strace: ${total:-?} system calls per transaction"
}

# --- rounds
printf '%s\n' "select repeat('x', $STREAM_WIDTH) from generate_series(1, $STREAM_ROWS);" >"$WORK/stream.sql"
n=${#TARGETS[@]}
for ((r = 1; r <= ROUNDS; r++)); do
	order=()
	for ((i = 0; i < n; i++)); do order+=("${TARGETS[$(((i + r - 1) % n))]}"); done
	note "round $r/$ROUNDS, order: ${order[*]}"
	for w in $WORKLOADS; do
		case $w in syscalls | scaling | clients) continue ;; esac
		for t in "${order[@]}"; do
			run_one "$r" "$w" "$t"
		done
	done
done

if [[ " $WORKLOADS " == *" syscalls "* ]]; then
	for t in "${TARGETS[@]}"; do
		[ "$t" = direct ] && continue
		syscalls "$t"
	done
fi

# --- scaling: the pooler alone, with a database that costs nothing
SCALING_TABLE=
# scaling: see the top of this file. Fills SCALING_TABLE.
scaling() {
	local fakepg=${FAKEPG_BIN:-$REPO/build/fakepg} fport names=() r name n pid port out tps
	if [ ! -x "$fakepg" ]; then
		fakepg=$WORK/fakepg
		cc -O2 -pthread -o "$fakepg" "$BENCH_DIR/fakepg.c" || { note "scaling: cannot build bench/fakepg.c: skipped"; return; }
	fi
	fport=$(free_port)
	"$fakepg" "$fport" "$(nproc)" >"$WORK/fakepg.log" 2>&1 &
	FAKEPG_PID=$!
	wait_port "$fport" 10 "$FAKEPG_PID" || { note "scaling: fakepg did not start: skipped"; return; }
	declare -gA SCALING_PORT=()
	if wants pgbouncer; then
		mkdir -p "$WORK/pgbouncer_fake"
		port=$(free_port)
		sed -e "s/port=$PG_PORT /port=$fport /" -e "s/^listen_port = .*/listen_port = $port/" \
			-e "s#$WORK/pgbouncer/#$WORK/pgbouncer_fake/#" "$WORK/pgbouncer/pgbouncer.ini" >"$WORK/pgbouncer_fake/pgbouncer.ini"
		cp "$WORK/pgbouncer/userlist.txt" "$WORK/pgbouncer_fake/"
		[ $IS_ROOT -eq 1 ] && chown -R postgres: "$WORK/pgbouncer_fake"
		(exec_as_pg "$PGBOUNCER_BIN" -q "$WORK/pgbouncer_fake/pgbouncer.ini") >"$WORK/pgbouncer_fake-stderr.log" 2>&1 &
		pid=$!
		SCALING_PIDS+=("$pid")
		wait_port "$port" 30 "$pid" || { note "scaling: PgBouncer did not start: skipped"; return; }
		names+=(pgbouncer)
		SCALING_PORT[pgbouncer]=$port
	fi
	BACKEND_PORT=$fport
	SLUICE_DEFAULT_WORKERS=
	for n in 1 2 4; do
		start_sluice "sluice_w$n" SCALING_NEW_PID "workers = $n"
		SCALING_PIDS+=("$SCALING_NEW_PID")
		SCALING_NEW_PID=
		names+=("sluice_w$n")
		SCALING_PORT[sluice_w$n]=${PORT[sluice_w$n]}
	done
	BACKEND_PORT=$PG_PORT
	SLUICE_DEFAULT_WORKERS=1
	declare -A got=()
	for ((r = 1; r <= ROUNDS; r++)); do
		for ((i = 0; i < ${#names[@]}; i++)); do
			name=${names[$(((i + r - 1) % ${#names[@]}))]}
			out=$WORK/pgbench-scaling-$name-$r.log
			timeout -k 5 $((DURATION + 60)) "$PGBENCH" -n -S -c 16 -j 2 -T "$DURATION" -p "${SCALING_PORT[$name]}" bench \
				>"$out" 2>&1 || true
			tps=$(awk '/^tps = / {printf "%.0f", $3; exit}' "$out")
			note "scaling $r/$ROUNDS $(printf '%-13s' "$name") ${tps:-failed} tps"
			[ -n "$tps" ] && record "$r" scaling "$name" tps "$tps" && got[$name]+="$tps "
		done
	done
	local w1=
	SCALING_TABLE=$(
		echo "scaling with a backend that costs nothing (bench/fakepg, $(nproc) threads): pgbench -S -c 16 -j 2," \
			"median TPS of $ROUNDS runs; $(nproc) CPUs shared by pgbench, fakepg and the pooler"
		printf '%-24s %8s %12s\n' pooler TPS "vs 1 worker"
		for name in "${names[@]}"; do
			tps=$(tr ' ' '\n' <<<"${got[$name]:-}" | grep . | sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}')
			case $name in
			pgbouncer) printf '%-24s %8s %12s\n' "pgbouncer (one thread)" "${tps:--}" - ;;
			*)
				[ "$name" = sluice_w1 ] && w1=$tps
				printf '%-24s %8s %12s\n' "sluice workers = ${name#sluice_w}" "${tps:--}" \
					"$([ -n "$w1" ] && [ -n "$tps" ] && awk -v a="$tps" -v b="$w1" 'BEGIN {printf "%.2f", a / b}')"
				;;
			esac
		done
	)
	for p in "${SCALING_PIDS[@]}"; do stop_pid "$p" 10; done
	SCALING_PIDS=()
	stop_pid "$FAKEPG_PID" 5
	FAKEPG_PID=
}
[[ " $WORKLOADS " == *" scaling "* ]] && scaling

# --- clients: throughput by number of clients, one short run per point
CLIENTS_TABLE=
clients_sweep() {
	local n t j tps out line k=0 i secs
	local csv=$OUT_DIR/clients.csv
	local -a order
	echo "clients,$(IFS=,; echo "${TARGETS[*]}")" >"$csv"
	for n in $CLIENT_COUNTS; do
		j=$((n < 2 ? n : 2))
		# pgbench's -T counts the time it takes to connect, and a direct
		# connection forks a backend: at 64 clients on a busy 2-CPU
		# machine that took the whole 3 s (0 transactions). A second more
		# per 16 clients; pgbench's tps leaves the connecting out.
		secs=$((CLIENTS_DURATION + n / 16))
		order=()
		for ((i = 0; i < ${#TARGETS[@]}; i++)); do order+=("${TARGETS[$(((i + k) % ${#TARGETS[@]}))]}"); done
		k=$((k + 1))
		declare -A got=()
		for t in "${order[@]}"; do
			[ -n "${DEAD[$t]:-}" ] && continue
			out=$WORK/pgbench-clients-c$n-$t.log
			timeout -k 5 $((secs + 60)) "$PGBENCH" -n -S -c "$n" -j "$j" -T "$secs" \
				-p "${PORT[$t]}" bench >"$out" 2>&1 &
			PGBENCH_PID=$!
			wait "$PGBENCH_PID" || true
			PGBENCH_PID=
			tps=$(awk '/^tps = / {printf "%.0f", $3; exit}' "$out")
			note "clients $(printf '%3d %-13s' "$n" "${LABEL[$t]}") ${tps:-failed} tps"
			[ -n "$tps" ] && record 1 "clients_c$n" "$t" tps "$tps"
			got[$t]=$tps
		done
		line=$n
		for t in "${TARGETS[@]}"; do line+=",${got[$t]:-}"; done
		echo "$line" >>"$csv"
		unset got
	done
	CLIENTS_TABLE=$(
		echo "throughput by number of clients, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs:" \
			"pgbench -S -c N -j min(N,2) -T $CLIENTS_DURATION+N/16 s, one run each, TPS (without connection time)"
		"$PY" "$BENCH_DIR/bench_stats.py" clients-table "$csv" "${target_specs[@]}"
	)
	printf '%s\n' "$CLIENTS_TABLE" >"$OUT_DIR/clients.txt"
}
target_specs=()
for t in "${TARGETS[@]}"; do target_specs+=("$t=${LABEL[$t]}"); done
[[ " $WORKLOADS " == *" clients "* ]] && clients_sweep

# --- report
{
	echo "sluice benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, ROUNDS=$ROUNDS DURATION=${DURATION}s," \
		"scale $SCALE, pool_mode=transaction (prepared: session), default_pool_size=$POOL_SIZE, medians over rounds," \
		"machine ${BUSY}% busy before start"
	echo "$("$PGBOUNCER_BIN" --version 2>/dev/null | head -1), sluice $SLUICE_BIN"
	echo
	BENCH_IDLE_CLIENTS=$IDLE_CLIENTS BENCH_RATE=$RATE BENCH_STREAM_BYTES=$STREAM_BYTES \
		"$PY" "$BENCH_DIR/bench_stats.py" summary "$RUNS_CSV" "$OUT_DIR/results.csv" "${target_specs[@]}"
} | tee "$OUT_DIR/table.txt"
for t in "${!DEAD[@]}"; do
	echo "WARNING: $t exited during the benchmark; its figures are incomplete (see build/bench/logs)." |
		tee -a "$OUT_DIR/table.txt"
done
[ -n "$BYPASS_DROPPED" ] && echo "NOTE: $BYPASS_DROPPED." | tee -a "$OUT_DIR/table.txt"
[ -n "$SCALING_TABLE" ] && printf '\n%s\n' "$SCALING_TABLE" | tee -a "$OUT_DIR/table.txt"
[ -n "$CLIENTS_TABLE" ] && printf '\n%s\n' "$CLIENTS_TABLE" | tee -a "$OUT_DIR/table.txt"

# --- optional chart
rm -f "$OUT_DIR/chart.png" "$OUT_DIR/clients.png"
if [ "$CHART" = 1 ] && ! command -v gnuplot >/dev/null; then
	if [ $IS_ROOT -eq 1 ]; then
		note "CHART=1: installing gnuplot-nox"
		DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q gnuplot-nox >"$WORK/apt-gnuplot.log" 2>&1 ||
			{ tail -5 "$WORK/apt-gnuplot.log" >&2; note "could not install gnuplot-nox: no chart"; }
	else
		note "CHART=1 but gnuplot is missing and we are not root: no chart (apt-get install gnuplot-nox)"
	fi
fi
if [ "$CHART" != 0 ] && command -v gnuplot >/dev/null; then
	if [ "$n_pgbench_workloads" -eq 0 ]; then
		: # only syscalls, scaling or clients: no table of rounds to draw
	elif "$PY" "$BENCH_DIR/bench_stats.py" chart "$OUT_DIR/results.csv" "$WORK/chart" "$OUT_DIR/chart.png" "${target_specs[@]}" &&
		gnuplot "$WORK/chart.gp" >"$WORK/gnuplot.log" 2>&1 && [ -s "$OUT_DIR/chart.png" ]; then
		note "chart: build/bench/chart.png"
	else
		cat "$WORK/gnuplot.log" >&2 2>/dev/null || true
		note "gnuplot failed: no chart"
	fi
	if [ -n "$CLIENTS_TABLE" ]; then
		if "$PY" "$BENCH_DIR/bench_stats.py" clients-chart "$OUT_DIR/clients.csv" "$WORK/clients" "$OUT_DIR/clients.png" \
			"${target_specs[@]}" && gnuplot "$WORK/clients.gp" >"$WORK/gnuplot-clients.log" 2>&1 && [ -s "$OUT_DIR/clients.png" ]; then
			note "chart: build/bench/clients.png"
		else
			cat "$WORK/gnuplot-clients.log" >&2 2>/dev/null || true
			note "gnuplot failed: no clients chart"
		fi
	fi
fi
note "results: build/bench/results.csv (medians), build/bench/runs.csv (every run), build/bench/table.txt"
