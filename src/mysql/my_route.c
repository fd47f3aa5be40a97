/*
 * my_route.c - see my_route.h.
 */
#include "my_route.h"

#include "my_conn.h"
#include "my_sqlread.h"
#include "pool.h"
#include "route.h"

static bool routes_reads(const struct my_client *c)
{
	const struct pool *p = c->pool;
	/* With autocommit off every statement opens a transaction that the
	 * writes after it would share. */
	return p && p->route && p->route->read_routing && p->mode != POOL_MODE_SESSION && !c->pinned &&
	       !c->autocommit_off;
}

/* The class of command pk (my_sqlread.h). */
static int command_class(const struct my_client *c, const struct my_packet *pk, bool partial)
{
	if (partial || pk->len < 1)
		return MY_READ_NO;
	const uint8_t *b = pk->payload;
	switch (b[0]) {
	case MY_COM_QUERY:
		return my_sql_read_class((const char *)b + 1, pk->len - 1);
	case MY_COM_STMT_EXECUTE: {
		/* id (4 bytes), flags: a cursor's fetches need this server later. */
		if (pk->len < 6 || b[5] != 0 || !my_stmt_enabled())
			return MY_READ_NO;
		uint32_t id = (uint32_t)b[1] | (uint32_t)b[2] << 8 | (uint32_t)b[3] << 16 | (uint32_t)b[4] << 24;
		return my_stmt_reads_only(c, id) ? MY_READ_YES : MY_READ_NO;
	}
	default:
		return MY_READ_NO;
	}
}

struct pool *my_route_pick(struct my_client *c, const struct my_packet *pk, bool partial)
{
	c->route_kind = MY_ROUTE_PRIMARY;
	if (!routes_reads(c))
		return c->pool;
	int cls = command_class(c, pk, partial);
	if (cls == MY_READ_NO)
		return c->pool;
	c->route_kind = cls == MY_READ_YES ? MY_ROUTE_READS : MY_ROUTE_READ_TX; /* a read, wherever it goes */
	struct pool *reader = route_for_read(c->pool, c->last_write_us);
	return reader ? reader : c->pool;
}

bool my_route_may_follow(const struct my_client *c, const struct my_packet *pk, bool partial)
{
	const struct my_server *s = c->server;
	if (!s || s->pool->fixed_host < 0 || c->route_kind != MY_ROUTE_READS)
		return true;
	uint8_t cmd = pk->len ? pk->payload[0] : 0;
	if (cmd != MY_COM_QUERY && cmd != MY_COM_STMT_EXECUTE && cmd != MY_COM_STMT_PREPARE)
		return true; /* pings, statement closes: nothing written */
	return cmd != MY_COM_STMT_PREPARE && command_class(c, pk, partial) == MY_READ_YES;
}

void my_route_tx_end(struct my_client *c, const struct my_server *s)
{
	if (c->route_kind == MY_ROUTE_PRIMARY && s->pool->route && s->pool->fixed_host < 0)
		c->last_write_us = route_write_time();
}

void my_route_reroute(struct client *base)
{
	struct my_client *c = my_client(base);
	if (c->state != CLIENT_WAITING || c->server || c->closing)
		return;
	/* Its command is still unread at the cursor: read it again, as an
	 * idle client does, and route it where it can go now. */
	my_client_set_state(c, CLIENT_IDLE);
	my_client_resume(c);
}
