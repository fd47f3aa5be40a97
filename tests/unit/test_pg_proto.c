/*
 * test_pg_proto.c - the protocol codec (pg_proto), the prepared statement
 * helpers (prepared), the expect queue and the pin detector: pure
 * functions, tested on byte strings.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "expect.h"
#include "pg_proto.h"
#include "prepared.h"
#include "track.h"
#include "unit.h"

/* Build a startup packet from a body (after the length). */
static size_t startup(uint8_t *out, uint32_t code, const char *body, size_t body_len)
{
	pg_put_u32(out, (uint32_t)(8 + body_len));
	pg_put_u32(out + 4, code);
	memcpy(out + 8, body, body_len);
	return 8 + body_len;
}

static void test_startup(void)
{
	uint8_t buf[16384];
	struct pg_startup st;
	size_t n;

	/* valid, with two parameters */
	static const char body[] = "user\0alice\0database\0db1\0";
	n = startup(buf, PG_PROTOCOL_3_0, body, sizeof(body));
	CHECK(pg_fe_startup_parse(buf, n, &st) == (int)n);
	CHECK(st.n_params == 2);
	CHECK_STR(pg_startup_get(&st, "user"), "alice");
	CHECK_STR(pg_startup_get(&st, "database"), "db1");
	CHECK(pg_startup_get(&st, "options") == NULL);

	/* every prefix is "need more", never an error or a read past the end */
	for (size_t i = 0; i < n; i++)
		CHECK(pg_fe_startup_parse(buf, i, &st) == 0);

	/* SSLRequest, GSSENCRequest, CancelRequest */
	n = startup(buf, PG_SSL_REQUEST, "", 0);
	CHECK(pg_fe_startup_parse(buf, n, &st) == 8 && st.code == PG_SSL_REQUEST);
	n = startup(buf, PG_GSSENC_REQUEST, "", 0);
	CHECK(pg_fe_startup_parse(buf, n, &st) == 8 && st.code == PG_GSSENC_REQUEST);
	n = startup(buf, PG_CANCEL_REQUEST, "\0\0\0\7\0\0\0\11", 8);
	CHECK(pg_fe_startup_parse(buf, n, &st) == 16);
	CHECK(st.cancel_pid == 7 && st.cancel_key == 9);

	/* table of malformed packets: all refused */
	struct { const char *name; uint32_t len; uint32_t code; const char *body; size_t blen; } bad[] = {
		{ "length 0", 0, PG_PROTOCOL_3_0, "", 0 },
		{ "length 4", 4, PG_PROTOCOL_3_0, "", 0 },
		{ "length 7", 7, PG_PROTOCOL_3_0, "", 0 },
		{ "too long", PG_STARTUP_MAX + 1, PG_PROTOCOL_3_0, "", 0 },
		{ "negative", 0xffffffffu, PG_PROTOCOL_3_0, "", 0 },
		{ "no terminator", 0, PG_PROTOCOL_3_0, "user\0bob", 8 },
		{ "value missing", 0, PG_PROTOCOL_3_0, "user\0\0", 6 },
		{ "empty name", 0, PG_PROTOCOL_3_0, "\0x\0\0", 4 },
		{ "no parameters", 0, PG_PROTOCOL_3_0, "", 0 },
		{ "ssl with body", 0, PG_SSL_REQUEST, "abcd", 4 },
		{ "cancel too short", 0, PG_CANCEL_REQUEST, "\0\0\0\1", 4 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = startup(buf, bad[i].code, bad[i].body, bad[i].blen);
		if (bad[i].len)
			pg_put_u32(buf, bad[i].len);
		size_t avail = n > sizeof(buf) ? sizeof(buf) : n;
		int rc = pg_fe_startup_parse(buf, avail, &st);
		if (rc != -EPROTO)
			fprintf(stderr, "startup case '%s' gave %d\n", bad[i].name, rc);
		CHECK(rc == -EPROTO);
	}
	/* a bad length is refused as soon as the 4 length bytes are in */
	pg_put_u32(buf, 3);
	CHECK(pg_fe_startup_parse(buf, 4, &st) == -EPROTO);

	/* too many parameters */
	size_t off = 0;
	char many[4096];
	for (int i = 0; i < PG_STARTUP_MAX_PARAMS + 1; i++)
		off += (size_t)sprintf(many + off, "p%d", i) + 1, many[off++] = 'v', many[off++] = '\0';
	many[off++] = '\0';
	n = startup(buf, PG_PROTOCOL_3_0, many, off);
	CHECK(pg_fe_startup_parse(buf, n, &st) == -EPROTO);

	/* protocol 2.0 parses (the caller refuses the version) */
	n = startup(buf, 2u << 16, "", 0);
	CHECK(pg_fe_startup_parse(buf, n, &st) == 8 && st.code >> 16 == 2);
}

static void test_framing(void)
{
	struct pg_msg m;
	uint8_t q[] = { 'Q', 0, 0, 0, 13, 's', 'e', 'l', 'e', 'c', 't', ' ', '1', 0 };
	CHECK(pg_msg_peek(q, sizeof(q), &m) == 1);
	CHECK(m.type == 'Q' && m.len == 14 && m.body_len == 9 && m.body == q + 5);
	for (size_t i = 0; i < 5; i++)
		CHECK(pg_msg_peek(q, i, &m) == 0);
	CHECK(pg_msg_peek(q, 5, &m) == 1); /* header alone says the length */

	struct { uint32_t len; int want; } cases[] = {
		{ 0, -EPROTO }, { 3, -EPROTO }, { 4, 1 }, { PG_MSG_MAX_LEN, 1 },
		{ PG_MSG_MAX_LEN + 1, -EPROTO }, { 0x7fffffffu, -EPROTO }, { 0xffffffffu, -EPROTO },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t h[5] = { 'D' };
		pg_put_u32(h + 1, cases[i].len);
		CHECK(pg_msg_peek(h, 5, &m) == cases[i].want);
	}
}

static void test_readers(void)
{
	uint8_t body[] = { 1, 0, 2, 0, 0, 0, 3, 'h', 'i', 0, 'x' };
	struct pg_reader r;
	pg_reader_init(&r, body, sizeof(body));
	CHECK(pg_read_u8(&r) == 1);
	CHECK(pg_read_u16(&r) == 2);
	CHECK(pg_read_u32(&r) == 3);
	CHECK_STR(pg_read_str(&r), "hi");
	CHECK(!r.err);
	CHECK_STR(pg_read_str(&r), ""); /* "x" has no terminator */
	CHECK(r.err);
	CHECK(pg_read_u32(&r) == 0 && r.err); /* sticky */
	pg_reader_init(&r, body, 1);
	CHECK(pg_read_bytes(&r, 2) == NULL && r.err);
}

static void test_errors_and_params(void)
{
	struct pg_error_fields f;
	static const uint8_t full[] = "SERROR\0VERROR\0C22012\0Mdivision by zero\0";
	CHECK(pg_be_error_parse(full, sizeof(full), &f) == 0);
	CHECK_STR(f.severity, "ERROR");
	CHECK_STR(f.code, "22012");
	CHECK_STR(f.message, "division by zero");
	/* a hostile server's ErrorResponse without fields */
	CHECK(pg_be_error_parse((const uint8_t *)"", 0, &f) == -EPROTO);
	CHECK_STR(f.code, "");
	CHECK_STR(f.message, "");
	static const uint8_t unterminated[] = { 'M', 'a', 'b' };
	CHECK(pg_be_error_parse(unterminated, sizeof(unterminated), &f) == -EPROTO);

	const char *name, *value;
	static const uint8_t ps[] = "TimeZone\0UTC\0";
	CHECK(pg_be_param_parse(ps, sizeof(ps) - 1, &name, &value) == 0);
	CHECK_STR(name, "TimeZone");
	CHECK_STR(value, "UTC");
	CHECK(pg_be_param_parse((const uint8_t *)"TimeZone", 8, &name, &value) == -EPROTO);
}

static void test_builders(void)
{
	struct iobuf b = { 0 };
	struct pg_msg m;
	struct pg_error_fields f;

	CHECK(pg_be_error(&b, "FATAL", "28P01", "password authentication failed") == 0);
	CHECK(pg_msg_peek(iobuf_head(&b), iobuf_len(&b), &m) == 1);
	CHECK(m.type == 'E' && m.len == iobuf_len(&b));
	CHECK(pg_be_error_parse(m.body, m.body_len, &f) == 0);
	CHECK_STR(f.code, "28P01");
	iobuf_consume(&b, m.len);

	CHECK(pg_be_ready(&b, 'T') == 0);
	CHECK(iobuf_len(&b) == 6 && memcmp(iobuf_head(&b), "Z\0\0\0\5T", 6) == 0);
	iobuf_consume(&b, 6);

	const char *names[] = { "user", "database" }, *values[] = { "u", "d" };
	CHECK(pg_fe_startup(&b, names, values, 2) == 0);
	struct pg_startup st;
	CHECK(pg_fe_startup_parse(iobuf_head(&b), iobuf_len(&b), &st) == (int)iobuf_len(&b));
	CHECK_STR(pg_startup_get(&st, "database"), "d");
	iobuf_release(&b);

	/* several messages in a row: lengths stay right when the buffer grows */
	char big[3000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	for (int i = 0; i < 40; i++)
		CHECK(pg_be_param_status(&b, "application_name", big) == 0);
	uint32_t off = 0;
	int count = 0;
	while (off < iobuf_len(&b) && pg_msg_peek(iobuf_head(&b) + off, iobuf_len(&b) - off, &m) == 1) {
		CHECK(m.type == 'S' && m.len == 1 + 4 + 17 + sizeof(big));
		off += m.len;
		count++;
	}
	CHECK(count == 40 && off == iobuf_len(&b));
	iobuf_release(&b);

	uint8_t cancel[16];
	pg_fe_cancel(cancel, 11, 22);
	CHECK(pg_get_u32(cancel) == 16 && pg_get_u32(cancel + 4) == PG_CANCEL_REQUEST);
	CHECK(pg_get_u32(cancel + 8) == 11 && pg_get_u32(cancel + 12) == 22);
}

static void test_prepared_helpers(void)
{
	/* Parse body: name, query, 1 parameter type (int4 = 23) */
	static const uint8_t parse[] = "s1\0select $1\0\0\1\0\0\0\x17";
	const char *name;
	struct pstmt_def d, d2;
	CHECK(pstmt_parse_msg(parse, sizeof(parse) - 1, &name, &d) == 0);
	CHECK_STR(name, "s1");
	CHECK_STR(d.query, "select $1");
	CHECK(d.n_types == 1 && d.types[0] == 23);
	CHECK(pstmt_parse_msg(parse, 8, &name, &d2) == -EPROTO);

	struct client_stmts cm = { 0 };
	struct server_stmts sc = { 0 };
	CHECK(pstmt_def_copy(&d2, &d) == 0);
	CHECK(client_stmts_add(&cm, "s1", &d2, NULL) == 0);
	CHECK(client_stmts_find(&cm, "s1") != NULL);
	CHECK(client_stmts_find(&cm, "s2") == NULL);
	struct server_stmt *e = server_stmts_add(&sc, &d);
	CHECK(e && e->id == 1);
	CHECK(server_stmts_find(&sc, &client_stmts_find(&cm, "s1")->def) == e);
	struct server_stmt *e2 = server_stmts_add(&sc, &d);
	CHECK(e2 && e2->id == 2);
	CHECK(server_stmts_lru(&sc)->id == 1);
	server_stmts_remove_id(&sc, 1);
	CHECK(server_stmts_find_id(&sc, 1) == NULL && sc.n == 1);
	server_stmts_clear(&sc);
	CHECK(sc.n == 0 && sc.next_id == 2); /* names are never reused */

	/* Bind rewrite keeps the portal and everything after the name */
	static const uint8_t bind[] = "p\0s1\0\0\0\0\1\0\0\0\1" "7\0\0";
	struct iobuf b = { 0 };
	CHECK_STR(pstmt_bind_stmt_name(bind, sizeof(bind) - 1), "s1");
	CHECK(pstmt_build_bind(&b, 5, bind, sizeof(bind) - 1) == 0);
	struct pg_msg m;
	CHECK(pg_msg_peek(iobuf_head(&b), iobuf_len(&b), &m) == 1 && m.type == 'B');
	CHECK_STR((const char *)m.body, "p");
	CHECK_STR((const char *)m.body + 2, "sluice_5");
	CHECK(m.body_len == 2 + 9 + (sizeof(bind) - 1 - 5));
	CHECK(memcmp(m.body + 11, bind + 5, sizeof(bind) - 1 - 5) == 0);
	iobuf_release(&b);

	CHECK(client_stmts_remove(&cm, "s1", NULL));
	CHECK(!client_stmts_remove(&cm, "s1", NULL));
	client_stmts_clear(&cm);
	pstmt_def_free(&d);
}

struct opts_seen {
	int n;
	char text[512];
};

static int collect_option(void *ctx, const char *name, const char *value)
{
	struct opts_seen *o = ctx;
	size_t len = strlen(o->text);
	snprintf(o->text + len, sizeof(o->text) - len, "%s%s=%s", o->n++ ? "|" : "", name, value);
	return 0;
}

/* The "options" startup parameter, split as PostgreSQL does. */
static void test_options_parse(void)
{
	static const struct { const char *in; int rc; const char *want; } cases[] = {
		{ "", 0, "" },
		{ "-c a=1", 0, "a=1" },
		{ "  -c a=1   -cb=2\t--c-d=x=y ", 0, "a=1|b=2|c_d=x=y" },
		{ "-c search_path=a\\ b", 0, "search_path=a b" },
		{ "-c a=\\\\", 0, "a=\\" },
		{ "-c a=", 0, "a=" },
		{ "-c", -EINVAL, "-c" },
		{ "-c =1", -EINVAL, "=1" },
		{ "-d 5", -EINVAL, "-d" },
		{ "--single", -EINVAL, "single" },
		{ "-c a=1 stray", -EINVAL, "stray" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct opts_seen o = { 0, "" };
		char bad[64] = "";
		int rc = pg_options_parse(cases[i].in, collect_option, &o, bad, sizeof(bad));
		CHECK(rc == cases[i].rc);
		CHECK_STR(rc == 0 ? o.text : bad, cases[i].want);
	}
}

static void test_expect_queue(void)
{
	struct expect_queue q = { 0 };
	for (uint32_t i = 0; i < 100; i++)
		CHECK(expect_push(&q, (struct expect){ .kind = EXPECT_BIND, .id = i }) == 0);
	for (uint32_t i = 0; i < 50; i++) {
		CHECK(expect_head(&q)->id == i);
		expect_pop(&q);
	}
	for (uint32_t i = 100; i < 300; i++) /* wraps and grows */
		CHECK(expect_push(&q, (struct expect){ .kind = EXPECT_SYNC, .id = i }) == 0);
	for (uint32_t i = 50; i < 300; i++) {
		CHECK(!expect_empty(&q) && expect_head(&q)->id == i);
		expect_pop(&q);
	}
	CHECK(expect_empty(&q));
	expect_free(&q);
}

/* Bind bodies read through: names, parameters by number, result formats. */
static void test_bind_read(void)
{
	/* portal "p", statement "s", formats {0, 1}, params '42', NULL, '' , results {1} */
	static const uint8_t body[] = { 'p', 0, 's', 0, 0, 2, 0, 0, 0, 1, 0, 3, 0, 0, 0, 2, '4', '2',
					0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1, 0, 1 };
	struct pg_bind b;
	CHECK(pg_bind_read(body, sizeof(body), &b) == 0);
	CHECK_STR(b.portal, "p");
	CHECK_STR(b.stmt, "s");
	CHECK(b.args_at == 4 && b.n_params == 3 && b.n_results == 1 && pg_get_u16(b.results) == 1);
	int fmt;
	const uint8_t *v;
	int32_t len;
	CHECK(pg_bind_param(&b, 1, &fmt, &v, &len) == 0 && fmt == 0 && len == 2 && memcmp(v, "42", 2) == 0);
	CHECK(pg_bind_param(&b, 2, &fmt, &v, &len) == 0 && fmt == 1 && len == -1);
	CHECK(pg_bind_param(&b, 3, &fmt, &v, &len) == 0 && fmt == 0 && len == 0);
	CHECK(pg_bind_param(&b, 4, &fmt, &v, &len) < 0 && pg_bind_param(&b, 0, &fmt, &v, &len) < 0);
	/* One format code for all; a body cut short is not a Bind. */
	static const uint8_t one[] = { 0, 0, 0, 1, 0, 1, 0, 1, 0, 0, 0, 1, 'x', 0, 0 };
	CHECK(pg_bind_read(one, sizeof(one), &b) == 0);
	CHECK(pg_bind_param(&b, 1, &fmt, &v, &len) == 0 && fmt == 1 && len == 1 && v[0] == 'x');
	CHECK(pg_bind_read(body, sizeof(body) - 3, &b) < 0);
}

UNIT_MAIN(
	test_bind_read();
	test_startup();
	test_framing();
	test_readers();
	test_errors_and_params();
	test_builders();
	test_prepared_helpers();
	test_expect_queue();
	test_options_parse();
)
