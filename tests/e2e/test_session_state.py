"""Session settings in transaction and statement mode: a client's SET,
RESET, RESET ALL, DISCARD ALL and set_config(..., false), of any setting,
follow that client to whichever server it borrows (committed with their
transaction, undone with its rollback), and never reach another client of
the same server. The clients here share one server (default_pool_size = 1),
so every check of another client runs on the very session the first one
used. Each behaviour is also checked against PostgreSQL itself: a direct
connection must answer the same.
"""

import pytest

from conftest import (exchange, msg_bind, msg_execute, msg_parse, msg_sync, raw_connect,
                      unique)

MODES = ["transaction", "statement"]


def start(sluice, mode="transaction", **extra):
    main = {"pool_mode": mode, "default_pool_size": 1, "reserve_pool_size": 0,
            "query_wait_timeout": 10}
    main.update(extra)
    return sluice(main)


def run(conn, sql, proto="simple"):
    """Rows of one statement (simple Query, or unnamed Parse/Bind/Execute/Sync
    as JDBC sends everything); fails on an error."""
    if proto == "simple":
        rows, err = conn.simple_query(sql)
        assert err is None, f"{sql}: {err}"
        return rows
    ans = exchange(conn, [msg_parse("", sql), msg_bind(""), msg_execute(), msg_sync()])
    errs = [m for m in ans if m[0] == "Error"]
    assert not errs, f"{sql}: {errs}"
    return [list(m[1]) for m in ans if m[0] == "DataRow"]


def show(conn, name):
    return run(conn, f"select current_setting('{name}', true)")[0][0]


SETTINGS = ["search_path", "work_mem", "statement_timeout", "app.tenant"]


def snapshot(conn):
    return [show(conn, n) for n in SETTINGS]


@pytest.mark.sluice_only
@pytest.mark.parametrize("proto", ["simple", "extended"])
@pytest.mark.parametrize("mode", MODES)
def test_set_follows_its_client_and_stays_with_it(sluice, pg, mode, proto):
    s = start(sluice, mode)
    a = raw_connect(s.host, s.port)
    b = raw_connect(s.host, s.port)
    try:
        defaults = snapshot(b)
        run(a, "SET search_path TO pg_catalog, public", proto)
        run(a, "set work_mem = '7MB'", proto)
        run(a, "SET SESSION statement_timeout TO 12345", proto)
        run(a, "select set_config('app.tenant', 'acme', false)", proto)
        want = ["pg_catalog, public", "7MB", "12345ms", "acme"]
        assert snapshot(a) == want
        # b, on the same server in between, sees none of it
        assert snapshot(b)[:3] == defaults[:3]
        assert snapshot(b)[3] in ("", None)  # a placeholder may stay (docs)
        assert snapshot(a) == want
        run(a, "RESET work_mem", proto)
        assert show(a, "work_mem") == defaults[1]
        assert snapshot(b)[:3] == defaults[:3]
        run(a, "RESET ALL", proto)
        assert snapshot(a)[:3] == defaults[:3]
    finally:
        a.terminate()
        b.terminate()
    # PostgreSQL's own answers for the same statements
    d = raw_connect(pg.host, pg.port)
    try:
        run(d, "SET search_path TO pg_catalog, public")
        run(d, "set work_mem = '7MB'")
        run(d, "SET SESSION statement_timeout TO 12345")
        run(d, "select set_config('app.tenant', 'acme', false)")
        assert snapshot(d) == want
    finally:
        d.terminate()


@pytest.mark.sluice_only
def test_set_is_transactional(sluice):
    """SET in a transaction that rolls back, SET LOCAL and
    set_config(..., true) do not stay; SET in a committed one does."""
    s = start(sluice)
    a = raw_connect(s.host, s.port)
    b = raw_connect(s.host, s.port)
    try:
        default = show(b, "work_mem")
        for sql in ("BEGIN", "SET work_mem = '3MB'", "ROLLBACK"):
            run(a, sql)
        assert show(a, "work_mem") == default
        for sql in ("BEGIN", "SET work_mem = '3MB'", "select 1/0"):
            if sql.startswith("select"):
                assert a.simple_query(sql)[1]["C"] == "22012"
            else:
                run(a, sql)
        run(a, "COMMIT")  # of an aborted transaction: a rollback
        assert show(a, "work_mem") == default
        for sql in ("BEGIN", "SET LOCAL work_mem = '3MB'",
                    "select set_config('statement_timeout', '999', true)", "COMMIT"):
            run(a, sql)
        assert show(a, "work_mem") == default and show(a, "statement_timeout") == "0"
        for sql in ("BEGIN", "SET work_mem = '5MB'", "COMMIT"):
            run(a, sql)
        assert show(a, "work_mem") == "5MB"
        assert show(b, "work_mem") == default
        # several statements in one query: one implicit transaction
        assert a.simple_query("SET work_mem = '6MB'; select 1/0")[1]["C"] == "22012"
        assert show(a, "work_mem") == "5MB"
        run(a, "SET work_mem = '6MB'; SET statement_timeout = '2s'")
        assert (show(a, "work_mem"), show(a, "statement_timeout")) == ("6MB", "2s")
        assert show(b, "statement_timeout") == "0"
    finally:
        a.terminate()
        b.terminate()


@pytest.mark.sluice_only
def test_discard_all_resets_only_its_client(sluice):
    s = start(sluice)
    a = raw_connect(s.host, s.port)
    b = raw_connect(s.host, s.port)
    try:
        run(a, "SET work_mem = '9MB'")
        run(b, "SET statement_timeout = '4s'")
        run(a, "DISCARD ALL")
        assert show(a, "work_mem") != "9MB"
        assert show(b, "statement_timeout") == "4s"
        assert show(a, "statement_timeout") == "0"
    finally:
        a.terminate()
        b.terminate()


@pytest.mark.sluice_only
def test_set_role_does_not_reach_another_client(sluice, pg):
    """SET ROLE is a setting like the others: the client keeps it, the next
    client of that server runs as itself."""
    role = unique("role")
    pg.sql(f"CREATE ROLE {role} NOLOGIN")
    pg.sql(f"GRANT {role} TO sluice_test")
    s = start(sluice)
    a = raw_connect(s.host, s.port)
    b = raw_connect(s.host, s.port)
    try:
        run(a, f"SET ROLE {role}")
        assert run(a, "select current_user")[0][0] == role
        assert run(b, "select current_user")[0][0] == "sluice_test"
        assert run(a, "select current_user")[0][0] == role
        run(a, "RESET ROLE")
        assert run(a, "select current_user")[0][0] == "sluice_test"
    finally:
        a.terminate()
        b.terminate()
        pg.sql(f"DROP ROLE IF EXISTS {role}")


@pytest.mark.sluice_only
def test_setting_around_a_savepoint_rollback_pins(sluice):
    """Which SETs survive ROLLBACK TO SAVEPOINT is not followed: the client
    keeps its server, whose state is then simply right."""
    s = start(sluice, query_wait_timeout=2)
    a = raw_connect(s.host, s.port)
    try:
        for sql in ("BEGIN", "SET work_mem = '2MB'", "SAVEPOINT p", "SET work_mem = '3MB'",
                    "ROLLBACK TO p", "COMMIT"):
            run(a, sql)
        assert show(a, "work_mem") == "2MB"
        b = raw_connect(s.host, s.port)
        try:
            b.send(b"Q", b"select 1\0")
            typ, body = b.read()  # a keeps the server: b waits, then is told
            assert typ == "E" and b"query_wait_timeout" in body, (typ, body)
        finally:
            b.close()
        assert show(a, "work_mem") == "2MB"
    finally:
        a.terminate()


@pytest.mark.sluice_only
def test_track_extra_parameters_from_the_startup_packet(sluice, pg):
    """PgBouncer's track_extra_parameters: a startup parameter listed there is
    accepted, and set for the client on every server it borrows."""
    s = start(sluice, track_extra_parameters="search_path, statement_timeout")
    a = raw_connect(s.host, s.port, search_path="pg_catalog", statement_timeout="1234")
    b = raw_connect(s.host, s.port)
    try:
        assert show(a, "search_path") == "pg_catalog"
        assert show(a, "statement_timeout") == "1234ms"
        assert show(b, "search_path") != "pg_catalog"
        assert show(a, "search_path") == "pg_catalog"
    finally:
        a.terminate()
        b.terminate()
    s2 = start(sluice)
    with pytest.raises(Exception, match="unsupported startup parameter: search_path"):
        raw_connect(s2.host, s2.port, search_path="pg_catalog")
