/*
 * test_pghash.c - pghash.c against values PostgreSQL 15 computed
 * (hashint4extended and kin, and satisfies_hash_partition on
 * hash-partitioned tables), plus the parsing of values.
 *
 * With PGHASH_VALUES=FILE in the environment it instead answers for
 * tests/e2e/test_pghash.py: each line "TYPE MODULUS t|b HEX" (the value's
 * text or binary form, hex-encoded) gets the line "SHARD" or "error" on
 * stdout, and no test runs.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "pghash.h"
#include "unit.h"

#define SEED PGHASH_PARTITION_SEED

static int shard_text(int type, const char *s, int modulus)
{
	return pghash_shard_text(type, s, strlen(s), modulus);
}

static uint64_t text_hash(int type, const char *s, uint64_t seed)
{
	uint64_t h = 0;
	CHECK(pghash_hash_text(type, s, strlen(s), seed, &h) == 0);
	return h;
}

static void test_hashes(void)
{
	/* SELECT hashint4extended(0, 0), ... (int8 results as unsigned). */
	CHECK(text_hash(PGHASH_INT4, "0", 0) == UINT64_C(4154612158245552303));
	CHECK(text_hash(PGHASH_INT4, "42", SEED) == UINT64_C(7363975540656877951));
	CHECK(text_hash(PGHASH_INT8, "-9223372036854775808", SEED) == (uint64_t)INT64_C(-6050265599104649060));
	CHECK(text_hash(PGHASH_INT8, "5000000000", 0) == (uint64_t)INT64_C(-5263616605311196344));
	CHECK(text_hash(PGHASH_INT2, "-7", SEED) == (uint64_t)INT64_C(-7298374200968567817));
	CHECK(text_hash(PGHASH_TEXT, "", 0) == (uint64_t)INT64_C(-6939563903564495251));
	CHECK(text_hash(PGHASH_TEXT, "abc", SEED) == UINT64_C(3628778498291917250));
	CHECK(text_hash(PGHASH_TEXT, "twelve bytes!", SEED) == (uint64_t)INT64_C(-5221041327294989087));
	CHECK(text_hash(PGHASH_TEXT, "exactly 12 b", 0) == UINT64_C(3728373950248614595));
	CHECK(text_hash(PGHASH_UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", SEED) == UINT64_C(424513190990560493));
	/* hashint8 folds: equal numbers hash alike in all three types. */
	CHECK(text_hash(PGHASH_INT2, "-7", SEED) == text_hash(PGHASH_INT8, "-7", SEED));
	CHECK(text_hash(PGHASH_INT4, "-2147483648", 0) == text_hash(PGHASH_INT8, "-2147483648", 0));
	CHECK(text_hash(PGHASH_INT4, "2147483647", SEED) == text_hash(PGHASH_INT8, "2147483647", SEED));
}

/* satisfies_hash_partition(parent, m, r, v) is true for the r below. */
static const struct {
	int type, modulus;
	const char *value;
	int shard;
} shards[] = {
	{ PGHASH_INT4, 4, "1", 0 }, { PGHASH_INT4, 4, "2", 2 }, { PGHASH_INT4, 4, "3", 1 },
	{ PGHASH_INT4, 4, "4", 3 }, { PGHASH_INT4, 4, "42", 2 }, { PGHASH_INT4, 4, "-7", 2 },
	{ PGHASH_INT8, 3, "5000000000", 2 }, { PGHASH_INT8, 7, "5000000000", 2 }, { PGHASH_INT8, 64, "5000000000", 16 },
	{ PGHASH_INT8, 3, "-9223372036854775808", 1 }, { PGHASH_INT8, 7, "-9223372036854775808", 0 },
	{ PGHASH_INT8, 64, "-9223372036854775808", 63 }, { PGHASH_INT8, 64, "9223372036854775807", 54 },
	{ PGHASH_INT8, 7, "9223372036854775807", 3 }, { PGHASH_INT8, 64, "0", 48 }, { PGHASH_INT8, 7, "0", 4 },
	{ PGHASH_INT8, 64, "-1", 37 }, { PGHASH_INT8, 7, "-1", 0 },
	{ PGHASH_INT2, 64, "-32768", 61 }, { PGHASH_INT2, 7, "32767", 5 }, { PGHASH_INT2, 64, "32767", 14 },
	{ PGHASH_INT2, 64, "7", 23 }, { PGHASH_INT2, 7, "7", 6 },
	{ PGHASH_TEXT, 4, "a", 2 }, { PGHASH_TEXT, 4, "abc", 1 }, { PGHASH_TEXT, 4, "hello", 0 },
	{ PGHASH_TEXT, 4, "a longer string over twelve bytes", 1 },
	{ PGHASH_TEXT, 64, "h\xc3\xa9llo", 35 }, { PGHASH_TEXT, 7, "h\xc3\xa9llo", 4 },
	{ PGHASH_TEXT, 64, "exactly 12 b", 24 }, { PGHASH_TEXT, 7, "exactly 12 b", 3 },
	{ PGHASH_TEXT, 64, "", 38 }, { PGHASH_TEXT, 7, "", 1 }, { PGHASH_TEXT, 64, "thirteen bytes", 21 },
	{ PGHASH_TEXT, 64, "\xc3\x9cn\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9 strings over 24 bytes long", 30 },
	{ PGHASH_TEXT, 7, "\xc3\x9cn\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9 strings over 24 bytes long", 1 },
	{ PGHASH_UUID, 4, "00000000-0000-0000-0000-000000000000", 1 },
	{ PGHASH_UUID, 4, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", 0 },
	{ PGHASH_UUID, 64, "{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}", 16 },
	{ PGHASH_UUID, 7, "A0EEBC999C0B4EF8BB6D6BB9BD380A11", 6 },
	{ PGHASH_UUID, 64, "ffffffff-ffff-ffff-ffff-ffffffffffff", 1 },
	{ PGHASH_UUID, 7, "ffffffff-ffff-ffff-ffff-ffffffffffff", 0 },
	/* Modulus 1: everything on the one shard. */
	{ PGHASH_TEXT, 1, "anything", 0 },
};

static void test_shards(void)
{
	for (size_t i = 0; i < sizeof(shards) / sizeof(shards[0]); i++) {
		int got = shard_text(shards[i].type, shards[i].value, shards[i].modulus);
		if (got != shards[i].shard)
			fprintf(stderr, "shard of %s '%s' mod %d: %d, PostgreSQL says %d\n",
				pghash_type_name(shards[i].type), shards[i].value, shards[i].modulus, got, shards[i].shard);
		CHECK(got == shards[i].shard);
	}
}

static void test_parse(void)
{
	/* PostgreSQL 15's integer input: blanks around, a sign, digits. */
	CHECK(shard_text(PGHASH_INT4, " 42 ", 4) == 2);
	CHECK(shard_text(PGHASH_INT4, "+42", 4) == 2);
	CHECK(shard_text(PGHASH_INT4, "\t-7\n", 4) == 2);
	CHECK(shard_text(PGHASH_INT4, "", 4) == -EINVAL);
	CHECK(shard_text(PGHASH_INT4, "-", 4) == -EINVAL);
	CHECK(shard_text(PGHASH_INT4, "4 2", 4) == -EINVAL);
	CHECK(shard_text(PGHASH_INT4, "42.0", 4) == -EINVAL);
	CHECK(shard_text(PGHASH_INT4, "0x2a", 4) == -EINVAL);
	CHECK(shard_text(PGHASH_INT4, "1_000", 4) == -EINVAL); /* PostgreSQL 16 only */
	CHECK(shard_text(PGHASH_INT4, "2147483647", 4) >= 0);
	CHECK(shard_text(PGHASH_INT4, "2147483648", 4) == -EINVAL);
	CHECK(shard_text(PGHASH_INT4, "-2147483648", 4) >= 0);
	CHECK(shard_text(PGHASH_INT4, "-2147483649", 4) == -EINVAL);
	CHECK(shard_text(PGHASH_INT2, "32768", 4) == -EINVAL);
	CHECK(shard_text(PGHASH_INT2, "-32769", 4) == -EINVAL);
	CHECK(shard_text(PGHASH_INT8, "9223372036854775808", 4) == -EINVAL);
	CHECK(shard_text(PGHASH_INT8, "-9223372036854775809", 4) == -EINVAL);
	CHECK(shard_text(PGHASH_INT8, "99999999999999999999999", 4) == -EINVAL);
	CHECK(shard_text(PGHASH_INT8, "00000000000000000000042", 4) == 2);
	/* uuid_in. */
	CHECK(shard_text(PGHASH_UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1", 4) == -EINVAL);
	CHECK(shard_text(PGHASH_UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111", 4) == -EINVAL);
	CHECK(shard_text(PGHASH_UUID, "a0eebc999-c0b-4ef8-bb6d-6bb9bd380a11", 4) == -EINVAL);
	CHECK(shard_text(PGHASH_UUID, "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", 4) == -EINVAL);
	CHECK(shard_text(PGHASH_UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", 4) == -EINVAL);
	CHECK(shard_text(PGHASH_UUID, " a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", 4) == -EINVAL);
	CHECK(shard_text(PGHASH_UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g", 4) == -EINVAL);
	CHECK(shard_text(PGHASH_UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-", 4) == -EINVAL);
	CHECK(shard_text(PGHASH_UUID, "a0-ee-bc-99", 4) == -EINVAL);
	/* Text: any bytes but NUL. */
	CHECK(pghash_shard_text(PGHASH_TEXT, "a\0b", 3, 4) == -EINVAL);
	/* No type, bad moduli. */
	CHECK(shard_text(PGHASH_UNKNOWN, "42", 4) == -EINVAL);
	CHECK(shard_text(PGHASH_INT4, "42", 0) == -EINVAL);
	CHECK(shard_text(PGHASH_INT4, "42", PGHASH_MAX_MODULUS + 1) == -EINVAL);
}

static void test_binary(void)
{
	static const unsigned char i2[] = { 0xff, 0xf9 };                                 /* -7 */
	static const unsigned char i4[] = { 0, 0, 0, 42 };
	static const unsigned char i8[] = { 0x80, 0, 0, 0, 0, 0, 0, 0 };                 /* INT64_MIN */
	static const unsigned char i8b[] = { 0, 0, 0, 1, 0x2a, 0x05, 0xf2, 0 };         /* 5000000000 */
	static const unsigned char u[] = { 0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8,
					   0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11 };
	CHECK(pghash_shard_binary(PGHASH_INT2, i2, 2, 4) == 2);
	CHECK(pghash_shard_binary(PGHASH_INT4, i4, 4, 4) == 2);
	CHECK(pghash_shard_binary(PGHASH_INT8, i8, 8, 64) == 63);
	CHECK(pghash_shard_binary(PGHASH_INT8, i8b, 8, 64) == 16);
	CHECK(pghash_shard_binary(PGHASH_UUID, u, 16, 7) == 6);
	CHECK(pghash_shard_binary(PGHASH_TEXT, "abc", 3, 4) == 1);
	CHECK(pghash_shard_binary(PGHASH_INT4, i4, 3, 4) == -EINVAL);
	CHECK(pghash_shard_binary(PGHASH_INT8, i4, 4, 4) == -EINVAL);
	CHECK(pghash_shard_binary(PGHASH_UUID, u, 15, 4) == -EINVAL);
}

static void test_names(void)
{
	CHECK(pghash_type_from_name("INTEGER") == PGHASH_INT4);
	CHECK(pghash_type_from_name("smallint") == PGHASH_INT2);
	CHECK(pghash_type_from_name("bigint") == PGHASH_INT8);
	CHECK(pghash_type_from_name("varchar") == PGHASH_TEXT);
	CHECK(pghash_type_from_name("uuid") == PGHASH_UUID);
	CHECK(pghash_type_from_name("numeric") == -1);
	CHECK(pghash_type_from_name("unknown") == -1);
	CHECK_STR(pghash_type_name(PGHASH_INT8), "int8");
	CHECK_STR(pghash_type_name(PGHASH_UNKNOWN), "unknown");
}

static int unhex(const char *h, unsigned char *out, size_t cap)
{
	size_t n = strlen(h);
	if (n % 2 || n / 2 > cap)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(h + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (unsigned char)v;
	}
	return (int)(n / 2);
}

/* The e2e test's oracle: see the header. */
static int answer_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		perror(path);
		return 2;
	}
	static char line[70000], type[32], form[4], hex[66000];
	static unsigned char val[33000];
	int modulus;
	while (fgets(line, sizeof(line), f)) {
		hex[0] = '\0';
		if (sscanf(line, "%31s %d %3s %65999s", type, &modulus, form, hex) < 3) {
			fprintf(stderr, "bad line: %s", line);
			return 2;
		}
		int n = unhex(hex, val, sizeof(val)), t = pghash_type_from_name(type), r = -EINVAL;
		if (n >= 0 && t >= 0)
			r = form[0] == 'b' ? pghash_shard_binary(t, val, (size_t)n, modulus)
					   : pghash_shard_text(t, (const char *)val, (size_t)n, modulus);
		if (r < 0)
			printf("error\n");
		else
			printf("%d\n", r);
	}
	fclose(f);
	return 0;
}

int main(void)
{
	const char *values = getenv("PGHASH_VALUES");
	if (values)
		return answer_file(values);
	test_hashes();
	test_shards();
	test_parse();
	test_binary();
	test_names();
	printf("%s: %d passed, %d failed\n", __FILE__, unit_passed, unit_failed);
	return unit_failed ? 1 : 0;
}
