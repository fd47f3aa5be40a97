"""Protocol-level named prepared statements through the pooler
(max_prepared_statements, default 200).

In transaction and statement mode sluice remembers each client's Parse
(name -> text + parameter types) and prepares it, under a name of its own, on
whatever server the client is given; the client must see exactly what
PostgreSQL would have sent. Most tests here therefore run the same message
script twice, once straight to PostgreSQL and once through the pooler, and
compare the two transcripts message by message (ParseComplete, BindComplete,
ParameterDescription, RowDescription, DataRow, CommandComplete, CloseComplete,
errors with SQLSTATE and text, ReadyForQuery status, in order).

In session mode the client keeps its server, so every test must pass there
unchanged: that is how these tests are checked, on sluice and on PgBouncer
(`SLUICE_BIN=/usr/sbin/pgbouncer`; PgBouncer 1.18 has no prepared statement
support in transaction mode, so only the session cases apply there).
"""

import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import (PGBENCH, Worker, client_env, diff_transcripts, exchange,
                      is_pgbouncer_compat, msg_bind, msg_close, msg_describe,
                      msg_execute, msg_flush, msg_parse, msg_query, msg_sync,
                      raw_connect, run_steps, unique)

COMPAT = is_pgbouncer_compat()
MODES = ["session", "transaction", "statement"]
POOLED = ["transaction", "statement"]
INT4, TEXT, INT8 = 23, 25, 20


def modes_for_compat(modes):
    """PgBouncer 1.18 only passes the session-mode cases; mark the others."""
    out = []
    for m in modes:
        marks = [pytest.mark.skip(reason="PgBouncer 1.18 has no prepared "
                                  "statements in transaction/statement mode")] \
            if COMPAT and m != "session" else []
        out.append(pytest.param(m, marks=marks, id=m))
    return out


ALL = modes_for_compat(MODES)


def start(sluice, mode, clients=1, pool=None, **extra):
    """A sluice for `clients` simultaneous clients. In transaction and
    statement mode the pool has one server (unless `pool`), so clients share
    it; in session mode each client needs its own."""
    size = pool or (clients if mode == "session" else 1)
    main = {"pool_mode": mode, "default_pool_size": size, "reserve_pool_size": 0,
            "query_wait_timeout": 30}
    main.update(extra)
    if COMPAT:
        main.pop("max_prepared_statements", None)  # unknown to PgBouncer 1.18
    return sluice(main)


def close_all(conns):
    for c in conns:
        c.terminate()


def compare_with_postgres(s, pg, steps, clients=1):
    """Run steps on `clients` direct connections to PostgreSQL, then on as
    many connections through the pooler; assert identical transcripts.
    Returns the transcript through the pooler."""
    direct = [raw_connect(pg.host, pg.port) for _ in range(clients)]
    try:
        want = run_steps(direct, steps)
    finally:
        close_all(direct)
    via = [raw_connect(s.host, s.port) for _ in range(clients)]
    try:
        got = run_steps(via, steps)
    finally:
        close_all(via)
    d = diff_transcripts(got, want)
    assert not d, d
    return got


def kinds(answers):
    return [m[0] for m in answers]


def interleave(units_by_client):
    """units_by_client[i]: list of units (a unit = list of steps that must run
    back to back, e.g. a transaction block). Alternates the clients unit by
    unit; returns a flat list of steps."""
    out = []
    n = max(len(u) for u in units_by_client)
    for k in range(n):
        for units in units_by_client:
            if k < len(units):
                out.extend(units[k])
    return out


def _single_row(answers):
    rows = [m[1] for m in answers if m[0] == "DataRow"]
    assert len(rows) == 1, answers
    return rows[0]


# ---------------------------------------------------------------------------
# 1. the answers are PostgreSQL's, in the same order

def _client_script(i, mode):
    """One client's units. Client i uses texts (and column names) of its own
    under the same statement names as the other client."""
    add = 100 * (i + 1)
    q1 = f"select $1::int + {add} as v{i}"
    q2 = f"select upper($1::text) || '{i}' as t{i}, {i} as n"
    q3 = f"select g, $1::text as tag{i} from generate_series(1, {5 + i}) g"
    q4 = f"select $1::int4 - {i} as d{i}"
    c = i
    units = [
        [(c, [msg_parse("s1", q1, [INT4]), msg_parse("s2", q2), msg_sync()])],
        [(c, [msg_describe("S", "s1"), msg_describe("S", "s2"), msg_sync()])],
        [(c, [msg_bind("s1", [5]), msg_describe("P", ""), msg_execute(), msg_sync()])],
        [(c, [msg_bind("s2", ["abc"]), msg_execute(), msg_bind("s1", [7]), msg_execute(),
              msg_sync()])],
        # a named portal read in pieces (PortalSuspended) within one batch
        [(c, [msg_parse("s3", q3), msg_bind("s3", ["x"], portal="p1"),
              msg_execute("p1", 2), msg_execute("p1", 2), msg_execute("p1", 0),
              msg_close("P", "p1"), msg_sync()])],
        # Flush without Sync: answers must come before the batch is finished
        [(c, [msg_parse("s4", q4), msg_describe("S", "s4"), msg_flush()], 3),
         (c, [msg_bind("s4", [10]), msg_execute(), msg_sync()])],
        # unnamed statement mixed with named ones
        [(c, [msg_parse("", "select 42 as answer"), msg_bind(""), msg_execute(),
              msg_bind("s1", [1]), msg_execute(), msg_bind("s3", ["y"]), msg_execute("", 0),
              msg_sync()])],
        [(c, [msg_query("select 'simple' as q")])],
        [(c, [msg_describe("S", "s3"), msg_bind("s1", [2]), msg_execute(), msg_sync()])],
        # Close: CloseComplete, then the name is gone, the others stay
        [(c, [msg_close("S", "s2"), msg_sync()])],
        [(c, [msg_bind("s2", ["z"]), msg_execute(), msg_sync()])],
        [(c, [msg_bind("s1", [3]), msg_execute(), msg_close("P", "nosuchportal"),
              msg_sync()])],
        # reuse the freed name with another text
        [(c, [msg_parse("s2", f"select $1::int8 * 3 as m{i}", [INT8]),
              msg_describe("S", "s2"), msg_bind("s2", [4]), msg_execute(), msg_sync()])],
    ]
    if mode != "statement":
        # named statements inside an explicit transaction block
        units.append([
            (c, [msg_query("BEGIN")]),
            (c, [msg_bind("s1", [11]), msg_execute(), msg_sync()]),
            (c, [msg_parse("s5", f"select $1::text || ' in tx {i}'"), msg_bind("s5", ["a"]),
                 msg_execute(), msg_sync()]),
            (c, [msg_query("COMMIT")]),
        ])
        units.append([(c, [msg_bind("s5", ["after"]), msg_execute(), msg_sync()])])
    return units


@pytest.mark.parametrize("mode", ALL)
def test_answers_are_postgres_answers(sluice, pg, mode):
    """Two clients use the same statement names for different texts on one
    shared server; each sees exactly what PostgreSQL sends it directly."""
    s = start(sluice, mode, clients=2)
    steps = interleave([_client_script(0, mode), _client_script(1, mode)])
    got = compare_with_postgres(s, pg, steps, clients=2)
    # sanity: the script did what it is meant to do
    flat = [m for _, ans in got for m in ans]
    assert ("DataRow", ("105",)) in flat and ("DataRow", ("205",)) in flat
    assert ("DataRow", ("ABC0", "0")) in flat and ("DataRow", ("ABC1", "1")) in flat
    assert ("PortalSuspended",) in flat and ("CloseComplete",) in flat
    assert any(m[0] == "Error" and m[1] == "26000" for m in flat)


# ---------------------------------------------------------------------------
# across server connections

LONG_N = 70000
LONG_SQL = f"select length('{'x' * LONG_N}') as len, $1::int as p"


def _wait_active(pg, text, timeout=10.0):
    """pid of the backend running exactly `text`, once it is running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = pg.sql("select pid from pg_stat_activity where state = 'active' "
                      "and query = %s", (text,))
        if rows:
            return rows[0][0]
        time.sleep(0.05)
    raise AssertionError(f"query {text!r} never showed up in pg_stat_activity")


def _pid_of(raw):
    rows, err = raw.simple_query("select pg_backend_pid()")
    assert err is None, err
    return int(rows[0][0])


@pytest.mark.parametrize("mode", ALL)
def test_statement_follows_client_to_another_server(sluice, pg, mode):
    """Parse on one server; while another client holds that server, Bind and
    Describe run on a second server, where the statement must be prepared
    transparently."""
    s = start(sluice, mode, pool=2)
    a = raw_connect(s.host, s.port)
    d = raw_connect(pg.host, pg.port)
    try:
        prep = [msg_parse("s1", "select $1::int * 10 as ten", [INT4]),
                msg_parse("s2", "select $1::text || '!' as bang"),
                # the declared type (int8) is not what PostgreSQL would infer
                msg_parse("s3", "select $1 as v", [INT8]),
                # a text far larger than one 16 KiB buffer
                msg_parse("s4", LONG_SQL),
                msg_sync()]
        assert exchange(a, prep) == exchange(d, prep)
        pids = {_pid_of(a)}
        for rnd in range(4):
            sleep_sql = f"select pg_sleep(1.5) /* {unique('blk')} */"

            def block():
                with s.connect() as b:
                    b.execute(sleep_sql)

            w = Worker(block)
            w.start()
            blocker = _wait_active(pg, sleep_sql)
            pid = _pid_of(a)
            assert pid != blocker
            pids.add(pid)
            use = [msg_describe("S", "s1"), msg_bind("s1", [rnd]), msg_execute(),
                   msg_bind("s2", [f"r{rnd}"]), msg_describe("P", ""), msg_execute(),
                   msg_describe("S", "s3"), msg_bind("s3", [rnd]), msg_execute(),
                   msg_bind("s4", [rnd]), msg_execute(),
                   msg_bind("s1", [rnd], result_formats=[1]), msg_execute(),
                   msg_sync()]
            got, want = exchange(a, use), exchange(d, use)
            assert got == want
            assert ("DataRow", (str(rnd * 10),)) in got
            assert ("ParameterDescription", (INT8,)) in got
            assert ("DataRow", (str(LONG_N), str(rnd))) in got
            w.get(timeout=15)
            if mode != "session" and len(pids) >= 2:
                break
        if mode != "session":
            assert len(pids) >= 2, "the client never got another server; test inconclusive"
        # the duplicate check holds whatever server the client is on
        dup = [msg_parse("s1", "select 1"), msg_sync()]
        got, want = exchange(a, dup), exchange(d, dup)
        assert got == want and got[0][1] == "42P05", got
    finally:
        a.terminate()
        d.terminate()


@pytest.mark.sluice_only
@pytest.mark.parametrize("mode", POOLED)
def test_statement_survives_loss_of_its_server(sluice, pg, mode):
    """The server where the client parsed its statements is terminated; the
    client's statements still work on the replacement server."""
    s = start(sluice, mode)
    a = raw_connect(s.host, s.port)
    d = raw_connect(pg.host, pg.port)
    try:
        steps = [
            [msg_parse("s1", "select $1::int + 1 as inc", [INT4]),
             msg_parse("s2", "select $1::text as echo"), msg_bind("s1", [1]), msg_execute(),
             msg_parse("s3", "select $1 as v", [INT8]), msg_parse("s4", "select 4"),
             msg_parse("s5", "select 5"), msg_parse("Mixed_1", "select 'mixed'"),
             msg_parse("s6", LONG_SQL), msg_sync()],
            "KILL",
            [msg_bind("s1", [41]), msg_execute(), msg_sync()],
            # statements never prepared on the new server
            [msg_close("S", "s4"), msg_sync()],
            [msg_bind("s4"), msg_execute(), msg_sync()],                      # 26000
            [msg_query("DEALLOCATE s5")],
            [msg_bind("s5"), msg_execute(), msg_sync()],                      # 26000
            [msg_query("DEALLOCATE nosuch")],                                 # 26000
            [msg_query("DEALLOCATE mixed_1")],                   # 26000: folded to lower case
            [msg_bind("Mixed_1"), msg_execute(), msg_sync()],
            [msg_query('DEALLOCATE "Mixed_1"')],
            [msg_bind("Mixed_1"), msg_execute(), msg_sync()],                 # 26000
            [msg_describe("S", "s3"), msg_bind("s3", [5], result_formats=[1]), msg_execute(),
             msg_sync()],
            [msg_bind("s6", [6]), msg_execute(), msg_sync()],
            [msg_describe("S", "s2"), msg_sync()],
            [msg_parse("s1", "select $1::int + 1 as inc", [INT4]), msg_sync()],  # 42P05
            [msg_close("S", "s2"), msg_sync()],
            [msg_bind("s2", ["gone"]), msg_execute(), msg_sync()],            # 26000
            [msg_parse("s2", "select $1::int * 2 as dbl"), msg_bind("s2", [21]),
             msg_execute(), msg_sync()],
        ]
        if mode == "transaction":
            # in a failed transaction, on a server that lacks the statement
            steps += [
                [msg_parse("s7", "select $1::int * 7 as seven"), msg_sync()],
                "KILL",
                [msg_query("BEGIN")],
                [msg_query("select 1/0")],
                [msg_bind("s7", [1]), msg_execute(), msg_sync()],              # 25P02
                [msg_describe("S", "s7"), msg_sync()],
                [msg_query("ROLLBACK")],
                [msg_bind("s7", [2]), msg_describe("P", ""), msg_execute(), msg_sync()],
            ]
        errors = []
        for st in steps:
            if st == "KILL":
                pid = _pid_of(a)
                assert pg.sql("select pg_terminate_backend(%s)", (pid,))[0][0] is True
                deadline = time.monotonic() + 10
                while pg.sql("select 1 from pg_stat_activity where pid = %s", (pid,)):
                    assert time.monotonic() < deadline, "backend did not go away"
                    time.sleep(0.05)
                time.sleep(0.5)  # let sluice see the closed idle server
                continue
            got, want = exchange(a, st), exchange(d, st)
            assert got == want, f"through sluice: {got}\nPostgreSQL:    {want}"
            errors += [m[1] for m in got if m[0] == "Error"]
        assert _pid_of(a) != pid
        want_errors = ["26000"] * 5 + ["42P05", "26000"]
        if mode == "transaction":
            want_errors += ["22012", "25P02", "25P02"]
        assert errors == want_errors, errors
    finally:
        a.terminate()
        d.terminate()


@pytest.mark.parametrize("mode", modes_for_compat(["session", "transaction"]))
def test_statements_and_transaction_blocks(sluice, pg, mode):
    """Statements outlive a rolled-back transaction; inside a failed
    transaction Parse, Bind and Describe get 25P02 as from PostgreSQL, even
    when the server already has the same text from another client."""
    A, B = 0, 1
    t2 = "select $1::int * 7 as seven"
    steps = [
        (B, [msg_parse("b2", t2), msg_parse("t1", "select 'B t1' as b"), msg_sync()]),
        (A, [msg_query("BEGIN")]),
        (A, [msg_parse("t1", "select $1::int - 1 as dec"), msg_sync()]),
        (A, [msg_bind("t1", [10]), msg_execute(), msg_sync()]),
        (A, [msg_query("ROLLBACK")]),
        (B, [msg_bind("t1"), msg_execute(), msg_sync()]),
        (A, [msg_bind("t1", [20]), msg_execute(), msg_sync()]),
        (A, [msg_query("BEGIN")]),
        (A, [msg_query("select 1/0")]),
        (A, [msg_parse("t2", t2), msg_sync()]),
        (A, [msg_bind("t1", [1]), msg_execute(), msg_sync()]),
        (A, [msg_describe("S", "t1"), msg_sync()]),
        (A, [msg_close("S", "t1"), msg_sync()]),
        (A, [msg_query("ROLLBACK")]),
        (A, [msg_bind("t2", [1]), msg_execute(), msg_sync()]),
        (A, [msg_parse("t2", t2), msg_bind("t2", [3]), msg_execute(), msg_sync()]),
        (A, [msg_bind("t1", [30]), msg_execute(), msg_sync()]),
        (B, [msg_bind("b2", [2]), msg_execute(), msg_bind("t1"), msg_execute(), msg_sync()]),
        # an explicit transaction left open across a pipeline with an error
        (A, [msg_query("BEGIN")]),
        (A, [msg_bind("t2", [4]), msg_execute(), msg_parse("t3", "selec"),
             msg_bind("t2", [5]), msg_execute(), msg_sync()]),
        (A, [msg_query("COMMIT")]),
        (A, [msg_bind("t2", [6]), msg_execute(), msg_describe("S", "t3"), msg_sync()]),
    ]
    got = compare_with_postgres(start(sluice, mode, clients=2), pg, steps, clients=2)
    assert _single_row(got[6][1]) == ("19",)
    assert [a[0][:2] for a in (got[9][1], got[10][1], got[11][1])] == [("Error", "25P02")] * 3
    assert got[12][1][0] == ("CloseComplete",)  # Close works in a failed transaction
    assert _single_row(got[15][1]) == ("21",)
    assert got[16][1][0][:2] == ("Error", "26000")
    assert got[19][1][-1] == ("ReadyForQuery", "E")
    assert got[21][1][-2][:2] == ("Error", "26000")


# ---------------------------------------------------------------------------
# 3. errors

@pytest.mark.parametrize("mode", ALL)
def test_duplicate_name_is_42P05(sluice, pg, mode):
    steps = [
        (0, [msg_parse("s1", "select $1::int as a", [INT4]), msg_sync()]),
        (0, [msg_parse("s1", "select $1::int as a", [INT4]), msg_sync()]),   # same text
        (0, [msg_parse("s1", "select 'other'"), msg_sync()]),                # other text
        (0, [msg_bind("s1", [7]), msg_execute(), msg_sync()]),               # still the first
        # the other client may use the name freely
        (1, [msg_parse("s1", "select 'client1' as who"), msg_bind("s1"), msg_execute(),
             msg_sync()]),
        # a duplicate inside one pipeline: the rest up to Sync is skipped
        (0, [msg_parse("d1", "select 1 as one"), msg_parse("d1", "select 2 as two"),
             msg_bind("d1"), msg_execute(), msg_sync()]),
        (0, [msg_bind("d1"), msg_execute(), msg_bind("s1", [8]), msg_execute(), msg_sync()]),
        (1, [msg_bind("s1"), msg_execute(), msg_sync()]),
    ]
    got = compare_with_postgres(start(sluice, mode, clients=2), pg, steps, clients=2)
    err = got[1][1][0]
    assert err[0] == "Error" and err[1] == "42P05" and err[2] == \
        'prepared statement "s1" already exists', err
    assert kinds(got[5][1]) == ["ParseComplete", "Error", "ReadyForQuery"]
    assert ("DataRow", ("1",)) in got[6][1]


@pytest.mark.parametrize("mode", ALL)
def test_unknown_name_is_26000(sluice, pg, mode):
    steps = [
        (0, [msg_bind("nosuch", [1]), msg_execute(), msg_sync()]),
        (0, [msg_describe("S", "nosuch"), msg_sync()]),
        (0, [msg_execute("nosuchportal"), msg_sync()]),
        (0, [msg_close("S", "nosuch"), msg_sync()]),     # not an error in PostgreSQL
        # another client's statement is not visible
        (1, [msg_parse("theirs", "select 1"), msg_sync()]),
        (0, [msg_bind("theirs"), msg_execute(), msg_sync()]),
        (0, [msg_query("select 'still fine'")]),
    ]
    got = compare_with_postgres(start(sluice, mode, clients=2), pg, steps, clients=2)
    e = got[0][1][0]
    assert e[:3] == ("Error", "26000", 'prepared statement "nosuch" does not exist'), e
    assert got[3][1] == [("CloseComplete",), ("ReadyForQuery", "I")]
    assert got[5][1][0][1] == "26000"


def _with_neighbour(sluice, pg, mode, steps):
    """Run client 0's steps with a second client on the same server that
    uses the same statement names for other texts between them. Returns
    client 0's answers, one list per step."""
    names = sorted({m[1].split(b"\0")[0].decode() for _, msgs in steps
                    for m in msgs if m[0] == b"P"} - {""})
    # the neighbour also prepares client 0's texts (under other names), so the
    # server already has them when client 0 parses them
    texts = [m for _, msgs in steps for m in msgs if m[0] == b"P"]
    same = [(b"P", b"nb_" + body) for _, body in texts if not body.startswith(b"\0")]
    mixed = [(1, [msg_parse(n, f"select 'neighbour {n}' as nb") for n in names] +
              [msg_sync()])]
    mixed += [(1, [m, msg_sync()]) for m in same]
    want = []
    for k, st in enumerate(steps):
        mixed.append(st)
        n = names[k % len(names)]
        want.append(("DataRow", (f"neighbour {n}",)))
        mixed.append((1, [msg_bind(n), msg_execute(), msg_sync()]))
    got = compare_with_postgres(start(sluice, mode, clients=2), pg, mixed, clients=2)
    assert [ans[1] for c, ans in got[1 + len(same):] if c == 1] == want
    return [(c, ans) for c, ans in got if c == 0]



PIPE_A = "select $1::int + 1 as a"
PIPE_C = "select $1::text || 'c' as c"
PIPE_B = "select 10 / (g - $1::int) as b from generate_series(1, 2) g"


@pytest.mark.parametrize("mode", ALL)
def test_pipeline_error_at_execute(sluice, pg, mode):
    """Division by zero in the middle of Parse/Bind/Execute x3 + Sync: the rest
    is skipped; b (parsed before the error) exists afterwards, c does not."""
    steps = [
        (0, [msg_parse("a", PIPE_A), msg_bind("a", [1]), msg_execute(),
             # the division by zero happens when the row is computed (Execute)
             msg_parse("b", PIPE_B), msg_bind("b", [1]), msg_execute(),
             msg_parse("c", PIPE_C), msg_bind("c", ["x"]), msg_execute(),
             msg_sync()]),
        (0, [msg_bind("a", [5]), msg_execute(), msg_sync()]),
        (0, [msg_bind("b", [0]), msg_execute(), msg_sync()]),
        (0, [msg_bind("c", ["y"]), msg_execute(), msg_sync()]),
        (0, [msg_parse("c", PIPE_C), msg_bind("c", ["z"]), msg_execute(), msg_sync()]),
    ]
    got = _with_neighbour(sluice, pg, mode, steps)
    first = got[0][1]
    assert kinds(first) == ["ParseComplete", "BindComplete", "DataRow", "CommandComplete",
                            "ParseComplete", "BindComplete", "Error", "ReadyForQuery"], first
    assert first[6][1] == "22012"
    assert _single_row(got[1][1]) == ("6",)
    assert [m[1] for m in got[2][1] if m[0] == "DataRow"] == [("10",), ("5",)]
    assert got[3][1][0][:2] == ("Error", "26000")
    assert _single_row(got[4][1]) == ("zc",)


@pytest.mark.parametrize("mode", ALL)
def test_pipeline_error_at_parse(sluice, pg, mode):
    """A syntax error at Parse in the middle: neither it nor the following
    statements exist afterwards; the one before does."""
    steps = [
        (0, [msg_parse("a", PIPE_A), msg_bind("a", [1]), msg_execute(),
             msg_parse("b", "selec 1"), msg_bind("b"), msg_execute(),
             msg_parse("c", PIPE_C), msg_bind("c", ["x"]), msg_execute(),
             msg_sync()]),
        (0, [msg_bind("a", [9]), msg_execute(), msg_sync()]),
        (0, [msg_bind("b"), msg_execute(), msg_sync()]),
        (0, [msg_describe("S", "c"), msg_sync()]),
        (0, [msg_parse("b", "select 'now b' as b"), msg_bind("b"), msg_execute(), msg_sync()]),
    ]
    got = _with_neighbour(sluice, pg, mode, steps)
    first = got[0][1]
    assert kinds(first) == ["ParseComplete", "BindComplete", "DataRow", "CommandComplete",
                            "Error", "ReadyForQuery"], first
    assert first[4][1] == "42601"
    assert _single_row(got[1][1]) == ("10",)
    assert got[2][1][0][:2] == ("Error", "26000")
    assert got[3][1][0][:2] == ("Error", "26000")
    assert _single_row(got[4][1]) == ("now b",)


@pytest.mark.parametrize("mode", ALL)
def test_pipeline_of_several_syncs(sluice, pg, mode):
    """Several Sync-terminated batches sent in one write, with errors in some:
    each error skips only up to its own Sync."""
    batch = [
        msg_parse("p1", "select $1::int * 2 as x", [INT4]), msg_sync(),
        msg_parse("p2", "select 1/0"), msg_bind("p1", [1]), msg_execute(), msg_sync(),
        msg_bind("p2"), msg_execute(), msg_parse("p3", "select 3"), msg_sync(),
        msg_bind("p1", [21]), msg_execute(), msg_bind("p3"), msg_execute(), msg_sync(),
        msg_parse("p3", "select 33"), msg_bind("p1", [2]), msg_execute(),
        msg_parse("p1", "select 0"), msg_bind("p3"), msg_execute(), msg_sync(),
        msg_bind("p1", [4]), msg_execute(), msg_sync(),
    ]
    steps = [(0, batch), (0, [msg_bind("p3"), msg_execute(), msg_bind("p2"), msg_execute(),
                              msg_sync()])]
    got = _with_neighbour(sluice, pg, mode, steps)
    ans = got[0][1]
    assert sum(1 for m in ans if m[0] == "ReadyForQuery") == 6
    assert [m[1] for m in ans if m[0] == "Error"] == ["22012", "26000", "42P05"]
    assert ("DataRow", ("42",)) in ans and ("DataRow", ("8",)) in ans
    assert ("DataRow", ("33",)) not in ans
    assert _single_row(got[1][1][:3]) == ("33",)
    assert got[1][1][3][:2] == ("Error", "22012")


# ---------------------------------------------------------------------------
# 2. Close, DEALLOCATE, DEALLOCATE ALL, DISCARD ALL touch only their client

def _sql(how, text):
    if how == "simple":
        return [msg_query(text)]
    return [msg_parse("", text), msg_bind(""), msg_execute(), msg_sync()]


def _run(name, params=()):
    return [msg_bind(name, params), msg_execute(), msg_sync()]


@pytest.mark.parametrize("how", ["simple", "extended"])
@pytest.mark.parametrize("mode", ALL)
def test_close_and_deallocate_affect_only_own_statements(sluice, pg, mode, how):
    A, B = 0, 1
    same = "select $1::int * 2 as twice"
    steps = [
        (A, [msg_parse("s1", "select 'A:' || $1::text as who"), msg_parse("s2", same),
             msg_parse("s3", same), msg_sync()]),
        (B, [msg_parse("s1", "select 'B:' || $1::text as who"), msg_parse("s2", same),
             msg_parse("s3", same), msg_sync()]),
        # Close (protocol) by A
        (A, [msg_close("S", "s2"), msg_sync()]),
        (A, _run("s2", [1])),
        (B, _run("s2", [2])),
        # SQL DEALLOCATE by A
        (A, _sql(how, "DEALLOCATE s1")),
        (A, _run("s1", ["x"])),
        (B, _run("s1", ["y"])),
        # the same name parsed again with another text
        (A, [msg_parse("s1", "select $1::int + 100 as plus", [INT4]),
             msg_describe("S", "s1"), msg_sync()]),
        (A, _run("s1", [1])),
        (B, _run("s1", ["z"])),
        # DEALLOCATE ALL by B: B's gone, A's still there
        (B, _sql(how, "DEALLOCATE ALL")),
        (B, _run("s3", [3])),
        (A, _run("s3", [3])),
        (A, _run("s1", [2])),
        (B, [msg_parse("s1", "select 'B again' as b"), msg_parse("s4", same),
             msg_sync()]),
        (B, _run("s1")),
    ]
    if how == "simple":  # DISCARD ALL is refused inside an extended-protocol batch
        steps += [
            (A, _sql(how, "DISCARD ALL")),
            (A, _run("s1", [1])),
            (A, _run("s3", [1])),
            (B, _run("s4", [5])),
            (B, _run("s1")),
            (A, [msg_parse("s1", "select 'A new' as a"), msg_bind("s1"), msg_execute(),
                 msg_sync()]),
        ]
    # the long form (last: sluice's word match may pin B for its PREPARE)
    steps += [
        (A, [msg_parse("s4", same), msg_sync()]),
        (B, _sql(how, "DEALLOCATE PREPARE s4")),
        (B, _run("s4", [1])),
    ]
    got = compare_with_postgres(start(sluice, mode, clients=2), pg, steps, clients=2)
    assert got[-1][1][0][:2] == ("Error", "26000")
    err = lambda n: got[n][1][0][:2] == ("Error", "26000")  # noqa: E731
    assert err(3) and err(6) and err(12)
    assert _single_row(got[4][1]) == ("4",)
    assert _single_row(got[7][1]) == ("B:y",)
    assert _single_row(got[9][1]) == ("101",)
    assert _single_row(got[10][1]) == ("B:z",)
    assert _single_row(got[13][1]) == ("6",)
    assert _single_row(got[14][1]) == ("102",)
    assert _single_row(got[16][1]) == ("B again",)
    if how == "simple":
        assert err(18) and err(19)
        assert _single_row(got[20][1]) == ("10",)
        assert _single_row(got[21][1]) == ("B again",)
        assert _single_row(got[22][1]) == ("A new",)


# ---------------------------------------------------------------------------
# more statements than the server-side cache holds

@pytest.mark.parametrize("mode", ALL)
def test_more_statements_than_max_prepared_statements(sluice, pg, mode):
    """With max_prepared_statements=3, two clients sharing one server use 12
    statements each, round after round; all answers stay right."""
    n = 12
    units = []
    for c in (0, 1):
        u = [[(c, [msg_parse(f"q{k}", f"select $1::int * {k + 1} + {c * 1000} as r{k}")
                   for k in range(n)] + [msg_sync()])]]
        for rnd in range(3):
            for k in range(n):
                u.append([(c, [msg_bind(f"q{(k * 5 + rnd) % n}", [rnd + 1]), msg_execute(),
                               msg_sync()])])
        units.append(u)
    s = start(sluice, mode, clients=2, max_prepared_statements=3)
    got = compare_with_postgres(s, pg, interleave(units), clients=2)
    assert sum(1 for _, ans in got for m in ans if m[0] == "DataRow") == 2 * 3 * n


@pytest.mark.sluice_only
def test_server_keeps_at_most_max_prepared_statements(sluice, pg):
    """max_prepared_statements bounds the statements kept on each server
    connection (least recently used closed); the client still has all of its
    statements."""
    s = start(sluice, "transaction", max_prepared_statements=5)
    a = raw_connect(s.host, s.port)
    try:
        n = 20
        ans = exchange(a, [msg_parse(f"m{k}", f"select {k} + $1::int as m") for k in range(n)]
                       + [msg_sync()])
        assert ans == [("ParseComplete",)] * n + [("ReadyForQuery", "I")]
        for rnd in range(2):
            for k in range(n):
                ans = exchange(a, [msg_bind(f"m{k}", [rnd]), msg_execute(), msg_sync()])
                assert _single_row(ans) == (str(k + rnd),)
                if k % 5 == 4:  # pool_size=1: the same server answers this
                    rows, err = a.simple_query("select count(*) from pg_prepared_statements")
                    assert err is None and 1 <= int(rows[0][0]) <= 5, rows
    finally:
        a.terminate()


@pytest.mark.sluice_only
def test_max_prepared_statements_0_passes_names_through(sluice, pg):
    """0 = off: a Parse goes to the server under the client's own name."""
    s = start(sluice, "transaction", max_prepared_statements=0)
    a = raw_connect(s.host, s.port)
    try:
        ans = exchange(a, [msg_parse("s_verbatim", "select $1::int as v"), msg_bind(
            "s_verbatim", [3]), msg_execute(), msg_sync()])
        assert ("DataRow", ("3",)) in ans, ans
        rows, err = a.simple_query("select name from pg_prepared_statements")
        assert err is None and ["s_verbatim"] in rows, rows
    finally:
        a.terminate()


# ---------------------------------------------------------------------------
# 5. real drivers: psycopg and pgbench

PSY_QUERIES = [
    ("select %s::int + %s::int", lambda i, k: (i, k), lambda i, k: (i + k,)),
    ("select %s::text || '-' || %s::text", lambda i, k: (f"t{i}", f"c{k}"),
     lambda i, k: (f"t{i}-c{k}",)),
    ("select count(*) from generate_series(1, %s::int) g where g %% %s::int = 0",
     lambda i, k: (i + 10, k + 1), lambda i, k: ((i + 10) // (k + 1),)),
    ("select %s::int * 3, %s::text, %s::bigint",
     lambda i, k: (i, str(k), i * k), lambda i, k: (i * 3, str(k), i * k)),
    ("select array_length(%s::int[], 1), %s::int",
     lambda i, k: ([1] * (i % 7 + 1), k), lambda i, k: (i % 7 + 1, k)),
]


@pytest.mark.parametrize("style", ["prepare_true", "threshold_0", "pipeline"])
@pytest.mark.parametrize("mode", ALL)
def test_psycopg_many_clients_named_statements(sluice, mode, style):
    """12 psycopg connections over 2 servers, each running five parametrized
    queries as named prepared statements, interleaved in threads."""
    clients, iters = 12, 60
    s = start(sluice, mode, pool=clients if mode == "session" else 2,
              max_client_conn=100)

    def work(k):
        # prepare_threshold=None (the harness default) would disable prepare=True
        kw = {"prepare_threshold": 0 if style == "threshold_0" else 1000}
        prep = True if style == "prepare_true" else None
        done = 0
        with s.connect(**kw) as c:
            for i in range(iters):
                j = (i + k) % len(PSY_QUERIES)      # a different order per client
                q, args, want = PSY_QUERIES[j]
                if style == "pipeline":
                    with c.pipeline():
                        curs = [c.execute(q, args(i, k), prepare=True),
                                c.execute(*PSY_QUERIES[(j + 1) % 5][:1],
                                          PSY_QUERIES[(j + 1) % 5][1](k, i), prepare=True)]
                    rows = [cur.fetchone() for cur in curs]
                    assert rows[0] == want(i, k), (k, i, q, rows)
                    assert rows[1] == PSY_QUERIES[(j + 1) % 5][2](k, i), (k, i, rows)
                elif mode != "statement" and i % 10 == 3:
                    with c.transaction():
                        r1 = c.execute(q, args(i, k), prepare=prep).fetchone()
                        r2 = c.execute(q, args(i + 1, k), prepare=prep).fetchone()
                    assert (r1, r2) == (want(i, k), want(i + 1, k)), (k, i, q)
                else:
                    row = c.execute(q, args(i, k), prepare=prep).fetchone()
                    assert row == want(i, k), (k, i, q, row)
                done += 1
            # psycopg really used named statements on this connection
            assert len(c._prepared._names) > 0
        return done

    ws = [Worker(work, k) for k in range(clients)]
    for w in ws:
        w.start()
    assert [w.get(timeout=45) for w in ws] == [iters] * clients


@pytest.mark.parametrize("mode,pool,extra", [
    pytest.param("transaction", 2, [], marks=[pytest.mark.sluice_only]),
    pytest.param("statement", 2, ["-S"], marks=[pytest.mark.sluice_only]),
    pytest.param("session", 8, [], id="session-check"),
], ids=["transaction", "statement", "session-check"])
def test_pgbench_prepared(sluice, pg, fresh_db, mode, pool, extra):
    r = subprocess.run([PGBENCH, "-i", "-q", "-s", "1", "-h", pg.host, "-p", str(pg.port),
                        "-U", "sluice_test", fresh_db], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=60,
                       env=client_env(PGPASSWORD="test_pw"))
    assert r.returncode == 0, r.stdout
    main = {"pool_mode": mode, "default_pool_size": pool, "reserve_pool_size": 0,
            "max_client_conn": 100}
    s = sluice(main, databases={fresh_db: pg.db_line(fresh_db)})
    # One thread per client: pgbench 15 prepares a client's statements with
    # a blocking call, so a thread that drives several clients stalls on one
    # that waits for a server while its other clients hold both servers in
    # an open transaction (a deadlock inside pgbench, with any pooler).
    try:
        r = s.pgbench("-M", "prepared", "-c", "8", "-j", "8", "-T", "5", "-n", *extra,
                      db=fresh_db, timeout=35)
    except subprocess.TimeoutExpired:
        pytest.fail("pgbench -T 5 still running after 35 s (hung)")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    m = re.search(r"number of transactions actually processed: (\d+)", out)
    assert m and int(m.group(1)) > 0, out[-3000:]
    m = re.search(r"number of failed transactions: (\d+)", out)
    assert m and int(m.group(1)) == 0, out[-3000:]
    assert "error" not in out.lower(), out[-3000:]
    assert pg.backends(fresh_db) <= pool


# ---------------------------------------------------------------------------
# 6. JDBC: PreparedStatement with prepareThreshold=1 (server statements S_1...)

JDBC_JAR = Path("/usr/share/java/postgresql.jar")
JDBC_SRC = Path(__file__).resolve().parent / "jdbc" / "PrepTest.java"


def _ensure_jdbc():
    """Skip (with the reason) unless java, javac and the driver are there;
    installs libpostgresql-jdbc-java with apt-get when it is missing."""
    import shutil
    if not shutil.which("java") or not shutil.which("javac"):
        pytest.skip("java/javac not installed (Debian package default-jdk-headless)")
    if JDBC_JAR.exists():
        return
    if os.geteuid() != 0:
        pytest.skip(f"{JDBC_JAR} missing and not root: apt-get install "
                    "libpostgresql-jdbc-java")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "libpostgresql-jdbc-java"]
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=40, env=env)
        if r.returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=30, env=env)
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, timeout=30, env=env)
    except subprocess.TimeoutExpired:
        pytest.skip("installing libpostgresql-jdbc-java timed out")
    if not JDBC_JAR.exists():
        pytest.skip(f"could not install libpostgresql-jdbc-java:\n{r.stdout[-1500:]}")


def _jdbc_expected(tid, iters):
    """What PrepTest prints for one thread (see PrepTest.java)."""
    out = []
    for i in range(iters):
        for k in range(4):
            q = (k + tid) % 4
            v = {0: str(i * 2), 1: str(i + 1000), 2: f"x{i}-{tid}", 3: str(i - 7)}[q]
            out.append(f"T{tid} {i} Q{q} {v}")
    return out


@pytest.mark.timeout(120)  # may have to apt-get install the driver first
@pytest.mark.parametrize("mode", [
    pytest.param("transaction", marks=[pytest.mark.sluice_only]),
    pytest.param("session", id="session-check"),
], ids=["transaction", "session-check"])
def test_jdbc_prepared_statements(sluice, mode):
    _ensure_jdbc()
    threads, iters = 4, 20
    s = sluice({"pool_mode": mode, "default_pool_size": 2 if mode != "session" else threads,
                "reserve_pool_size": 0, "query_wait_timeout": 30,
                "ignore_startup_parameters": "extra_float_digits"})
    with tempfile.TemporaryDirectory(prefix="sluice-jdbc-") as tmp:
        r = subprocess.run(["javac", "-cp", str(JDBC_JAR), "-d", tmp, str(JDBC_SRC)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stdout
        url = f"jdbc:postgresql://{s.host}:{s.port}/sluicedb"
        r = subprocess.run(["java", "-Xmx256m", "-cp", f"{tmp}:{JDBC_JAR}", "PrepTest", url,
                            "sluice_test", "test_pw", str(threads), str(iters),
                            "1" if mode != "statement" else "0"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=60)
    assert r.returncode == 0, f"stdout:\n{r.stdout[-2000:]}\nstderr:\n{r.stderr[-3000:]}"
    lines = r.stdout.splitlines()
    for tid in range(threads):
        got = [ln for ln in lines if ln.startswith(f"T{tid} ")]
        assert got == _jdbc_expected(tid, iters), f"thread {tid}:\n" + "\n".join(got[:20])
        # the driver did switch to named server-side statements
        assert f"SERVERPREPARE {tid} true" in lines, r.stdout[-2000:]
        assert f"TX {tid} ok" in lines, r.stdout[-2000:]
    assert "DONE" in lines


def test_large_bind_streams_through_transaction_pool(sluice):
    """A Bind of the unnamed statement is not held whole for tracking: a
    3 MB parameter passes a transaction pool (statements are tracked
    there), where only named statements need their Bind rewritten."""
    s = sluice({"pool_mode": "transaction"})
    with s.connect() as c:
        v = "x" * 3_000_000
        assert c.execute("select length(%s::text)", (v,)).fetchone()[0] == 3_000_000
        assert c.execute("select length(%s::text), %s::int", (v, 7)).fetchone() == (3_000_000, 7)
        assert c.execute("select 1").fetchone()[0] == 1
