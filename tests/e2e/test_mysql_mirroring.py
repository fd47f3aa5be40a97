"""Workload mirroring for MySQL pools (issue 18): `mirror = OTHER_DB` on a
protocol=mysql entry replays a share (`mirror_fraction`) of its clients'
transactions on OTHER_DB's servers, compares each result (an OK's affected
rows, an ERR's code, a result set's rows) and counts in SHOW MIRRORS what
was sent, dropped, failed and differed. Clients only see the primary's
answers: a dead or slow mirror changes nothing for them.

One MariaDB (the `maria` fixture) holds both sides: each test makes its
own pair of schemas, NAME_p behind the primary entry and NAME_m behind the
mirror entry, with the same tables. Real clients: pymysql (autocommit),
the mariadb command-line client, sysbench with server-side prepared
statements (--db-ps-mode=auto)."""

import re
import shutil
import subprocess
import time

import pytest

pymysql = pytest.importorskip("pymysql")

from admin_helpers import poll  # noqa: E402
from conftest import free_port, is_pgbouncer_compat  # noqa: E402

pytestmark = pytest.mark.skipif(is_pgbouncer_compat(), reason="PgBouncer has no MySQL listener")

TABLE = "CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(100), n INT NOT NULL DEFAULT 0)"


def pair(maria, name, mirror_extra=""):
    """Schemas NAME_p and NAME_m with the same empty table; mirror_extra
    is more SQL for the mirror's (a trigger, a row of its own)."""
    maria.sql(f"DROP DATABASE IF EXISTS {name}_p; DROP DATABASE IF EXISTS {name}_m;"
              f"CREATE DATABASE {name}_p; CREATE DATABASE {name}_m;")
    maria.sql(TABLE, db=f"{name}_p")
    maria.sql(TABLE + ";" + mirror_extra, db=f"{name}_m")
    return name


def start(sluice, pg, maria, name, mirror_line=None, fraction=None, **main):
    myport = free_port()
    ini = {"mysql_listen_port": myport, "pool_mode": "transaction", "default_pool_size": 4,
           "admin_users": "sluice_test"}
    ini.update(main)
    extra = {"mirror": "mirr"}
    if fraction is not None:
        extra["mirror_fraction"] = fraction
    dbs = {"sluicedb": pg.db_line("sluicedb"),
           "prim": maria.db_line(f"{name}_p", **extra),
           "mirr": mirror_line or maria.db_line(f"{name}_m")}
    s = sluice(ini, databases=dbs)
    s.myport = myport
    return s


def connect(s, db="prim"):
    return pymysql.connect(host="127.0.0.1", port=s.myport, user="sluice_test", password="test_pw",
                           database=db, connect_timeout=10, read_timeout=30, write_timeout=30,
                           autocommit=True)


def mirrors(s):
    """SHOW MIRRORS' row for prim (None when there is none), counters as ints."""
    with s.connect(db="sluice", user="sluice_test") as adm:
        cur = adm.execute("SHOW MIRRORS")
        names = [d.name for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
    rows = [r for r in rows if r["database"] == "prim"]
    if not rows:
        return None
    assert len(rows) == 1 and rows[0]["mirror"] == "mirr", rows
    r = rows[0]
    for k in ("sent", "dropped", "errors", "differed"):
        r[k] = int(r[k])
    return r


def rows(maria, schema, sql="SELECT id, v, n FROM items ORDER BY id"):
    return maria.sql(sql, db=schema)


def test_writes_reach_the_mirror(sluice, pg, maria):
    name = pair(maria, "mreach")
    s = start(sluice, pg, maria, name, mirror_queue_size=10000)
    with connect(s) as c, c.cursor() as cur:
        for i in range(30):
            cur.execute("INSERT INTO items (id, v) VALUES (%s, %s)", (i, f"row-{i}"))
        cur.execute("UPDATE items SET n = n + 1 WHERE id < 10")
        # an explicit transaction: several commands, replayed together
        cur.execute("BEGIN")
        cur.execute("UPDATE items SET v = 'in-tx' WHERE id = 5")
        cur.execute("SELECT v FROM items WHERE id = 5")
        assert cur.fetchone() == ("in-tx",)
        cur.execute("DELETE FROM items WHERE id = 29")
        cur.execute("COMMIT")
        cur.execute("SELECT count(*), sum(n) FROM items")
        assert cur.fetchone() == (29, 10)
        # a statement the server refuses, on both sides alike
        with pytest.raises(pymysql.err.IntegrityError):
            cur.execute("INSERT INTO items (id, v) VALUES (1, 'dup')")
        # USE of the primary's schema: the mirror's, there
        cur.execute(f"USE {name}_p")
        cur.execute("INSERT INTO items (id, v) VALUES (60, 'after-use')")
    # autocommit off: every statement up to COMMIT is one transaction, and
    # the mirror connection is given the client's autocommit first
    with pymysql.connect(host="127.0.0.1", port=s.myport, user="sluice_test", password="test_pw",
                         database="prim", autocommit=False) as c:
        with c.cursor() as cur:
            cur.execute("INSERT INTO items (id, v) VALUES (50, 'no-autocommit')")
            cur.execute("UPDATE items SET n = 5 WHERE id = 50")
        c.commit()
        with c.cursor() as cur:
            cur.execute("INSERT INTO items (id, v) VALUES (51, 'rolled back')")
        c.rollback()
    want = rows(maria, f"{name}_p")
    assert "no-autocommit" in want and "rolled back" not in want and "after-use" in want
    poll(lambda: rows(maria, f"{name}_m") == want, 20, what="the mirror schema matching the primary's")
    m = poll(lambda: (lambda r: r if r and r["sent"] >= 38 else None)(mirrors(s)), 10,
             what="SHOW MIRRORS counting the transactions")
    assert m["dropped"] == 0 and m["errors"] == 0 and m["differed"] == 0, str(m)
    # the mariadb command-line client, its `use` a COM_INIT_DB of the
    # primary entry's schema (the mirror's own there)
    r = subprocess.run(["mariadb", "--no-defaults", "-h127.0.0.1", f"-P{s.myport}", "-usluice_test",
                        "-ptest_pw", "prim", "-e",
                        f"use {name}_p; INSERT INTO items (id, v) VALUES (100, 'cli'); "
                        "UPDATE items SET n = 7 WHERE id = 100"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert r.returncode == 0, r.stdout
    want = rows(maria, f"{name}_p")
    assert "cli" in want and "in-tx" in want
    poll(lambda: rows(maria, f"{name}_m") == want, 20, what="the mirror schema matching the primary's")
    m = poll(lambda: (lambda r: r if r and r["sent"] >= 42 else None)(mirrors(s)), 10,
             what="SHOW MIRRORS counting the transactions")
    # The client asks SELECT DATABASE() after `use`: the schemas' names
    # differ, and so do the answers (docs/behaviour.md says so).
    assert m["dropped"] == 0 and m["errors"] == 0 and m["differed"] == 1, str(m)
    assert m["last_differing_query"] == "SELECT DATABASE()", str(m)


def test_a_different_row_is_reported(sluice, pg, maria):
    name = pair(maria, "mdiff", "INSERT INTO items (id, v) VALUES (1000, 'only-on-the-mirror')")
    s = start(sluice, pg, maria, name, mirror_queue_size=10000)
    with connect(s) as c, c.cursor() as cur:
        cur.execute("INSERT INTO items (id, v) VALUES (1, 'both')")
        cur.execute("SELECT id, v FROM items WHERE id = 1")
        assert cur.fetchall() == ((1, "both"),)
        cur.execute("SELECT /* the one that differs */ id, v FROM items ORDER BY id")
        assert cur.fetchall() == ((1, "both"),)  # the primary's answer, always
    m = poll(lambda: (lambda r: r if r and r["differed"] >= 1 else None)(mirrors(s)), 20,
             what="SHOW MIRRORS counting a difference")
    assert m["differed"] == 1 and m["errors"] == 0, m
    assert "the one that differs" in (m["last_differing_query"] or ""), m
    # an UPDATE touching a different number of rows differs too
    with connect(s) as c, c.cursor() as cur:
        cur.execute("UPDATE /* affected rows */ items SET n = 1")
        assert cur.rowcount == 1
    m = poll(lambda: (lambda r: r if r and r["differed"] >= 2 else None)(mirrors(s)), 20,
             what="SHOW MIRRORS counting the UPDATE")
    assert "affected rows" in (m["last_differing_query"] or ""), m


@pytest.mark.timeout(180)
def test_prepared_statements_with_sysbench(sluice, pg, maria):
    """sysbench oltp_read_write with server-side prepared statements: one
    thread, so that the mirror replays in the primary's order and every
    answer compares equal; the two schemas end with the same rows."""
    if not shutil.which("sysbench"):
        pytest.fail("sysbench is not installed (run scripts/install-deps.sh)")
    name = "msb"
    maria.sql(f"DROP DATABASE IF EXISTS {name}_p; DROP DATABASE IF EXISTS {name}_m;"
              f"CREATE DATABASE {name}_p; CREATE DATABASE {name}_m;")
    common = ["--db-driver=mysql", "--mysql-host=127.0.0.1", "--mysql-user=sluice_test",
              "--mysql-password=test_pw", "--tables=2", "--table-size=200"]
    r = subprocess.run(["sysbench", "oltp_common", *common, f"--mysql-port={maria.port}",
                        f"--mysql-db={name}_p", "prepare"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:]
    for t in ("sbtest1", "sbtest2"):  # the mirror starts as a copy
        maria.sql(f"CREATE TABLE {name}_m.{t} LIKE {name}_p.{t};"
                  f"INSERT INTO {name}_m.{t} SELECT * FROM {name}_p.{t}")
    s = start(sluice, pg, maria, name, mirror_queue_size=100000)
    r = subprocess.run(["sysbench", "oltp_read_write", *common, f"--mysql-port={s.myport}",
                        "--mysql-db=prim", "--threads=1", "--time=3", "--report-interval=0",
                        "--db-ps-mode=auto", "run"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:]
    tx = int(re.search(r"transactions:\s+(\d+)", r.stdout).group(1))
    assert tx > 10, r.stdout[-3000:]

    def checksums(schema):
        return maria.sql("CHECKSUM TABLE sbtest1, sbtest2", db=schema).replace(schema, "")

    want = checksums(f"{name}_p")
    try:
        poll(lambda: checksums(f"{name}_m") == want, 15, what="the mirror's tables matching the primary's")
    except AssertionError as e:
        raise AssertionError(f"{e}; SHOW MIRRORS: {mirrors(s)}") from None
    # each sysbench transaction, and the statements it ran outside one
    m = poll(lambda: (lambda r: r if r and r["sent"] >= tx else None)(mirrors(s)), 30,
             what="SHOW MIRRORS counting sysbench's transactions")
    assert m["dropped"] == 0 and m["errors"] == 0 and m["differed"] == 0, str(m)


def test_fraction_zero_sends_nothing(sluice, pg, maria):
    name = pair(maria, "mzero")
    s = start(sluice, pg, maria, name, fraction=0)
    with connect(s) as c, c.cursor() as cur:
        for i in range(20):
            cur.execute("INSERT INTO items (id, v) VALUES (%s, 'x')", (i,))
    assert rows(maria, f"{name}_p", "SELECT count(*) FROM items").strip() == "20"
    time.sleep(0.5)  # what would have gone has had time to arrive
    assert rows(maria, f"{name}_m", "SELECT count(*) FROM items").strip() == "0"
    m = mirrors(s)
    assert m is None or m["sent"] == 0, m


def test_fraction_half_sends_about_half(sluice, pg, maria):
    name = pair(maria, "mhalf")
    s = start(sluice, pg, maria, name, fraction=0.5, mirror_queue_size=10000)
    with connect(s) as c, c.cursor() as cur:
        for i in range(200):
            cur.execute("INSERT INTO items (id, v) VALUES (%s, 'x')", (i,))
    def settled():
        before = mirrors(s)
        time.sleep(0.3)
        after = mirrors(s)
        n = int(rows(maria, f"{name}_m", "SELECT count(*) FROM items"))
        return after if before and before["sent"] == after["sent"] == n else None

    m = poll(settled, 20, what="the mirror receiving what was sent")
    # binomial(200, 0.5): outside 50..150 once in about 10^12 runs
    assert 50 <= m["sent"] <= 150 and m["dropped"] == 0 and m["differed"] == 0, str(m)


def test_a_dead_mirror_changes_nothing_for_clients(sluice, pg, maria):
    name = pair(maria, "mdead")
    dead = f"host=127.0.0.1 port={free_port()} dbname={name}_m protocol=mysql"
    s = start(sluice, pg, maria, name, mirror_line=dead)
    with connect(s) as c, c.cursor() as cur:
        for i in range(20):
            cur.execute("INSERT INTO items (id, v) VALUES (%s, 'x')", (i,))
            time.sleep(0.02)
        cur.execute("SELECT count(*) FROM items")
        assert cur.fetchone() == (20,)
    m = poll(lambda: (lambda r: r if r and r["errors"] >= 1 else None)(mirrors(s)), 10,
             what="SHOW MIRRORS counting the failures")
    assert m["differed"] == 0, m
    # sluice still serves, and the client's connection saw nothing
    with connect(s) as c, c.cursor() as cur:
        cur.execute("SELECT count(*) FROM items")
        assert cur.fetchone() == (20,)


def test_a_slow_mirror_drops_what_does_not_fit(sluice, pg, maria):
    name = pair(maria, "mslow", "CREATE TRIGGER slow BEFORE INSERT ON items FOR EACH ROW "
                                "SET NEW.n = NEW.n + SLEEP(0.2)")
    s = start(sluice, pg, maria, name, mirror_queue_size=2)
    t0 = time.monotonic()
    with connect(s) as c, c.cursor() as cur:
        for i in range(30):
            cur.execute("INSERT INTO items (id, v) VALUES (%s, 'x')", (i,))
    elapsed = time.monotonic() - t0
    print(f"30 inserts with a mirror 0.2 s per insert behind: {elapsed:.2f} s")
    assert rows(maria, f"{name}_p", "SELECT count(*) FROM items").strip() == "30"
    m = poll(lambda: (lambda r: r if r and r["dropped"] >= 1 else None)(mirrors(s)), 10,
             what="SHOW MIRRORS counting drops")
    assert m["sent"] + m["dropped"] <= 30 and m["errors"] == 0, m
    # what was sent arrives; what was dropped never does
    poll(lambda: int(rows(maria, f"{name}_m", "SELECT count(*) FROM items").strip()) == mirrors(s)["sent"],
         20, what="the mirror catching up with what it was sent")
    assert mirrors(s)["sent"] < 30


def test_long_rows(sluice, pg, maria):
    """A row longer than the receive buffer: on the primary it passes in
    pieces unseen, so its transaction is dropped (counted) and the next
    ones go on; on the mirror it is read whole and compared."""
    blobs = "CREATE TABLE blobs (id INT PRIMARY KEY, b LONGTEXT)"
    name = pair(maria, "mlong", blobs + "; INSERT INTO blobs VALUES (1, REPEAT('m', 300000))")
    maria.sql(blobs + "; INSERT INTO blobs VALUES (1, 'short'), (2, REPEAT('p', 300000))", db=f"{name}_p")
    s = start(sluice, pg, maria, name, mirror_queue_size=10000)
    with connect(s) as c, c.cursor() as cur:
        cur.execute("SELECT length(b) FROM blobs WHERE id = 2")
        assert cur.fetchone() == (300000,)
        cur.execute("SELECT b FROM blobs WHERE id = 2")  # long on the primary
        assert len(cur.fetchone()[0]) == 300000
        cur.execute("SELECT /* long on the mirror */ b FROM blobs WHERE id = 1")
        assert cur.fetchone() == ("short",)
        cur.execute("INSERT INTO items (id, v) VALUES (1, 'after')")
    poll(lambda: rows(maria, f"{name}_m") == rows(maria, f"{name}_p"), 20, what="the insert reaching the mirror")
    m = poll(lambda: (lambda r: r if r and r["sent"] + r["dropped"] >= 4 else None)(mirrors(s)), 10,
             what="SHOW MIRRORS counting the four transactions")
    # length(b) of id 2: the mirror has no such row
    assert m["dropped"] == 1 and m["errors"] == 0 and m["differed"] == 2, str(m)
    assert "long on the mirror" in m["last_differing_query"], str(m)


def test_cost_on_the_primary_path(sluice, pg, maria):
    """Prints (never asserts) what mirroring every transaction costs a
    client: 1000 autocommit point SELECTs, unmirrored and mirrored."""
    name = pair(maria, "mcost")
    maria.sql("INSERT INTO items (id, v) SELECT seq, 'x' FROM seq_1_to_100", db=f"{name}_p")
    maria.sql("INSERT INTO items (id, v) SELECT seq, 'x' FROM seq_1_to_100", db=f"{name}_m")
    took = {}
    for fraction in (0, 1):
        s = start(sluice, pg, maria, name, fraction=fraction, mirror_queue_size=10000)
        with connect(s) as c, c.cursor() as cur:
            for i in range(300):  # warm up: the first run would pay for both
                cur.execute("SELECT v FROM items WHERE id = %s", (i % 100 + 1,))
                cur.fetchall()
            t0 = time.monotonic()
            for i in range(1000):
                cur.execute("SELECT v FROM items WHERE id = %s", (i % 100 + 1,))
                cur.fetchall()
            took[fraction] = time.monotonic() - t0
        if fraction:
            m = poll(lambda: (lambda r: r if r and r["sent"] + r["dropped"] >= 1300 else None)(mirrors(s)), 20,
                     what="SHOW MIRRORS counting the SELECTs")
            assert m["differed"] == 0 and m["errors"] == 0, str(m)
    print(f"1000 point SELECTs: unmirrored {took[0]:.3f} s, all mirrored {took[1]:.3f} s "
          f"(ratio {took[1] / took[0]:.2f})")
