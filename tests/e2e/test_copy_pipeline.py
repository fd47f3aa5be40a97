"""COPY FROM STDIN sent the way libpq sends it in pipeline mode and for
PQexecParams: Execute and Sync first, the data only after the
CopyInResponse. PostgreSQL ignores a Sync it reads inside a running copy
and answers one it reads after the copy failed (a view or a BEFORE trigger
fails before the first read, bad data after it). Through sluice the
answers must be PostgreSQL's in every pooling mode, and the server must be
clean for the next client afterwards (one server per pool here, so a
server left waiting for an answer that never comes stalls the second
client)."""

import time

import psycopg
import pytest
from psycopg import pq

from conftest import (diff_transcripts, msg_bind, msg_execute, msg_parse, msg_query,
                      msg_sync, raw_connect, read_messages, send_batch, unique)

# PgBouncer 1.18 in transaction and statement pooling often never answers
# once a Sync came inside the copy (which cases hang varies from run to
# run); session pooling, which only relays, matches PostgreSQL there.
MODES = ["session",
         pytest.param("transaction", marks=pytest.mark.sluice_only),
         pytest.param("statement", marks=pytest.mark.sluice_only)]


def copy_data(data):
    return (b"d", data)


def copy_done():
    return (b"c", b"")


def copy_fail(msg):
    return (b"f", msg.encode() + b"\0")


@pytest.fixture(scope="module")
def tables(pg):
    """A table, a view on it (COPY into it fails before reading), and a
    table whose BEFORE STATEMENT trigger fails."""
    names = {k: unique(f"e2e_cp_{k}") for k in ("t", "v", "trg", "f")}
    with pg.connect_tcp() as c:
        c.autocommit = True
        c.execute(f"create table {names['t']} (a int primary key)")
        c.execute(f"create view {names['v']} as select * from {names['t']}")
        c.execute(f"create table {names['trg']} (a int)")
        c.execute(f"create function {names['f']}() returns trigger language plpgsql "
                  "as $$ begin raise exception 'refused by trigger'; end $$")
        c.execute(f"create trigger {names['f']} before insert on {names['trg']} "
                  f"for each statement execute function {names['f']}()")
    yield names
    with pg.connect_tcp() as c:
        c.autocommit = True
        c.execute(f"drop view {names['v']}")
        c.execute(f"drop table {names['t']}, {names['trg']}")
        c.execute(f"drop function {names['f']}()")


def until_sentinel(conn, msgs):
    """Send msgs, then a Query whose answer marks the end: every answer
    before it (however many ReadyForQuery PostgreSQL gives) is returned."""
    send_batch(conn, msgs + [msg_query("select 'sentinel'")])
    out = []
    while True:
        m = read_messages(conn, count=1)[0]
        out.append(m)
        if m == ("DataRow", ("sentinel",)):
            out += read_messages(conn, count=2)
            return out


def script(target, table, how, data, pause=False, pipelined=False):
    """The COPY statement (how: a named or the unnamed statement with a
    Sync behind the Execute, or a simple Query with or without a Sync
    behind it); then, once the CopyInResponse is back (or at once when
    pipelined), the data (None: CopyFail), CopyDone and, for the extended
    protocol, Sync. Returns the answers of both halves."""
    c = raw_connect(target.host, target.port)
    try:
        sql = f"COPY {table} FROM STDIN"
        if how in ("named", "unnamed"):
            name = "cp1" if how == "named" else ""
            first = [msg_parse(name, sql), msg_bind(name), msg_execute(), msg_sync()]
            n_head = 3  # ParseComplete, BindComplete, CopyInResponse
        else:
            first = [msg_query(sql)] + ([msg_sync()] if how == "simple-sync" else [])
            n_head = 1
        rest = [copy_fail("client gave up")] if data is None else [copy_data(data), copy_done()]
        if how in ("named", "unnamed"):
            rest.append(msg_sync())
        if pipelined:
            return [], until_sentinel(c, first + rest)
        send_batch(c, first)
        head = read_messages(c, count=n_head)
        if pause:
            time.sleep(0.3)  # PostgreSQL's error, if any, is back before the data
        return head, until_sentinel(c, rest)
    finally:
        c.terminate()


CASES = {
    # name: (table key, how, data, pause, pipelined)
    "ok-named": ("t", "named", b"1\n2\n3\n", False, False),
    "ok-unnamed": ("t", "unnamed", b"4\n5\n", False, False),
    "ok-pipelined": ("t", "named", b"4\n5\n", False, True),
    "bad-data": ("t", "named", b"6\nnot a number\n", False, False),
    "bad-data-paused": ("t", "named", b"7\nnot a number\n", True, False),
    "bad-data-pipelined": ("t", "unnamed", b"7\nnot a number\n", False, True),
    "duplicate-key": ("t", "named", b"8\n8\n", False, False),
    "view": ("v", "named", b"9\n", False, False),
    "view-paused": ("v", "unnamed", b"9\n", True, False),
    "view-pipelined": ("v", "named", b"9\n", False, True),
    "trigger": ("trg", "named", b"10\n", False, False),
    "copy-fail": ("t", "named", None, False, False),
    "simple-ok": ("t", "simple-sync", b"1\n", False, False),
    "simple-view": ("v", "simple-sync", b"1\n", True, False),
    "simple-bad-data": ("t", "simple-sync", b"x\n", False, False),
    "simple-view-pipelined": ("v", "simple-sync", b"1\n", False, True),
    "simple-plain-view": ("v", "simple", b"1\n", False, False),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", list(CASES))
def test_sync_inside_copy_answered_as_postgres(sluice, pg, tables, mode, case):
    """PgBouncer 1.18 in transaction and statement pooling often leaves the
    client waiting for an answer that never comes (sluice_only there)."""
    key, how, data, pause, pipelined = CASES[case]
    s = sluice({"pool_mode": mode, "default_pool_size": 1, "reserve_pool_size": 0,
                "query_wait_timeout": 5})
    table = tables[key]
    with pg.connect_tcp() as c:
        c.autocommit = True
        c.execute(f"truncate {tables['t']}")
    want = script(pg, table, how, data, pause, pipelined)
    with pg.connect_tcp() as c:
        c.autocommit = True
        c.execute(f"truncate {tables['t']}")
    got = script(s, table, how, data, pause, pipelined)
    d = diff_transcripts([(0, got[0]), (0, got[1])], [(0, want[0]), (0, want[1])])
    assert not d, d
    # The one server went back clean: another client is served at once.
    c2 = raw_connect(s.host, s.port)
    try:
        answers = until_sentinel(c2, [])
        assert answers[-1] == ("ReadyForQuery", "I")
    finally:
        c2.terminate()


@pytest.mark.sluice_only
@pytest.mark.parametrize("mode", ["transaction", "statement"])
def test_request_inside_copy_is_refused(sluice, pg, tables, mode):
    """A Parse sent while PostgreSQL reads COPY data: PostgreSQL would
    fail the copy on it and its fate behind the copy is unknowable to a
    pooler; sluice says so (08P01) and the server is not lent on dirty."""
    s = sluice({"pool_mode": mode, "default_pool_size": 1, "reserve_pool_size": 0,
                "query_wait_timeout": 5})
    c = raw_connect(s.host, s.port)
    try:
        send_batch(c, [msg_parse("", f"COPY {tables['t']} FROM STDIN"), msg_bind(""), msg_execute(),
                       msg_sync()])
        assert [m[0] for m in read_messages(c, count=3)] == ["ParseComplete", "BindComplete", "Other"]
        send_batch(c, [msg_parse("x", "select 1"), msg_sync()])
        err = read_messages(c, count=1)[0]
        assert err[0] == "Error" and err[1] == "08P01", err
        assert "during COPY FROM STDIN" in err[2]
    finally:
        c.terminate()
    c2 = raw_connect(s.host, s.port)
    try:
        assert until_sentinel(c2, [])[-1] == ("ReadyForQuery", "I")
    finally:
        c2.terminate()


# libpq itself, in pipeline mode (as PgBouncer's own COPY tests drive it).

def _pipeline_copy(dsn, table, rows, wait_before_end):
    statuses = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        pg = conn.pgconn
        pg.enter_pipeline_mode()
        pg.send_prepare(b"p1", f"COPY {table} (a) FROM STDIN".encode())
        pg.send_query_prepared(b"p1", [])
        pg.pipeline_sync()
        statuses.append(pg.get_result().status)   # the Parse
        assert pg.get_result() is None
        statuses.append(pg.get_result().status)   # COPY_IN
        pg.put_copy_data(rows)
        if wait_before_end:
            pg.flush()
            time.sleep(0.5)
        pg.put_copy_end()
        pg.pipeline_sync()
        statuses.append(pg.get_result().status)
        assert pg.get_result() is None
        statuses.append(pg.get_result().status)
        statuses.append(pg.get_result().status)
        pg.exit_pipeline_mode()
        # the connection goes on normally
        assert conn.execute("select 42").fetchone() == (42,)
    return statuses


@pytest.mark.sluice_only
@pytest.mark.parametrize("case", ["ok", "error-before-copy-done", "error-after-copy-done"])
def test_libpq_pipeline_copy_with_prepared_statement(sluice, pg, tables, case):
    """PgBouncer 1.18 has no max_prepared_statements (1.21) and refuses the
    config; without that setting it still hangs at times (transaction
    pooling) on the Sync libpq sends inside the copy."""
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1, "reserve_pool_size": 0,
                "max_prepared_statements": 100, "query_wait_timeout": 5})
    rows = b"11\n12\n" if case == "ok" else b"\n"
    want_end = pq.ExecStatus.COMMAND_OK if case == "ok" else pq.ExecStatus.FATAL_ERROR
    got = _pipeline_copy(s.dsn(), tables["t"], rows, case == "error-before-copy-done")
    assert got == [pq.ExecStatus.COMMAND_OK, pq.ExecStatus.COPY_IN, want_end,
                   pq.ExecStatus.PIPELINE_SYNC, pq.ExecStatus.PIPELINE_SYNC]
    with psycopg.connect(s.dsn(), autocommit=True) as conn:
        n = conn.execute(f"select count(*) from {tables['t']} where a in (11, 12)").fetchone()[0]
        assert n == (2 if case == "ok" else 0)
        conn.execute(f"delete from {tables['t']} where a in (11, 12)")
