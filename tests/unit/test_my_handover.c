/*
 * test_my_handover.c - a MySQL client's state for the new process in an
 * online restart (my_handover.c): what one process writes, the next reads
 * back whole; records a reader does not know are skipped, unless marked
 * as state the client relies on (MY_HO_MUST); anything cut short or out
 * of bounds is refused.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "my_conn.h"
#include "my_handover.h"
#include "takeover.h"
#include "unit.h"

static struct my_client *fresh(void) { return calloc(1, sizeof(struct my_client)); }

static void release(struct my_client *c)
{
	iobuf_release(&c->sock.rbuf);
	free(c);
}

/* A client as my_login and my_server leave one. */
static struct my_client *sample(void)
{
	struct my_client *c = fresh();
	snprintf(c->user, sizeof(c->user), "app");
	snprintf(c->db, sizeof(c->db), "mydb");
	snprintf(c->peer, sizeof(c->peer), "10.0.0.7:51234");
	c->caps = MY_CLIENT_PROTOCOL_41 | MY_CLIENT_DEPRECATE_EOF | MY_CLIENT_MULTI_STATEMENTS;
	c->charset = 45;
	c->cancel_pid = 0x1234567;
	snprintf(c->schema, sizeof(c->schema), "otherdb");
	c->autocommit_off = true;
	c->login = MY_LOGIN_DONE;
	return c;
}

static void enc_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void test_round_trip(void)
{
	struct my_client *c = sample();
	/* half a command the client sent just before the handover */
	static const uint8_t half[] = { 0x09, 0, 0, 0, 0x03, 'S', 'E' };
	CHECK(iobuf_append(&c->sock.rbuf, half, sizeof(half)) == 0);
	struct takeover_enc e = { 0 };
	CHECK(my_handover_encode(c, &e) == 0);
	struct my_client *d = fresh();
	char why[120] = "";
	CHECK(my_handover_decode(d, e.p, (uint32_t)e.len, why, sizeof(why)) == 0);
	CHECK_STR(d->user, "app");
	CHECK_STR(d->db, "mydb");
	CHECK_STR(d->peer, "10.0.0.7:51234");
	CHECK(d->caps == c->caps);
	CHECK(d->charset == 45);
	CHECK(d->cancel_pid == 0x1234567 && d->cancel_key == 0);
	CHECK_STR(d->schema, "otherdb");
	CHECK(d->autocommit_off);
	CHECK(iobuf_len(&d->sock.rbuf) == sizeof(half) &&
	      memcmp(iobuf_head(&d->sock.rbuf), half, sizeof(half)) == 0);
	/* autocommit on and no schema travel too */
	c->autocommit_off = false;
	c->schema[0] = '\0';
	iobuf_consume(&c->sock.rbuf, iobuf_len(&c->sock.rbuf));
	struct takeover_enc e2 = { 0 };
	CHECK(my_handover_encode(c, &e2) == 0);
	struct my_client *d2 = fresh();
	CHECK(my_handover_decode(d2, e2.p, (uint32_t)e2.len, why, sizeof(why)) == 0);
	CHECK(!d2->autocommit_off && d2->schema[0] == '\0' && iobuf_len(&d2->sock.rbuf) == 0);
	/* every cut short of the whole is refused (a record or the version
	 * cut in two), but for cuts that end between records after the login */
	for (size_t n = 0; n < e.len; n++) {
		struct my_client *t = fresh();
		int rc = my_handover_decode(t, e.p, (uint32_t)n, why, sizeof(why));
		CHECK(rc == 0 || rc == -EPROTO);
		release(t);
	}
	struct my_client *t = fresh();
	CHECK(my_handover_decode(t, e.p, 4, why, sizeof(why)) == -EPROTO); /* version alone: no login */
	release(t);
	t = fresh();
	CHECK(my_handover_decode(t, e.p, 11, why, sizeof(why)) == -EPROTO); /* inside the login */
	release(t);
	free(e.p);
	free(e2.p);
	release(c);
	release(d);
	release(d2);
}

/* The state with one record appended: tag, then its bytes. */
static uint8_t *with_record(const struct takeover_enc *e, uint32_t tag, const uint8_t *v, uint32_t n, uint32_t *len)
{
	uint8_t *p = malloc(e->len + 8 + n);
	memcpy(p, e->p, e->len);
	enc_u32(p + e->len, tag);
	enc_u32(p + e->len + 4, n);
	memcpy(p + e->len + 8, v, n);
	*len = (uint32_t)e->len + 8 + n;
	return p;
}

static void test_records_a_reader_does_not_know(void)
{
	struct my_client *c = sample();
	struct takeover_enc e = { 0 };
	CHECK(my_handover_encode(c, &e) == 0);
	static const uint8_t v[] = { 1, 2, 3 };
	static const struct {
		uint32_t tag;
		int want;
	} cases[] = {
		{ 0x00007777, 0 },       /* a newer sluice's optional record: skipped */
		{ 0x80007777, -EPROTO }, /* a newer sluice's state the client relies on */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint32_t len;
		uint8_t *p = with_record(&e, cases[i].tag, v, sizeof(v), &len);
		struct my_client *d = fresh();
		char why[120] = "";
		CHECK(my_handover_decode(d, p, len, why, sizeof(why)) == cases[i].want);
		if (cases[i].want == 0)
			CHECK_STR(d->schema, "otherdb");
		else
			CHECK(strstr(why, "does not know") != NULL);
		release(d);
		free(p);
	}
	/* a known record that a newer sluice made longer: the rest is ignored */
	uint8_t ac[8] = { 0 };
	enc_u32(ac, 0);          /* autocommit on */
	enc_u32(ac + 4, 0xabcd); /* something newer */
	uint32_t len;
	uint8_t *p = with_record(&e, 4 | 0x80000000u, ac, sizeof(ac), &len);
	struct my_client *d = fresh();
	char why[120];
	CHECK(my_handover_decode(d, p, len, why, sizeof(why)) == 0);
	CHECK(!d->autocommit_off);
	release(d);
	free(p);
	/* a record longer than what is left */
	p = with_record(&e, 0x00007777, v, sizeof(v), &len);
	enc_u32(p + e.len + 4, 1000);
	d = fresh();
	CHECK(my_handover_decode(d, p, len, why, sizeof(why)) == -EPROTO);
	release(d);
	free(p);
	/* another format version */
	p = malloc(e.len);
	memcpy(p, e.p, e.len);
	enc_u32(p, 2);
	d = fresh();
	CHECK(my_handover_decode(d, p, (uint32_t)e.len, why, sizeof(why)) == -EPROTO);
	release(d);
	free(p);
	free(e.p);
	release(c);
}

static void test_strings_out_of_bounds(void)
{
	/* A schema longer than the field: refused, never cut. */
	struct takeover_enc e = { 0 };
	takeover_enc_u32(&e, 1);
	struct takeover_enc login = { 0 };
	takeover_enc_str(&login, "app");
	takeover_enc_str(&login, "mydb");
	takeover_enc_str(&login, "unix");
	takeover_enc_u32(&login, 0);
	takeover_enc_u32(&login, 45);
	takeover_enc_u32(&e, 1 | 0x80000000u);
	takeover_enc_u32(&e, (uint32_t)login.len);
	takeover_enc_bytes(&e, login.p, login.len);
	char longname[100];
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	struct takeover_enc schema = { 0 };
	takeover_enc_str(&schema, longname);
	takeover_enc_u32(&e, 3 | 0x80000000u);
	takeover_enc_u32(&e, (uint32_t)schema.len);
	takeover_enc_bytes(&e, schema.p, schema.len);
	struct my_client *d = fresh();
	char why[120];
	CHECK(my_handover_decode(d, e.p, (uint32_t)e.len, why, sizeof(why)) == -EPROTO);
	release(d);
	/* the same with a schema that fits: read */
	e.len -= schema.len + 8;
	struct takeover_enc ok = { 0 };
	takeover_enc_str(&ok, "otherdb");
	takeover_enc_u32(&e, 3 | 0x80000000u);
	takeover_enc_u32(&e, (uint32_t)ok.len);
	takeover_enc_bytes(&e, ok.p, ok.len);
	d = fresh();
	CHECK(my_handover_decode(d, e.p, (uint32_t)e.len, why, sizeof(why)) == 0);
	CHECK_STR(d->schema, "otherdb");
	CHECK_STR(d->user, "app");
	release(d);
	free(e.p);
	free(login.p);
	free(schema.p);
	free(ok.p);
}

UNIT_MAIN({
	test_round_trip();
	test_records_a_reader_does_not_know();
	test_strings_out_of_bounds();
})
