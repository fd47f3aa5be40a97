/*
 * test_shard_merge.c - combining the shards' answers to an aggregate
 * query: decimal arithmetic on numeric's text form, and whole merges
 * (counts and sums added, least and greatest, NULLs, refused types).
 */
#include <stdlib.h>
#include <string.h>

#include "iobuf.h"
#include "pg_proto.h"
#include "shard_merge.h"
#include "shardroute.h"
#include "pg_bodies.h"
#include "unit.h"

static void add_is(const char *a, const char *b, const char *want)
{
	char *got = shard_decimal_add(a, b);
	if (!got || strcmp(got, want) != 0)
		fprintf(stderr, "%s + %s = %s, want %s\n", a, b, got ? got : "(null)", want);
	CHECK(got && strcmp(got, want) == 0);
	free(got);
}

static void test_decimals(void)
{
	add_is("1", "2", "3");
	add_is("1.50", "2.5", "4.00");
	add_is("999", "1", "1000");
	add_is("-5", "3", "-2");
	add_is("5", "-7.25", "-2.25");
	add_is("-1.5", "-2.25", "-3.75");
	add_is("3.5", "-3.5", "0.0");
	add_is("0.001", "0.999", "1.000");
	add_is("123456789012345678901234567890", "1", "123456789012345678901234567891");
	add_is("007", "0", "7");
	CHECK(shard_decimal_add("NaN", "1") == NULL);
	CHECK(shard_decimal_cmp("1.5", "1.50") == 0);
	CHECK(shard_decimal_cmp("-2", "1") < 0);
	CHECK(shard_decimal_cmp("10", "9.99") > 0);
	CHECK(shard_decimal_cmp("-10", "-9.99") < 0);
	CHECK(shard_decimal_cmp("-0", "0") == 0);
	CHECK(!shard_decimal_valid("Infinity") && !shard_decimal_valid("1.2.3") && shard_decimal_valid("-0.5"));
}

/* The values of the DataRows sluice answered, "|"-joined, NULL as "-",
 * rows apart by a blank. */
static void answer(struct shard_merge *m, char *out, size_t cap, char *type)
{
	struct iobuf b = { 0 };
	CHECK(shard_merge_finish(m, &b, true, NULL) == 0);
	out[0] = '\0';
	*type = 0;
	uint32_t off = 0;
	struct pg_msg msg;
	while (off < iobuf_len(&b) && pg_msg_peek(iobuf_head(&b) + off, iobuf_len(&b) - off, &msg) == 1) {
		if (!*type || *type == 'T')
			*type = (char)msg.type;
		if (msg.type == 'D') {
			if (out[0])
				strncat(out, " ", cap - strlen(out) - 1);
			for (int i = 0;; i++) {
				const uint8_t *v;
				uint32_t n;
				if (pg_datarow_column(msg.body, msg.body_len, i, &v, &n) < 0)
					break;
				if (i)
					strncat(out, "|", cap - strlen(out) - 1);
				if (v)
					strncat(out, (const char *)v, n < cap - strlen(out) - 1 ? n : cap - strlen(out) - 1);
				else
					strncat(out, "-", cap - strlen(out) - 1);
			}
		}
		off += msg.len;
	}
	iobuf_release(&b);
}

static void test_merges(void)
{
	static const uint8_t aggs[] = { SHARD_AGG_COUNT, SHARD_AGG_SUM, SHARD_AGG_MIN, SHARD_AGG_MAX, SHARD_AGG_SUM,
					SHARD_AGG_MAX };
	static const uint32_t types[] = { 20, 20, 23, 23, 1700, 1700 };
	uint8_t buf[512];
	struct shard_merge *m = shard_merge_new(aggs, 6, -1, 0, 1 << 20);
	CHECK(m != NULL);
	static const char *const rows[][6] = {
		{ "3", "10", "-4", "9", "1.5", "2.25" },
		{ "0", NULL, NULL, NULL, NULL, NULL },
		{ "2", "-3", "7", "12", "-0.25", "-1" },
	};
	for (int s = 0; s < 3; s++) {
		shard_merge_describe(m, buf, unit_rowdesc(buf, 6, types, NULL));
		shard_merge_row(m, buf, unit_datarow(buf, 6, rows[s]));
	}
	char got[256], type;
	answer(m, got, sizeof(got), &type);
	CHECK_STR(got, "5|7|-4|12|1.25|2.25");
	shard_merge_free(m);

	/* No shard had a value: a count of 0, NULL for the rest. */
	m = shard_merge_new(aggs, 2, -1, 0, 1 << 20);
	shard_merge_describe(m, buf, unit_rowdesc(buf, 2, types, NULL));
	const char *nulls[] = { "0", NULL };
	shard_merge_row(m, buf, unit_datarow(buf, 2, nulls));
	answer(m, got, sizeof(got), &type);
	CHECK_STR(got, "0|-");
	shard_merge_free(m);

	/* min over text: refused, not guessed. */
	static const uint8_t mins[] = { SHARD_AGG_MIN };
	static const uint32_t text[] = { 25 };
	m = shard_merge_new(mins, 1, -1, 0, 1 << 20);
	shard_merge_describe(m, buf, unit_rowdesc(buf, 1, text, NULL));
	answer(m, got, sizeof(got), &type);
	CHECK(type == 'E');
	shard_merge_free(m);

	/* A NaN: refused. */
	static const uint32_t num[] = { 1700 };
	m = shard_merge_new(mins, 1, -1, 0, 1 << 20);
	shard_merge_describe(m, buf, unit_rowdesc(buf, 1, num, NULL));
	const char *nan[] = { "NaN" };
	shard_merge_row(m, buf, unit_datarow(buf, 1, nan));
	answer(m, got, sizeof(got), &type);
	CHECK(type == 'E');
	shard_merge_free(m);
}

/* GROUP BY: rows of equal keys combined, NULL keys one group, in the
 * order groups were met; LIMIT and OFFSET; keys refused; the budget. */
static void test_groups(void)
{
	static const uint8_t aggs[] = { SHARD_AGG_KEY, SHARD_AGG_COUNT, SHARD_AGG_SUM, SHARD_AGG_MAX };
	static const uint32_t types[] = { 25, 20, 1700, 23 };
	static const char *const shard0[][4] = { { "fr", "2", "1.5", "7" }, { NULL, "1", "2", "1" }, { "de", "1", NULL, NULL } };
	static const char *const shard1[][4] = { { "de", "3", "0.25", "9" }, { "fr", "1", "-1", "3" }, { NULL, "4", "1", "0" } };
	uint8_t buf[512];
	char got[256], type;
	struct shard_merge *m = shard_merge_new(aggs, 4, -1, 0, 1 << 20);
	shard_merge_describe(m, buf, unit_rowdesc(buf, 4, types, NULL));
	for (int i = 0; i < 3; i++)
		shard_merge_row(m, buf, unit_datarow(buf, 4, shard0[i]));
	shard_merge_describe(m, buf, unit_rowdesc(buf, 4, types, NULL));
	for (int i = 0; i < 3; i++)
		shard_merge_row(m, buf, unit_datarow(buf, 4, shard1[i]));
	answer(m, got, sizeof(got), &type);
	if (strcmp(got, "fr|3|0.5|7 -|5|3|1 de|4|0.25|9") != 0)
		fprintf(stderr, "groups: %s\n", got);
	CHECK(strcmp(got, "fr|3|0.5|7 -|5|3|1 de|4|0.25|9") == 0);
	shard_merge_free(m);

	/* LIMIT 1 OFFSET 1 over the groups; no groups at all: no row. */
	m = shard_merge_new(aggs, 4, 1, 1, 1 << 20);
	shard_merge_describe(m, buf, unit_rowdesc(buf, 4, types, NULL));
	for (int i = 0; i < 3; i++)
		shard_merge_row(m, buf, unit_datarow(buf, 4, shard0[i]));
	answer(m, got, sizeof(got), &type);
	CHECK(strcmp(got, "-|1|2|1") == 0);
	shard_merge_free(m);
	m = shard_merge_new(aggs, 4, -1, 0, 1 << 20);
	shard_merge_describe(m, buf, unit_rowdesc(buf, 4, types, NULL));
	answer(m, got, sizeof(got), &type);
	CHECK(strcmp(got, "") == 0 && type == 'C'); /* no DataRow: SELECT 0 */
	shard_merge_free(m);

	/* A numeric key: 1.0 and 1.00 are one group PostgreSQL-side; refused. */
	static const uint32_t numkey[] = { 1700, 20, 1700, 23 };
	m = shard_merge_new(aggs, 4, -1, 0, 1 << 20);
	shard_merge_describe(m, buf, unit_rowdesc(buf, 4, numkey, NULL));
	answer(m, got, sizeof(got), &type);
	CHECK(type == 'E');
	shard_merge_free(m);

	/* Past the budget: refused (54000), not grown. */
	m = shard_merge_new(aggs, 4, -1, 0, 2048);
	shard_merge_describe(m, buf, unit_rowdesc(buf, 4, types, NULL));
	for (int i = 0; i < 100; i++) {
		char k[16];
		snprintf(k, sizeof(k), "k%d", i);
		const char *row[4] = { k, "1", "1", "1" };
		shard_merge_row(m, buf, unit_datarow(buf, 4, row));
	}
	struct iobuf b = { 0 };
	CHECK(shard_merge_finish(m, &b, true, NULL) == 0);
	struct pg_msg msg;
	CHECK(pg_msg_peek(iobuf_head(&b), iobuf_len(&b), &msg) == 1 && msg.type == 'E');
	struct pg_error_fields f;
	pg_be_error_parse(msg.body, msg.body_len, &f);
	CHECK(strcmp(f.code, "54000") == 0);
	iobuf_release(&b);
	shard_merge_free(m);
}

/* avg: PostgreSQL's numeric division of the sum by the count, its scale
 * and rounding (each expected value is what PostgreSQL 15 printed). */
static void test_avg(void)
{
	static const struct { const char *sum; int64_t count; const char *want; } cases[] = {
		{ "12345", 7, "1763.5714285714285714" },
		{ "0", 5, "0.00000000000000000000" },
		{ "1", 3, "0.33333333333333333333" },
		{ "-1", 3, "-0.33333333333333333333" },
		{ "2", 3, "0.66666666666666666667" },
		{ "10", 4, "2.5000000000000000" },
		{ "99999", 1, "99999.000000000000" },
		{ "1.50", 2, "0.75000000000000000000" },
		{ "0.0001", 3, "0.000033333333333333333333" },
		{ "0.00049999", 1, "0.00049999000000000000" },
		{ "-7.125", 2, "-3.5625000000000000" },
		{ "123456789012345678901234567890", 7, "17636684144620811271604938270" },
		{ "5", 10001, "0.00049995000499950005" },
		{ "9999", 10000, "0.99990000000000000000" },
		{ "10000", 10000, "1.00000000000000000000" },
		{ "0.000012345", 7, "0.000001763571428571428571" },
		{ "2", 3000000000, "0.0000000006666666666666666667" },
		{ "-0.5", 1, "-0.50000000000000000000" },
		{ "100", 3, "33.3333333333333333" },
		{ "6", 7, "0.85714285714285714286" },
		{ "60000", 7, "8571.4285714285714286" },
		{ "1", 1, "1.00000000000000000000" },
		{ "0.99999999999999999999", 1, "0.99999999999999999999" },
		{ "3", 2, "1.5000000000000000" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = shard_decimal_avg(cases[i].sum, cases[i].count);
		if (!got || strcmp(got, cases[i].want) != 0)
			fprintf(stderr, "avg %s / %lld = %s, want %s\n", cases[i].sum, (long long)cases[i].count,
				got ? got : "(null)", cases[i].want);
		CHECK(got && strcmp(got, cases[i].want) == 0);
		free(got);
	}
	CHECK(shard_decimal_avg("1", 0) == NULL && shard_decimal_avg("NaN", 1) == NULL);
}

UNIT_MAIN(test_decimals(); test_merges(); test_groups(); test_avg())
