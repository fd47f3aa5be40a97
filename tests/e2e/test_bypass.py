"""bpf_bypass = on: the kernel fast path (eBPF sockmap) carries transactions
between client and server sockets. Skips with the reason when this machine
cannot load BPF programs (not root, no CAP_BPF, old kernel); runs in CI here.

Each test compares with bypass off where results could differ, and reads
SHOW BYPASS to make sure the kernel really carried the traffic."""

import re
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest

import conftest
from conftest import is_pgbouncer_compat
from netns_helpers import NEEDS, ip, veth_namespace
from test_pgbench import check_run

pytestmark = [pytest.mark.timeout(180),
              pytest.mark.skipif(is_pgbouncer_compat(), reason="sluice-only feature")]

SCALE = 1
HERE = Path(__file__).resolve().parent


def bypass_rows(s):
    with s.connect(db="sluice", user="sluice_test") as c:
        rows = c.execute("SHOW BYPASS").fetchall()
    return {k: v for k, v in rows}


def start(sluice, pg, db="sluicedb", bypass="on", verbose=False, db_line=None, **extra):
    main = {"pool_mode": "transaction", "default_pool_size": 4, "reserve_pool_size": 0,
            "max_client_conn": 400, "admin_users": "sluice_test", "bpf_bypass": bypass}
    main.update(extra)
    s = sluice(main, databases={db: db_line or pg.db_line(db)}, workers=2, verbose=verbose)
    if bypass == "on":
        rows = bypass_rows(s)
        if rows["enabled"] != "yes":
            s.stop()
            pytest.skip(f"BPF unavailable here: {rows['reason']}")
    return s


def check_pgbench(r):
    """test_pgbench's checks (exit 0, no failed transaction); returns the
    number of transactions processed."""
    out = check_run(r)
    return int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))


@pytest.fixture(scope="module")
def bench_db(pg):
    yield from conftest.pgbench_database(pg, "e2e_bypass_bench", SCALE)


def test_show_bypass_off_by_default(sluice, pg):
    # None drops the key even when SLUICE_E2E_INI_EXTRA sets it.
    s = sluice({"pool_mode": "transaction", "admin_users": "sluice_test", "bpf_bypass": None}, workers=2)
    rows = bypass_rows(s)
    for key in ("enabled", "reason", "kernel_transactions", "kernel_bytes",
                "user_transactions", "fallbacks"):
        assert key in rows, rows
    assert rows["enabled"] == "no"
    assert "off" in rows["reason"]


def test_select_only_mostly_in_kernel(sluice, pg, bench_db):
    # As many servers as clients: a client that finds no idle server waits
    # in user space (the kernel has no queue).
    s = start(sluice, pg, db=bench_db, default_pool_size=8)
    n = check_pgbench(s.pgbench("-S", "-c", "8", "-j", "2", "-T", "3", db=bench_db))
    rows = bypass_rows(s)
    kernel = int(rows["kernel_transactions"])
    user = int(rows["user_transactions"])
    assert kernel + user >= n, rows
    assert kernel >= 0.8 * n, f"only {kernel} of {n} transactions in the kernel: {rows}"
    assert int(rows["kernel_bytes"]) > 0


def stats_row(s, db):
    with s.connect(db="sluice", user="sluice_test") as c:
        cur = c.execute("SHOW STATS")
        names = [d.name for d in cur.description]
        for row in cur.fetchall():
            r = dict(zip(names, row))
            if r["database"] == db:
                return r
    return None


def test_show_stats_counts_kernel_transactions(sluice, pg, bench_db):
    """SHOW STATS (and the pool counters behind /metrics and log_stats)
    include what the kernel carried: a PgBouncer user reading them sees the
    same totals with bypass on as off."""
    s = start(sluice, pg, db=bench_db, default_pool_size=4)
    n = check_pgbench(s.pgbench("-S", "-c", "4", "-j", "2", "-T", "2", db=bench_db))
    rows = bypass_rows(s)
    assert int(rows["kernel_transactions"]) >= 0.8 * n, rows
    # The workers' tick moves the kernel's counts into the pool's.
    deadline = time.monotonic() + 5
    while True:
        st = stats_row(s, bench_db)
        if st and int(st["total_xact_count"]) >= n or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert st is not None
    assert n <= int(st["total_xact_count"]) <= n + 20, (n, st)
    assert int(st["total_query_count"]) >= n, (n, st)
    # pgbench -S sends a ~60-byte Query and gets a ~100-byte answer per
    # transaction.
    assert int(st["total_received"]) >= 30 * n, (n, st)
    assert int(st["total_sent"]) >= 50 * n, (n, st)
    assert int(st["total_xact_time"]) > 0 and int(st["total_query_time"]) > 0, st
    # Most of them came from the kernel, not from user space.
    assert int(bypass_rows(s)["user_transactions"]) <= 0.2 * n + 20


@pytest.mark.parametrize("args", [["-M", "extended"], ["-M", "simple"], ["-M", "prepared"], []],
                         ids=["extended", "simple-tpcb", "prepared", "tpcb"])
def test_pgbench_modes(sluice, pg, bench_db, args):
    # A server per client: pgbench prepares synchronously (PQprepare), so
    # with fewer servers than clients one of its threads can wait for a
    # server held by its own other connections, with or without bypass.
    s = start(sluice, pg, db=bench_db, default_pool_size=6)
    check_pgbench(s.pgbench(*args, "-c", "6", "-j", "2", "-T", "2", db=bench_db))
    rows = bypass_rows(s)
    if args != ["-M", "prepared"]:
        assert int(rows["kernel_transactions"]) > 0, rows


def test_many_clients_few_servers(sluice, pg, bench_db):
    """32 clients over 2 servers: the kernel's idle set runs dry and clients
    queue in user space; freed servers must reach them."""
    s = start(sluice, pg, db=bench_db, default_pool_size=2)
    check_pgbench(s.pgbench("-S", "-c", "32", "-j", "2", "-T", "3", db=bench_db))
    rows = bypass_rows(s)
    assert int(rows["kernel_transactions"]) > 0, rows


QUERIES = [
    "select 1",
    "select generate_series(1, 20000) as n, repeat('x', 50) as pad",
    "select 'a''b' as q, null::int as n, now() is not null as t",
    "begin; select 1; commit",
]


def run_script(conn):
    out = []
    for q in QUERIES:
        cur = conn.execute(q)
        out.append(cur.fetchall() if cur.description else cur.statusmessage)
    with conn.transaction():
        conn.execute("create temporary table if not exists t_bp(x int) on commit drop")
    try:
        conn.execute("select 1/0")
    except psycopg.errors.DivisionByZero as e:
        out.append(("error", e.sqlstate))
    out.append(conn.execute("select %s::int + %s::int", (2, 3)).fetchall())
    out.append(conn.execute("select %s::text", ("x" * 100000,)).fetchall()[0][0][:10])
    return out


def test_results_same_as_user_space(sluice, pg):
    on = start(sluice, pg)
    off = start(sluice, pg, bypass="off")
    with on.connect() as a, off.connect() as b:
        got_on = run_script(a)
        got_off = run_script(b)
    assert got_on[0] == got_off[0]
    assert got_on[1] == got_off[1]
    assert got_on[3:] == got_off[3:]
    assert int(bypass_rows(on)["kernel_transactions"]) > 0


def test_copy_in_and_out(sluice, pg, fresh_db):
    s = start(sluice, pg, db=fresh_db)
    with s.connect(db=fresh_db) as c:
        c.execute("create table cp(a int, b text)")
        with c.cursor().copy("copy cp from stdin") as cp:
            for i in range(5000):
                cp.write_row((i, f"row {i}"))
        assert c.execute("select count(*), sum(a) from cp").fetchone() == (5000, sum(range(5000)))
        rows = []
        with c.cursor().copy("copy cp to stdout") as cp:
            for row in cp.rows():
                rows.append(row)
        assert len(rows) == 5000


def test_pipelining(sluice, pg):
    s = start(sluice, pg)
    with s.connect() as c:
        with c.pipeline():
            curs = [c.execute("select %s::int * 2", (i,)) for i in range(200)]
        assert [cur.fetchone()[0] for cur in curs] == [i * 2 for i in range(200)]


def test_cancel_in_kernel(sluice, pg):
    s = start(sluice, pg)
    with s.connect() as c:
        c.execute("select 1")
        t0 = time.monotonic()
        timer = threading.Timer(0.5, c.cancel)
        timer.start()
        with pytest.raises(psycopg.errors.QueryCanceled):
            c.execute("select pg_sleep(20)")
        timer.join()
        assert time.monotonic() - t0 < 10
        assert c.execute("select 2").fetchone() == (2,)


def test_named_statements_tracked(sluice, pg):
    """Named prepared statements need sluice's bookkeeping: the kernel hands
    them up, and a shared server still runs them right."""
    s = start(sluice, pg)
    conns = [s.connect(prepare_threshold=0) for _ in range(6)]
    try:
        for _ in range(5):
            for i, c in enumerate(conns):
                assert c.execute("select %s::int + 1", (i,)).fetchone() == (i + 1,)
    finally:
        for c in conns:
            c.close()
    rows = bypass_rows(s)
    assert int(rows["fallbacks_message"]) > 0, rows


def test_pinning_words_go_to_user_space(sluice, pg):
    """An advisory lock taken through the kernel path still pins the client
    to its server: the kernel hands such texts to sluice."""
    s = start(sluice, pg)
    with s.connect() as a, s.connect() as b:
        pid = a.execute("select pg_backend_pid()").fetchone()[0]
        a.execute("select pg_advisory_lock(4242)")
        for _ in range(10):
            assert a.execute("select pg_backend_pid()").fetchone()[0] == pid
            assert b.execute("select pg_backend_pid()").fetchone()[0] != pid
        a.execute("select pg_advisory_unlock(4242)")
    assert int(bypass_rows(s)["fallbacks_message"]) > 0


def test_set_parameter_is_kept(sluice, pg):
    s = start(sluice, pg)
    with s.connect() as a, s.connect() as b:
        a.execute("set timezone = 'Asia/Tokyo'")
        for _ in range(20):
            assert b.execute("show timezone").fetchone()[0] != "Asia/Tokyo"
            assert a.execute("show timezone").fetchone()[0] == "Asia/Tokyo"


def test_switch_off_under_load(sluice, pg, bench_db):
    s = start(sluice, pg, db=bench_db)
    holder = {}

    def bench():
        holder["r"] = s.pgbench("-c", "8", "-j", "2", "-T", "6", db=bench_db)

    t = threading.Thread(target=bench)
    t.start()
    time.sleep(3)
    with s.connect(db="sluice", user="sluice_test") as c:
        c.execute("SET bpf_bypass = off")
    time.sleep(1)
    rows_mid = bypass_rows(s)
    t.join(timeout=60)
    check_pgbench(holder["r"])
    assert rows_mid["enabled"] == "no"
    assert rows_mid["kernel_clients"] == "0", rows_mid
    assert rows_mid["lent_servers"] == "0", rows_mid
    # and on again
    with s.connect(db="sluice", user="sluice_test") as c:
        c.execute("SET bpf_bypass = on")
    check_pgbench(s.pgbench("-S", "-c", "4", "-T", "2", db=bench_db))
    assert bypass_rows(s)["enabled"] == "yes"


@pytest.fixture
def lossy_server_link(pg):
    """PostgreSQL behind a link that drops packets, with SACK off on the
    far side: TCP then retransmits ranges the receiver partly has, which
    queues segments that overlap bytes already received ("Resent bytes" in
    docs/bypass.md). The far end is a forwarder in the test's own network
    namespace to PostgreSQL's unix socket; tbf on its side of the veth
    drops what exceeds its queue."""
    if not NEEDS[0]:
        pytest.skip(NEEDS[1])
    path = f"{pg.sockdir}/.s.PGSQL.{pg.port}"
    with veth_namespace("slrs", 150, ["/usr/bin/python3", str(HERE / "netns_forward.py"),
                                      "{addr}", "5432", path]) as far:
        r = ip("netns", "exec", far["ns"], "tc", "qdisc", "add", "dev", far["ns_link"], "root",
               "tbf", "rate", "1gbit", "burst", "64k", "limit", "200k", check=False)
        if r.returncode != 0:
            pytest.skip(f"tc cannot add a tbf qdisc here: {r.stderr.strip()}")
        ip("netns", "exec", far["ns"], "sysctl", "-q", "-w", "net.ipv4.tcp_sack=0")
        yield far


def test_retransmitted_bytes_are_cut(sluice, pg, lossy_server_link):
    """Bytes TCP hands the programs twice are cut off, in the kernel path
    (answers under BP_BURST_MAX) and in user space (a 20 MB answer): every
    answer is right, no connection is closed, and small answers still wake
    the socket after (the 'after' query)."""
    far = lossy_server_link
    s = start(sluice, pg, db_line=f"host={far['addr']} port=5432 dbname=sluicedb")
    small, big = 150, 20000
    rows = {}
    # Loss that makes overlapping segments is up to chance (and to load:
    # a busy machine reads sooner or later): rounds until one came, for
    # up to 40 s.
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        with s.connect() as c:
            for _ in range(20):
                got = c.execute(f"select repeat('x', 1000) from generate_series(1, {small})").fetchall()
                assert got == [("x" * 1000,)] * small
            got = c.execute(f"select repeat('y', 1000) from generate_series(1, {big})").fetchall()
            assert len(got) == big and all(r == ("y" * 1000,) for r in got)
            assert c.execute("select 'after'").fetchone() == ("after",)
        rows = bypass_rows(s)
        if int(rows["resent_bytes"]) > 0:
            break
    assert int(rows["resent_bytes"]) > 0, f"the lossy link made no overlapping segment: {rows}"
    assert rows["fallbacks_resent"] == "0", rows
    assert int(rows["kernel_transactions"]) >= 20, rows
    assert "retransmitted bytes twice" not in s.log_text()


def test_server_loss(sluice, pg):
    """A server PostgreSQL ends while it idles in the kernel's set: sluice
    notices, and the client (transaction mode) goes on with another one."""
    s = start(sluice, pg)
    with s.connect() as c:
        pid = c.execute("select pg_backend_pid()").fetchone()[0]
        pg.sql(f"select pg_terminate_backend({pid})")
        time.sleep(0.5)
        for i in range(10):
            assert c.execute("select %s::int", (i,)).fetchone() == (i,)
    assert "terminating connection" in s.log_text() or "closing because" in s.log_text()


def test_client_leaves_mid_query(sluice, pg):
    """A client that disconnects while the kernel carries its query: the
    server is cancelled and dropped, and the pool still serves others."""
    s = start(sluice, pg)
    c = s.connect()
    c.execute("select 1")
    t = threading.Thread(target=lambda: pytest.raises(Exception, c.execute, "select pg_sleep(5)"))
    t.start()
    time.sleep(0.5)
    c.pgconn.finish()
    t.join(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        n = pg.sql("select count(*) from pg_stat_activity where query = 'select pg_sleep(5)' "
                   "and state = 'active'")[0][0]
        if n == 0:
            break
        time.sleep(0.2)
    assert n == 0, "the abandoned query still runs"
    with s.connect() as c2:
        assert c2.execute("select 7").fetchone() == (7,)


def test_session_mode_whole_session_in_kernel(sluice, pg, bench_db):
    s = start(sluice, pg, db=bench_db, pool_mode="session", default_pool_size=6)
    check_pgbench(s.pgbench("-c", "4", "-j", "2", "-T", "3", db=bench_db))
    check_pgbench(s.pgbench("-S", "-M", "prepared", "-c", "4", "-j", "2", "-T", "2", db=bench_db))
    rows = bypass_rows(s)
    assert int(rows["kernel_transactions"]) > 0, rows
    with s.connect(db=bench_db) as c:
        c.execute("prepare p1 as select $1::int * 3")
        for i in range(20):
            assert c.execute(f"execute p1({i})").fetchone() == (i * 3,)
        c.execute("set application_name = 'bp_session'")
        assert c.execute("show application_name").fetchone() == ("bp_session",)


def test_metrics(sluice, pg):
    import urllib.request
    from prometheus_client.parser import text_string_to_metric_families
    port = conftest.free_port()
    s = start(sluice, pg, metrics_port=port, metrics_addr="127.0.0.1")
    # Rounds of 50 until the kernel has carried 40 (a loaded machine falls
    # back more often: each fallback is counted too), for up to 30 s.
    deadline = time.monotonic() + 30
    while True:
        with s.connect() as c:
            for i in range(50):
                c.execute("select %s::int", (i,))
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        kt = fams["sluice_bypass_kernel_transactions"].samples[0].value
        if kt >= 40 or time.monotonic() > deadline:
            break
    assert fams["sluice_bypass_enabled"].samples[0].value == 1
    assert kt >= 40, kt
    reasons = {smp.labels["reason"] for smp in fams["sluice_bypass_fallbacks"].samples}
    assert "no_server" in reasons and "message" in reasons


@pytest.mark.skipif(not conftest.IS_ROOT, reason="needs root to start sluice as an unprivileged user")
def test_falls_back_without_privileges(sluice, pg, tmp_path):
    """Built with BPF, run where BPF is refused (an ordinary user without
    CAP_BPF): one log line, SHOW BYPASS says why, queries work."""
    import os
    import pwd
    import shutil
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) not installed")
    d, ini, port = sluice.write_config(
        {"pool_mode": "transaction", "admin_users": "sluice_test", "bpf_bypass": "on",
         "unix_socket_dir": ""}, workers=1)
    pw = pwd.getpwnam("postgres")
    for p in [d] + list(d.iterdir()):
        os.chown(p, pw.pw_uid, pw.pw_gid)
    log = d / "unpriv.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen(["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
                                 "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
                                 conftest.default_bin(), str(ini)],
                                stdout=logf, stderr=logf, cwd=str(d), start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while not conftest.port_open("127.0.0.1", port):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        dsn = f"host=127.0.0.1 port={port} user=sluice_test password=test_pw"
        with psycopg.connect(dsn + " dbname=sluicedb", autocommit=True) as c:
            assert c.execute("select 41 + 1").fetchone() == (42,)
        with psycopg.connect(dsn + " dbname=sluice", autocommit=True) as c:
            rows = dict(c.execute("SHOW BYPASS").fetchall())
        assert rows["enabled"] == "no"
        assert rows["reason"], rows
        text = log.read_text()
        assert text.count("bpf_bypass:") == 1, text
        assert "running in user space" in text, text
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
