"""Faults: a server backend killed mid-transaction or while idle, PostgreSQL
restarted, PostgreSQL unreachable, a client vanishing mid-query."""

import time

import psycopg
import pytest

from conftest import RawConn, tail
from reliability_helpers import (COMPAT, check_serves, closed_port, pg_restart,  # noqa: F401
                                 private_pg, raw_login, sluice_backends, wait_for)  # private_pg: fixture

MODES = ["session", "transaction"]


@pytest.mark.parametrize("mode", MODES)
def test_backend_killed_mid_transaction(sluice, pg, fresh_db, mode):
    with pg.connect_tcp(dbname=fresh_db) as d:
        d.execute("create table killed_tx (v int)")
    s = sluice({"pool_mode": mode, "default_pool_size": 2},
               databases={fresh_db: pg.db_line(fresh_db)})
    c = s.connect(db=fresh_db)
    try:
        c.execute("BEGIN")
        c.execute("insert into killed_tx values (1)")
        backend = c.execute("select pg_backend_pid()").fetchone()[0]
        assert pg.sql("select pg_terminate_backend(%s)", (backend,))[0][0] is True
        t0 = time.monotonic()
        with pytest.raises(psycopg.Error) as ei:
            c.execute("insert into killed_tx values (2)")
            c.execute("COMMIT")
        assert time.monotonic() - t0 < 5
        e = ei.value
        assert isinstance(e, psycopg.OperationalError) or e.sqlstate == "57P01", repr(e)
    finally:
        c.close()
    # a new client through the same sluice works right away
    t0 = time.monotonic()
    with s.connect(db=fresh_db) as c2:
        assert c2.execute("select count(*) from killed_tx").fetchone() == (0,)
    assert time.monotonic() - t0 < 3
    assert pg.sql("select count(*) from killed_tx", dbname=fresh_db)[0][0] == 0


def test_idle_pooled_server_killed(sluice, pg, fresh_db):
    """Transaction mode: the idle server a client used is terminated; the
    client's next transaction gets a working server, without an error."""
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1, "reserve_pool_size": 0},
               databases={fresh_db: pg.db_line(fresh_db)})
    with s.connect(db=fresh_db) as c:
        pid1 = c.execute("select pg_backend_pid()").fetchone()[0]
        pg.sql("select pg_terminate_backend(%s)", (pid1,))
        wait_for(lambda: pid1 not in [r[0] for r in sluice_backends(pg, fresh_db)], 3,
                 what="backend gone")
        time.sleep(0.2)
        pid2 = c.execute("select pg_backend_pid()").fetchone()[0]
        assert pid2 != pid1
        assert c.execute("select 'ok'").fetchone() == ("ok",)


@pytest.mark.timeout(60)
def test_postgres_restart(sluice, private_pg):
    """A private cluster (the shared one is not touched) restarted with
    `pg_ctl restart -m fast`: clients work again without restarting sluice."""
    s = sluice({"pool_mode": "transaction", "server_login_retry": 0.5,
                "server_connect_timeout": 2, "query_wait_timeout": 10},
               databases={"sluicedb": private_pg.db_line("sluicedb")})
    with s.connect() as c:
        pid_before = c.execute("select pg_backend_pid()").fetchone()[0]
    old = s.connect()
    old.execute("select 1")
    pg_restart(private_pg, "fast")
    restarted = time.monotonic()
    # the client connected through the restart may fail once (its server
    # is gone) but sluice never hangs it
    try:
        old.execute("select 1")
    except psycopg.Error:
        pass
    finally:
        old.close()
    last = None
    while time.monotonic() - restarted < 8:
        try:
            with s.connect(connect_timeout=3) as c:
                pid_after = c.execute("select pg_backend_pid()").fetchone()[0]
            break
        except psycopg.Error as e:
            last = e
            time.sleep(0.2)
    else:
        pytest.fail(f"no client served within 8 s of the restart: {last}\n"
                    f"{tail(s.log_text())}")
    took = time.monotonic() - restarted
    assert pid_after != pid_before
    assert took < 5, f"served again {took:.1f} s after the restart"
    assert s.alive()


def test_postgres_unreachable(sluice, pg):
    """The database line names a port where nothing listens: the client
    waits query_wait_timeout, gets the error (with the connect error), and
    sluice keeps running and serving the healthy database."""
    port = closed_port()
    s = sluice({"pool_mode": "transaction", "query_wait_timeout": 2,
                "server_login_retry": 0.5, "server_connect_timeout": 1},
               databases={"sluicedb": pg.db_line("sluicedb"),
                          "down": f"host=127.0.0.1 port={port} dbname=down"})
    for attempt in range(2):
        c = RawConn(s.host, s.port, timeout=10)
        t0 = time.monotonic()
        try:
            with pytest.raises(Exception) as ei:
                c.login("sluice_test", "down", "test_pw")
                c.simple_query("select 1")
        finally:
            c.close()
        elapsed = time.monotonic() - t0
        err = ei.value
        msg = getattr(err, "message", str(err))
        assert "query_wait_timeout" in msg, repr(err)
        assert 1.7 <= elapsed <= 4.5, f"attempt {attempt}: error after {elapsed:.2f} s"
        if not COMPAT:
            assert err.sqlstate == "08P01", err
            assert "refused" in msg.lower(), f"connect error missing: {msg!r}"
        assert s.alive()
    check_serves(s)


@pytest.mark.sluice_only  # PgBouncer lets the abandoned query run to its end
@pytest.mark.parametrize("mode", MODES)
def test_client_disconnects_mid_query(sluice, pg, fresh_db, mode):
    s = sluice({"pool_mode": mode, "default_pool_size": 1, "reserve_pool_size": 0,
                "query_wait_timeout": 10},
               databases={fresh_db: pg.db_line(fresh_db)})
    marker = f"vanish_{mode}"
    c = raw_login(s.host, s.port, database=fresh_db)
    c.send(b"Q", f"select pg_sleep(30) /* {marker} */".encode() + b"\0")

    def running():
        return [r for r in sluice_backends(pg, fresh_db)
                if r[2] and marker in r[2] and r[1] == "active"]

    wait_for(running, 3, what="query running on PostgreSQL")
    c.close()
    t0 = time.monotonic()
    wait_for(lambda: not running(), 3, what="query stopped after the client left")
    took = time.monotonic() - t0
    # the single pool slot is free again for the next client
    t1 = time.monotonic()
    with s.connect(db=fresh_db) as c2:
        assert c2.execute("select 'next'").fetchone() == ("next",)
    assert time.monotonic() - t1 < 3, "next client waited for the abandoned server"
    assert took < 3
