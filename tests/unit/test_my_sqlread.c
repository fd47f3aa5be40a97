/*
 * test_my_sqlread.c - what counts as a read for MySQL routing
 * (my_sqlread.h), and MariaDB GTID positions (my_monitor.h).
 */
#include <stdint.h>
#include <string.h>

#include "my_monitor.h"
#include "my_sqlread.h"
#include "unit.h"

static int cls(const char *s)
{
	return my_sql_read_class(s, strlen(s));
}

static void reads(void)
{
	static const char *const yes[] = {
		"SELECT 1",
		"select 1;",
		"  SELECT 1 ;  -- done",
		"SELECT @@server_id",
		"SELECT @@global.read_only, @@session.time_zone",
		"SELECT a, COUNT(*) FROM t WHERE b IN (1, 2) GROUP BY a HAVING COUNT(*) > 1 ORDER BY a LIMIT 10",
		"SELECT NOW(), CONCAT('a', \"b\"), LOWER(x) FROM `my table`",
		"/* hint */ SELECT 1 # trailing",
		"SELECT 'GET_LOCK(''x'', 1)' AS s",
		"SELECT \"it\\'s FOR UPDATE\"",
		"SELECT `weird``name(` FROM t",
		"(SELECT 1) UNION (SELECT 2)",
		"SELECT * FROM a JOIN b USING (id) WHERE EXISTS (SELECT 1 FROM c WHERE c.x = a.x)",
		"WITH c AS (SELECT 1 AS x) SELECT x FROM c",
		"SELECT CAST(x AS DECIMAL(10,2)), DATE_FORMAT(d, '%Y') FROM t FORCE INDEX (i)",
		"SELECT ROW_NUMBER() OVER (PARTITION BY a ORDER BY b) FROM t",
		"SELECT * FROM t WHERE x = ANY (SELECT y FROM u)",
		"SELECT id FROM t WHERE name LIKE 'a\\_b'",
		"SELECT DATABASE(), VERSION(), JSON_EXTRACT(j, '$.a') FROM t",
		"SELECT IF(a, 1, 2), COALESCE(b, 0) FROM t",
		"SELECT REPLACE(a, 'x', 'y'), INSERT(a, 1, 1, 'z') FROM t",
		"SELECT -- comment\n 1",
		"SELECT 1 FROM t FOR SYSTEM_TIME AS OF TIMESTAMP '2020-01-01'",
	};
	for (size_t k = 0; k < sizeof(yes) / sizeof(yes[0]); k++) {
		int c = cls(yes[k]);
		if (c != MY_READ_YES)
			fprintf(stderr, "not a read: %s\n", yes[k]);
		CHECK(c == MY_READ_YES);
	}
}

static void not_reads(void)
{
	static const char *const no[] = {
		"",
		"   ",
		"-- only a comment",
		"INSERT INTO t VALUES (1)",
		"UPDATE t SET a = 1",
		"DELETE FROM t",
		"SHOW TABLES",
		"SET @x = 1",
		"CALL p()",
		"DO 1",
		"BEGIN",
		"START TRANSACTION",
		"SELECT * FROM t FOR UPDATE",
		"SELECT * FROM t FOR UPDATE SKIP LOCKED",
		"SELECT * FROM t LOCK IN SHARE MODE",
		"SELECT * FROM t FOR SHARE",
		"SELECT a INTO @x FROM t",
		"SELECT a FROM t INTO OUTFILE '/tmp/x'",
		"SELECT a INTO DUMPFILE '/tmp/x' FROM t",
		"SELECT @x",
		"SELECT @x := 1",
		"SELECT a := 1",
		"SELECT GET_LOCK('x', 1)",
		"SELECT RELEASE_LOCK('x')",
		"SELECT SLEEP(1)",
		"SELECT LAST_INSERT_ID()",
		"SELECT last_insert_id ()",
		"SELECT FOUND_ROWS()",
		"SELECT ROW_COUNT()",
		"SELECT NEXTVAL(s)",
		"SELECT NEXT VALUE FOR s",
		"SELECT PREVIOUS VALUE FOR s",
		"SELECT SETVAL(s, 10)",
		"SELECT LASTVAL(s)",
		"SELECT CONNECTION_ID()",
		"SELECT my_func(1)",
		"SELECT db.f(1)",
		"SELECT `f`(1)",
		"SELECT @@last_insert_id",
		"SELECT @@identity",
		"SELECT @@session.warning_count",
		"SELECT SQL_CALC_FOUND_ROWS * FROM t",
		"SELECT 1; DELETE FROM t",
		"SELECT 1; SELECT 2",
		"SELECT /*! SLEEP(1) */ 1",
		"SELECT /*M!100000 GET_LOCK('a', 1) */ 1",
		"SELECT 'unterminated",
		"SELECT 1 /* unterminated",
		/* A backslash that ends the string only without escapes: the
		 * call after it runs under NO_BACKSLASH_ESCAPES. */
		"SELECT '\\', GET_LOCK('x', 1), '\\'",
		"SELECT * FROM t PROCEDURE ANALYSE()",
		"WITH c AS (SELECT 1) DELETE FROM t",
		"START TRANSACTION READ WRITE",
		"START TRANSACTION READ ONLY; DELETE FROM t",
		"WITH c AS (SELECT 1) INSERT INTO t SELECT * FROM c",
	};
	for (size_t k = 0; k < sizeof(no) / sizeof(no[0]); k++) {
		int c = cls(no[k]);
		if (c != MY_READ_NO)
			fprintf(stderr, "a read: %s\n", no[k]);
		CHECK(c == MY_READ_NO);
	}
	CHECK(my_sql_read_class("SELECT 1\0 x", 11) == MY_READ_NO);
}

static void read_only_transactions(void)
{
	CHECK(cls("START TRANSACTION READ ONLY") == MY_READ_TX_READ_ONLY);
	CHECK(cls("start transaction read only;") == MY_READ_TX_READ_ONLY);
	CHECK(cls("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY") == MY_READ_TX_READ_ONLY);
	CHECK(cls("START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT") == MY_READ_TX_READ_ONLY);
	CHECK(cls("START TRANSACTION WITH CONSISTENT SNAPSHOT") == MY_READ_NO);
}

static void gtid_positions(void)
{
	uint64_t seq = 0;
	CHECK(my_gtid_single_seq("0-1-5", 5, &seq) && seq == 5);
	CHECK(my_gtid_single_seq("12-3-18446744073709551615", 25, &seq) && seq == UINT64_MAX);
	CHECK(!my_gtid_single_seq("", 0, &seq));
	CHECK(!my_gtid_single_seq("0-1-5,1-2-7", 11, &seq));
	CHECK(!my_gtid_single_seq("0-1", 3, &seq));
	CHECK(!my_gtid_single_seq("0-1-", 4, &seq));
	CHECK(!my_gtid_single_seq("0-1-5-6", 7, &seq));
	CHECK(!my_gtid_single_seq("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5", 40, &seq));
	CHECK(!my_gtid_single_seq("0-1-99999999999999999999", 24, &seq));
}

UNIT_MAIN(reads(); not_reads(); read_only_transactions(); gtid_positions())
