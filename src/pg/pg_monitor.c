/*
 * pg_monitor.c - see pg_monitor.h.
 */
#include "pg_monitor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loop.h"
#include "pg_proto.h"
#include "pg_server.h"
#include "pool.h"
#include "route.h"
#include "worker.h"

/* One round trip tells the role and the position that matters for it.
 * On a primary the insert position, not pg_current_wal_lsn() (the write
 * position): with synchronous_commit = off a commit is acknowledged while
 * its record is still in the WAL buffers, past the write position, and a
 * standby that reached only that could still miss it. */
static const char check_query[] =
	"SELECT pg_catalog.pg_is_in_recovery(), CASE WHEN pg_catalog.pg_is_in_recovery() "
	"THEN pg_catalog.pg_last_wal_replay_lsn() ELSE pg_catalog.pg_current_wal_insert_lsn() END";

struct server *monitor_open(struct worker *w, struct pool *p, int host)
{
	char err[200];
	struct pg_server *s = server_launch_aside(w, p, host, SERVER_MONITOR, err, sizeof(err));
	if (!s) {
		route_monitor_gone(p->route, host, err);
		return NULL;
	}
	return &s->base;
}

static void send_check(struct pg_server *s)
{
	server_core_set_state(&s->base, SERVER_CHECK);
	s->role_found = HOST_UNKNOWN;
	s->role_check = ROLE_CHECK_SENT;
	pg_fe_query(&s->sock.wbuf, check_query);
	/* Read after the query is queued: it goes out after this moment
	 * (read-your-writes relies on that, route.h). */
	s->aside_sent_us = loop_now_us();
	s->sock.want_read = true;
	server_send_pending(s);
}

void monitor_check(struct server *base)
{
	struct pg_server *s = pg_server(base);
	if (s->closed || s->state != SERVER_IDLE)
		return;
	send_check(s);
}

void monitor_ready(struct pg_server *s)
{
	send_check(s); /* route_tick asked for a check when it opened it */
}

/* "X/Y", both hex: the 64-bit WAL position. */
static bool parse_lsn(const uint8_t *v, uint32_t n, uint64_t *out)
{
	char buf[40];
	if (!v || n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, v, n);
	buf[n] = '\0';
	unsigned long hi, lo;
	char tail;
	if (sscanf(buf, "%lx/%lx%c", &hi, &lo, &tail) != 2 || hi > 0xffffffffUL || lo > 0xffffffffUL)
		return false;
	*out = ((uint64_t)hi << 32) | lo;
	return true;
}

bool monitor_message(struct pg_server *s, const struct pg_msg *m)
{
	struct route *r = s->pool->route;
	switch (m->type) {
	case 'D': {
		bool in_recovery;
		const uint8_t *v;
		uint32_t n;
		uint64_t lsn = 0;
		if (pg_first_column_bool(m->body, m->body_len, &in_recovery) < 0 ||
		    pg_datarow_column(m->body, m->body_len, 1, &v, &n) < 0 || (v && !parse_lsn(v, n, &lsn))) {
			server_close(s, "role check: unexpected answer");
			return false;
		}
		s->role_found = in_recovery ? HOST_STANDBY : HOST_PRIMARY;
		s->aside_lsn = lsn;
		return true;
	}
	case 'E': {
		struct pg_error_fields f;
		pg_be_error_parse(m->body, m->body_len, &f);
		char msg[200];
		snprintf(msg, sizeof(msg), "role check failed: %s", *f.message ? f.message : "error");
		server_close(s, msg);
		return false;
	}
	case 'Z':
		if (s->role_check != ROLE_CHECK_SENT || s->role_found == HOST_UNKNOWN) {
			server_close(s, "role check: no answer row");
			return false;
		}
		s->role_check = ROLE_CHECK_DONE;
		server_core_set_state(&s->base, SERVER_IDLE);
		route_report(r, s->host_index, s->role_found, s->aside_lsn, s->aside_sent_us);
		return true;
	default: /* T, C, S, N */
		return true;
	}
}

void monitor_closed(struct pg_server *s, const char *reason)
{
	route_monitor_gone(s->pool->route, s->host_index, reason);
}
