"""Pinning in transaction mode: a client that creates session state a shared
server cannot carry for it (session advisory lock, LISTEN, temporary table,
also spelled pg_temp.x, WITH HOLD cursor, SQL PREPARE, and any of these made
by dynamic SQL in a DO block, seen by dynamic_sql_check) keeps its server
until it disconnects; the server is reset (DISCARD ALL) before the next
client gets it. Transaction advisory locks, temporary tables dropped at
commit, a DO block that leaves nothing behind, and SET (which follows the
client instead, test_session_state.py) do not pin.

Session mode behaves the same way by nature (the client always keeps its
server and the server is reset afterwards), so each pinning test also runs in
session mode; that is how these tests are checked, on sluice and on PgBouncer
(`SLUICE_BIN=/usr/sbin/pgbouncer`; PgBouncer 1.18 does not pin, so its
transaction-mode pinning cases are skipped there, while the "does not pin"
cases apply to it as they are).
"""

import secrets
import socket
import time

import psycopg
import pytest

from conftest import (Worker, exchange, is_pgbouncer_compat, msg_bind, msg_close,
                      msg_execute, msg_parse, msg_sync, raw_connect)

COMPAT = is_pgbouncer_compat()
PIN_MODES = [
    pytest.param("session", id="session"),
    pytest.param("transaction", id="transaction",
                 marks=[pytest.mark.skipif(COMPAT, reason="PgBouncer 1.18 does not pin")]),
]

CLEAN_STATE = (
    "select (select count(*) from pg_locks where locktype = 'advisory' "
    "        and pid = pg_backend_pid()), "
    "       (select count(*) from pg_listening_channels()), "
    "       (select count(*) from pg_class where relnamespace = pg_my_temp_schema()), "
    "       (select count(*) from pg_cursors), "
    "       (select count(*) from pg_prepared_statements)")


def _name(prefix):
    return f"{prefix}_{secrets.token_hex(4)}"


def _start(sluice, mode, **extra):
    main = {"pool_mode": mode, "default_pool_size": 1, "reserve_pool_size": 0,
            "query_wait_timeout": 30}
    main.update(extra)
    return sluice(main)


def _run_sql(conn, proto, sql):
    """Run one statement on a RawConn with the simple or the extended
    (unnamed Parse/Bind/Execute/Sync) protocol; returns rows as lists of str."""
    if proto == "simple":
        rows, err = conn.simple_query(sql)
        assert err is None, f"{sql}: {err}"
        return rows
    if proto == "named":  # a named prepared statement, parsed and run at once
        name = _name("pin_stmt")
        ans = exchange(conn, [msg_parse(name, sql), msg_bind(name), msg_execute(),
                              msg_close("S", name), msg_sync()])
    else:
        ans = exchange(conn, [msg_parse("", sql), msg_bind(""), msg_execute(), msg_sync()])
    errs = [m for m in ans if m[0] == "Error"]
    assert not errs, f"{sql}: {errs}"
    return [list(m[1]) for m in ans if m[0] == "DataRow"]


def _pid(conn):
    return int(_run_sql(conn, "simple", "select pg_backend_pid()")[0][0])


def _pins(key, names):
    """kind -> (statements that pin, [(check query, expected rows)] run later in
    separate transactions, proving the state is still there)."""
    ch, tt, cur, pp = names
    return {
        "advisory_lock": (
            [f"select pg_advisory_lock({key})"],
            [("select count(*) from pg_locks where locktype = 'advisory' "
              f"and objid = {key} and granted and pid = pg_backend_pid()", [["1"]])] * 2),
        "advisory_try_shared_upper_case": (
            [f"SELECT PG_TRY_ADVISORY_LOCK_SHARED({key})"],
            [("select mode from pg_locks where locktype = 'advisory' "
              f"and objid = {key} and granted and pid = pg_backend_pid()",
              [["ShareLock"]])] * 2),
        "listen": (
            [f"LISTEN {ch}"],
            [("select pg_listening_channels()", [[ch]])] * 2),
        "temp_table": (
            [f"CREATE TEMP TABLE {tt} (a int)", f"insert into {tt} values (7)"],
            [(f"select sum(a) from {tt}", [["7"]]),
             (f"insert into {tt} values (8)", []),
             (f"select sum(a) from {tt}", [["15"]])]),
        "temporary_table_lower_case": (
            [f"create temporary table {tt} as select 5 as a"],
            [(f"select sum(a) from {tt}", [["5"]])] * 2),
        "with_hold_cursor": (
            [f"DECLARE {cur} CURSOR WITH HOLD FOR select g from generate_series(1, 100) g"],
            [(f"FETCH 2 FROM {cur}", [["1"], ["2"]]),
             (f"FETCH 2 FROM {cur}", [["3"], ["4"]])]),
        "sql_prepare": (
            [f"PREPARE {pp} AS select $1::int + 1"],
            [(f"EXECUTE {pp}(41)", [["42"]]),
             (f"EXECUTE {pp}(1)", [["2"]])]),
        # the parse tree, not the word TEMP, says it is temporary
        "pg_temp_schema": (
            [f"CREATE TABLE pg_temp.{tt} (a int)", f"insert into pg_temp.{tt} values (3)"],
            [(f"select sum(a) from {tt}", [["3"]])] * 2),
        # dynamic SQL: dynamic_sql_check looks at the session afterwards
        "dynamic_temp_table": (
            [f"DO $$ BEGIN EXECUTE 'CREATE TEMP TABLE {tt} AS SELECT 9 AS a'; END $$"],
            [(f"select sum(a) from {tt}", [["9"]])] * 2),
        "dynamic_listen": (
            [f"DO $$ BEGIN EXECUTE 'LISTEN {ch}'; END $$"],
            [("select pg_listening_channels()", [[ch]])] * 2),
        "dynamic_prepare": (
            [f"DO $$ BEGIN EXECUTE 'PREPARE {pp} AS select 5'; END $$"],
            [(f"EXECUTE {pp}", [["5"]])] * 2),
        "dynamic_advisory_lock": (
            [f"DO $$ BEGIN PERFORM pg_advisory_lock({key}); END $$"],
            [("select count(*) from pg_locks where locktype = 'advisory' "
              f"and objid = {key} and granted and pid = pg_backend_pid()", [["1"]])] * 2),
    }


PIN_KINDS = ["advisory_lock", "advisory_try_shared_upper_case", "listen", "temp_table",
             "temporary_table_lower_case", "with_hold_cursor", "sql_prepare", "pg_temp_schema",
             "dynamic_temp_table", "dynamic_listen", "dynamic_prepare", "dynamic_advisory_lock"]


@pytest.mark.parametrize("proto", ["simple", "extended", "named"])
@pytest.mark.parametrize("kind", PIN_KINDS)
@pytest.mark.parametrize("mode", PIN_MODES)
def test_pinned_until_disconnect_then_reset(sluice, pg, mode, kind, proto):
    """pool_size=1: after the pinning statement the first client keeps its
    server across transactions; a second client waits until the first
    disconnects, then gets the same server with no trace of that state."""
    key = secrets.randbelow(1 << 30) + 1
    pin, checks = _pins(key, (_name("ch"), _name("tt"), _name("cur"), _name("pp")))[kind]
    s = _start(sluice, mode)
    a = raw_connect(s.host, s.port)
    try:
        pid_a = _pid(a)
        for sql in pin:
            _run_sql(a, proto, sql)

        def second():
            with s.connect() as b:
                pid = b.execute("select pg_backend_pid()").fetchone()[0]
                t = time.monotonic()
                return pid, t, b.execute(CLEAN_STATE).fetchone()

        w = Worker(second)
        w.start()
        for q, want in checks:
            time.sleep(0.4)
            assert _run_sql(a, proto, q) == want, q
            assert _pid(a) == pid_a
        time.sleep(0.3)
        assert w.is_alive(), "second client was served while the first was pinned"
        t_close = time.monotonic()
    finally:
        a.terminate()
    pid_b, t_b, clean = w.get(timeout=20)
    assert t_b >= t_close
    assert pid_b == pid_a  # the one server, reset in between
    assert clean == (0, 0, 0, 0, 0), \
        "(advisory locks, LISTEN channels, temp tables, cursors, prepared statements)"
    assert pg.sql("select count(*) from pg_locks where locktype = 'advisory' "
                  "and objid = %s", (key,))[0][0] == 0


@pytest.mark.parametrize("mode", PIN_MODES)
def test_listen_pinned_client_gets_notifications(sluice, pg, mode):
    """The server of a LISTENing client stays with it, so NOTIFYs reach it,
    also between its own queries."""
    ch = _name("ch")
    s = _start(sluice, mode)
    a = raw_connect(s.host, s.port)
    try:
        _run_sql(a, "simple", f"LISTEN {ch}")
        for i in range(3):
            pg.sql(f"NOTIFY {ch}, 'hello {i}'", dbname="sluicedb")
            got = _read_notification(a, timeout=5)
            assert got == (ch, f"hello {i}")
            assert _run_sql(a, "simple", "select 1") == [["1"]]
    finally:
        a.terminate()


def _read_notification(conn, timeout):
    """Wait for a NotificationResponse on an idle RawConn: (channel, payload)."""
    conn.sock.settimeout(timeout)
    try:
        while True:
            typ, body = conn.read()
            if typ == "A":
                ch, payload = body[4:].split(b"\0")[:2]
                return ch.decode(), payload.decode()
    except socket.timeout:
        return None
    finally:
        conn.sock.settimeout(10.0)


@pytest.mark.parametrize("mode", PIN_MODES)
def test_pinned_client_blocks_others_until_query_wait_timeout(sluice, pg, mode):
    key = secrets.randbelow(1 << 30) + 1
    s = _start(sluice, mode, query_wait_timeout=2)
    a = raw_connect(s.host, s.port)
    try:
        _run_sql(a, "simple", f"select pg_advisory_lock({key})")

        def second():
            t0 = time.monotonic()
            try:
                with s.connect() as b:
                    b.execute("select 1")
                    b.execute("select 1")
            except psycopg.Error as e:
                return str(e), time.monotonic() - t0
            return None, time.monotonic() - t0

        w = Worker(second)
        w.start()
        # the first client keeps working meanwhile
        for _ in range(5):
            time.sleep(0.3)
            assert _run_sql(a, "simple", "select count(*) from pg_locks where "
                            f"locktype = 'advisory' and objid = {key} and granted "
                            "and pid = pg_backend_pid()") == [["1"]]
        err, waited = w.get(timeout=15)
        assert err is not None, "second client was served while the first was pinned"
        assert "query_wait_timeout" in err, err
        assert 1.5 <= waited < 10, waited
        assert _run_sql(a, "simple", "select 'still here'") == [["still here"]]
    finally:
        a.terminate()
    with s.connect() as c:
        assert c.execute(CLEAN_STATE).fetchone() == (0, 0, 0, 0, 0)


# ---------------------------------------------------------------------------
# what does not pin

NO_PIN_MODES = ["transaction", "statement"]


def _second_client_not_blocked(s, a, pid_a):
    """While `a` stays connected, another client gets the (single) server
    promptly: the same backend, so the server was not pinned."""
    def second():
        with s.connect() as b:
            return b.execute("select pg_backend_pid()").fetchone()[0]

    w = Worker(second)
    t0 = time.monotonic()
    w.start()
    pid_b = w.get(timeout=10)
    assert time.monotonic() - t0 < 5, "second client was kept waiting"
    assert pid_b == pid_a
    assert _pid(a) == pid_a  # and the first client goes on working


@pytest.mark.parametrize("proto", ["simple", "extended"])
@pytest.mark.parametrize("mode", NO_PIN_MODES)
def test_transaction_advisory_lock_does_not_pin(sluice, pg, mode, proto):
    key = secrets.randbelow(1 << 30) + 1
    s = _start(sluice, mode)
    a = raw_connect(s.host, s.port)
    try:
        pid_a = _pid(a)
        _run_sql(a, proto, f"select pg_advisory_xact_lock({key})")
        if mode == "transaction":
            _run_sql(a, "simple", "BEGIN")
            _run_sql(a, proto, f"select pg_advisory_xact_lock({key})")
            assert _run_sql(a, proto, "select count(*) from pg_locks where locktype = "
                            f"'advisory' and objid = {key}") == [["1"]]
            _run_sql(a, "simple", "COMMIT")
        _second_client_not_blocked(s, a, pid_a)
        assert pg.sql("select count(*) from pg_locks where locktype = 'advisory' "
                      "and objid = %s", (key,))[0][0] == 0
    finally:
        a.terminate()


@pytest.mark.parametrize("proto", ["simple", "extended"])
@pytest.mark.parametrize("mode", NO_PIN_MODES)
def test_set_of_untracked_parameter_does_not_pin(sluice, mode, proto):
    """SET work_mem follows its client (test_session_state.py) instead of
    pinning it."""
    s = _start(sluice, mode)
    a = raw_connect(s.host, s.port)
    try:
        pid_a = _pid(a)
        _run_sql(a, proto, "SET work_mem = '7777kB'")
        _second_client_not_blocked(s, a, pid_a)
    finally:
        a.terminate()


@pytest.mark.sluice_only
@pytest.mark.parametrize("sql", [
    "CREATE TEMP TABLE {tt} (a int) ON COMMIT DROP",
    "DO $$ BEGIN EXECUTE 'CREATE TEMP TABLE {tt} (a int)'; EXECUTE 'DROP TABLE {tt}'; END $$",
    "DO $$ BEGIN PERFORM 1; END $$",
], ids=["on_commit_drop", "do_drops_what_it_made", "do_harmless"])
def test_what_leaves_nothing_behind_does_not_pin(sluice, sql):
    """A temporary table dropped at commit, or a DO block that leaves the
    session as it found it (dynamic_sql_check looks), keep the server shared."""
    s = _start(sluice, "transaction")
    a = raw_connect(s.host, s.port)
    try:
        pid_a = _pid(a)
        _run_sql(a, "simple", "BEGIN")
        _run_sql(a, "simple", sql.format(tt=_name("tt")))
        _run_sql(a, "simple", "COMMIT")
        _second_client_not_blocked(s, a, pid_a)
    finally:
        a.terminate()


@pytest.mark.sluice_only
def test_dynamic_sql_check_off_trusts_dynamic_sql(sluice):
    """dynamic_sql_check = off: sluice does not look after a DO block, so
    what it leaves behind stays on the shared server (documented)."""
    s = _start(sluice, "transaction", dynamic_sql_check=0)
    a = raw_connect(s.host, s.port)
    ch = _name("ch")
    try:
        pid_a = _pid(a)
        _run_sql(a, "simple", f"DO $$ BEGIN EXECUTE 'LISTEN {ch}'; END $$")
        _second_client_not_blocked(s, a, pid_a)
    finally:
        a.terminate()
