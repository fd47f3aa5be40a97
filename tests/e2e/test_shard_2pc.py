"""Writes over several shards (issue 19, docs/sharding.md): a write whose
shard key is not fixed to one shard, a write to a replicated table, or DDL,
outside a transaction, runs on each of its shards inside a transaction that
ends with PREPARE TRANSACTION; once every shard has prepared, sluice
commits them all (the coordinator, the first shard, first: that is the
decision). All or nothing: a shard's error rolls back what the others
prepared. A sluice killed between the phases leaves prepared transactions
that the next one finishes as decided (txid_status on the coordinator):
rolled back before the decision, committed after it.

The shards are four databases of the harness's PostgreSQL, which runs with
max_prepared_transactions > 0."""

import os
import signal
import struct
import time

import psycopg
import pytest

from conftest import RawConn, unique

pytestmark = pytest.mark.sluice_only

N_SHARDS = 4


@pytest.fixture(scope="module")
def shards(pg):
    names = [unique("tpc") for _ in range(N_SHARDS)]
    for n in names:
        pg.sql(f"CREATE DATABASE {n} OWNER sluice_test")
        with pg.connect(n) as c:
            c.execute("CREATE TABLE orders (id int PRIMARY KEY, customer_id bigint NOT NULL, total int)")
            c.execute("CREATE TABLE countries (code text PRIMARY KEY, name text)")
            c.execute("GRANT ALL ON ALL TABLES IN SCHEMA public TO sluice_test")
            c.execute("GRANT CREATE ON SCHEMA public TO sluice_test")
    yield names
    for n in names:
        for (gid,) in pg.sql("SELECT gid FROM pg_prepared_xacts WHERE database = %s", (n,)):
            pg.sql(f"ROLLBACK PREPARED '{gid}'", dbname=n)
        pg.sql(f"DROP DATABASE IF EXISTS {n} WITH (FORCE)")


def start(helpers, pg, names):
    factory = helpers.ShardedFactory(pg, ["shop.orders = customer_id:bigint"])
    dbs = {f"shop_{i}": pg.db_line(n) for i, n in enumerate(names)}
    dbs["shop"] = "shards=" + ",".join(f"shop_{i}" for i in range(N_SHARDS))
    return factory, factory(ini_main={"pool_mode": "transaction", "admin_users": "sluice_test"}, databases=dbs)


@pytest.fixture
def sharded(pg, shards, helpers):
    for n in shards:
        pg.sql("TRUNCATE orders, countries", dbname=n)
        pg.sql("ALTER TABLE orders DROP CONSTRAINT IF EXISTS small_total", dbname=n)
    factory, s = start(helpers, pg, shards)
    try:
        yield s, shards, factory
    finally:
        problems = factory.finish()
        assert not problems, problems


def per_shard(pg, names, sql):
    return [pg.sql(sql, dbname=n) for n in names]


def prepared(pg, names):
    return sum((pg.sql("SELECT gid FROM pg_prepared_xacts WHERE database = %s", (n,)) for n in names), [])


def load(c, n=40):
    for i in range(1, n + 1):
        c.execute("INSERT INTO orders (id, customer_id, total) VALUES (%s, %s, %s)", (i, i, i))


def test_write_over_every_shard_commits_on_each(pg, sharded):
    s, names, _ = sharded
    with s.connect(db="shop", autocommit=True) as c:
        load(c)
        counts = [r[0][0] for r in per_shard(pg, names, "SELECT count(*) FROM orders")]
        assert all(counts) and sum(counts) == 40
        # Simple protocol: the tag counts the rows of every shard.
        cur = c.execute("UPDATE orders SET total = total + 1000")
        assert cur.rowcount == 40
        assert cur.statusmessage == "UPDATE 40"
        # Extended protocol, with parameters.
        cur = c.execute("UPDATE orders SET total = total + %s WHERE total > %s", (1, 1020))
        assert cur.rowcount == 20
        assert sorted(t for (t,) in c.execute("SELECT total FROM orders").fetchall()) == \
            [1000 + i + (1 if i > 20 else 0) for i in range(1, 41)]
        # RETURNING rows of every shard, one RowDescription.
        got = c.execute("DELETE FROM orders WHERE total > %s RETURNING id", (1030,)).fetchall()
        assert sorted(i for (i,) in got) == list(range(30, 41))
        # An IN list over two shards.
        cur = c.execute("DELETE FROM orders WHERE customer_id IN (1, 2, 3, 4, 5)")
        assert cur.statusmessage == "DELETE 5"
        assert c.execute("SELECT count(*) FROM orders").fetchone() == (24,)
        # A replicated table: the same row on every shard.
        cur = c.execute("INSERT INTO countries VALUES ('fr', 'France'), ('de', 'Germany')")
        assert cur.statusmessage == "INSERT 0 8"  # PostgreSQL's tag, added over the shards
        c.execute("UPDATE countries SET name = %s WHERE code = %s", ("Deutschland", "de"))
        for rows in per_shard(pg, names, "SELECT code, name FROM countries ORDER BY code"):
            assert rows == [("de", "Deutschland"), ("fr", "France")]
        # DDL runs on every shard too.
        cur = c.execute("CREATE TABLE notes_2pc (id int)")
        assert cur.statusmessage == "CREATE TABLE"
        assert all(r == [(1,)] for r in per_shard(pg, names, "SELECT count(*) FROM pg_class WHERE relname = 'notes_2pc'"))
        c.execute("DROP TABLE notes_2pc")
        assert all(r == [(0,)] for r in per_shard(pg, names, "SELECT count(*) FROM pg_class WHERE relname = 'notes_2pc'"))
    assert prepared(pg, names) == []


def test_a_shard_that_fails_rolls_back_every_shard(pg, sharded):
    s, names, _ = sharded
    with s.connect(db="shop", autocommit=True) as c:
        load(c)
    # Only the last shard refuses totals of 500 and more.
    pg.sql("ALTER TABLE orders ADD CONSTRAINT small_total CHECK (total < 500)", dbname=names[-1])
    before = per_shard(pg, names, "SELECT id, total FROM orders ORDER BY id")
    with s.connect(db="shop", autocommit=True) as c:
        with pytest.raises(psycopg.errors.CheckViolation):
            c.execute("UPDATE orders SET total = total + 1000")
        with pytest.raises(psycopg.errors.CheckViolation):
            c.execute("UPDATE orders SET total = %s", (999,))
        # The session goes on.
        assert c.execute("SELECT count(*) FROM orders").fetchone() == (40,)
        cur = c.execute("UPDATE orders SET total = total + 1")
        assert cur.rowcount == 40
    after = per_shard(pg, names, "SELECT id, total - 1 FROM orders ORDER BY id")
    assert after == before
    assert prepared(pg, names) == []


def test_inside_a_transaction_refused_clearly(pg, sharded):
    s, names, _ = sharded
    with s.connect(db="shop", autocommit=False) as c:
        c.execute("SELECT 1 FROM orders WHERE customer_id = 1")
        with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
            c.execute("UPDATE orders SET total = 0")
        assert "two-phase commit" in str(e.value)
        c.rollback()
    with s.connect(db="shop", autocommit=True) as c:
        # One INSERT whose rows go to several shards is not split.
        with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
            c.execute("INSERT INTO orders (id, customer_id, total) VALUES (1, 1, 1), (2, 2, 2), (3, 3, 3)")
        assert "INSERT of their own" in str(e.value)
        assert c.execute("SELECT count(*) FROM orders").fetchone() == (0,)


def test_pipelined_behind_a_single_shard_query(pg, sharded):
    """A write over every shard sent right behind a single-shard query (no
    wait for its answer) waits for the server to be free, then runs."""
    s, names, _ = sharded
    with s.connect(db="shop", autocommit=True) as c:
        load(c, 8)
    with RawConn("127.0.0.1", s.port) as conn:
        conn.login("sluice_test", "shop", "test_pw")
        q1, q2 = b"SELECT total FROM orders WHERE customer_id = 3\0", b"UPDATE orders SET total = 7\0"
        conn.sock.sendall(b"Q" + struct.pack("!I", 4 + len(q1)) + q1 + b"Q" + struct.pack("!I", 4 + len(q2)) + q2)
        got, seen_z = [], 0
        deadline = time.monotonic() + 10
        while seen_z < 2 and time.monotonic() < deadline:
            t, body = conn.read()
            got.append((t, body))
            seen_z += t == "Z"
        assert [b for t, b in got if t == "C"] == [b"SELECT 1\0", b"UPDATE 8\0"], got
        conn.terminate()


def crash_between_phases(pg, helpers, names, point, monkeypatch):
    """Start a sluice that kills itself at point, write over every shard
    through it; return what each shard's prepared transactions were."""
    monkeypatch.setenv("SLUICE_TEST_2PC_CRASH", point)
    factory, s = start(helpers, pg, names)
    monkeypatch.delenv("SLUICE_TEST_2PC_CRASH")
    try:
        with s.connect(db="shop", autocommit=True) as c:
            load(c, 12)
            with pytest.raises(psycopg.OperationalError):
                c.execute("UPDATE orders SET total = total + 100")
        s.proc.wait(timeout=10)
        assert s.proc.returncode == -signal.SIGKILL
        left = prepared(pg, names)
    finally:
        s.stopped = True  # its death is the test's doing
        factory.finish()
    return left


@pytest.mark.parametrize("point,committed", [("prepared", False), ("decided", True)])
def test_killed_between_phases_recovered_at_start(pg, shards, helpers, monkeypatch, point, committed):
    names = shards
    for n in names:
        pg.sql("TRUNCATE orders, countries", dbname=n)
    left = crash_between_phases(pg, helpers, names, point, monkeypatch)
    # Before the decision every shard is prepared; after it, all but the coordinator.
    assert len(left) == (N_SHARDS if point == "prepared" else N_SHARDS - 1), left
    assert all(g.startswith("sluice:") for (g,) in left)
    factory, s = start(helpers, pg, names)
    try:
        with s.connect(db="shop", autocommit=True) as c:  # the pool exists: recovery runs
            deadline = time.monotonic() + 20
            while prepared(pg, names) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert prepared(pg, names) == []
            totals = sorted(t for (t,) in c.execute("SELECT total FROM orders").fetchall())
        want = [i + (100 if committed else 0) for i in range(1, 13)]
        assert totals == want  # all or nothing, as decided
        assert ("committed" if committed else "rolled back") in s.log_text()
    finally:
        assert not factory.finish()


def test_recovery_leaves_other_programs_prepared_transactions(pg, sharded):
    """A prepared transaction sluice did not make is never touched."""
    s, names, _ = sharded
    with pg.connect(names[0]) as c:
        c.autocommit = True
        c.execute("BEGIN")
        c.execute("INSERT INTO orders VALUES (999, 999, 999)")
        c.execute("PREPARE TRANSACTION 'someone_else'")
    try:
        with s.connect(db="shop", autocommit=True) as c:
            c.execute("UPDATE orders SET total = 1 WHERE total = 0")
            time.sleep(2.5)
        assert ("someone_else",) in prepared(pg, names)
    finally:
        pg.sql("ROLLBACK PREPARED 'someone_else'", dbname=names[0])


def keys_on_two_shards(pg, names):
    """Two customer ids whose rows (load() wrote them) are on different shards."""
    where = {}
    for i, n in enumerate(names):
        for (cid,) in pg.sql("SELECT customer_id FROM orders", dbname=n):
            where[cid] = i
    a = min(where)
    b = next(k for k in sorted(where) if where[k] != where[a])
    return a, b


def totals(pg, names):
    return sorted(sum((pg.sql("SELECT id, total FROM orders", dbname=n) for n in names), []))


def two_shards_loaded(pg, s, names):
    """Twelve orders written through sluice; two customers on different
    shards, and every order's total before the test."""
    with s.connect(db="shop", autocommit=True) as c:
        load(c, 12)
    a, b = keys_on_two_shards(pg, names)
    return a, b, totals(pg, names)


def test_transaction_over_two_shards_commits_both(pg, sharded):
    s, names, _ = sharded
    a, b, before = two_shards_loaded(pg, s, names)
    with s.connect(db="shop", autocommit=False) as c:  # extended protocol, BEGIN alone first
        c.execute("UPDATE orders SET total = -1 WHERE customer_id = %s", (a,))
        c.execute("UPDATE orders SET total = -2 WHERE customer_id = %s", (b,))
        assert c.execute("SELECT total FROM orders WHERE customer_id = %s", (b,)).fetchone() == (-2,)
        c.commit()
        assert c.execute("SELECT total FROM orders WHERE customer_id = %s", (a,)).fetchone() == (-1,)
        c.commit()
        # Rolled back: neither shard keeps anything.
        c.execute("UPDATE orders SET total = -3 WHERE customer_id = %s", (a,))
        c.execute("UPDATE orders SET total = -4 WHERE customer_id = %s", (b,))
        c.rollback()
    want = sorted((i, -1 if i == a else -2 if i == b else t) for i, t in before)
    assert totals(pg, names) == want
    assert prepared(pg, names) == []
    # Simple protocol (psql), and the transaction's kind follows it.
    r = s.psql("-v", "ON_ERROR_STOP=1", "-A", "-t", db="shop", input=(
        "BEGIN ISOLATION LEVEL REPEATABLE READ;\n"
        f"SELECT current_setting('transaction_isolation') FROM orders WHERE customer_id = {a};\n"
        f"UPDATE orders SET total = 10 WHERE customer_id = {a};\n"
        f"SELECT current_setting('transaction_isolation') FROM orders WHERE customer_id = {b};\n"
        f"UPDATE orders SET total = 20 WHERE customer_id = {b};\n"
        "COMMIT;\n"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n").count("repeatable read") == 2, r.stdout
    got = dict(totals(pg, names))
    assert got[a] == 10 and got[b] == 20
    assert prepared(pg, names) == []


def test_transaction_over_shards_fails_whole(pg, sharded):
    """An error on the second shard, a deferred error at COMMIT, a client
    that leaves: no shard keeps any of it."""
    s, names, _ = sharded
    a, b, before = two_shards_loaded(pg, s, names)
    sb = next(n for n in names if pg.sql("SELECT 1 FROM orders WHERE customer_id = %s", (b,), dbname=n))
    pg.sql("ALTER TABLE orders ADD CONSTRAINT small_total CHECK (total < 500)", dbname=sb)
    with s.connect(db="shop", autocommit=False) as c:
        c.execute("UPDATE orders SET total = 1 WHERE customer_id = %s", (a,))
        with pytest.raises(psycopg.errors.CheckViolation):
            c.execute("UPDATE orders SET total = 900 WHERE customer_id = %s", (b,))
        c.commit()  # of a failed transaction: rolled back, as PostgreSQL does
    assert totals(pg, names) == before and prepared(pg, names) == []
    # A deferred trigger that fails at COMMIT on the second shard.
    with pg.connect(sb) as d:
        d.execute("CREATE OR REPLACE FUNCTION refuse_late() RETURNS trigger LANGUAGE plpgsql AS "
                  "$$BEGIN RAISE EXCEPTION 'refused at commit'; END$$")
        d.execute("DROP TRIGGER IF EXISTS late ON orders")
        d.execute("CREATE CONSTRAINT TRIGGER late AFTER UPDATE ON orders DEFERRABLE INITIALLY DEFERRED "
                  "FOR EACH ROW EXECUTE FUNCTION refuse_late()")
    try:
        with s.connect(db="shop", autocommit=False) as c:
            c.execute("UPDATE orders SET total = 2 WHERE customer_id = %s", (a,))
            c.execute("UPDATE orders SET total = 3 WHERE customer_id = %s", (b,))
            with pytest.raises(psycopg.errors.RaiseException) as e:
                c.commit()
            assert "refused at commit" in str(e.value)
            assert c.execute("SELECT 1").fetchone() == (1,)
            c.rollback()
        assert totals(pg, names) == before and prepared(pg, names) == []
    finally:
        pg.sql("DROP TRIGGER late ON orders", dbname=sb)
    # A client that leaves with its first part prepared: the recovery
    # rolls it back.
    c = s.connect(db="shop", autocommit=False)
    c.execute("UPDATE orders SET total = 4 WHERE customer_id = %s", (a,))
    c.execute("UPDATE orders SET total = 5 WHERE customer_id = %s", (b,))
    assert len(prepared(pg, names)) == 1
    c.close()
    deadline = time.monotonic() + 15
    while prepared(pg, names) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert prepared(pg, names) == []
    assert totals(pg, names) == before


def test_transaction_over_shards_ends_only_by_commit_or_rollback(pg, sharded):
    s, names, _ = sharded
    a, b, before = two_shards_loaded(pg, s, names)
    with s.connect(db="shop", autocommit=False) as c:
        c.execute("UPDATE orders SET total = 7 WHERE customer_id = %s", (a,))
        c.execute("UPDATE orders SET total = 8 WHERE customer_id = %s", (b,))
        with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
            c.execute("COMMIT AND CHAIN")
        assert "COMMIT or ROLLBACK alone" in str(e.value)
        c.rollback()
        c.execute("UPDATE orders SET total = 7 WHERE customer_id = %s", (a,))
        c.execute("UPDATE orders SET total = 8 WHERE customer_id = %s", (b,))
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            c.execute(f"UPDATE orders SET total = 9 WHERE customer_id = {b}; COMMIT")
        c.rollback()
    assert totals(pg, names) == before and prepared(pg, names) == []


def shard_of_row(pg, names, oid):
    return [i for i, n in enumerate(names) if pg.sql("SELECT 1 FROM orders WHERE id = %s", (oid,), dbname=n)]


def test_copy_from_stdin_splits_rows_by_key(pg, sharded):
    """COPY FROM STDIN into a sharded table: each row on the shard of its
    key (the one sluice routes `customer_id = k` to), text and CSV, all or
    nothing; into a replicated table every row on every shard."""
    s, names, _ = sharded
    rows = [(i, i * 7919 % 1000, i % 50) for i in range(1, 3001)]
    with s.connect(db="shop", autocommit=True) as c:
        with c.cursor().copy("COPY orders (id, customer_id, total) FROM STDIN") as cp:
            for r in rows:
                cp.write_row(r)
        assert sum(r[0][0] for r in per_shard(pg, names, "SELECT count(*) FROM orders")) == 3000
        for oid, cust, _ in rows[::97]:
            # Through sluice, the key routes to one shard, which has the row.
            assert c.execute("SELECT id FROM orders WHERE customer_id = %s AND id = %s", (cust, oid)).fetchall() \
                == [(oid,)]
            assert len(shard_of_row(pg, names, oid)) == 1
        # CSV with a header, quotes, another column order.
        data = "total,id,customer_id\n" + "".join(f'"{t}",{i},"{k}"\n' for i, k, t in
                                                     [(5001, 11, 1), (5002, 12, 2), (5003, 13, 3)])
        with c.cursor().copy("COPY orders (total, id, customer_id) FROM STDIN WITH (FORMAT csv, HEADER)") as cp:
            cp.write(data[:17])
            cp.write(data[17:])  # pieces that do not end with a row
        for oid, cust in [(5001, 11), (5002, 12), (5003, 13)]:
            assert c.execute("SELECT total FROM orders WHERE customer_id = %s AND id = %s", (cust, oid)).fetchall() \
                == [(oid - 5000,)]
        # A replicated table: the rows on every shard.
        with c.cursor().copy("COPY countries FROM STDIN") as cp:
            cp.write("fr\tFrance\nde\tGermany\n")
        assert all(r == [("de", "Germany"), ("fr", "France")]
                   for r in per_shard(pg, names, "SELECT code, name FROM countries ORDER BY code"))
        before = totals(pg, names)
        # A row a shard refuses (a duplicate id): the whole COPY is undone.
        with pytest.raises(psycopg.errors.UniqueViolation):
            with c.cursor().copy("COPY orders (id, customer_id, total) FROM STDIN") as cp:
                cp.write_row((9001, 1, 1))
                cp.write_row((5001, 11, 1))
        # A key that is not a bigint, or missing: refused by sluice, nothing written.
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            with c.cursor().copy("COPY orders (id, customer_id, total) FROM STDIN") as cp:
                cp.write("9002\tabc\t1\n")
        with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
            with c.cursor().copy("COPY orders FROM STDIN") as cp:
                cp.write("9003\t1\t1\n")
        assert "column list" in str(e.value)
        # The client gives up (CopyFail): nothing written.
        with pytest.raises(psycopg.errors.QueryCanceled):
            with c.cursor().copy("COPY orders (id, customer_id, total) FROM STDIN") as cp:
                cp.write_row((9004, 1, 1))
                raise psycopg.errors.QueryCanceled("changed my mind")
        assert totals(pg, names) == before
        assert c.execute("SELECT count(*) FROM orders").fetchone() == (3003,)
    assert prepared(pg, names) == []


def test_copy_with_psql_and_a_budget(pg, shards, helpers, tmp_path):
    """psql's \\copy of a large file (more than a server buffer per shard);
    past shard_buffer_size the COPY is refused, nothing written."""
    names = shards
    for n in names:
        pg.sql("TRUNCATE orders, countries", dbname=n)
    path = tmp_path / "orders.tsv"
    path.write_text("".join(f"{i}\t{i}\t{i % 7}\n" for i in range(1, 200001)))
    factory, s = start(helpers, pg, names)
    try:
        r = s.psql("-v", "ON_ERROR_STOP=1", "-c", f"\\copy orders (id, customer_id, total) from '{path}'", db="shop")
        assert r.returncode == 0, r.stderr
        assert "COPY 200000" in r.stdout
        assert sum(x[0][0] for x in per_shard(pg, names, "SELECT count(*) FROM orders")) == 200000
    finally:
        assert not factory.finish()
    factory = helpers.ShardedFactory(pg, ["shop.orders = customer_id:bigint"])
    dbs = {f"shop_{i}": pg.db_line(n) for i, n in enumerate(names)}
    dbs["shop"] = "shards=" + ",".join(f"shop_{i}" for i in range(N_SHARDS))
    s = factory(ini_main={"pool_mode": "transaction", "shard_buffer_size": "100000"}, databases=dbs)
    try:
        r = s.psql("-c", f"\\copy orders (id, customer_id, total) from '{path}'", db="shop")
        assert r.returncode != 0 and "shard_buffer_size" in r.stderr, r.stderr
        with s.connect(db="shop") as c:
            assert c.execute("SELECT count(*) FROM orders").fetchone() == (200000,)
    finally:
        assert not factory.finish()


def test_transfers_over_shards_stay_balanced(pg, sharded):
    """Clients move amounts between accounts on different shards at once,
    in explicit transactions (committed or rolled back), by writes over
    every shard, and by leaving in the middle; the total never changes
    and nothing stays prepared. Transactions that move between the same
    shards in opposite orders can wait for each other (a deadlock no one
    PostgreSQL sees, docs/sharding.md): lock_timeout ends them, and they
    roll back whole."""
    import random
    import threading

    s, names, _ = sharded
    accounts = list(range(1, 41))
    with s.connect(db="shop", autocommit=True) as c:
        for a in accounts:
            c.execute("INSERT INTO orders (id, customer_id, total) VALUES (%s, %s, 1000)", (a, a))
    total = 1000 * len(accounts)
    errors, done = [], []

    def worker(seed):
        rng = random.Random(seed)
        c = s.connect(db="shop", autocommit=False)
        try:
            c.execute("SET lock_timeout = '1s'")
            c.commit()
            for i in range(25):
                a, b = rng.sample(accounts, 2)
                amount = rng.randint(1, 50)
                try:
                    c.execute("UPDATE orders SET total = total - %s WHERE customer_id = %s", (amount, a))
                    c.execute("UPDATE orders SET total = total + %s WHERE customer_id = %s", (amount, b))
                    r = rng.random()
                    if r < 0.1:
                        c.close()  # leaves in the middle: rolled back by recovery
                        c = s.connect(db="shop", autocommit=False)
                        c.execute("SET lock_timeout = '1s'")
                        c.commit()
                    elif r < 0.25:
                        c.rollback()
                    else:
                        c.commit()
                except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected):
                    c.rollback()  # a wait ended (across shards by lock_timeout, on one by PostgreSQL)
                if i % 10 == 0:
                    c.autocommit = True
                    try:
                        c.execute("UPDATE orders SET total = total + 0")  # every shard, two-phase
                    except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected):
                        pass
                    c.autocommit = False
            done.append(seed)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
        finally:
            c.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(done) == 6
    deadline = time.monotonic() + 15
    while prepared(pg, names) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert prepared(pg, names) == []
    assert sum(t for _, t in totals(pg, names)) == total
