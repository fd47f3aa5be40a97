"""MySQL clients across an online restart and between workers (issue 17:
"graceful shutdown and online restart cover MySQL pools"; docs/behaviour.md,
"MySQL", and docs/operations.md, "Online restart").

Checked here, with pymysql against the harness's MariaDB:
- `sluice -R`: idle MySQL clients in transaction mode (one in another
  schema after `USE`, some with autocommit off between transactions) are
  taken over by the new process on the same TCP connection, and keep their
  schema, autocommit and connection id; a client in the middle of a
  transaction goes at its COMMIT; the old process exits once all are over.
- Graceful shutdown (SIGTERM): an idle MySQL client is closed with error
  1053, one in a transaction finishes it and goes at its COMMIT.
- A pinned client (a user variable) stays with the old process, with its
  session, until it disconnects.
- adaptive_workers: under load MySQL clients move to another worker
  (sluice_client_moves_total) and, once idle, back to worker 0, keeping
  their schema and autocommit and answering every query.

sluice only (PgBouncer has no MySQL listener).
"""

import re
import signal
import time

import pytest

pymysql = pytest.importorskip("pymysql")

from conftest import free_port, is_pgbouncer_compat, tail  # noqa: E402
from test_online_restart import admin_show, holder, restarter, wait_old_exit  # noqa: E402,F401
from test_workers import metrics, per_worker  # noqa: E402

pytestmark = [pytest.mark.skipif(is_pgbouncer_compat(), reason="PgBouncer has no MySQL listener"),
              pytest.mark.sluice_only, pytest.mark.timeout(90)]


def start(sluice, pg, maria, extra=None, workers=2):
    myport = free_port()
    main = {"mysql_listen_port": myport, "pool_mode": "transaction", "default_pool_size": 2,
            "reserve_pool_size": 0, "admin_users": "sluice_test", "query_wait_timeout": 30}
    main.update(extra or {})
    dbs = {"sluicedb": pg.db_line("sluicedb"), "mydb": maria.db_line("mydb")}
    s = sluice(main, databases=dbs, workers=workers)
    s.myport = myport
    return s


def connect(s, autocommit=True):
    return pymysql.connect(host="127.0.0.1", port=s.myport, user="sluice_test", password="test_pw",
                           database="mydb", connect_timeout=10, read_timeout=30, write_timeout=30,
                           autocommit=autocommit)


def one(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()


def close(conn):
    if conn.open:
        conn.close()


def local_port(conn):
    return conn._sock.getsockname()[1]


def conn_id(conn):
    """The connection id of sluice's greeting (its KILL / cancel key)."""
    return conn.server_thread_id[0]


def wait_held_by(s, conns, pid, new, timeout=10.0):
    """Wait until every connection in conns is served by process pid."""
    deadline = time.monotonic() + timeout
    while True:
        where = {local_port(c): holder(s.myport, local_port(c), [s.pid, new.pid]) for c in conns}
        if all(w == pid for w in where.values()):
            return
        assert time.monotonic() < deadline, (f"not all clients on pid {pid} (old {s.pid}, new "
                                             f"{new.pid}): {where}\nold log:\n{tail(s.log_text(), 20)}"
                                             f"\nnew log:\n{tail(new.log_text(), 20)}")
        time.sleep(0.1)


def fds_cancel(s, port):
    """SHOW FDS' cancel cell for the client whose port is `port`."""
    rows = [r for r in admin_show(s, "SHOW FDS") if r.get("port") == str(port)]
    assert rows, f"no SHOW FDS row for client port {port}"
    return int(rows[0]["cancel"])


def fresh_table(maria, name):
    maria.sql(f"DROP TABLE IF EXISTS mydb.{name}; DROP TABLE IF EXISTS otherdb.{name};"
              f"CREATE TABLE mydb.{name} (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB;"
              f"CREATE TABLE otherdb.{name} (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB;")


# --------------------------------------------------------------------------
# online restart

def test_restart_keeps_mysql_clients_with_schema_and_autocommit(sluice, pg, maria, restarter):
    fresh_table(maria, "ho_t")
    s = start(sluice, pg, maria)
    plain = connect(s)
    other = connect(s)
    manual = connect(s, autocommit=False)
    both = connect(s, autocommit=False)
    in_tx = connect(s)
    conns = [plain, other, manual, both, in_tx]
    try:
        assert one(plain, "SELECT DATABASE()") == ("mydb",)
        with other.cursor() as cur:
            cur.execute("USE otherdb")
        assert one(other, "SELECT DATABASE()") == ("otherdb",)
        # autocommit off, between transactions: a committed one behind it
        with manual.cursor() as cur:
            cur.execute("INSERT INTO ho_t VALUES (1, 'manual')")
        manual.commit()
        assert one(manual, "SELECT @@autocommit") == (0,)
        manual.commit()
        with both.cursor() as cur:
            cur.execute("USE otherdb")
            cur.execute("INSERT INTO ho_t VALUES (2, 'both')")
        both.commit()
        assert one(both, "SELECT DATABASE(), @@autocommit") == ("otherdb", 0)
        both.commit()
        # a transaction open across the restart: goes over at its COMMIT
        with in_tx.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("INSERT INTO ho_t VALUES (3, 'in_tx')")
        ids = {local_port(c): conn_id(c) for c in conns}
        assert len(set(ids.values())) == len(conns)
        for c in conns:
            assert holder(s.myport, local_port(c), [s.pid]) == s.pid

        new = restarter(s)
        idle = [plain, other, manual, both]
        wait_held_by(s, idle, new.pid, new)
        # the open transaction keeps its server on the old process
        assert holder(s.myport, local_port(in_tx), [s.pid, new.pid]) == s.pid
        assert s.alive()
        assert one(in_tx, "SELECT v FROM ho_t WHERE id = 3") == ("in_tx",)
        in_tx.commit()
        rc = wait_old_exit(s, 10.0, new)
        assert rc == 0, f"old sluice exit status {rc}"
        assert new.alive(), tail(new.log_text())
        assert holder(s.myport, local_port(in_tx), [new.pid]) == new.pid
        # the new process counted them (logged once the old one is gone)
        deadline = time.monotonic() + 5
        while not (m := re.search(r"online restart complete: (\d+) client", new.log_text())):
            assert time.monotonic() < deadline, tail(new.log_text())
            time.sleep(0.1)
        assert int(m.group(1)) >= len(conns), tail(new.log_text())

        # the same connections, served by the new process, same state
        assert one(plain, "SELECT DATABASE(), @@autocommit") == ("mydb", 1)
        assert one(other, "SELECT DATABASE(), @@autocommit") == ("otherdb", 1)
        assert one(other, "SELECT v FROM ho_t WHERE id = 2") == ("both",)
        assert one(manual, "SELECT DATABASE(), @@autocommit") == ("mydb", 0)
        assert one(both, "SELECT DATABASE(), @@autocommit") == ("otherdb", 0)
        assert one(in_tx, "SELECT DATABASE(), v FROM ho_t WHERE id = 3") == ("mydb", "in_tx")
        # autocommit off still means a transaction: a rollback undoes
        with manual.cursor() as cur:
            cur.execute("INSERT INTO ho_t VALUES (4, 'rolled back')")
        manual.rollback()
        assert one(plain, "SELECT COUNT(*) FROM ho_t WHERE id = 4") == (0,)
        with both.cursor() as cur:
            cur.execute("INSERT INTO ho_t VALUES (5, 'kept')")
        both.commit()
        assert maria.sql("SELECT v FROM otherdb.ho_t WHERE id = 5").strip() == "kept"
        # USE still works after the move
        with other.cursor() as cur:
            cur.execute("USE mydb")
        assert one(other, "SELECT DATABASE()") == ("mydb",)
        # each keeps the connection id it got from the old process
        for c in conns:
            assert fds_cancel(s, local_port(c)) == ids[local_port(c)]
            assert holder(s.myport, local_port(c), [new.pid]) == new.pid
        # and a new MySQL client is served by the new process too
        with connect(s) as c:
            assert one(c, "SELECT 'new serves'") == ("new serves",)
            assert holder(s.myport, local_port(c), [new.pid]) == new.pid
    finally:
        for c in conns:
            close(c)


def test_pinned_mysql_client_stays_on_old_process(sluice, pg, maria, restarter):
    s = start(sluice, pg, maria)
    pinned = connect(s)
    idle = connect(s)
    try:
        with pinned.cursor() as cur:
            cur.execute("SET @ho_x = 42")  # a user variable: the session is its server's
        thread = one(pinned, "SELECT CONNECTION_ID()")[0]
        assert one(idle, "SELECT 1") == (1,)
        new = restarter(s)
        wait_held_by(s, [idle], new.pid, new)
        assert one(idle, "SELECT 'moved'") == ("moved",)
        # the pinned one stays, with its server and its variable
        time.sleep(0.5)
        assert s.alive(), f"old process exited with a pinned client; log:\n{tail(s.log_text())}"
        assert holder(s.myport, local_port(pinned), [s.pid, new.pid]) == s.pid
        assert one(pinned, "SELECT @ho_x, CONNECTION_ID()") == (42, thread)
        pinned.close()
        rc = wait_old_exit(s, 10.0, new)
        assert rc == 0, f"old sluice exit status {rc}"
        assert new.alive()
        assert one(idle, "SELECT 'still served'") == ("still served",)
    finally:
        close(pinned)
        close(idle)


# --------------------------------------------------------------------------
# graceful shutdown

def test_graceful_shutdown_lets_mysql_transactions_finish(sluice, pg, maria):
    fresh_table(maria, "ho_s")
    s = start(sluice, pg, maria)
    idle = connect(s)
    tx = connect(s)
    try:
        assert one(idle, "SELECT 1") == (1,)
        with tx.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("INSERT INTO ho_s VALUES (1, 'finished')")
        iport = local_port(idle)
        s.proc.send_signal(signal.SIGTERM)
        # the idle client goes at once (its next tick)...
        deadline = time.monotonic() + 10
        while holder(s.myport, iport, [s.pid]) == s.pid:
            assert time.monotonic() < deadline, tail(s.log_text())
            time.sleep(0.1)
        with pytest.raises(pymysql.err.OperationalError) as e:
            one(idle, "SELECT 1")
        # 1053 ER_SERVER_SHUTDOWN when the query could still be written
        assert e.value.args[0] in (1053, 2006, 2013), e.value.args
        # ...the one in a transaction finishes it, and goes at its COMMIT
        assert s.alive()
        assert one(tx, "SELECT v FROM ho_s WHERE id = 1") == ("finished",)
        tx.commit()
        rc = wait_old_exit(s, 10.0)
        assert rc == 0, f"sluice exit status {rc}"
        assert maria.sql("SELECT v FROM mydb.ho_s WHERE id = 1").strip() == "finished"
    finally:
        close(idle)
        close(tx)


# --------------------------------------------------------------------------
# adaptive_workers

def test_adaptive_workers_move_mysql_clients(sluice, pg, maria):
    mport = free_port()
    s = start(sluice, pg, maria, workers=2,
              extra={"metrics_port": mport, "adaptive_workers": 1, "adaptive_workers_busy": 1,
                     "default_pool_size": 4})
    s.mport = mport
    deadline = time.monotonic() + 5
    while True:
        try:
            metrics(s)
            break
        except OSError:
            assert time.monotonic() < deadline, f"metrics port not answering:\n{tail(s.log_text())}"
            time.sleep(0.05)
    # (connection, schema, autocommit) for each client
    conns = []
    try:
        for i in range(6):
            c = connect(s, autocommit=i % 2 == 0)
            schema = "otherdb" if i % 3 == 0 else "mydb"
            if schema != "mydb":
                with c.cursor() as cur:
                    cur.execute(f"USE {schema}")
            if not c.get_autocommit():
                c.commit()
            conns.append((c, schema, 1 if c.get_autocommit() else 0))
        # (they may be spread already: connecting is load too, at 1%)

        def check_all(n):
            for c, schema, ac in conns:
                for _ in range(n):
                    assert one(c, "SELECT DATABASE(), @@autocommit") == (schema, ac)
                if not ac:
                    c.commit()

        # traffic until the balance has moved some and both workers have
        # clients (a move is counted when decided, done at a safe point)
        deadline = time.monotonic() + 30
        while True:
            check_all(20)
            m = metrics(s)
            if m["sluice_client_moves_total"] > 0 and min(per_worker(m, 2)) >= 1:
                break
            assert time.monotonic() < deadline, f"no MySQL client moved: {per_worker(m, 2)}, " \
                                                f"{m['sluice_client_moves_total']} moves"
        check_all(3)
        # idle now: back to one worker, and the clients follow to worker 0
        deadline = time.monotonic() + 20
        while True:
            m = metrics(s)
            if m["sluice_workers_active"] == 1 and per_worker(m, 2) == [6, 0]:
                break
            assert time.monotonic() < deadline, f"clients not back on worker 0: {per_worker(m, 2)}, " \
                                                f"active {m['sluice_workers_active']}"
            time.sleep(0.1)
        check_all(2)
        # a transaction on a moved client still commits
        c, schema, ac = conns[1]
        with c.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS ho_w (id INT PRIMARY KEY) ENGINE=InnoDB")
            cur.execute("DELETE FROM ho_w")
            cur.execute("INSERT INTO ho_w VALUES (7)")
        c.commit()
        assert maria.sql(f"SELECT id FROM {schema}.ho_w").strip() == "7"
    finally:
        for c, _, _ in conns:
            close(c)


def test_restart_keeps_prepared_statements_and_their_types(sluice, pg, maria, restarter):
    """A client's server-side statement (COM_STMT_PREPARE, bound types sent
    once, then executes without them, as libmariadb does) goes on working
    on the new process, which prepares it on its own servers."""
    import struct
    from test_mysql_ops import command, raw_session, read_packet

    s = start(sluice, pg, maria)
    sock = raw_session(s)

    def until_eof():
        while True:
            _, p = read_packet(sock)
            if p[0] == 0xFE and len(p) < 9:
                return

    command(sock, b"\x16SELECT ? + 1")
    _, ok = read_packet(sock)
    assert ok[0] == 0x00, ok
    stmt_id, ncols, nparams = struct.unpack("<IHH", ok[1:9])
    assert nparams == 1
    until_eof()  # parameter definitions
    if ncols:
        until_eof()  # column definitions

    def execute(value, with_types):
        body = b"\x17" + struct.pack("<IBI", stmt_id, 0, 1) + b"\x00"  # NULL bitmap
        body += b"\x01" + struct.pack("<H", 8) if with_types else b"\x00"  # LONGLONG
        body += struct.pack("<q", value)
        command(sock, body)
        _, first = read_packet(sock)
        assert first[0] not in (0x00, 0xFF), first
        until_eof()  # column definitions
        _, row = read_packet(sock)
        until_eof()
        return struct.unpack("<q", row[2:10])[0]

    assert execute(41, True) == 42
    assert execute(9, False) == 10
    new = restarter(s)
    wait_held_by(s, [type("C", (), {"_sock": sock})()], new.pid, new)
    assert wait_old_exit(s, 10.0, new) == 0
    assert execute(99, False) == 100
    sock.close()
