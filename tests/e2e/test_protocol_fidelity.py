"""Protocol fidelity: sequences that hostile clients and real drivers send,
answered through the pooler exactly as PostgreSQL answers them directly.

PostgreSQL is the oracle: where it can be asked, each test runs the same
bytes against it first and requires the same answers from sluice.
"""

import os
import socket
import struct
import time
import urllib.request

import pytest

from conftest import free_port, is_pgbouncer_compat, parse_error_fields, unique

COMPAT = is_pgbouncer_compat()
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104


def negotiate(host, port, codes):
    """Send each negotiation request in turn; returns what came back for
    each: a single answer byte, ('E', sqlstate, message), or 'closed'."""
    out = []
    with socket.create_connection((host, port), timeout=5) as so:
        for code in codes:
            so.sendall(struct.pack("!II", 8, code))
            b = so.recv(1)
            if not b:
                out.append("closed")
                break
            if b != b"E":
                out.append(b.decode())
                continue
            data = b""
            while len(data) < 4 or len(data) < struct.unpack("!I", data[:4])[0]:
                chunk = so.recv(4096)
                if not chunk:
                    break
                data += chunk
            f = parse_error_fields(data[4:])
            out.append(("E", f.get("C"), f.get("M")))
            break
    return out


@pytest.mark.sluice_only
@pytest.mark.parametrize("codes", [
    [SSL_REQUEST, SSL_REQUEST],
    [GSSENC_REQUEST, GSSENC_REQUEST],
    [SSL_REQUEST, GSSENC_REQUEST, SSL_REQUEST],
    [GSSENC_REQUEST, SSL_REQUEST, GSSENC_REQUEST],
], ids=["ssl-ssl", "gss-gss", "ssl-gss-ssl", "gss-ssl-gss"])
def test_encryption_requests_follow_postgres_rule(sluice, pg, codes):
    """With TLS off, one SSLRequest and one GSSENCRequest are each answered
    'N' (in either order); a repeated one is read, as PostgreSQL reads it,
    as a startup packet of protocol 1234.567x and refused with FATAL 0A000."""
    s = sluice({})
    got = negotiate(s.host, s.port, codes)
    repeated = codes[-1]
    want = ["N"] * (len(codes) - 1) + [
        ("E", "0A000", f"unsupported frontend protocol 1234.{repeated & 0xffff}: "
                       "server supports 3.0 to 3.0")]
    assert got == want
    if codes == [SSL_REQUEST, SSL_REQUEST]:
        # PostgreSQL itself (no TLS configured on the test cluster) agrees.
        assert negotiate(pg.host, pg.port, codes) == want


# ---------------------------------------------------------------------------
# The extended protocol after an error, statement names, the unnamed
# statement: each script runs on direct connections to PostgreSQL, then on
# as many connections through one shared server; the transcripts must be
# equal. A step (client, messages[, count]) is one pipeline; with a count
# the step ends after that many answers (a Flush), so the next step is
# sent only once the server's answer, an error say, is back.

from conftest import (diff_transcripts, msg_bind, msg_close, msg_describe,  # noqa: E402
                      msg_execute, msg_flush, msg_parse, msg_query, msg_sync,
                      raw_connect, run_steps)

POOLED = ["transaction", "statement"]


def shared_server(sluice, mode, **extra):
    main = {"pool_mode": mode, "default_pool_size": 1, "reserve_pool_size": 0,
            "query_wait_timeout": 20}
    main.update(extra)
    return sluice(main)


def transcript(target, steps, clients):
    conns = [raw_connect(target.host, target.port) for _ in range(clients)]
    try:
        return run_steps(conns, steps)
    finally:
        for c in conns:
            c.terminate()


def same_as_postgres(s, pg, steps, clients=1):
    want = transcript(pg, steps, clients)
    got = transcript(s, steps, clients)
    d = diff_transcripts(got, want)
    assert not d, d
    for _, answers in got:
        for m in answers:
            assert "sluice_" not in repr(m), f"internal statement name leaked: {m}"
    return got


KERNEL_PATH = "bpf_bypass=on" in os.environ.get("SLUICE_E2E_INI_EXTRA", "").replace(" ", "")


@pytest.mark.sluice_only
@pytest.mark.skipif(KERNEL_PATH, reason="bpf_bypass refuses a named statement in a batch the kernel "
                    "began (docs/bypass.md)")
@pytest.mark.parametrize("mode", POOLED)
def test_messages_after_a_returned_error_are_skipped(sluice, pg, mode):
    """Once the server's error is back, PostgreSQL ignores everything up to
    Sync: sluice must not answer a Bind of an unknown statement, or a Parse
    of a text the server already has, in the meantime."""
    s = shared_server(sluice, mode)
    steps = [
        (0, [msg_parse("known", "select 1"), msg_sync()]),
        # 1/0 is folded when the plan is made: the Bind fails
        (0, [msg_parse("", "select 1/0"), msg_bind(""), msg_execute(), msg_flush()], 2),
        (0, [msg_bind("nosuch"), msg_parse("again", "select 1"), msg_describe("S", "nosuch"),
             msg_bind("known"), msg_execute(), msg_sync()]),
        (0, [msg_bind("again"), msg_execute(), msg_sync()]),   # 'again' was never made
        (0, [msg_bind("known"), msg_execute(), msg_sync()]),
    ]
    got = same_as_postgres(s, pg, steps)
    assert [m[0] for m in got[2][1]] == ["ReadyForQuery"]


@pytest.mark.sluice_only
@pytest.mark.parametrize("mode", POOLED)
def test_query_inside_a_failed_batch_is_skipped(sluice, pg, mode):
    """Execute of a portal that does not exist, then Query, Close, Sync,
    Sync: PostgreSQL skips the Query and answers E, Z, Z. The server must
    not stay busy: with one server, a second client is served after."""
    s = shared_server(sluice, mode)
    steps = [
        (0, [msg_execute(""), msg_query("select 1"), msg_close("S", "x"), msg_sync(), msg_sync()], 3),
        (1, [msg_query("select 2")]),
        # A Query inside the failed batch, then Bind of an unknown name,
        # Close and Sync in the next: E 34000, Z, E 26000, Z.
        (0, [msg_execute(""), msg_query("select 1"), msg_sync(),
             msg_bind("nosuch"), msg_close("S", "x"), msg_sync()], 4),
        (1, [msg_query("select 3")]),
    ]
    got = same_as_postgres(s, pg, steps, clients=2)
    assert [m[0] for m in got[0][1]] == ["Error", "ReadyForQuery", "ReadyForQuery"]


@pytest.mark.sluice_only
@pytest.mark.parametrize("mode", ["transaction"])
def test_deallocate_in_an_aborted_transaction(sluice, pg, mode):
    """DEALLOCATE inside an aborted transaction gets 25P02 and the
    statement is still there after ROLLBACK, as on PostgreSQL."""
    s = shared_server(sluice, mode)
    steps = [
        (0, [msg_parse("s1", "select 7 as seven"), msg_sync()]),
        (0, [msg_query("BEGIN")]),
        (0, [msg_query("select 1/0")]),
        (0, [msg_query("DEALLOCATE s1")]),
        (0, [msg_query("ROLLBACK")]),
        (0, [msg_bind("s1"), msg_execute(), msg_sync()]),
        (0, [msg_query("DEALLOCATE s1")]),
        (0, [msg_bind("s1"), msg_execute(), msg_sync()]),
        # pipelined behind a failing query: the status is not known when
        # the DEALLOCATE is read
        (0, [msg_parse("s2", "select 2"), msg_sync()]),
        (0, [msg_query("BEGIN; select 1/0"), msg_query("DEALLOCATE s2"), msg_query("ROLLBACK"),
             msg_bind("s2"), msg_execute(), msg_sync()]),
    ]
    same_as_postgres(s, pg, steps)


@pytest.mark.sluice_only
@pytest.mark.parametrize("mode", ["transaction"])  # statement mode refuses BEGIN
def test_describe_after_a_failed_discard_all(sluice, pg, mode):
    """DISCARD ALL inside a transaction fails and aborts it; the client's
    statements are still there, and Describe answers as on PostgreSQL
    (sluice must not prepare again in the aborted transaction). Found by
    the protocol fuzzer (PROTOFUZZ_SEED=2993295814)."""
    s = shared_server(sluice, mode, max_prepared_statements=2)
    steps = [
        (0, [msg_parse("s1", "BEGIN"), msg_bind("s1"), msg_execute(), msg_query("DISCARD ALL"),
             msg_describe("S", "s1"), msg_sync()], 2),
        (0, [msg_query("ROLLBACK")]),
        (0, [msg_query("DISCARD ALL")]),  # outside a transaction it runs: s1 is gone
        (0, [msg_describe("S", "s1"), msg_sync()]),
    ]
    same_as_postgres(s, pg, steps)


@pytest.mark.sluice_only
@pytest.mark.parametrize("mode", ["transaction"])
def test_duplicate_name_errors_come_in_postgres_order(sluice, pg, mode):
    """A Parse of a taken name gets PostgreSQL's error in PostgreSQL's order:
    a syntax error (42601) or an unknown table (42P01) first, inside an
    aborted transaction 25P02, and only then 42P05."""
    s = shared_server(sluice, mode)
    steps = [
        (0, [msg_parse("s1", "select 1"), msg_sync()]),
        (0, [msg_parse("s1", "selec 1"), msg_sync()]),
        (0, [msg_parse("s1", "select * from no_such_table"), msg_sync()]),
        (0, [msg_parse("s1", "select 2"), msg_sync()]),
        (0, [msg_query("BEGIN")]),
        (0, [msg_query("select 1/0")]),
        (0, [msg_parse("s1", "select 3"), msg_sync()]),
        (0, [msg_parse("s1", "selec 3"), msg_sync()]),
        (0, [msg_parse("s9", "select 9"), msg_sync()]),
        (0, [msg_query("ROLLBACK")]),
        (0, [msg_bind("s1"), msg_execute(), msg_bind("s9"), msg_execute(), msg_sync()]),
    ]
    got = same_as_postgres(s, pg, steps)
    codes = [m[1] for _, answers in got for m in answers if m[0] == "Error"]
    assert codes[:3] == ["42601", "42P01", "42P05"], codes


@pytest.mark.sluice_only
@pytest.mark.parametrize("mode", POOLED)
def test_unnamed_statement_belongs_to_its_client(sluice, pg, mode):
    """The unnamed statement outlives a transaction on PostgreSQL. Through a
    shared server a client's Bind of it without a Parse gets its own
    statement (prepared again where needed), or PostgreSQL's 26000 when it
    has none: never another client's."""
    s = shared_server(sluice, mode)
    steps = [
        (0, [msg_parse("", "select 'zero' as who"), msg_bind(""), msg_execute(), msg_sync()]),
        (1, [msg_bind(""), msg_execute(), msg_sync()]),          # 26000: it has none
        (1, [msg_parse("", "select 'one' as who"), msg_sync()]),
        (0, [msg_bind(""), msg_execute(), msg_sync()]),          # 'zero' again
        (1, [msg_describe("S", ""), msg_bind(""), msg_execute(), msg_sync()]),  # 'one'
        (0, [msg_query("select 1")]),                             # drops its unnamed statement
        (0, [msg_bind(""), msg_execute(), msg_sync()]),          # 26000
        (1, [msg_bind(""), msg_execute(), msg_sync()]),          # 'one'
        (0, [msg_parse("", "select 1/0"), msg_sync()]),          # fails at Bind/Execute only
        (0, [msg_parse("", "selec"), msg_sync()]),                # a failed Parse drops it
        (0, [msg_bind(""), msg_execute(), msg_sync()]),          # 26000
    ]
    got = same_as_postgres(s, pg, steps, clients=2)
    rows = [m[1][0] for _, answers in got for m in answers if m[0] == "DataRow"]
    assert rows == ["zero", "zero", "one", "1", "one"], rows


@pytest.mark.sluice_only
def test_internal_statement_names_are_out_of_reach(sluice, pg):
    """One client cannot DEALLOCATE, EXECUTE or see sluice's names for
    another client's statements, and DEALLOCATE ALL / DISCARD ALL act on
    its own statements only; errors name the client's statement."""
    s = shared_server(sluice, "transaction")
    a = raw_connect(s.host, s.port)
    b = raw_connect(s.host, s.port)
    try:
        ans = run_steps([a], [(0, [msg_parse("s1", "select $1::int + 1 as v"), msg_bind("s1", [41]),
                                   msg_execute(), msg_sync()])])
        assert ("DataRow", ("42",)) in ans[0][1]
        for sql in ("DEALLOCATE sluice_1", "EXECUTE sluice_1(1)", "DEALLOCATE PREPARE sluice_1"):
            rows, err = b.simple_query(sql)
            assert err and err["C"] == "26000", (sql, err)
            assert err["M"] == 'prepared statement "sluice_1" does not exist', err
        for sql in ("DEALLOCATE ALL", "DISCARD ALL"):
            rows, err = b.simple_query(sql)
            assert err is None, err
        # a's statement still works; a Bind with the wrong count names it "s1"
        ans = run_steps([a], [(0, [msg_bind("s1", [1]), msg_execute(), msg_sync()]),
                              (0, [msg_bind("s1", [1, 2]), msg_execute(), msg_sync()])])
        assert ("DataRow", ("2",)) in ans[0][1]
        err = [m for m in ans[1][1] if m[0] == "Error"][0]
        assert err[1] == "08P01" and '"s1"' in err[2] and "sluice_" not in err[2], err
    finally:
        a.terminate()
        b.terminate()


@pytest.mark.sluice_only
@pytest.mark.parametrize("batch", ["synced", "open"])
def test_statement_deallocated_behind_sluice_is_prepared_again(sluice, pg, batch):
    """Another client deallocates sluice's statements through a function
    (dynamic SQL sluice cannot see). The next Bind of them finds the
    statement gone; nothing of that batch had run, so sluice prepares it
    again and sends the batch once more: the client gets its answer."""
    s = shared_server(sluice, "transaction")
    fn = unique("dealloc_all")
    pg.sql(f"CREATE FUNCTION {fn}() RETURNS int LANGUAGE plpgsql AS "
           f"$$ BEGIN EXECUTE 'DEALLOCATE ALL'; RETURN 1; END $$", dbname="sluicedb")
    pg.sql(f"GRANT EXECUTE ON FUNCTION {fn}() TO PUBLIC", dbname="sluicedb")
    a = raw_connect(s.host, s.port)
    b = raw_connect(s.host, s.port)
    try:
        first = run_steps([a], [(0, [msg_parse("s1", "select $1::int * 2 as v"),
                                     msg_parse("s2", "select $1::text as t"),
                                     msg_bind("s1", [1]), msg_execute(), msg_sync()])])
        assert ("DataRow", ("2",)) in first[0][1]
        rows, err = b.simple_query(f"select {fn}()")
        assert err is None and rows == [["1"]], err
        if batch == "synced":
            steps = [(0, [msg_bind("s1", [21]), msg_execute(), msg_bind("s2", ["x"]), msg_execute(),
                          msg_sync()])]
        else:
            steps = [(0, [msg_bind("s1", [21]), msg_execute(), msg_flush()], 3),
                     (0, [msg_bind("s2", ["x"]), msg_execute(), msg_sync()])]
        ans = [m for _, answers in run_steps([a], steps) for m in answers]
        assert [m for m in ans if m[0] == "Error"] == [], ans
        assert ("DataRow", ("42",)) in ans and ("DataRow", ("x",)) in ans, ans
    finally:
        a.terminate()
        b.terminate()
        pg.sql(f"DROP FUNCTION IF EXISTS {fn}()", dbname="sluicedb")


def metric(port, name):
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
               if line.startswith(name + "{"))


@pytest.mark.sluice_only
def test_prepared_statements_per_client_are_bounded(sluice, pg):
    """A client's prepared statements are bounded by count and by bytes:
    beyond them a Parse gets 53400 (and the batch is skipped as for any
    error); closing statements makes room again. SHOW CLIENTS and /metrics
    show what clients hold."""
    mport = free_port()
    s = shared_server(sluice, "transaction", max_client_prepared_statements=20,
                      max_client_prepared_bytes=64 * 1024, metrics_port=mport,
                      admin_users="sluice_test")
    a = raw_connect(s.host, s.port)
    try:
        ans = run_steps([a], [(0, [msg_parse(f"p{i}", f"select {i}") for i in range(20)] + [msg_sync()])])
        assert [m[0] for m in ans[0][1]] == ["ParseComplete"] * 20 + ["ReadyForQuery"]
        admin = raw_connect(s.host, s.port, database="sluice")
        try:
            rows, err = admin.simple_query("SHOW CLIENTS")
            assert err is None, err
            assert sorted(int(r[-2]) for r in rows) == [0, 20], rows  # prepared_statements
        finally:
            admin.terminate()
        assert metric(mport, "sluice_pool_client_prepared_statements") == 20
        assert metric(mport, "sluice_pool_client_prepared_bytes") > 20 * len("select 10")
        ans = run_steps([a], [(0, [msg_parse("p20", "select 20"), msg_bind("p0"), msg_execute(),
                                   msg_sync()])])
        assert [m[0] for m in ans[0][1]] == ["Error", "ReadyForQuery"], ans
        assert ans[0][1][0][1] == "53400" and "max_client_prepared_statements" in ans[0][1][0][2]
        ans = run_steps([a], [(0, [msg_close("S", "p0"), msg_parse("p20", "select 20"),
                                   msg_bind("p20"), msg_execute(), msg_sync()])])
        assert ("DataRow", ("20",)) in ans[0][1], ans
        # bytes: one statement of 40 KB fits in 64 KiB, a second does not
        big = "select '" + "x" * 40000 + "'"
        ans = run_steps([a], [(0, [msg_close("S", f"p{i}") for i in range(1, 21)] + [msg_sync()]),
                              (0, [msg_parse("big1", big), msg_sync()]),
                              (0, [msg_parse("big2", big + " as y"), msg_sync()])])
        assert ans[1][1][0] == ("ParseComplete",), ans[1]
        assert ans[2][1][0][1] == "53400", ans[2]
    finally:
        a.terminate()
    deadline = time.monotonic() + 5
    while metric(mport, "sluice_pool_client_prepared_statements") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert metric(mport, "sluice_pool_client_prepared_statements") == 0
    assert metric(mport, "sluice_pool_client_prepared_bytes") == 0


@pytest.mark.sluice_only
@pytest.mark.parametrize("mode", POOLED)
def test_named_parse_after_an_aborted_pipeline(sluice, pg, mode):
    """A pipeline aborted by an error, its Sync, then a named Parse (with
    Flush, or with Sync): each is answered as PostgreSQL answers it."""
    s = shared_server(sluice, mode)
    steps = [
        (0, [msg_parse("", "select 1/0"), msg_bind(""), msg_execute(), msg_parse("a1", "select 2"),
             msg_bind("a1"), msg_execute(), msg_sync()]),
        (0, [msg_parse("n1", "select 1"), msg_flush()], 1),
        (0, [msg_sync()]),
        (0, [msg_parse("", "select 1/0"), msg_bind(""), msg_execute(), msg_flush()], 2),
        (0, [msg_sync(), msg_parse("n2", "select 1"), msg_flush()], 2),
        (0, [msg_bind("n2"), msg_execute(), msg_sync()]),
        (0, [msg_parse("n1", "select 1"), msg_sync()]),  # already there: 42P05
    ]
    same_as_postgres(s, pg, steps)


@pytest.mark.parametrize("mode", POOLED)
def test_libpq_pipeline_named_parse_after_abort(sluice, mode):
    """libpq pipeline mode: an aborted pipeline, then a named statement
    prepared and executed in later pipelines."""
    import psycopg
    from psycopg import pq
    s = shared_server(sluice, mode)
    with psycopg.connect(s.dsn(), autocommit=True) as conn:
        p = conn.pgconn
        p.enter_pipeline_mode()
        p.send_query_params(b"select 1/0", [])
        p.send_query_params(b"select 2", [])
        p.pipeline_sync()
        p.send_prepare(b"named1", b"select 3")
        p.pipeline_sync()
        p.send_query_prepared(b"named1", [])
        p.pipeline_sync()
        p.flush()
        got = []
        for _ in range(11):
            r = p.get_result()
            got.append(None if r is None else pq.ExecStatus(r.status).name)
        p.exit_pipeline_mode()
        assert got == ["FATAL_ERROR", None, "PIPELINE_ABORTED", None, "PIPELINE_SYNC",
                       "COMMAND_OK", None, "PIPELINE_SYNC", "TUPLES_OK", None, "PIPELINE_SYNC"]
        assert conn.execute("select 4").fetchone() == (4,)
