/*
 * test_shard_sort.c - ordering the shards' rows as PostgreSQL would:
 * timestamps read from their ISO text, each key type compared exactly,
 * NULLS FIRST/LAST, LIMIT and OFFSET over the merge, the budget, and the
 * types and collations refused.
 */
#include <stdlib.h>
#include <string.h>

#include "iobuf.h"
#include "pg_proto.h"
#include "shard_sort.h"
#include "pg_bodies.h"
#include "unit.h"

static void test_times(void)
{
	int64_t a, b;
	CHECK(shard_sort_time("2000-01-01", 10, &a) && a == 0);
	CHECK(shard_sort_time("2000-01-01 00:00:01", 19, &a) && a == 1000000);
	CHECK(shard_sort_time("2000-01-01 00:00:00.5", 21, &a) && a == 500000);
	CHECK(shard_sort_time("2000-01-01 01:00:00+01", 22, &a) && a == 0);
	CHECK(shard_sort_time("1999-12-31 23:30:00-00:30", 25, &a) && a == 0);
	CHECK(shard_sort_time("1970-01-01 00:00:00+00", 22, &a) && a == -INT64_C(946684800) * 1000000);
	CHECK(shard_sort_time("0001-01-01 BC", 13, &a) && shard_sort_time("0001-01-01", 10, &b) && a < b);
	CHECK(shard_sort_time("infinity", 8, &a) && a == INT64_MAX);
	CHECK(shard_sort_time("-infinity", 9, &a) && a == INT64_MIN);
	CHECK(shard_sort_time("12000-03-01", 11, &a) && shard_sort_time("9999-12-31", 10, &b) && a > b);
	/* DST: the same instant written with two offsets. */
	CHECK(shard_sort_time("2026-10-25 02:30:00+02", 22, &a) && shard_sort_time("2026-10-25 01:30:00+01", 22, &b) &&
	      a == b);
	CHECK(!shard_sort_time("12/07/2026", 10, &a));            /* DateStyle SQL */
	CHECK(!shard_sort_time("Mon Dec 07 22:00:00 2026", 24, &a)); /* Postgres */
	CHECK(!shard_sort_time("2026-13-01", 10, &a));
	CHECK(!shard_sort_time("2026-01-01 1:00:00", 18, &a));
}

/* The first column of each row of the answer, joined by spaces ("E" for
 * an error, with its SQLSTATE). */
static void answer(struct shard_sort *s, char *out, size_t cap)
{
	struct iobuf b = { 0 };
	CHECK(shard_sort_finish(s, &b, true) == 0);
	size_t o = 0;
	out[0] = '\0';
	const uint8_t *p = iobuf_head(&b);
	uint32_t left = iobuf_len(&b);
	struct pg_msg m;
	while (left && pg_msg_peek(p, left, &m) == 1) {
		if (m.type == 'D') {
			const uint8_t *v;
			uint32_t n;
			CHECK(pg_datarow_column(m.body, m.body_len, 0, &v, &n) == 0);
			o += (size_t)snprintf(out + o, cap - o, "%s%.*s", o ? " " : "", v ? (int)n : 4, v ? (const char *)v : "null");
		} else if (m.type == 'E') {
			struct pg_error_fields f;
			pg_be_error_parse(m.body, m.body_len, &f);
			o += (size_t)snprintf(out + o, cap - o, "%sE%s", o ? " " : "", f.code);
		}
		p += m.len;
		left -= m.len;
	}
	iobuf_release(&b);
}

static void feed(struct shard_sort *s, int ncol, const uint32_t *types, const char *const *names,
		 const char *const (*rows)[2], int nrows)
{
	uint8_t buf[512];
	shard_sort_describe(s, buf, unit_rowdesc(buf, ncol, types, names));
	for (int i = 0; i < nrows; i++)
		shard_sort_row(s, buf, unit_datarow(buf, ncol, rows[i]));
}

static void sorted_is(const struct shard_sort_key *keys, int nk, int64_t limit, int64_t offset, uint32_t type,
		      const char *const (*rows)[2], int nrows, const char *want)
{
	static const char *const names[] = { "id", "v" };
	const uint32_t types[] = { 23, type };
	struct shard_sort *s = shard_sort_new(keys, nk, limit, offset, 1 << 20);
	/* Two "shards": the rows split in halves. */
	feed(s, 2, types, names, rows, nrows / 2);
	feed(s, 2, types, names, rows + nrows / 2, nrows - nrows / 2);
	char got[256];
	answer(s, got, sizeof(got));
	if (strcmp(got, want) != 0)
		fprintf(stderr, "got \"%s\", want \"%s\"\n", got, want);
	CHECK(strcmp(got, want) == 0);
	shard_sort_free(s);
}

static void test_orders(void)
{
	const struct shard_sort_key by_v = { .name = "v" }, by_v_desc = { .position = 2, .desc = true, .nulls_first = true },
				    by_id = { .position = 1 }, by_v_c = { .name = "v", .collate_c = true };
	const struct shard_sort_key v_then_id[] = { by_v, by_id };
	static const char *const ints[][2] = { { "1", "10" }, { "2", "-5" }, { "3", NULL }, { "4", "9" }, { "5", "-5" } };
	sorted_is(v_then_id, 2, -1, 0, 23, ints, 5, "2 5 4 1 3");
	sorted_is(&by_v_desc, 1, -1, 0, 23, ints, 5, "3 1 4 2 5");
	sorted_is(v_then_id, 2, 2, 1, 23, ints, 5, "5 4");
	sorted_is(v_then_id, 2, 0, 0, 23, ints, 5, "");
	sorted_is(v_then_id, 2, -1, 4, 23, ints, 5, "3");
	static const char *const nums[][2] = { { "1", "1.50" }, { "2", "NaN" }, { "3", "-Infinity" }, { "4", "1.5001" },
					      { "5", "-2" } };
	sorted_is(v_then_id, 2, -1, 0, 1700, nums, 5, "3 5 1 4 2");
	static const char *const floats[][2] = { { "1", "1e10" }, { "2", "NaN" }, { "3", "Infinity" }, { "4", "-0" },
						{ "5", "-1.5e-3" } };
	sorted_is(v_then_id, 2, -1, 0, 701, floats, 5, "5 4 1 3 2");
	static const char *const texts[][2] = { { "1", "b" }, { "2", "B" }, { "3", "ab" }, { "4", "a" }, { "5", "" } };
	const struct shard_sort_key text_then_id[] = { by_v_c, by_id };
	sorted_is(text_then_id, 2, -1, 0, 25, texts, 5, "5 2 4 3 1");
	static const char *const chars[][2] = { { "1", "b " }, { "2", "a  " }, { "3", "a" } };
	sorted_is(text_then_id, 2, -1, 0, 1042, chars, 3, "2 3 1");
	static const char *const stamps[][2] = { { "1", "2026-01-01 10:00:00+02" }, { "2", "2026-01-01 09:00:00+00" },
						{ "3", "infinity" }, { "4", "2025-12-31 23:59:59.999999-01" } };
	sorted_is(v_then_id, 2, -1, 0, 1184, stamps, 4, "4 1 2 3");
	/* Refused: text without COLLATE "C", an unknown type, a name no
	 * output column has, an unreadable value. */
	sorted_is(v_then_id, 2, -1, 0, 25, texts, 5, "E0A000");
	sorted_is(v_then_id, 2, -1, 0, 600 /* point */, ints, 5, "E0A000");
	const struct shard_sort_key by_x = { .name = "x" };
	sorted_is(&by_x, 1, -1, 0, 23, ints, 5, "E0A000");
	static const char *const bad[][2] = { { "1", "12/07/2026" } };
	sorted_is(v_then_id, 2, -1, 0, 1082, bad, 1, "E22P02");
}

static void test_budget(void)
{
	const struct shard_sort_key by_id = { .position = 1 };
	static const char *const names[] = { "id", "v" };
	const uint32_t types[] = { 23, 23 };
	char vals[200][2][8];
	const char *rows[200][2];
	for (int i = 0; i < 200; i++) {
		snprintf(vals[i][0], 8, "%d", 200 - i);
		snprintf(vals[i][1], 8, "%d", i);
		rows[i][0] = vals[i][0];
		rows[i][1] = vals[i][1];
	}
	/* Without a LIMIT every row waits: past the budget, refused. */
	struct shard_sort *s = shard_sort_new(&by_id, 1, -1, 0, 4096);
	feed(s, 2, types, names, (const char *const (*)[2])rows, 200);
	char got[2048];
	answer(s, got, sizeof(got));
	CHECK(strcmp(got, "E54000") == 0);
	shard_sort_free(s);
	/* With one, only twice its rows wait at most. */
	s = shard_sort_new(&by_id, 1, 3, 0, 4096);
	feed(s, 2, types, names, (const char *const (*)[2])rows, 200);
	answer(s, got, sizeof(got));
	CHECK(strcmp(got, "1 2 3") == 0);
	shard_sort_free(s);
}

UNIT_MAIN(test_times(); test_orders(); test_budget())
