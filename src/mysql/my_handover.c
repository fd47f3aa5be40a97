/*
 * my_handover.c - see my_handover.h.
 *
 * A client's state for the new process (takeover.c sends it in an 'M'
 * frame with the client's socket):
 *
 *   u32 MY_HANDOVER_VERSION
 *   records, each: u32 tag, u32 length, length bytes (takeover.h's
 *   encoding inside: big-endian u32s, strings as a length and bytes)
 *
 * Records are how the encoding grows. A process reads the records it
 * knows and skips the others, unless the tag has MY_HO_MUST: then the
 * record carries state the client relies on (its prepared statements,
 * its session), and a process that does not know it closes the client
 * rather than run it without that state. A record may also grow at its
 * end: a reader ignores what follows the part it knows.
 *
 * To carry a new field of struct my_client: a tag in enum my_ho_tag, an
 * encoder and a decoder below, a line in `fields` (the place is marked),
 * and, when some state of it cannot move (a statement half-uploaded),
 * a condition in my_handover_ok.
 */
#include "my_handover.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balance.h"
#include "cancel.h"
#include "control.h"
#include "log.h"
#include "loop.h"
#include "my_conn.h"
#include "pool.h"
#include "takeover.h"
#include "worker.h"

#define MY_HANDOVER_VERSION 1

#define MY_HO_MUST 0x80000000u /* tag bit: a reader that does not know it refuses the client */

/* Record tags: never reuse or renumber one (the old and the new process
 * may be different versions of sluice). */
enum my_ho_tag {
	MY_HO_LOGIN = 1 | MY_HO_MUST,      /* user, db, peer, caps, charset: the pool (its variant) */
	MY_HO_CONN_ID = 2,                 /* connection id of the greeting = cancel key (KILL) */
	MY_HO_SCHEMA = 3 | MY_HO_MUST,     /* current database (USE, COM_INIT_DB) */
	MY_HO_AUTOCOMMIT = 4 | MY_HO_MUST, /* autocommit = 0 */
	MY_HO_PENDING = 5 | MY_HO_MUST,    /* bytes the client sent that were not examined yet */
	MY_HO_STMTS = 6 | MY_HO_MUST,      /* prepared statements (my_stmt.c) */
	MY_HO_INSERT_ID = 7 | MY_HO_MUST,  /* the last id its statements generated */
	MY_HO_VARS = 8 | MY_HO_MUST,       /* session variables it SET (my_session.h) */
	MY_HO_LAST_WRITE = 9,              /* when it last wrote on a primary (route.h; CLOCK_MONOTONIC) */
	/* Next free: 9. */
};

/* ---- the records ---- */

static void enc_login(const struct my_client *c, struct takeover_enc *e)
{
	takeover_enc_str(e, c->user);
	takeover_enc_str(e, c->db);
	takeover_enc_str(e, c->peer);
	takeover_enc_u32(e, c->caps);
	takeover_enc_u32(e, c->charset);
}

/* A string into a fixed field; false when absent or too long. */
static bool dec_str_into(struct takeover_dec *d, char *out, size_t size)
{
	bool absent;
	char *s = takeover_dec_str(d, &absent);
	bool ok = s && strlen(s) < size;
	if (ok)
		memcpy(out, s, strlen(s) + 1);
	free(s);
	if (!ok)
		d->err = true;
	return ok;
}

static void dec_login(struct my_client *c, struct takeover_dec *d)
{
	dec_str_into(d, c->user, sizeof(c->user));
	dec_str_into(d, c->db, sizeof(c->db));
	dec_str_into(d, c->peer, sizeof(c->peer));
	c->caps = takeover_dec_u32(d);
	c->charset = (uint8_t)takeover_dec_u32(d);
}

static void enc_conn_id(const struct my_client *c, struct takeover_enc *e) { takeover_enc_u32(e, c->cancel_pid); }
static void dec_conn_id(struct my_client *c, struct takeover_dec *d)
{
	c->cancel_pid = takeover_dec_u32(d); /* cancel_register keeps it unless taken */
	c->cancel_key = 0;
}

static void enc_schema(const struct my_client *c, struct takeover_enc *e) { takeover_enc_str(e, c->schema); }
static void dec_schema(struct my_client *c, struct takeover_dec *d) { dec_str_into(d, c->schema, sizeof(c->schema)); }

static void enc_autocommit(const struct my_client *c, struct takeover_enc *e)
{
	takeover_enc_u32(e, c->autocommit_off);
}
static void dec_autocommit(struct my_client *c, struct takeover_dec *d) { c->autocommit_off = takeover_dec_u32(d) != 0; }

static void enc_pending(const struct my_client *c, struct takeover_enc *e)
{
	takeover_enc_u32(e, iobuf_len(&c->sock.rbuf));
	takeover_enc_bytes(e, iobuf_head(&c->sock.rbuf), iobuf_len(&c->sock.rbuf));
}
static void dec_pending(struct my_client *c, struct takeover_dec *d)
{
	uint32_t n = takeover_dec_u32(d);
	if (d->err || (size_t)(d->end - d->p) < n || (n && iobuf_append(&c->sock.rbuf, d->p, n) < 0)) {
		d->err = true;
		return;
	}
	d->p += n;
}

static void enc_stmts(const struct my_client *c, struct takeover_enc *e) { my_stmts_encode(&c->stmts, e); }
static void dec_stmts(struct my_client *c, struct takeover_dec *d) { my_stmts_decode(&c->stmts, d); }

static void enc_insert_id(const struct my_client *c, struct takeover_enc *e)
{
	takeover_enc_u32(e, (uint32_t)(c->last_insert_id >> 32));
	takeover_enc_u32(e, (uint32_t)c->last_insert_id);
}
static void dec_insert_id(struct my_client *c, struct takeover_dec *d)
{
	uint64_t hi = takeover_dec_u32(d);
	c->last_insert_id = hi << 32 | takeover_dec_u32(d);
}

static void enc_last_write(const struct my_client *c, struct takeover_enc *e)
{
	takeover_enc_u32(e, (uint32_t)((uint64_t)c->last_write_us >> 32));
	takeover_enc_u32(e, (uint32_t)c->last_write_us);
}
static void dec_last_write(struct my_client *c, struct takeover_dec *d)
{
	uint64_t hi = takeover_dec_u32(d);
	c->last_write_us = (int64_t)(hi << 32 | takeover_dec_u32(d));
}

static void enc_vars(const struct my_client *c, struct takeover_enc *e)
{
	uint32_t n = c->vars ? c->vars->len : 0;
	takeover_enc_u32(e, n);
	if (n)
		takeover_enc_bytes(e, c->vars->text, n);
}
static void dec_vars(struct my_client *c, struct takeover_dec *d)
{
	uint32_t n = takeover_dec_u32(d);
	if (d->err || n > MY_VARS_MAX || (size_t)(d->end - d->p) < n) {
		d->err = true;
		return;
	}
	if (!n)
		return;
	c->vars = calloc(1, sizeof(*c->vars));
	if (!c->vars) {
		d->err = true;
		return;
	}
	memcpy(c->vars->text, d->p, n);
	c->vars->len = (uint16_t)n;
	d->p += n;
}

struct my_ho_field {
	uint32_t tag;              /* enum my_ho_tag */
	void (*encode)(const struct my_client *c, struct takeover_enc *e);
	void (*decode)(struct my_client *c, struct takeover_dec *d); /* sets d->err when unusable */
};

/* Written in this order; read in any. */
static const struct my_ho_field fields[] = {
	{ MY_HO_LOGIN, enc_login, dec_login },
	{ MY_HO_CONN_ID, enc_conn_id, dec_conn_id },
	{ MY_HO_SCHEMA, enc_schema, dec_schema },
	{ MY_HO_AUTOCOMMIT, enc_autocommit, dec_autocommit },
	{ MY_HO_PENDING, enc_pending, dec_pending },
	{ MY_HO_STMTS, enc_stmts, dec_stmts },
	{ MY_HO_INSERT_ID, enc_insert_id, dec_insert_id },
	{ MY_HO_VARS, enc_vars, dec_vars },
	{ MY_HO_LAST_WRITE, enc_last_write, dec_last_write },
	/* ---- new fields of struct my_client here (prepared statements,
	 * session variables): see the comment at the top of the file ---- */
};

#define N_FIELDS (sizeof(fields) / sizeof(fields[0]))

/* ---- old process ---- */

bool my_handover_ok(const struct my_client *c)
{
	/* The core checked: pool mode, IDLE, no server, no TLS, nothing to
	 * send, not queued. A pinned client's session lives on the server it
	 * keeps (in transaction mode it keeps it, so this is a second guard). */
	return c->login == MY_LOGIN_DONE && c->pool && !c->pinned && !c->infile && !c->continued && !c->skip_cmd &&
	       c->sock.fwd == 0;
}

int my_handover_encode(const struct my_client *c, struct takeover_enc *e)
{
	takeover_enc_u32(e, MY_HANDOVER_VERSION);
	for (size_t i = 0; i < N_FIELDS; i++) {
		takeover_enc_u32(e, fields[i].tag);
		size_t at = e->len;
		takeover_enc_u32(e, 0); /* the length, written below */
		fields[i].encode(c, e);
		if (e->oom)
			break;
		uint32_t n = (uint32_t)(e->len - at - 4);
		e->p[at] = (uint8_t)(n >> 24);
		e->p[at + 1] = (uint8_t)(n >> 16);
		e->p[at + 2] = (uint8_t)(n >> 8);
		e->p[at + 3] = (uint8_t)n;
	}
	return e->oom ? -ENOMEM : 0;
}

/* ---- new process ---- */

int my_handover_decode(struct my_client *c, const uint8_t *p, uint32_t len, char *why, size_t whylen)
{
	struct takeover_dec d = { p, p + len, false };
	uint32_t version = takeover_dec_u32(&d);
	if (d.err || version != MY_HANDOVER_VERSION) {
		snprintf(why, whylen, "unknown state format %u", version);
		return -EPROTO;
	}
	bool have_login = false;
	while (d.p < d.end) {
		uint32_t tag = takeover_dec_u32(&d);
		uint32_t n = takeover_dec_u32(&d);
		if (d.err || (size_t)(d.end - d.p) < n) {
			snprintf(why, whylen, "truncated state");
			return -EPROTO;
		}
		struct takeover_dec r = { d.p, d.p + n, false };
		d.p += n;
		const struct my_ho_field *f = NULL;
		for (size_t i = 0; i < N_FIELDS && !f; i++)
			if (fields[i].tag == tag)
				f = &fields[i];
		if (!f) {
			if (!(tag & MY_HO_MUST))
				continue; /* something a newer sluice keeps that this one can do without */
			snprintf(why, whylen, "state this version of sluice does not know (record %#x)", tag);
			return -EPROTO;
		}
		f->decode(c, &r);
		if (r.err) {
			snprintf(why, whylen, "unreadable state (record %#x)", tag);
			return -EPROTO;
		}
		have_login |= tag == MY_HO_LOGIN;
	}
	if (!have_login) {
		snprintf(why, whylen, "no login in the state");
		return -EPROTO;
	}
	return 0;
}

void my_handover_adopt(struct worker *w, int fd, const uint8_t *state, uint32_t len)
{
	struct my_client *c = my_client_adopt(w, fd, "?");
	if (!c)
		return;
	char why[120], err[200];
	if (my_handover_decode(c, state, len, why, sizeof(why)) < 0) {
		char msg[200];
		snprintf(msg, sizeof(msg), "online restart: could not read the client's state: %s", why);
		my_client_close(c, msg);
		return;
	}
	c->pool = my_login_pool(c, err, sizeof(err));
	if (!c->pool) {
		char msg[360];
		snprintf(msg, sizeof(msg), "Unknown database '%s' after an online restart of sluice (%s)", c->db, err);
		my_client_fail(c, "42000", msg);
		return;
	}
	cancel_register(&c->base);
	client_core_join_pool(&c->base);
	CLOG(c, LOG_LEVEL_DEBUG, "taken over from the previous process (connection id %u, schema '%s'%s)",
	     c->cancel_pid, c->schema, c->autocommit_off ? ", autocommit off" : "");
	my_client_resume(c); /* reads on, and runs what it sent meanwhile */
}

/* ---- between workers ---- */

/* Between transactions with nothing in flight and nothing buffered either
 * way, not pinned (its session is its server's), not during a shutdown or
 * an online restart (those see to it: my_handover_at_rest). */
static bool movable(const struct my_client *c)
{
	return c->state == CLIENT_IDLE && c->login == MY_LOGIN_DONE && !c->server && !c->queued &&
	       !c->handoff_pending && !c->closing && !c->moving && !c->pinned && !c->infile && !c->continued &&
	       !c->skip_cmd && pgsock_quiet(&c->sock) && !c->worker->suspended && control_phase() == PHASE_RUNNING;
}

void my_client_maybe_move(struct my_client *c)
{
	if (movable(c))
		client_core_move(&c->base);
}

void my_handover_at_rest(struct my_client *c)
{
	if (c->closing || c->moving || c->server || c->state != CLIENT_IDLE)
		return;
	if (control_phase() != PHASE_RUNNING) {
		control_at_boundary(&c->base);
		return;
	}
	my_client_maybe_move(c);
}
