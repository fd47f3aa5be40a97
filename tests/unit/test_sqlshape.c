/*
 * test_sqlshape.c - the shape of a simple query: plain integer literals
 * become $1, $2, ... and nothing else does; texts the scan cannot read
 * without doubt are not shaped.
 */
#include <string.h>

#include "sqlshape.h"
#include "unit.h"

/* want: the shape, or NULL when the text must not be shaped; lits: the
 * literals' texts, space-separated. */
static void shape_is(const char *sql, const char *want, const char *lits)
{
	char out[256];
	struct sql_literal l[SQL_SHAPE_MAX_LITERALS];
	int n = sql_shape(sql, strlen(sql), out, sizeof(out), l);
	if (!want) {
		if (n >= 0)
			fprintf(stderr, "shape of \"%s\": \"%s\", want none\n", sql, out);
		CHECK(n < 0);
		return;
	}
	if (n < 0 || strcmp(out, want) != 0)
		fprintf(stderr, "shape of \"%s\": %s, want \"%s\"\n", sql, n < 0 ? "none" : out, want);
	CHECK(n >= 0 && strcmp(out, want) == 0);
	char got[256] = "";
	for (int i = 0; i < n && n > 0; i++) {
		if (i)
			strcat(got, " ");
		strncat(got, sql + l[i].off, l[i].len);
	}
	if (strcmp(got, lits) != 0)
		fprintf(stderr, "literals of \"%s\": \"%s\", want \"%s\"\n", sql, got, lits);
	CHECK(strcmp(got, lits) == 0);
}

static void test_shapes(void)
{
	shape_is("SELECT abalance FROM pgbench_accounts WHERE aid = 4242;",
		 "SELECT abalance FROM pgbench_accounts WHERE aid = $1;", "4242");
	shape_is("INSERT INTO t (a, b) VALUES (1, 007)", "INSERT INTO t (a, b) VALUES ($1, $2)", "1 007");
	shape_is("select 1", "select $1", "1");
	shape_is("BEGIN", "BEGIN", "");
	shape_is("SELECT * FROM t1 WHERE x2 = 3", "SELECT * FROM t1 WHERE x2 = $1", "3");
	/* Not plain integer literals: signs, decimals, exponents, casts, names. */
	shape_is("SELECT * FROM t WHERE k = -5", "SELECT * FROM t WHERE k = -5", "");
	shape_is("SELECT * FROM t WHERE k = - 5 + 2", "SELECT * FROM t WHERE k = - 5 + 2", "");
	shape_is("SELECT 1.5, .5, 5., 1e3, 0x1F, 5::int8, t.5", "SELECT 1.5, .5, 5., 1e3, 0x1F, 5::int8, t.5", "");
	shape_is("SELECT a FROM t WHERE k = 12 AND j=3", "SELECT a FROM t WHERE k = $1 AND j=$2", "12 3");
	shape_is("SELECT 1_000", "SELECT 1_000", "");
	/* Texts it does not read. */
	shape_is("SELECT * FROM t WHERE k = '5'", NULL, NULL);
	shape_is("SELECT * FROM \"T\" WHERE k = 5", NULL, NULL);
	shape_is("SELECT $1", NULL, NULL);
	shape_is("SELECT 5 -- 6", NULL, NULL);
	shape_is("SELECT /* 5 */ 6", NULL, NULL);
	shape_is("SELECT E\\'x", NULL, NULL);
	/* Too many literals, or a shape that does not fit. */
	char many[512] = "SELECT 0";
	for (int i = 0; i < SQL_SHAPE_MAX_LITERALS; i++)
		strcat(many, ",1");
	shape_is(many, NULL, NULL);
	char out[8];
	struct sql_literal l[SQL_SHAPE_MAX_LITERALS];
	CHECK(sql_shape("SELECT 123456", 13, out, sizeof(out), l) < 0);
}

UNIT_MAIN(test_shapes())
