/*
 * test_sqlread.c - unit tests for sqlread.c: which texts only read (a
 * standby may run them), table-driven, each rule both ways; the prescreen;
 * texts without a NUL, garbage, a 1 MB text; and, printed only, what a
 * classification costs.
 */
#include "sqlread.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { NO = SQL_READ_NO, YES = SQL_READ_YES, TXRO = SQL_READ_TX_READ_ONLY };

struct read_case {
	const char *sql;
	int cls;
};

static void check_cases(const struct read_case *c)
{
	for (; c->sql; c++) {
		int got = sql_read_class(c->sql, strlen(c->sql));
		CHECK(got == c->cls);
		if (got != c->cls)
			fprintf(stderr, "  %s: got %s, want %s\n", c->sql, sql_read_class_name(got),
				sql_read_class_name(c->cls));
	}
}

static void test_reads(void)
{
	static const struct read_case cases[] = {
		{ "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;", YES },
		{ "select 1", YES },
		{ "  \n\tSELECT 1", YES },
		{ "-- a comment\nSELECT 1", YES },
		{ "/* a /* nested */ comment */ select 1", YES },
		{ "(SELECT 1) UNION (SELECT 2)", YES },
		{ "((select 1))", YES },
		{ "SELECT 1 UNION ALL SELECT 2 INTERSECT SELECT 3 EXCEPT SELECT 4", YES },
		{ "VALUES (1, 'a'), (2, 'b')", YES },
		{ "TABLE pgbench_branches", YES },
		{ "WITH t AS (SELECT 1 AS a) SELECT a FROM t", YES },
		{ "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT sum(n) FROM r", YES },
		{ "SELECT * FROM a JOIN b USING (id) WHERE a.x IN (SELECT x FROM c WHERE c.y > $1)", YES },
		{ "SELECT count(*), max(a), min(a), avg(a), sum(a), array_agg(a), string_agg(b, ',') FROM t", YES },
		{ "SELECT bool_and(a), bool_or(a), count(DISTINCT a) FILTER (WHERE a > 1) FROM t", YES },
		{ "SELECT now(), clock_timestamp(), statement_timestamp(), date_trunc('day', now())", YES },
		{ "SELECT extract(year FROM now()), date_part('month', now()), age(now()), to_char(now(), 'YYYY')", YES },
		{ "SELECT to_date('2020-01-01', 'YYYY-MM-DD'), to_timestamp(0), make_date(2020, 1, 1), make_interval(days => 1)", YES },
		{ "SELECT lower(a), upper(a), length(a), substr(a, 1, 2), substring(a FROM 1 FOR 2), position('x' IN a) FROM t", YES },
		{ "SELECT trim(a), btrim(a), ltrim(a), rtrim(a), trim(leading 'x' from a), replace(a, 'x', 'y') FROM t", YES },
		{ "SELECT split_part(a, ',', 1), concat(a, b), concat_ws(',', a, b), format('%s', a), left(a, 1), right(a, 1)", YES },
		{ "SELECT repeat('x', 3), reverse('x'), md5('x'), encode('x', 'hex'), decode('78', 'hex')", YES },
		{ "SELECT regexp_replace(a, 'x', 'y'), regexp_match(a, 'x'), regexp_split_to_array(a, ',') FROM t", YES },
		{ "SELECT abs(-1), round(1.5), ceil(1.2), floor(1.2), trunc(1.2), sqrt(4), power(2, 3), mod(5, 2), random()", YES },
		{ "SELECT greatest(1, 2), least(1, 2), coalesce(NULL, 1), nullif(1, 1), CASE WHEN true THEN 1 END", YES },
		{ "SELECT jsonb_build_object('a', 1), json_agg(t), jsonb_agg(t), to_json(t), to_jsonb(t) FROM t", YES },
		{ "SELECT * FROM jsonb_array_elements('[1,2]'::jsonb)", YES },
		{ "SELECT * FROM generate_series(1, 10) g, unnest(ARRAY[1, 2]) u", YES },
		{ "SELECT array_length(ARRAY[1], 1), cardinality(ARRAY[1])", YES },
		{ "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn(), current_setting('work_mem')", YES },
		{ "SELECT version(), current_database(), current_schema(), current_user, session_user, pg_typeof(1)", YES },
		{ "SELECT has_table_privilege('t', 'select'), pg_relation_size('t'), pg_total_relation_size('t')", YES },
		{ "SELECT to_regclass('t'), format_type(23, -1), pg_backend_pid()", YES },
		{ "SELECT row_number() OVER w, rank() OVER w, dense_rank() OVER w, lag(a) OVER w, lead(a) OVER w, "
		  "first_value(a) OVER w, last_value(a) OVER w FROM t WINDOW w AS (ORDER BY a)", YES },
		{ "SELECT pg_catalog.now(), pg_catalog.lower('X')", YES },
		{ "SELECT CURRENT_DATE, CURRENT_TIMESTAMP, LOCALTIME, 'a' SIMILAR TO 'b', x AT TIME ZONE 'utc' FROM t", YES },
		{ "SELECT '{\"a\":1}'::jsonb -> 'a', 1 + 2 * 3, a || b, a OPERATOR(pg_catalog.+) 1 FROM t", YES },
		{ "SELECT EXISTS (SELECT 1 FROM t WHERE t.a = s.a) FROM s", YES },
		{ "SELECT * FROM t FOR UPDATE", NO },
		{ "SELECT * FROM t FOR NO KEY UPDATE", NO },
		{ "SELECT * FROM t FOR SHARE", NO },
		{ "SELECT * FROM t FOR KEY SHARE SKIP LOCKED", NO },
		{ "SELECT * FROM (SELECT * FROM t FOR UPDATE) s", NO },
		{ "SELECT * FROM s WHERE a IN (SELECT a FROM t FOR SHARE)", NO },
		{ "SELECT EXISTS (SELECT 1 FROM t FOR UPDATE NOWAIT)", NO },
		{ "WITH c AS (SELECT * FROM t FOR UPDATE) SELECT * FROM c", NO },
		{ "SELECT 1 UNION (SELECT 2 FROM t FOR UPDATE)", NO },
		{ "SELECT * INTO newtable FROM t", NO },
		{ "SELECT * INTO TEMP newtable FROM t", NO },
		{ "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", NO },
		{ "WITH i AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM i", NO },
		{ "WITH u AS (UPDATE t SET a = 1 RETURNING *) SELECT count(*) FROM u", NO },
		{ "WITH a AS (SELECT 1), b AS (WITH c AS (DELETE FROM t RETURNING 1) SELECT * FROM c) SELECT * FROM b", NO },
		{ "WITH i AS (INSERT INTO t VALUES (1)) INSERT INTO u SELECT 1", NO },
		{ "WITH t AS (SELECT 1) DELETE FROM u", NO },
		{ NULL, 0 },
	};
	check_cases(cases);
}

static void test_functions(void)
{
	static const struct read_case cases[] = {
		{ "SELECT myfunc()", NO },
		{ "SELECT myfunc(a) FROM t", NO },
		{ "SELECT * FROM myfunc()", NO },
		{ "SELECT a FROM t WHERE a = myfunc()", NO },
		{ "SELECT count(*) FROM t GROUP BY myfunc(a)", NO },
		{ "SELECT a FROM t ORDER BY myfunc(a)", NO },
		{ "SELECT sum(a) OVER (PARTITION BY myfunc(a)) FROM t", NO },
		{ "SELECT * FROM t WHERE a IN (SELECT myfunc(b) FROM u)", NO },
		{ "WITH c AS (SELECT myfunc()) SELECT * FROM c", NO },
		{ "SELECT nextval('s')", NO },
		{ "SELECT setval('s', 1)", NO },
		{ "SELECT currval('s')", NO },
		{ "SELECT lastval()", NO },
		{ "SELECT pg_catalog.nextval('s')", NO },
		{ "SELECT pg_advisory_lock(1)", NO },
		{ "SELECT pg_try_advisory_xact_lock(1)", NO },
		{ "SELECT set_config('a.b', 'c', false)", NO },
		{ "SELECT pg_notify('ch', 'x')", NO },
		{ "SELECT txid_current()", NO },
		{ "SELECT pg_current_xact_id()", NO },
		{ "SELECT pg_current_wal_lsn()", NO },
		{ "SELECT pg_create_restore_point('x')", NO },
		{ "SELECT pg_drop_replication_slot('x')", NO },
		{ "SELECT lo_import('/tmp/x')", NO },
		{ "SELECT * FROM dblink('dbname=x', 'select 1') AS t(a int)", NO },
		{ "SELECT setseed(0.5)", NO },
		{ "SELECT public.lower('x')", NO },
		{ "SELECT myschema.now()", NO },
		{ "SELECT pg_temp.f()", NO },
		{ "SELECT mydb.pg_catalog.now()", NO },
		{ "SELECT \"NOW\"()", NO },
		{ "SELECT \"lower\"('X')", YES },
		{ "SELECT LOWER('X'), Now()", YES },
		{ "SELECT 1 OPERATOR(myschema.+) 2", NO },
		{ "VALUES (1), (nextval('s'))", NO },
		{ "SELECT * FROM t LIMIT myfunc()", NO },
		{ "SELECT * FROM ROWS FROM (generate_series(1, 2), myfunc())", NO },
		{ "SELECT * FROM pg_temp.t", NO },
		{ "SELECT * FROM pg_temp_3.t", NO },
		{ "SELECT * FROM public.t JOIN pg_catalog.pg_class c ON true", YES },
		{ NULL, 0 },
	};
	check_cases(cases);

	size_t n;
	const char *const *names = sql_read_builtins(&n);
	CHECK(n > 100);
	int unsorted = 0;
	for (size_t i = 1; i < n; i++)
		if (strcmp(names[i - 1], names[i]) >= 0) {
			unsorted++;
			fprintf(stderr, "  builtins out of order: %s, %s\n", names[i - 1], names[i]);
		}
	CHECK(unsorted == 0);
	for (size_t i = 0; i < n; i++)
		CHECK(sql_read_builtin(names[i]));
	CHECK(!sql_read_builtin("nextval"));
	CHECK(!sql_read_builtin(""));
	CHECK(!sql_read_builtin("zzz"));
}

static void test_other_statements(void)
{
	static const struct read_case cases[] = {
		{ "SHOW work_mem", YES },
		{ "show all", YES },
		{ "SHOW search_path; SELECT 1", YES },
		{ "SHOW transaction_read_only", NO },
		{ "SHOW in_hot_standby", NO },
		{ "EXPLAIN SELECT * FROM t", YES },
		{ "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM t WHERE a = 1", YES },
		{ "EXPLAIN ANALYZE VERBOSE VALUES (1)", YES },
		{ "EXPLAIN SELECT * FROM t FOR UPDATE", NO },
		{ "EXPLAIN SELECT nextval('s')", NO },
		{ "EXPLAIN INSERT INTO t VALUES (1)", NO },
		{ "EXPLAIN ANALYZE DELETE FROM t", NO },
		{ "EXPLAIN EXECUTE p", NO },
		{ "EXPLAIN CREATE TABLE x AS SELECT 1", NO },
		{ "INSERT INTO t VALUES (1)", NO },
		{ "UPDATE t SET a = 1", NO },
		{ "DELETE FROM t", NO },
		{ "MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE", NO },
		{ "CREATE TABLE t (a int)", NO },
		{ "CREATE TABLE t AS SELECT 1", NO },
		{ "DROP TABLE t", NO },
		{ "COPY t TO STDOUT", NO },
		{ "CALL p()", NO },
		{ "DO $$ BEGIN END $$", NO },
		{ "LISTEN ch", NO },
		{ "NOTIFY ch", NO },
		{ "SET work_mem = '1MB'", NO },
		{ "PREPARE p AS SELECT 1", NO },
		{ "EXECUTE p", NO },
		{ "DECLARE c CURSOR FOR SELECT 1", NO },
		{ "LOCK TABLE t", NO },
		{ "VACUUM t", NO },
		{ "ANALYZE t", NO },
		{ "BEGIN", NO },
		{ "COMMIT", NO },
		{ "ROLLBACK", NO },
		{ "SELECT 1; COMMIT", NO },
		{ "SELECT 1; INSERT INTO t VALUES (1)", NO },
		{ "SELECT 1; SELECT 2; SELECT 3", YES },
		{ "SELECT 1;;; SELECT 2;", YES },
		{ "INSERT INTO t VALUES (1); SELECT 1", NO },
		{ "SELECT 1; SET x.y = 1", NO },
		{ "SELECT 1; SELECT nextval('s')", NO },
		{ "SELECT 1; WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d", NO },
		{ NULL, 0 },
	};
	check_cases(cases);
}

static void test_read_only_transactions(void)
{
	static const struct read_case cases[] = {
		{ "BEGIN READ ONLY", TXRO },
		{ "begin transaction read only", TXRO },
		{ "BEGIN WORK READ ONLY", TXRO },
		{ "START TRANSACTION READ ONLY", TXRO },
		{ "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE", TXRO },
		{ "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", TXRO },
		{ "START TRANSACTION READ ONLY, ISOLATION LEVEL READ COMMITTED", TXRO },
		{ "/* app */ BEGIN READ ONLY; SELECT 1; SELECT 2 FROM t", TXRO },
		{ "BEGIN READ ONLY; SELECT 1; COMMIT", TXRO },
		{ "BEGIN READ ONLY; SELECT 1; END", TXRO },
		{ "BEGIN READ ONLY; SELECT 1; ROLLBACK", TXRO },
		{ "BEGIN READ ONLY; SHOW work_mem; EXPLAIN SELECT 1; ABORT", TXRO },
		{ "BEGIN READ WRITE READ ONLY", TXRO },
		{ "BEGIN READ ONLY READ WRITE", NO },
		{ "START TRANSACTION READ WRITE", NO },
		{ "BEGIN ISOLATION LEVEL SERIALIZABLE", NO },
		{ "BEGIN; SELECT 1", NO },
		{ "START TRANSACTION", NO },
		{ "BEGIN READ ONLY; INSERT INTO t VALUES (1)", NO },
		{ "BEGIN READ ONLY; SELECT nextval('s')", NO },
		{ "BEGIN READ ONLY; SELECT * FROM t FOR UPDATE", NO },
		{ "BEGIN READ ONLY; SET LOCAL work_mem = '1MB'; SELECT 1", NO },
		{ "BEGIN READ ONLY; SAVEPOINT a", NO },
		{ "BEGIN READ ONLY; BEGIN READ ONLY", NO },
		{ "SELECT 1; BEGIN READ ONLY", NO },
		{ "SET TRANSACTION READ ONLY", NO },
		{ "COMMIT; BEGIN READ ONLY", NO },
		{ NULL, 0 },
	};
	check_cases(cases);
}

static void test_empty_and_garbage(void)
{
	static const struct read_case cases[] = {
		{ "", NO },
		{ "   ", NO },
		{ ";", NO },
		{ "-- only a comment", NO },
		{ "/* only */ -- comments\n", NO },
		{ "/* unterminated select 1", NO },
		{ "(", NO },
		{ "select", YES }, /* PostgreSQL runs SELECT with no columns */
		{ "SELECT FROM WHERE (", NO },
		{ "SELECT 'unterminated", NO },
		{ "SELECT 1; garbage here", NO },
		{ "SELECT1", NO },
		{ "selectx 1", NO },
		{ "select_1", NO },
		{ "\x01\x02\xff\xfe", NO },
		{ "SELECT 1 FROM t WHERE a = 'é'", YES },
		{ NULL, 0 },
	};
	check_cases(cases);

	/* Not NUL-terminated: only len bytes count. */
	const char buf[] = "SELECT 1; DELETE FROM t";
	CHECK(sql_read_class(buf, 8) == YES);
	CHECK(sql_read_class(buf, 9) == YES);
	CHECK(sql_read_class(buf, strlen(buf)) == NO);
	char *heap = malloc(6);
	memcpy(heap, "SELECT", 6); /* no NUL anywhere: ASan sees any read past */
	CHECK(sql_read_class(heap, 6) == YES);
	memcpy(heap, "VALUES", 6);
	CHECK(sql_read_class(heap, 6) == NO);
	free(heap);
	heap = malloc(8);
	memcpy(heap, "TABLE t;", 8);
	CHECK(sql_read_class(heap, 8) == YES);
	free(heap);
	/* The Query message's own NUL may be counted; one inside may not. */
	CHECK(sql_read_class("SELECT 1", 9) == YES);
	CHECK(sql_read_class("SELECT 1\0; DELETE FROM t", 24) == NO);
	CHECK(sql_read_class(NULL, 0) == NO);

	/* The prescreen alone. */
	CHECK(sql_read_worth_parsing("  ( /* x */ (select", 19));
	CHECK(sql_read_worth_parsing("Explain", 7));
	CHECK(!sql_read_worth_parsing("INSERT INTO t SELECT 1", 22));
	CHECK(!sql_read_worth_parsing("update t set a = (select 1)", 27));
	CHECK(!sql_read_worth_parsing("-- select\n", 10));
}

/* Deep and big texts: an answer, never a crash. */
static void test_big(void)
{
	size_t n = 3000;
	char *sql = malloc(4 * n + 64);
	strcpy(sql, "SELECT ");
	for (size_t i = 0; i < n; i++)
		strcat(sql, "1+(");
	strcat(sql, "1");
	for (size_t i = 0; i < n; i++)
		strcat(sql, ")");
	CHECK(sql_read_class(sql, strlen(sql)) == NO); /* too deep to read through */
	free(sql);
	/* Parentheses alone make no nodes. */
	sql = malloc(2 * n + 64);
	strcpy(sql, "SELECT ");
	for (size_t i = 0; i < n; i++)
		strcat(sql, "(");
	strcat(sql, "1");
	for (size_t i = 0; i < n; i++)
		strcat(sql, ")");
	CHECK(sql_read_class(sql, strlen(sql)) == YES);
	free(sql);

	/* About 1 MB: one IN list, then the same with a DELETE at its end. */
	size_t cap = (1u << 20) + 64;
	sql = malloc(cap);
	size_t len = (size_t)sprintf(sql, "SELECT a FROM t WHERE a IN (0");
	for (unsigned i = 1; len < (1u << 20) - 32; i++)
		len += (size_t)sprintf(sql + len, ",%u", i);
	len += (size_t)sprintf(sql + len, ")");
	CHECK(sql_read_class(sql, len) == YES);
	strcpy(sql + len, "; DELETE FROM t");
	CHECK(sql_read_class(sql, strlen(sql)) == NO);
	/* 1 MB of comment before a read. */
	memset(sql, ' ', cap - 1);
	memcpy(sql, "/*", 2);
	memcpy(sql + (1u << 20), "*/ SELECT 1", 11);
	CHECK(sql_read_class(sql, (1u << 20) + 11) == YES);
	free(sql);
}

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* The quick path (no parse) must agree with the parser: texts on both
 * sides of each of its rules. */
static void test_quick_path(void)
{
	static const struct read_case cases[] = {
		{ "SELECT abalance FROM pgbench_accounts WHERE aid = 48213", YES },
		{ "SELECT a, b::text, 'x''y' AS \"q\"\"r\" FROM t WHERE c >= 1.5e3 AND d <> 'for'", YES },
		{ "SELECT 1 ; ", YES },
		{ "SELECT 1; SELECT 2", YES },            /* the parser decides: both read */
		{ "SELECT 1; DELETE FROM t", NO },
		{ "SELECT * FROM t FOR UPDATE", NO },
		{ "SELECT * FROM t for share", NO },
		{ "SELECT * INTO t2 FROM t", NO },
		{ "SELECT * FROM pg_temp.t", NO },
		{ "SELECT * FROM \"pg_temp\".t", NO },
		{ "SELECT nextval('s')", NO },            /* a call: parsed */
		{ "SELECT E'\\'' FROM t", YES },          /* an escape: parsed */
		{ "SELECT $$for$$", YES },
		{ "SELECT 1 -- for update\n", YES },
		{ "SELECT \"for\" FROM t", YES },
		{ "SELECT 'into' FROM t", YES },
		{ "SELECT 1 /* FOR UPDATE */", YES },
		{ NULL, 0 },
	};
	check_cases(cases);
}

/* Printed, never asserted. */
static void bench(void)
{
	static const char sel[] = "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;";
	static const char ins[] = "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, 48213, 100, CURRENT_TIMESTAMP);";
	int rounds = 20000, yes = 0;
	double t0 = now_us();
	for (int i = 0; i < rounds; i++)
		yes += sql_read_class(sel, sizeof(sel) - 1) == YES;
	double t1 = now_us();
	int irounds = 1000000, no = 0;
	for (int i = 0; i < irounds; i++)
		no += sql_read_class(ins, sizeof(ins) - 1) == NO;
	double t2 = now_us();
	CHECK(yes == rounds && no == irounds);
	printf("sqlread: pgbench select %.2f us, insert (prescreened) %.4f us per classification\n",
	       (t1 - t0) / rounds, (t2 - t1) / irounds);
}

UNIT_MAIN({
	test_reads();
	test_functions();
	test_other_statements();
	test_read_only_transactions();
	test_empty_and_garbage();
	test_big();
	test_quick_path();
	bench();
})
