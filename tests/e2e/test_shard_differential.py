"""Differential test of a sharded database (issue 19, docs/sharding.md):
the same data in one unsharded database and, written through sluice, in
four shards; hundreds of generated queries over one shard key each
(point reads, aggregates, grouping, ordering with limits, DISTINCT,
window functions, co-located joins, joins with a replicated table;
constants and Bind parameters; alone, in transactions, prepared under a
name) must give the same rows through sluice as directly from the
unsharded copy. Writes through sluice (UPDATE, DELETE, INSERT in
transactions, some rolled back) leave the shards holding exactly the
unsharded copy's rows, each row on the shard PostgreSQL's hash
partitioning gives its key.

Reads over several shards are generated too: rows concatenated (compared
as sets), aggregates combined, and ORDER BY with LIMIT and OFFSET merged
(compared in order)."""

import random

import pytest

from conftest import ShardedFactory, unique

pytestmark = pytest.mark.sluice_only

N_SHARDS = 4
CUSTOMERS = 60
SCHEMA = [
    "CREATE TABLE orders (id int PRIMARY KEY, customer_id bigint NOT NULL, total int NOT NULL, country text)",
    "CREATE TABLE order_items (order_id int, customer_id bigint NOT NULL, qty int, PRIMARY KEY (order_id, qty))",
    "CREATE TABLE countries (code text PRIMARY KEY, name text)",
]
COUNTRIES = [("de", "Germany"), ("fr", "France"), ("it", "Italy"), ("nl", None)]


@pytest.fixture(scope="module")
def dbs(pg):
    shards = [unique("dshard") for _ in range(N_SHARDS)]
    mono, oracle = unique("mono"), unique("doracle")
    for n in shards + [mono, oracle]:
        pg.sql(f"CREATE DATABASE {n} OWNER sluice_test")
    for n in shards + [mono]:
        with pg.connect(n) as c:
            for ddl in SCHEMA:
                c.execute(ddl)
            for code, name in COUNTRIES:  # replicated: the same rows everywhere
                c.execute("INSERT INTO countries VALUES (%s, %s)", (code, name))
            c.execute("GRANT ALL ON ALL TABLES IN SCHEMA public TO sluice_test")
    with pg.connect(oracle) as c:
        c.execute("CREATE TABLE p (k bigint) PARTITION BY HASH (k)")
        for r in range(N_SHARDS):
            c.execute(f"CREATE TABLE p_{r} PARTITION OF p FOR VALUES WITH (MODULUS {N_SHARDS}, REMAINDER {r})")
    yield shards, mono, oracle
    for n in shards + [mono, oracle]:
        pg.sql(f"DROP DATABASE IF EXISTS {n} WITH (FORCE)")


@pytest.fixture(scope="module")
def shop(pg, dbs):
    shards, mono, oracle = dbs

    factory = ShardedFactory(pg, ["shop.orders = customer_id:bigint", "shop.order_items = customer_id:int8"])
    databases = {f"shop_{i}": pg.db_line(n) for i, n in enumerate(shards)}
    databases["shop"] = "shards=" + ",".join(f"shop_{i}" for i in range(N_SHARDS))
    s = factory(ini_main={"pool_mode": "transaction"}, databases=databases)
    yield s
    problems = factory.finish()
    assert not problems, problems


def load(pg, shop, mono, rng):
    """The same rows into the unsharded copy (directly) and the shards
    (through sluice: simple and extended, some in transactions)."""
    orders, items = [], []
    for oid in range(1, 401):
        cust = rng.randint(1, CUSTOMERS)
        orders.append((oid, cust, rng.randint(0, 500), rng.choice([c for c, _ in COUNTRIES] + [None])))
        for q in range(rng.randint(0, 3)):
            items.append((oid, cust, q + 1))
    with pg.connect(mono) as c:
        with c.cursor() as cur:
            cur.executemany("INSERT INTO orders VALUES (%s, %s, %s, %s)", orders)
            cur.executemany("INSERT INTO order_items VALUES (%s, %s, %s)", items)
    with shop.connect(db="shop") as c:
        for i, (oid, cust, total, country) in enumerate(orders):
            if i % 3 == 0:
                lit = "NULL" if country is None else f"'{country}'"
                c.execute(f"INSERT INTO orders (id, customer_id, total, country) VALUES ({oid}, {cust}, {total}, {lit})")
            else:
                c.execute("INSERT INTO orders (id, customer_id, total, country) VALUES (%s, %s, %s, %s)",
                          (oid, cust, total, country))
        by_cust = {}
        for it in items:
            by_cust.setdefault(it[1], []).append(it)
    with shop.connect(db="shop", autocommit=False) as c:
        for cust, its in by_cust.items():  # one transaction per customer: one shard each
            for oid, cu, q in its:
                c.execute("INSERT INTO order_items (order_id, customer_id, qty) VALUES (%s, %s, %s)", (oid, cu, q))
            c.commit()


QUERIES = [
    "SELECT id, total, country FROM orders WHERE customer_id = {k} ORDER BY id",
    "SELECT count(*), sum(total), min(total), max(total), round(avg(total), 6) FROM orders WHERE customer_id = {k}",
    "SELECT country, count(*), sum(total) FROM orders WHERE customer_id = {k} GROUP BY country ORDER BY country NULLS FIRST",
    "SELECT o.id, sum(i.qty) FROM orders o JOIN order_items i ON o.customer_id = i.customer_id AND o.id = i.order_id "
    "WHERE o.customer_id = {k} GROUP BY o.id ORDER BY o.id",
    "SELECT o.id, c.name FROM orders o LEFT JOIN countries c ON c.code = o.country WHERE o.customer_id = {k} "
    "ORDER BY o.id LIMIT 3 OFFSET 1",
    "SELECT DISTINCT country FROM orders WHERE customer_id IN ({k}) ORDER BY 1",
    "SELECT id FROM orders WHERE customer_id = {k} AND total > {t} ORDER BY total DESC, id LIMIT 5",
    "SELECT id, rank() OVER (ORDER BY total, id), sum(total) OVER () FROM orders WHERE customer_id = {k} ORDER BY id",
    "SELECT i.order_id, i.qty, o.id FROM order_items i JOIN orders o USING (customer_id) "
    "WHERE i.customer_id = {k} ORDER BY 1, 2, 3",
    "SELECT i.order_id FROM order_items i, orders o WHERE o.customer_id = i.customer_id AND o.id = i.order_id "
    "AND o.customer_id = {k} AND o.total >= {t} ORDER BY 1",
    "SELECT c.code, (SELECT count(*) FROM countries) FROM countries c ORDER BY 1",
    "SELECT total % 7, count(*) FILTER (WHERE country IS NULL), string_agg(id::text, ',' ORDER BY id) "
    "FROM orders WHERE customer_id = {k} GROUP BY 1 HAVING count(*) > 0 ORDER BY 1",
]


FANOUT = [
    "SELECT id, total, country FROM orders WHERE total > {t}",
    "SELECT o.id, i.qty FROM orders o JOIN order_items i ON o.customer_id = i.customer_id AND o.id = i.order_id "
    "WHERE i.qty = 2 AND o.total < {t}",
    "SELECT id, customer_id FROM orders WHERE customer_id IN ({k}, {k2})",
    "SELECT o.id, c.name FROM orders o JOIN countries c ON c.code = o.country WHERE o.total BETWEEN {t} AND {t} + 50",
    "SELECT customer_id, qty FROM order_items WHERE qty >= 3 OR customer_id = {k}",
    "SELECT count(*), sum(total), min(total), max(total) FROM orders WHERE total > {t}",
    "SELECT count(country), max(id), sum(total::numeric / 8) FROM orders WHERE customer_id IN ({k}, {k2})",
    "SELECT sum(qty), count(*), min(order_id) FROM order_items WHERE qty < {t} % 4",
    # Grouped: each shard's groups combined per key (compared as sets).
    "SELECT country, count(*), sum(total), min(id), max(total) FROM orders WHERE total > {t} GROUP BY country",
    "SELECT customer_id, count(*) FROM order_items GROUP BY 1",
    "SELECT qty, country, count(*), sum(o.total::numeric) FROM orders o JOIN order_items i "
    "ON o.customer_id = i.customer_id AND o.id = i.order_id GROUP BY qty, country",
    "SELECT DISTINCT country FROM orders WHERE total < {t}",
    "SELECT DISTINCT qty, customer_id FROM order_items WHERE customer_id IN ({k}, {k2})",
    # avg: each shard's sum and count, divided as PostgreSQL's numeric division does.
    "SELECT avg(total), count(*), avg(id::numeric / 7) FROM orders WHERE total > {t}",
    "SELECT country, avg(total) AS mean, max(id) FROM orders GROUP BY country",
    "SELECT avg(qty) FROM order_items WHERE customer_id IN ({k}, {k2})",
]


# Over every shard, ordered: the rows merged in the ORDER BY's order (each
# ends with a unique key, so the order is one), LIMIT and OFFSET over them.
ORDERED = [
    "SELECT id, total FROM orders WHERE total > {t} ORDER BY total DESC, id LIMIT 17",
    "SELECT id, country, total FROM orders ORDER BY country COLLATE \"C\" NULLS FIRST, id OFFSET 5 LIMIT 40",
    "SELECT o.id, o.total AS amount FROM orders o WHERE o.total < {t} ORDER BY amount, o.id DESC LIMIT 10 OFFSET 3",
    "SELECT id, customer_id FROM orders WHERE customer_id IN ({k}, {k2}) ORDER BY 2 DESC, 1",
    "SELECT * FROM orders WHERE total BETWEEN {t} AND {t} + 100 ORDER BY id",
    "SELECT id, total::numeric / 7 AS r FROM orders ORDER BY r DESC NULLS LAST, id LIMIT 25",
    "SELECT customer_id, order_id, qty FROM order_items WHERE qty >= 2 ORDER BY customer_id, order_id, qty OFFSET 10",
    "SELECT id FROM orders ORDER BY id LIMIT 0",
    "SELECT id, country FROM orders WHERE total > {t} ORDER BY country COLLATE \"C\" DESC, id DESC LIMIT 30",
    "SELECT id FROM orders WHERE total < {t} OFFSET 7",
    "SELECT country, count(*), sum(total) FROM orders GROUP BY country ORDER BY 2 DESC, country COLLATE \"C\" "
    "NULLS FIRST LIMIT 3",
    "SELECT customer_id, max(total) AS top FROM orders WHERE total > {t} GROUP BY customer_id "
    "ORDER BY top DESC, customer_id LIMIT 5 OFFSET 2",
    "SELECT DISTINCT qty FROM order_items ORDER BY qty DESC",
]


def render(q, k, t, params):
    """The text with constants; or, params, with psycopg placeholders in
    text order and their values."""
    if not params:
        return q.format(k=k, t=t), None
    out, vals, i = "", [], 0
    # An IN list with a parameter fixes no shard (docs/sharding.md): kept a constant.
    q = q.replace("%", "%%").replace("IN ({k})", f"IN ({k})")
    while i < len(q):
        if q.startswith("{k}", i):
            out, i = out + "%s", i + 3
            vals.append(k)
        elif q.startswith("{t}", i):
            out, i = out + "%s", i + 3
            vals.append(t)
        else:
            out, i = out + q[i], i + 1
    return out, vals


def test_sharded_answers_equal_unsharded(pg, dbs, shop):
    shards, mono, oracle = dbs
    rng = random.Random(1919)
    load(pg, shop, mono, rng)
    # Placement: each order on the shard PostgreSQL's hash partitioning gives it.
    keys = sorted({k for n in shards for (k,) in pg.sql("SELECT DISTINCT customer_id FROM orders", dbname=n)})
    where = {}
    for i, n in enumerate(shards):
        for (k,) in pg.sql("SELECT DISTINCT customer_id FROM orders", dbname=n):
            assert k not in where, f"customer {k} on two shards"
            where[k] = i
    for k in keys:
        ok = pg.sql(f"SELECT satisfies_hash_partition('p'::regclass, {N_SHARDS}, %s, %s::bigint)",
                    (where[k], k), dbname=oracle)[0][0]
        assert ok, (k, where[k])
    checked = 0
    with pg.connect(mono) as direct, shop.connect(db="shop") as via, \
            shop.connect(db="shop", prepare_threshold=0) as named, shop.connect(db="shop", autocommit=False) as tx:
        for round_ in range(300):
            q = rng.choice(QUERIES)
            k = rng.randint(1, CUSTOMERS + 5)  # some keys have no rows
            t = rng.randint(0, 500)
            text, _ = render(q, k, t, False)
            want = direct.execute(text).fetchall()
            mode = rng.choice(["simple", "bind", "named", "tx"])
            if mode == "simple":
                got = via.execute(text).fetchall()
            elif mode in ("bind", "named"):
                ptext, vals = render(q, k, t, True)
                got = (via if mode == "bind" else named).execute(ptext, vals).fetchall()
            else:
                # A statement on the key first: it fixes the transaction's
                # shard (a replicated read first would fix another one).
                first = render(QUERIES[0], k, t, False)[0]
                assert tx.execute(first).fetchall() == direct.execute(first).fetchall()
                got = tx.execute(text).fetchall()
                tx.commit() if rng.random() < 0.5 else tx.rollback()
            assert got == want, (mode, text, got, want)
            checked += 1
        # Over every shard (or the shards of an IN list), simple queries:
        # the same rows (concatenated), or the same aggregates (combined).
        for round_ in range(60):
            k, k2, t = rng.randint(1, CUSTOMERS), rng.randint(1, CUSTOMERS), rng.randint(0, 500)
            q = rng.choice(FANOUT)
            text = q.format(k=k, k2=k2, t=t)
            want = sorted(direct.execute(text).fetchall(), key=repr)
            if rng.random() < 0.5:
                cur = via.execute(text)  # simple protocol
            else:  # extended: the constant t as a parameter
                ptext = q.replace("%", "%%").replace("{t}", "%s").format(k=k, k2=k2)
                cur = (via if rng.random() < 0.5 else named).execute(ptext, [t] * ptext.count("%s"))
            got = sorted(cur.fetchall(), key=repr)
            assert got == want, (text, got, want)
            # Numbers as written too: an avg's scale is PostgreSQL's.
            assert [tuple(map(str, r)) for r in got] == [tuple(map(str, r)) for r in want], (text, got, want)
            assert cur.rowcount == len(want)
            checked += 1
        for round_ in range(60):
            k, k2, t = rng.randint(1, CUSTOMERS), rng.randint(1, CUSTOMERS), rng.randint(0, 500)
            q = rng.choice(ORDERED)
            text = q.format(k=k, k2=k2, t=t)
            want = direct.execute(text).fetchall()
            if "ORDER BY" not in text:  # OFFSET alone: which rows is PostgreSQL's choice
                want = len(want)
            if rng.random() < 0.5:
                cur = via.execute(text)
            else:
                ptext = q.replace("%", "%%").replace("{t}", "%s").format(k=k, k2=k2)
                cur = (via if rng.random() < 0.5 else named).execute(ptext, [t] * ptext.count("%s"))
            got = cur.fetchall()
            if isinstance(want, int):
                got = len(got)
            assert got == want, (text, got, want)
            checked += 1
    assert checked == 420


def test_writes_through_sluice_match_the_unsharded_copy(pg, dbs, shop):
    shards, mono, oracle = dbs
    rng = random.Random(2024)
    with pg.connect(mono) as direct, shop.connect(db="shop", autocommit=False) as via:
        for n in range(120):
            k = rng.randint(1, CUSTOMERS)
            kind = rng.choice(["update", "delete", "insert", "update_param"])
            oid = 1000 + n
            if kind == "update":
                sql = f"UPDATE orders SET total = total + {n} WHERE customer_id = {k} AND total < 250"
                args = None
            elif kind == "update_param":
                sql, args = "UPDATE orders SET country = %s WHERE customer_id = %s AND id %% 2 = 0", ("it", k)
            elif kind == "delete":
                sql = f"DELETE FROM order_items WHERE customer_id = {k} AND qty = 3"
                args = None
            else:
                sql, args = ("INSERT INTO orders (id, customer_id, total, country) VALUES (%s, %s, %s, %s)",
                             (oid, k, n, "fr"))
            commit = rng.random() < 0.7
            via.execute(sql, args)
            via.execute("SELECT count(*) FROM orders WHERE customer_id = %s", (k,))  # same shard, same transaction
            if commit:
                via.commit()
                direct.execute(sql, args)
            else:
                via.rollback()
    for table, cols in (("orders", "id, customer_id, total, country"), ("order_items", "order_id, customer_id, qty")):
        want = sorted(pg.sql(f"SELECT {cols} FROM {table}", dbname=mono))
        got = sorted(r for n in shards for r in pg.sql(f"SELECT {cols} FROM {table}", dbname=n))
        assert got == want, table
