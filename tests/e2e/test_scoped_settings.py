"""Settings a [users] or [databases] entry sets for its own pools, as in
PgBouncer 1.24/1.25: timeouts, reserve_pool_size, client connection
limits, server_lifetime. A [users] value wins over the [databases] one,
which wins over the global key; RELOAD applies changes to existing pools.
(PgBouncer 1.18, which the suite can also run against, has none of these.)"""

import os
import signal
import time
from pathlib import Path

import psycopg
import pytest

from conftest import RawConn, unique  # noqa: F401

pytestmark = pytest.mark.sluice_only

TX = {"pool_mode": "transaction"}


def connect(s, user="sluice_test"):
    pw = {"sluice_test": "test_pw", "md5user": "md5_pw"}[user]
    return s.connect(user=user, password=pw)


def error_of(fn):
    """The message of the error fn raises, None when it raises none. (A
    FATAL that closes the connection reaches psycopg without SQLSTATE.)"""
    try:
        fn()
    except psycopg.Error as e:
        return str(e)
    return None


def test_user_query_timeout(sluice):
    s = sluice(TX, users={"md5user": "query_timeout=1"})
    with connect(s, "md5user") as c:
        msg = error_of(lambda: c.execute("select pg_sleep(3)"))
        assert msg and "query_timeout" in msg, msg
    with connect(s) as c:  # the global value: off
        assert c.execute("select pg_sleep(1.5), 'ok'").fetchone()[1] == "ok"


def test_user_idle_transaction_and_transaction_timeouts(sluice):
    s = sluice(TX, users={"md5user": "idle_transaction_timeout=1",
                          "sluice_test": "transaction_timeout=1.5"})
    with connect(s, "md5user") as c:
        c.execute("begin")
        time.sleep(2.5)
        msg = error_of(lambda: c.execute("select 1"))
        assert msg and "idle_transaction_timeout" in msg, msg
    with connect(s) as c:
        c.execute("begin")
        c.execute("select pg_sleep(1)")  # never idle for long, but the transaction lasts
        time.sleep(1.5)
        msg = error_of(lambda: c.execute("select 1"))
        assert msg and "transaction_timeout" in msg, msg


def test_user_client_idle_timeout(sluice):
    s = sluice(TX, users={"md5user": "client_idle_timeout=1"})
    with connect(s, "md5user") as idle, connect(s) as other:
        time.sleep(2.5)
        msg = error_of(lambda: idle.execute("select 1"))
        assert msg and "client_idle_timeout" in msg, msg
        assert other.execute("select 'still here'").fetchone() == ("still here",)


def _hold_the_server(s, user="sluice_test"):
    c = connect(s, user)
    c.execute("begin")
    c.execute("select 1")
    return c


@pytest.mark.parametrize("where", ["users", "databases"])
def test_query_wait_timeout_per_user_or_database(sluice, pg, where):
    users, dbline = None, pg.db_line("sluicedb", pool_size=1)
    if where == "users":
        users = {"sluice_test": "query_wait_timeout=1"}
    else:
        dbline += " query_wait_timeout=1"
    s = sluice(dict(TX, query_wait_timeout=30, reserve_pool_size=0), databases={"sluicedb": dbline}, users=users)
    holder = _hold_the_server(s)
    try:
        t0 = time.monotonic()
        with pytest.raises(psycopg.OperationalError) as ei:
            with connect(s) as c:
                c.execute("select 1")
        took = time.monotonic() - t0
        assert "query_wait_timeout" in str(ei.value)
        assert took < 5, f"waited {took:.1f} s, the scoped query_wait_timeout is 1 s"
    finally:
        holder.close()


def test_user_value_wins_over_database_value(sluice, pg):
    """[databases] says 1 s, [users] says 0 (off) for sluice_test: it waits
    for the server instead of failing."""
    dbline = pg.db_line("sluicedb", pool_size=1) + " query_wait_timeout=1"
    s = sluice(dict(TX, reserve_pool_size=0), databases={"sluicedb": dbline},
               users={"sluice_test": "query_wait_timeout=0"})
    holder = _hold_the_server(s)
    import threading
    done = {}

    def waiter():
        with connect(s) as c:
            done["v"] = c.execute("select 'served'").fetchone()[0]

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(2)
    holder.execute("commit")
    t.join(10)
    holder.close()
    assert done.get("v") == "served"


def test_database_server_lifetime(sluice, pg):
    dbs = {"sluicedb": pg.db_line("sluicedb", pool_size=1) + " server_lifetime=1",
           "longdb": pg.db_line("sluicedb", pool_size=1)}
    s = sluice(TX, databases=dbs)
    pid = "select pg_backend_pid()"
    with s.connect(db="sluicedb") as short, s.connect(db="longdb") as long_:
        a1, b1 = short.execute(pid).fetchone()[0], long_.execute(pid).fetchone()[0]
        time.sleep(1.5)
        # the server goes back at the end of the first transaction after
        # its lifetime, and a new one serves the next
        short.execute("select 1")
        a2, b2 = short.execute(pid).fetchone()[0], long_.execute(pid).fetchone()[0]
        assert a2 != a1, "server_lifetime=1 of [databases] not applied"
        assert b2 == b1, "the database without server_lifetime lost its server"


def test_user_reserve_pool_size(sluice, pg):
    """pool_size 1 for everyone; md5user may open 1 reserve connection after
    reserve_pool_timeout, sluice_test none (global reserve_pool_size 0)."""
    dbline = pg.db_line("sluicedb", pool_size=1)
    s = sluice(dict(TX, reserve_pool_size=0, reserve_pool_timeout=0.3, query_wait_timeout=3),
               databases={"sluicedb": dbline}, users={"md5user": "reserve_pool_size=1"})
    holder = _hold_the_server(s, "md5user")
    try:
        with connect(s, "md5user") as c:  # served by the reserve connection
            assert c.execute("select 'reserve'").fetchone() == ("reserve",)
    finally:
        holder.close()
    holder = _hold_the_server(s)
    try:
        with pytest.raises(psycopg.OperationalError, match="query_wait_timeout"):
            with connect(s) as c:
                c.execute("select 1")
    finally:
        holder.close()


def test_client_connection_limits_per_user_and_database(sluice, pg):
    dbs = {"sluicedb": pg.db_line("sluicedb"),
           "onedb": pg.db_line("sluicedb") + " max_db_client_connections=1"}
    s = sluice(TX, databases=dbs, users={"md5user": "max_user_client_connections=1"})
    with connect(s, "md5user"):
        with pytest.raises(psycopg.OperationalError, match="max_user_client_connections"):
            connect(s, "md5user")
        with connect(s) as other:  # another user is not limited
            assert other.execute("select 1").fetchone() == (1,)
    with s.connect(db="onedb"):
        with pytest.raises(psycopg.OperationalError, match="max_db_client_connections"):
            s.connect(db="onedb")
        with s.connect(db="sluicedb") as c:
            assert c.execute("select 1").fetchone() == (1,)


def test_reload_applies_scoped_settings_to_existing_pools(sluice):
    s = sluice(TX, users={"md5user": "query_timeout=0"})
    with connect(s, "md5user") as c:
        assert c.execute("select pg_sleep(1.2), 1").fetchone()[1] == 1
        ini = Path(s.ini)
        ini.write_text(ini.read_text().replace("md5user = query_timeout=0", "md5user = query_timeout=0.5"))
        os.kill(s.pid, signal.SIGHUP)
        time.sleep(1)
        msg = error_of(lambda: c.execute("select pg_sleep(2)"))
        assert msg and "query_timeout" in msg, msg
