/*
 * fuzz_framer.c - libFuzzer harness for message framing and body readers
 * (src/pg/pg_proto.c): pg_msg_peek over a byte stream the way a proxy walks
 * its receive buffer, then pg_be_error_parse ('E'/'N'), pg_be_param_parse
 * ('S') and the pg_reader field readers over every complete body.
 *
 * Each complete body is copied into its own exact-size heap block, so a
 * read past the body is an ASan report instead of a silent read of the
 * next message. The readers are checked against a shadow cursor kept here:
 * p only moves forward by exactly what a successful read consumed, never
 * past end, a failed read consumes nothing and returns 0 / "" / NULL, and
 * err, once set, stays set (sticky: callers check it once at the end).
 * A body that parses is rebuilt with pg_be_error / pg_be_param_status,
 * framed and parsed again: builder and parser must agree on the fields.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "iobuf.h"
#include "pg_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* s is the static "" or a string that starts and ends inside body. */
static int str_ok(const uint8_t *body, size_t len, const char *s)
{
	const uint8_t *q = (const uint8_t *)s;

	if (q >= body && q < body + len)
		return memchr(q, '\0', (size_t)(body + len - q)) != NULL;
	return s[0] == '\0';
}

/* Build one message with build(), frame it again and return its body in
 * an exact-size block (caller frees), or NULL when the builder failed. */
static uint8_t *reframe(struct iobuf *out, uint8_t type, uint32_t *body_len)
{
	struct pg_msg m;
	uint8_t *copy;

	FUZZ_CHECK(pg_msg_peek(iobuf_head(out), iobuf_len(out), &m) == 1);
	FUZZ_CHECK(m.type == type && m.len == iobuf_len(out));
	copy = malloc(m.body_len ? m.body_len : 1);
	FUZZ_CHECK(copy != NULL);
	memcpy(copy, m.body, m.body_len);
	*body_len = m.body_len;
	return copy;
}

static void check_error_fields(const uint8_t *body, size_t len)
{
	struct pg_error_fields f, g;
	struct iobuf out = { 0 };
	uint32_t n;
	int rc = pg_be_error_parse(body, len, &f);

	FUZZ_CHECK(rc == 0 || rc == -EPROTO);
	FUZZ_CHECK(f.severity && f.code && f.message);
	FUZZ_CHECK(str_ok(body, len, f.severity));
	FUZZ_CHECK(str_ok(body, len, f.code));
	FUZZ_CHECK(str_ok(body, len, f.message));
	if (rc < 0)
		return;
	/* builder and parser agree: what we send a client parses back */
	FUZZ_CHECK(pg_be_error(&out, f.severity, f.code, f.message) == 0);
	uint8_t *again = reframe(&out, 'E', &n);
	FUZZ_CHECK(pg_be_error_parse(again, n, &g) == 0);
	FUZZ_CHECK(strcmp(f.severity, g.severity) == 0 && strcmp(f.code, g.code) == 0 &&
		   strcmp(f.message, g.message) == 0);
	free(again);
	iobuf_release(&out);
}

static void check_param(const uint8_t *body, size_t len)
{
	const char *name = NULL, *value = NULL;
	int rc = pg_be_param_parse(body, len, &name, &value);

	FUZZ_CHECK(rc == 0 || rc == -EPROTO);
	FUZZ_CHECK(name && value);
	if (rc == 0) {
		struct iobuf out = { 0 };
		const char *n2, *v2;
		uint32_t n;

		FUZZ_CHECK((const uint8_t *)name == body);
		FUZZ_CHECK(str_ok(body, len, name) && str_ok(body, len, value));
		FUZZ_CHECK(value == name + strlen(name) + 1);
		FUZZ_CHECK(pg_be_param_status(&out, name, value) == 0);
		uint8_t *again = reframe(&out, 'S', &n);
		FUZZ_CHECK(pg_be_param_parse(again, n, &n2, &v2) == 0);
		FUZZ_CHECK(strcmp(name, n2) == 0 && strcmp(value, v2) == 0);
		free(again);
		iobuf_release(&out);
	}
}

/* Drive the readers with a schedule taken from the body itself (first
 * byte picks the op of each step), checking every result against a shadow
 * offset. Also run a second schedule that starts with an over-long read to
 * exercise the sticky flag from the very first call. */
static void check_readers(const uint8_t *body, size_t len, uint8_t seed)
{
	struct pg_reader r;
	size_t off = 0;
	bool err = false;
	uint8_t sel = seed;

	pg_reader_init(&r, body, len);
	FUZZ_CHECK(r.p == body && r.end == body + len && !r.err);
	for (int step = 0; step < 64; step++) {
		size_t left = len - off;
		const uint8_t *before = r.p;

		switch (sel % 5) {
		case 0: {
			uint8_t v = pg_read_u8(&r);
			if (left >= 1) {
				FUZZ_CHECK(v == body[off]);
				off += 1;
			} else {
				FUZZ_CHECK(v == 0);
				err = true;
			}
			break;
		}
		case 1: {
			uint16_t v = pg_read_u16(&r);
			if (left >= 2) {
				FUZZ_CHECK(v == pg_get_u16(body + off));
				off += 2;
			} else {
				FUZZ_CHECK(v == 0);
				err = true;
			}
			break;
		}
		case 2: {
			uint32_t v = pg_read_u32(&r);
			if (left >= 4) {
				FUZZ_CHECK(v == pg_get_u32(body + off));
				off += 4;
			} else {
				FUZZ_CHECK(v == 0);
				err = true;
			}
			break;
		}
		case 3: {
			const char *s = pg_read_str(&r);
			const uint8_t *nul = left ? memchr(body + off, '\0', left) : NULL;
			if (nul) {
				FUZZ_CHECK((const uint8_t *)s == body + off);
				off = (size_t)(nul - body) + 1;
			} else {
				FUZZ_CHECK(s && s[0] == '\0');
				err = true;
			}
			break;
		}
		case 4: {
			/* lengths around what is left, and a huge one */
			size_t n = (sel >> 3) == 31 ? SIZE_MAX : (size_t)(sel >> 3) % 9;
			const uint8_t *b = pg_read_bytes(&r, n);
			if (n <= left) {
				FUZZ_CHECK(b == body + off);
				off += n;
			} else {
				FUZZ_CHECK(b == NULL);
				err = true;
			}
			break;
		}
		}
		FUZZ_CHECK(r.p == body + off);
		FUZZ_CHECK(r.p >= before && r.p <= r.end);
		FUZZ_CHECK(r.end == body + len);
		FUZZ_CHECK(r.err == err);
		/* next op comes from the byte just read past (or a mix) */
		sel = (uint8_t)(sel * 31 + (off < len ? body[off] : step) + 7);
	}

	/* sticky from the first call: an impossible read, then valid ones */
	pg_reader_init(&r, body, len);
	FUZZ_CHECK(pg_read_bytes(&r, len + 1) == NULL && r.err && r.p == body);
	if (len >= 1) {
		FUZZ_CHECK(pg_read_u8(&r) == body[0]);
		FUZZ_CHECK(r.err);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	int msgs = 0;

	for (;;) {
		struct pg_msg m;
		size_t avail = size - off;
		int rc = pg_msg_peek(data + off, avail, &m);

		FUZZ_CHECK(rc == 0 || rc == 1 || rc == -EPROTO);
		if (rc == 0) {
			FUZZ_CHECK(avail < 5);
			break;
		}
		if (rc < 0) {
			uint32_t l = pg_get_u32(data + off + 1);
			FUZZ_CHECK(l < 4 || l > PG_MSG_MAX_LEN);
			break;
		}
		FUZZ_CHECK(m.type == data[off]);
		FUZZ_CHECK(m.len >= 5 && m.len <= PG_MSG_MAX_LEN + 1);
		FUZZ_CHECK(m.body_len == m.len - 5);
		FUZZ_CHECK(m.body == data + off + 5);
		if (m.len > avail)
			break; /* incomplete: a proxy waits for more bytes */

		/* body in its own block of exactly body_len bytes (1 when empty,
		 * so the pointer is valid but any dereference of it is not) */
		uint8_t *body = malloc(m.body_len ? m.body_len : 1);
		FUZZ_CHECK(body != NULL);
		memcpy(body, m.body, m.body_len);
		if (m.type == 'E' || m.type == 'N')
			check_error_fields(body, m.body_len);
		else if (m.type == 'S')
			check_param(body, m.body_len);
		check_readers(body, m.body_len, (uint8_t)(m.type ^ msgs));
		free(body);

		off += m.len;
		FUZZ_CHECK(off <= size);
		msgs++;
	}
	return 0;
}
