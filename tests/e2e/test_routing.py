"""Routing over a primary and its streaming standby (issue 18): roles found
with pg_is_in_recovery(), target_session_attrs, read_routing = auto (reads
to the standby, read-your-writes), max_standby_lag, SHOW HOSTS, failover,
and the configuration errors of these keys.

The clusters are real: a primary of the module's own and a standby made
with pg_basebackup that replays with recovery_min_apply_delay = 300ms
(routing_helpers.py). Where a statement ran is told by what the server
answers: pg_is_in_recovery() is true only on the standby, and a write on
the standby fails with SQLSTATE 25006 (read_only_sql_transaction), so a
write that succeeds ran on the primary.

The module's tests share one pair of clusters and run in one process
(xdist group "routing"); the failover tests each build and destroy a pair
of their own (group "routing_failover")."""

import threading
import time

import psycopg
import pytest

from admin_helpers import ADMIN, USERLIST
from conftest import PGBENCH, Worker, free_port
from routing_helpers import (console_rows, fresh_pair, on_standby, pair,  # noqa: F401
                             rsluice, value, wait_for, wait_replay)

pytestmark = [pytest.mark.sluice_only, pytest.mark.xdist_group("routing")]

ROLE_CHECK = 0.2          # role_check_interval of every sluice here, seconds
READ_ONLY_SQLSTATE = "25006"


def start(rsluice, databases, **main):
    ini = {"pool_mode": "transaction", "default_pool_size": 8,
           "role_check_interval": ROLE_CHECK, "admin_users": ADMIN}
    ini.update(main)
    return rsluice(ini, databases=databases, userlist=USERLIST)


def routed(rsluice, pair, **db):
    """sluice with one entry `sluicedb` over the pair, read_routing = auto
    unless db says otherwise."""
    db.setdefault("read_routing", "auto")
    return start(rsluice, {"sluicedb": pair.db_line(**db)})


def wait_roles_known(s, pair, timeout=10):
    """Wait until SHOW HOSTS knows both hosts' roles (the pool's
    monitors start with its first client)."""
    want = {pair.primary.port: "primary", pair.standby.port: "standby"}

    def known():
        rows = console_rows(s, "HOSTS")
        return {int(r["port"]): r["role"] for r in rows if r["database"] == "sluicedb"} == want
    wait_for(known, timeout, f"SHOW HOSTS showing roles {want}")


def wait_reads_on_standby(conn, timeout=10):
    """Roles are found after start-up: wait until a read reaches the standby."""
    wait_for(lambda: on_standby(conn), timeout, "a read through sluice reaching the standby")


# --------------------------------------------------------------------------
# the harness itself (no sluice): the standby replicates with its delay

def test_harness_standby_replays_with_delay(pair):
    assert pair.primary.in_recovery() is False
    assert pair.standby.in_recovery() is True
    tag = f"h{time.monotonic_ns()}"
    t0 = time.monotonic()
    pair.primary.sql("INSERT INTO rt_items (v) VALUES (%s)", (tag,), dbname="sluicedb")
    # just after the commit the standby has not applied it (300 ms delay)
    assert pair.standby.sql("SELECT count(*) FROM rt_items WHERE v = %s", (tag,),
                            dbname="sluicedb")[0][0] == 0 or time.monotonic() - t0 > 0.3
    wait_for(lambda: pair.standby.sql("SELECT 1 FROM rt_items WHERE v = %s", (tag,),
                                      dbname="sluicedb"), 10, "replay")
    with pair.standby.connect_tcp() as c:
        with pytest.raises(psycopg.Error) as ei:
            c.execute("INSERT INTO rt_items (v) VALUES ('no')")
        assert ei.value.sqlstate == READ_ONLY_SQLSTATE


@pytest.mark.xdist_group("routing_failover")
def test_harness_promote_and_rejoin(fresh_pair):
    p = fresh_pair
    p.primary.crash()
    assert not p.primary.answers()
    p.standby.promote()
    p.standby.sql("INSERT INTO rt_items (v) VALUES ('promoted')", dbname="sluicedb")
    old_port = p.primary.port
    rejoined = p.rejoin(p.primary, p.standby)
    assert rejoined.port == old_port and rejoined.in_recovery() is True
    assert rejoined.sql("SELECT count(*) FROM rt_items WHERE v = 'promoted'",
                        dbname="sluicedb")[0][0] == 1
    rejoined.crash()
    rejoined.restart()
    wait_for(rejoined.answers, 30, "the restarted standby answering")
    assert rejoined.in_recovery() is True
    wait_replay(p.standby, rejoined)


# --------------------------------------------------------------------------
# read_routing = auto

def test_reads_go_to_the_standby_and_writes_work(rsluice, pair):
    s = routed(rsluice, pair)
    with s.connect() as c:
        wait_reads_on_standby(c)
        answers = [on_standby(c) for _ in range(50)]
        assert answers == [True] * 50, answers
        # a write from the same client works: it went to the primary
        c.execute("INSERT INTO rt_items (client, v) VALUES (1, 'reads-test')")
    assert pair.primary.sql("SELECT count(*) FROM rt_items WHERE v = 'reads-test'",
                            dbname="sluicedb")[0][0] == 1


def test_begin_read_only_runs_on_the_standby(rsluice, pair):
    s = routed(rsluice, pair)
    with s.connect() as c:
        wait_reads_on_standby(c)
        for _ in range(10):
            c.execute("BEGIN READ ONLY")
            assert on_standby(c) is True
            assert value(c, "SELECT count(*) >= 0 FROM rt_items") is True
            assert on_standby(c) is True
            c.execute("COMMIT")


def test_writes_and_locking_reads_go_to_the_primary(rsluice, pair):
    """Every one of these would fail on the standby (25006 or 'cannot
    execute nextval() in a read-only transaction'), so each success means
    the primary ran it."""
    s = routed(rsluice, pair)
    with s.connect() as c:
        wait_reads_on_standby(c)
    stmts = [
        "INSERT INTO rt_items (client, v) VALUES (2, 'w')",
        "UPDATE rt_items SET v = 'w2' WHERE client = 2",
        "SELECT id FROM rt_items WHERE client = 2 FOR UPDATE",
        "SELECT id FROM rt_items WHERE client = 2 FOR SHARE",
        "SELECT nextval('rt_seq')",
        "SELECT setval('rt_seq', 100)",
        "WITH d AS (DELETE FROM rt_items WHERE client = 2 AND v = 'nothing' RETURNING id) "
        "SELECT count(*) FROM d",
        "SELECT txid_current()",
        "DELETE FROM rt_items WHERE client = 2 AND v = 'nothing'",
    ]
    for i in range(3):
        # a fresh client each round: none has written before (no read-your-writes)
        for sql in stmts:
            with s.connect() as c:
                c.execute(sql)
    # on one client too, with reads in between
    with s.connect() as c:
        for sql in stmts:
            c.execute("SELECT count(*) FROM rt_items")
            c.execute(sql)


def test_extended_protocol_writes_go_to_the_primary(rsluice, pair):
    s = routed(rsluice, pair)
    with s.connect() as c:
        wait_reads_on_standby(c)
    for i in range(10):
        with s.connect() as c:
            # parameters: psycopg sends Parse/Bind/Execute
            c.execute("INSERT INTO rt_items (client, v) VALUES (%s, %s)", (3, f"ext{i}"))
            c.execute("SELECT nextval(%s)", ("rt_seq",))
            c.execute("UPDATE rt_items SET v = %s WHERE client = %s AND v = %s", ("extu", 3, f"ext{i}"))
            c.execute("SELECT id FROM rt_items WHERE client = %s FOR UPDATE", (3,))
    # a named prepared statement, executed several times
    with s.connect(prepare_threshold=0) as c:
        for i in range(5):
            c.execute("INSERT INTO rt_items (client, v) VALUES (%s, %s)", (3, f"prep{i}"))
    assert pair.primary.sql("SELECT count(*) FROM rt_items WHERE client = 3",
                            dbname="sluicedb")[0][0] == 15


def test_extended_protocol_reads_go_to_the_standby(rsluice, pair):
    s = routed(rsluice, pair)
    with s.connect() as c:
        wait_reads_on_standby(c)
        for i in range(10):
            # parameters: Parse/Bind/Execute/Sync in one batch
            assert c.execute("SELECT pg_is_in_recovery() WHERE %s = %s", (i, i)).fetchone() == (True,)
    with s.connect(prepare_threshold=0) as c:  # named prepared statements
        wait_reads_on_standby(c)
        for i in range(5):
            assert c.execute("SELECT pg_is_in_recovery() WHERE %s >= 0", (i,)).fetchone() == (True,)


def test_libpq_finds_the_primary_through_sluice(rsluice, pair):
    """libpq's own target_session_attrs asks the server (SHOW
    transaction_read_only, in_hot_standby): through a routed entry it must
    find sluice read-write and not in hot standby."""
    s = routed(rsluice, pair)
    with s.connect() as c:
        wait_reads_on_standby(c)
        assert value(c, "SHOW transaction_read_only") == "off"
    for tsa in ("read-write", "primary"):
        r = s.psql("-At", "-c", "SELECT 1", conn_extra=f"target_session_attrs={tsa}", timeout=30)
        assert r.returncode == 0 and r.stdout.strip() == "1", (tsa, r.stdout, r.stderr)


@pytest.fixture(scope="module")
def pgbench_tables(pair):
    r = pair.primary._run([PGBENCH, "-i", "-q", "-s", "1", "-h", pair.primary.sockdir,
                           "-p", str(pair.primary.port), "-U", "postgres", "sluicedb"])
    assert r.returncode == 0, r.stdout
    pair.primary.sql("GRANT ALL ON pgbench_accounts, pgbench_branches, pgbench_tellers, "
                     "pgbench_history TO sluice_test", dbname="sluicedb")
    wait_replay(pair.primary, pair.standby)


def standby_reads(s, pair):
    rows = console_rows(s, "HOSTS")
    return sum(int(r["reads"]) for r in rows
               if r["database"] == "sluicedb" and int(r["port"]) == pair.standby.port)


@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_pgbench(rsluice, pair, pgbench_tables, mode):
    """pgbench -S through a routed entry reads from the standby; the
    TPC-B-like script's transactions write, so they all run on the primary
    (pgbench stops at the first error)."""
    s = routed(rsluice, pair)
    with s.connect() as c:
        wait_reads_on_standby(c)
    before = standby_reads(s, pair)
    r = s.pgbench("-n", "-S", "-M", mode, "-c", "4", "-j", "2", "-t", "100", timeout=60)
    assert r.returncode == 0, r.stderr
    assert standby_reads(s, pair) - before >= 400
    r = s.pgbench("-n", "-M", mode, "-c", "2", "-j", "1", "-t", "50", timeout=60)
    assert r.returncode == 0, r.stderr


def test_transaction_that_writes_stays_on_the_primary(rsluice, pair):
    """A transaction begun with a plain BEGIN may write: all of it runs on
    the primary, its reads included."""
    s = routed(rsluice, pair)
    with s.connect() as c:
        wait_reads_on_standby(c)
        c.execute("BEGIN")
        assert on_standby(c) is False
        c.execute("INSERT INTO rt_items (client, v) VALUES (4, 'in-tx')")
        assert c.execute("SELECT count(*) FROM rt_items WHERE client = 4").fetchone()[0] == 1
        c.execute("COMMIT")


def _writer(s, client, n, stale, errors):
    """Insert a unique row, read it back at once (simple protocol, a plain
    SELECT: a read that would go to the standby), n times."""
    with s.connect() as c:
        for i in range(n):
            v = f"ryw-{client}-{i}"
            rid = c.execute(f"INSERT INTO rt_items (client, v) VALUES ({client}, '{v}') "
                            "RETURNING id").fetchone()[0]
            got = c.execute(f"SELECT v FROM rt_items WHERE id = {rid}").fetchall()
            if got != [(v,)]:
                stale.append((client, i, rid, got))
    return n


def test_read_your_writes(rsluice, pair):
    """4 clients x 60 write-then-read-back pairs while the standby applies
    WAL 300 ms late: no client ever misses its own row; a client that did
    not write reads from the standby all along; once the standby has
    caught up, the writers' reads go back to it."""
    s = routed(rsluice, pair)
    with s.connect() as c:
        wait_reads_on_standby(c)
    stale, errors = [], []
    writers = [Worker(_writer, s, 100 + k, 60, stale, errors) for k in range(4)]
    reader_answers = []
    done = threading.Event()

    def reader():
        with s.connect() as c:
            while not done.is_set():
                reader_answers.append(on_standby(c))
                time.sleep(0.01)

    r = Worker(reader)
    r.start()
    for w in writers:
        w.start()
    try:
        total = sum(w.get(120) for w in writers)
    finally:
        done.set()
    r.get(30)
    assert total == 240
    assert stale == [], f"{len(stale)} stale reads of a client's own write, first: {stale[:5]}"
    assert reader_answers and all(reader_answers), \
        f"the reader that never wrote was sent to the primary " \
        f"{reader_answers.count(False)} times out of {len(reader_answers)}"
    # Read-your-writes ends once the standby has replayed the client's commit.
    with s.connect() as c:
        c.execute("INSERT INTO rt_items (client, v) VALUES (199, 'ryw-last')")
        assert c.execute("SELECT v FROM rt_items WHERE client = 199").fetchall() == [("ryw-last",)]
        wait_replay(pair.primary, pair.standby)
        wait_for(lambda: on_standby(c), 10, "the writer's reads going back to the standby")


@pytest.mark.parametrize("limit", ["1MB", "1s"])
def test_max_standby_lag_sends_reads_to_the_primary(rsluice, pair, limit):
    """The standby's replay is paused while the primary goes on writing
    (4 MB of WAL at once, then a row now and then): once it is further
    behind than max_standby_lag (in bytes or in time) reads go to the
    primary; once replay resumes and catches up they go back to it."""
    s = routed(rsluice, pair, max_standby_lag=limit)
    with s.connect() as c:
        wait_reads_on_standby(c)
        # the client that reads never writes (no read-your-writes here)
        pair.standby.sql("SELECT pg_wal_replay_pause()")
        try:
            pair.primary.sql("INSERT INTO rt_items (client, v) "
                             "SELECT 5, repeat('x', 1000) FROM generate_series(1, 4000)",
                             dbname="sluicedb")

            def on_primary():
                pair.primary.sql("INSERT INTO rt_items (client, v) VALUES (5, 'tick')",
                                 dbname="sluicedb")
                return not on_standby(c)
            wait_for(on_primary, 15, "reads leaving the lagging standby", interval=0.2)
            answers = [on_standby(c) for _ in range(20)]
            assert answers == [False] * 20, answers
        finally:
            pair.standby.sql("SELECT pg_wal_replay_resume()")
        pair.primary.sql("DELETE FROM rt_items WHERE client = 5", dbname="sluicedb")
        wait_replay(pair.primary, pair.standby)
        wait_for(lambda: on_standby(c), 10, "reads coming back to the standby")


def test_max_standby_lag_as_a_duration_starts(rsluice, pair):
    s = routed(rsluice, pair, max_standby_lag="5s")
    with s.connect() as c:
        wait_reads_on_standby(c)


def test_read_routing_off_sends_reads_to_the_primary(rsluice, pair):
    s = routed(rsluice, pair, read_routing="off")
    with s.connect() as c:
        answers = [on_standby(c) for _ in range(20)]
    assert answers == [False] * 20


def test_session_mode_clients_stay_on_the_primary(rsluice, pair):
    """A session-mode client keeps one server: the primary's."""
    s = start(rsluice, {"sluicedb": pair.db_line(read_routing="auto")}, pool_mode="session")
    for _ in range(3):
        with s.connect() as c:
            answers = [on_standby(c) for _ in range(10)]
            c.execute("INSERT INTO rt_items (client, v) VALUES (15, 'session')")
        assert answers == [False] * 10


# --------------------------------------------------------------------------
# target_session_attrs (read_routing off): which host the entry uses

@pytest.mark.parametrize("tsa,want_standby", [
    ("standby", True), ("read-only", True), ("prefer-standby", True),
    ("primary", False), ("read-write", False), (None, False)])
def test_target_session_attrs_picks_the_host(rsluice, pair, tsa, want_standby):
    """The wrong host is listed first, so a pooler that just takes the
    first host fails."""
    extra = {"target_session_attrs": tsa} if tsa else {}
    order = ("primary", "standby") if want_standby else ("standby", "primary")
    s = start(rsluice, {"sluicedb": pair.db_line(order=order, **extra)})
    with s.connect() as c:  # the pool, and its monitors, start with a first client
        c.execute("SELECT 1")
    wait_roles_known(s, pair)
    # roles are found after start-up: wait for the first answer from the right host
    def right():
        with s.connect() as c:
            return on_standby(c) is want_standby
    wait_for(right, 10, f"target_session_attrs={tsa} reaching the right host")
    for _ in range(10):
        with s.connect() as c:
            assert on_standby(c) is want_standby
            if not want_standby:
                c.execute("INSERT INTO rt_items (client, v) VALUES (6, 'tsa')")
            else:
                with pytest.raises(psycopg.Error) as ei:
                    c.execute("INSERT INTO rt_items (client, v) VALUES (6, 'tsa')")
                assert ei.value.sqlstate == READ_ONLY_SQLSTATE


def test_target_session_attrs_any_answers(rsluice, pair):
    s = start(rsluice, {"sluicedb": pair.db_line(order=("standby", "primary"),
                                                 target_session_attrs="any")})
    for _ in range(5):
        with s.connect() as c:
            assert value(c, "SELECT 1") == 1


def test_prefer_standby_falls_back_to_the_primary(rsluice, pair):
    dead = free_port()
    line = (f"host=127.0.0.1,127.0.0.1 port={dead},{pair.primary.port} dbname=sluicedb "
            f"target_session_attrs=prefer-standby")
    s = start(rsluice, {"sluicedb": line})
    for _ in range(5):
        with s.connect() as c:
            assert on_standby(c) is False


def test_standby_only_entry_without_standby_fails_clients(rsluice, pair):
    """target_session_attrs = standby and no standby listed: clients get an
    error (within query_wait_timeout), never the primary."""
    line = (f"host=127.0.0.1 port={pair.primary.port} dbname=sluicedb "
            f"target_session_attrs=standby")
    s = start(rsluice, {"sluicedb": line}, query_wait_timeout=2)
    with pytest.raises(psycopg.Error):
        with s.connect() as c:
            c.execute("SELECT pg_is_in_recovery()")


# --------------------------------------------------------------------------
# SHOW HOSTS

def test_show_hosts(rsluice, pair):
    s = routed(rsluice, pair)
    with s.connect() as c:
        wait_reads_on_standby(c)
        for _ in range(5):
            on_standby(c)

    def hosts():
        rows = [r for r in console_rows(s, "HOSTS") if r["database"] == "sluicedb"]
        by_port = {int(r["port"]): r for r in rows}
        if by_port.get(pair.standby.port, {}).get("role") == "standby" and \
                by_port.get(pair.primary.port, {}).get("role") == "primary":
            return by_port
    by_port = wait_for(hosts, 10, "SHOW HOSTS showing both roles")
    assert set(by_port) == {pair.primary.port, pair.standby.port}
    p, sb = by_port[pair.primary.port], by_port[pair.standby.port]
    assert p["user"] == "sluice_test" and p["host"] == "127.0.0.1"
    assert p["lsn"] and sb["lsn"] and "/" in p["lsn"], (p, sb)
    assert int(sb["lag_bytes"]) >= 0
    assert int(sb["reads"]) >= 5, sb


# --------------------------------------------------------------------------
# failover: each test destroys its own pair

def _insert_with_deadline(s, v, deadline_s, seen_errors):
    """Insert through sluice on fresh connections until one works; returns
    when it did. Each attempt is bounded by query_wait_timeout."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            with s.connect(connect_timeout=5) as c:
                c.execute(f"INSERT INTO rt_items (client, v) VALUES (7, '{v}')")
                return time.monotonic()
        except psycopg.Error as e:
            seen_errors.append((e.sqlstate, str(e).strip()[:200]))
        if time.monotonic() > end:
            raise AssertionError(f"no write succeeded within {deadline_s} s; errors: "
                                 f"{seen_errors[-5:]}")
        time.sleep(0.1)


def _try_write(s, v, seen_errors):
    """One write through sluice; an error is recorded, success returns True."""
    try:
        with s.connect(connect_timeout=5) as c:
            c.execute(f"INSERT INTO rt_items (client, v) VALUES (7, '{v}')")
        return True
    except psycopg.Error as e:
        seen_errors.append((e.sqlstate, str(e).strip()[:200]))
        return False


def failover_sluice(rsluice, p, read_routing="auto"):
    # query_wait_timeout bounds how long a client waits for a primary
    return start(rsluice, {"sluicedb": p.db_line(read_routing=read_routing)},
                 query_wait_timeout=5)


@pytest.mark.xdist_group("routing_failover")
@pytest.mark.timeout(120)
@pytest.mark.parametrize("read_routing", ["off", "auto"])
def test_failover(rsluice, fresh_pair, read_routing):
    """The primary crashes with a transaction open on it; the standby is
    promoted: the open transaction gets an error, writes go to the new
    primary within a bounded time, and no write ever reaches a server in
    recovery (it would fail there with 25006)."""
    p = fresh_pair
    s = failover_sluice(rsluice, p, read_routing)
    with s.connect() as c:
        c.execute("INSERT INTO rt_items (client, v) VALUES (7, 'before')")
        if read_routing == "auto":
            wait_reads_on_standby(c)
    # synchronous_commit is off: without this the crash could lose 'before'
    wait_replay(p.primary, p.standby)

    # a transaction in flight on the primary when it dies
    inflight = s.connect(autocommit=False)
    inflight.execute("INSERT INTO rt_items (client, v) VALUES (7, 'in-flight')")

    p.primary.crash()

    def finish():
        inflight.execute("INSERT INTO rt_items (client, v) VALUES (7, 'in-flight-2')")
        inflight.commit()
    w = Worker(finish)
    w.start()
    with pytest.raises(psycopg.Error):
        w.get(30)
    inflight.close()

    # Writes while there is no primary: they fail (or wait and then reach
    # the new primary); none may go to the standby.
    errors = []
    orphans = [Worker(_try_write, s, f"orphan{i}", errors) for i in range(4)]
    for o in orphans:
        o.start()
    time.sleep(1)
    t_promote = time.monotonic()
    p.standby.promote()
    for o in orphans:
        o.get(30)
    t_ok = _insert_with_deadline(s, "after", 2 * ROLE_CHECK + 15, errors)
    print(f"failover: first write {t_ok - t_promote:.2f} s after promotion; errors seen: {errors}")
    assert not [e for e in errors if e[0] == READ_ONLY_SQLSTATE], \
        f"a write was sent to a standby: {errors}"
    for i in range(10):
        with s.connect() as c:
            c.execute(f"INSERT INTO rt_items (client, v) VALUES (7, 'after{i}')")
            assert value(c, "SELECT count(*) FROM rt_items WHERE v = 'after'") == 1
            assert on_standby(c) is False  # no standby left: reads on the new primary
    got = {r[0] for r in p.standby.sql("SELECT v FROM rt_items WHERE client = 7",
                                       dbname="sluicedb")}
    assert {"before", "after"} <= got and "in-flight" not in got, got


@pytest.mark.xdist_group("routing_failover")
@pytest.mark.timeout(120)
def test_old_primary_rejoins_as_standby(rsluice, fresh_pair):
    p = fresh_pair
    s = failover_sluice(rsluice, p)
    with s.connect() as c:
        wait_reads_on_standby(c)
    old = p.primary
    old.crash()
    p.standby.promote()
    errors = []
    _insert_with_deadline(s, "after", 2 * ROLE_CHECK + 15, errors)
    rejoined = p.rejoin(old, p.standby)

    def roles():
        rows = [r for r in console_rows(s, "HOSTS") if r["database"] == "sluicedb"]
        return {int(r["port"]): r["role"] for r in rows}
    want = {p.standby.port: "primary", rejoined.port: "standby"}
    wait_for(lambda: roles() == want, 15, f"SHOW HOSTS roles becoming {want}")
    # the rejoined old primary takes reads, the promoted standby the writes
    with s.connect() as c:
        wait_reads_on_standby(c)
        for i in range(10):
            c.execute(f"INSERT INTO rt_items (client, v) VALUES (8, 'rejoin{i}')")
    assert p.standby.sql("SELECT count(*) FROM rt_items WHERE client = 8",
                         dbname="sluicedb")[0][0] == 10
    assert not [e for e in errors if e[0] == READ_ONLY_SQLSTATE], errors


@pytest.mark.xdist_group("routing_failover")
@pytest.mark.timeout(120)
def test_standby_down_sends_reads_to_the_primary(rsluice, fresh_pair):
    """The standby crashes: reads go to the primary (SHOW HOSTS says the
    standby is down); once it is back, reads return to it."""
    p = fresh_pair
    s = failover_sluice(rsluice, p)
    with s.connect() as c:
        wait_reads_on_standby(c)
    p.standby.crash()

    def read_on_primary():
        with s.connect(connect_timeout=5) as c:
            return on_standby(c) is False
    wait_for(read_on_primary, 2 * ROLE_CHECK + 15, "reads going to the primary")
    with s.connect() as c:
        answers = [on_standby(c) for _ in range(20)]
        c.execute("INSERT INTO rt_items (client, v) VALUES (9, 'standby-down')")
    assert answers == [False] * 20, answers
    rows = {int(r["port"]): r for r in console_rows(s, "HOSTS") if r["database"] == "sluicedb"}
    assert rows[p.standby.port]["role"] in ("down", "unknown"), rows
    assert rows[p.primary.port]["role"] == "primary", rows
    p.standby.restart()
    with s.connect() as c:
        wait_reads_on_standby(c, 2 * ROLE_CHECK + 15)


@pytest.mark.xdist_group("routing_failover")
@pytest.mark.timeout(120)
def test_prefer_standby_follows_the_standby(rsluice, fresh_pair):
    """prefer-standby: the standby goes down, servers go to the primary;
    it comes back, they go to it again (as libpq would on a new connection)."""
    p = fresh_pair
    s = start(rsluice, {"sluicedb": p.db_line(target_session_attrs="prefer-standby")},
              query_wait_timeout=5)

    def on(want):
        def check():
            with s.connect(connect_timeout=5) as c:
                return on_standby(c) is want
        return check
    wait_for(on(True), 10, "prefer-standby reaching the standby")
    p.standby.crash()
    wait_for(on(False), 2 * ROLE_CHECK + 15, "prefer-standby falling back to the primary")
    p.standby.restart()
    wait_for(on(True), 2 * ROLE_CHECK + 15, "prefer-standby back on the standby")


# --------------------------------------------------------------------------
# configuration errors

def _ini(pair, port, sockdir, db_extra, main_lines=()):
    lines = [
        "[databases]",                                                       # line 1
        f"sluicedb = {pair.db_line()} {db_extra}".rstrip(),                  # line 2
        f"other = {pair.db_line()}",                                         # line 3
        "my = host=127.0.0.1 port=3306 dbname=x protocol=mysql",             # line 4
        "[sluice]",                                                          # line 5
        "listen_addr = 127.0.0.1",                                           # line 6
        f"listen_port = {port}",                                             # line 7
        f"unix_socket_dir = {sockdir}",                                      # line 8
        "auth_type = trust",                                                 # line 9
        f"auth_file = {sockdir}/userlist.txt",                               # line 10
        "pool_mode = transaction",                                           # line 11
        "workers = 1",                                                       # line 12
    ]
    return "\n".join(lines + list(main_lines)) + "\n"


@pytest.mark.parametrize("extra,key", [
    ("target_session_attrs=sometimes", "target_session_attrs"),
    ("read_routing=maybe", "read_routing"),
    ("read_routing=on", "read_routing"),
    ("mirror=nosuchdb", "mirror"),
    ("mirror=sluicedb", "mirror"),
    ("mirror=my", "mirror"),
    ("mirror=other mirror_fraction=1.5", "mirror_fraction"),
    ("mirror=other mirror_fraction=-0.1", "mirror_fraction"),
    ("mirror=other mirror_fraction=half", "mirror_fraction"),
    ("read_routing=auto max_standby_lag=lots", "max_standby_lag"),
])
def test_config_error_in_database_entry(pair, run_sluice_raw, tmp_path, extra, key):
    (tmp_path / "userlist.txt").write_text('"sluice_test" "test_pw"\n')
    r, ini, elapsed = run_sluice_raw(_ini(pair, free_port(), tmp_path, extra))
    assert r.returncode is not None, "sluice kept running with an invalid config"
    assert r.returncode != 0, r.stderr
    assert f"{ini}:2" in r.stderr, r.stderr
    assert key in r.stderr, r.stderr


@pytest.mark.parametrize("line,key", [
    ("role_check_interval = soon", "role_check_interval"),
    ("mirror_queue_size = many", "mirror_queue_size"),
])
def test_config_error_in_global_key(pair, run_sluice_raw, tmp_path, line, key):
    (tmp_path / "userlist.txt").write_text('"sluice_test" "test_pw"\n')
    r, ini, elapsed = run_sluice_raw(_ini(pair, free_port(), tmp_path, "", [line]))  # line 13
    assert r.returncode not in (None, 0), r.stderr
    assert f"{ini}:13" in r.stderr and key in r.stderr, r.stderr


def test_valid_routing_keys_start(rsluice, pair):
    s = start(rsluice, {
        "sluicedb": pair.db_line(target_session_attrs="read-write", read_routing="auto",
                                 max_standby_lag="16MB", mirror="other", mirror_fraction="0.5"),
        "other": pair.db_line(target_session_attrs="any"),
    }, mirror_queue_size=100)
    with s.connect() as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
