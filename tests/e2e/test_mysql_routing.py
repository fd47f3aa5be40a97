"""Routing for MySQL entries (issue 18): a MariaDB primary and a read_only
replica of it (GTID replication, mysql_repl_helpers.py) behind one
[databases] entry with two hosts. sluice learns the roles from
@@global.read_only and the positions from the GTIDs (SHOW HOSTS), sends
writes to the primary, plain SELECTs to the replica with read_routing =
auto, keeps a client that wrote on the primary until the replica has its
write, and follows a promotion.

The marker of where a statement ran is @@server_id: 1 on the primary, 2
on the replica (a read of a system variable only reads)."""

import re
import shutil
import subprocess
import threading
import time

import pytest

pymysql = pytest.importorskip("pymysql")

from conftest import free_port, is_pgbouncer_compat  # noqa: E402
from mysql_repl_helpers import ReplicaPair  # noqa: E402

pytestmark = pytest.mark.skipif(is_pgbouncer_compat(), reason="PgBouncer has no MySQL listener")

PRIMARY, REPLICA = 1, 2


def make_pair():
    pair = ReplicaPair(free_port(), free_port())
    try:
        pair.start()
    except Exception:
        pair.stop()
        raise
    return pair


@pytest.fixture(scope="module")
def pair():
    """Shared by the tests that leave both servers as they found them."""
    p = make_pair()
    yield p
    p.stop()


def start(sluice, pg, pair, size=3, extra=None, **db):
    myport = free_port()
    main = {"mysql_listen_port": myport, "pool_mode": "transaction", "default_pool_size": size,
            "admin_users": "sluice_test", "role_check_interval": "300ms"}
    main.update(extra or {})
    s = sluice(main, databases={"sluicedb": pg.db_line("sluicedb"), "mydb": pair.db_line("mydb", **db)})
    s.myport = myport
    return s


def connect(s, database="mydb", autocommit=True, **kw):
    """autocommit=None: pymysql sends no SET AUTOCOMMIT (the server's
    default, on), so the client has written nothing."""
    return pymysql.connect(host="127.0.0.1", port=s.myport, user="sluice_test", password="test_pw",
                           database=database, connect_timeout=10, read_timeout=30, write_timeout=30,
                           autocommit=autocommit, **kw)


def one(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()


def hosts(s):
    """SHOW HOSTS rows of mydb as {port: row dict}."""
    with s.connect(db="sluice", user="sluice_test") as adm:
        cur = adm.execute("SHOW HOSTS")
        names = [d.name for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
    return {r["port"]: r for r in rows if r["database"] == "mydb"}


def wait_for(what, fn, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def wait_roles(s, pair, primary_port=None, standby_port=None):
    primary_port = primary_port or pair.primary.port
    standby_port = standby_port or pair.replica.port

    def known():
        h = hosts(s)
        p, r = h.get(primary_port), h.get(standby_port)
        return p and r and p["role"] == "primary" and r["role"] == "standby" and r["lag_bytes"] is not None
    wait_for("the roles in SHOW HOSTS", known)


def wait_reads_on(conn, server_id, what):
    wait_for(what, lambda: one(conn, "SELECT @@server_id")[0] == server_id)


def fresh_table(pair, name):
    pair.primary.sql(f"DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (id INT AUTO_INCREMENT PRIMARY KEY, v INT)",
                     db="mydb")
    pair.wait_caught_up()


def test_show_hosts_shows_roles_and_positions(sluice, pg, pair):
    s = start(sluice, pg, pair)
    with connect(s) as c:
        assert one(c, "SELECT 1") == (1,)
    wait_roles(s, pair)
    h = hosts(s)
    p, r = h[pair.primary.port], h[pair.replica.port]
    want = int(pair.primary.sql("SELECT @@global.gtid_binlog_pos").strip().split("-")[2])
    assert int(p["lsn"]) == want  # a GTID's sequence number
    assert int(r["lsn"]) == want and r["lag_bytes"] == 0
    assert p["error"] is None and r["error"] is None


def test_read_write_target_sends_everything_to_the_primary(sluice, pg, pair):
    """target_session_attrs = read-write (the default with two hosts),
    read_routing off: every server is on the primary, whose role the
    login checks (the replica is read_only)."""
    fresh_table(pair, "t_rw")
    s = start(sluice, pg, pair)
    conns = [connect(s) for _ in range(4)]
    try:
        for i, c in enumerate(conns):
            assert one(c, "SELECT @@server_id") == (PRIMARY,)
            with c.cursor() as cur:
                cur.execute("INSERT INTO t_rw (v) VALUES (%s)", (i,))
        assert pair.primary.sql("SELECT COUNT(*) FROM t_rw", db="mydb").strip() == "4"
        wait_roles(s, pair)
        for c in conns:
            assert one(c, "SELECT @@server_id") == (PRIMARY,)
    finally:
        for c in conns:
            c.close()


def test_reads_go_to_the_replica_and_the_rest_to_the_primary(sluice, pg, pair):
    fresh_table(pair, "t_rr")
    pair.primary.sql("INSERT INTO t_rr (v) VALUES (1)", db="mydb")
    pair.wait_caught_up()
    s = start(sluice, pg, pair, read_routing="auto")
    with connect(s) as c:
        wait_roles(s, pair)
        wait_reads_on(c, REPLICA, "a plain SELECT on the replica")
        assert one(c, "SELECT @@server_id, COUNT(*) FROM t_rr WHERE v >= 0") == (REPLICA, 1)
        assert one(c, "/* a comment */ SELECT @@server_id, CONCAT('a', 'b')") == (REPLICA, "ab")
        # What locks, depends on the session, or is not a SELECT: the primary.
        assert one(c, "SELECT @@server_id FROM t_rr FOR UPDATE") == (PRIMARY,)
        assert one(c, "SELECT @@server_id FROM t_rr LOCK IN SHARE MODE") == (PRIMARY,)
        assert one(c, "SELECT @@server_id, LAST_INSERT_ID()")[0] == PRIMARY
        assert one(c, "SELECT @@server_id, GET_LOCK('routing_test', 0), RELEASE_LOCK('routing_test')")[0] == PRIMARY
        assert one(c, "SHOW VARIABLES LIKE 'server_id'") == ("server_id", str(PRIMARY))
        # A write goes to the primary (the test user could write on the
        # read_only replica: it has READ_ONLY ADMIN through ALL).
        with c.cursor() as cur:
            cur.execute("INSERT INTO t_rr (v) VALUES (2)")
        assert pair.primary.sql("SELECT COUNT(*) FROM t_rr WHERE v = 2", db="mydb").strip() == "1"
    with connect(s) as c:
        wait_reads_on(c, REPLICA, "a plain SELECT on the replica")
        # A READ ONLY transaction goes to the replica whole.
        with c.cursor() as cur:
            cur.execute("START TRANSACTION READ ONLY")
            cur.execute("SELECT @@server_id")
            a = cur.fetchone()
            cur.execute("SELECT @@server_id, COUNT(*) FROM t_rr")
            b = cur.fetchone()
            cur.execute("COMMIT")
        assert a == (REPLICA,) and b[0] == REPLICA
        # A transaction that may write: the primary, whole.
        with c.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("SELECT @@server_id")
            a = cur.fetchone()
            cur.execute("COMMIT")
        assert a == (PRIMARY,)
    assert hosts(s)[pair.replica.port]["reads"] > 0


def test_clients_that_keep_a_session_are_not_routed(sluice, pg, pair):
    """A pinned client (a user variable), a client with autocommit off, and
    every client of a session-mode pool read from the primary."""
    s = start(sluice, pg, pair, read_routing="auto")
    with connect(s) as c:
        wait_roles(s, pair)
        wait_reads_on(c, REPLICA, "a plain SELECT on the replica")
        with c.cursor() as cur:
            cur.execute("SET @marker = 1")  # pins it to its server (on the primary)
        for _ in range(3):
            assert one(c, "SELECT @@server_id") == (PRIMARY,)
    with connect(s) as c:
        wait_reads_on(c, REPLICA, "a plain SELECT on the replica")
        c.autocommit(False)
        for _ in range(3):
            assert one(c, "SELECT @@server_id") == (PRIMARY,)
            c.commit()
    s2 = start(sluice, pg, pair, read_routing="auto", pool_mode="session")
    with connect(s2) as c:
        wait_roles(s2, pair)
        for _ in range(3):
            assert one(c, "SELECT @@server_id") == (PRIMARY,)


def test_a_writer_reads_its_writes_while_the_replica_lags(sluice, pg, pair):
    """The replica's SQL thread stopped: a client that inserted reads from
    the primary (it sees its row) while a client that did not write still
    reads the replica (without the row); once the replica caught up, the
    writer reads there again."""
    fresh_table(pair, "t_ryw")
    s = start(sluice, pg, pair, read_routing="auto")
    writer, reader = connect(s), connect(s)
    try:
        wait_roles(s, pair)
        wait_reads_on(writer, REPLICA, "the writer's reads on the replica")
        wait_reads_on(reader, REPLICA, "the reader's reads on the replica")
        pair.replica.sql("STOP SLAVE SQL_THREAD")
        try:
            with writer.cursor() as cur:
                cur.execute("INSERT INTO t_ryw (v) VALUES (777)")
            for _ in range(5):
                assert one(writer, "SELECT @@server_id, COUNT(*) FROM t_ryw WHERE v = 777") == (PRIMARY, 1)
                assert one(reader, "SELECT @@server_id, COUNT(*) FROM t_ryw WHERE v = 777") == (REPLICA, 0)
                time.sleep(0.2)
            h = hosts(s)[pair.replica.port]
            assert h["lag_bytes"] is not None and h["lag_bytes"] >= 1  # transactions behind
        finally:
            pair.replica.sql("START SLAVE SQL_THREAD")
        pair.wait_caught_up()
        wait_reads_on(writer, REPLICA, "the writer's reads back on the replica")
        assert one(writer, "SELECT @@server_id, COUNT(*) FROM t_ryw WHERE v = 777") == (REPLICA, 1)
    finally:
        writer.close()
        reader.close()


@pytest.mark.timeout(180)
def test_positions_of_several_gtid_domains_keep_writers_on_the_primary(sluice, pg):
    """A second GTID domain: positions that cannot be compared. A client
    that never wrote still reads the replica; one that wrote reads from the
    primary, even once the replica has its write."""
    pair = make_pair()
    try:
        fresh_table(pair, "t_dom")
        pair.primary.sql("SET SESSION gtid_domain_id = 7; INSERT INTO t_dom (v) VALUES (0)", db="mydb")
        pair.wait_caught_up()
        assert "," in pair.primary.sql("SELECT @@global.gtid_binlog_pos")
        s = start(sluice, pg, pair, read_routing="auto")
        reader, writer = connect(s, autocommit=None), connect(s, autocommit=None)
        try:
            def known():
                h = hosts(s)
                return (h[pair.primary.port]["role"], h[pair.replica.port]["role"]) == ("primary", "standby")
            wait_for("the roles in SHOW HOSTS", known)
            wait_reads_on(reader, REPLICA, "a reader's SELECT on the replica")
            h = hosts(s)[pair.replica.port]
            assert h["lsn"] is None and h["lag_bytes"] is None
            with writer.cursor() as cur:
                cur.execute("INSERT INTO t_dom (v) VALUES (1)")
            pair.wait_caught_up()
            time.sleep(1)  # several monitor reports after the write
            for _ in range(3):
                assert one(writer, "SELECT @@server_id, COUNT(*) FROM t_dom WHERE v = 1") == (PRIMARY, 1)
                assert one(reader, "SELECT @@server_id") == (REPLICA,)
        finally:
            reader.close()
            writer.close()
    finally:
        pair.stop()


@pytest.mark.timeout(120)
def test_prepared_statements_that_read_run_on_the_replica(sluice, pg, pair):
    """sysbench's point selects, server-side prepared (COM_STMT_EXECUTE):
    the statements are prepared on the replica's servers and run there."""
    if not shutil.which("sysbench"):
        pytest.fail("sysbench is not installed (run scripts/install-deps.sh)")
    pair.primary.sql("DROP DATABASE IF EXISTS sbroute; CREATE DATABASE sbroute")
    common = ["--db-driver=mysql", "--mysql-host=127.0.0.1", "--mysql-user=sluice_test",
              "--mysql-password=test_pw", "--mysql-db=sbroute", "--tables=1", "--table-size=100"]
    r = subprocess.run(["sysbench", "oltp_common", f"--mysql-port={pair.primary.port}", *common, "prepare"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert r.returncode == 0, r.stdout[-2000:]
    pair.wait_caught_up()
    myport = free_port()
    s = sluice({"mysql_listen_port": myport, "pool_mode": "transaction", "default_pool_size": 2,
                "admin_users": "sluice_test", "role_check_interval": "300ms"},
               databases={"sluicedb": pg.db_line("sluicedb"),
                          "sbroute": pair.db_line("sbroute", read_routing="auto")})
    s.myport = myport
    with connect(s, database="sbroute") as c:
        wait_for("reads on the replica", lambda: one(c, "SELECT @@server_id")[0] == REPLICA)

    def executes():
        out = pair.replica.sql("SHOW GLOBAL STATUS LIKE 'Com_stmt_execute'")
        return int(out.split()[1])
    before = executes()
    r = subprocess.run(["sysbench", "oltp_point_select", f"--mysql-port={myport}", *common, "--threads=2",
                        "--time=2", "--report-interval=0", "--db-ps-mode=auto", "run"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert r.returncode == 0, r.stdout[-3000:]
    assert re.search(r"ignored errors:\s+0\b", r.stdout), r.stdout[-3000:]
    assert executes() - before > 50


@pytest.mark.timeout(180)
def test_failover_to_a_promoted_replica(sluice, pg):
    """The primary stops; the replica is promoted (STOP SLAVE, read_only =
    0): writes reach it within seconds, and SHOW HOSTS says so."""
    pair = make_pair()
    try:
        fresh_table(pair, "t_fo")
        s = start(sluice, pg, pair, read_routing="auto")
        with connect(s) as c:
            with c.cursor() as cur:
                cur.execute("INSERT INTO t_fo (v) VALUES (1)")
        wait_roles(s, pair)
        old_primary = pair.primary.port
        pair.primary.stop()
        pair.replica.sql("STOP SLAVE; SET GLOBAL read_only = 0")

        def write_on_new_primary():
            try:
                with connect(s) as c2:
                    with c2.cursor() as cur:
                        cur.execute("INSERT INTO t_fo (v) VALUES (2)")
                    return one(c2, "SELECT @@server_id, COUNT(*) FROM t_fo") == (REPLICA, 2)
            except pymysql.err.MySQLError:
                return False
        wait_for("a write on the promoted replica", write_on_new_primary, timeout=30)
        h = hosts(s)
        assert h[pair.replica.port]["role"] == "primary"
        assert h[old_primary]["role"] == "down"
        assert pair.replica.sql("SELECT COUNT(*) FROM t_fo WHERE v = 2", db="mydb").strip() == "1"
    finally:
        pair.stop()


@pytest.mark.timeout(180)
def test_a_read_waiting_for_a_replica_that_goes_away_is_routed_anew(sluice, pg):
    """pool_size 1: one client holds the replica's server in a READ ONLY
    transaction, a second one's SELECT waits for it; the replica stops:
    the waiting SELECT is answered by the primary (proto.h client_reroute),
    not after query_wait_timeout."""
    pair = make_pair()
    try:
        s = start(sluice, pg, pair, size=1, read_routing="auto", extra={"query_wait_timeout": 60})
        holder, waiter = connect(s), connect(s)
        wait_roles(s, pair)
        wait_reads_on(holder, REPLICA, "the holder's reads on the replica")
        wait_reads_on(waiter, REPLICA, "the waiter's reads on the replica")
        with holder.cursor() as cur:
            cur.execute("START TRANSACTION READ ONLY")
            cur.execute("SELECT @@server_id")
            assert cur.fetchone() == (REPLICA,)
        got = {}

        def read():
            try:
                got["row"] = one(waiter, "SELECT @@server_id")
            except pymysql.err.MySQLError as e:
                got["error"] = e
        t = threading.Thread(target=read)
        t.start()
        wait_for("the waiting client", lambda: any(
            r[4] == "waiting" for r in admin_rows(s, "SHOW CLIENTS") if r[2] == "mydb"))
        pair.replica.stop()
        t.join(30)  # well before query_wait_timeout
        assert not t.is_alive()
        assert got.get("row") == (PRIMARY,), got
        holder.close()
        waiter.close()
    finally:
        pair.stop()


def admin_rows(s, command):
    with s.connect(db="sluice", user="sluice_test") as adm:
        return adm.execute(command).fetchall()
