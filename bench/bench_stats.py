#!/usr/bin/python3
"""Number crunching for bench.sh (stdlib only).

    bench_stats.py latency LOGFILE...
        Reads pgbench --log per-transaction files (third column = latency in
        microseconds) and prints "COUNT P50 P99".

    bench_stats.py strace SUMMARY_FILE TRANSACTIONS
        Reads the summary table of `strace -c` and prints "NAME CALLS_PER_TX"
        for every system call, most frequent first, then "total CALLS_PER_TX".

    bench_stats.py summary RUNS_CSV RESULTS_CSV TARGET...
        RUNS_CSV has rows round,workload,target,metric,value (one per figure
        per run). Takes the median over rounds of each figure, prints the
        table (and the table of system calls per transaction) and writes
        RESULTS_CSV. TARGET is a list of name=label pairs in column order; the
        names "direct", "pgbouncer" and "sluice" get the ratio columns. With
        both "sluice" and "sluice_bypass" (bpf_bypass = on) there is also a
        "bypass/sluice" column and, below the table, the "bypass" summary.
        Environment: BENCH_IDLE_CLIENTS, BENCH_RATE, BENCH_STREAM_BYTES (only
        for the row labels and notes).

    bench_stats.py chart RESULTS_CSV PREFIX PNG TARGET...
        Writes PREFIX.dat and the gnuplot script PREFIX.gp that draws PNG:
        throughput of each pooler as a percentage of direct, and
        sluice/pgbouncer for every row.

    bench_stats.py clients-table CLIENTS_CSV TARGET...
        CLIENTS_CSV has a row per client count (clients,TARGET,...: TPS).
        Prints it as a table with the ratio sluice/pgbouncer.

    bench_stats.py clients-chart CLIENTS_CSV PREFIX PNG TARGET...
        Writes the gnuplot script PREFIX.gp that draws PNG: TPS against the
        number of clients (log scale), one line per target.
"""
import os
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


def cmd_strace(path, tx):
    """Calls per transaction from a `strace -c` summary."""
    tx = int(tx)
    calls = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            # "% time  seconds  usecs/call  calls  [errors]  syscall"
            if len(parts) not in (5, 6) or parts[-1] == "total":
                continue
            try:
                float(parts[0])
                n = int(parts[3])
            except ValueError:
                continue
            calls[parts[-1]] = calls.get(parts[-1], 0) + n
    if not calls or tx <= 0:
        sys.exit("no system calls in %s" % path)
    for name, n in sorted(calls.items(), key=lambda kv: -kv[1]):
        print("%s %.3f" % (name, n / tx))
    print("total %.3f" % (sum(calls.values()) / tx))


IDLE_CLIENTS = os.environ.get("BENCH_IDLE_CLIENTS", "2000")
RATE = os.environ.get("BENCH_RATE", "4000")
try:
    STREAM_MB = float(os.environ.get("BENCH_STREAM_BYTES", "20220000")) / 1e6
except ValueError:
    STREAM_MB = 20.22

# (key, label, workload, metric, better, decimals)
ROWS = [
    ("select_c16_tps", "select-only -c16 TPS", "select_c16", "tps", "higher", 0),
    ("select_c1_tps", "select-only -c1 TPS", "select_c1", "tps", "higher", 0),
    ("select_c1_p50_us", "select-only -c1 p50 latency us", "select_c1", "p50_us", "lower", 0),
    ("select_c1_p99_us", "select-only -c1 p99 latency us", "select_c1", "p99_us", "lower", 0),
    ("extended_c16_tps", "extended -M extended -c16 TPS", "extended_c16", "tps", "higher", 0),
    ("prepared_c16_tps", "prepared -M prepared -c16 TPS (session)", "prepared_c16", "tps", "higher", 0),
    ("tpcb_c16_tps", "TPC-B -c16 TPS", "tpcb_c16", "tps", "higher", 0),
    ("connect_c4_tps", "connect per tx -C -c4 TPS", "connect_c4", "tps", "higher", 0),
    ("idle_c8_tps", "%s idle + select-only -c8 TPS (*)" % IDLE_CLIENTS, "idle_c8", "tps", "higher", 0),
    ("stream_c2_mb_per_s", "large result -c2 MB/s (%.1f MB/tx)" % STREAM_MB, "stream_c2", "mb_per_s",
     "higher", 1),
    ("cpu_us_per_tx", "proxy CPU us/tx (select -c16)", "select_c16", "cpu_us_per_tx", "lower", 1),
    ("cpu_user_us_per_tx", "  of which user us/tx", "select_c16", "cpu_user_us_per_tx", "lower", 1),
    ("cpu_sys_us_per_tx", "  of which system us/tx", "select_c16", "cpu_sys_us_per_tx", "lower", 1),
    ("machine_cpu_us_per_tx", "machine CPU us/tx at %s tx/s -c8" % RATE, "rate_c8",
     "machine_cpu_us_per_tx", "lower", 1),
    ("steal_us_per_tx", "  steal us/tx (not counted above)", "rate_c8", "steal_us_per_tx", "lower", 1),
    ("syscalls_per_tx", "proxy syscalls/tx (select -c16, strace)", "syscalls", "syscalls_per_tx",
     "lower", 2),
    ("rss_bytes_per_idle_client", "RSS bytes per idle client", "idle_c8", "rss_bytes_per_client",
     "lower", 0),
]

# How many system calls the second table shows.
TOP_SYSCALLS = 8


def fmt(v, decimals):
    if v is None:
        return "-"
    return "%.*f" % (decimals, v)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def print_table(header, table):
    widths = [max(len(str(r[i])) for r in [header] + table) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(widths[0]) if i == 0 else str(c).rjust(widths[i])
                               for i, c in enumerate(r))
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for r in table:
        print(line(r))


# Workloads whose kernel share the bypass summary lists, in this order.
BYPASS_WORKLOADS = ["rate_c8", "select_c1", "select_c16", "extended_c16", "prepared_c16", "tpcb_c16",
                    "connect_c4", "idle_c8", "stream_c2"]

# The goal for machine CPU per transaction, bypass on / off. Printed
# for reference only: the benchmark reports, it does not judge.
BYPASS_CPU_GOAL = 0.85


def bypass_summary(names, med, by_round, csv_rows):
    """The "bypass" lines: sluice with bpf_bypass = on (sluice_bypass) against
    sluice with it off and PgBouncer, all medians of the same run. Adds the
    kernel share rows to csv_rows."""
    on, off, pgb, direct = "sluice_bypass", "sluice", "pgbouncer", "direct"
    lines = []

    def per_round(workload, metric, num=on):
        """num/off per round, for rounds where both ran."""
        a = by_round.get((workload, metric, num), {})
        b = by_round.get((workload, metric, off), {})
        rs = [a[r] / b[r] for r in sorted(a, key=int) if r in b and b[r]]
        return " (per round: %s)" % " ".join("%.2f" % r for r in rs) if len(rs) > 1 else ""

    def figures(workload, metric, dec):
        """'on X, off Y, pgbouncer Z' for the targets that have the figure."""
        parts = []
        for t, label in ((on, "on"), (off, "off"), (pgb, "pgbouncer")):
            v = med(workload, metric, t)
            if v is not None:
                parts.append("%s %s" % (label, fmt(v, dec)))
        return ", ".join(parts)

    shares = []
    low_share = False
    for w in BYPASS_WORKLOADS:
        share = med(w, "kernel_share_pct", on)
        if share is None:
            continue
        k, u = med(w, "kernel_transactions", on), med(w, "user_transactions", on)
        fb = med(w, "fallbacks", on)
        shares.append("%s %.1f%% (kernel %s, user %s, fallbacks %s)"
                      % (w, share, fmt(k, 0), fmt(u, 0), fmt(fb, 0)))
        if w in ("rate_c8", "select_c1") and share < 50:
            low_share = True
        csv_rows.append({"metric": "bypass_kernel_share_pct_" + w, "better": "higher",
                         on: "%.1f" % share, on + "_samples": len(by_round.get((w, "kernel_share_pct", on), {}))})
    if shares:
        lines.append("transactions carried in the kernel: " + "; ".join(shares))

    mcpu = {t: med("rate_c8", "machine_cpu_us_per_tx", t) for t in (on, off, pgb, direct)}
    if mcpu[on] is not None:
        line = "machine CPU us/tx at %s tx/s -c8: %s" % (RATE, figures("rate_c8", "machine_cpu_us_per_tx", 1))
        r = ratio(mcpu[on], mcpu[off])
        if r is not None:
            line += "; on/off %.2f (issue's target <= %.2f)%s" % (r, BYPASS_CPU_GOAL,
                                                                   per_round("rate_c8", "machine_cpu_us_per_tx"))
        r = ratio(mcpu[pgb], mcpu[off])
        if r is not None:
            line += "; pgbouncer/off %.2f" % r
        lines.append(line)
        if mcpu[direct] is not None:
            added = ["%s %+.1f us" % (label, mcpu[t] - mcpu[direct])
                     for t, label in ((off, "off"), (on, "on"), (pgb, "pgbouncer")) if mcpu[t] is not None]
            lines.append("  added machine CPU per tx vs direct: " + ", ".join(added))
            r = ratio(mcpu[direct], mcpu[off])
            if r is not None:
                # No pooler, in the kernel or not, costs less than none: this
                # is the lowest on/off the run could have shown.
                lines.append("  floor: direct/off %.2f%s (what a pooler that cost no CPU at all would score)"
                             % (r, per_round("rate_c8", "machine_cpu_us_per_tx", direct)))

    p50 = {t: med("select_c1", "p50_us", t) for t in (on, off, pgb, direct)}
    if p50[on] is not None:
        line = "-c1 p50 latency us: %s" % figures("select_c1", "p50_us", 0)
        r = ratio(p50[on], p50[off])
        if r is not None:
            line += "; on/off %.2f%s" % (r, per_round("select_c1", "p50_us"))
        lines.append(line)
        if p50[direct] is not None:
            added = ["%s %+.0f us" % (label, p50[t] - p50[direct])
                     for t, label in ((off, "off"), (on, "on"), (pgb, "pgbouncer")) if p50[t] is not None]
            lines.append("  added p50 latency at -c1 vs direct (%.0f us): %s" % (p50[direct], ", ".join(added)))
    for workload, metric, what, dec in (("select_c1", "p99_us", "-c1 p99 latency us", 0),
                                        ("select_c1", "tps", "-c1 TPS", 0),
                                        ("select_c16", "tps", "-c16 TPS", 0)):
        if med(workload, metric, on) is None:
            continue
        line = "%s: %s" % (what, figures(workload, metric, dec))
        r = ratio(med(workload, metric, on), med(workload, metric, off))
        if r is not None:
            line += "; on/off %.2f" % r
        lines.append(line)
    if low_share:
        lines.append("NOTE: the kernel carried under half of the transactions of rate_c8 or select_c1: "
                     "on/off there compares mostly user space with user space")
    if not lines:
        return
    print()
    print("bypass: sluice bpf_bypass = on (sluice_bypass) vs off (sluice), medians of this run "
          "(latency, CPU: lower is better; TPS: higher):")
    for line in lines:
        print("  " + line)


def cmd_summary(runs_csv, results_csv, target_specs):
    targets = []
    for spec in target_specs:
        name, _, label = spec.partition("=")
        targets.append((name, label or name))
    names = [t[0] for t in targets]

    samples = {}
    by_round = {}  # (workload, metric, target) -> {round: value}
    rounds = set()
    with open(runs_csv) as f:
        for row in csv.DictReader(f):
            try:
                v = float(row["value"])
            except ValueError:
                continue
            if math.isnan(v):
                continue
            key = (row["workload"], row["metric"], row["target"])
            samples.setdefault(key, []).append(v)
            by_round.setdefault(key, {})[row["round"]] = v
            rounds.add(row["round"])
    # bpf_bypass on (sluice_bypass) over off (sluice), as its own column.
    bypass_col = "sluice" in names and "sluice_bypass" in names

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
        r_bp = ratio(vals.get("sluice_bypass"), vals.get("sluice"))
        counts = {t: len(samples.get((workload, metric, t), [])) for t in names}
        table.append([label] + [fmt(vals[t], dec) for t in names]
                     + [fmt(r_pgb, 2), fmt(r_dir, 2)] + ([fmt(r_bp, 2)] if bypass_col else []) + [better])
        csv_row = {"metric": key, "better": better}
        for t in names:
            csv_row[t] = "" if vals[t] is None else "%.*f" % (max(dec, 1), vals[t])
            csv_row[t + "_samples"] = counts[t]
        csv_row["sluice_over_pgbouncer"] = "" if r_pgb is None else "%.3f" % r_pgb
        csv_row["sluice_over_direct"] = "" if r_dir is None else "%.3f" % r_dir
        if bypass_col:
            csv_row["bypass_over_sluice"] = "" if r_bp is None else "%.3f" % r_bp
        csv_rows.append(csv_row)

    header = ["workload"] + [t[1] for t in targets] + ["sluice/pgbouncer", "sluice/direct"] \
        + (["bypass/sluice"] if bypass_col else []) + ["better"]
    print_table(header, table)

    notes = []
    if any(med("idle_c8", "tps", t) is not None for t in names):
        notes.append("(*) direct: select-only -c8 without idle clients (%s direct connections would "
                     "exceed max_connections)" % IDLE_CLIENTS)
    p50 = {t: med("select_c1", "p50_us", t) for t in names}
    if p50.get("direct") is not None:
        added = ["%s %+.0f us" % (label, p50[n] - p50["direct"])
                 for n, label in targets if n != "direct" and p50.get(n) is not None]
        if added:
            notes.append("added p50 latency at -c1 vs direct: " + ", ".join(added))
    mcpu = {t: med("rate_c8", "machine_cpu_us_per_tx", t) for t in names}
    if mcpu.get("direct") is not None:
        added = ["%s %+.1f us" % (label, mcpu[n] - mcpu["direct"])
                 for n, label in targets if n != "direct" and mcpu.get(n) is not None]
        if added:
            notes.append("added machine CPU per tx at %s tx/s vs direct: " % RATE + ", ".join(added))
    try:
        rate = float(RATE)
    except ValueError:
        rate = 0
    slow = ["%s %.0f" % (label, med("rate_c8", "tps", n)) for n, label in targets
            if med("rate_c8", "tps", n) is not None and med("rate_c8", "tps", n) < 0.95 * rate]
    if slow:
        notes.append("WARNING: offered rate %s tx/s not reached (tps): %s; machine CPU/tx not comparable"
                     % (RATE, ", ".join(slow)))
    if notes:
        print()
        for n in notes:
            print(n)

    if "sluice_bypass" in names:
        bypass_summary(names, med, by_round, csv_rows)

    # Second table: system calls per transaction, the most frequent ones.
    sc_names = {}
    for (workload, metric, target), vals in samples.items():
        if workload == "syscalls" and metric.startswith("sc_"):
            sc_names[metric[3:]] = sc_names.get(metric[3:], 0) + statistics.median(vals)
    sc_targets = [(n, label) for n, label in targets
                  if med("syscalls", "syscalls_per_tx", n) is not None]
    if sc_names and sc_targets:
        ordered = sorted(sc_names, key=lambda k: -sc_names[k])
        sc_table = []
        for name in ordered:
            vals = {n: med("syscalls", "sc_" + name, n) for n, _ in sc_targets}
            r = ratio(vals.get("sluice"), vals.get("pgbouncer"))
            if len(sc_table) < TOP_SYSCALLS:
                sc_table.append([name] + [fmt(vals[n], 2) for n, _ in sc_targets] + [fmt(r, 2)])
            csv_row = {"metric": "syscalls_%s_per_tx" % name, "better": "lower"}
            for n, _ in sc_targets:
                csv_row[n] = "" if vals[n] is None else "%.3f" % vals[n]
                csv_row[n + "_samples"] = 1 if vals[n] is not None else 0
            csv_row["sluice_over_pgbouncer"] = "" if r is None else "%.3f" % r
            csv_rows.append(csv_row)
        others = {n: med("syscalls", "syscalls_per_tx", n)
                  - sum(med("syscalls", "sc_" + k, n) or 0 for k in ordered[:TOP_SYSCALLS])
                  for n, _ in sc_targets}
        sc_table.append(["(all others)"] + [fmt(others[n], 2) for n, _ in sc_targets] + [""])
        tot = {n: med("syscalls", "syscalls_per_tx", n) for n, _ in sc_targets}
        sc_table.append(["total"] + [fmt(tot[n], 2) for n, _ in sc_targets]
                        + [fmt(ratio(tot.get("sluice"), tot.get("pgbouncer")), 2)])
        print()
        print("system calls per transaction, select-only -c16 under strace -c -f (one run, not timed):")
        print_table(["syscall"] + [label for _, label in sc_targets] + ["sluice/pgbouncer"], sc_table)

    fields = ["metric"] + names + ["sluice_over_pgbouncer", "sluice_over_direct"] \
        + (["bypass_over_sluice"] if bypass_col else []) + ["better"] \
        + [t + "_samples" for t in names]
    with open(results_csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in csv_rows:
            w.writerow(r)


def gp_quote(text):
    return '"%s"' % text.strip().replace("\\", "\\\\").replace('"', '\\"')


def cmd_chart(results_csv, prefix, png, target_specs):
    """gnuplot data and script: two bar charts side by side."""
    targets = []
    for spec in target_specs:
        name, _, label = spec.partition("=")
        targets.append((name, label or name))
    poolers = [(n, l) for n, l in targets if n != "direct"]
    labels = {key: label for key, label, *_ in ROWS}
    with open(results_csv) as f:
        rows = list(csv.DictReader(f))

    def num(row, col):
        try:
            return float(row.get(col) or "")
        except ValueError:
            return None

    rel = []      # (label, [pooler value as % of direct])
    over = []     # (label, sluice/pgbouncer)
    for row in rows:
        label = labels.get(row["metric"])
        if label is None:
            continue
        d = num(row, "direct")
        # connect_c4: a direct login forks a backend, so % of direct means
        # little there (and would dwarf every other bar).
        if row["better"] == "higher" and d and row["metric"] != "connect_c4_tps":
            vals = [num(row, n) for n, _ in poolers]
            if any(v is not None for v in vals):
                rel.append((label, [100.0 * v / d if v is not None else None for v in vals]))
        r = num(row, "sluice_over_pgbouncer")
        if r is not None:
            over.append((label, r))
    if not rel and not over:
        sys.exit("nothing to draw")

    with open(prefix + ".dat", "w") as f:
        f.write("# label " + " ".join(n for n, _ in poolers) + "\n")
        for label, vals in rel:
            f.write(gp_quote(label) + " " + " ".join("NaN" if v is None else "%.2f" % v for v in vals) + "\n")
        f.write("\n\n# label sluice_over_pgbouncer\n")
        for label, r in over:
            f.write(gp_quote(label) + " %.4f\n" % r)

    gp = []
    gp.append("set terminal pngcairo size 1600,800 font ',10'" if os.environ.get("BENCH_PNGCAIRO", "1") == "1"
              else "set terminal png size 1600,800")
    gp.append("set output %s" % gp_quote(png))
    gp.append("set datafile missing 'NaN'")
    gp.append("set style data histograms")
    gp.append("set style histogram clustered gap 1")
    gp.append("set style fill solid 0.8 border -1")
    gp.append("set boxwidth 0.9")
    gp.append("set grid ytics")
    gp.append("set xtics rotate by -35 left noenhanced")
    gp.append("set key top left noenhanced")
    gp.append("set bmargin 13")
    gp.append("set rmargin 18")
    gp.append("set multiplot layout 1,2 title 'sluice benchmark (medians)'")
    if rel:
        gp.append("set title 'throughput as % of direct (higher is better)'")
        gp.append("set yrange [0:*]")
        plots = ["%s using %d:xtic(1) index 0 title %s" % (gp_quote(prefix + ".dat") if i == 0 else "''",
                                                           i + 2, gp_quote(label))
                 for i, (_, label) in enumerate(poolers)]
        gp.append("plot " + ", ".join(plots))
    if over:
        gp.append("set title 'sluice / pgbouncer (TPS: higher is better; latency, CPU, syscalls, RSS: lower)'")
        gp.append("set yrange [0:*]")
        gp.append("plot %s using 2:xtic(1) index 1 title 'sluice/pgbouncer', 1 with lines lw 2 lc 'black' "
                  "notitle" % gp_quote(prefix + ".dat"))
    gp.append("unset multiplot")
    with open(prefix + ".gp", "w") as f:
        f.write("\n".join(gp) + "\n")


def read_clients(clients_csv, target_specs):
    targets = []
    for spec in target_specs:
        name, _, label = spec.partition("=")
        targets.append((name, label or name))
    with open(clients_csv) as f:
        rows = list(csv.DictReader(f))
    return targets, rows


def cmd_clients_table(clients_csv, target_specs):
    targets, rows = read_clients(clients_csv, target_specs)
    names = [n for n, _ in targets]
    ratio = "pgbouncer" in names and "sluice" in names
    head = ["clients"] + [label for _, label in targets] + (["sluice/pgbouncer"] if ratio else [])
    widths = [max(7, len(h)) for h in head]
    print("  ".join(h.rjust(w) for h, w in zip(head, widths)))
    for row in rows:
        cells = [row["clients"]] + [row.get(n) or "-" for n in names]
        if ratio:
            try:
                cells.append("%.2f" % (float(row["sluice"]) / float(row["pgbouncer"])))
            except (KeyError, TypeError, ValueError, ZeroDivisionError):
                cells.append("-")
        print("  ".join(c.rjust(w) for c, w in zip(cells, widths)))


def cmd_clients_chart(clients_csv, prefix, png, target_specs):
    """gnuplot script: TPS by number of clients, a line per target."""
    targets, rows = read_clients(clients_csv, target_specs)
    if not rows:
        sys.exit("nothing to draw")
    counts = [int(r["clients"]) for r in rows]
    gp = []
    gp.append("set terminal pngcairo size 900,500 font ',10'" if os.environ.get("BENCH_PNGCAIRO", "1") == "1"
              else "set terminal png size 900,500")
    gp.append("set output %s" % gp_quote(png))
    gp.append("set datafile separator ','")
    gp.append("set datafile missing ''")
    gp.append("set title 'throughput by number of clients (pgbench -S; higher is better)' noenhanced")
    gp.append("set xlabel 'clients (pgbench -c)'")
    gp.append("set ylabel 'transactions per second'")
    gp.append("set logscale x 2")
    gp.append("set xrange [%g:%g]" % (min(counts) / 1.2, max(counts) * 1.2))
    gp.append("set xtics (%s)" % ", ".join('"%d" %d' % (c, c) for c in counts))
    gp.append("set yrange [0:*]")
    gp.append("set grid")
    gp.append("set key bottom right noenhanced")
    plots = []
    with open(clients_csv) as f:
        header = next(csv.reader(f))
    for name, label in targets:
        if name in header:
            col = header.index(name) + 1
            plots.append("%s skip 1 using 1:%d with linespoints lw 2 pt 7 title %s"
                         % (gp_quote(clients_csv) if not plots else "''", col, gp_quote(label)))
    gp.append("plot " + ", ".join(plots))
    with open(prefix + ".gp", "w") as f:
        f.write("\n".join(gp) + "\n")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    if sys.argv[1] == "latency" and len(sys.argv) >= 3:
        cmd_latency(sys.argv[2:])
    elif sys.argv[1] == "strace" and len(sys.argv) == 4:
        cmd_strace(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "chart" and len(sys.argv) >= 6:
        cmd_chart(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    elif sys.argv[1] == "clients-table" and len(sys.argv) >= 4:
        cmd_clients_table(sys.argv[2], sys.argv[3:])
    elif sys.argv[1] == "clients-chart" and len(sys.argv) >= 6:
        cmd_clients_chart(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    elif sys.argv[1] == "summary" and len(sys.argv) >= 5:
        cmd_summary(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
