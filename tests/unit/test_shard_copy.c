/*
 * test_shard_copy.c - COPY FROM STDIN data split by shard: rows in text
 * and CSV cut across pieces, escapes and quotes undone for the key, the
 * NULL string, a header, the end marker, a replicated table's rows, and
 * what is refused.
 */
#include <string.h>

#include "pghash.h"
#include "shard_copy.h"
#include "unit.h"

#define N 4

/* The shard of an int8 key's text, as PostgreSQL's hash partitioning gives it. */
static int shard_of(const char *key)
{
	return pghash_shard_text(PGHASH_INT8, key, strlen(key), N);
}

/* Shard i's data as a string (len bytes). */
static void data_is(const struct shard_copy *s, int shard, const char *want)
{
	size_t len;
	const uint8_t *p = shard_copy_data(s, shard, &len);
	bool same = len == strlen(want) && (!len || memcmp(p, want, len) == 0);
	if (!same)
		fprintf(stderr, "shard %d: \"%.*s\", want \"%s\"\n", shard, (int)len, p ? (const char *)p : "", want);
	CHECK(same);
}

/* Feed text in pieces of every size from 1 to whole. */
static struct shard_copy *split(const struct shard_copy_format *f, const char *text, size_t piece)
{
	struct shard_copy *s = shard_copy_new(f, N, 1 << 20);
	size_t n = strlen(text);
	for (size_t at = 0; at < n; at += piece)
		CHECK(shard_copy_feed(s, (const uint8_t *)text + at, at + piece > n ? n - at : piece) == 0);
	CHECK(shard_copy_end(s) == 0);
	return s;
}

static void test_text(void)
{
	struct shard_copy_format f = { .key = 1, .key_type = PGHASH_INT8, .delim = '\t', .quote = '"', .escape = '"' };
	strcpy(f.null, "\\N");
	/* Rows for keys 1, 2, 3 and NULL (shard 0); the last without its newline. */
	const char *rows[] = { "10\t1\tx\n", "20\t2\ty\\tz\n", "30\t3\t\\\\\n", "40\t\\N\tw\n", "50\t1\tlast" };
	char all[200] = "";
	for (size_t i = 0; i < 5; i++)
		strcat(all, rows[i]);
	for (size_t piece = 1; piece <= strlen(all); piece += 3) {
		struct shard_copy *s = split(&f, all, piece);
		char want[N][100] = { "", "", "", "" };
		strcat(want[shard_of("1")], rows[0]);
		strcat(want[shard_of("2")], rows[1]);
		strcat(want[shard_of("3")], rows[2]);
		strcat(want[0], rows[3]);
		strcat(want[shard_of("1")], "50\t1\tlast\n");
		uint64_t mask = 0;
		for (int i = 0; i < N; i++) {
			data_is(s, i, want[i]);
			if (want[i][0])
				mask |= UINT64_C(1) << i;
		}
		CHECK(shard_copy_shards(s) == mask);
		shard_copy_free(s);
	}
	/* An escaped key: \061 is '1'. The end marker ends the data. */
	struct shard_copy *s = split(&f, "7\t\\061\tq\n\\.\n8\t2\tignored\n", 5);
	data_is(s, shard_of("1"), "7\t\\061\tq\n");
	CHECK(shard_copy_shards(s) == (UINT64_C(1) << shard_of("1")));
	shard_copy_free(s);
}

static void test_csv(void)
{
	struct shard_copy_format f = { .key = 0, .key_type = PGHASH_INT8, .csv = true, .header = true, .delim = ',',
				       .quote = '"', .escape = '"' };
	const char *text = "k,v\n\"2\",\"a,b\nc\"\"d\"\n3,plain\n,null key\n";
	for (size_t piece = 1; piece <= strlen(text); piece++) {
		struct shard_copy *s = split(&f, text, piece);
		size_t hl;
		const uint8_t *h = shard_copy_header(s, &hl);
		CHECK(hl == 4 && memcmp(h, "k,v\n", 4) == 0);
		char want[N][100] = { "", "", "", "" };
		strcat(want[shard_of("2")], "\"2\",\"a,b\nc\"\"d\"\n");
		strcat(want[shard_of("3")], "3,plain\n");
		strcat(want[0], ",null key\n");
		for (int i = 0; i < N; i++)
			data_is(s, i, want[i]);
		shard_copy_free(s);
	}
	/* An unterminated quote at the end: refused. */
	struct shard_copy *s = shard_copy_new(&f, N, 1 << 20);
	CHECK(shard_copy_feed(s, (const uint8_t *)"k,v\n1,\"open\n", 12) == 0);
	CHECK(shard_copy_end(s) < 0);
	const char *msg, *code = shard_copy_error(s, &msg);
	CHECK(strcmp(code, "22P04") == 0);
	shard_copy_free(s);
}

static void test_refused(void)
{
	struct shard_copy_format f = { .key = 1, .key_type = PGHASH_INT8, .delim = '\t', .quote = '"', .escape = '"' };
	strcpy(f.null, "\\N");
	const char *msg, *code;
	struct shard_copy *s = shard_copy_new(&f, N, 1 << 20);
	CHECK(shard_copy_feed(s, (const uint8_t *)"1\tabc\n", 6) < 0);
	code = shard_copy_error(s, &msg);
	CHECK(strcmp(code, "22P02") == 0 && strstr(msg, "abc"));
	CHECK(shard_copy_feed(s, (const uint8_t *)"1\t2\n", 4) < 0); /* failed: nothing more taken */
	shard_copy_free(s);
	s = shard_copy_new(&f, N, 1 << 20);
	CHECK(shard_copy_feed(s, (const uint8_t *)"only-one-field\n", 15) < 0);
	code = shard_copy_error(s, &msg);
	CHECK(strcmp(code, "22P04") == 0);
	shard_copy_free(s);
	/* The budget. */
	s = shard_copy_new(&f, N, 64);
	int rc = 0;
	for (int i = 0; i < 20 && rc == 0; i++)
		rc = shard_copy_feed(s, (const uint8_t *)"1\t2\t3\n", 6);
	CHECK(rc < 0 && strcmp(shard_copy_error(s, &msg), "54000") == 0);
	shard_copy_free(s);
	/* A replicated table: every row, for every shard. */
	struct shard_copy_format r = f;
	r.key = -1;
	s = split(&r, "a\tb\nc\td\n", 3);
	CHECK(shard_copy_shards(s) == (UINT64_C(1) << N) - 1);
	for (int i = 0; i < N; i++)
		data_is(s, i, "a\tb\nc\td\n");
	shard_copy_free(s);
}

/* A long text key is hashed whole (not cut at some buffer's size). */
static void test_long_key(void)
{
	struct shard_copy_format f = { .key = 0, .key_type = PGHASH_TEXT, .delim = '\t', .quote = '"', .escape = '"' };
	strcpy(f.null, "\\N");
	static char row[1200];
	for (int k = 0; k < 8; k++) {
		memset(row, 'a' + k, 1000);
		row[1000] = (char)('a' + k + 1); /* 1001 bytes, all of them hashed */
		memcpy(row + 1001, "\tv\n", 4);
		row[1004] = '\0';
		struct shard_copy *s = split(&f, row, 97);
		int want = pghash_shard_text(PGHASH_TEXT, row, 1001, N);
		size_t len;
		(void)shard_copy_data(s, want, &len);
		CHECK(len == 1004 && shard_copy_shards(s) == (UINT64_C(1) << want));
		shard_copy_free(s);
	}
}

UNIT_MAIN(test_text(); test_csv(); test_refused(); test_long_key())
