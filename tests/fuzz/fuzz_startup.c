/*
 * fuzz_startup.c - libFuzzer harness for pg_fe_startup_parse (src/pg/pg_proto.c),
 * the first thing sluice parses from an unauthenticated client.
 *
 * Invariants checked beyond memory safety (ASan/UBSan):
 * - a positive return is a packet length <= the input, >= 8, <= PG_STARTUP_MAX;
 * - every name/value pointer lies inside that packet and its NUL does too;
 * - pg_startup_get finds what the parser stored and nothing else;
 * - for protocol 3.x, rebuilding the packet with pg_fe_startup and parsing
 *   it again gives the same parameters (builder and parser agree).
 * The input is copied to an exact-size heap block of the packet length, so
 * any read past the packet is an ASan report rather than a silent overread
 * into the fuzzer's buffer.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "iobuf.h"
#include "pg_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* p..p+len holds s and its terminating NUL. */
static int in_range(const uint8_t *p, size_t len, const char *s)
{
	const uint8_t *q = (const uint8_t *)s;

	if (q < p || q >= p + len)
		return 0;
	return memchr(q, '\0', (size_t)(p + len - q)) != NULL;
}

static void check_params(const uint8_t *p, size_t len, const struct pg_startup *st)
{
	FUZZ_CHECK(st->n_params >= 0 && st->n_params <= PG_STARTUP_MAX_PARAMS);
	for (int i = 0; i < st->n_params; i++) {
		FUZZ_CHECK(in_range(p, len, st->names[i]));
		FUZZ_CHECK(in_range(p, len, st->values[i]));
		FUZZ_CHECK(st->names[i][0] != '\0');
	}
}

static void check_lookups(const struct pg_startup *st)
{
	static const char *const names[] = {
		"user", "database", "application_name", "options", "replication",
		"client_encoding", "", "x",
	};

	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
		const char *v = pg_startup_get(st, names[k]);
		int want = -1;

		for (int i = 0; i < st->n_params; i++)
			if (strcmp(st->names[i], names[k]) == 0) {
				want = i;
				break;
			}
		if (want < 0)
			FUZZ_CHECK(v == NULL);
		else
			FUZZ_CHECK(v == st->values[want]);
	}
	/* every stored name is found (first occurrence wins) */
	for (int i = 0; i < st->n_params; i++)
		FUZZ_CHECK(pg_startup_get(st, st->names[i]) != NULL);
}

/* Builder/parser agreement for a protocol 3 packet. */
static void check_rebuild(const struct pg_startup *st)
{
	struct iobuf out = { 0 };
	struct pg_startup again;
	int rc;

	rc = pg_fe_startup(&out, st->names, st->values, st->n_params);
	FUZZ_CHECK(rc == 0);
	uint32_t n = iobuf_len(&out);
	uint8_t *copy = malloc(n);
	FUZZ_CHECK(copy != NULL);
	memcpy(copy, iobuf_head(&out), n);
	rc = pg_fe_startup_parse(copy, n, &again);
	FUZZ_CHECK(rc == (int)n);
	FUZZ_CHECK(again.code == PG_PROTOCOL_3_0);
	FUZZ_CHECK(again.n_params == st->n_params);
	for (int i = 0; i < st->n_params; i++) {
		FUZZ_CHECK(strcmp(again.names[i], st->names[i]) == 0);
		FUZZ_CHECK(strcmp(again.values[i], st->values[i]) == 0);
	}
	free(copy);
	iobuf_release(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pg_startup st;
	uint8_t *buf;
	int rc;

	/* Copy so the block ends exactly where the input does. */
	buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	if (size)
		memcpy(buf, data, size);

	rc = pg_fe_startup_parse(buf, size, &st);
	FUZZ_CHECK(rc == 0 || rc == -EPROTO || rc > 0);
	if (rc > 0) {
		size_t len = (size_t)rc;

		FUZZ_CHECK(len <= size && len >= 8 && len <= PG_STARTUP_MAX);
		FUZZ_CHECK(len == pg_get_u32(buf));
		FUZZ_CHECK(st.code == pg_get_u32(buf + 4));
		if (st.code == PG_CANCEL_REQUEST)
			FUZZ_CHECK(len == 16);
		if (st.code == PG_SSL_REQUEST || st.code == PG_GSSENC_REQUEST)
			FUZZ_CHECK(len == 8);
		check_params(buf, len, &st);
		check_lookups(&st);
		if (st.code >> 16 == 3)
			check_rebuild(&st);
		else
			FUZZ_CHECK(st.n_params == 0);

		/* A proxy parses the packet again from a buffer of exactly its
		 * length: the answer must not depend on bytes after it. */
		uint8_t *exact = malloc(len);
		struct pg_startup st2;
		FUZZ_CHECK(exact != NULL);
		memcpy(exact, buf, len);
		FUZZ_CHECK(pg_fe_startup_parse(exact, len, &st2) == rc);
		FUZZ_CHECK(st2.n_params == st.n_params);
		free(exact);
	} else if (rc == 0) {
		/* "need more" only when the packet really is not all there */
		FUZZ_CHECK(size < 8 || size < pg_get_u32(buf));
	}
	free(buf);
	return 0;
}
