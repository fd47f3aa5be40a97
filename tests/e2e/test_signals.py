"""Signals (docs/operations.md, "Signals and reload"):

- SIGUSR1 = PAUSE: a query waits; SIGUSR2 = RESUME: it completes.
- SIGINT and SIGTERM = graceful shutdown (SHUTDOWN WAIT_FOR_SERVERS): new
  connections are refused at once, an open transaction may still run
  queries and COMMIT, then its client is closed and sluice exits 0; an idle
  client is closed promptly; `shutdown_timeout` bounds the wait.

Checked against PgBouncer 1.18 (SLUICE_BIN=/usr/sbin/pgbouncer) except where
marked sluice-only: PgBouncer's SIGTERM is an immediate shutdown and 1.18 has
no shutdown_timeout.
"""

import os
import signal
import time

import psycopg
import pytest

import conftest
from conftest import Worker, is_pgbouncer_compat, tail, unique

COMPAT = is_pgbouncer_compat()
TX = {"pool_mode": "transaction", "default_pool_size": 2, "reserve_pool_size": 0,
      "query_wait_timeout": 30}


def expect_exit(s, within, what="exit"):
    """Wait for the sluice process to exit by itself; returns (status,
    seconds waited). Marks the instance stopped so the fixture teardown does
    not report it, after checking the log for sanitizer reports."""
    t0 = time.monotonic()
    try:
        rc = s.proc.wait(timeout=within)
    except Exception:
        raise AssertionError(f"sluice did not {what} within {within} s; log:\n"
                             f"{tail(s.log_text())}") from None
    elapsed = time.monotonic() - t0
    s.stopped = True
    conftest._live_procs.discard(s.proc)
    log = s.log_text()
    for pat in conftest.SANITIZER_PATTERNS:
        assert pat not in log, f"sanitizer report in log:\n{tail(log)}"
    return rc, elapsed


def wait_refused(s, timeout=3.0):
    """Poll until a new client cannot log in (refused or failed)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            c = psycopg.connect(s.dsn(), connect_timeout=2, autocommit=True)
        except psycopg.OperationalError as e:
            return e
        c.close()
        if time.monotonic() > deadline:
            raise AssertionError(f"new connections still accepted {timeout} s after "
                                 f"the signal; log:\n{tail(s.log_text())}")
        time.sleep(0.05)


def assert_disconnected(conn):
    with pytest.raises(psycopg.OperationalError):
        conn.execute("select 1")


# --------------------------------------------------------------------------
# SIGUSR1 / SIGUSR2

def test_sigusr1_pauses_sigusr2_resumes(sluice):
    s = sluice(TX)
    c = s.connect()
    try:
        assert c.execute("select 1").fetchone() == (1,)
        os.kill(s.pid, signal.SIGUSR1)
        time.sleep(0.5)  # let the pause take effect (no server is busy)
        w = Worker(lambda: c.execute("select 'after pause'").fetchone())
        w.start()
        w.join(1.2)
        assert w.is_alive(), (f"query completed while paused: {w.result!r} {w.exc!r}; "
                              f"log:\n{tail(s.log_text())}")
        assert s.alive()
        os.kill(s.pid, signal.SIGUSR2)
        assert w.get(timeout=5) == ("after pause",)
        # and new clients work again
        with s.connect() as c2:
            assert c2.execute("select 'resumed'").fetchone() == ("resumed",)
    finally:
        c.close()


def test_sigusr1_waits_for_running_transaction(sluice):
    """PAUSE lets a transaction in progress finish; the next one waits."""
    s = sluice(TX)
    busy = s.connect()
    other = s.connect()
    try:
        other.execute("select 1")
        busy.execute("BEGIN")
        busy.execute("select 1")
        os.kill(s.pid, signal.SIGUSR1)
        time.sleep(0.3)
        # the open transaction goes on
        assert busy.execute("select 'in tx'").fetchone() == ("in tx",)
        busy.execute("COMMIT")
        time.sleep(0.3)
        w = Worker(lambda: other.execute("select 'waited'").fetchone())
        w.start()
        w.join(1.0)
        assert w.is_alive(), f"query completed while paused: {w.result!r} {w.exc!r}"
        os.kill(s.pid, signal.SIGUSR2)
        assert w.get(timeout=5) == ("waited",)
    finally:
        busy.close()
        other.close()


# --------------------------------------------------------------------------
# graceful shutdown

@pytest.mark.parametrize("sig", [
    signal.SIGINT,
    pytest.param(signal.SIGTERM, marks=pytest.mark.sluice_only),  # PgBouncer: immediate
], ids=["SIGINT", "SIGTERM"])
def test_graceful_shutdown_lets_open_transaction_finish(sluice, pg, sig):
    table = unique("sig_tx")
    pg.sql(f"CREATE TABLE {table} (v int)", dbname="sluicedb")
    pg.sql(f"GRANT ALL ON {table} TO sluice_test", dbname="sluicedb")
    s = sluice(TX)
    c = s.connect()
    try:
        c.execute("BEGIN")
        c.execute(f"INSERT INTO {table} VALUES (1)")
        os.kill(s.pid, sig)
        # new connections are refused while the transaction is open. (PgBouncer
        # 1.18's SIGINT still accepts logins, so this half is sluice-only.)
        if COMPAT:
            time.sleep(0.3)
        else:
            wait_refused(s)
        assert s.alive(), "sluice exited with a transaction still open"
        # the open transaction can still run queries and commit
        assert c.execute("select 'still in tx'").fetchone() == ("still in tx",)
        c.execute(f"INSERT INTO {table} VALUES (2)")
        c.execute("COMMIT")
        assert pg.sql(f"select count(*) from {table}", dbname="sluicedb")[0][0] == 2
        # then the client is closed and sluice exits 0
        rc, _ = expect_exit(s, 5.0)
        assert rc == 0, f"exit status {rc}; log:\n{tail(s.log_text())}"
        assert_disconnected(c)
    finally:
        c.close()
        pg.sql(f"DROP TABLE IF EXISTS {table}", dbname="sluicedb")


@pytest.mark.parametrize("sig", [
    signal.SIGINT,
    pytest.param(signal.SIGTERM, marks=pytest.mark.sluice_only),  # PgBouncer: exit 1
], ids=["SIGINT", "SIGTERM"])
def test_shutdown_with_idle_client_is_prompt(sluice, sig):
    s = sluice(TX)
    c = s.connect()
    try:
        assert c.execute("select 1").fetchone() == (1,)
        os.kill(s.pid, sig)
        rc, elapsed = expect_exit(s, 2.0)
        assert rc == 0, f"exit status {rc}; log:\n{tail(s.log_text())}"
        assert_disconnected(c)
        assert not conftest.port_open(s.host, s.port), "port still open after exit"
    finally:
        c.close()


@pytest.mark.sluice_only
def test_shutdown_timeout_bounds_the_wait(sluice, pg):
    """A transaction left open is closed after shutdown_timeout, and sluice
    exits 0 anyway."""
    s = sluice(dict(TX, shutdown_timeout=1))
    c = s.connect()
    try:
        c.execute("BEGIN")
        pid = c.execute("select pg_backend_pid()").fetchone()[0]
        t0 = time.monotonic()
        os.kill(s.pid, signal.SIGTERM)
        wait_refused(s)
        rc, _ = expect_exit(s, 5.0)
        elapsed = time.monotonic() - t0
        assert rc == 0, f"exit status {rc}; log:\n{tail(s.log_text())}"
        assert 0.8 <= elapsed <= 4.0, f"exited {elapsed:.2f} s after SIGTERM"
        assert_disconnected(c)
        # the server connection went away, so PostgreSQL ended the transaction
        deadline = time.monotonic() + 5
        while pg.sql("select count(*) from pg_stat_activity where pid = %s", (pid,))[0][0]:
            assert time.monotonic() < deadline, f"backend {pid} still there after exit"
            time.sleep(0.05)
    finally:
        c.close()
