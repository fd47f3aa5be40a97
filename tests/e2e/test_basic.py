"""Basic protocol traffic through sluice: simple and extended queries, errors,
notices, parameter status, SSL negotiation, big results, LISTEN/NOTIFY."""

import hashlib
import time

import psycopg
import psycopg.errors
import pytest


def test_select_1_psycopg(sluice):
    s = sluice()
    with s.connect() as c:
        assert c.execute("select 1").fetchone() == (1,)
        assert c.execute("select current_user, current_database()").fetchone() == \
            ("sluice_test", "sluicedb")


def test_select_1_psql(sluice):
    s = sluice()
    r = s.psql("-At", "-c", "select 1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1"


def test_multi_statement_query_string(sluice):
    s = sluice()
    with s.connect() as c:
        cur = c.cursor()
        cur.execute("select 1 as a; select 'two' as b, 3 as c; select 4")
        assert cur.fetchall() == [(1,)]
        assert cur.nextset()
        assert cur.fetchall() == [("two", 3)]
        assert cur.nextset()
        assert cur.fetchall() == [(4,)]
        assert not cur.nextset()
    r = s.psql("-At", "-c", "select 10; select 20; select 30")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["10", "20", "30"]


def test_error_keeps_connection_usable(sluice):
    s = sluice()
    with s.connect() as c:
        with pytest.raises(psycopg.errors.DivisionByZero) as ei:
            c.execute("select 1/0")
        assert ei.value.sqlstate == "22012"
        assert "division by zero" in str(ei.value)
        assert c.execute("select 2").fetchone() == (2,)
        # error in the middle of a multi-statement string: earlier parts ran
        with pytest.raises(psycopg.errors.UndefinedTable):
            c.execute("select 1; select * from no_such_table_e2e; select 3")
        assert c.execute("select 'still ok'").fetchone() == ("still ok",)
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_error_psql_exit_code(sluice):
    s = sluice()
    r = s.psql("-v", "ON_ERROR_STOP=1", "-c", "select 1/0")
    assert r.returncode != 0
    assert "division by zero" in r.stderr


def test_notice_delivered(sluice):
    s = sluice()
    got = []
    with s.connect() as c:
        c.add_notice_handler(lambda d: got.append((d.severity_nonlocalized, d.message_primary)))
        c.execute("DO $$ BEGIN RAISE NOTICE 'hi'; END $$")
        assert ("NOTICE", "hi") in got
        assert c.execute("select 1").fetchone() == (1,)


def test_parameter_status(sluice, pg):
    s = sluice()
    with pg.connect() as direct:
        want = direct.info.parameter_status("server_version")
    with s.connect() as c:
        assert c.info.parameter_status("server_version") == want
        assert c.info.parameter_status("client_encoding") == "UTF8"
        assert c.info.parameter_status("integer_datetimes") == "on"
        # a SET of a reported parameter produces a ParameterStatus message
        c.execute("SET application_name = 'e2e_param_status'")
        assert c.info.parameter_status("application_name") == "e2e_param_status"


def test_extended_protocol_parameters(sluice):
    s = sluice()
    with s.connect() as c:
        assert c.execute("select %s::int + %s::int", (40, 2)).fetchone() == (42,)
        assert c.execute("select %s::text || %s::text", ("ab", "cd")).fetchone() == ("abcd",)
        assert c.execute("select %s::int", (None,)).fetchone() == (None,)
        # binary parameters and results
        cur = c.cursor(binary=True)
        assert cur.execute("select %b::bigint * 2, %b::bytea",
                           (2**40, b"\x00\x01\xff")).fetchone() == (2**41, b"\x00\x01\xff")
        # an error in the extended protocol, then recovery
        with pytest.raises(psycopg.errors.DivisionByZero):
            c.execute("select %s::int / 0", (1,))
        # a statement with many rows through Bind/Execute
        rows = c.execute("select g from generate_series(1, %s) g", (1000,)).fetchall()
        assert [r[0] for r in rows] == list(range(1, 1001))
        # executemany pipelines several Bind/Execute
        tbl = "e2e_ext_" + hex(int(time.time() * 1e6))[2:]
        c.execute(f"create temp table {tbl} (a int, b text)")
        c.cursor().executemany(f"insert into {tbl} values (%s, %s)",
                               [(i, str(i)) for i in range(50)])
        assert c.execute(f"select count(*), sum(a) from {tbl}").fetchone() == (50, 1225)


def test_unknown_database(sluice):
    s = sluice()
    with pytest.raises(psycopg.OperationalError) as ei:
        psycopg.connect(s.dsn(db="no_such_db_e2e"), connect_timeout=10)
    assert "no_such_db_e2e" in str(ei.value)
    # sluice is still fine afterwards
    with s.connect() as c:
        assert c.execute("select 1").fetchone() == (1,)


def test_unknown_database_raw(sluice, raw, helpers):
    s = sluice()
    c = raw(s.host, s.port)
    with pytest.raises(helpers.PgError) as ei:
        c.login("sluice_test", "no_such_db_e2e", "test_pw")
    assert ei.value.severity == "FATAL"
    assert ei.value.sqlstate  # some SQLSTATE is given
    assert "no_such_db_e2e" in ei.value.message


def test_ssl_request_answered_n(sluice, raw):
    s = sluice()
    c = raw(s.host, s.port)
    assert c.ssl_request() == b"N"
    # after 'N' the client continues in cleartext on the same connection
    c.login("sluice_test", "sluicedb", "test_pw")
    assert c.simple_query("select 7") == ([["7"]], None)
    c.terminate()


def test_ssl_modes_psql(sluice):
    s = sluice()
    r = s.psql("-At", "-c", "select 'prefer-ok'", conn_extra="sslmode=prefer")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "prefer-ok"
    r = s.psql("-At", "-c", "select 1", conn_extra="sslmode=require")
    assert r.returncode != 0
    assert "SSL" in r.stderr and "not support" in r.stderr, r.stderr


@pytest.mark.timeout(120)
def test_large_result_streams(sluice):
    s = sluice()
    n = 100000
    expect = hashlib.sha256()
    for i in range(1, n + 1):
        expect.update(f"{i}:{chr(65 + i % 26) * 1000}\n".encode())
    got = hashlib.sha256()
    count = 0
    with s.connect() as c:
        cur = c.cursor()
        for i, text in cur.stream(f"select i, repeat(chr(65 + mod(i, 26)), 1000) "
                                  f"from generate_series(1, {n}) i"):
            got.update(f"{i}:{text}\n".encode())
            count += 1
        assert count == n
        assert got.hexdigest() == expect.hexdigest()
        # and the plain (non-streaming) simple query of the brief
        rows = c.execute("select repeat('x', 1000) from generate_series(1, 100000)").fetchall()
        assert len(rows) == 100000
        assert all(r[0] == "x" * 1000 for r in rows)
        assert c.execute("select 'after'").fetchone() == ("after",)


def test_listen_notify_session_mode(sluice):
    s = sluice({"pool_mode": "session"})
    got = []
    with s.connect() as listener, s.connect() as sender:
        listener.add_notify_handler(lambda n: got.append((n.channel, n.payload)))
        listener.execute("LISTEN e2e_chan")
        sender.execute("NOTIFY e2e_chan, 'payload-1'")
        sender.execute("select pg_notify('e2e_chan', 'payload-2')")
        deadline = time.monotonic() + 5
        while len(got) < 2 and time.monotonic() < deadline:
            listener.execute("select 1")
            time.sleep(0.05)
        assert got == [("e2e_chan", "payload-1"), ("e2e_chan", "payload-2")]
