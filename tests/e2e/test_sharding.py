"""A sharded database served (issue 19, docs/sharding.md): one logical
database `shop` over four shard databases of the same PostgreSQL, with
`orders` sharded on customer_id (bigint) and `countries` replicated.

Each transaction runs on the one shard its statements fix: by a key
constant in a simple Query, or by the value bound to `key = $n`, with the
route of a prepared statement kept per statement. Rows land exactly where
PostgreSQL's own PARTITION BY HASH (customer_id) with MODULUS 4 puts them
(satisfies_hash_partition on a real partitioned table says so). A BEGIN
sent alone waits in sluice until the first statement fixes the shard
(simple and extended protocol, named statements too: pgbench -M
prepared). A simple-protocol read over several shards runs on each in
turn: rows concatenated, count/sum/min/max combined. What else needs
several shards (avg, grouping, ordering, a transaction that moves to a
second shard) is refused with SQLSTATE 0A000 and a message naming why, in
place, so PostgreSQL aborts the transaction as it would for its own
error: nothing half done."""

import random
import struct

import psycopg
import pytest

from conftest import RawConn, unique

pytestmark = pytest.mark.sluice_only

N_SHARDS = 4


@pytest.fixture(scope="module")
def shop(pg):
    """Four shard databases with the same tables, and an oracle database
    holding orders PARTITION BY HASH (customer_id), MODULUS 4."""
    names = [unique("shard") for _ in range(N_SHARDS)]
    oracle = unique("oracle")
    for n in names + [oracle]:
        pg.sql(f"CREATE DATABASE {n} OWNER sluice_test")
    for n in names:
        with pg.connect(n) as c:
            c.execute("CREATE TABLE orders (id int PRIMARY KEY, customer_id bigint NOT NULL, total int)")
            c.execute("CREATE TABLE countries (code text PRIMARY KEY, name text)")
            c.execute("CREATE TABLE untyped (k text)")
            c.execute("INSERT INTO countries VALUES ('fr', 'France'), ('de', 'Germany')")
            c.execute("GRANT ALL ON ALL TABLES IN SCHEMA public TO sluice_test")
    with pg.connect(oracle) as c:
        c.execute("CREATE TABLE orders (customer_id bigint) PARTITION BY HASH (customer_id)")
        for r in range(N_SHARDS):
            c.execute(f"CREATE TABLE orders_{r} PARTITION OF orders "
                      f"FOR VALUES WITH (MODULUS {N_SHARDS}, REMAINDER {r})")
    yield names, oracle
    for n in names + [oracle]:
        pg.sql(f"DROP DATABASE IF EXISTS {n} WITH (FORCE)")


def partition_of(pg, oracle, key):
    """The remainder PostgreSQL's hash partitioning gives key."""
    rows = pg.sql(f"SELECT r FROM generate_series(0, {N_SHARDS - 1}) r "
                  f"WHERE satisfies_hash_partition('orders'::regclass, {N_SHARDS}, r, %s::bigint)",
                  (key,), dbname=oracle)
    assert len(rows) == 1
    return rows[0][0]


@pytest.fixture
def sharded(pg, shop, helpers):
    names, oracle = shop
    for n in names:
        pg.sql("TRUNCATE orders", dbname=n)

    factory = helpers.ShardedFactory(pg, ["shop.orders = customer_id:bigint", "shop.untyped = k"])
    dbs = {f"shop_{i}": pg.db_line(n) for i, n in enumerate(names)}
    dbs["shop"] = "shards=" + ",".join(f"shop_{i}" for i in range(N_SHARDS))
    s = factory(ini_main={"pool_mode": "transaction", "admin_users": "sluice_test"}, databases=dbs)
    try:
        yield s, names, oracle
    finally:
        problems = factory.finish()
        assert not problems, problems


def shard_rows(pg, names):
    """(shard index, id, customer_id) of every order, read on each shard directly."""
    out = []
    for i, n in enumerate(names):
        out += [(i, oid, cid) for oid, cid in pg.sql("SELECT id, customer_id FROM orders", dbname=n)]
    return sorted(out, key=lambda r: r[1])


def keys_on_distinct_shards(pg, oracle):
    """Two keys PostgreSQL puts in different partitions."""
    a = 1
    b = next(k for k in range(2, 100) if partition_of(pg, oracle, k) != partition_of(pg, oracle, a))
    return a, b


def test_rows_land_where_hash_partitioning_puts_them(pg, sharded):
    s, names, oracle = sharded
    rng = random.Random(19)
    keys = [rng.choice([rng.randint(-10**12, 10**12), rng.randint(-50, 50)]) for _ in range(40)]
    with s.connect(db="shop", autocommit=True) as c:
        for i, k in enumerate(keys):
            if i % 2:
                c.execute(f"INSERT INTO orders (id, customer_id, total) VALUES ({i}, {k}, {i})")  # simple, constant
            else:
                c.execute("INSERT INTO orders (id, customer_id, total) VALUES (%s, %s, %s)", (i, k, i))  # Bind
        # Read back through sluice both ways.
        for i, k in enumerate(keys):
            assert c.execute(f"SELECT id FROM orders WHERE customer_id = {k} AND id = {i}").fetchall() == [(i,)]
            assert c.execute("SELECT id FROM orders WHERE customer_id = %s AND id = %s", (k, i)).fetchall() == [(i,)]
            assert c.execute("SELECT id FROM orders WHERE customer_id = %s AND id = %s", (k, i),
                             binary=True).fetchall() == [(i,)]
    placed = shard_rows(pg, names)
    assert len(placed) == len(keys)
    for shard, oid, cid in placed:
        assert cid == keys[oid]
        assert shard == partition_of(pg, oracle, cid), (oid, cid)
    assert len({shard for shard, _, _ in placed}) == N_SHARDS  # all shards used


def test_transaction_stays_on_its_shard(pg, sharded):
    s, names, oracle = sharded
    with s.connect(db="shop", autocommit=False) as c:  # psycopg sends BEGIN alone first
        c.execute("INSERT INTO orders (id, customer_id, total) VALUES (1, 77, 10)")
        c.execute("INSERT INTO orders (id, customer_id, total) VALUES (2, 77, 20)")
        assert c.execute("SELECT sum(total) FROM orders WHERE customer_id = 77").fetchone() == (30,)
        c.commit()
        c.execute("INSERT INTO orders (id, customer_id, total) VALUES (3, 77, 30)")
        c.rollback()
        assert c.execute("SELECT count(*) FROM orders WHERE customer_id = 77").fetchone() == (2,)
        c.rollback()
    assert [r[1] for r in shard_rows(pg, names)] == [1, 2]
    # psql: BEGIN, statements and COMMIT as separate simple queries.
    r = s.psql("-v", "ON_ERROR_STOP=1", "-A", "-t", db="shop", input=(
        "BEGIN ISOLATION LEVEL REPEATABLE READ;\n"
        "SELECT current_setting('transaction_isolation') FROM orders WHERE customer_id = 77 LIMIT 1;\n"
        "UPDATE orders SET total = total + 1 WHERE customer_id = 77;\n"
        "COMMIT;\n"
        "BEGIN;\nCOMMIT;\nBEGIN;\nBEGIN;\nROLLBACK;\n"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["repeatable", "read"] or "repeatable read" in r.stdout, r.stdout
    assert "there is already a transaction in progress" in r.stderr
    assert pg.sql("SELECT sum(total) FROM orders", dbname=names[partition_of(pg, oracle, 77)]) == [(32,)]


def test_second_shard_in_a_transaction(pg, sharded):
    """A transaction moves on to a second shard (its part on the first is
    prepared, test_shard_2pc.py has the rest); coming back to the first is
    refused in place, and PostgreSQL aborts the transaction."""
    s, names, oracle = sharded
    a, b = keys_on_distinct_shards(pg, oracle)
    with s.connect(db="shop", autocommit=False) as c:
        c.execute("INSERT INTO orders (id, customer_id, total) VALUES (1, %s, 1)", (a,))
        c.execute("INSERT INTO orders (id, customer_id, total) VALUES (2, %s, 2)", (b,))
        with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
            c.execute("SELECT * FROM orders WHERE customer_id = %s", (a,))
        assert "in one stretch" in str(e.value)
        # PostgreSQL itself aborted the transaction: nothing half done.
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            c.execute("SELECT 1")
        c.rollback()
        # Simple protocol too.
        c.execute(f"INSERT INTO orders (id, customer_id, total) VALUES (3, {a}, 3)")
        c.execute(f"INSERT INTO orders (id, customer_id, total) VALUES (4, {b}, 4)")
        c.commit()
        c.autocommit = True
        # Outside a transaction each statement goes where it belongs.
        c.execute("INSERT INTO orders (id, customer_id, total) VALUES (5, %s, 5)", (a,))
        c.execute("INSERT INTO orders (id, customer_id, total) VALUES (6, %s, 6)", (b,))
    assert [r[1] for r in shard_rows(pg, names)] == [3, 4, 5, 6]


def test_simple_query_over_all_shards_concatenates(pg, sharded):
    """A simple SELECT with no key fixed, and no ordering, grouping,
    DISTINCT, LIMIT or function in its output, is run on each shard in
    turn and the rows streamed to the client one shard after the other,
    with one RowDescription and the total row count."""
    s, names, oracle = sharded
    a, b = keys_on_distinct_shards(pg, oracle)
    rows = [(k, k % 9, k * 3) for k in range(1, 41)]
    with s.connect(db="shop", autocommit=True) as c:
        for oid, cust, total in rows:
            c.execute("INSERT INTO orders (id, customer_id, total) VALUES (%s, %s, %s)", (oid, cust, total))
        cur = c.execute("SELECT id, customer_id, total FROM orders")
        assert sorted(cur.fetchall()) == rows
        assert cur.rowcount == len(rows) and [d.name for d in cur.description] == ["id", "customer_id", "total"]
        cur = c.execute("SELECT id FROM orders WHERE total > 60")
        assert sorted(r[0] for r in cur.fetchall()) == [k for k, _, t in rows if t > 60]
        cur = c.execute(f"SELECT id FROM orders WHERE customer_id IN ({a}, {b})")
        assert sorted(r[0] for r in cur.fetchall()) == [k for k, cu, _ in rows if cu in (a, b)]
        cur = c.execute("SELECT id FROM orders WHERE total < 0")
        assert cur.fetchall() == [] and cur.rowcount == 0 and cur.description[0].name == "id"
        # A LIMIT of a constant: no more rows than that, from the shards in turn.
        for limit, want in ((7, 7), (0, 0), (1000, len(rows))):
            cur = c.execute(f"SELECT id FROM orders LIMIT {limit}")
            got = [r[0] for r in cur.fetchall()]
            assert len(got) == want == cur.rowcount and len(set(got)) == want and set(got) <= {k for k, _, _ in rows}
        # OFFSET: each shard runs LIMIT 3 OFFSET 0, the first row is skipped.
        cur = c.execute("SELECT id FROM orders LIMIT 2 OFFSET 1")
        assert len(cur.fetchall()) == 2 == cur.rowcount
        # A shard's error ends it: the client gets PostgreSQL's error, then
        # the connection goes on.
        with pytest.raises(psycopg.errors.DivisionByZero):
            c.execute("SELECT id / (total - total) FROM orders WHERE total > 0")
        assert c.execute("SELECT 1").fetchone() == (1,)
        # The extended protocol: parameters, named statements, aggregates.
        for conn_kw in ({}, {"prepare_threshold": 0}):
            with s.connect(db="shop", **conn_kw) as e:
                for _ in range(2):
                    cur = e.execute("SELECT id, total FROM orders WHERE total > %s", (60,))
                    assert sorted(cur.fetchall()) == [(k, t) for k, _, t in rows if t > 60]
                    assert cur.rowcount == len([k for k, _, t in rows if t > 60])
                    assert e.execute("SELECT count(*), sum(total) FROM orders WHERE total > %s",
                                     (60,)).fetchone() == (len([t for *_, t in rows if t > 60]),
                                                           sum(t for *_, t in rows if t > 60))
                    got = e.execute("SELECT id FROM orders WHERE id <= %s LIMIT 3", (30,)).fetchall()
                    assert len(got) == 3
                    got = e.execute("SELECT max(id) FROM orders WHERE customer_id = ANY(%s)", ([1, 2, 3],)).fetchone()
                    assert got == (max(k for k, cu, _ in rows if cu in (1, 2, 3)),)
                    # Rows in binary go through as they come; aggregates are
                    # combined from text only.
                    cur = e.execute("SELECT id FROM orders WHERE total > %s", (60,), binary=True)
                    assert sorted(r[0] for r in cur.fetchall()) == [k for k, _, t in rows if t > 60]
                    with pytest.raises(psycopg.errors.FeatureNotSupported) as err:
                        e.execute("SELECT count(*) FROM orders WHERE total > %s", (60,), binary=True)
                    assert "text format" in str(err.value)
        # psql prints what it got.
        r = s.psql("-A", "-t", "-c", "SELECT id FROM orders WHERE id <= 5", db="shop")
        assert r.returncode == 0, r.stderr
        assert sorted(int(x) for x in r.stdout.split()) == [1, 2, 3, 4, 5]
    with s.connect(db="shop", autocommit=False) as c:
        # Inside a transaction it would need every shard in it: refused.
        c.execute("SELECT id FROM orders WHERE customer_id = %s", (a,))
        with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
            c.execute("SELECT id FROM orders")
        assert "outside a transaction only" in str(e.value)
        c.rollback()


def test_aggregates_over_shards_combined(pg, sharded):
    """count, sum, min and max with no grouping: each shard answers one
    row, sluice answers their combination, exactly as one database would
    (integers and numeric; NULL where no shard has a value)."""
    s, names, oracle = sharded
    a, b = keys_on_distinct_shards(pg, oracle)
    rng = random.Random(7)
    rows = [(k, rng.randint(1, 30), rng.randint(-10**6, 10**6)) for k in range(1, 61)]
    with s.connect(db="shop", autocommit=True) as c:
        for oid, cust, total in rows:
            c.execute("INSERT INTO orders (id, customer_id, total) VALUES (%s, %s, %s)", (oid, cust, total))
        totals = [t for _, _, t in rows]
        got = c.execute("SELECT count(*), count(total), sum(total), min(total), max(total), sum(id::bigint), "
                        "sum(total / 7.0), min(total::numeric / 3), max(id) FROM orders").fetchone()
        want = pg.sql("SELECT count(*), count(total), sum(total), min(total), max(total), sum(id::bigint), "
                      "sum(total / 7.0), min(total::numeric / 3), max(id) FROM (VALUES " +
                      ",".join(f"({i}, {t})" for i, _, t in rows) + ") v(id, total)")[0]
        assert got == want
        got = c.execute(f"SELECT count(*), sum(total) FROM orders WHERE customer_id IN ({a}, {b})").fetchone()
        sel = [t for _, cu, t in rows if cu in (a, b)]
        assert got == (len(sel), sum(sel) if sel else None)
        assert c.execute("SELECT count(*), sum(total), min(total) FROM orders WHERE total > 10000000").fetchone() \
            == (0, None, None)
        with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
            c.execute("SELECT min(id::text) FROM orders")
        assert "integer and numeric" in str(e.value)
        with pytest.raises(psycopg.errors.DivisionByZero):
            c.execute("SELECT sum(total / (id - id)) FROM orders")
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_ordered_reads_over_shards(pg, sharded):
    """ORDER BY over several shards: the rows merged in order, LIMIT and
    OFFSET over the merge; keys it cannot compare exactly refused."""
    s, names, oracle = sharded
    rows = [(k, k % 7, (k * 37) % 101) for k in range(1, 61)]
    with s.connect(db="shop", autocommit=True) as c:
        for oid, cust, total in rows:
            c.execute("INSERT INTO orders (id, customer_id, total) VALUES (%s, %s, %s)", (oid, cust, total))
        want = [r[0] for r in sorted(rows, key=lambda r: (-r[2], r[0]))]
        assert [r[0] for r in c.execute("SELECT id, total FROM orders ORDER BY total DESC, id").fetchall()] == want
        assert [r[0] for r in c.execute("SELECT id, total FROM orders ORDER BY total DESC, 1 LIMIT 5 OFFSET 2")] \
            == want[2:7]
        assert [r[0] for r in c.execute("SELECT * FROM orders ORDER BY total DESC, id LIMIT 4")] == want[:4]
        cur = c.execute("SELECT id, total FROM orders WHERE total > %s ORDER BY id DESC LIMIT 3", (50,))
        assert [r[0] for r in cur.fetchall()] == sorted((k for k, _, t in rows if t > 50), reverse=True)[:3]
        assert cur.description[0].name == "id" and cur.rowcount == 3
        # Keys it cannot compare exactly: refused, and the session goes on.
        for sql, words in [
            ("SELECT id, customer_id::text AS t FROM orders ORDER BY t", 'COLLATE "C"'),
            ("SELECT id FROM orders ORDER BY total", "put it in the SELECT list"),
            ("SELECT id FROM orders ORDER BY total * 2", "merging the answers of several shards"),
            ("SELECT id, total FROM orders ORDER BY total LIMIT %s", "merging the answers of several shards"),
        ]:
            with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
                c.execute(sql, (3,) if "%s" in sql else None)
            assert words in str(e.value), (sql, str(e.value))
        # With COLLATE, PostgreSQL reads the name as an input column: sluice
        # sorts by it only when an output column is exactly that column.
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            c.execute('SELECT id, customer_id AS total FROM orders ORDER BY total COLLATE "C"')


def test_ordered_read_within_shard_buffer_size(pg, shop, helpers):
    names, oracle = shop
    for n in names:
        pg.sql("TRUNCATE orders", dbname=n)
        pg.sql("INSERT INTO orders SELECT g, g, g FROM generate_series(1, 2000) g", dbname=n)
    factory = helpers.ShardedFactory(pg, ["shop.orders = customer_id:bigint"])
    dbs = {f"shop_{i}": pg.db_line(n) for i, n in enumerate(names)}
    dbs["shop"] = "shards=" + ",".join(f"shop_{i}" for i in range(N_SHARDS))
    s = factory(ini_main={"pool_mode": "transaction", "shard_buffer_size": "65536"}, databases=dbs)
    try:
        with s.connect(db="shop", autocommit=True) as c:
            with pytest.raises(psycopg.errors.ProgramLimitExceeded) as e:
                c.execute("SELECT id, total FROM orders ORDER BY total")
            assert "shard_buffer_size" in str(e.value)
            # With a LIMIT only the first rows wait.
            assert c.execute("SELECT id, total FROM orders ORDER BY total DESC, id LIMIT 3").fetchall() == \
                [(2000, 2000)] * 3
    finally:
        assert not factory.finish()
        for n in names:
            pg.sql("TRUNCATE orders", dbname=n)


def test_what_needs_several_shards_is_refused_clearly(pg, sharded):
    s, names, oracle = sharded
    a, b = keys_on_distinct_shards(pg, oracle)
    with s.connect(db="shop", autocommit=True) as c:
        for sql, words in [
            ("SELECT stddev(total) FROM orders", "merging the answers of several shards is not built yet"),
            ("SELECT customer_id, count(*) FROM orders GROUP BY customer_id HAVING count(*) > 1",
             "merging the answers of several shards"),
            (f"SELECT avg(DISTINCT total) FROM orders WHERE customer_id IN ({a}, {b})", "keys are on several shards"),
            (f"SELECT DISTINCT ON (total) total FROM orders WHERE customer_id IN ({a}, {b})",
             "keys are on several shards"),
            ("SELECT id FROM orders ORDER BY total * 2", "merging the answers of several shards"),
            ("SELECT * FROM orders o JOIN orders p ON o.id = p.total", "join"),
        ]:
            with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
                c.execute(sql)
            assert words in str(e.value), (sql, str(e.value))
            with pytest.raises(psycopg.errors.FeatureNotSupported):
                c.execute(sql.replace(str(a), "%s", 1) if str(a) in sql else sql, (a,) if str(a) in sql else None)
        # Over several shards, an extended-protocol batch of two statements
        # (one implicit transaction) is refused.
        with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
            with c.pipeline():
                c.execute("SELECT id FROM orders WHERE total > %s", (0,))
                c.execute("SELECT 1")
        assert "one statement alone" in str(e.value)
        assert c.execute("SELECT 2").fetchone() == (2,)
        # The connection is fine afterwards; a replicated read answers from any shard.
        assert c.execute("SELECT name FROM countries WHERE code = 'fr'").fetchone() == ("France",)
        assert c.execute("SELECT name FROM countries WHERE code = %s", ("de",)).fetchone() == ("Germany",)
        # A key value PostgreSQL would refuse is refused as PostgreSQL would.
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            c.execute("SELECT * FROM orders WHERE customer_id = '4x'")


def test_settings_follow_the_client_to_every_shard(pg, sharded):
    s, names, oracle = sharded
    keys = {}
    k = 0
    while len(keys) < N_SHARDS:
        k += 1
        keys.setdefault(partition_of(pg, oracle, k), k)
    with s.connect(db="shop", autocommit=True) as c:
        for shard, key in keys.items():
            c.execute("INSERT INTO orders (id, customer_id, total) VALUES (%s, %s, 0)", (key, key))
        c.execute("SET statement_timeout = '7s'")
        c.execute("SET application_name = 'sharded-app'")
        for shard, key in keys.items():
            got = c.execute("SELECT current_setting('statement_timeout'), current_setting('application_name') "
                            "FROM orders WHERE customer_id = %s", (key,)).fetchall()
            assert got == [("7s", "sharded-app")], (shard, got)


def test_pgbench_over_shards_each_protocol(pg, sharded, tmp_path):
    s, names, oracle = sharded
    with s.connect(db="shop", autocommit=True) as c:
        for k in range(1, 201):
            c.execute("INSERT INTO orders (id, customer_id, total) VALUES (%s, %s, 0)", (k, k))
    script = tmp_path / "shard.sql"
    script.write_text(
        "\\set cid random(1, 200)\n"
        "BEGIN;\n"
        "UPDATE orders SET total = total + 1 WHERE customer_id = :cid;\n"
        "SELECT total FROM orders WHERE customer_id = :cid;\n"
        "END;\n"
        "SELECT id FROM orders WHERE customer_id = :cid;\n")
    for mode in ("simple", "extended", "prepared"):
        r = s.pgbench("-n", "-c", "4", "-j", "2", "-t", "100", "-M", mode, "-f", str(script), db="shop")
        assert r.returncode == 0, (mode, r.stdout, r.stderr)
        assert "number of transactions actually processed: 400/400" in r.stdout, (mode, r.stdout)
        assert "number of failed transactions: 0" in r.stdout, (mode, r.stdout)
    total = sum(pg.sql("SELECT coalesce(sum(total), 0) FROM orders", dbname=n)[0][0] for n in names)
    assert total == 3 * 400
    for shard, oid, cid in shard_rows(pg, names):
        assert shard == partition_of(pg, oracle, cid)


def test_named_statements_routed_by_their_bound_value(pg, sharded):
    """psycopg with prepare_threshold=0 prepares every statement under a
    name: each Bind of the same statement goes to its own value's shard."""
    s, names, oracle = sharded
    with s.connect(db="shop", prepare_threshold=0) as c:
        for k in range(1, 41):
            c.execute("INSERT INTO orders (id, customer_id, total) VALUES (%s, %s, %s)", (k, k * 7919, k))
        for k in range(1, 41):
            assert c.execute("SELECT total FROM orders WHERE customer_id = %s", (k * 7919,)).fetchall() == [(k,)]
    for shard, oid, cid in shard_rows(pg, names):
        assert shard == partition_of(pg, oracle, cid)


def _bind_batch(sql, value):
    """Parse (unnamed, no types), Bind with one text parameter, Execute, Sync."""
    q = sql.encode() + b"\0"
    v = str(value).encode()
    return [(b"P", b"\0" + q + struct.pack("!H", 0)),
            (b"B", b"\0\0" + struct.pack("!HH", 0, 1) + struct.pack("!I", len(v)) + v + struct.pack("!H", 0)),
            (b"E", b"\0" + struct.pack("!I", 0)),
            (b"S", b"")]


def _answers(conn, n_syncs):
    """Messages up to the n-th ReadyForQuery: list of (type, body)."""
    out = []
    while n_syncs:
        typ, body = conn.read()
        out.append((typ, body))
        if typ == "Z":
            n_syncs -= 1
    return out


def test_pipelined_batches_for_two_shards(pg, sharded):
    """Two batches sent at once, each for its own shard, outside a
    transaction: the second waits for the first's answers, then goes to
    its own shard. Inside one batch (one implicit transaction) a second
    shard is refused, and the first statement's work is undone."""
    s, names, oracle = sharded
    a, b = keys_on_distinct_shards(pg, oracle)
    ins = "INSERT INTO orders (id, customer_id, total) VALUES ({}, $1, 0)"
    with RawConn("127.0.0.1", s.port) as conn:
        conn.login("sluice_test", "shop", "test_pw")
        msgs = _bind_batch(ins.format(1), a) + _bind_batch(ins.format(2), b)
        conn.sock.sendall(b"".join(t + struct.pack("!I", len(body) + 4) + body for t, body in msgs))
        got = _answers(conn, 2)
        assert [t for t, _ in got if t in "CEZ"] == ["C", "Z", "C", "Z"], got
        one = _bind_batch(ins.format(3), a)[:-1] + _bind_batch(ins.format(4), b)
        conn.sock.sendall(b"".join(t + struct.pack("!I", len(body) + 4) + body for t, body in one))
        got = _answers(conn, 1)
        errors = [body for t, body in got if t == "E"]
        assert len(errors) == 1 and b"0A000" in errors[0] and b"a batch up to its Sync" in errors[0], got
        assert got[-1] == ("Z", b"I")
        conn.terminate()
    assert [r[1] for r in shard_rows(pg, names)] == [1, 2]


def test_unknown_key_type_is_not_guessed(sharded):
    """No type in [sharded_tables] and none in the Parse: '42' hashes
    differently as text and as a number, so the Bind is refused."""
    s, names, oracle = sharded
    with RawConn("127.0.0.1", s.port) as conn:
        conn.login("sluice_test", "shop", "test_pw")
        msgs = _bind_batch("SELECT * FROM untyped WHERE k = $1", "42")
        conn.sock.sendall(b"".join(t + struct.pack("!I", len(body) + 4) + body for t, body in msgs))
        got = _answers(conn, 1)
        errors = [body for t, body in got if t == "E"]
        assert len(errors) == 1 and b"0A000" in errors[0] and b"(column:TYPE)" in errors[0], got
        assert got[-1] == ("Z", b"I")
        rows, err = conn.simple_query("SELECT 1")
        assert err is None and rows == [["1"]]
        conn.terminate()


def test_fanout_survives_a_client_that_leaves_and_pipelines(pg, sharded):
    """A client that sends a query over every shard and another behind it
    gets both answers in order; one that leaves in the middle of the rows
    costs nothing but its own query."""
    s, names, oracle = sharded
    for i, n in enumerate(names):  # rows straight into each shard (their keys do not matter here)
        pg.sql(f"INSERT INTO orders (id, customer_id, total) "
               f"SELECT g, g, {i} FROM generate_series({i * 5000 + 1}, {(i + 1) * 5000}) g", dbname=n)
    with RawConn("127.0.0.1", s.port) as conn:
        conn.login("sluice_test", "shop", "test_pw")
        q1, q2 = b"SELECT id FROM orders\0", b"SELECT 42\0"
        conn.sock.sendall(b"Q" + struct.pack("!I", 4 + len(q1)) + q1 + b"Q" + struct.pack("!I", 4 + len(q2)) + q2)
        got = _answers(conn, 2)
        types = [t for t, _ in got]
        assert types.count("T") == 2 and types.count("D") == 4 * 5000 + 1, types[-5:]
        completes = [body for t, body in got if t == "C"]
        assert completes == [b"SELECT 20000\0", b"SELECT 1\0"]
        conn.terminate()
    for _ in range(3):
        conn = RawConn("127.0.0.1", s.port)
        conn.login("sluice_test", "shop", "test_pw")
        conn.sock.sendall(b"Q" + struct.pack("!I", 4 + len(q1)) + q1)
        conn.read()
        conn.close()  # in the middle of the rows
    with s.connect(db="shop") as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
        assert len(c.execute("SELECT id FROM orders").fetchall()) == 20000
