/*
 * my_monitor.c - see my_monitor.h.
 */
#include "my_monitor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop.h"
#include "my_conn.h"
#include "my_ops.h"
#include "pool.h"
#include "route.h"
#include "worker.h"

/* One round trip tells the role and the position that matters for it. */
static const char check_mariadb[] =
	"SELECT @@global.read_only, IF(@@global.read_only, @@global.gtid_slave_pos, @@global.gtid_binlog_pos)";
/* Oracle MySQL: its GTID sets are not compared (my_monitor.h). */
static const char check_mysql[] = "SELECT @@global.read_only, NULL";
/* A pooled server's check at login needs the role only. */
static const char check_login[] = "SELECT @@global.read_only";

bool my_gtid_single_seq(const char *s, size_t n, uint64_t *seq)
{
	/* Three unsigned numbers joined by '-', nothing else. */
	uint64_t part[3] = { 0, 0, 0 };
	int k = 0;
	bool digit = false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (ch >= '0' && ch <= '9') {
			uint64_t d = (uint64_t)(ch - '0');
			if (part[k] > (UINT64_MAX - d) / 10)
				return false;
			part[k] = part[k] * 10 + d;
			digit = true;
		} else if (ch == '-' && digit && k < 2) {
			k++;
			digit = false;
		} else {
			return false; /* ',' (several domains), blanks, anything else */
		}
	}
	if (k != 2 || !digit)
		return false;
	*seq = part[2];
	return true;
}

/* Queue query on s as sluice's own and note when it went. */
static bool send_query(struct my_server *s, const char *query)
{
	size_t n = strlen(query);
	int off = my_begin(&s->sock.wbuf, 0);
	if (off < 0 || my_put_u8(&s->sock.wbuf, MY_COM_QUERY) < 0 ||
	    iobuf_append(&s->sock.wbuf, query, (uint32_t)n) < 0 || my_end(&s->sock.wbuf, off) < 0)
		return false;
	uint8_t cmd = MY_COM_QUERY;
	my_answer_begin(&s->answer, &cmd, 1, s->caps);
	s->role_query = true;
	s->role_found = HOST_UNKNOWN;
	s->pos_comparable = false;
	s->pos = 0;
	/* Read after the query is queued: it goes out after this moment
	 * (read-your-writes relies on that, route.h). */
	s->aside_sent_us = loop_now_us();
	s->sock.want_read = true;
	my_server_send_pending(s);
	return true;
}

struct server *my_monitor_open(struct worker *w, struct pool *p, int host)
{
	char err[200];
	struct my_server *s = my_server_launch_aside(w, p, host, SERVER_MONITOR, err, sizeof(err));
	if (!s) {
		route_monitor_gone(p->route, host, err);
		return NULL;
	}
	return &s->base;
}

static void check(struct my_server *s)
{
	server_core_set_state(&s->base, SERVER_CHECK);
	if (!send_query(s, s->mariadb ? check_mariadb : check_mysql))
		my_server_close(s, "out of memory");
}

void my_monitor_check(struct server *base)
{
	struct my_server *s = my_server(base);
	if (s->closed || s->state != SERVER_IDLE || s->role_query)
		return;
	check(s);
}

bool my_monitor_logged_in(struct my_server *s)
{
	if (s->aside == SERVER_MONITOR) {
		check(s); /* route_tick asked for a check when it opened it */
		return true;
	}
	if (s->aside || !s->pool->route)
		return false;
	/* Routed: is the host in the role the pool wants? Still logging in. */
	if (!send_query(s, check_login)) {
		my_server_login_fail(s, "53200", "out of memory", false);
		return true;
	}
	return true;
}

/* The columns of a text row: read_only, and the position (NULL or a GTID
 * position). False when the row is not that. */
static bool read_row(struct my_server *s, const uint8_t *payload, uint32_t len)
{
	struct my_reader r = my_reader_of(payload, len);
	bool null = false;
	uint64_t n;
	const uint8_t *v = my_get_lenenc_str(&r, &n);
	if (!v || r.err || n != 1 || (v[0] != '0' && v[0] != '1'))
		return false;
	s->role_found = v[0] == '1' ? HOST_STANDBY : HOST_PRIMARY;
	if (my_left(&r) == 0)
		return true; /* the login's check: the role only */
	if (r.p[0] == 0xfb) {
		(void)my_get_lenenc(&r, &null);
		return !r.err;
	}
	v = my_get_lenenc_str(&r, &n);
	if (!v || r.err)
		return false;
	s->pos_comparable = my_gtid_single_seq((const char *)v, (size_t)n, &s->pos);
	return true;
}

/* The login's role check answered: on into the pool (false), or closed
 * (true). */
static bool login_checked(struct my_server *s)
{
	int want = route_login_role(s->pool);
	if (s->role_found == HOST_UNKNOWN) {
		my_server_login_fail(s, "08006", "could not read @@global.read_only at login", false);
		return true;
	}
	route_login_found(s->pool, s->host_index, s->role_found);
	if (want == HOST_UNKNOWN || want == s->role_found)
		return false;
	char msg[200];
	snprintf(msg, sizeof(msg), "host %s is %s now (read_only = %d), not a %s", server_core_host(&s->base)->addr_text,
		 route_role_name(s->role_found), s->role_found == HOST_STANDBY, route_role_name(want));
	s->login_step = 2; /* not a failure: the route picks another host */
	my_server_close(s, msg);
	return true;
}

bool my_monitor_packet(struct my_server *s, const struct my_packet *pk)
{
	bool row = my_answer_in_rows(&s->answer);
	int rc = my_answer_feed(&s->answer, pk->payload, pk->len);
	char msg[300];
	msg[0] = '\0';
	if (rc == MY_ANSWER_BAD || rc == MY_ANSWER_INFILE)
		snprintf(msg, sizeof(msg), "role check: unexpected answer");
	else if (row && rc == MY_ANSWER_MORE && !read_row(s, pk->payload, pk->len))
		snprintf(msg, sizeof(msg), "role check: unexpected row");
	else if (rc == MY_ANSWER_DONE && !s->answer.status_known)
		my_err_text(pk->payload, pk->len, "role check failed", msg, sizeof(msg));
	pgsock_drop(&s->sock, MY_HEADER_LEN + pk->len);
	if (msg[0]) {
		if (s->aside)
			my_server_close(s, msg);
		else
			my_server_login_fail(s, "08006", msg, false);
		return true;
	}
	if (rc != MY_ANSWER_DONE)
		return false;
	s->role_query = false;
	if (!s->aside) {
		if (login_checked(s))
			return true;
		pool_release(&s->base);
		return true;
	}
	if (s->role_found == HOST_UNKNOWN) {
		my_server_close(s, "role check: no answer row");
		return true;
	}
	server_core_set_state(&s->base, SERVER_IDLE);
	route_report_pos(s->pool->route, s->host_index, s->role_found, s->pos, s->pos_comparable, s->aside_sent_us);
	return false;
}

void my_monitor_closed(struct my_server *s, const char *reason)
{
	if (s->aside == SERVER_MONITOR)
		route_monitor_gone(s->pool->route, s->host_index, reason);
}
