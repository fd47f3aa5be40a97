#!/usr/bin/python3
"""Number crunching for bench.sh (stdlib only).

    bench_stats.py latency LOGFILE...
        Reads pgbench --log per-transaction files (third column = latency in
        microseconds) and prints "COUNT P50 P99".

    bench_stats.py summary RUNS_CSV RESULTS_CSV TARGET...
        RUNS_CSV has rows round,workload,target,metric,value (one per figure
        per run). Takes the median over rounds of each figure, prints the
        table and writes RESULTS_CSV. TARGET is a list of name=label pairs in
        column order; the names "direct", "pgbouncer" and "sluice" get the
        ratio columns.
"""
import csv
import math
import statistics
import sys


def percentile(sorted_vals, q):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_vals:
        return float("nan")
    rank = max(1, math.ceil(q / 100.0 * len(sorted_vals)))
    return sorted_vals[rank - 1]


def cmd_latency(paths):
    vals = []
    for p in paths:
        with open(p) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    vals.append(int(parts[2]))
    vals.sort()
    print("%d %d %d" % (len(vals), percentile(vals, 50), percentile(vals, 99)))


# (key, label, workload, metric, better, decimals)
ROWS = [
    ("select_c16_tps", "select-only -c16 TPS", "select_c16", "tps", "higher", 0),
    ("select_c1_tps", "select-only -c1 TPS", "select_c1", "tps", "higher", 0),
    ("select_c1_p50_us", "select-only -c1 p50 latency us", "select_c1", "p50_us", "lower", 0),
    ("select_c1_p99_us", "select-only -c1 p99 latency us", "select_c1", "p99_us", "lower", 0),
    ("extended_c16_tps", "extended -M extended -c16 TPS", "extended_c16", "tps", "higher", 0),
    ("tpcb_c16_tps", "TPC-B -c16 TPS", "tpcb_c16", "tps", "higher", 0),
    ("connect_c4_tps", "connect per tx -C -c4 TPS", "connect_c4", "tps", "higher", 0),
    ("cpu_us_per_tx", "proxy CPU us/tx (select -c16)", "select_c16", "cpu_us_per_tx", "lower", 1),
    ("cpu_user_us_per_tx", "  of which user us/tx", "select_c16", "cpu_user_us_per_tx", "lower", 1),
    ("cpu_sys_us_per_tx", "  of which system us/tx", "select_c16", "cpu_sys_us_per_tx", "lower", 1),
    ("rss_bytes_per_idle_client", "RSS bytes per idle client", "idle_rss", "rss_bytes_per_client", "lower", 0),
]


def fmt(v, decimals):
    if v is None:
        return "-"
    return "%.*f" % (decimals, v)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def cmd_summary(runs_csv, results_csv, target_specs):
    targets = []
    for spec in target_specs:
        name, _, label = spec.partition("=")
        targets.append((name, label or name))
    names = [t[0] for t in targets]

    samples = {}
    rounds = set()
    with open(runs_csv) as f:
        for row in csv.DictReader(f):
            try:
                v = float(row["value"])
            except ValueError:
                continue
            if math.isnan(v):
                continue
            samples.setdefault((row["workload"], row["metric"], row["target"]), []).append(v)
            rounds.add(row["round"])

    def med(workload, metric, target):
        vals = samples.get((workload, metric, target))
        return statistics.median(vals) if vals else None

    table = []
    csv_rows = []
    for key, label, workload, metric, better, dec in ROWS:
        vals = {t: med(workload, metric, t) for t in names}
        if all(v is None for v in vals.values()):
            continue
        r_pgb = ratio(vals.get("sluice"), vals.get("pgbouncer"))
        r_dir = ratio(vals.get("sluice"), vals.get("direct"))
        counts = {t: len(samples.get((workload, metric, t), [])) for t in names}
        table.append([label] + [fmt(vals[t], dec) for t in names]
                     + [fmt(r_pgb, 2), fmt(r_dir, 2), better])
        csv_row = {"metric": key, "better": better}
        for t in names:
            csv_row[t] = "" if vals[t] is None else "%.*f" % (max(dec, 1), vals[t])
            csv_row[t + "_samples"] = counts[t]
        csv_row["sluice_over_pgbouncer"] = "" if r_pgb is None else "%.3f" % r_pgb
        csv_row["sluice_over_direct"] = "" if r_dir is None else "%.3f" % r_dir
        csv_rows.append(csv_row)

    header = ["workload"] + [t[1] for t in targets] + ["sluice/pgbouncer", "sluice/direct", "better"]
    widths = [max(len(str(r[i])) for r in [header] + table) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(widths[0]) if i == 0 else str(c).rjust(widths[i])
                               for i, c in enumerate(r))
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for r in table:
        print(line(r))

    p50 = {t: med("select_c1", "p50_us", t) for t in names}
    if p50.get("direct") is not None:
        added = ["%s %+.0f us" % (label, p50[n] - p50["direct"])
                 for n, label in targets if n != "direct" and p50.get(n) is not None]
        if added:
            print()
            print("added p50 latency at -c1 vs direct: " + ", ".join(added))

    fields = ["metric"] + names + ["sluice_over_pgbouncer", "sluice_over_direct", "better"] \
        + [t + "_samples" for t in names]
    with open(results_csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in csv_rows:
            w.writerow(r)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    if sys.argv[1] == "latency" and len(sys.argv) >= 3:
        cmd_latency(sys.argv[2:])
    elif sys.argv[1] == "summary" and len(sys.argv) >= 5:
        cmd_summary(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
