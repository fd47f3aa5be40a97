/*
 * test_pgframe.c - the kernel fast path's framing, verdicts and Query
 * text scan (src/bpf/pgframe.h), run in user space.
 *
 * Framing: a driver feeds a stream in chunks the way bypass.bpf.c's
 * client_step/server_step do (body bytes with pgf_body, header bytes one
 * by one with pgf_hdr_byte, pgf_finish_empty after an empty body, the
 * ReadyForQuery status byte read when it is the body's only byte left).
 * Wherever the chunks are cut, it must see the messages pg_msg_peek sees
 * on the whole buffer, and end in the state the whole buffer implies.
 *
 * Verdicts: table checks of what the kernel may carry. Query texts:
 * pgf_sql_needs_user must say yes for every text track_sql_pins pins and
 * for DISCARD ALL / DEALLOCATE (what track.c's classify_sql reacts to).
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bpf/pgframe.h"
#include "pg_proto.h"
#include "sqlinfo.h"
#include "unit.h"

#define MAX_MSGS 1024
#define MAX_STREAM (80 * 1024)

/* ---- the chunked driver and the whole-buffer reference ---------------- */

/* What one walk over a stream saw. */
struct seen {
	uint8_t type[MAX_MSGS]; /* type byte of each message whose header completed */
	uint32_t len[MAX_MSGS]; /* its length field (counts itself, not the type byte) */
	size_t n;               /* messages seen */
	uint8_t z[MAX_MSGS];    /* server: status byte of each ReadyForQuery, in order */
	size_t nz;              /* status bytes seen */
	int bad;                /* 0; 1 framing error; 2 ReadyForQuery not of length 5;
	                         * 3 (driver only) no progress inside a body */
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

/* One chunk (skb) of a stream, from the state the previous one left. Like
 * the kernel, it stops at the first error: the pair goes to user space. */
static void drive_chunk(struct pgframe *f, struct seen *s, const uint8_t *p, uint32_t len, bool server)
{
	uint32_t off = 0;
	while (off < len && !s->bad) {
		if (f->hdr_len == 5) {
			if (server && f->type == 'Z' && f->left == 1)
				seen_z(s, p[off]);
			uint32_t took = pgf_body(f, len - off);
			if (took == 0) {
				s->bad = 3; /* stuck inside a body: the kernel would spin */
				break;
			}
			off += took;
			continue;
		}
		int rc = pgf_hdr_byte(f, p[off++]);
		if (rc == PGF_BAD) {
			s->bad = 1;
			break;
		}
		if (rc != PGF_HEADER)
			continue;
		seen_msg(s, f->type, f->left + 4);
		if (server && f->type == 'Z' && f->left != 1) {
			s->bad = 2; /* server_step refuses it too */
			break;
		}
		pgf_finish_empty(f);
	}
}

/* The stream cut before each of cuts[0..ncuts) (ascending, may repeat or
 * be 0 or len: empty chunks are harmless). */
static void drive_cuts(const uint8_t *p, uint32_t len, bool server, const uint32_t *cuts, size_t ncuts,
		       struct pgframe *f, struct seen *s)
{
	uint32_t from = 0;
	memset(f, 0, sizeof(*f));
	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i <= ncuts; i++) {
		uint32_t to = i < ncuts ? cuts[i] : len;
		drive_chunk(f, s, p + from, to - from, server);
		from = to;
	}
}

/* pg_msg_peek over the whole buffer. Also says where the walk ended: the
 * framing state any driver must be in after the last byte. */
static void reference(const uint8_t *p, uint32_t len, bool server, struct seen *s, uint32_t *want_left,
		      uint8_t *want_hdr_len)
{
	uint32_t off = 0;
	memset(s, 0, sizeof(*s));
	*want_left = 0;
	*want_hdr_len = 0;
	for (;;) {
		struct pg_msg m;
		int rc = pg_msg_peek(p + off, len - off, &m);
		if (rc < 0) {
			s->bad = 1;
			return;
		}
		if (rc == 0) {
			*want_hdr_len = (uint8_t)(len - off);
			return;
		}
		seen_msg(s, m.type, m.len - 1);
		if (server && m.type == 'Z' && m.body_len != 1) {
			s->bad = 2;
			return;
		}
		if (m.len > len - off) {
			*want_hdr_len = 5;
			*want_left = m.len - (len - off);
			return;
		}
		if (server && m.type == 'Z')
			seen_z(s, m.body[0]);
		off += m.len;
	}
}

static bool seen_equal(const struct seen *a, const struct seen *b)
{
	if (a->n != b->n || a->nz != b->nz || a->bad != b->bad || a->n > MAX_MSGS || a->nz > MAX_MSGS)
		return false;
	return memcmp(a->type, b->type, a->n) == 0 && memcmp(a->len, b->len, a->n * sizeof(a->len[0])) == 0 &&
	       memcmp(a->z, b->z, a->nz) == 0;
}

static struct seen ref_seen, got_seen; /* large: kept off the stack */

/* One cut pattern against the reference (computed into ref_seen). */
static bool cuts_agree(const char *name, const uint8_t *p, uint32_t len, bool server, const uint32_t *cuts,
		       size_t ncuts, uint32_t want_left, uint8_t want_hdr_len)
{
	struct pgframe f;
	drive_cuts(p, len, server, cuts, ncuts, &f, &got_seen);
	bool ok = seen_equal(&got_seen, &ref_seen);
	if (ok && !ref_seen.bad)
		ok = f.left == want_left && f.hdr_len == want_hdr_len && !f.bad &&
		     pgf_at_boundary(&f) == (want_left == 0 && want_hdr_len == 0);
	if (ok && ref_seen.bad == 1)
		ok = f.bad == 1;
	if (!ok) {
		fprintf(stderr, "stream '%s' (%u bytes) cut at", name, len);
		for (size_t i = 0; i < ncuts; i++)
			fprintf(stderr, " %u", cuts[i]);
		fprintf(stderr, ": %zu msgs, %zu Z, bad %d, left %u, hdr_len %u (want %zu, %zu, %d, %u, %u)\n",
			got_seen.n, got_seen.nz, got_seen.bad, f.left, f.hdr_len, ref_seen.n, ref_seen.nz,
			ref_seen.bad, want_left, want_hdr_len);
	}
	return ok;
}

static uint32_t rng_state = 12345;

/* Fixed-seed generator: the same patterns on every run. */
static uint32_t rng(void)
{
	rng_state = rng_state * 1103515245u + 12345u;
	return rng_state >> 8;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Every single cut (every 97th on a long stream, but all near the ends),
 * one byte per chunk, and random patterns of 2..9 cuts. */
static void check_stream(const char *name, const uint8_t *p, uint32_t len, bool server)
{
	uint32_t want_left;
	uint8_t want_hdr_len;
	uint32_t cuts[16];
	reference(p, len, server, &ref_seen, &want_left, &want_hdr_len);

	for (uint32_t k = 0; k <= len; k++) {
		if (len > 8192 && k > 64 && k + 64 < len && k % 97)
			continue;
		cuts[0] = k;
		CHECK(cuts_agree(name, p, len, server, cuts, 1, want_left, want_hdr_len));
	}
	for (int i = 0; i < 64; i++) {
		size_t n = 2 + rng() % 8;
		for (size_t j = 0; j < n; j++)
			cuts[j] = rng() % (len + 1);
		qsort(cuts, n, sizeof(cuts[0]), cmp_u32);
		CHECK(cuts_agree(name, p, len, server, cuts, n, want_left, want_hdr_len));
	}
	if (len <= 8192) {
		static uint32_t every[8193];
		for (uint32_t k = 0; k < len; k++)
			every[k] = k + 1;
		CHECK(cuts_agree(name, p, len, server, every, len, want_left, want_hdr_len));
	}
}

/* ---- streams ------------------------------------------------------------ */

/* A stream under construction, and the messages it was built from. */
struct stream {
	uint8_t b[MAX_STREAM];  /* the bytes */
	uint32_t len;           /* bytes used */
	struct seen want;       /* messages and ReadyForQuery statuses appended */
};

static struct stream st;

#define LIT(s) (const uint8_t *)(s), sizeof(s) - 1

static void stream_reset(void)
{
	memset(&st.want, 0, sizeof(st.want));
	st.len = 0;
}

static void put(uint8_t type, const uint8_t *body, uint32_t n)
{
	if (st.len + 5 + n > sizeof(st.b)) {
		fprintf(stderr, "test stream too long\n");
		abort();
	}
	st.b[st.len] = type;
	pg_put_u32(st.b + st.len + 1, n + 4);
	if (n)
		memcpy(st.b + st.len + 5, body, n);
	st.len += 5 + n;
	seen_msg(&st.want, type, n + 4);
	if (type == 'Z' && n == 1)
		seen_z(&st.want, body[0]);
}

/* The built stream: the reference must read back what was built, then
 * every cut pattern must agree with it; so must the stream cut short. */
static void check_built(const char *name, bool server)
{
	uint32_t left;
	uint8_t hl;
	reference(st.b, st.len, server, &ref_seen, &left, &hl);
	CHECK(seen_equal(&ref_seen, &st.want) && left == 0 && hl == 0);
	check_stream(name, st.b, st.len, server);
	if (st.len > 3) {
		check_stream(name, st.b, st.len - 1, server);
		check_stream(name, st.b, st.len - 3, server);
	}
}

static void unnamed_batch(const char *bindval)
{
	put('P', LIT("\0SELECT abalance FROM pgbench_accounts WHERE aid = $1\0\0\0"));
	uint8_t bind[64] = { 0, 0, 0, 0, 0, 1 };
	uint32_t vl = (uint32_t)strlen(bindval);
	pg_put_u32(bind + 6, vl);
	memcpy(bind + 10, bindval, vl);
	bind[10 + vl] = 0;
	bind[11 + vl] = 0;
	put('B', bind, 12 + vl);
	put('D', LIT("P\0"));
	put('E', LIT("\0\0\0\0\0"));
}

static void test_client_streams(void)
{
	stream_reset();
	put('Q', LIT("SELECT abalance FROM pgbench_accounts WHERE aid = 42;\0"));
	check_built("simple query", false);

	stream_reset();
	unnamed_batch("42");
	put('S', NULL, 0);
	check_built("extended batch", false);

	stream_reset();
	unnamed_batch("1");
	unnamed_batch("2");
	unnamed_batch("3");
	put('S', NULL, 0);
	put('Q', LIT("BEGIN;\0"));
	unnamed_batch("4");
	put('H', NULL, 0);
	put('S', NULL, 0);
	check_built("pipelined batches", false);

	stream_reset();
	put('Q', LIT("BEGIN;\0"));
	put('Q', LIT("UPDATE pgbench_tellers SET tbalance = tbalance + 1 WHERE tid = 3;\0"));
	put('Q', LIT("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 2, 3, 4, CURRENT_TIMESTAMP);\0"));
	put('Q', LIT("END;\0"));
	check_built("pipelined queries", false);

	stream_reset();
	put('Q', LIT("COPY t FROM STDIN\0"));
	for (int i = 0; i < 5; i++)
		put('d', LIT("1\t2\n"));
	uint8_t row[300];
	memset(row, 'x', sizeof(row)); /* length field 304: two non-zero bytes */
	put('d', row, sizeof(row));
	put('c', NULL, 0);
	put('Q', LIT("COPY t FROM STDIN\0"));
	put('d', LIT("3\t4\n"));
	put('f', LIT("no more\0"));
	check_built("copy in", false);

	stream_reset();
	put('S', NULL, 0);
	put('S', NULL, 0);
	put('H', NULL, 0);
	put('c', NULL, 0);
	put('S', NULL, 0);
	put('X', NULL, 0);
	check_built("empty bodies", false);

	stream_reset();
	put('P', LIT("s1\0SELECT 1\0\0\0"));
	put('B', LIT("\0s1\0\0\0\0\0\0\0"));
	put('D', LIT("Ss1\0"));
	put('C', LIT("Ss1\0"));
	put('S', NULL, 0);
	check_built("named statements", false);

	/* A body over 64 KiB: the length's third byte is set too. */
	static uint8_t big[70000];
	memset(big, 'a', sizeof(big));
	memcpy(big, "SELECT '", 8);
	memcpy(big + sizeof(big) - 3, "';", 2);
	big[sizeof(big) - 1] = 0;
	stream_reset();
	put('Q', big, sizeof(big));
	put('S', NULL, 0);
	check_built("long query", false);
}

static void test_server_streams(void)
{
	static const uint8_t rowdesc[] = "\0\1abalance\0\0\0\0\0\0\0\0\0\0\27\0\4\377\377\377\377\0\0";

	stream_reset();
	put('T', rowdesc, sizeof(rowdesc) - 1);
	put('D', LIT("\0\1\0\0\0\0042345"));
	put('C', LIT("SELECT 1\0"));
	put('Z', LIT("I"));
	check_built("query answer", true);

	stream_reset();
	put('T', rowdesc, sizeof(rowdesc) - 1);
	for (int i = 0; i < 200; i++)
		put('D', LIT("\0\1\0\0\0\3-17"));
	put('C', LIT("SELECT 200\0"));
	put('Z', LIT("I"));
	check_built("data rows", true);

	stream_reset();
	put('1', NULL, 0);
	put('2', NULL, 0);
	put('T', rowdesc, sizeof(rowdesc) - 1);
	put('D', LIT("\0\1\0\0\0\0011"));
	put('C', LIT("SELECT 1\0"));
	put('Z', LIT("T"));
	put('1', NULL, 0);
	put('2', NULL, 0);
	put('n', NULL, 0);
	put('s', NULL, 0);
	put('3', NULL, 0);
	put('I', NULL, 0);
	put('Z', LIT("T"));
	put('C', LIT("COMMIT\0"));
	put('Z', LIT("I"));
	check_built("extended answers", true);

	stream_reset();
	put('H', LIT("\0\0\1\0\0"));
	put('d', LIT("1\t2\n"));
	put('d', LIT("3\t4\n"));
	put('c', NULL, 0);
	put('C', LIT("COPY 2\0"));
	put('Z', LIT("I"));
	check_built("copy out", true);

	stream_reset();
	put('N', LIT("SNOTICE\0C00000\0Mhello\0\0"));
	put('A', LIT("\0\0\0\1chan\0payload\0"));
	put('E', LIT("SERROR\0C42P01\0Mrelation does not exist\0\0"));
	put('Z', LIT("E"));
	put('Z', LIT("I"));
	check_built("notice, notification, error", true);

	stream_reset();
	put('Z', LIT("I"));
	check_built("ReadyForQuery alone", true);
}

/* ---- framing errors ----------------------------------------------------- */

static void feed_header(struct pgframe *f, uint8_t type, uint32_t len, int *rc)
{
	uint8_t h[5] = { type };
	pg_put_u32(h + 1, len);
	for (int i = 0; i < 5; i++)
		rc[i] = pgf_hdr_byte(f, h[i]);
}

static void test_framing_edges(void)
{
	static const uint32_t bad_lens[] = { 0, 1, 2, 3, PGF_MAX_LEN + 1, 0x7fffffffu, 0x80000000u, 0xffffffffu };
	struct pgframe f;
	int rc[5];

	for (size_t i = 0; i < sizeof(bad_lens) / sizeof(bad_lens[0]); i++) {
		memset(&f, 0, sizeof(f));
		feed_header(&f, 'Q', bad_lens[i], rc);
		CHECK(rc[0] == PGF_MORE && rc[1] == PGF_MORE && rc[2] == PGF_MORE && rc[3] == PGF_MORE);
		CHECK(rc[4] == PGF_BAD && f.bad == 1);
		CHECK(!pgf_at_boundary(&f));
		/* more header bytes are refused; nothing clears the flag */
		CHECK(pgf_hdr_byte(&f, 'Q') == PGF_BAD && f.bad == 1);
		pgf_finish_empty(&f);
		pgf_body(&f, 10);
		CHECK(f.bad == 1);
	}

	/* the limits themselves are lengths a message may have */
	memset(&f, 0, sizeof(f));
	feed_header(&f, 'D', PGF_MAX_LEN, rc);
	CHECK(rc[4] == PGF_HEADER && f.type == 'D' && f.left == PGF_MAX_LEN - 4 && !f.bad);
	CHECK(pgf_body(&f, 0xffffffffu) == PGF_MAX_LEN - 4 && pgf_at_boundary(&f));
	memset(&f, 0, sizeof(f));
	feed_header(&f, 'S', 4, rc);
	CHECK(rc[4] == PGF_HEADER && f.left == 0 && f.hdr_len == 5 && !pgf_at_boundary(&f));
	pgf_finish_empty(&f);
	CHECK(pgf_at_boundary(&f));

	/* a header cut after 1..4 bytes: the rest comes in the next skb */
	for (uint8_t k = 1; k <= 4; k++) {
		static const uint8_t q[] = { 'Q', 0, 0, 0, 13, 's', 'e', 'l', 'e', 'c', 't', ' ', '1', 0 };
		memset(&f, 0, sizeof(f));
		for (uint8_t i = 0; i < k; i++)
			CHECK(pgf_hdr_byte(&f, q[i]) == PGF_MORE);
		CHECK(f.hdr_len == k && f.left == 0 && pgf_hdr_need(&f) == 5u - k && !pgf_at_boundary(&f));
		for (uint8_t i = k; i < 4; i++)
			CHECK(pgf_hdr_byte(&f, q[i]) == PGF_MORE);
		CHECK(pgf_hdr_byte(&f, q[4]) == PGF_HEADER && f.type == 'Q' && f.left == 9);
		CHECK(pgf_hdr_need(&f) == 0);
		CHECK(pgf_body(&f, 4) == 4 && f.left == 5 && f.hdr_len == 5);
		CHECK(pgf_body(&f, 100) == 5 && pgf_at_boundary(&f));
	}

	/* ReadyForQuery whose status byte is the first byte of the next skb */
	static const uint8_t z[] = { 'Z', 0, 0, 0, 5, 'T' };
	struct seen s;
	memset(&f, 0, sizeof(f));
	memset(&s, 0, sizeof(s));
	drive_chunk(&f, &s, z, 5, true);
	CHECK(s.n == 1 && s.nz == 0 && f.hdr_len == 5 && f.left == 1);
	drive_chunk(&f, &s, z + 5, 1, true);
	CHECK(s.nz == 1 && s.z[0] == 'T' && pgf_at_boundary(&f));

	/* a bad header after good messages, and a ReadyForQuery of the wrong
	 * length on the server side: stops there at every cut */
	stream_reset();
	put('Q', LIT("SELECT 1;\0"));
	put('S', NULL, 0);
	memcpy(st.b + st.len, "Q\0\0\0\3SELECT", 11);
	check_stream("bad length", st.b, st.len + 11, false);
	CHECK(ref_seen.bad == 1 && ref_seen.n == 2);
	stream_reset();
	put('C', LIT("SELECT 1\0"));
	put('Z', LIT("II"));
	put('Z', LIT("I"));
	check_stream("ReadyForQuery of 6", st.b, st.len, true);
	CHECK(ref_seen.bad == 2 && ref_seen.n == 2);
}

/* ---- verdicts ----------------------------------------------------------- */

static void test_client_verdict(void)
{
	static const uint8_t zero[2] = { 0, 0 };
	static const uint8_t simple[] = "QSFEHdcf";
	for (const uint8_t *t = simple; *t; t++) {
		CHECK(pgf_client_verdict(*t, zero, 0, 0) == PGF_OK);
		CHECK(pgf_client_verdict(*t, zero, 0, PGF_OPT_TRACKING) == PGF_OK);
		CHECK(pgf_client_verdict(*t, zero, 0, PGF_OPT_SESSION) == PGF_OK);
	}
	/* without tracking no name matters */
	static const uint8_t ext[] = "PBDC";
	for (const uint8_t *t = ext; *t; t++) {
		CHECK(pgf_client_verdict(*t, (const uint8_t *)"xy", 2, 0) == PGF_OK);
		CHECK(pgf_client_verdict(*t, zero, 0, 0) == PGF_OK);
	}
	/* the unnamed statement outlives a transaction: with PGF_OPT_SQL its
	 * Bind or Describe stays in the kernel only after this client's own
	 * Parse on the link; Close of it, and Parse, always pass */
	CHECK(pgf_client_verdict('B', zero, 2, PGF_OPT_SQL) == PGF_USER);
	CHECK(pgf_client_verdict('B', zero, 2, PGF_OPT_SQL | PGF_OPT_OWN_UNNAMED) == PGF_OK);
	CHECK(pgf_client_verdict('D', (const uint8_t *)"S\0", 2, PGF_OPT_SQL) == PGF_USER);
	CHECK(pgf_client_verdict('D', (const uint8_t *)"S\0", 2, PGF_OPT_SQL | PGF_OPT_OWN_UNNAMED) == PGF_OK);
	CHECK(pgf_client_verdict('D', (const uint8_t *)"P\0", 2, PGF_OPT_SQL) == PGF_OK);
	CHECK(pgf_client_verdict('C', (const uint8_t *)"S\0", 2, PGF_OPT_SQL) == PGF_OK);
	CHECK(pgf_client_verdict('P', zero, 1, PGF_OPT_SQL) == PGF_OK);
	CHECK(pgf_client_verdict('B', (const uint8_t *)"p\0", 2, PGF_OPT_SQL) == PGF_USER); /* statement unseen */
	CHECK(pgf_client_verdict('B', (const uint8_t *)"\0s", 2, PGF_OPT_SQL) == PGF_OK);  /* named: no renames */
	CHECK(pgf_client_unnamed_effect('P', zero, 1) == 1);
	CHECK(pgf_client_unnamed_effect('P', (const uint8_t *)"s", 1) == -1);
	CHECK(pgf_client_unnamed_effect('Q', zero, 0) == 0);
	CHECK(pgf_client_unnamed_effect('C', (const uint8_t *)"S\0", 2) == 0);
	CHECK(pgf_client_unnamed_effect('C', (const uint8_t *)"P\0", 2) == -1);
	CHECK(pgf_client_unnamed_effect('B', zero, 2) == -1);

	/* Terminate, password/SASL, copy-both, and bytes that are no type */
	static const uint8_t never[] = { 'X', 'p', 'Z', 'T', 'A', 'K', 'R', 'W', 'G', 0, 0xff };
	for (size_t i = 0; i < sizeof(never); i++) {
		CHECK(pgf_client_verdict(never[i], zero, 2, 0) == PGF_USER);
		CHECK(pgf_client_verdict(never[i], zero, 2, PGF_OPT_TRACKING) == PGF_USER);
	}

	/* tracking: the statement name decides; a name not yet seen is not "" */
	struct { uint8_t type; const char *first; uint32_t n; int want; } cases[] = {
		{ 'P', "\0\0", 2, PGF_OK },    /* unnamed statement */
		{ 'P', "\0S", 1, PGF_OK },
		{ 'P', "\0\0", 0, PGF_USER },  /* name byte not in this skb */
		{ 'P', "s1", 2, PGF_USER },
		{ 'P', "s\0", 1, PGF_USER },
		{ 'B', "\0\0", 2, PGF_OK },    /* unnamed portal, unnamed statement */
		{ 'B', "\0\0", 1, PGF_USER },  /* statement name byte still to come */
		{ 'B', "\0\0", 0, PGF_USER },
		{ 'B', "\0s", 2, PGF_USER },   /* named statement */
		{ 'B', "p\0", 2, PGF_USER },   /* named portal: first name not "" */
		{ 'D', "P\0", 2, PGF_OK },     /* portals are not tracked */
		{ 'D', "Pp", 2, PGF_OK },
		{ 'D', "P\0", 1, PGF_OK },
		{ 'D', "S\0", 2, PGF_OK },     /* unnamed statement */
		{ 'D', "S\0", 1, PGF_USER },
		{ 'D', "Ss", 2, PGF_USER },
		{ 'D', "P\0", 0, PGF_USER },
		{ 'D', "X\0", 2, PGF_USER },   /* neither 'S' nor 'P' */
		{ 'C', "P\0", 1, PGF_OK },
		{ 'C', "S\0", 2, PGF_OK },
		{ 'C', "S\0", 1, PGF_USER },
		{ 'C', "Ss", 2, PGF_USER },
		{ 'C', "\0\0", 0, PGF_USER },
		{ 'C', "\0\0", 2, PGF_USER },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = pgf_client_verdict(cases[i].type, (const uint8_t *)cases[i].first, cases[i].n,
					     PGF_OPT_TRACKING);
		int got2 = pgf_client_verdict(cases[i].type, (const uint8_t *)cases[i].first, cases[i].n,
					      PGF_OPT_TRACKING | PGF_OPT_SESSION);
		if (got != cases[i].want || got2 != cases[i].want)
			fprintf(stderr, "verdict case %zu ('%c', n %u): got %d/%d\n", i, cases[i].type, cases[i].n,
				got, got2);
		CHECK(got == cases[i].want && got2 == cases[i].want);
	}
}

static void test_client_effect(void)
{
	static const char request[] = "QSF", batch[] = "PBDCE", none[] = "HdcfXp";
	for (const char *t = request; *t; t++)
		CHECK(pgf_client_effect((uint8_t)*t) == PGF_REQUEST);
	for (const char *t = batch; *t; t++)
		CHECK(pgf_client_effect((uint8_t)*t) == PGF_BATCH);
	for (const char *t = none; *t; t++)
		CHECK(pgf_client_effect((uint8_t)*t) == PGF_NONE);
	CHECK(pgf_client_effect(0) == PGF_NONE && pgf_client_effect(0xff) == PGF_NONE);
}

/* The kernel's note of the latest Execute/Query and the Syncs since. */
static void test_copy_note(void)
{
	struct pgf_copy cp = { 0 };
	/* libpq: Parse, Bind, Execute, Sync, then the data and CopyDone */
	for (const char *t = "PBES"; *t; t++)
		CHECK(pgf_copy_note(&cp, (uint8_t)*t) == PGF_OK);
	CHECK(cp.flags == PGF_CP_STARTED && cp.syncs == 1);
	for (const char *t = "dddHc"; *t; t++)
		CHECK(pgf_copy_note(&cp, (uint8_t)*t) == PGF_OK);
	CHECK(cp.flags == (PGF_CP_STARTED | PGF_CP_ENDED) && cp.end_syncs == 1);
	CHECK(pgf_copy_note(&cp, 'S') == PGF_OK && cp.syncs == 2 && cp.end_syncs == 1);
	/* a second CopyDone does not move the end */
	CHECK(pgf_copy_note(&cp, 'c') == PGF_OK && cp.end_syncs == 1);
	/* any request behind the end goes to sluice, the note unchanged */
	for (const char *t = "PBDCEQF"; *t; t++) {
		struct pgf_copy before = cp;
		CHECK(pgf_copy_note(&cp, (uint8_t)*t) == PGF_USER);
		CHECK(memcmp(&before, &cp, sizeof(cp)) == 0);
	}
	/* a simple Query starts afresh; a request before its end mixes in */
	cp = (struct pgf_copy){ 0 };
	CHECK(pgf_copy_note(&cp, 'Q') == PGF_OK && cp.flags == (PGF_CP_STARTED | PGF_CP_QUERY) && cp.syncs == 0);
	CHECK(pgf_copy_note(&cp, 'P') == PGF_OK && (cp.flags & PGF_CP_MIXED));
	CHECK(pgf_copy_note(&cp, 'E') == PGF_OK && cp.flags == PGF_CP_STARTED);
	/* the count saturates */
	cp.syncs = 0xffffu;
	CHECK(pgf_copy_note(&cp, 'S') == PGF_OK && cp.syncs == 0xffffu);
}

static void test_server_verdict(void)
{
	static const char ok[] = "123ACDINTVZnstHWdc";
	for (const char *t = ok; *t; t++)
		CHECK(pgf_server_verdict((uint8_t)*t) == PGF_OK);
	/* ParameterStatus, ErrorResponse, CopyInResponse (sluice counts the
	 * Syncs inside the copy), authentication, BackendKeyData,
	 * NegotiateProtocolVersion, and bytes that are no type */
	static const uint8_t user[] = { 'S', 'E', 'G', 'R', 'K', 'v', 'X', 'Q', 0, 0xff };
	for (size_t i = 0; i < sizeof(user); i++)
		CHECK(pgf_server_verdict(user[i]) == PGF_USER);
}

/* ---- Query texts -------------------------------------------------------- */

static int needs_user(const char *s)
{
	return pgf_sql_needs_user((const uint8_t *)s, (uint32_t)strlen(s));
}

/* What sluice reacts to in a Query text (its own screen, sqlinfo.c):
 * pgf_sql_needs_user must catch all of it. */
static bool user_space_reacts(const char *s)
{
	return sql_worth_parsing(s, strlen(s));
}

static void test_sql_words(void)
{
	static const char *const yes[] = {
		"listen chan", "LISTEN chan", "LiStEn chan", "select 1; listen", "x listen",
		"create temp table t (a int)", "CREATE TEMPORARY TABLE t (a int)", "temp", "x TEMP",
		"declare c cursor with hold for select 1", "HOLD", "xhold",
		"prepare q as select 1", "PREPARE", "PrEpArE q", "a prepare",
		"select pg_advisory_lock(1)", "SELECT PG_TRY_ADVISORY_LOCK(1)", "advisory", "ADVISORY",
		"discard all", "DISCARD ALL", "Discard", "x; discard",
		"deallocate q", "DEALLOCATE ALL", "DEALLOCATE PREPARE q", "deallocate", "DeAlLoCaTe",
		"select 'listening'", "select tempo", "-- hold\nselect 1", "select \"Temp\"",
		"dealloca", /* the window is 8 bytes: "dealloca" stands for "deallocate" */
		"set work_mem = '8MB'", "SET x TO 1", " reset all", "select 1;set a=1", "do $$ $$",
		"CALL p()", "load 'x'", "execute p", "/* c */ update t set a = 1", "-- c\nselect 1",
		"select set_config('a', 'b', false)", "(set x)",
	};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (needs_user(yes[i]) != 1)
			fprintf(stderr, "sql '%s': kernel would carry it\n", yes[i]);
		CHECK(needs_user(yes[i]) == 1);
	}
	static const char *const no[] = {
		"SELECT abalance FROM pgbench_accounts WHERE aid = 42;",
		"UPDATE pgbench_tellers SET tbalance = tbalance + 1 WHERE tid = 3;",
		"UPDATE pgbench_accounts SET abalance = abalance + -2345 WHERE aid = 1;",
		"UPDATE pgbench_branches SET bbalance = bbalance + 7 WHERE bid = 1;",
		"BEGIN;", "END;", "COMMIT", "ROLLBACK", "",
		"INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 2, 3, 4, CURRENT_TIMESTAMP);",
		"select 1", "select lis ten, te mp, ho ld, discar d", "select 1 offset 2", "select settings",
		"select listed, tamp, held, prepped", "dealloc", "advisor",
	};
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		if (needs_user(no[i]) != 0)
			fprintf(stderr, "sql '%s': sent to user space\n", no[i]);
		CHECK(needs_user(no[i]) == 0);
	}

	/* n is the text: bytes past it are not looked at */
	CHECK(pgf_sql_needs_user((const uint8_t *)"select 1 listen", 14) == 0);
	CHECK(pgf_sql_needs_user((const uint8_t *)"select 1 listen", 15) == 1);
	CHECK(pgf_sql_needs_user((const uint8_t *)"listen", 0) == 0);
	/* NUL bytes inside are text too (the kernel scans q_len bytes) */
	CHECK(pgf_sql_needs_user((const uint8_t *)"select 1\0 hold", 14) == 1);
	CHECK(pgf_sql_needs_user((const uint8_t *)"tem\0p", 5) == 0);

	/* length limit: PGF_SQL_MAX bytes are scanned to the last one, one
	 * more is user space unseen */
	static uint8_t text[PGF_SQL_MAX + 2];
	memset(text, ' ', sizeof(text));
	memcpy(text, "select 1", 8);
	CHECK(pgf_sql_needs_user(text, PGF_SQL_MAX) == 0);
	CHECK(pgf_sql_needs_user(text, PGF_SQL_MAX + 1) == 1);
	CHECK(pgf_sql_needs_user(text, 0xffffffffu) == 1);
	memcpy(text + PGF_SQL_MAX - 8, "advisory", 8);
	CHECK(pgf_sql_needs_user(text, PGF_SQL_MAX) == 1);
	CHECK(pgf_sql_needs_user(text, PGF_SQL_MAX - 1) == 0);
	memcpy(text + PGF_SQL_MAX - 8, "        ", 8);
	memcpy(text, "Listen", 6);
	CHECK(pgf_sql_needs_user(text, PGF_SQL_MAX) == 1);
}

/* track_sql_pins(text) (or DISCARD / DEALLOCATE first) implies
 * pgf_sql_needs_user(text): hand-written texts, then random ones built
 * from keywords, near misses and separators. */
static void test_sql_conservative(void)
{
	static const char *const texts[] = {
		"select pg_advisory_lock(1)", "SELECT PG_TRY_ADVISORY_LOCK_SHARED(1)", "select pg_advisory_xact_lock(1)",
		"LISTEN chan", "create temp table t (a int)", "CREATE TEMPORARY TABLE t (a int)",
		"declare c cursor with hold for select 1", "PREPARE q AS select 1", "DEALLOCATE PREPARE q",
		"deallocate prepare q; prepare r as select 1", "select 1", "select listening from t",
		"set work_mem = '8MB'", "update accounts set balance = balance - 1", "  discard all",
		"DISCARD PLANS", "(deallocate)", "\"listen\"", "select 1;LISTEN x", "pg_advisory_lock_shared",
		"CREATE GLOBAL TEMPORARY TABLE x()", "select * from t for update; hold", "TEMP", "Temporary",
	};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		bool ok = !user_space_reacts(texts[i]) || needs_user(texts[i]);
		if (!ok)
			fprintf(stderr, "sql '%s': user space reacts, kernel would carry it\n", texts[i]);
		CHECK(ok);
	}

	static const char *const words[] = {
		"select", "SELECT", "from", "t", "1", "x_y", "all", "ALL", "listen", "LISTEN", "Listen",
		"temp", "TEMP", "temporary", "Temporary", "hold", "HoLd", "prepare", "PREPARE", "deallocate",
		"DEALLOCATE", "discard", "Discard", "pg_advisory_lock", "PG_TRY_ADVISORY_LOCK",
		"pg_try_advisory_lock_shared", "pg_advisory_xact_lock", "tempo", "holding", "listener",
		"prepared", "lis", "ten", "dis", "card", "pg_", "advisory", "\xc3\xa9t\xc3\xa9",
		"set", "SET", "Reset", "reset", "do", "DO", "call", "load", "execute", "EXECUTE",
		"set_config", "pg_temp", "update", "offset", "settings", "dot", "--", "/*", "*/",
	};
	static const char *const seps[] = { " ", "", "(", ",", ";", "\n", "\"", "'", "_", "\t", "$1", "." };
	size_t nw = sizeof(words) / sizeof(words[0]), ns = sizeof(seps) / sizeof(seps[0]);
	int reacted = 0, violations = 0;
	char text[512];
	for (int i = 0; i < 20000; i++) {
		size_t len = 0, parts = 1 + rng() % 6;
		text[0] = 0;
		for (size_t j = 0; j < parts; j++) {
			const char *sep = seps[rng() % ns], *w = words[rng() % nw];
			len += (size_t)snprintf(text + len, sizeof(text) - len, "%s%s", sep, w);
		}
		if (!user_space_reacts(text))
			continue;
		reacted++;
		if (!needs_user(text) && violations++ == 0)
			fprintf(stderr, "sql '%s': user space reacts, kernel would carry it\n", text);
	}
	CHECK(violations == 0);
	CHECK(reacted > 1000); /* the generator does reach the keywords */
}

UNIT_MAIN(
	test_client_streams();
	test_server_streams();
	test_framing_edges();
	test_client_verdict();
	test_client_effect();
	test_copy_note();
	test_server_verdict();
	test_sql_words();
	test_sql_conservative();
)
