"""PgBouncer keys about what clients may send and how they are served
(issue 24): application_name_add_host, disable_pqexec, query_wait_notify,
max_packet_size, server_round_robin, autodb_idle_timeout.

Most also run on PgBouncer 1.18 (SLUICE_BIN=/usr/sbin/pgbouncer), which
has every key but query_wait_notify (1.25)."""

import os
import threading
import time

import psycopg
import pytest

from admin_helpers import Console, local_port, poll, start
from conftest import RawConn, parse_error_fields

TX = {"pool_mode": "transaction"}


def _server_appname(conn):
    return conn.execute("select application_name from pg_stat_activity where pid = pg_backend_pid()"
                        " and %s::int = 1", (1,)).fetchone()[0]


# ---- application_name_add_host ---------------------------------------------

def test_appname_gets_client_address(sluice):
    s = sluice({"application_name_add_host": 1})
    with s.connect(application_name="myapp") as c:
        want = f"myapp - 127.0.0.1:{local_port(c)}"
        assert _server_appname(c) == want
        # what the client is told is what the server has
        assert c.info.parameter_status("application_name") == want


def test_appname_without_name_is_app(sluice):
    s = sluice(dict(TX, application_name_add_host=1))
    with s.connect() as c:
        assert _server_appname(c) == f"app - 127.0.0.1:{local_port(c)}"


def test_appname_only_at_login(sluice):
    """A later SET is the client's: not rewritten, and it follows the
    client to the next server in transaction mode."""
    s = sluice(dict(TX, application_name_add_host=1))
    with s.connect(application_name="first") as c:
        c.execute("set application_name = 'second'")
        assert _server_appname(c) == "second"
        assert c.execute("show application_name").fetchone()[0] == "second"


def test_appname_unchanged_when_off(sluice):
    s = sluice({})
    with s.connect(application_name="myapp") as c:
        assert _server_appname(c) == "myapp"


@pytest.mark.sluice_only
def test_appname_unix_socket(sluice):
    """Over the unix socket: PgBouncer's unix(PID@HOST):PORT, PID being the
    client process (this one), PORT the pooler's."""
    s = sluice({"application_name_add_host": 1})
    with psycopg.connect(host=str(s.dir), port=s.port, dbname="sluicedb", user="sluice_test",
                         password="test_pw", autocommit=True, application_name="u") as c:
        got = _server_appname(c)
    assert got.startswith(f"u - unix({os.getpid()}@"), got
    assert got.endswith(f"):{s.port}"), got


# ---- disable_pqexec --------------------------------------------------------

def _login(s):
    r = RawConn("127.0.0.1", s.port)
    r.login("sluice_test", "sluicedb", "test_pw")
    return r


def _closed(r):
    try:
        r.sock.settimeout(5)
        while True:
            r.read()
    except (ConnectionError, OSError):
        return True


def _query_refused(r, body, words):
    """Send a Query on r: the answer is an error naming words, then r closes."""
    r.send(b"Q", body)
    typ, msg = r.read()
    assert typ == "E"
    assert words in parse_error_fields(msg)["M"]
    assert _closed(r)


def test_pqexec_refused_and_closed(sluice):
    s = sluice(dict(TX, disable_pqexec=1))
    _query_refused(_login(s), b"select 1\0", "PQexec disallowed")


def test_extended_protocol_allowed(sluice):
    s = sluice(dict(TX, disable_pqexec=1))
    with s.connect() as c:
        for i in range(3):
            assert c.execute("select %s::int + 1", (i,)).fetchone() == (i + 1,)
    with pytest.raises(psycopg.OperationalError, match="PQexec disallowed"):
        with s.connect() as c:
            c.execute("select 1")  # no parameters: psycopg sends a simple Query


def test_pqexec_allowed_by_default(sluice):
    s = sluice(TX)
    r = _login(s)
    rows, err = r.simple_query("select 1")
    assert err is None and rows == [["1"]]
    r.terminate()


def test_pqexec_refused_on_console(sluice):
    """As PgBouncer: the check comes before the console's commands."""
    s = start(sluice, {"disable_pqexec": 1})
    _query_refused(Console(s.port).conn, b"SHOW VERSION\0", "PQexec disallowed")


# ---- query_wait_notify -----------------------------------------------------

NOTICE = "No server connection available in postgres backend, client being queued"


def _waiting_query(s, notices, hold_s, holder):
    """Run one query on a new client while holder keeps the only server
    for hold_s seconds; returns the waiter's connection."""
    w = s.connect()
    w.add_notice_handler(lambda d: notices.append(d.message_primary))
    t = threading.Timer(hold_s, holder.commit)
    t.start()
    try:
        assert w.execute("select %s::int", (7,)).fetchone() == (7,)
    finally:
        t.join()
    return w


@pytest.mark.sluice_only
def test_wait_notice_once_per_connection(sluice):
    s = sluice(dict(TX, default_pool_size=1, query_wait_notify=1))
    holder = s.connect(autocommit=False)
    holder.execute("select 1")  # in a transaction: holds the server
    notices = []
    w = _waiting_query(s, notices, 2.0, holder)
    assert notices == [NOTICE]
    # a second wait on the same connection: no second notice
    holder.execute("select 1")
    t = threading.Timer(2.0, holder.commit)
    t.start()
    assert w.execute("select %s::int", (8,)).fetchone() == (8,)
    t.join()
    assert notices == [NOTICE]
    w.close()
    holder.close()


@pytest.mark.sluice_only
def test_no_wait_notice_before_delay_or_when_off(sluice):
    for notify in (0, 30):
        s = sluice(dict(TX, default_pool_size=1, query_wait_notify=notify))
        holder = s.connect(autocommit=False)
        holder.execute("select 1")
        notices = []
        _waiting_query(s, notices, 1.5, holder).close()
        assert notices == []
        holder.close()


# ---- max_packet_size -------------------------------------------------------

def _query_of_len(total):
    """A Query message body making the whole message total bytes long."""
    head = b"select '"
    tail = b"'\0"
    return head + b"x" * (total - 5 - len(head) - len(tail)) + tail


def test_packet_at_limit_passes_over_limit_closes(sluice):
    s = sluice(dict(TX, max_packet_size=10000))
    r = _login(s)
    r.send(b"Q", _query_of_len(10000))
    typ = None
    while typ != "Z":
        typ, body = r.read()
        assert typ != "E", parse_error_fields(body)
    _query_refused(r, _query_of_len(10001), "bad packet header")


def test_big_parameter_refused(sluice):
    s = sluice(dict(TX, max_packet_size=4096))
    with s.connect() as c:
        assert c.execute("select length(%s)", ("y" * 1000,)).fetchone() == (1000,)
        with pytest.raises(psycopg.OperationalError):
            c.execute("select length(%s)", ("y" * 5000,))
    with s.connect() as c:  # others are not affected
        assert c.execute("select %s::int", (1,)).fetchone() == (1,)


# ---- server_round_robin ----------------------------------------------------

def _reuse_order(s):
    """Three servers released in the order a, b, c; then the pids a fourth
    client gets for three transactions in a row."""
    holders = [s.connect(autocommit=False) for _ in range(3)]
    pids = [h.execute("select pg_backend_pid()").fetchone()[0] for h in holders]
    assert len(set(pids)) == 3
    for h in holders:
        h.commit()
        time.sleep(0.05)
    c = s.connect(autocommit=False)
    got = []
    for _ in range(3):
        got.append(c.execute("select pg_backend_pid()").fetchone()[0])
        c.commit()
    for h in holders + [c]:
        h.close()
    return pids, got


def test_idle_servers_lifo_by_default(sluice):
    s = sluice(dict(TX, default_pool_size=3), workers=1)
    pids, got = _reuse_order(s)
    assert got == [pids[2]] * 3


def test_server_round_robin_fifo(sluice):
    s = sluice(dict(TX, default_pool_size=3, server_round_robin=1), workers=1)
    pids, got = _reuse_order(s)
    assert got == pids


# ---- autodb_idle_timeout ---------------------------------------------------

def _pool_dbs(con):
    return {(row["database"], row["user"]) for row in con.show("POOLS")}


def test_autodb_pool_forgotten_when_unused(sluice, pg):
    dbs = {"postgres": pg.db_line("postgres"), "*": f"host={pg.host} port={pg.port}"}
    s = start(sluice, dict(TX, server_idle_timeout=1, autodb_idle_timeout=1), databases=dbs)
    for db in ("sluicedb", "postgres"):
        with s.connect(db=db) as c:
            assert c.execute("select current_database()").fetchone() == (db,)
    with Console(s.port) as con:
        assert {("sluicedb", "sluice_test"), ("postgres", "sluice_test")} <= _pool_dbs(con)
        poll(lambda: ("sluicedb", "sluice_test") not in _pool_dbs(con), timeout=20,
             what="pool from '*' dropped")
        # a pool of a listed database stays
        assert ("postgres", "sluice_test") in _pool_dbs(con)
    # and the database works again, with its pool back
    with s.connect() as c:
        assert c.execute("select current_database()").fetchone() == ("sluicedb",)
        with Console(s.port) as con:
            assert ("sluicedb", "sluice_test") in _pool_dbs(con)


def test_autodb_pool_in_use_kept(sluice, pg):
    dbs = {"*": f"host={pg.host} port={pg.port}"}
    s = start(sluice, dict(TX, server_idle_timeout=1, autodb_idle_timeout=1), databases=dbs)
    with s.connect() as c:
        c.execute("select 1")
        time.sleep(4)
        with Console(s.port) as con:
            assert ("sluicedb", "sluice_test") in _pool_dbs(con)
        assert c.execute("select %s::int", (2,)).fetchone() == (2,)
