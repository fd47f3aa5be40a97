#!/usr/bin/env bash
# bench/routing.sh: what routing and mirroring (issue 18) cost or bring.
# `make bench` runs it after bench/mysql.sh; `make bench-routing` runs it
# alone. It prints figures and ratios and never fails on them.
#
# What it does, all on 127.0.0.1 and torn down on exit:
#   1. starts a throwaway PostgreSQL 15 primary (user bench / password bench,
#      database bench, `pgbench -i -s $SCALE`), a streaming standby of it
#      (pg_basebackup -R -X stream) and a third, independent cluster loaded
#      the same way, the mirror;
#   2. puts a small TCP forwarder in front of the mirror that holds every
#      chunk sent to it for MIRROR_DELAY_MS (5) ms: a slow mirror;
#   3. starts one sluice ($SLUICE_BIN), pool_mode = transaction,
#      default_pool_size = 20, with five [databases] entries:
#        primary   the primary alone
#        control   the primary alone again: primary against control is
#                  the machine's noise (an A/A comparison), the yardstick
#                  for what the mirror seems to cost
#        routed    primary + standby, read_routing = auto
#        mirrored  the primary alone, mirror = slowmirror, mirror_fraction = 1
#        slowmirror  the mirror, through the forwarder
#   4. runs ROUNDS rounds; in each, every workload against its targets,
#      the order rotated from round to round; medians over rounds:
#        select   pgbench -S -c CLIENTS -j 2: TPS on `routed` against
#                 `primary` (reads over both servers, primary_reads = on
#                 (PRIMARY_READS=off: standbys only), vs the primary alone;
#                 on a 2-CPU machine both servers share the same CPUs, so
#                 expect no gain here, only the cost of routing)
#        update   pgbench -N (simple update: TPC-B-like without the
#                 branch and teller rows, whose row locks make p99 a
#                 matter of lock queues) -c WRITERS -j 2 --log: TPS and p99
#                 latency on `mirrored` against `primary`: what mirroring to
#                 a slow mirror costs the primary's clients, and sluice's
#                 own CPU time per transaction (/proc, user + system),
#                 which the machine's noise moves less; SHOW MIRRORS
#                 after the last mirrored run (sent, dropped, ...), and
#                 SHOW HOSTS (how many reads each host took)
#        update-rate the same at a fixed rate (pgbench -R: RATE, or
#                 RATE_SHARE (0.6) of the primary's first TPS): p99 latency
#                 where it is not all queueing for two saturated CPUs
#
# Environment: ROUNDS (5), DURATION (8 s per run), SCALE (10), CLIENTS (16),
# WRITERS (8), MIRROR_DELAY_MS (5), MIRROR_SLEEP_MS (100: a trigger on the
# mirror's pgbench_history sleeps that long per row), MIRROR_QUEUE_SIZE (sluice's default:
# a mirror slower than the primary drops what overflows it), RATE and
# RATE_SHARE (update-rate, above), SLUICE_BIN
# (build/sluice).
# Output: the table on stdout and in build/bench/routing.txt; every figure
# in build/bench/routing_runs.csv.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-8}
RATE_SHARE=${RATE_SHARE:-0.6}
SCALE=${SCALE:-10}
CLIENTS=${CLIENTS:-16}
WRITERS=${WRITERS:-8}
MIRROR_DELAY_MS=${MIRROR_DELAY_MS:-5}
. bench/lib.sh
bench_init routing
CLUSTERS=()   # data directories started with pg_ctl
FWD_PID=""; SPID=""
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for p in $SPID $FWD_PID; do
		kill "$p" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null || true
	done
	for d in "${CLUSTERS[@]}"; do
		as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
	done
	mkdir -p "$OUT/routing-logs"
	cp "$WORK"/*.log "$OUT/routing-logs/" 2>/dev/null || true
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# new_cluster NAME PORT: initdb + start; user bench, database bench.
new_cluster() {
	local d=$WORK/$1 port=$2
	bench_pg_start "$1" "$port" "max_connections = 200" "wal_level = replica" "max_wal_senders = 5" \
		"hot_standby = on"
	CLUSTERS+=("$d")
	as_pg timeout 30 "$PGBIN/psql" -X -q -h "$WORK" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
		-c "CREATE ROLE bench LOGIN PASSWORD 'bench'" -c "CREATE DATABASE bench OWNER bench" >/dev/null ||
		die "could not create user/database bench ($1)"
	timeout 600 env PGPASSWORD=bench "$PGBENCH" -i -q -s "$SCALE" -h 127.0.0.1 -p "$port" -U bench bench \
		>"$WORK/pgbench-init-$1.log" 2>&1 || { tail "$WORK/pgbench-init-$1.log" >&2; die "pgbench -i failed ($1)"; }
}

P_PORT=$(free_port); S_PORT=$(free_port); M_PORT=$(free_port); F_PORT=$(free_port); SPORT=$(free_port)
note "primary on $P_PORT, pgbench -i -s $SCALE"
new_cluster primary "$P_PORT"
note "standby on $S_PORT (pg_basebackup)"
as_pg timeout 300 "$PGBIN/pg_basebackup" -h "$WORK" -p "$P_PORT" -U postgres -D "$WORK/standby" \
	-R -X stream -c fast --no-sync >"$WORK/basebackup.log" 2>&1 || { cat "$WORK/basebackup.log" >&2; die "pg_basebackup failed"; }
echo "port = $S_PORT" >>"$WORK/standby/postgresql.conf"
as_pg "$PGBIN/pg_ctl" -D "$WORK/standby" -l "$WORK/standby.log" -w -t 60 start >/dev/null ||
	{ cat "$WORK/standby.log" >&2; die "the standby did not start"; }
CLUSTERS+=("$WORK/standby")
[ "$(as_pg timeout 20 "$PGBIN/psql" -X -At -h "$WORK" -p "$S_PORT" -U postgres -d bench \
	-c 'select pg_is_in_recovery()')" = t ] || die "the standby is not in recovery"
note "mirror on $M_PORT, behind a forwarder adding ${MIRROR_DELAY_MS} ms on $F_PORT"
new_cluster mirror "$M_PORT"
# ... and that sleeps: each replayed transaction waits
# MIRROR_SLEEP_MS (100) ms in the mirror without using a CPU. The mirror is
# slow (sluice drops what overflows its queue) and replays a few
# transactions a second: the mirror cluster, which a real deployment runs
# on another machine, takes next to none of the CPUs that the primary's
# clients need here. (With 20 ms it replayed a tenth of the primary's
# transactions on the same two CPUs, which cost the primary 5-9 % of its
# TPS while sluice's own CPU per transaction rose by 1-3 %.)
if [ "${MIRROR_SLEEP_MS:-100}" != 0 ]; then
	env PGPASSWORD=bench timeout 30 "$PGBIN/psql" -X -q -h 127.0.0.1 -p "$M_PORT" -U bench -d bench -v ON_ERROR_STOP=1 \
		-c "CREATE FUNCTION bench_sleep() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN PERFORM pg_sleep(${MIRROR_SLEEP_MS:-100} / 1000.0); RETURN NEW; END \$\$" \
		-c "CREATE TRIGGER bench_sleep BEFORE INSERT ON pgbench_history FOR EACH ROW EXECUTE FUNCTION bench_sleep()" \
		>/dev/null || die "could not make the mirror sleep"
fi

# The slow mirror: every chunk towards the mirror waits MIRROR_DELAY_MS
# (in order); answers come back at once.
"$PY" - "$F_PORT" "$M_PORT" "$MIRROR_DELAY_MS" >"$WORK/forwarder.log" 2>&1 <<'EOF' &
import asyncio, sys
lport, tport, delay = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000

async def pipe(r, w, d):
    try:
        while True:
            data = await r.read(65536)
            if not data:
                break
            if d:
                await asyncio.sleep(d)
            w.write(data)
            await w.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        w.close()

async def handle(cr, cw):
    try:
        sr, sw = await asyncio.open_connection("127.0.0.1", tport)
    except OSError:
        cw.close()
        return
    await asyncio.gather(pipe(cr, sw, delay), pipe(sr, cw, 0))

async def main():
    srv = await asyncio.start_server(handle, "127.0.0.1", lport)
    async with srv:
        await srv.serve_forever()

asyncio.run(main())
EOF
FWD_PID=$!
wait_port "$F_PORT" 10 || die "the forwarder did not start"

cat >"$WORK/sluice.ini" <<EOF
[databases]
primary = host=127.0.0.1 port=$P_PORT dbname=bench
routed = host=127.0.0.1,127.0.0.1 port=$P_PORT,$S_PORT dbname=bench read_routing=auto primary_reads=${PRIMARY_READS:-on}
mirrored = host=127.0.0.1 port=$P_PORT dbname=bench mirror=slowmirror mirror_fraction=1
control = host=127.0.0.1 port=$P_PORT dbname=bench
slowmirror = host=127.0.0.1 port=$F_PORT dbname=bench
EOF
bench_start_sluice "$SPORT" "role_check_interval = 1" ${MIRROR_QUEUE_SIZE:+"mirror_queue_size = $MIRROR_QUEUE_SIZE"}
export PGPASSWORD=bench
# Wait until the routed entry reads from the standby (roles are found after start-up).
for _ in $(seq 100); do
	[ "$(timeout 10 "$PGBIN/psql" -X -At -h 127.0.0.1 -p "$SPORT" -U bench -d routed \
		-c 'select pg_is_in_recovery()' 2>/dev/null)" = t ] && break
	sleep 0.1
done

RUNS=$OUT/routing_runs.csv
echo "round,workload,target,tps,p99_us,sluice_us_per_tx" >"$RUNS"
# sluice's CPU time so far (user + system), in clock ticks.
sluice_ticks() { proc_ticks "$SPID"; }
HZ=$(getconf CLK_TCK)
# run WORKLOAD TARGET ROUND
run() {
	local w=$1 t=$2 r=$3 log=$WORK/$1-$2-r$3.log lat=$WORK/lat-$1-$2-r$3 args p99="" t0 t1
	case $w in
	select) args=(-S -c "$CLIENTS" -j 2) ;;
	update) mkdir -p "$lat"; args=(-N -c "$WRITERS" -j 2 --log "--log-prefix=$lat/tx") ;;
	update-rate) mkdir -p "$lat"; args=(-N -c "$WRITERS" -j 2 -R "$RATE" --log "--log-prefix=$lat/tx") ;;
	esac
	t0=$(sluice_ticks)
	timeout $((DURATION + 60)) "$PGBENCH" -n -h 127.0.0.1 -p "$SPORT" -U bench -T "$DURATION" "${args[@]}" "$t" \
		>"$log" 2>&1 || { tail -20 "$log" >&2; die "pgbench $w on $t failed"; }
	t1=$(sluice_ticks)
	local tps n cpu; tps=$(awk '/^tps = / {print $3; exit}' "$log")
	n=$(awk '/^number of transactions actually processed:/ {print $6; exit}' "$log")
	cpu=$(awk -v d=$((t1 - t0)) -v n="$n" -v hz="$HZ" 'BEGIN { if (n > 0) printf "%.1f", d * 1e6 / hz / n }')
	if [ "$w" != select ]; then
		p99=$("$PY" bench/bench_stats.py latency "$lat"/tx.* | awk '{print $3}')
		rm -rf "$lat"
	fi
	echo "$r,$w,$t,$tps,$p99,$cpu" >>"$RUNS"
	note "round $r $w $t: $tps tps${p99:+, p99 $p99 us}, sluice $cpu us CPU per transaction"
}

for r in $(seq "$ROUNDS"); do
	if [ $((r % 2)) = 1 ]; then order=(a b); else order=(b a); fi
	for o in "${order[@]}"; do
		if [ "$o" = a ]; then run select primary "$r"; else run select routed "$r"; fi
	done
	case $((r % 3)) in
	1) three=(primary mirrored control) ;;
	2) three=(mirrored control primary) ;;
	0) three=(control primary mirrored) ;;
	esac
	for t in "${three[@]}"; do run update "$t" "$r"; done
	# The fixed rate: RATE_SHARE of the primary's first TPS.
	[ -n "${RATE:-}" ] || RATE=$(awk -F, -v s="$RATE_SHARE" '$2 == "update" && $3 == "primary" {printf "%d", $4 * s; exit}' "$RUNS")
	for t in "${three[@]}"; do run update-rate "$t" "$r"; done
done

MIRRORS=$(timeout 10 "$PGBIN/psql" -X -h 127.0.0.1 -p "$SPORT" -U bench -d pgbouncer -c 'SHOW MIRRORS' 2>&1 || true)
HOSTS=$(timeout 10 "$PGBIN/psql" -X -h 127.0.0.1 -p "$SPORT" -U bench -d pgbouncer -c 'SHOW HOSTS' 2>&1 || true)

"$PY" - "$RUNS" "$ROUNDS" "$DURATION" "$CLIENTS" "$WRITERS" "$MIRROR_DELAY_MS" "$RATE" <<'EOF' | tee "$OUT/routing.txt"
import csv, statistics, sys
runs, rounds, duration, clients, writers, delay, rate = sys.argv[1:]
rows = list(csv.DictReader(open(runs)))
def med(w, t, k):
    v = [float(r[k]) for r in rows if r["workload"] == w and r["target"] == t and r[k]]
    return statistics.median(v) if v else None
print(f"sluice routing benchmark: {rounds} rounds x {duration} s, medians")
print(f"{'workload':<34} {'target':<10} {'TPS':>9} {'p99 us':>9} {'TPS ratio':>10} {'p99 ratio':>10} "
      f"{'sluice us/tx':>13} {'ratio':>6}")
for w, label, base, others in (("select", f"pgbench -S -c {clients}", "primary", ("routed",)),
                               ("update", f"pgbench -N -c {writers}", "primary", ("mirrored", "control")),
                               ("update-rate", f"pgbench -N -c {writers} -R {rate}", "primary", ("mirrored", "control"))):
    b_tps, b_p99, b_cpu = med(w, base, "tps"), med(w, base, "p99_us"), med(w, base, "sluice_us_per_tx")
    for t in (base,) + others:
        tps, p99, cpu = med(w, t, "tps"), med(w, t, "p99_us"), med(w, t, "sluice_us_per_tx")
        rt = f"{tps / b_tps:.2f}" if tps and b_tps else ""
        rp = f"{p99 / b_p99:.2f}" if p99 and b_p99 else ""
        rc = f"{cpu / b_cpu:.2f}" if cpu and b_cpu else ""
        print(f"{label:<34} {t:<10} {tps or 0:>9.0f} {'' if p99 is None else f'{p99:.0f}':>9} "
              f"{rt:>10} {rp:>10} {'' if cpu is None else f'{cpu:.1f}':>13} {rc:>6}")
print(f"routed: read_routing = auto over primary + standby; mirrored: mirror_fraction = 1 "
      f"to a mirror {delay} ms away; control: the primary alone again (its ratios are the "
      f"machine's noise); ratios are over the primary-only entry")
EOF
echo "SHOW MIRRORS after the last mirrored run:" | tee -a "$OUT/routing.txt"
echo "$MIRRORS" | tee -a "$OUT/routing.txt"
echo "SHOW HOSTS (reads: transactions each host took as reads):" | tee -a "$OUT/routing.txt"
echo "$HOSTS" | tee -a "$OUT/routing.txt"
