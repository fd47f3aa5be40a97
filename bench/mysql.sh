#!/usr/bin/env bash
# bench/mysql.sh: MySQL through sluice against MariaDB itself, with sysbench.
# `make bench` runs it after bench/bench.sh; `make bench-mysql` runs it alone.
#
# What it does, all on 127.0.0.1 and torn down on exit:
#   1. starts a throwaway MariaDB 10.11 (mariadb-install-db + mariadbd
#      --no-defaults, as root), user bench / password bench, database bench,
#      and loads it with `sysbench oltp_common prepare` (TABLES x TABLE_SIZE);
#   2. starts sluice ($SLUICE_BIN) with mysql_listen_port, pool_mode =
#      transaction and two [databases] entries for the same schema:
#      bench4 (pool_size 4) and bench8 (pool_size 8);
#   3. runs ROUNDS rounds; in each, every workload against every target
#      (direct, sluice_p4, sluice_p8), the order rotated from round to round;
#      medians over rounds are reported, with sluice/direct ratios;
#   4. for sluice, the CPU it burns per query (utime+stime from
#      /proc/PID/stat over the run) and its memory per idle MySQL client.
#
# Workloads: oltp_point_select and oltp_read_write, THREADS (16) threads,
# DURATION (10) s each. sysbench runs with --db-ps-mode=auto (its default:
# server-side prepared statements, which follow the client from server to
# server in transaction mode; PS_MODE=disable sends plain queries).
#
# Environment: ROUNDS (3), DURATION (10), THREADS (16), TABLES (4),
# TABLE_SIZE (10000), SLUICE_BIN (build/sluice), IDLE_CLIENTS (500),
# PS_MODE (auto), SLUICE_EXTRA (lines added to sluice.ini's [sluice]
# section, e.g. "workers = 1").
# Output: a table on stdout and in build/bench/mysql.txt; every figure in
# build/bench/mysql_runs.csv.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
THREADS=${THREADS:-16}
TABLES=${TABLES:-4}
TABLE_SIZE=${TABLE_SIZE:-10000}
IDLE_CLIENTS=${IDLE_CLIENTS:-500}
PS_MODE=${PS_MODE:-auto}
SLUICE_BIN=${SLUICE_BIN:-$PWD/build/sluice}
OUT=build/bench
mkdir -p "$OUT"

for tool in mariadbd mariadb-install-db sysbench; do
	command -v "$tool" >/dev/null 2>&1 || { echo "bench/mysql.sh: $tool not installed (scripts/install-deps.sh)" >&2; exit 2; }
done
[ -x "$SLUICE_BIN" ] || { echo "bench/mysql.sh: $SLUICE_BIN not built (make all)" >&2; exit 2; }

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

WORK=$(mktemp -d /tmp/sluice-bench-mysql.XXXXXX)
MPID=""; SPID=""
cleanup() {
	[ -n "$SPID" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null
	[ -n "$MPID" ] && kill "$MPID" 2>/dev/null && wait "$MPID" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

MPORT=$(free_port)
mariadb-install-db --no-defaults --datadir="$WORK/data" --user=root --auth-root-authentication-method=normal \
	--skip-test-db --tmpdir="$WORK" >"$WORK/install.log" 2>&1
mariadbd --no-defaults --datadir="$WORK/data" --socket="$WORK/sock" --port="$MPORT" --bind-address=127.0.0.1 \
	--user=root --tmpdir="$WORK" --skip-log-bin --skip-name-resolve --max-connections=500 \
	--innodb-buffer-pool-size=256M --innodb-flush-log-at-trx-commit=0 >"$WORK/mariadbd.log" 2>&1 &
MPID=$!
for _ in $(seq 300); do [ -S "$WORK/sock" ] && break; sleep 0.1; done
[ -S "$WORK/sock" ] || { echo "bench/mysql.sh: mariadbd did not start" >&2; tail "$WORK/mariadbd.log" >&2; exit 1; }
mariadb --no-defaults --socket="$WORK/sock" -uroot -e \
	"CREATE USER bench@'%' IDENTIFIED BY 'bench'; CREATE DATABASE bench; GRANT ALL ON *.* TO bench@'%';"

SB_COMMON=(--db-driver=mysql --mysql-host=127.0.0.1 --mysql-user=bench --mysql-password=bench
	--tables="$TABLES" --table-size="$TABLE_SIZE" --db-ps-mode="$PS_MODE")
sysbench oltp_common "${SB_COMMON[@]}" --mysql-port="$MPORT" --mysql-db=bench prepare >"$WORK/prepare.log" 2>&1

SPORT=$(free_port); PGPORT=$(free_port)
cat >"$WORK/sluice.ini" <<EOF
[databases]
bench4 = host=127.0.0.1 port=$MPORT dbname=bench protocol=mysql pool_size=4
bench8 = host=127.0.0.1 port=$MPORT dbname=bench protocol=mysql pool_size=8
[sluice]
listen_addr = 127.0.0.1
listen_port = $PGPORT
unix_socket_dir =
mysql_listen_port = $SPORT
auth_type = md5
auth_file = $WORK/userlist.txt
pool_mode = transaction
max_client_conn = $((IDLE_CLIENTS + 200))
${SLUICE_EXTRA:-}
EOF
echo '"bench" "bench"' >"$WORK/userlist.txt"
"$SLUICE_BIN" "$WORK/sluice.ini" >"$WORK/sluice.log" 2>&1 &
SPID=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$SPORT") 2>/dev/null && break; sleep 0.1; done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

# run TARGET WORKLOAD ROUND: one sysbench run; appends to the runs file.
RUNS=$OUT/mysql_runs.csv
echo "round,workload,target,qps,tps,p95_ms,sluice_cpu_us_per_query" >"$RUNS"
run() {
	local target=$1 workload=$2 round=$3 port db
	case $target in
	direct) port=$MPORT; db=bench ;;
	sluice_p4) port=$SPORT; db=bench4 ;;
	sluice_p8) port=$SPORT; db=bench8 ;;
	esac
	local t0; t0=$(cpu_ticks "$SPID")
	local log="$WORK/$workload-$target-r$round.log"
	sysbench "$workload" "${SB_COMMON[@]}" --mysql-port="$port" --mysql-db="$db" --threads="$THREADS" \
		--time="$DURATION" --report-interval=0 run >"$log" 2>&1 || { echo "sysbench failed, see below" >&2; tail -20 "$log" >&2; exit 1; }
	local t1; t1=$(cpu_ticks "$SPID")
	local qps tps p95 queries cpu=""
	qps=$(awk '/queries:/ {gsub(/[(]/,"",$3); print $3}' "$log")
	tps=$(awk '/transactions:/ {gsub(/[(]/,"",$3); print $3}' "$log")
	p95=$(awk '/95th percentile:/ {print $3}' "$log")
	queries=$(awk '/queries:/ {print $2; exit}' "$log")
	if [ "$target" != direct ] && [ "${queries:-0}" -gt 0 ]; then
		cpu=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v q="$queries" 'BEGIN {printf "%.1f", d * 1e6 / hz / q}')
	fi
	echo "$round,$workload,$target,$qps,$tps,$p95,$cpu" >>"$RUNS"
}

TARGETS=(direct sluice_p4 sluice_p8)
WORKLOADS=(oltp_point_select oltp_read_write)
for r in $(seq "$ROUNDS"); do
	for w in "${WORKLOADS[@]}"; do
		n=${#TARGETS[@]}
		for i in $(seq 0 $((n - 1))); do
			run "${TARGETS[$(((i + r) % n))]}" "$w" "$r"
		done
	done
done

# Memory per idle client: RSS growth over IDLE_CLIENTS logged-in clients.
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
before=$(rss "$SPID")
/usr/bin/python3 - "$SPORT" "$IDLE_CLIENTS" <<'EOF' &
import sys, time, pymysql
port, n = int(sys.argv[1]), int(sys.argv[2])
# autocommit=None: no SET at connect (an idle client as a pooler sees most).
conns = [pymysql.connect(host="127.0.0.1", port=port, user="bench", password="bench", database="bench4",
                         autocommit=None) for _ in range(n)]
time.sleep(4)
EOF
IDLE_PID=$!
sleep 3
after=$(rss "$SPID")
wait "$IDLE_PID" || true
idle_bytes=$(( (after - before) * 1024 / IDLE_CLIENTS ))

/usr/bin/python3 - "$RUNS" "$idle_bytes" "$THREADS" "$ROUNDS" "$DURATION" "$PS_MODE" <<'EOF' | tee "$OUT/mysql.txt"
import csv, statistics, sys
runs, idle, threads, rounds, duration, ps_mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
rows = list(csv.DictReader(open(runs)))
def med(w, t, k):
    v = [float(r[k]) for r in rows if r["workload"] == w and r["target"] == t and r[k]]
    return statistics.median(v) if v else None
print(f"sluice MySQL benchmark: sysbench, {threads} threads, {rounds} rounds x {duration} s, "
      f"medians; MariaDB direct vs sluice (transaction mode, pool 4 and 8), --db-ps-mode={ps_mode}")
print(f"{'workload':<20} {'target':<10} {'QPS':>9} {'TPS':>9} {'p95 ms':>8} {'/direct':>8} {'CPU us/query':>13}")
for w in ("oltp_point_select", "oltp_read_write"):
    d = med(w, "direct", "qps")
    for t in ("direct", "sluice_p4", "sluice_p8"):
        q, tp, p95, cpu = (med(w, t, k) for k in ("qps", "tps", "p95_ms", "sluice_cpu_us_per_query"))
        ratio = f"{q / d:.2f}" if q and d else ""
        print(f"{w:<20} {t:<10} {q or 0:>9.0f} {tp or 0:>9.0f} {p95 or 0:>8.2f} {ratio:>8} "
              f"{'' if cpu is None else f'{cpu:.1f}':>13}")
print(f"sluice RSS per idle MySQL client: {idle} bytes")
EOF
