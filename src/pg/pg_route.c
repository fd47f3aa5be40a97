/*
 * pg_route.c - see pg_route.h.
 */
#include "pg_route.h"

#include <string.h>

#include "pg_client.h"
#include "pg_proto.h"
#include "pg_server.h"
#include "pool.h"
#include "prepared.h"
#include "route.h"
#include "sqlread.h"
#include "track.h"

static bool routes_reads(const struct pg_client *c)
{
	const struct pool *p = c->pool;
	return p && p->route && p->route->read_routing && p->mode != POOL_MODE_SESSION && !c->pinned &&
	       !c->replication && !c->adm;
}

/* The class of a statement's text, classified once (cache: 1 + the class,
 * 0 = not yet): a driver binds the same statement again and again. */
static int def_class(const struct pstmt_def *def, int8_t *cache)
{
	if (!*cache)
		*cache = (int8_t)(1 + sql_read_class(def->query, strlen(def->query)));
	return *cache - 1;
}

/* The class of one extended-protocol message (body whole): Parse by its
 * text, Bind by its statement's; the rest of a batch neither reads nor
 * writes. parsed_unnamed: an unnamed Parse earlier in the same scan was a
 * read. */
static int ext_class(struct pg_client *c, const struct pg_msg *m, bool *parsed_unnamed)
{
	struct pg_reader r;
	pg_reader_init(&r, m->body, m->body_len);
	switch (m->type) {
	case 'P': {
		const char *name = pg_read_str(&r);
		const char *query = pg_read_str(&r);
		if (r.err)
			return SQL_READ_NO;
		int cls = sql_read_class(query, strlen(query));
		if (!*name)
			*parsed_unnamed = cls == SQL_READ_YES;
		return cls == SQL_READ_YES ? SQL_READ_YES : SQL_READ_NO;
	}
	case 'B': {
		(void)pg_read_str(&r); /* portal */
		const char *name = pg_read_str(&r);
		if (r.err)
			return SQL_READ_NO;
		if (!*name) {
			if (*parsed_unnamed)
				return SQL_READ_YES;
			struct unnamed_stmt *u = c->unnamed;
			if (!u || !u->def.query)
				return SQL_READ_NO;
			return def_class(&u->def, &u->read_class) == SQL_READ_YES ? SQL_READ_YES : SQL_READ_NO;
		}
		/* Named: known only when sluice tracks the client's statements. */
		struct client_stmt *st = track_renames(c->pool) ? client_stmts_find(&c->stmts, name) : NULL;
		return st && def_class(&st->def, &st->read_class) == SQL_READ_YES ? SQL_READ_YES : SQL_READ_NO;
	}
	case 'D': case 'E': case 'C': case 'S': case 'H':
		return SQL_READ_YES;
	default:
		return SQL_READ_NO;
	}
}

/* Everything the client sent so far, from m on, whole and ending with a
 * Sync, only reads. */
static bool batch_reads(struct pg_client *c, const struct pg_msg *first, uint32_t avail)
{
	const uint8_t *p = first->body - 5;
	uint32_t left = avail;
	bool parsed_unnamed = false, synced = false;
	while (left) {
		struct pg_msg m;
		int rc = pg_msg_peek(p, left, &m);
		if (rc <= 0 || m.len > left)
			return false; /* not all here: decide on what cannot be seen */
		if (ext_class(c, &m, &parsed_unnamed) != SQL_READ_YES)
			return false;
		synced = m.type == 'S';
		p += m.len;
		left -= m.len;
	}
	return synced;
}

struct pool *pg_route_pick(struct pg_client *c, const struct pg_msg *m, uint32_t avail)
{
	c->route_kind = ROUTE_KIND_PRIMARY;
	if (!routes_reads(c) || m->len > avail)
		return c->pool;
	int kind = ROUTE_KIND_PRIMARY;
	if (m->type == 'Q' && m->body_len > 0) {
		int cls = sql_read_class((const char *)m->body, m->body_len - 1);
		kind = cls == SQL_READ_YES ? ROUTE_KIND_READS : cls == SQL_READ_TX_READ_ONLY ? ROUTE_KIND_READ_TX
											   : ROUTE_KIND_PRIMARY;
	} else if ((m->type == 'P' || m->type == 'B') && batch_reads(c, m, avail)) {
		kind = ROUTE_KIND_READS;
	}
	if (kind == ROUTE_KIND_PRIMARY)
		return c->pool;
	c->route_kind = (uint8_t)kind; /* a read, wherever it goes */
	struct pool *reader = route_for_read(c->pool, c->last_write_us);
	return reader ? reader : c->pool;
}

bool pg_route_may_follow(struct pg_client *c, const struct pg_msg *m, uint32_t avail)
{
	const struct pg_server *s = c->server;
	if (!s || s->pool->fixed_host < 0 || c->route_kind != ROUTE_KIND_READS)
		return true;
	if (m->type != 'Q' && m->type != 'P' && m->type != 'B' && m->type != 'F')
		return true;
	/* Inside a batch already on the standby it cannot move: a write
	 * there fails with the standby's read-only error, as documented. */
	if (s->client_mid_batch)
		return true;
	if (m->len > avail)
		return false;
	if (m->type == 'Q')
		return m->body_len > 0 && sql_read_class((const char *)m->body, m->body_len - 1) == SQL_READ_YES;
	bool parsed_unnamed = false;
	return m->type != 'F' && ext_class(c, m, &parsed_unnamed) == SQL_READ_YES;
}

void pg_route_tx_end(struct pg_client *c, const struct pg_server *s)
{
	if (c->route_kind == ROUTE_KIND_PRIMARY && s->pool->route && s->pool->fixed_host < 0)
		c->last_write_us = route_write_time();
}
