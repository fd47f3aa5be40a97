"""Online restart: `sluice -R sluice.ini` (docs/operations.md, "Online
restart").

A new process takes the listening sockets from the running one (through
<unix_socket_dir>/.s.SLUICE.<port>.takeover) and receives each client at its
next transaction boundary, with its login, parameters, prepared statements
and cancel key; the old process exits when it has no client left. Clients in
session mode stay with the old process until they disconnect.

Checked here:
- pgbench (-S; the TPC-B-like script; extended protocol) runs across a
  restart with no failed transaction and no connection error, while another
  thread keeps opening new connections and none is refused; the old process
  exits during the run, the new one serves afterwards and its SHOW STATS
  counts the transactions (from zero);
- a psycopg client with a server-side prepared statement, application_name
  and TimeZone, in transaction mode, keeps all of them (and its cancel key);
- a session-mode client stays on the old process, which exits once that
  client disconnects;
- `-R` with nothing to take over from fails with a clear message.

sluice only: PgBouncer's online restart (-R) works differently.
"""

import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest

import conftest
from conftest import PGBENCH, client_env, tail
from reliability_helpers import sluice_sockets

pytestmark = [pytest.mark.sluice_only, pytest.mark.timeout(90)]

TX = {"pool_mode": "transaction", "default_pool_size": 4, "reserve_pool_size": 0,
      "max_client_conn": 200, "admin_users": "sluice_test", "query_wait_timeout": 30}


# --------------------------------------------------------------------------
# helpers

class NewSluice:
    """The process started with -R."""

    def __init__(self, proc, logpath):
        self.proc = proc
        self.logpath = logpath

    @property
    def pid(self):
        return self.proc.pid

    def log_text(self):
        try:
            return Path(self.logpath).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self):
        return self.proc.poll() is None


@pytest.fixture
def restarter():
    """restart(s) starts `<bin> -R <ini>` for the running instance s; every
    process started this way is stopped at teardown (SIGTERM, then SIGKILL),
    and its log checked for sanitizer reports."""
    started = []

    def restart(s):
        logpath = Path(s.dir) / f"restart-{len(started)}.log"
        cmd = [s.bin]
        if os.environ.get("SLUICE_E2E_VERBOSE"):
            cmd.append("-v")
        cmd += ["-R", str(s.ini)]
        logf = open(logpath, "wb")
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                    cwd=str(s.dir), start_new_session=True,
                                    preexec_fn=conftest._die_with_parent)
        finally:
            logf.close()
        conftest._live_procs.add(proc)
        n = NewSluice(proc, logpath)
        started.append(n)
        return n

    yield restart
    problems = []
    for n in started:
        rc = n.proc.poll()
        if rc is None:
            n.proc.send_signal(signal.SIGTERM)
            try:
                rc = n.proc.wait(timeout=conftest.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                n.proc.kill()
                rc = n.proc.wait(timeout=10)
                problems.append(f"new sluice {n.pid} did not stop within "
                                f"{conftest.STOP_TIMEOUT} s of SIGTERM")
        conftest._live_procs.discard(n.proc)
        if rc is not None and rc < 0 and -rc in conftest.CRASH_SIGNALS:
            problems.append(f"new sluice {n.pid} died from signal {signal.Signals(-rc).name}")
        log = n.log_text()
        if any(p in log for p in conftest.SANITIZER_PATTERNS):
            problems.append(f"sanitizer report in the log of new sluice {n.pid}")
        if problems:
            problems.append(f"log tail:\n{tail(log)}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def wait_old_exit(s, timeout, new=None):
    """Wait for the old process to exit by itself; returns its status and
    marks the instance stopped (so teardown does not report it)."""
    try:
        rc = s.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        extra = f"\nnew process log:\n{tail(new.log_text())}" if new else ""
        raise AssertionError(f"old sluice {s.pid} still running {timeout} s later; "
                             f"its log:\n{tail(s.log_text())}{extra}") from None
    s.stopped = True
    conftest._live_procs.discard(s.proc)
    log = s.log_text()
    for pat in conftest.SANITIZER_PATTERNS:
        assert pat not in log, f"sanitizer report in the old process log:\n{tail(log)}"
    return rc


def init_bench(pg, db):
    r = subprocess.run([PGBENCH, "-i", "-q", "-s", "1", "-h", pg.host, "-p", str(pg.port),
                        "-U", "sluice_test", db], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=60,
                       env=client_env(PGPASSWORD="test_pw"))
    assert r.returncode == 0, r.stdout


def start_pgbench(s, db, args):
    cmd = [PGBENCH, "-h", s.host, "-p", str(s.port), "-U", "sluice_test", "-n"] + \
        list(args) + [db]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True,
                         preexec_fn=conftest._die_with_parent,
                         env=client_env(PGPASSWORD="test_pw"))
    conftest._live_procs.add(p)
    return p


def admin_show(s, what):
    """Rows of an admin console SHOW command as dicts (psql, simple protocol)."""
    r = s.psql("-A", "-F", "|", "-P", "footer=off", "-c", what, db="pgbouncer", timeout=15)
    assert r.returncode == 0, f"admin console {what}: {r.stdout}{r.stderr}"
    lines = [ln for ln in r.stdout.splitlines() if ln]
    head = lines[0].split("|")
    return [dict(zip(head, ln.split("|"))) for ln in lines[1:]]


def local_port(conn):
    """The client-side port of a psycopg connection."""
    sk = socket.socket(fileno=os.dup(conn.pgconn.socket))
    try:
        return sk.getsockname()[1]
    finally:
        sk.close()


def holder(s_port, client_port, pids):
    """Which of pids holds the server side of the client's TCP connection."""
    for pid in pids:
        for e in sluice_sockets(pid):
            if e["local"][1] == s_port and e["peer"][1] == client_port:
                return pid
    return None


class Connector(threading.Thread):
    """Opens a new connection, runs a query and closes it, over and over;
    records every failure."""

    def __init__(self, s, db):
        super().__init__(daemon=True)
        self.s, self.db = s, db
        self.stop_flag = threading.Event()
        self.ok = 0
        self.failures = []

    def run(self):
        while not self.stop_flag.is_set():
            try:
                with psycopg.connect(self.s.dsn(db=self.db), connect_timeout=5,
                                     autocommit=True) as c:
                    c.execute("select 1")
                self.ok += 1
            except Exception as e:  # noqa: BLE001
                self.failures.append(f"{time.strftime('%H:%M:%S')} {e!r}")
            time.sleep(0.02)

    def stop(self):
        self.stop_flag.set()
        self.join(15)


# --------------------------------------------------------------------------
# pgbench across a restart

@pytest.mark.parametrize("args,duration", [
    (["-S"], 12),
    ([], 10),                       # the default TPC-B-like script
    (["-M", "extended"], 10),       # TPC-B-like, extended query protocol
], ids=["select-only", "tpcb", "tpcb-extended"])
def test_restart_under_pgbench(sluice, pg, fresh_db, restarter, args, duration):
    init_bench(pg, fresh_db)
    s = sluice(TX, databases={fresh_db: pg.db_line(fresh_db),
                              "sluicedb": pg.db_line("sluicedb")})
    old_pid = s.pid
    bench = start_pgbench(s, fresh_db, ["-c", "8", "-j", "8", "-T", str(duration)] + args)
    connector = Connector(s, "sluicedb")
    new = None
    try:
        t0 = time.monotonic()
        time.sleep(3.0)
        assert bench.poll() is None, f"pgbench ended early: {bench.communicate()}"
        connector.start()
        time.sleep(0.3)
        new = restarter(s)
        # the old process hands everyone over and exits during the run
        rc = wait_old_exit(s, max(1.0, t0 + duration - time.monotonic()), new)
        assert rc == 0, f"old sluice exit status {rc}; log:\n{tail(s.log_text())}"
        exited_at = time.monotonic() - t0
        assert new.alive(), f"new sluice exited ({new.proc.returncode}); log:\n" \
                            f"{tail(new.log_text())}"
        time.sleep(0.5)
        connector.stop()
        out, err = bench.communicate(timeout=duration + 30)
        conftest._live_procs.discard(bench)
        report = f"pgbench exit {bench.returncode}\nstdout:\n{out[-3000:]}\nstderr:\n" \
                 f"{err[-3000:]}\nold log:\n{tail(s.log_text(), 30)}\nnew log:\n" \
                 f"{tail(new.log_text(), 30)}"
        assert bench.returncode == 0, report
        assert re.search(r"number of failed transactions: 0 ", out), report
        m = re.search(r"number of transactions actually processed: (\d+)", out)
        assert m and int(m.group(1)) > 0, report
        processed = int(m.group(1))
        assert "connection" not in err.lower(), report
        assert "error" not in err.lower(), report
        assert not connector.failures, (f"{len(connector.failures)} new connections failed "
                                        f"during the restart ({connector.ok} ok): "
                                        f"{connector.failures[:5]}\nnew log:\n"
                                        f"{tail(new.log_text(), 30)}")
        assert connector.ok > 0
        # the new process serves on the same port
        assert new.alive()
        with s.connect(db=fresh_db) as c:
            assert c.execute("select count(*) from pgbench_branches").fetchone() == (1,)
        with s.connect() as c:
            assert c.execute("select 'after restart'").fetchone() == ("after restart",)
        # its statistics count what it served, from zero
        rows = [r for r in admin_show(s, "SHOW STATS") if r.get("database") == fresh_db]
        assert rows, f"no SHOW STATS row for {fresh_db}"
        xacts = int(rows[0]["total_xact_count"])
        assert 0 < xacts < processed, (f"new process total_xact_count {xacts}, pgbench "
                                       f"processed {processed} (old exited at "
                                       f"{exited_at:.1f} s)")
        assert pg.backends(fresh_db) <= 4
        assert old_pid != new.pid
    finally:
        connector.stop()
        if bench.poll() is None:
            bench.kill()
            bench.communicate()
        conftest._live_procs.discard(bench)


# --------------------------------------------------------------------------
# one client's state moves with it

def test_restart_keeps_prepared_statement_and_parameters(sluice, restarter):
    s = sluice(dict(TX, default_pool_size=2))
    c = s.connect()
    try:
        c.execute("SET application_name = 'or_client'")
        c.execute("SET TimeZone = 'Asia/Kolkata'")
        c.execute("SET work_mem = '3MB'")  # any setting moves with the client
        q = "select %s::int + 1 as v /* or_prepared */"
        assert c.execute(q, (41,), prepare=True).fetchone() == (42,)
        # psycopg prepared it under a name and will only Bind/Execute it now
        assert c.execute(q, (1,), prepare=True).fetchone() == (2,)
        cport = local_port(c)
        assert holder(s.port, cport, [s.pid]) == s.pid
        new = restarter(s)
        rc = wait_old_exit(s, 8.0, new)
        assert rc == 0, f"old sluice exit status {rc}"
        assert new.alive(), tail(new.log_text())
        # the same connection, now served by the new process
        assert holder(s.port, cport, [new.pid]) == new.pid
        assert c.execute(q, (99,), prepare=True).fetchone() == (100,)
        assert c.execute("show TimeZone").fetchone() == ("Asia/Kolkata",)
        assert c.execute("show application_name").fetchone() == ("or_client",)
        assert c.execute("show work_mem").fetchone() == ("3MB",)
        c.execute("BEGIN")
        assert c.execute(q, (7,), prepare=True).fetchone() == (8,)
        assert c.execute("select current_setting('TimeZone')").fetchone() == ("Asia/Kolkata",)
        c.execute("COMMIT")
        # a statement prepared after the move works too
        assert c.execute("select %s::text || 'x'", ("y",), prepare=True).fetchone() == ("yx",)
        # and the cancel key the client got from the old process still works
        w = conftest.Worker(c.execute, "select pg_sleep(10)")
        t0 = time.monotonic()
        w.start()
        time.sleep(0.5)
        c.cancel()
        with pytest.raises(psycopg.errors.QueryCanceled):
            w.get(timeout=8)
        assert time.monotonic() - t0 < 5
        assert c.execute("select 'after cancel'").fetchone() == ("after cancel",)
    finally:
        c.close()


def test_session_client_stays_on_old_process(sluice, restarter):
    s = sluice(dict(TX, pool_mode="session"))
    sess = s.connect()
    try:
        sess.execute("SET application_name = 'or_session'")
        sess.execute("CREATE TEMP TABLE or_tmp AS SELECT 1 AS v")
        backend = sess.execute("select pg_backend_pid()").fetchone()[0]
        sport = local_port(sess)
        new = restarter(s)
        # new clients are served by the new process
        deadline = time.monotonic() + 5
        while True:
            with s.connect() as c:
                assert c.execute("select 1").fetchone() == (1,)
                where = holder(s.port, local_port(c), [s.pid, new.pid])
            if where == new.pid:
                break
            assert time.monotonic() < deadline, (f"new clients still served by the old "
                                                 f"process; new log:\n{tail(new.log_text())}")
            time.sleep(0.1)
        # the session client stays on the old process, with its session
        time.sleep(1.0)
        assert s.alive(), f"old process exited with a session client; log:\n" \
                          f"{tail(s.log_text())}"
        assert holder(s.port, sport, [s.pid, new.pid]) == s.pid
        assert sess.execute("select pg_backend_pid()").fetchone()[0] == backend
        assert sess.execute("select v from or_tmp").fetchone() == (1,)
        assert sess.execute("show application_name").fetchone() == ("or_session",)
        # once it disconnects, the old process exits
        sess.close()
        rc = wait_old_exit(s, 5.0, new)
        assert rc == 0, f"old sluice exit status {rc}"
        assert new.alive()
        with s.connect() as c:
            assert c.execute("select 'new serves'").fetchone() == ("new serves",)
    finally:
        sess.close()


# --------------------------------------------------------------------------
# nothing to take over from

def test_restart_without_running_sluice_fails(sluice):
    d, ini, port = sluice.write_config(TX)
    p = subprocess.Popen([sluice.bin, "-R", str(ini)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=str(d), start_new_session=True,
                         preexec_fn=conftest._die_with_parent)
    conftest._live_procs.add(p)
    try:
        try:
            out, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            pytest.fail(f"-R with no running sluice still running after 10 s: {out}{err}")
        assert p.returncode not in (None, 0), f"-R exited 0: {out}{err}"
        msg = (out + err).lower()
        assert any(w in msg for w in ("takeover", "take over", "running", "restart")), \
            f"unclear message: {out}{err}"
        assert not conftest.port_open("127.0.0.1", port), "something listens after -R failed"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
        conftest._live_procs.discard(p)
