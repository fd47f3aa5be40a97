/*
 * fuzz_pgframe.c - libFuzzer harness for the kernel fast path's framing
 * and Query text scan (src/bpf/pgframe.h), run in user space.
 *
 * Input: byte 0 = mode (bit 0: server direction, bit 1: tracking on),
 * byte 1 & 7 = k, then k chunk sizes (each byte + 1, used in turn until
 * the stream ends), then the stream. The stream is walked twice by a
 * driver shaped like bypass.bpf.c's client_step/server_step: once cut
 * into those chunks (the kernel sees skbs of any size) and once whole.
 * Both walks must see the same messages, the same ReadyForQuery status
 * bytes and the same error, and end in the same framing state; every
 * state in between must be one the kernel can store (hdr_len <= 5, no
 * body left while a header is incomplete, a body within PGF_MAX_LEN).
 * The whole walk must also match pg_msg_peek over the buffer.
 *
 * Verdicts: for every message header, pgf_client_verdict on the first
 * 0, 1 or 2 body bytes may only say OK when the whole body would (short
 * input must never make the kernel carry a named statement).
 *
 * Text scan: pgf_sql_needs_user on the stream, and on every Query text
 * in it, equals a plain reference: lower-case, then search each keyword.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "bpf/pgframe.h"
#include "fuzz.h"
#include "pg_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MSGS 2048

/* What one walk over a stream saw (same as tests/unit/test_pgframe.c). */
struct seen {
	uint8_t type[MAX_MSGS]; /* type byte of each message whose header completed */
	uint32_t len[MAX_MSGS]; /* its length field (counts itself) */
	size_t n;               /* messages seen (may exceed MAX_MSGS: then only counted) */
	uint8_t z[MAX_MSGS];    /* server: status byte of each ReadyForQuery */
	size_t nz;              /* status bytes seen */
	int bad;                /* 0; 1 framing error; 2 ReadyForQuery not of length 5 */
};

static void seen_msg(struct seen *s, uint8_t type, uint32_t len)
{
	if (s->n < MAX_MSGS) {
		s->type[s->n] = type;
		s->len[s->n] = len;
	}
	s->n++;
}

static void seen_z(struct seen *s, uint8_t st)
{
	if (s->nz < MAX_MSGS)
		s->z[s->nz] = st;
	s->nz++;
}

static bool seen_equal(const struct seen *a, const struct seen *b)
{
	size_t n = a->n < MAX_MSGS ? a->n : MAX_MSGS, nz = a->nz < MAX_MSGS ? a->nz : MAX_MSGS;
	return a->n == b->n && a->nz == b->nz && a->bad == b->bad && memcmp(a->type, b->type, n) == 0 &&
	       memcmp(a->len, b->len, n * sizeof(a->len[0])) == 0 && memcmp(a->z, b->z, nz) == 0;
}

/* A state the kernel may store between two skbs. */
static void check_state(const struct pgframe *f)
{
	FUZZ_CHECK(f->hdr_len <= 5);
	FUZZ_CHECK(f->bad == 0 || f->bad == 1);
	FUZZ_CHECK(pgf_hdr_need(f) <= 5);
	FUZZ_CHECK(pgf_hdr_need(f) == (f->hdr_len == 5 ? 0u : 5u - f->hdr_len));
	if (f->hdr_len < 5)
		FUZZ_CHECK(f->left == 0);
	FUZZ_CHECK(f->left <= PGF_MAX_LEN - 4);
	FUZZ_CHECK(pgf_at_boundary(f) == (f->hdr_len == 0 && f->left == 0));
}

/* One chunk, from the state the previous one left; stops at the first
 * error like the kernel, which then hands the pair to user space. */
static void drive_chunk(struct pgframe *f, struct seen *s, const uint8_t *p, uint32_t len, bool server)
{
	uint32_t off = 0;
	while (off < len && !s->bad) {
		check_state(f);
		if (f->hdr_len == 5) {
			if (server && f->type == 'Z' && f->left == 1)
				seen_z(s, p[off]);
			uint32_t before = f->left;
			uint32_t took = pgf_body(f, len - off);
			FUZZ_CHECK(took > 0); /* inside a body there is always a byte to take */
			FUZZ_CHECK(took <= len - off && took == before - f->left);
			FUZZ_CHECK((f->left == 0) == (f->hdr_len == 0));
			off += took;
			continue;
		}
		uint8_t had = f->hdr_len;
		int rc = pgf_hdr_byte(f, p[off++]);
		FUZZ_CHECK(rc == PGF_MORE || rc == PGF_HEADER || rc == PGF_BAD);
		FUZZ_CHECK(f->hdr_len == had + 1);
		FUZZ_CHECK((rc == PGF_MORE) == (had < 4));
		if (rc == PGF_BAD) {
			FUZZ_CHECK(f->bad == 1);
			uint32_t l = pg_get_u32(f->hdr + 1);
			FUZZ_CHECK(l < 4 || l > PGF_MAX_LEN);
			s->bad = 1;
			break;
		}
		FUZZ_CHECK(f->bad == 0);
		if (rc != PGF_HEADER)
			continue;
		FUZZ_CHECK(f->type == f->hdr[0] && f->left == pg_get_u32(f->hdr + 1) - 4);
		seen_msg(s, f->type, f->left + 4);
		if (server && f->type == 'Z' && f->left != 1) {
			s->bad = 2; /* server_step refuses it too */
			break;
		}
		pgf_finish_empty(f);
		FUZZ_CHECK(f->hdr_len == (f->left ? 5 : 0));
	}
	check_state(f);
}

/* pg_msg_peek over the whole buffer. Its limit is one byte lower than
 * PGF_MAX_LEN (PG_MSG_MAX_LEN = 1 GB - 1): a length of exactly
 * PGF_MAX_LEN is a header here, as it is for the kernel. */
static void reference(const uint8_t *p, uint32_t len, bool server, struct seen *s)
{
	uint32_t off = 0;
	memset(s, 0, sizeof(*s));
	for (;;) {
		struct pg_msg m;
		int rc = pg_msg_peek(p + off, len - off, &m);
		if (rc < 0 && pg_get_u32(p + off + 1) == PGF_MAX_LEN) {
			m.type = p[off];
			m.len = PGF_MAX_LEN + 1;
			m.body_len = PGF_MAX_LEN - 4;
			rc = 1;
		}
		if (rc < 0) {
			s->bad = 1;
			return;
		}
		if (rc == 0)
			return;
		seen_msg(s, m.type, m.len - 1);
		if (server && m.type == 'Z' && m.body_len != 1) {
			s->bad = 2;
			return;
		}
		if (m.len > len - off)
			return;
		if (server && m.type == 'Z')
			seen_z(s, p[off + 5]);
		off += m.len;
	}
}

/* Would the whole body let the kernel carry this client message? */
static bool verdict_spec_ok(uint8_t type, const uint8_t *b, uint32_t n)
{
	switch (type) {
	case 'P':
		return n >= 1 && b[0] == 0;
	case 'B':
		return n >= 2 && b[0] == 0 && b[1] == 0;
	case 'D': case 'C':
		return (n >= 1 && b[0] == 'P') || (n >= 2 && b[0] == 'S' && b[1] == 0);
	default:
		return pgf_client_verdict(type, b, 0, PGF_OPT_TRACKING) == PGF_OK;
	}
}

/* The first 0, 1 or 2 body bytes of a message never say more than the
 * whole body; more bytes never take an OK back. */
static void check_verdicts(uint8_t type, const uint8_t *body, uint32_t have, uint32_t body_len, uint32_t opts)
{
	int prev = PGF_USER;
	for (uint32_t n = 0; n <= 2 && n <= have && n <= body_len; n++) {
		int v = pgf_client_verdict(type, body, n, opts);
		FUZZ_CHECK(v == PGF_OK || v == PGF_USER);
		if (v == PGF_OK && (opts & PGF_OPT_TRACKING))
			FUZZ_CHECK(verdict_spec_ok(type, body, have < body_len ? have : body_len));
		if (prev == PGF_OK)
			FUZZ_CHECK(v == PGF_OK);
		prev = v;
		if (!(opts & PGF_OPT_TRACKING))
			FUZZ_CHECK(v == pgf_client_verdict(type, body, 0, PGF_OPT_SESSION));
	}
	int e = pgf_client_effect(type);
	FUZZ_CHECK(e == PGF_NONE || e == PGF_REQUEST || e == PGF_BATCH);
	int sv = pgf_server_verdict(type);
	FUZZ_CHECK(sv == PGF_OK || sv == PGF_USER);
}

/* The words pgf_sql_needs_user looks for anywhere, as plain substrings of
 * the text with every byte OR 0x20 (its rule: letters of either case;
 * '_' becomes 0x7f); the rolling window holds 8 bytes, so DEALLOCATE is
 * its first 8 letters and set_config "set_conf". */
static const char *const sql_words[] = {
	"listen", "temp", "hold", "prepare", "advisory", "discard", "dealloca", "set\x7f" "conf",
};
/* Statements it follows only where they begin the text. */
static const char *const sql_first_words[] = { "set", "reset", "do", "call", "load", "execute" };

static uint8_t lower_buf[PGF_SQL_MAX];

static bool is_word_byte(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c >= 0x80;
}

static int sql_reference(const uint8_t *s, uint32_t n)
{
	if (n > PGF_SQL_MAX)
		return 1;
	if (n && (s[0] == ' ' || s[0] == '\t' || s[0] == '\n' || s[0] == '\r' || s[0] == '(' || s[0] == '-' ||
		  s[0] == '/'))
		return 1; /* blanks, a comment or a parenthesis could hide the first word */
	for (size_t k = 0; k < sizeof(sql_first_words) / sizeof(sql_first_words[0]); k++) {
		size_t len = strlen(sql_first_words[k]);
		if (n >= len && strncasecmp((const char *)s, sql_first_words[k], len) == 0 &&
		    (n == len || !is_word_byte(s[len])))
			return 1;
	}
	for (uint32_t i = 0; i < n; i++)
		lower_buf[i] = (uint8_t)(s[i] | 0x20);
	for (size_t k = 0; k < sizeof(sql_words) / sizeof(sql_words[0]); k++)
		if (memmem(lower_buf, n, sql_words[k], strlen(sql_words[k])))
			return 1;
	/* A second statement: anything but blanks and ';' after a ';'. */
	const uint8_t *semi = memchr(s, ';', n);
	for (uint32_t i = semi ? (uint32_t)(semi - s) : n; i < n; i++)
		if (s[i] != ';' && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return 1;
	return 0;
}

static void check_sql(const uint8_t *s, uint32_t n)
{
	FUZZ_CHECK(pgf_sql_needs_user(s, n) == sql_reference(s, n));
}

static struct seen whole, chunked, ref; /* large: off the stack */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2 || size > (1u << 24))
		return 0;
	bool server = data[0] & 1;
	uint32_t opts = data[0] & 2 ? PGF_OPT_TRACKING : 0;
	size_t k = data[1] & 7;
	if (size < 2 + k)
		return 0;
	const uint8_t *sizes = data + 2;
	const uint8_t *p = data + 2 + k;
	uint32_t len = (uint32_t)(size - 2 - k);

	struct pgframe fw, fc;
	memset(&fw, 0, sizeof(fw));
	memset(&whole, 0, sizeof(whole));
	drive_chunk(&fw, &whole, p, len, server);

	memset(&fc, 0, sizeof(fc));
	memset(&chunked, 0, sizeof(chunked));
	uint32_t off = 0;
	for (size_t i = 0; off < len; i++) {
		uint32_t n = k ? (uint32_t)sizes[i % k] + 1 : len;
		if (n > len - off)
			n = len - off;
		drive_chunk(&fc, &chunked, p + off, n, server);
		off += n;
	}

	FUZZ_CHECK(seen_equal(&whole, &chunked));
	FUZZ_CHECK(fw.bad == fc.bad && fw.bad == (whole.bad == 1));
	if (!whole.bad) {
		/* a stopped walk's state is dropped, like the kernel's */
		FUZZ_CHECK(fw.left == fc.left && fw.hdr_len == fc.hdr_len);
		FUZZ_CHECK(memcmp(fw.hdr, fc.hdr, fw.hdr_len) == 0);
		if (fw.hdr_len == 5)
			FUZZ_CHECK(fw.type == fc.type);
	}

	reference(p, len, server, &ref);
	FUZZ_CHECK(seen_equal(&whole, &ref));

	/* verdicts and Query texts of every message whose header is in */
	off = 0;
	while (len - off >= 5) {
		uint32_t l = pg_get_u32(p + off + 1);
		if (l < 4 || l > PGF_MAX_LEN)
			break;
		uint32_t body_len = l - 4, have = len - off - 5;
		check_verdicts(p[off], p + off + 5, have, body_len, opts);
		if (p[off] == 'Q' && have >= body_len && body_len >= 1)
			check_sql(p + off + 5, body_len - 1);
		if (have < body_len)
			break;
		off += 5 + body_len;
	}
	check_sql(p, len);
	check_sql(data, (uint32_t)size);
	return 0;
}
