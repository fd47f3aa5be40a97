"""Workload mirroring (issue 18): `mirror = OTHER_DB` replays a share
(`mirror_fraction`) of a database entry's client transactions on OTHER_DB's
servers, compares the answers (command tag, row count, rows) and counts in
SHOW MIRRORS what was sent, dropped, failed and differed. Clients only ever
see the primary's answers: a dead or slow mirror changes nothing for them.

Two real clusters: the primary (with the routing schema, routing_helpers)
and an independent mirror with the same schema. Columns of SHOW MIRRORS
are looked up by name."""

import socket
import threading
import time

import pytest

from admin_helpers import ADMIN, USERLIST
from conftest import PGBENCH, Worker, free_port
from routing_helpers import (column, console_rows, lone_primary, mirror,  # noqa: F401
                             rsluice, value, wait_for)

pytestmark = [pytest.mark.sluice_only, pytest.mark.xdist_group("mirror")]


def start(rsluice, primary, mirror_line, fraction=None, **main):
    extra = f" mirror_fraction={fraction}" if fraction is not None else ""
    ini = {"pool_mode": "transaction", "default_pool_size": 4, "admin_users": ADMIN}
    ini.update(main)
    return rsluice(ini, userlist=USERLIST, databases={
        "sluicedb": primary.db_line("sluicedb") + " mirror=mirrordb" + extra,
        "mirrordb": mirror_line,
    })


def mirrors(s):
    """SHOW MIRRORS' row for sluicedb, with the counters as ints."""
    rows = [r for r in console_rows(s, "MIRRORS") if r["database"] == "sluicedb"]
    assert len(rows) == 1, rows
    r = dict(rows[0])
    assert column(r, "mirror") == "mirrordb", r
    for k in ("sent", "dropped", "errors", "differed"):
        r[k] = int(column(r, k))
    return r


def count(node, sql, params=None):
    return node.sql(sql, params, dbname="sluicedb")[0][0]


def tag(prefix):
    return f"{prefix}-{time.monotonic_ns()}"


def test_transactions_reach_the_mirror(rsluice, lone_primary, mirror):
    s = start(rsluice, lone_primary, mirror.db_line("sluicedb"), mirror_queue_size=10000)
    t = tag("reach")
    with s.connect() as c:
        for i in range(50):
            c.execute(f"INSERT INTO rt_items (client, v) VALUES (10, '{t}')")
        for i in range(10):
            c.execute("BEGIN")
            c.execute(f"INSERT INTO rt_items (client, v) VALUES (10, '{t}')")
            c.execute(f"UPDATE rt_items SET client = 11 WHERE v = '{t}' AND client = 10")
            c.execute("COMMIT")
    assert count(lone_primary, "SELECT count(*) FROM rt_items WHERE v = %s", (t,)) == 60
    wait_for(lambda: count(mirror, "SELECT count(*) FROM rt_items WHERE v = %s", (t,)) == 60,
             20, "the 60 rows reaching the mirror")
    wait_for(lambda: count(mirror, "SELECT count(*) FROM rt_items WHERE v = %s AND client = 11",
                           (t,)) == 60, 20, "the updates reaching the mirror")
    m = wait_for(lambda: (lambda r: r if r["sent"] >= 60 else None)(mirrors(s)), 10,
                 "SHOW MIRRORS counting 60 transactions")
    assert m["dropped"] == 0 and m["errors"] == 0, m


def test_pgbench_reaches_the_mirror(rsluice, lone_primary, mirror):
    for node in (lone_primary, mirror):
        r = node._run([PGBENCH, "-i", "-q", "-s", "1", "-h", node.sockdir, "-p", str(node.port),
                       "-U", "postgres", "sluicedb"])
        assert r.returncode == 0, r.stdout
        node.sql("ALTER TABLE pgbench_accounts OWNER TO sluice_test; "
                 "ALTER TABLE pgbench_branches OWNER TO sluice_test; "
                 "ALTER TABLE pgbench_tellers OWNER TO sluice_test; "
                 "ALTER TABLE pgbench_history OWNER TO sluice_test", dbname="sluicedb")
    s = start(rsluice, lone_primary, mirror.db_line("sluicedb"), mirror_queue_size=10000)
    r = s.pgbench("-n", "-c", "2", "-j", "1", "-t", "50", timeout=60)
    assert r.returncode == 0, r.stderr
    assert count(lone_primary, "SELECT count(*) FROM pgbench_history") == 100
    wait_for(lambda: count(mirror, "SELECT count(*) FROM pgbench_history") == 100, 20,
             "pgbench's 100 history rows reaching the mirror")
    m = mirrors(s)
    assert m["sent"] >= 100 and m["dropped"] == 0 and m["errors"] == 0, m
    print(f"pgbench mirrored: {m}")


@pytest.mark.parametrize("sql", [
    "SELECT count(*) FROM rt_items WHERE client = {c}",
    "SELECT v FROM rt_items WHERE client = {c}",
    "UPDATE rt_items SET v = v WHERE client = {c}",
])
def test_a_different_answer_is_reported(rsluice, lone_primary, mirror, sql):
    """The mirror has a row the primary has not: a query whose answer
    depends on it differs (count, rows or command tag), and SHOW MIRRORS
    says so with the query's text. The client gets the primary's answer."""
    client = 900 + int(time.monotonic_ns() % 1000)
    mirror.sql("INSERT INTO rt_items (client, v) VALUES (%s, 'only-on-mirror')", (client,),
               dbname="sluicedb")
    s = start(rsluice, lone_primary, mirror.db_line("sluicedb"))
    q = sql.format(c=client)
    with s.connect() as c:
        c.execute("SELECT 1")  # a query that agrees
        cur = c.execute(q)
        if cur.description:
            rows = cur.fetchall()
            assert rows in ([(0,)], []), rows
        else:
            assert cur.rowcount == 0
    m = wait_for(lambda: (lambda r: r if r["differed"] >= 1 else None)(mirrors(s)), 10,
                 "SHOW MIRRORS counting the difference")
    last = column(m, "last_differing_query", "last_difference", "last_differed_query")
    assert last and f"client = {client}" in last, m
    assert m["differed"] == 1, m  # SELECT 1 agreed


def test_agreeing_answers_are_not_reported(rsluice, lone_primary, mirror):
    s = start(rsluice, lone_primary, mirror.db_line("sluicedb"))
    with s.connect() as c:
        for i in range(20):
            assert value(c, f"SELECT {i} + 1") == i + 1
            c.execute("SELECT x, md5(x::text) FROM generate_series(1, 50) x")
    m = wait_for(lambda: (lambda r: r if r["sent"] >= 40 else None)(mirrors(s)), 10,
                 "SHOW MIRRORS counting 40 transactions")
    assert m["differed"] == 0 and m["errors"] == 0, m
    for k in ("avg_primary_us", "avg_mirror_us"):
        if k in m:
            assert int(m[k]) > 0, m


@pytest.mark.parametrize("fraction", ["0", "0.0"])
def test_fraction_zero_sends_nothing(rsluice, lone_primary, mirror, fraction):
    s = start(rsluice, lone_primary, mirror.db_line("sluicedb"), fraction=fraction)
    t = tag("none")
    with s.connect() as c:
        for i in range(30):
            c.execute(f"INSERT INTO rt_items (client, v) VALUES (12, '{t}')")
    time.sleep(1)  # what would have been mirrored has had time to arrive
    assert count(mirror, "SELECT count(*) FROM rt_items WHERE v = %s", (t,)) == 0
    # SHOW MIRRORS: no row (nothing ever mirrored) or one with nothing sent
    rows = [r for r in console_rows(s, "MIRRORS") if r["database"] == "sluicedb"]
    assert all(int(r["sent"]) == 0 for r in rows), rows


def test_fraction_half_sends_some(rsluice, lone_primary, mirror):
    """200 transactions at 0.5: the chance that none or all are mirrored
    is 2^-199."""
    s = start(rsluice, lone_primary, mirror.db_line("sluicedb"), fraction="0.5",
              mirror_queue_size=10000)
    t = tag("half")
    with s.connect() as c:
        for i in range(200):
            c.execute(f"INSERT INTO rt_items (client, v) VALUES (13, '{t}')")

    def settled():
        r = mirrors(s)
        n = count(mirror, "SELECT count(*) FROM rt_items WHERE v = %s", (t,))
        return (r, n) if r["sent"] > 0 and n == r["sent"] else None
    m, n = wait_for(settled, 20, "the mirrored share arriving")
    assert 0 < n < 200, (n, m)
    print(f"mirror_fraction 0.5: {n} of 200 mirrored")


def _clients_unaffected(s, n=50):
    """n transactions through sluice, each answered correctly."""
    t = tag("unaffected")
    with s.connect() as c:
        for i in range(n):
            assert value(c, f"SELECT {i}") == i
            c.execute(f"INSERT INTO rt_items (client, v) VALUES (14, '{t}')")
    return t


def test_dead_mirror_changes_nothing_for_clients(rsluice, lone_primary):
    s = start(rsluice, lone_primary, f"host=127.0.0.1 port={free_port()} dbname=sluicedb")
    w = Worker(_clients_unaffected, s)
    w.start()
    t = w.get(30)
    assert count(lone_primary, "SELECT count(*) FROM rt_items WHERE v = %s", (t,)) == 50
    m = wait_for(lambda: (lambda r: r if r["errors"] + r["dropped"] > 0 else None)(mirrors(s)),
                 15, "SHOW MIRRORS counting the dead mirror's failures")
    print(f"dead mirror: {m}")


class BlackHole:
    """A mirror that accepts connections and never answers: its queue
    fills up."""

    def __init__(self):
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.port = self.lsock.getsockname()[1]
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            self.socks.append(c)

    def close(self):
        self.lsock.close()
        for c in self.socks:
            c.close()


def test_stuck_mirror_drops_what_overflows(rsluice, lone_primary):
    hole = BlackHole()
    try:
        s = start(rsluice, lone_primary, f"host=127.0.0.1 port={hole.port} dbname=sluicedb",
                  mirror_queue_size=5)
        w = Worker(_clients_unaffected, s, 100)
        w.start()
        w.get(30)
        m = wait_for(lambda: (lambda r: r if r["dropped"] > 0 else None)(mirrors(s)), 10,
                     "SHOW MIRRORS counting dropped transactions")
        print(f"stuck mirror: {m}")
    finally:
        hole.close()


def test_mirror_dying_mid_workload(rsluice, lone_primary):
    """A real mirror crashes while clients work: they go on unharmed."""
    from routing_helpers import mirror_node, stop_nodes
    m = mirror_node()
    try:
        s = start(rsluice, lone_primary, m.db_line("sluicedb"))
        _clients_unaffected(s, 20)
        m.crash()
        w = Worker(_clients_unaffected, s, 50)
        w.start()
        w.get(30)
        r = wait_for(lambda: (lambda r: r if r["errors"] + r["dropped"] > 0 else None)(mirrors(s)),
                     15, "SHOW MIRRORS counting the crashed mirror's failures")
        print(f"crashed mirror: {r}")
    finally:
        stop_nodes(m)


def test_show_mirrors_columns(rsluice, lone_primary, mirror):
    s = start(rsluice, lone_primary, mirror.db_line("sluicedb"))
    with s.connect() as c:
        c.execute("SELECT 1")
    rows = console_rows(s, "MIRRORS")
    assert [r["database"] for r in rows] == ["sluicedb"], rows
    for k in ("database", "mirror", "sent", "dropped", "errors", "differed"):
        assert k in rows[0], rows[0]
