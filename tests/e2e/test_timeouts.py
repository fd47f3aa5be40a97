"""Timeouts: query_timeout, idle_transaction_timeout, transaction_timeout,
client_idle_timeout, client_login_timeout, query_wait_timeout,
server_connect_timeout, server_idle_timeout, server_lifetime, and the TCP
keepalive / user-timeout socket options.

sluice checks timeouts every 100 ms, PgBouncer about once a second; the
windows below allow for both."""

import socket
import struct
import time

import psycopg
import pytest

from conftest import RawConn
from reliability_helpers import (COMPAT, assert_error, blackhole,  # noqa: F401 (fixture)
                                 check_serves, keepalive_timer_seconds, raw_login,
                                 read_until_close, sluice_backends, sluice_sockets,
                                 steal_fd, wait_for)

TX = {"pool_mode": "transaction", "default_pool_size": 2, "reserve_pool_size": 0}


def _send_query(c, sql):
    c.send(b"Q", sql.encode() + b"\0")


def _pid_gone(pg, db, pid):
    return lambda: pid not in [r[0] for r in sluice_backends(pg, db)]


# --------------------------------------------------------------------------
# query_timeout

def test_query_timeout_simple_query(sluice, pg, fresh_db):
    s = sluice(dict(TX, query_timeout=1), databases={fresh_db: pg.db_line(fresh_db)})
    bystander = s.connect(db=fresh_db)
    try:
        c = raw_login(s.host, s.port, database=fresh_db)
        _send_query(c, "select pg_sleep(20) /* qt_simple */")
        out = read_until_close(c, timeout=6)
        assert out.closed, f"client not closed after query_timeout: {out.describe()}"
        assert 0.8 <= out.elapsed <= 3.5, out.describe()
        errs = [e for e in out.errors if "query_timeout" in e.get("M", "").replace(" ", "_")]
        assert errs, f"no query_timeout error: {out.describe()}"
        assert_error(errs[0], "57014", "query_timeout", compat_states=("57014", "08P01"))
        # the query no longer runs on PostgreSQL: sluice sends a cancel.
        # (PgBouncer only closes the server socket, and PostgreSQL notices
        # that only when pg_sleep ends, so this is sluice-only.)
        if not COMPAT:
            wait_for(lambda: not [r for r in sluice_backends(pg, fresh_db)
                                  if r[2] and "qt_simple" in r[2] and r[1] == "active"],
                     3.0, what="pg_sleep cancelled on the server")
        # the other client and new clients still work
        assert bystander.execute("select 'bystander'").fetchone() == ("bystander",)
        check_serves(s, db=fresh_db)
    finally:
        bystander.close()


def test_query_timeout_extended_protocol(sluice, pg, fresh_db):
    """psycopg with parameters uses Parse/Bind/Execute/Sync: the Sync is the
    outstanding request."""
    s = sluice(dict(TX, query_timeout=1), databases={fresh_db: pg.db_line(fresh_db)})
    c = s.connect(db=fresh_db)
    t0 = time.monotonic()
    with pytest.raises(psycopg.Error) as ei:
        c.execute("select pg_sleep(%s)", (20,))
    elapsed = time.monotonic() - t0
    assert 0.8 <= elapsed <= 3.5, f"query_timeout hit after {elapsed:.2f} s"
    assert "query_timeout" in str(ei.value).replace(" ", "_"), ei.value
    # libpq reports a FATAL followed by the close as a lost connection, so
    # psycopg gives no sqlstate here; the raw-protocol test checks 57014.
    assert ei.value.sqlstate in (None, "57014", "08P01"), ei.value
    # the client connection is closed
    with pytest.raises(psycopg.Error):
        c.execute("select 1")
    c.close()
    check_serves(s, db=fresh_db)


def test_query_timeout_spares_short_queries(sluice, pg, fresh_db):
    """Many queries each shorter than query_timeout, over a longer time."""
    s = sluice(dict(TX, query_timeout=0.7), databases={fresh_db: pg.db_line(fresh_db)})
    with s.connect(db=fresh_db) as c:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.0:
            c.execute("select pg_sleep(0.3)")
        c.execute("BEGIN")
        for _ in range(4):
            c.execute("select pg_sleep(0.3)")
        c.execute("COMMIT")
        assert c.execute("select 'alive'").fetchone() == ("alive",)


# --------------------------------------------------------------------------
# idle_transaction_timeout

def test_idle_transaction_timeout(sluice, pg, fresh_db):
    with pg.connect_tcp(dbname=fresh_db) as d:
        d.execute("create table itt_rows (v text)")
    s = sluice(dict(TX, idle_transaction_timeout=1), databases={fresh_db: pg.db_line(fresh_db)})
    c = raw_login(s.host, s.port, database=fresh_db)
    rows, err = c.simple_query("BEGIN")
    assert err is None
    rows, err = c.simple_query("insert into itt_rows values ('must roll back'); "
                               "select pg_backend_pid()")
    assert err is None, err
    backend = int(rows[0][0])
    out = read_until_close(c, timeout=6)
    assert out.closed, f"idle-in-transaction client not closed: {out.describe()}"
    assert 0.8 <= out.elapsed <= 3.5, out.describe()
    assert_error(out.error, "25P03", "idle_transaction_timeout", severity="FATAL")
    # the server connection is closed, so PostgreSQL rolled the transaction back
    wait_for(_pid_gone(pg, fresh_db, backend), 3.0, what=f"backend {backend} closed")
    assert pg.sql("select count(*) from itt_rows", dbname=fresh_db)[0][0] == 0
    check_serves(s, db=fresh_db)


def test_idle_transaction_timeout_spares_busy_and_idle(sluice, pg, fresh_db, helpers):
    """A transaction running a long query, and a client idle outside any
    transaction, are not hit by idle_transaction_timeout."""
    s = sluice(dict(TX, idle_transaction_timeout=1), databases={fresh_db: pg.db_line(fresh_db)})

    def busy():
        with s.connect(db=fresh_db) as c:
            c.execute("BEGIN")
            c.execute("select pg_sleep(2.2)")
            c.execute("COMMIT")
            return "ok"

    def idle_outside():
        with s.connect(db=fresh_db) as c:
            c.execute("select 1")
            time.sleep(2.2)
            return c.execute("select 'ok'").fetchone()[0]

    ws = [helpers.Worker(busy), helpers.Worker(idle_outside)]
    for w in ws:
        w.start()
    assert [w.get(timeout=20) for w in ws] == ["ok", "ok"]


# --------------------------------------------------------------------------
# transaction_timeout (sluice only; PgBouncer 1.18 has no such key)

@pytest.mark.sluice_only
def test_transaction_timeout(sluice, pg, fresh_db, helpers):
    s = sluice(dict(TX, transaction_timeout=1.5), databases={fresh_db: pg.db_line(fresh_db)})

    def short_transactions():
        # each transaction well under the limit, for longer than the limit
        with s.connect(db=fresh_db) as c:
            t0 = time.monotonic()
            n = 0
            while time.monotonic() - t0 < 3.0:
                c.execute("BEGIN")
                c.execute("select pg_sleep(0.1)")
                c.execute("COMMIT")
                n += 1
            return n

    w = helpers.Worker(short_transactions)
    w.start()
    c = raw_login(s.host, s.port, database=fresh_db)
    rows, err = c.simple_query("BEGIN")
    assert err is None
    t0 = time.monotonic()
    fatal = None
    # keep the transaction busy: never idle for long, but it lasts too long
    while time.monotonic() - t0 < 6 and fatal is None:
        try:
            _send_query(c, "select pg_sleep(0.2)")
        except OSError:
            break
        out = read_until_close(c, timeout=3, stop_on_ready=True)
        for e in out.errors:
            if "transaction_timeout" in e.get("M", ""):
                fatal = e
        if out.closed:
            break
        if out.timed_out:
            pytest.fail(f"no answer in a transaction: {out.describe()}")
    elapsed = time.monotonic() - t0
    assert fatal is not None, f"no transaction_timeout error within {elapsed:.1f} s"
    assert_error(fatal, "25P04", "transaction_timeout", severity="FATAL")
    assert 1.3 <= elapsed <= 4.0, f"transaction_timeout after {elapsed:.2f} s"
    rest = read_until_close(c, timeout=3)
    assert rest.closed, rest.describe()
    assert w.get(timeout=20) >= 5
    check_serves(s, db=fresh_db)


# --------------------------------------------------------------------------
# client_idle_timeout

def test_client_idle_timeout(sluice, pg, fresh_db, helpers):
    s = sluice(dict(TX, client_idle_timeout=1), databases={fresh_db: pg.db_line(fresh_db)})

    def active():
        with s.connect(db=fresh_db) as c:
            t0 = time.monotonic()
            while time.monotonic() - t0 < 2.5:
                c.execute("select 1")
                time.sleep(0.3)
            return "ok"

    w = helpers.Worker(active)
    w.start()
    c = raw_login(s.host, s.port, database=fresh_db)
    assert c.simple_query("select 1")[1] is None
    out = read_until_close(c, timeout=6)
    assert out.closed, f"idle client not closed: {out.describe()}"
    assert 0.8 <= out.elapsed <= 3.5, out.describe()
    assert_error(out.error, "08P01", "client_idle_timeout", severity="FATAL")
    assert w.get(timeout=20) == "ok"
    check_serves(s, db=fresh_db)


# --------------------------------------------------------------------------
# client_login_timeout

def test_client_login_timeout_silent_client(sluice):
    s = sluice({"client_login_timeout": 1})
    with socket.create_connection((s.host, s.port), timeout=10) as sock:
        c = RawConn.__new__(RawConn)
        c.sock, c.buf, c.params, c.backend_key = sock, b"", {}, None
        out = read_until_close(c, timeout=6)
    assert out.closed, f"silent client not closed: {out.describe()}"
    assert 0.8 <= out.elapsed <= 3.5, out.describe()
    assert not out.raw, out.describe()
    for e in out.errors:
        assert "client_login_timeout" in e.get("M", ""), out.describe()
    check_serves(s)


def test_client_login_timeout_stalled_auth(sluice, helpers):
    """Startup sent, password never sent."""
    s = sluice({"client_login_timeout": 1, "auth_type": "md5"})
    c = RawConn(s.host, s.port)
    try:
        c.send_startup({"user": "sluice_test", "database": "sluicedb"})
        typ, body = c.read()
        assert typ == "R" and struct.unpack("!I", body[:4])[0] in (3, 5, 10), (typ, body)
        out = read_until_close(c, timeout=6)
    finally:
        c.close()
    assert out.closed, f"client stuck in authentication not closed: {out.describe()}"
    assert 0.8 <= out.elapsed <= 3.5, out.describe()
    assert out.error is not None, out.describe()
    assert "client_login_timeout" in out.error.get("M", ""), out.describe()
    # a client that logged in in time is not affected
    with s.connect() as ok:
        time.sleep(1.8)
        assert ok.execute("select 'logged in'").fetchone() == ("logged in",)


# --------------------------------------------------------------------------
# query_wait_timeout and server_connect_timeout

def test_query_wait_timeout_is_fatal_08p01(sluice, pg, fresh_db):
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1, "reserve_pool_size": 0,
                "query_wait_timeout": 1}, databases={fresh_db: pg.db_line(fresh_db)})
    holder = s.connect(db=fresh_db)
    try:
        holder.execute("BEGIN")
        holder.execute("select 1")
        c = raw_login(s.host, s.port, database=fresh_db)
        _send_query(c, "select 'never'")
        out = read_until_close(c, timeout=6)
        assert out.closed, out.describe()
        assert 0.8 <= out.elapsed <= 3.5, out.describe()
        assert_error(out.error, "08P01", "query_wait_timeout", severity="FATAL")
        assert not [m for m in out.messages if m[0] in "TD"], "the query ran"
        holder.execute("COMMIT")
    finally:
        holder.close()
    check_serves(s, db=fresh_db)


def test_server_connect_timeout_blackhole(sluice, pg, blackhole, helpers):
    """The database points at a listener that never accepts (or answers):
    the client gets query_wait_timeout; another database keeps working."""
    s = sluice({"pool_mode": "transaction", "server_connect_timeout": 1,
                "server_login_retry": 0.5, "query_wait_timeout": 3},
               databases={"sluicedb": pg.db_line("sluicedb"),
                          "bh": f"host=127.0.0.1 port={blackhole.port} dbname=bh"})

    def healthy():
        for _ in range(5):
            with s.connect() as c:
                assert c.execute("select 'healthy'").fetchone() == ("healthy",)
            time.sleep(0.3)
        return "ok"

    w = helpers.Worker(healthy)
    w.start()
    c = RawConn(s.host, s.port, timeout=15)
    t0 = time.monotonic()
    try:
        with pytest.raises(helpers.PgError) as ei:
            c.login("sluice_test", "bh", "test_pw")
            # if the login completed, the first query must wait instead
            c.simple_query("select 1")
    finally:
        c.close()
    elapsed = time.monotonic() - t0
    assert 2.5 <= elapsed <= 6.5, f"error after {elapsed:.2f} s: {ei.value}"
    assert "query_wait_timeout" in ei.value.message, ei.value
    assert w.get(timeout=20) == "ok"
    assert s.alive()
    check_serves(s)


# --------------------------------------------------------------------------
# server_idle_timeout and server_lifetime

def test_server_idle_timeout(sluice, pg, fresh_db):
    # server_lifetime stays at its default: 0 means "use once" in PgBouncer
    s = sluice(dict(TX, server_idle_timeout=1),
               databases={fresh_db: pg.db_line(fresh_db)})
    with s.connect(db=fresh_db) as c:
        pid1 = c.execute("select pg_backend_pid()").fetchone()[0]
        t0 = time.monotonic()
        time.sleep(0.3)
        assert pid1 in [r[0] for r in sluice_backends(pg, fresh_db)], \
            "idle server closed long before server_idle_timeout"
        _, waited = wait_for(_pid_gone(pg, fresh_db, pid1), 4.0,
                             what="idle server connection closed")
        gone_after = time.monotonic() - t0
        assert gone_after >= 0.8, f"closed after {gone_after:.2f} s, limit is 1 s"
        pid2 = c.execute("select pg_backend_pid()").fetchone()[0]
        assert pid2 != pid1


def test_server_lifetime(sluice, pg, fresh_db):
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1, "reserve_pool_size": 0,
                "server_lifetime": 1, "server_idle_timeout": 0},
               databases={fresh_db: pg.db_line(fresh_db)})
    with s.connect(db=fresh_db) as c:
        pid1 = c.execute("select pg_backend_pid()").fetchone()[0]
        assert c.execute("select pg_backend_pid()").fetchone()[0] == pid1
        # a transaction that outlives server_lifetime keeps its server
        c.execute("BEGIN")
        assert c.execute("select pg_backend_pid()").fetchone()[0] == pid1
        time.sleep(1.6)
        assert c.execute("select pg_backend_pid()").fetchone()[0] == pid1
        c.execute("COMMIT")
        # once idle, the old server is closed; the next transaction gets a new one
        wait_for(_pid_gone(pg, fresh_db, pid1), 3.0, what="old server connection closed")
        pid2 = c.execute("select pg_backend_pid()").fetchone()[0]
        assert pid2 != pid1
        # and the new one is reused while it is young
        assert c.execute("select pg_backend_pid()").fetchone()[0] == pid2


# --------------------------------------------------------------------------
# TCP keepalive and user timeout on client and server sockets

def _local_port(conn):
    dup = socket.fromfd(conn.pgconn.socket, socket.AF_INET, socket.SOCK_STREAM)
    try:
        return dup.getsockname()[1]
    finally:
        dup.close()


def _client_and_server_sockets(s, pg, client_port):
    socks = sluice_sockets(s.pid)
    cl = [x for x in socks if x["local"][1] == s.port and x["peer"][1] == client_port]
    sv = [x for x in socks if x["peer"][1] == pg.port]
    assert cl, f"no client socket of sluice in ss output: {socks}"
    assert sv, f"no server socket of sluice in ss output: {socks}"
    return cl[0], sv[0]


def test_tcp_keepalive_options(sluice, pg):
    s = sluice({"tcp_keepalive": 1, "tcp_keepidle": 7, "tcp_keepintvl": 3,
                "tcp_keepcnt": 4, "tcp_user_timeout": 12345})
    with s.connect() as c:
        assert c.execute("select 1").fetchone() == (1,)
        client_port = _local_port(c)
        time.sleep(0.3)
        cl, sv = _client_and_server_sockets(s, pg, client_port)
        for name, x in (("client", cl), ("server", sv)):
            secs = keepalive_timer_seconds(x["text"])
            assert secs is not None, f"{name} socket has no keepalive timer: {x['text']}"
            assert 0 < secs <= 7.5, f"{name} socket keepalive timer {secs} s, tcp_keepidle=7: " \
                                    f"{x['text']}"
        # exact values, read from sluice's own sockets
        try:
            stolen = [(n, steal_fd(s.pid, x["fd"])) for n, x in (("client", cl), ("server", sv))]
        except OSError as e:
            pytest.skip(f"keepalive timers checked; pidfd_getfd not permitted here ({e}), "
                        "so the exact option values cannot be read")
        for name, sk in stolen:
            try:
                got = {
                    "SO_KEEPALIVE": sk.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                    "TCP_KEEPIDLE": sk.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                    "TCP_KEEPINTVL": sk.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                    "TCP_KEEPCNT": sk.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                    "TCP_USER_TIMEOUT": sk.getsockopt(socket.IPPROTO_TCP, 18),
                }
            finally:
                sk.close()  # our duplicate only
            assert got == {"SO_KEEPALIVE": 1, "TCP_KEEPIDLE": 7, "TCP_KEEPINTVL": 3,
                           "TCP_KEEPCNT": 4, "TCP_USER_TIMEOUT": 12345}, f"{name}: {got}"
        assert c.execute("select 'still ok'").fetchone() == ("still ok",)


def test_tcp_keepalive_default_on(sluice, pg):
    """Without any tcp_* key: keepalive is on (system timings) on both sides."""
    s = sluice({})
    with s.connect() as c:
        c.execute("select 1")
        client_port = _local_port(c)
        time.sleep(0.2)
        cl, sv = _client_and_server_sockets(s, pg, client_port)
        for name, x in (("client", cl), ("server", sv)):
            assert keepalive_timer_seconds(x["text"]) is not None, \
                f"{name} socket has no keepalive timer: {x['text']}"
