"""Session, transaction and statement pooling semantics."""

import time

import psycopg
import psycopg.errors
import pytest

IDLE = psycopg.pq.TransactionStatus.IDLE


def _pid(c):
    return c.execute("select pg_backend_pid()").fetchone()[0]


# ----------------------------------------------------------------- session

def test_session_set_persists_across_transactions(sluice):
    s = sluice({"pool_mode": "session"})
    with s.connect(autocommit=False) as c:
        c.execute("SET work_mem = '7777kB'")
        c.commit()
        pid = _pid(c)
        c.commit()
        assert c.execute("show work_mem").fetchone() == ("7777kB",)
        c.rollback()
        assert _pid(c) == pid
        c.commit()


def test_session_reset_query_between_clients(sluice, pg):
    default_work_mem = pg.sql("show work_mem")[0][0]
    s = sluice({"pool_mode": "session", "default_pool_size": 1,
                "server_reset_query": "DISCARD ALL"})
    with s.connect() as c1:
        pid1 = _pid(c1)
        c1.execute("SET work_mem = '7777kB'")
        c1.execute("PREPARE e2e_stmt AS select 1")
        c1.execute("CREATE TEMP TABLE e2e_session_tmp (a int)")
        assert c1.execute("show work_mem").fetchone() == ("7777kB",)
    with s.connect() as c2:
        # pool_size=1: the same server connection is reused ...
        assert _pid(c2) == pid1
        # ... but it was reset in between
        assert c2.execute("show work_mem").fetchone() == (default_work_mem,)
        assert c2.execute("select count(*) from pg_prepared_statements").fetchone() == (0,)
        assert c2.execute("select to_regclass('pg_temp.e2e_session_tmp')").fetchone() == (None,)


def test_session_second_client_waits_for_first(sluice, helpers):
    """pool_size=1 in session mode: a second client is only served once the
    first one disconnects."""
    s = sluice({"pool_mode": "session", "default_pool_size": 1, "reserve_pool_size": 0})
    c1 = s.connect()
    pid1 = _pid(c1)

    def second():
        with s.connect() as c2:
            return _pid(c2), time.monotonic()

    w = helpers.Worker(second)
    w.start()
    time.sleep(1.0)
    assert w.is_alive(), "second client was served while the only server was taken"
    t_close = time.monotonic()
    c1.close()
    pid2, t_done = w.get(timeout=15)
    assert pid2 == pid1
    assert t_done >= t_close


# ------------------------------------------------------------- transaction

def test_transaction_mode_begin_holds_server(sluice, helpers):
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1, "reserve_pool_size": 0})
    a = s.connect()
    b = s.connect()
    try:
        a.execute("BEGIN")
        pid_a = _pid(a)

        def b_query():
            r = _pid(b)
            return r, time.monotonic()

        w = helpers.Worker(b_query)
        w.start()
        time.sleep(1.0)
        assert w.is_alive(), "client B ran while A held the only server in a transaction"
        # still inside A's transaction on the same server
        assert _pid(a) == pid_a
        t_commit = time.monotonic()
        a.execute("COMMIT")
        pid_b, t_b = w.get(timeout=15)
        assert pid_b == pid_a  # there is only one server
        assert t_b >= t_commit
        # and A can run again after B is done
        assert _pid(a) == pid_a
    finally:
        a.close()
        b.close()


def test_transaction_mode_interleaving(sluice):
    """Two clients, one server: transactions interleave; every statement sees
    the single server and state does not leak inside a transaction."""
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1, "reserve_pool_size": 0})
    with s.connect(autocommit=False) as a, s.connect(autocommit=False) as b:
        for i in range(20):
            who = a if i % 2 == 0 else b
            who.execute("select %s::int", (i,))
            assert who.execute("select txid_current_if_assigned()").fetchone() == (None,)
            who.commit()
        pid_a = _pid(a)
        a.commit()
        pid_b = _pid(b)
        b.commit()
        assert pid_a == pid_b


def test_transaction_mode_server_switch(sluice):
    """pool_size=2: a server released at COMMIT goes to another client, and
    the first client's next transaction runs on a different backend."""
    s = sluice({"pool_mode": "transaction", "default_pool_size": 2, "reserve_pool_size": 0})
    with s.connect() as a, s.connect() as b:
        a.execute("BEGIN")
        pid_a1 = _pid(a)
        a.execute("COMMIT")
        b.execute("BEGIN")
        pid_b = _pid(b)
        assert pid_b == pid_a1, "an idle server should be reused rather than a new one opened"
        pid_a2 = _pid(a)  # B holds pid_a1's server, A must get the other one
        assert pid_a2 != pid_a1
        b.execute("COMMIT")
        # both servers now idle: at most two distinct backends ever used
        seen = {pid_a1, pid_a2}
        for _ in range(10):
            seen.add(_pid(a))
            seen.add(_pid(b))
        assert len(seen) == 2


def test_transaction_mode_error_in_transaction(sluice):
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1, "reserve_pool_size": 0})
    with s.connect() as a:
        a.execute("BEGIN")
        with pytest.raises(psycopg.errors.DivisionByZero):
            a.execute("select 1/0")
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            a.execute("select 1")
        a.execute("ROLLBACK")
        assert a.info.transaction_status == IDLE
        with s.connect() as b:
            assert b.execute("select 'clean'").fetchone() == ("clean",)
            assert b.info.transaction_status == IDLE
        assert a.execute("select 2").fetchone() == (2,)


def test_transaction_mode_client_leaves_inside_failed_transaction(sluice):
    """A client that disconnects in an aborted transaction must not hand the
    broken transaction to the next client."""
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1, "reserve_pool_size": 0})
    a = s.connect()
    a.execute("BEGIN")
    a.execute("SET LOCAL work_mem = '5555kB'")
    with pytest.raises(psycopg.errors.DivisionByZero):
        a.execute("select 1/0")
    a.close()
    with s.connect() as b:
        assert b.execute("select 'clean'").fetchone() == ("clean",)
        assert b.info.transaction_status == IDLE
        assert b.execute("show work_mem").fetchone() != ("5555kB",)


def test_transaction_mode_client_leaves_inside_open_transaction(sluice, helpers):
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1, "reserve_pool_size": 0})
    t = helpers.unique("e2e_tx_leave")
    with s.connect() as setup:
        setup.execute(f"create table {t} (a int)")
    try:
        a = s.connect()
        a.execute("BEGIN")
        a.execute(f"insert into {t} values (1)")
        a.close()  # never committed
        with s.connect() as b:
            assert b.execute(f"select count(*) from {t}").fetchone() == (0,)
            assert b.info.transaction_status == IDLE
    finally:
        with s.connect() as c:
            c.execute(f"drop table {t}")


# --------------------------------------------------------------- statement

def test_statement_mode_single_statements(sluice):
    s = sluice({"pool_mode": "statement", "default_pool_size": 2})
    with s.connect() as c:
        for i in range(20):
            assert c.execute("select %s::int * 2", (i,)).fetchone() == (i * 2,)
        assert c.execute("select 1; select 2").fetchone() == (1,)
    r = s.psql("-At", "-c", "select 'stmt-ok'")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "stmt-ok"


def test_statement_mode_refuses_transaction_block(sluice):
    s = sluice({"pool_mode": "statement", "default_pool_size": 2})
    with s.connect() as c:
        with pytest.raises(psycopg.Error) as ei:
            c.execute("BEGIN")
            c.execute("select 1")
        assert "transaction blocks not allowed in statement pooling mode" in str(ei.value)
    # psycopg's implicit BEGIN (autocommit off) is refused the same way
    with pytest.raises(psycopg.Error) as ei:
        with s.connect(autocommit=False) as c:
            c.execute("select 1")
            c.commit()
    assert "transaction blocks not allowed in statement pooling mode" in str(ei.value)
    # sluice still serves single statements afterwards
    with s.connect() as c:
        assert c.execute("select 3").fetchone() == (3,)
