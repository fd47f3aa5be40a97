/*
 * test_shardroute.c - shard_route's decisions, each both ways: what fixes
 * a key and what does not, co-located joins and joins that are not,
 * replicated tables, refusals. Shards of values are PostgreSQL's own for
 * MODULUS 4 (test_pghash.c pins them: int 1 -> 0, 2 -> 2, 3 -> 1, 5 -> 1,
 * 42 -> 2; text 'abc' -> 1).
 *
 * With SHARDROUTE_QUERIES=FILE in the environment it instead answers for
 * tests/e2e/test_shardroute.py: each line "TYPE HEX" (a key type and a
 * hex-encoded SQL text over table p sharded on k, 4 shards) gets the line
 * "KIND SHARD SQLSTATE" on stdout, and no test runs.
 */
#include <stdint.h>
#include <stdlib.h>

#include "pghash.h"
#include "shardroute.h"
#include "unit.h"

static const struct shard_table tables[] = {
	{ NULL, "orders", "customer_id", PGHASH_INT8 },
	{ "public", "order_items", "customer_id", PGHASH_INT4 },
	{ NULL, "accounts", "email", PGHASH_TEXT },
	{ NULL, "users", "id", PGHASH_UUID },
	{ NULL, "events", "k", PGHASH_UNKNOWN },
};
static const struct shard_map map = { tables, sizeof(tables) / sizeof(tables[0]), 4 };

enum { ANY = -99 };

static const struct {
	const char *sql;
	int kind;
	int64_t arg;       /* ONE: shard; SEVERAL: mask; BIND: param; REFUSE: unused; ANY: not checked */
	const char *text;  /* REFUSE: in the message (NULL: not checked) */
} cases[] = {
	/* A fixed key: one shard. */
	{ "SELECT * FROM orders WHERE customer_id = 42", SHARD_ROUTE_ONE, 2, NULL },
	{ "select * from orders where customer_id = 1 and total > 5", SHARD_ROUTE_ONE, 0, NULL },
	{ "SELECT * FROM orders WHERE (customer_id = 42 AND total > 1) AND country = 'fr'", SHARD_ROUTE_ONE, 2, NULL },
	{ "SELECT * FROM orders WHERE 42 = customer_id", SHARD_ROUTE_ONE, 2, NULL },
	{ "SELECT * FROM orders o WHERE o.customer_id = 42", SHARD_ROUTE_ONE, 2, NULL },
	{ "SELECT * FROM public.orders WHERE public.orders.customer_id = 42", SHARD_ROUTE_ONE, 2, NULL },
	{ "SELECT * FROM orders WHERE orders.customer_id = -7", SHARD_ROUTE_ONE, 2, NULL },
	{ "SELECT * FROM orders WHERE customer_id = '42'", SHARD_ROUTE_ONE, 2, NULL },
	{ "SELECT * FROM orders WHERE customer_id = 42::int8", SHARD_ROUTE_ONE, 2, NULL },
	{ "SELECT * FROM orders WHERE customer_id = '42'::bigint", SHARD_ROUTE_ONE, 2, NULL },
	{ "SELECT * FROM orders WHERE customer_id = CAST('42' AS smallint)", SHARD_ROUTE_ONE, 2, NULL },
	{ "SELECT * FROM orders WHERE customer_id = 5000000000", SHARD_ROUTE_ONE, 0, NULL },
	{ "SELECT * FROM orders WHERE customer_id = -7::int2", SHARD_ROUTE_ONE, 2, NULL },
	{ "SELECT * FROM orders WHERE customer_id = -(-42)", SHARD_ROUTE_ONE, 2, NULL },
	{ "SELECT * FROM orders WHERE customer_id = -'7'::int2", SHARD_ROUTE_MULTI, ANY, NULL },
	{ "SELECT * FROM accounts WHERE email = -7::text", SHARD_ROUTE_MULTI, ANY, NULL },
	{ "INSERT INTO orders (id, customer_id) VALUES (1, -7::bigint)", SHARD_ROUTE_ONE, 2, NULL },
	{ "SELECT * FROM orders WHERE customer_id = 42 FOR UPDATE", SHARD_ROUTE_ONE, 2, NULL },
	{ "EXPLAIN SELECT * FROM orders WHERE customer_id = 42", SHARD_ROUTE_ONE, 2, NULL },
	{ "SELECT * FROM orders WHERE customer_id IN (3, 5)", SHARD_ROUTE_ONE, 1, NULL },
	{ "SELECT * FROM orders WHERE customer_id = 42 AND customer_id IN (1, 42)", SHARD_ROUTE_ONE, 2, NULL },
	{ "SELECT * FROM orders WHERE customer_id = 42 AND customer_id = 1", SHARD_ROUTE_ONE, 0, NULL }, /* no row */
	{ "SELECT * FROM accounts WHERE email = 'abc'", SHARD_ROUTE_ONE, 1, NULL },
	{ "SELECT * FROM users WHERE id = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", SHARD_ROUTE_ONE, 0, NULL },
	{ "SELECT * FROM events WHERE k = 42", SHARD_ROUTE_ONE, 2, NULL },
	{ "SELECT * FROM events WHERE k = '42'::int4", SHARD_ROUTE_ONE, 2, NULL },
	{ "SELECT row_number() OVER () FROM orders WHERE customer_id = 42", SHARD_ROUTE_ONE, 2, NULL },
	{ "SELECT * FROM orders WHERE country IN (SELECT code FROM countries) AND customer_id = 1", SHARD_ROUTE_ONE, 0, NULL },
	/* Several shards. */
	{ "SELECT * FROM orders WHERE customer_id IN (1, 3)", SHARD_ROUTE_SEVERAL, 0x3, NULL },
	{ "DELETE FROM orders WHERE customer_id IN (1, 2)", SHARD_ROUTE_SEVERAL, 0x5, NULL },
	{ "SELECT sum(x) FROM orders WHERE customer_id IN ('1', '2', '3')", SHARD_ROUTE_SEVERAL, 0x7, NULL },
	/* Decided at Bind. */
	{ "SELECT * FROM orders WHERE customer_id = $1", SHARD_ROUTE_BIND, 1, NULL },
	{ "SELECT * FROM orders WHERE customer_id = $2::int8 AND total > $1", SHARD_ROUTE_BIND, 2, NULL },
	{ "SELECT * FROM orders o, public.order_items i WHERE o.customer_id = i.customer_id AND i.customer_id = $1",
	  SHARD_ROUTE_BIND, 1, NULL },
	{ "SELECT * FROM orders WHERE customer_id = $1 AND customer_id = 42", SHARD_ROUTE_ONE, 2, NULL },
	/* Nothing fixed: every shard, merged. */
	{ "SELECT * FROM orders", SHARD_ROUTE_MULTI, ANY, NULL },
	{ "SELECT count(*), max(total) FROM orders GROUP BY country ORDER BY 1 LIMIT 3", SHARD_ROUTE_MULTI, ANY, NULL },
	{ "SELECT * FROM orders WHERE customer_id = 42 OR total > 5", SHARD_ROUTE_MULTI, ANY, NULL },
	{ "SELECT * FROM orders WHERE NOT (customer_id = 42)", SHARD_ROUTE_MULTI, ANY, NULL },
	{ "SELECT * FROM orders WHERE customer_id <> 42", SHARD_ROUTE_MULTI, ANY, NULL },
	{ "SELECT * FROM orders WHERE customer_id NOT IN (42)", SHARD_ROUTE_MULTI, ANY, NULL },
	{ "SELECT * FROM orders WHERE customer_id = 4.2", SHARD_ROUTE_MULTI, ANY, NULL },
	{ "SELECT * FROM orders WHERE customer_id = NULL", SHARD_ROUTE_MULTI, ANY, NULL },
	{ "SELECT * FROM orders WHERE customer_id = total", SHARD_ROUTE_MULTI, ANY, NULL },
	{ "SELECT * FROM orders WHERE customer_id + 0 = 42", SHARD_ROUTE_MULTI, ANY, NULL },
	{ "SELECT * FROM orders WHERE customer_id IN (1, $1)", SHARD_ROUTE_MULTI, ANY, NULL },
	{ "SELECT * FROM orders WHERE customer_id = ANY('{1,2}')", SHARD_ROUTE_MULTI, ANY, NULL },
	{ "SELECT * FROM orders WHERE id = 42", SHARD_ROUTE_MULTI, ANY, NULL },
	{ "SELECT * FROM orders WHERE customer_id = 42::numeric", SHARD_ROUTE_MULTI, ANY, NULL },
	{ "SELECT * FROM orders o LEFT JOIN public.order_items i ON o.customer_id = i.customer_id AND i.customer_id = 42",
	  SHARD_ROUTE_MULTI, ANY, NULL },
	{ "SELECT * FROM orders o JOIN countries c ON o.country = c.code", SHARD_ROUTE_MULTI, ANY, NULL },
	{ "UPDATE orders SET total = 1", SHARD_ROUTE_MULTI, ANY, NULL },
	/* Co-located joins. */
	{ "SELECT * FROM orders o JOIN order_items i ON o.customer_id = i.customer_id WHERE o.customer_id = 42",
	  SHARD_ROUTE_ONE, 2, NULL },
	{ "SELECT * FROM orders o JOIN order_items i ON i.customer_id = o.customer_id AND i.customer_id = 42",
	  SHARD_ROUTE_ONE, 2, NULL },
	{ "SELECT * FROM orders JOIN order_items USING (customer_id) WHERE customer_id = 42", SHARD_ROUTE_ONE, 2, NULL },
	{ "SELECT * FROM orders JOIN order_items USING (customer_id)", SHARD_ROUTE_MULTI, ANY, NULL },
	{ "SELECT * FROM orders a JOIN orders b ON a.customer_id = b.customer_id", SHARD_ROUTE_MULTI, ANY, NULL },
	{ "SELECT * FROM orders o FULL JOIN order_items i ON o.customer_id = i.customer_id", SHARD_ROUTE_MULTI, ANY, NULL },
	{ "SELECT * FROM orders o, order_items i WHERE o.customer_id = 3 AND i.customer_id = 5", SHARD_ROUTE_ONE, 1, NULL },
	{ "SELECT * FROM orders o JOIN countries c ON o.country = c.code WHERE o.customer_id = 1", SHARD_ROUTE_ONE, 0, NULL },
	/* Not co-located. */
	{ "SELECT * FROM orders o JOIN order_items i ON o.id = i.order_id", SHARD_ROUTE_REFUSE, ANY,
	  "a join of sharded tables orders and order_items not on their shard keys" },
	{ "SELECT * FROM orders o, order_items i WHERE o.customer_id = 1 AND i.customer_id = 42", SHARD_ROUTE_REFUSE, ANY,
	  "not on their shard keys" },
	{ "SELECT * FROM orders o JOIN order_items i ON o.customer_id = i.customer_id OR o.id = i.id", SHARD_ROUTE_REFUSE,
	  ANY, "not on their shard keys" },
	{ "SELECT * FROM orders a JOIN orders b ON a.id = b.id", SHARD_ROUTE_REFUSE, ANY, "not on their shard keys" },
	{ "SELECT * FROM orders o JOIN accounts a ON o.customer_id = a.email", SHARD_ROUTE_REFUSE, ANY, "not on their" },
	/* Window functions, subqueries, set operations. */
	{ "SELECT row_number() OVER () FROM orders", SHARD_ROUTE_REFUSE, ANY, "a window function over sharded table orders" },
	{ "SELECT rank() OVER (ORDER BY total) FROM orders WHERE customer_id IN (1, 2)", SHARD_ROUTE_REFUSE, ANY,
	  "window function" },
	{ "SELECT * FROM countries WHERE code IN (SELECT country FROM orders)", SHARD_ROUTE_REFUSE, ANY,
	  "a subquery over sharded table orders" },
	{ "SELECT * FROM (SELECT * FROM orders) s", SHARD_ROUTE_REFUSE, ANY, "a subquery in FROM over sharded table orders" },
	{ "WITH x AS (SELECT * FROM orders) SELECT * FROM x", SHARD_ROUTE_REFUSE, ANY, "a WITH query over sharded table" },
	{ "SELECT customer_id FROM orders UNION SELECT 1", SHARD_ROUTE_REFUSE, ANY, "UNION, INTERSECT or EXCEPT" },
	{ "SELECT * INTO t2 FROM orders", SHARD_ROUTE_REFUSE, ANY, "SELECT INTO from sharded table orders" },
	/* Keys that do not parse, or whose type is not known. */
	{ "SELECT * FROM orders WHERE customer_id = 'abc'", SHARD_ROUTE_REFUSE, ANY, "invalid input syntax for type int8" },
	{ "SELECT * FROM users WHERE id = 'nope'", SHARD_ROUTE_REFUSE, ANY, "invalid input syntax for type uuid" },
	{ "SELECT * FROM events WHERE k = 'x'", SHARD_ROUTE_REFUSE, ANY, "the type of shard key events.k is not known" },
	/* Replicated tables only. */
	{ "SELECT * FROM countries", SHARD_ROUTE_REPLICATED_READ, ANY, NULL },
	{ "SELECT 1", SHARD_ROUTE_REPLICATED_READ, ANY, NULL },
	{ "SELECT now(), count(*) FROM countries c JOIN products p ON p.c = c.code", SHARD_ROUTE_REPLICATED_READ, ANY, NULL },
	{ "SELECT 1 UNION SELECT 2", SHARD_ROUTE_REPLICATED_READ, ANY, NULL },
	{ "WITH orders AS (SELECT 1 AS customer_id) SELECT * FROM orders", SHARD_ROUTE_REPLICATED_READ, ANY, NULL },
	{ "", SHARD_ROUTE_REPLICATED_READ, ANY, NULL },
	{ "COPY countries TO STDOUT", SHARD_ROUTE_REPLICATED_READ, ANY, NULL },
	{ "SELECT * FROM countries FOR UPDATE", SHARD_ROUTE_REPLICATED_WRITE, ANY, NULL },
	{ "SELECT my_function(1)", SHARD_ROUTE_REPLICATED_WRITE, ANY, NULL },
	{ "WITH d AS (DELETE FROM countries RETURNING *) SELECT * FROM d", SHARD_ROUTE_REPLICATED_WRITE, ANY, NULL },
	{ "UPDATE countries SET name = 'x'", SHARD_ROUTE_REPLICATED_WRITE, ANY, NULL },
	{ "DELETE FROM countries", SHARD_ROUTE_REPLICATED_WRITE, ANY, NULL },
	{ "INSERT INTO countries VALUES ('fr')", SHARD_ROUTE_REPLICATED_WRITE, ANY, NULL },
	{ "INSERT INTO countries SELECT code FROM products", SHARD_ROUTE_REPLICATED_WRITE, ANY, NULL },
	{ "CREATE TABLE t (a int)", SHARD_ROUTE_REPLICATED_WRITE, ANY, NULL },
	{ "ALTER TABLE orders ADD COLUMN x int", SHARD_ROUTE_REPLICATED_WRITE, ANY, NULL },
	{ "CREATE INDEX ON orders (total)", SHARD_ROUTE_REPLICATED_WRITE, ANY, NULL },
	{ "TRUNCATE orders", SHARD_ROUTE_REPLICATED_WRITE, ANY, NULL },
	{ "COPY countries FROM STDIN", SHARD_ROUTE_REPLICATED_WRITE, ANY, NULL },
	/* Writes to replicated tables from sharded ones. */
	{ "UPDATE countries c SET n = o.total FROM orders o WHERE o.country = c.code", SHARD_ROUTE_REFUSE, ANY,
	  "UPDATE of replicated table countries from sharded table orders" },
	{ "DELETE FROM countries WHERE code IN (SELECT country FROM orders)", SHARD_ROUTE_REFUSE, ANY,
	  "DELETE of replicated table countries from sharded table orders" },
	{ "INSERT INTO countries SELECT country FROM orders", SHARD_ROUTE_REFUSE, ANY,
	  "INSERT into replicated table countries from sharded table orders" },
	{ "CREATE VIEW v AS SELECT * FROM orders", SHARD_ROUTE_REFUSE, ANY, "reading sharded table orders" },
	{ "CREATE TABLE t2 AS SELECT * FROM orders", SHARD_ROUTE_REFUSE, ANY, "reading sharded table orders" },
	/* UPDATE and DELETE of sharded tables. */
	{ "UPDATE orders SET total = 1 WHERE customer_id = 42", SHARD_ROUTE_ONE, 2, NULL },
	{ "UPDATE orders SET total = total + 1 WHERE customer_id = $1 RETURNING *", SHARD_ROUTE_BIND, 1, NULL },
	{ "UPDATE orders o SET total = i.n FROM order_items i WHERE o.customer_id = i.customer_id AND o.customer_id = $1",
	  SHARD_ROUTE_BIND, 1, NULL },
	{ "UPDATE orders SET total = 1 FROM countries c WHERE orders.country = c.code AND orders.customer_id = 1",
	  SHARD_ROUTE_ONE, 0, NULL },
	{ "DELETE FROM orders USING products p WHERE customer_id = 1 AND p.id = orders.product", SHARD_ROUTE_ONE, 0, NULL },
	{ "DELETE FROM orders WHERE customer_id = 42 OR customer_id = 1", SHARD_ROUTE_MULTI, ANY, NULL },
	{ "UPDATE orders SET customer_id = 2 WHERE customer_id = 42", SHARD_ROUTE_REFUSE, ANY,
	  "UPDATE of shard key column orders.customer_id" },
	{ "UPDATE orders SET (total, customer_id) = (1, 2)", SHARD_ROUTE_REFUSE, ANY, "shard key column" },
	{ "UPDATE orders o SET total = 1 FROM order_items i WHERE o.id = i.order_id", SHARD_ROUTE_REFUSE, ANY,
	  "UPDATE ... FROM across shards: order_items is not joined to orders" },
	{ "DELETE FROM orders o USING order_items i WHERE o.id = i.order_id AND o.customer_id = 1", SHARD_ROUTE_REFUSE, ANY,
	  "DELETE ... USING across shards" },
	{ "UPDATE orders SET total = 1 WHERE id IN (SELECT order_id FROM order_items)", SHARD_ROUTE_REFUSE, ANY,
	  "a subquery over sharded table order_items" },
	/* INSERT. */
	{ "INSERT INTO orders (id, customer_id) VALUES (1, 42)", SHARD_ROUTE_ONE, 2, NULL },
	{ "INSERT INTO orders (customer_id, id) VALUES (3, 1), (5, 2)", SHARD_ROUTE_ONE, 1, NULL },
	{ "INSERT INTO orders (customer_id, id) VALUES ($1, $2)", SHARD_ROUTE_BIND, 1, NULL },
	{ "INSERT INTO orders (id, customer_id) VALUES ($1, $2::bigint) RETURNING id", SHARD_ROUTE_BIND, 2, NULL },
	{ "INSERT INTO orders (customer_id, id) VALUES (1, 1), (42, 2), (3, 3)", SHARD_ROUTE_SEVERAL, 0x7, NULL },
	{ "INSERT INTO public.order_items (customer_id) VALUES ('1'), ('2')", SHARD_ROUTE_SEVERAL, 0x5, NULL },
	{ "INSERT INTO orders (id, customer_id) VALUES (1, 2) ON CONFLICT (id) DO UPDATE SET total = 3", SHARD_ROUTE_ONE, 2,
	  NULL },
	{ "INSERT INTO orders VALUES (1, 42)", SHARD_ROUTE_REFUSE, ANY, "without a column list" },
	{ "INSERT INTO orders (id) VALUES (1)", SHARD_ROUTE_REFUSE, ANY, "without its shard key column customer_id" },
	{ "INSERT INTO orders (id, customer_id) VALUES (1, 40 + 2)", SHARD_ROUTE_REFUSE, ANY, "cannot compute" },
	{ "INSERT INTO orders (id, customer_id) VALUES (1, DEFAULT)", SHARD_ROUTE_REFUSE, ANY, "cannot compute" },
	{ "INSERT INTO orders (id, customer_id) VALUES (1, 'x')", SHARD_ROUTE_REFUSE, ANY, "invalid input syntax" },
	{ "INSERT INTO orders (id, customer_id) SELECT id, customer_id FROM order_items", SHARD_ROUTE_REFUSE, ANY,
	  "INSERT ... SELECT into sharded table orders" },
	{ "INSERT INTO orders DEFAULT VALUES", SHARD_ROUTE_REFUSE, ANY, "DEFAULT VALUES" },
	{ "INSERT INTO orders (id, customer_id) VALUES (1, 2) ON CONFLICT (id) DO UPDATE SET customer_id = 3",
	  SHARD_ROUTE_REFUSE, ANY, "ON CONFLICT DO UPDATE of shard key column" },
	{ "INSERT INTO orders (id, customer_id) VALUES (1, (SELECT max(customer_id) FROM orders))", SHARD_ROUTE_REFUSE, ANY,
	  "over sharded table orders" },
	/* Session statements, several statements, the rest. */
	{ "BEGIN", SHARD_ROUTE_SESSION, ANY, NULL },
	{ "SET search_path = app", SHARD_ROUTE_SESSION, ANY, NULL },
	{ "SHOW search_path", SHARD_ROUTE_SESSION, ANY, NULL },
	{ "BEGIN; UPDATE orders SET total = 1 WHERE customer_id = 42; COMMIT", SHARD_ROUTE_ONE, 2, NULL },
	{ "SELECT * FROM countries; SELECT * FROM products", SHARD_ROUTE_REPLICATED_READ, ANY, NULL },
	{ "SELECT * FROM orders WHERE customer_id = 1; SELECT * FROM orders WHERE customer_id = 42", SHARD_ROUTE_REFUSE, ANY,
	  "several statements" },
	{ "SELECT * FROM orders; SELECT 1", SHARD_ROUTE_REFUSE, ANY, "several statements" },
	{ "SELECT 1; SELECT * FROM orders WHERE customer_id = 'abc'", SHARD_ROUTE_REFUSE, ANY, "invalid input syntax" },
	{ "COPY orders FROM STDIN", SHARD_ROUTE_REFUSE, ANY, "needs its column list" },
	{ "COPY orders TO STDOUT", SHARD_ROUTE_REFUSE, ANY, "COPY out of sharded table orders" },
	{ "COPY orders (id) FROM STDIN", SHARD_ROUTE_REFUSE, ANY, "without its shard key" },
	{ "COPY orders (id, customer_id) FROM STDIN", SHARD_ROUTE_MULTI, ANY, NULL },
	{ "COPY orders (id, customer_id) FROM STDIN (FORMAT binary)", SHARD_ROUTE_REFUSE, ANY, "binary" },
	{ "COPY orders (id, customer_id) FROM '/tmp/x'", SHARD_ROUTE_REFUSE, ANY, "from a file" },
	{ "COPY (SELECT * FROM orders) TO STDOUT", SHARD_ROUTE_REFUSE, ANY, "COPY (query) over sharded table orders" },
	{ "PREPARE p AS SELECT 1", SHARD_ROUTE_REFUSE, ANY, "SQL-level PREPARE" },
	{ "DECLARE c CURSOR FOR SELECT 1", SHARD_ROUTE_REFUSE, ANY, "cursors" },
	{ "MERGE INTO countries c USING orders o ON c.code = o.country WHEN MATCHED THEN DELETE", SHARD_ROUTE_REFUSE, ANY,
	  "MERGE with sharded table orders" },
	{ "SELEC 1", SHARD_ROUTE_REFUSE, ANY, "syntax error" },
};

static void test_cases(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct shard_route r;
		CHECK(shard_route(cases[i].sql, NULL, 0, &map, &r) == 0);
		bool ok = r.kind == cases[i].kind;
		if (ok && cases[i].arg != ANY) {
			int64_t got = r.kind == SHARD_ROUTE_ONE ? r.shard : r.kind == SHARD_ROUTE_SEVERAL ? (int64_t)r.mask
				      : r.kind == SHARD_ROUTE_BIND ? r.param : ANY;
			ok = got == cases[i].arg;
		}
		if (ok && cases[i].text)
			ok = strstr(r.message, cases[i].text) != NULL;
		if (ok && r.kind == SHARD_ROUTE_REFUSE)
			ok = strlen(r.sqlstate) == 5;
		if (!ok)
			fprintf(stderr, "route of \"%s\": %s shard %d mask %#llx param %d [%s] %s; want %s %lld %s\n",
				cases[i].sql, shard_route_kind_name(r.kind), r.shard, (unsigned long long)r.mask, r.param,
				r.sqlstate, r.message, shard_route_kind_name(cases[i].kind), (long long)cases[i].arg,
				cases[i].text ? cases[i].text : "");
		CHECK(ok);
		shard_route_deinit(&r);
	}
}

/* Transaction control that the client side may answer itself: one
 * statement of it, nothing else. */
static void test_tx(void)
{
	static const struct { const char *sql; int tx; } tx[] = {
		{ "BEGIN", SHARD_TX_BEGIN },
		{ "begin isolation level serializable read only", SHARD_TX_BEGIN },
		{ "START TRANSACTION", SHARD_TX_BEGIN },
		{ "COMMIT", SHARD_TX_COMMIT },
		{ "END", SHARD_TX_COMMIT },
		{ "ROLLBACK;", SHARD_TX_ROLLBACK },
		{ "ABORT", SHARD_TX_ROLLBACK },
		{ "COMMIT AND CHAIN", SHARD_TX_ENDS },
		{ "ROLLBACK AND CHAIN", SHARD_TX_ENDS },
		{ "SAVEPOINT a", SHARD_TX_NONE },
		{ "ROLLBACK TO SAVEPOINT a", SHARD_TX_NONE },
		{ "RELEASE SAVEPOINT a", SHARD_TX_NONE },
		{ "PREPARE TRANSACTION 'x'", SHARD_TX_ENDS },
		{ "COMMIT PREPARED 'x'", SHARD_TX_NONE },
		{ "BEGIN; COMMIT", SHARD_TX_ENDS },
		{ "BEGIN; SET LOCAL a.b = 1", SHARD_TX_NONE },
		{ "SET a.b = 1; ROLLBACK", SHARD_TX_ENDS },
		{ "SET search_path = app", SHARD_TX_NONE },
	};
	for (size_t i = 0; i < sizeof(tx) / sizeof(tx[0]); i++) {
		struct shard_route r;
		CHECK(shard_route(tx[i].sql, NULL, 0, &map, &r) == 0);
		CHECK(r.kind == SHARD_ROUTE_SESSION);
		if (r.tx != tx[i].tx)
			fprintf(stderr, "tx of \"%s\": %d, want %d\n", tx[i].sql, r.tx, tx[i].tx);
		CHECK(r.tx == tx[i].tx);
		shard_route_deinit(&r);
	}
	/* Reads whose answer is the shards' rows one after the other. */
	static const struct { const char *sql; int kind; bool concat; int64_t limit; } cat[] = {
		{ "SELECT * FROM orders", SHARD_ROUTE_MULTI, true, -1 },
		{ "SELECT id, total FROM orders WHERE total > 5 AND country = 'fr'", SHARD_ROUTE_MULTI, true, -1 },
		{ "SELECT * FROM orders WHERE customer_id IN (1, 42)", SHARD_ROUTE_SEVERAL, true, -1 },
		{ "SELECT o.id FROM orders o JOIN countries c ON c.code = o.country", SHARD_ROUTE_MULTI, true, -1 },
		{ "SELECT * FROM orders LIMIT 3", SHARD_ROUTE_MULTI, true, 3 },
		{ "SELECT * FROM orders FETCH FIRST 2 ROWS ONLY", SHARD_ROUTE_MULTI, true, 2 },
		{ "SELECT * FROM orders LIMIT ALL", SHARD_ROUTE_MULTI, true, -1 },
		{ "SELECT count(*) FROM orders", SHARD_ROUTE_MULTI, false, -1 },
		{ "SELECT lower(country) FROM orders", SHARD_ROUTE_MULTI, false, -1 },
		{ "SELECT * FROM orders ORDER BY id", SHARD_ROUTE_MULTI, true, -1 },
		{ "SELECT * FROM orders LIMIT 1 + 2", SHARD_ROUTE_MULTI, false, -1 },
		{ "SELECT * FROM orders OFFSET 3", SHARD_ROUTE_MULTI, true, -1 },
		{ "SELECT * FROM orders LIMIT 3 OFFSET 3", SHARD_ROUTE_MULTI, true, 3 },
		{ "SELECT * FROM orders ORDER BY total * 2", SHARD_ROUTE_MULTI, false, -1 },
		{ "SELECT * FROM orders ORDER BY id USING <", SHARD_ROUTE_MULTI, false, -1 },
		{ "SELECT * FROM orders ORDER BY country COLLATE \"de_DE\"", SHARD_ROUTE_MULTI, false, -1 },
		{ "SELECT id FROM orders ORDER BY country COLLATE \"C\"", SHARD_ROUTE_MULTI, false, -1 },
		{ "SELECT id, country FROM orders ORDER BY country COLLATE \"C\"", SHARD_ROUTE_MULTI, true, -1 },
		{ "SELECT * FROM orders ORDER BY o.id", SHARD_ROUTE_MULTI, false, -1 },
		{ "SELECT * FROM orders LIMIT $1", SHARD_ROUTE_MULTI, false, -1 },
		{ "SELECT DISTINCT country FROM orders", SHARD_ROUTE_MULTI, false, -1 },
		{ "SELECT country FROM orders GROUP BY country", SHARD_ROUTE_MULTI, false, -1 },
		{ "SELECT * FROM orders FOR UPDATE", SHARD_ROUTE_MULTI, false, -1 },
		{ "SELECT * FROM orders WHERE nextval('s') > 0", SHARD_ROUTE_MULTI, false, -1 },
		{ "SELECT * FROM orders WHERE customer_id = 42", SHARD_ROUTE_ONE, false, 0 },
	};
	for (size_t i = 0; i < sizeof(cat) / sizeof(cat[0]); i++) {
		struct shard_route r;
		CHECK(shard_route(cat[i].sql, NULL, 0, &map, &r) == 0);
		if (r.kind != cat[i].kind || r.concat != cat[i].concat)
			fprintf(stderr, "\"%s\": %s concat %d, want %s %d\n", cat[i].sql, shard_route_kind_name(r.kind),
				r.concat, shard_route_kind_name(cat[i].kind), cat[i].concat);
		CHECK(r.kind == cat[i].kind && r.concat == cat[i].concat);
		CHECK(!r.concat || r.limit == cat[i].limit);
		CHECK(shard_plan_of(&r).concat == r.concat);
		shard_route_deinit(&r);
	}
	/* ORDER BY keys and OFFSET: the keys as output columns, and the text
	 * each shard runs (LIMIT n+k OFFSET 0, in either order). */
	static const struct { const char *sql; const char *shard_sql; int n_sort; int16_t pos0; const char *name0;
			      bool desc0, nulls_first0; int64_t offset; } ord[] = {
		{ "SELECT id, total FROM orders ORDER BY total DESC, 1", NULL, 2, 0, "total", true, true, 0 },
		{ "SELECT o.id FROM orders o ORDER BY o.id NULLS FIRST LIMIT 5 OFFSET 10",
		  "SELECT o.id FROM orders o ORDER BY o.id NULLS FIRST LIMIT 15 OFFSET 0", 1, 1, "", false, true, 10 },
		{ "SELECT id FROM orders OFFSET 4 LIMIT 2", "SELECT id FROM orders OFFSET 0 LIMIT 6", 0, 0, "", false, false, 4 },
		{ "SELECT id FROM orders ORDER BY 1 DESC NULLS LAST OFFSET 7", "SELECT id FROM orders ORDER BY 1 DESC NULLS LAST OFFSET 0",
		  1, 1, "", true, false, 7 },
		{ "SELECT id FROM orders OFFSET 0", NULL, 0, 0, "", false, false, 0 },
	};
	for (size_t i = 0; i < sizeof(ord) / sizeof(ord[0]); i++) {
		struct shard_route r;
		CHECK(shard_route(ord[i].sql, NULL, 0, &map, &r) == 0);
		CHECK(r.concat && r.n_sort == ord[i].n_sort && r.offset == ord[i].offset);
		CHECK(!ord[i].shard_sql == !r.shard_sql);
		if (ord[i].shard_sql && r.shard_sql && strcmp(ord[i].shard_sql, r.shard_sql) != 0)
			fprintf(stderr, "\"%s\" runs as \"%s\"\n", ord[i].sql, r.shard_sql);
		CHECK(!ord[i].shard_sql || (r.shard_sql && strcmp(ord[i].shard_sql, r.shard_sql) == 0));
		if (r.n_sort) {
			CHECK(r.sort[0].position == ord[i].pos0 && strcmp(r.sort[0].name, ord[i].name0) == 0);
			CHECK(r.sort[0].desc == ord[i].desc0 && r.sort[0].nulls_first == ord[i].nulls_first0);
		}
		shard_route_deinit(&r);
	}
	/* GROUP BY and DISTINCT combined per key: keys are output columns,
	 * the rest count/sum/min/max; each shard runs LIMIT ALL OFFSET 0. */
	static const struct { const char *sql; int n_aggs; const char *shard_sql; } grp[] = {
		{ "SELECT country, count(*), sum(total) FROM orders GROUP BY country", 3, NULL },
		{ "SELECT o.country, max(o.total) FROM orders o GROUP BY 1 ORDER BY 2 DESC LIMIT 3 OFFSET 1", 2,
		  "SELECT o.country, max(o.total) FROM orders o GROUP BY 1 ORDER BY 2 DESC LIMIT ALL OFFSET 0" },
		{ "SELECT DISTINCT country, total FROM orders", 2, NULL },
		{ "SELECT country, avg(total) FROM orders GROUP BY country", 3,
		  "SELECT country, pg_catalog.sum(total), pg_catalog.count(total) FROM orders GROUP BY country" },
		{ "SELECT avg((total + 1) * 2) AS a, count(*) FROM orders", 3,
		  "SELECT pg_catalog.sum((total + 1) * 2), pg_catalog.count((total + 1) * 2) AS a, count(*) FROM orders" },
		{ "SELECT country, avg(DISTINCT total) FROM orders GROUP BY country", 0, NULL },
		{ "SELECT country, stddev(total) FROM orders GROUP BY country", 0, NULL },
		{ "SELECT count(*) FROM orders GROUP BY country", 0, NULL },
		{ "SELECT country, count(*) FROM orders GROUP BY country HAVING count(*) > 1", 0, NULL },
		{ "SELECT lower(country), count(*) FROM orders GROUP BY 1", 0, NULL },
		{ "SELECT DISTINCT ON (country) country, id FROM orders", 0, NULL },
		{ "SELECT DISTINCT * FROM orders", 0, NULL },
		{ "SELECT DISTINCT lower(country) FROM orders", 0, NULL },
		{ "SELECT country, count(*) FROM orders GROUP BY country FETCH FIRST 2 ROWS ONLY", 0, NULL },
	};
	for (size_t i = 0; i < sizeof(grp) / sizeof(grp[0]); i++) {
		struct shard_route r;
		CHECK(shard_route(grp[i].sql, NULL, 0, &map, &r) == 0);
		if (r.n_aggs != grp[i].n_aggs)
			fprintf(stderr, "\"%s\": %d combined columns, want %d\n", grp[i].sql, r.n_aggs, grp[i].n_aggs);
		CHECK(r.kind == SHARD_ROUTE_MULTI && r.n_aggs == grp[i].n_aggs && !r.concat);
		CHECK(!grp[i].shard_sql || (r.shard_sql && strcmp(r.shard_sql, grp[i].shard_sql) == 0));
		if (grp[i].shard_sql && (!r.shard_sql || strcmp(r.shard_sql, grp[i].shard_sql) != 0))
			fprintf(stderr, "\"%s\" runs as \"%s\"\n", grp[i].sql, r.shard_sql ? r.shard_sql : "(itself)");
		if (r.n_aggs && strncmp(grp[i].sql, "SELECT avg", 10) != 0)
			CHECK(r.aggs[0] == SHARD_AGG_KEY);
		shard_route_deinit(&r);
	}
	/* The plan keeps what the client side needs. */
	struct shard_route r;
	CHECK(shard_route("SELECT * FROM events WHERE k = $1", NULL, 0, &map, &r) == 0);
	struct shard_plan pl = shard_plan_of(&r);
	CHECK(pl.kind == SHARD_ROUTE_BIND + 1 && pl.param == 1 && pl.param_type == r.param_type);
	shard_route_deinit(&r);
	CHECK(shard_route("UPDATE orders SET total = 1 WHERE customer_id = 42", NULL, 0, &map, &r) == 0);
	pl = shard_plan_of(&r);
	CHECK(pl.kind == SHARD_ROUTE_ONE + 1 && pl.shard == 2 && pl.write);
	shard_route_deinit(&r);
}

static void test_details(void)
{
	struct shard_route r;
	/* Per-row shards of a multi-row INSERT, parameters decided at Bind. */
	CHECK(shard_route("INSERT INTO orders (id, customer_id) VALUES ($1, $2), (3, 42), (4, 1)", NULL, 0, &map, &r) == 0);
	CHECK(r.kind == SHARD_ROUTE_SEVERAL && r.write && r.n_items == 3 && r.mask == 0x5);
	if (r.n_items == 3) {
		CHECK(r.items[0].shard == -1 && r.items[0].param == 2 && r.items[0].param_type == PGHASH_INT8);
		CHECK(r.items[1].shard == 2 && r.items[2].shard == 0);
	}
	shard_route_deinit(&r);
	CHECK(r.items == NULL && r.n_items == 0);
	/* A refusal after some rows keeps none of them. */
	CHECK(shard_route("INSERT INTO orders (id, customer_id) VALUES (1, 2), (2, $1), (3, x)", NULL, 0, &map, &r) == 0);
	CHECK(r.kind == SHARD_ROUTE_REFUSE && r.items == NULL && r.n_items == 0);
	shard_route_deinit(&r);
	/* The key's type comes from the configuration, else from the Parse. */
	CHECK(shard_route("SELECT * FROM orders WHERE customer_id = $1", NULL, 0, &map, &r) == 0);
	CHECK(r.kind == SHARD_ROUTE_BIND && r.param_type == PGHASH_INT8 && !r.write);
	shard_route_deinit(&r);
	static const uint32_t int8_oid[] = { 20 }, text_oids[] = { 0, 25 };
	CHECK(shard_route("SELECT * FROM events WHERE k = $1", int8_oid, 1, &map, &r) == 0);
	CHECK(r.kind == SHARD_ROUTE_BIND && r.param == 1 && r.param_type == PGHASH_INT8);
	shard_route_deinit(&r);
	CHECK(shard_route("SELECT * FROM events WHERE k = $2", text_oids, 2, &map, &r) == 0);
	CHECK(r.kind == SHARD_ROUTE_BIND && r.param == 2 && r.param_type == PGHASH_TEXT);
	shard_route_deinit(&r);
	CHECK(shard_route("SELECT * FROM events WHERE k = $1", NULL, 0, &map, &r) == 0);
	CHECK(r.kind == SHARD_ROUTE_BIND && r.param_type == PGHASH_UNKNOWN);
	shard_route_deinit(&r);
	CHECK(shard_route("SELECT * FROM events WHERE k = $1::uuid", NULL, 0, &map, &r) == 0);
	CHECK(r.kind == SHARD_ROUTE_BIND && r.param_type == PGHASH_UUID);
	shard_route_deinit(&r);
	/* 42::text is the text '42'. */
	CHECK(shard_route("SELECT * FROM accounts WHERE email = 42::text", NULL, 0, &map, &r) == 0);
	CHECK(r.kind == SHARD_ROUTE_ONE && r.shard == pghash_shard_text(PGHASH_TEXT, "42", 2, 4));
	shard_route_deinit(&r);
	/* Writes say so; reads do not. */
	CHECK(shard_route("UPDATE orders SET total = 1 WHERE customer_id = 42", NULL, 0, &map, &r) == 0);
	CHECK(r.kind == SHARD_ROUTE_ONE && r.write);
	shard_route_deinit(&r);
	CHECK(shard_route("SELECT * FROM orders WHERE customer_id = 42 FOR SHARE", NULL, 0, &map, &r) == 0);
	CHECK(r.kind == SHARD_ROUTE_ONE && r.write);
	shard_route_deinit(&r);
	CHECK(shard_route("SELECT * FROM orders WHERE customer_id = 42", NULL, 0, &map, &r) == 0);
	CHECK(r.kind == SHARD_ROUTE_ONE && !r.write);
	shard_route_deinit(&r);
	/* Refusals carry SQLSTATE 0A000 (feature not supported). */
	CHECK(shard_route("SELECT row_number() OVER () FROM orders", NULL, 0, &map, &r) == 0);
	CHECK_STR(r.sqlstate, "0A000");
	shard_route_deinit(&r);
	CHECK(shard_route("SELECT * FROM orders WHERE customer_id = 'x'", NULL, 0, &map, &r) == 0);
	CHECK_STR(r.sqlstate, "22P02");
	shard_route_deinit(&r);
	/* 64 shards: the mask's top bit. */
	static const struct shard_map map64 = { tables, 1, 64 };
	CHECK(shard_route("SELECT * FROM orders WHERE customer_id = -9223372036854775808", NULL, 0, &map64, &r) == 0);
	CHECK(r.kind == SHARD_ROUTE_ONE && r.shard == 63);
	shard_route_deinit(&r);
	CHECK(shard_route("SELECT * FROM orders WHERE customer_id IN (-9223372036854775808, 5000000000)", NULL, 0, &map64,
			  &r) == 0);
	CHECK(r.kind == SHARD_ROUTE_SEVERAL && r.mask == ((UINT64_C(1) << 63) | (UINT64_C(1) << 16)));
	shard_route_deinit(&r);
	/* A deep expression is refused, not walked without end. */
	size_t depth = 3000;
	char *deep = malloc(depth * 2 + 100);
	strcpy(deep, "SELECT * FROM orders WHERE ");
	for (size_t i = 0; i < depth; i++)
		strcat(deep, "(");
	strcat(deep, "customer_id = 1");
	for (size_t i = 0; i < depth; i++)
		strcat(deep, ")");
	CHECK(shard_route(deep, NULL, 0, &map, &r) == 0);
	CHECK(r.kind == SHARD_ROUTE_REFUSE || r.kind == SHARD_ROUTE_ONE);
	shard_route_deinit(&r);
	free(deep);
	/* Many tables. */
	char many[4096] = "SELECT * FROM orders";
	for (int i = 0; i < 40; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), ", countries c%d", i);
	CHECK(shard_route(many, NULL, 0, &map, &r) == 0);
	CHECK(r.kind == SHARD_ROUTE_REFUSE && strstr(r.message, "more than 32 tables"));
	shard_route_deinit(&r);
}

static int answer_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		perror(path);
		return 2;
	}
	static char line[70000], type[32], hex[66000], sql[33000];
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%31s %65999s", type, hex) != 2 || strlen(hex) % 2) {
			fprintf(stderr, "bad line: %s", line);
			return 2;
		}
		size_t n = strlen(hex) / 2;
		for (size_t i = 0; i < n; i++) {
			unsigned v;
			sscanf(hex + 2 * i, "%2x", &v);
			sql[i] = (char)v;
		}
		sql[n] = '\0';
		const struct shard_table p = { NULL, "p", "k", pghash_type_from_name(type) };
		const struct shard_map one = { &p, 1, 4 };
		struct shard_route r;
		shard_route(sql, NULL, 0, &one, &r);
		printf("%s %d %s\n", r.kind == SHARD_ROUTE_ONE ? "one" : r.kind == SHARD_ROUTE_REFUSE ? "refuse" : "other",
		       r.shard, r.kind == SHARD_ROUTE_REFUSE ? r.sqlstate : "-");
		shard_route_deinit(&r);
	}
	fclose(f);
	return 0;
}

int main(void)
{
	const char *queries = getenv("SHARDROUTE_QUERIES");
	if (queries)
		return answer_file(queries);
	test_cases();
	test_tx();
	test_details();
	printf("%s: %d passed, %d failed\n", __FILE__, unit_passed, unit_failed);
	return unit_failed ? 1 : 0;
}
