"""Workload mirroring (mirror = OTHER_DB, mirror_fraction, mirror_queue_size):
a share of a database's client transactions is replayed on another
database's servers, answers are compared, and the primary path never waits.

Primary and mirror are two databases of the session cluster (mirror_p and
mirror_m), made once for the module; each test uses tables of its own, made
in both with the same definition. The mirror is seen through its effects
(rows inserted through sluice appear in mirror_m too) and through SHOW
MIRRORS / /metrics.
"""

import socket
import subprocess
import time
import urllib.request

import pytest

from admin_helpers import ADMIN, ADMIN_PW, Console, USERLIST, poll
from conftest import PGBENCH, client_env, free_port, tail, unique

PRIMARY, MIRROR = "mirror_p", "mirror_m"


@pytest.fixture(scope="module")
def dbs(pg):
    for db in (PRIMARY, MIRROR):
        pg.sql(f"DROP DATABASE IF EXISTS {db}")
        pg.sql(f"CREATE DATABASE {db} OWNER sluice_test")
        pg.sql("GRANT ALL ON SCHEMA public TO PUBLIC", dbname=db)
    yield pg
    for db in (PRIMARY, MIRROR):
        pg.sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def owner_sql(pg, sql, db):
    """Run sql in db as sluice_test (who then owns what it makes)."""
    with pg.connect_tcp(dbname=db) as c:
        c.execute(sql)


def both(pg, sql):
    for db in (PRIMARY, MIRROR):
        owner_sql(pg, sql, db)


def count(pg, db, table):
    return pg.sql(f"SELECT count(*) FROM {table}", dbname=db)[0][0]


def start(sluice, pg, mirror_line=None, fraction=None, metrics_port=None, **main):
    extra = {} if fraction is None else {"mirror_fraction": fraction}
    ini = {"admin_users": ADMIN, "pool_mode": "transaction"}
    if metrics_port:
        ini["metrics_port"] = metrics_port
    ini.update(main)
    return sluice(ini, databases={
        PRIMARY: pg.db_line(PRIMARY, mirror=MIRROR, **extra),
        MIRROR: mirror_line or pg.db_line(MIRROR),
    }, userlist=USERLIST)


def mirrors(s):
    with Console(s.port) as c:
        rows = c.show("MIRRORS")
    for r in rows:
        for k in ("sent", "dropped", "errors", "differed", "avg_primary_us", "avg_mirror_us"):
            r[k] = int(r[k])
    return {r["database"]: r for r in rows}


def settled(s, want_sent=None):
    """SHOW MIRRORS once every transaction handed over is accounted for
    (replayed and compared, or failed): sent == compared is not visible, so
    wait for the mirror's counters to stop moving."""
    last = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        m = mirrors(s).get(PRIMARY)
        key = None if m is None else (m["sent"], m["dropped"], m["errors"], m["differed"])
        if key is not None and key == last and (want_sent is None or m["sent"] >= want_sent):
            return m
        last = key
        time.sleep(0.3)
    return mirrors(s).get(PRIMARY)


def wait_rows(pg, table, n, timeout=20):
    poll(lambda: count(pg, MIRROR, table) >= n, timeout=timeout, what=f"{n} rows of {table} on the mirror")
    return count(pg, MIRROR, table)


def test_simple_extended_and_prepared_reach_the_mirror(sluice, dbs):
    pg = dbs
    t = unique("mx")
    both(pg, f"CREATE TABLE {t} (id int PRIMARY KEY, v text)")
    s = start(sluice, pg)
    # Simple protocol: one Query with two statements, and an explicit
    # transaction in three Queries.
    r = s.psql("-c", f"INSERT INTO {t} VALUES (1, 'a'); INSERT INTO {t} VALUES (2, 'b')", db=PRIMARY)
    assert r.returncode == 0, r.stderr
    r = s.psql("-v", "ON_ERROR_STOP=1", db=PRIMARY,
               input=f"BEGIN;\nINSERT INTO {t} VALUES (3, 'c');\nUPDATE {t} SET v = 'cc' WHERE id = 3;\nCOMMIT;\n")
    assert r.returncode == 0, r.stderr
    # Extended protocol, unnamed statements; then named ones (psycopg's
    # prepare=True), used again in later transactions.
    with s.connect(db=PRIMARY) as c:
        for i in range(4, 10):
            c.execute(f"INSERT INTO {t} VALUES (%s, %s)", (i, f"x{i}"))
        with c.transaction():
            c.execute(f"INSERT INTO {t} VALUES (%s, %s)", (10, "in tx"))
            c.execute(f"SELECT v FROM {t} WHERE id = %s", (10,)).fetchall()
        for i in range(11, 21):
            c.execute(f"INSERT INTO {t} VALUES (%s, %s)", (i, f"p{i}"), prepare=True)
            assert c.execute(f"SELECT v FROM {t} WHERE id = %s", (i,), prepare=True).fetchone() == (f"p{i}",)
    # Pipelined autocommit statements (one Sync each, sent before the
    # answers): replayed together, as one unit.
    with s.connect(db=PRIMARY) as c:
        with c.pipeline():
            for i in range(23, 28):
                c.execute(f"INSERT INTO {t} VALUES (%s, %s)", (i, "piped"))
    # COPY FROM STDIN: the data goes with the replay.
    r = s.psql("-v", "ON_ERROR_STOP=1", "-c", f"\\copy {t} from stdin", db=PRIMARY,
               input="21\tcopied\n22\tcopied too\n\\.\n")
    assert r.returncode == 0, r.stderr
    assert wait_rows(pg, t, 27) == 27
    assert pg.sql(f"SELECT id, v FROM {t} ORDER BY id", dbname=MIRROR) == \
        pg.sql(f"SELECT id, v FROM {t} ORDER BY id", dbname=PRIMARY)
    m = settled(s)
    assert m["mirror"] == MIRROR
    assert m["sent"] >= 21 and m["errors"] == 0 and m["dropped"] == 0, m
    assert m["differed"] == 0, m
    assert m["avg_primary_us"] > 0 and m["avg_mirror_us"] > 0, m


def test_pgbench_prepared(sluice, dbs):
    pg = dbs
    for db in (PRIMARY, MIRROR):
        r = subprocess.run([PGBENCH, "-i", "-s", "1", "-q", "-h", pg.sockdir, "-p", str(pg.port), "-U", "postgres",
                            db], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
                           env=client_env())
        assert r.returncode == 0, r.stdout
        pg.sql("GRANT ALL ON ALL TABLES IN SCHEMA public TO sluice_test", dbname=db)
    s = start(sluice, pg)
    r = s.pgbench("-M", "prepared", "-c", "4", "-j", "2", "-T", "3", "-n", db=PRIMARY, timeout=60)
    assert r.returncode == 0, r.stderr + r.stdout
    done = int(next(l for l in r.stdout.splitlines() if "transactions actually processed" in l).split(":")[1].split("/")[0])
    m = settled(s)
    mirrored = count(pg, MIRROR, "pgbench_history")
    print(f"pgbench: {done} transactions, mirror replayed {mirrored}; SHOW MIRRORS {m}")
    assert mirrored > 0
    assert m["sent"] + m["dropped"] >= done and m["errors"] == 0, m
    # Each history row comes from one replayed transaction.
    assert mirrored <= m["sent"]


def test_difference_is_reported(sluice, dbs):
    pg = dbs
    t = unique("md")
    both(pg, f"CREATE TABLE {t} (id int PRIMARY KEY, v text)")
    both(pg, f"INSERT INTO {t} VALUES (1, 'same'), (2, 'same')")
    owner_sql(pg, f"UPDATE {t} SET v = 'different' WHERE id = 2", MIRROR)
    s = start(sluice, pg)
    with s.connect(db=PRIMARY) as c:
        assert c.execute(f"SELECT v FROM {t} WHERE id = 1").fetchall() == [("same",)]
    m = settled(s, want_sent=1)
    assert m["differed"] == 0, m
    with s.connect(db=PRIMARY) as c:
        rows = c.execute(f"SELECT id, v FROM {t} ORDER BY id").fetchall()
        assert rows == [(1, "same"), (2, "same")]  # the client sees the primary's
    m = poll(lambda: (lambda m: m if m and m["differed"] > 0 else None)(mirrors(s).get(PRIMARY)),
             what="a difference reported")
    assert f"FROM {t} ORDER BY id" in m["last_differing_query"], m
    # A statement that fails only on the mirror differs too.
    owner_sql(pg, f"DROP TABLE {t}", MIRROR)
    with s.connect(db=PRIMARY) as c:
        c.execute(f"UPDATE {t} SET v = 'u' WHERE id = 1")
    poll(lambda: mirrors(s)[PRIMARY]["differed"] >= 2, what="the mirror's error reported")
    assert f"UPDATE {t}" in mirrors(s)[PRIMARY]["last_differing_query"]


def test_fraction_zero_and_half(sluice, dbs):
    pg = dbs
    t0, t5 = unique("mf"), unique("mf")
    both(pg, f"CREATE TABLE {t0} (id int)")
    both(pg, f"CREATE TABLE {t5} (id int)")
    s = start(sluice, pg, fraction="0")
    with s.connect(db=PRIMARY) as c:
        for i in range(50):
            c.execute(f"INSERT INTO {t0} VALUES (%s)", (i,))
    m = mirrors(s).get(PRIMARY)
    assert m is None or m["sent"] == 0, m
    s2 = start(sluice, pg, fraction="0.5")
    n = 400
    with s2.connect(db=PRIMARY) as c:
        for i in range(n):
            c.execute(f"INSERT INTO {t5} VALUES (%s)", (i,))
    m = settled(s2)
    assert count(pg, MIRROR, t0) == 0
    print(f"mirror_fraction 0.5: {m['sent']} of {n} transactions mirrored; {m}")
    assert n * 0.3 < m["sent"] + m["dropped"] < n * 0.7, m
    assert wait_rows(pg, t5, m["sent"]) == m["sent"], m


def test_dead_mirror_changes_nothing_for_clients(sluice, dbs):
    pg = dbs
    t = unique("mdead")
    both(pg, f"CREATE TABLE {t} (id int)")
    dead = free_port()
    s = start(sluice, pg, mirror_line=f"host=127.0.0.1 port={dead} dbname={MIRROR}")
    with s.connect(db=PRIMARY) as c:
        for i in range(100):
            c.execute(f"INSERT INTO {t} VALUES (%s)", (i,))
            c.execute(f"SELECT count(*) FROM {t}").fetchall()
    r = s.psql("-c", f"SELECT count(*) FROM {t}", db=PRIMARY)
    assert r.returncode == 0 and "100" in r.stdout, r.stderr
    assert count(pg, PRIMARY, t) == 100
    m = settled(s)
    print("dead mirror:", m)
    assert m["errors"] + m["dropped"] > 0 and m["differed"] == 0, m


def test_slow_mirror_drops_and_never_slows_clients(sluice, dbs):
    pg = dbs
    t = unique("mslow")
    both(pg, f"CREATE TABLE {t} (id int)")
    owner_sql(pg, f"CREATE FUNCTION {t}_slow() RETURNS trigger LANGUAGE plpgsql AS "
              f"$$ BEGIN PERFORM pg_sleep(0.2); RETURN NEW; END $$", MIRROR)
    owner_sql(pg, f"CREATE TRIGGER {t}_slow BEFORE INSERT ON {t} FOR EACH ROW EXECUTE FUNCTION {t}_slow()",
              MIRROR)
    mport = free_port()
    s = start(sluice, pg, metrics_port=mport, mirror_queue_size=4, workers=1)
    n = 100
    t0 = time.monotonic()
    with s.connect(db=PRIMARY) as c:
        for i in range(n):
            c.execute(f"INSERT INTO {t} VALUES (%s)", (i,))
    took = time.monotonic() - t0
    assert count(pg, PRIMARY, t) == n
    m = mirrors(s)[PRIMARY]
    print(f"slow mirror: {n} inserts took {took:.2f} s through sluice "
          f"(the mirror needs >= 0.2 s each); {m}")
    assert m["dropped"] > 0, m
    assert m["sent"] + m["dropped"] <= n, m
    with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5) as r:
        body = r.read().decode()
    assert f'sluice_mirror_transactions_total{{database="{PRIMARY}",mirror="{MIRROR}",result="dropped"}}' in body
    assert "sluice_mirror_mirror_seconds_sum" in body


@pytest.mark.parametrize("main", [
    {"pool_mode": "session"},
    # Names pass through to one shared server.
    {"pool_mode": "transaction", "max_prepared_statements": 0, "default_pool_size": 1},
], ids=["session", "no_renames"])
def test_statements_without_renaming(sluice, dbs, main):
    """Without statement tracking's renaming (session mode, or
    max_prepared_statements = 0) the named statements of a mirrored client
    are noted all the same, so a transaction that uses one prepared
    earlier is replayed too."""
    pg = dbs
    t = unique("msess")
    both(pg, f"CREATE TABLE {t} (id int PRIMARY KEY)")
    s = start(sluice, pg, **main)
    with s.connect(db=PRIMARY) as c:
        for i in range(5):
            c.execute(f"INSERT INTO {t} VALUES (%s)", (i,))
        with c.transaction():
            c.execute(f"INSERT INTO {t} VALUES (%s)", (5,))
            c.execute(f"INSERT INTO {t} VALUES (%s)", (6,))
        for i in range(7, 10):
            c.execute(f"INSERT INTO {t} VALUES (%s)", (i,), prepare=True)
        # A DEALLOCATE ALL is not replayed (it would drop the mirror's
        # own names); the statement is prepared again after it.
        c.execute("DEALLOCATE ALL")
        c.execute(f"INSERT INTO {t} VALUES (%s)", (10,), prepare=True)
    assert count(pg, PRIMARY, t) == 11
    assert wait_rows(pg, t, 11) == 11
    m = settled(s)
    assert m["errors"] == 0 and m["differed"] == 0, m
    assert m["sent"] == 10 and m["dropped"] == 1, m


def test_reload_turns_mirroring_on(sluice, dbs):
    """mirror_fraction changed by RELOAD applies from the next message of
    clients already connected."""
    pg = dbs
    t = unique("mrel")
    both(pg, f"CREATE TABLE {t} (id int)")
    s = start(sluice, pg, fraction="0")
    with s.connect(db=PRIMARY) as c:
        c.execute(f"INSERT INTO {t} VALUES (1)")
        ini = s.ini.read_text()
        s.ini.write_text(ini.replace("mirror_fraction=0", "mirror_fraction=1"))
        with Console(s.port) as con:
            con.cmd("RELOAD")
        for i in range(2, 6):
            c.execute(f"INSERT INTO {t} VALUES (%s)", (i,))
    assert wait_rows(pg, t, 4) == 4
    assert pg.sql(f"SELECT min(id) FROM {t}", dbname=MIRROR)[0][0] == 2
