#!/usr/bin/env bash
# bench/sharding.sh: what routing over shards (issue 19) costs a
# single-shard point query. `make bench` runs it after bench/routing.sh;
# `make bench-sharding` runs it alone. It prints figures and ratios and
# never fails on them.
#
# What it does, all on 127.0.0.1 and torn down on exit:
#   1. starts a throwaway PostgreSQL 15 (user bench / password bench) with
#      five databases: `plain`, with pgbench_accounts (ACCOUNTS rows), and
#      four shard databases, each with the rows of pgbench_accounts that
#      PostgreSQL's PARTITION BY HASH (aid) with MODULUS 4 puts in its
#      remainder (satisfies_hash_partition decides);
#   2. starts one sluice ($SLUICE_BIN), pool_mode = transaction,
#      default_pool_size = 20, with two targets: `plain` (the database as
#      one pool) and `shop` (shards=shop_0..shop_3, pgbench_accounts
#      sharded on aid:int4);
#   3. runs ROUNDS rounds; in each, both targets in turn (the order
#      alternated), for each workload in WORKLOADS, pgbench -c CLIENTS -j 2
#      -T DURATION with:
#        simple, prepared  `SELECT abalance FROM pgbench_accounts WHERE
#                   aid = :aid` (aid random), -M simple / -M prepared: one
#                   shard's point query;
#        aggregate  `SELECT count(*), sum(abalance), max(aid) FROM
#                   pgbench_accounts WHERE aid BETWEEN :a AND :a + 2000`,
#                   -M simple: on `shop` every shard answers a row and
#                   sluice combines them (docs/sharding.md);
#      medians over rounds of TPS and of sluice's own CPU time per
#      transaction (/proc, user + system).
# The target of issue 19 is shop/plain >= 0.8 for the point query (routing
# must be cheap: a prepared statement's route is kept, a simple query's is
# kept by shape). The aggregate row has no target: it shows what asking
# four shards in turn costs against one database.
#
# Environment: ROUNDS (5), DURATION (8 s per run), ACCOUNTS (100000),
# CLIENTS (8), WORKLOADS ("simple prepared aggregate"), SLUICE_BIN
# (build/sluice).
# Output: the table on stdout and in build/bench/sharding.txt; every figure
# in build/bench/sharding_runs.csv.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-8}
ACCOUNTS=${ACCOUNTS:-100000}
CLIENTS=${CLIENTS:-8}
WORKLOADS=${WORKLOADS:-simple prepared aggregate}
. bench/lib.sh
bench_init sharding
DATA=""; SPID=""
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$SPID" ]; then
		kill "$SPID" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$SPID" 2>/dev/null || true
	fi
	[ -n "$DATA" ] && { as_pg "$PGBIN/pg_ctl" -D "$DATA" -m immediate -w -t 30 stop >/dev/null 2>&1 || true; }
	mkdir -p "$OUT/sharding-logs"
	cp "$WORK"/*.log "$OUT/sharding-logs/" 2>/dev/null || true
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PG_PORT=$(free_port); SPORT=$(free_port)
DATA=$WORK/data
note "PostgreSQL on $PG_PORT: plain and 4 shards, $ACCOUNTS accounts"
bench_pg_start data "$PG_PORT" "max_connections = 300"
su_sql() { as_pg timeout 600 "$PGBIN/psql" -X -q -h "$WORK" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 "$@" >/dev/null; }
su_sql -d postgres -c "CREATE ROLE bench LOGIN PASSWORD 'bench'" || die "could not create user bench"
LOAD="CREATE TABLE pgbench_accounts (aid int PRIMARY KEY, bid int, abalance int, filler char(84));
GRANT ALL ON pgbench_accounts TO bench;"
for db in plain shop_0 shop_1 shop_2 shop_3; do
	su_sql -d postgres -c "CREATE DATABASE $db OWNER bench" || die "could not create database $db"
	if [ "$db" = plain ]; then
		su_sql -d "$db" -c "$LOAD" \
			-c "INSERT INTO pgbench_accounts SELECT aid, 1, 0, '' FROM generate_series(1, $ACCOUNTS) aid" ||
			die "could not load $db"
	else
		r=${db#shop_}
		su_sql -d "$db" -c "$LOAD" \
			-c "CREATE TABLE placement (aid int) PARTITION BY HASH (aid)" \
			-c "INSERT INTO pgbench_accounts SELECT aid, 1, 0, '' FROM generate_series(1, $ACCOUNTS) aid
			    WHERE satisfies_hash_partition('placement'::regclass, 4, $r, aid)" ||
			die "could not load $db"
	fi
	su_sql -d "$db" -c "VACUUM ANALYZE pgbench_accounts" || true
done

db_line() { echo "host=127.0.0.1 port=$PG_PORT dbname=$1"; }
cat >"$WORK/sluice.ini" <<EOF
[databases]
plain = $(db_line plain)
shop_0 = $(db_line shop_0)
shop_1 = $(db_line shop_1)
shop_2 = $(db_line shop_2)
shop_3 = $(db_line shop_3)
shop = shards=shop_0,shop_1,shop_2,shop_3
[sharded_tables]
shop.pgbench_accounts = aid:int4
EOF
bench_start_sluice "$SPORT"
export PGPASSWORD=bench

printf '\\set aid random(1, %d)\nSELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n' "$ACCOUNTS" \
	>"$WORK/point.sql"
printf '\\set a random(1, %d)\nSELECT count(*), sum(abalance), max(aid) FROM pgbench_accounts WHERE aid BETWEEN :a AND :a + 2000;\n' \
	"$((ACCOUNTS - 2000))" >"$WORK/aggregate.sql"
# Each target answers the same: a wrong route or merge would show here.
for q in "SELECT aid FROM pgbench_accounts WHERE aid = 4242" \
	"SELECT count(*), sum(aid), max(aid), min(aid) FROM pgbench_accounts WHERE aid BETWEEN 100 AND 5000"; do
	want=$(timeout 20 "$PGBIN/psql" -X -At -h 127.0.0.1 -p "$SPORT" -U bench -d plain -c "$q") || die "$q failed on plain"
	got=$(timeout 20 "$PGBIN/psql" -X -At -h 127.0.0.1 -p "$SPORT" -U bench -d shop -c "$q") || die "$q failed on shop"
	[ "$got" = "$want" ] || die "shop answered '$got' to '$q', plain '$want'"
done

RUNS=$OUT/sharding_runs.csv
echo "round,mode,target,tps,sluice_us_per_tx" >"$RUNS" # mode: the workload
sluice_ticks() { proc_ticks "$SPID"; }
HZ=$(getconf CLK_TCK)
# run WORKLOAD TARGET ROUND
run() {
	local w=$1 t=$2 r=$3 log=$WORK/$1-$2-r$3.log t0 t1 mode=simple script=$WORK/point.sql
	[ "$w" = prepared ] && mode=prepared
	[ "$w" = aggregate ] && script=$WORK/aggregate.sql
	t0=$(sluice_ticks)
	timeout $((DURATION + 60)) "$PGBENCH" -n -h 127.0.0.1 -p "$SPORT" -U bench -T "$DURATION" -c "$CLIENTS" -j 2 \
		-M "$mode" -f "$script" "$t" >"$log" 2>&1 || { tail -20 "$log" >&2; die "pgbench $w on $t failed"; }
	t1=$(sluice_ticks)
	local tps n cpu
	tps=$(awk '/^tps = / {print $3; exit}' "$log")
	n=$(awk '/^number of transactions actually processed:/ {print $6; exit}' "$log")
	cpu=$(awk -v d=$((t1 - t0)) -v n="$n" -v hz="$HZ" 'BEGIN { if (n > 0) printf "%.1f", d * 1e6 / hz / n }')
	echo "$r,$w,$t,$tps,$cpu" >>"$RUNS"
	note "round $r $w $t: $tps tps, sluice $cpu us CPU per transaction"
}

for r in $(seq "$ROUNDS"); do
	if [ $((r % 2)) = 1 ]; then order=(plain shop); else order=(shop plain); fi
	for w in $WORKLOADS; do
		for t in "${order[@]}"; do run "$w" "$t" "$r"; done
	done
done

"$PY" - "$RUNS" "$ROUNDS" "$DURATION" "$CLIENTS" "$ACCOUNTS" <<'EOF' | tee "$OUT/sharding.txt"
import csv, statistics, sys
runs, rounds, duration, clients, accounts = sys.argv[1:]
rows = list(csv.DictReader(open(runs)))
modes = list(dict.fromkeys(r["mode"] for r in rows))
def vals(m, t, k):
    return [float(r[k]) for r in rows if r["mode"] == m and r["target"] == t and r[k]]
print(f"sluice sharding benchmark: {rounds} rounds x {duration} s, {clients} clients, "
      f"{accounts} accounts; medians (per-round shop/plain TPS ratios in brackets)")
print(f"{'workload':<36} {'target':<7} {'TPS':>9} {'ratio':>6} {'sluice us/tx':>13} {'ratio':>6}")
labels = {"simple": "point select -M simple", "prepared": "point select -M prepared",
          "aggregate": "count/sum/max over 2000 rows"}
for m in modes:
    label = labels.get(m, m)
    base_tps, base_cpu = statistics.median(vals(m, "plain", "tps")), statistics.median(vals(m, "plain", "sluice_us_per_tx"))
    for t in ("plain", "shop"):
        tps, cpu = statistics.median(vals(m, t, "tps")), statistics.median(vals(m, t, "sluice_us_per_tx"))
        print(f"{label:<36} {t:<7} {tps:>9.0f} {tps / base_tps:>6.2f} {cpu:>13.1f} {cpu / base_cpu:>6.2f}")
    per_round = []
    for r in sorted({x["round"] for x in rows}, key=int):
        p = [float(x["tps"]) for x in rows if x["round"] == r and x["mode"] == m and x["target"] == "plain"]
        s = [float(x["tps"]) for x in rows if x["round"] == r and x["mode"] == m and x["target"] == "shop"]
        if p and s:
            per_round.append(f"{s[0] / p[0]:.2f}")
    print(f"{'':<36} per round: [{' '.join(per_round)}]")
print("plain: pgbench_accounts in one database, one pool; shop: the same rows over 4 shard databases "
      "of the same server (shards=, PARTITION BY HASH (aid) placement); target shop/plain >= 0.8 for the "
      "point selects; the aggregate asks each of the 4 shards in turn")
EOF
