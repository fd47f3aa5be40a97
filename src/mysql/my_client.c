/*
 * my_client.c - the MySQL client state machine: the client->server
 * direction of the command phase (see my_conn.h). The connection phase is
 * my_login.c's, the screen of query texts my_screen.c's; the
 * server->client direction and the server's own login are my_server.c's
 * and my_server_login.c's.
 *
 * A command is read whole (or, when it does not fit the receive buffer,
 * forwarded as it arrives), given a server, and forwarded; the client is
 * not read again until its answer is complete, except for the packets of
 * a LOCAL INFILE the server asked for.
 */
#include "my_conn.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cancel.h"
#include "config.h"
#include "control.h"
#include "log.h"
#include "my_ops.h"
#include "pool.h"
#include "runtime.h"
#include "stats.h"
#include "worker.h"

static void client_cb(struct loop_handle *h, uint32_t revents);
static void process(struct my_client *c);

void my_client_set_state(struct my_client *c, int state)
{
	c->state = (uint8_t)state;
	c->state_since_us = c->worker->loop.now_us;
}

void my_client_update_events(struct my_client *c)
{
	bool want_write = iobuf_len(&c->sock.wbuf) || (c->server && c->server->sock.fwd);
	bool want_read = c->sock.want_read;
	if (c->worker->suspended)
		c->sock.want_read = false; /* SUSPEND: not read until RESUME */
	int rc = pgsock_update(&c->worker->loop, &c->sock, want_write);
	c->sock.want_read = want_read;
	if (rc < 0)
		my_client_close(c, "epoll failure");
}

/* Send what sluice wrote for the client; false when the client is gone. */
bool my_client_flush_own(struct my_client *c)
{
	int rc = pgsock_flush(&c->sock, NULL);
	if (rc < 0 && rc != -EAGAIN) {
		my_client_close(c, "write failed");
		return false;
	}
	my_client_update_events(c);
	return true;
}

/* MySQL's error number for the SQLSTATEs the core and sluice use. */
static uint16_t error_code_of(const char *sqlstate)
{
	if (strcmp(sqlstate, "28000") == 0)
		return 1045; /* ER_ACCESS_DENIED_ERROR */
	if (strcmp(sqlstate, "53300") == 0 || strcmp(sqlstate, "08004") == 0)
		return 1040; /* ER_CON_COUNT_ERROR */
	if (strcmp(sqlstate, "57P01") == 0)
		return 1053; /* ER_SERVER_SHUTDOWN */
	if (strcmp(sqlstate, "42000") == 0)
		return 1049; /* ER_BAD_DB_ERROR */
	if (strcmp(sqlstate, "08S01") == 0)
		return 1158; /* ER_NET_READ_ERROR */
	return 1105;         /* ER_UNKNOWN_ERROR */
}

/* A SQLSTATE as MySQL clients know them: the core's PostgreSQL ones
 * (57P01, 08P01, 53xxx) become MySQL's. */
static const char *mysql_sqlstate(const char *sqlstate)
{
	if (strcmp(sqlstate, "57P01") == 0 || strcmp(sqlstate, "08P01") == 0)
		return "08S01";
	if (strcmp(sqlstate, "53300") == 0)
		return "08004";
	if (strncmp(sqlstate, "53", 2) == 0)
		return "HY000";
	return sqlstate;
}

/* An ERR packet and close. During the login the packet continues the
 * login's sequence; in the command phase it answers the command (1). */
void my_client_fail(struct my_client *c, const char *sqlstate, const char *msg)
{
	if (c->closing)
		return;
	uint8_t seq = c->login == MY_LOGIN_DONE ? 1 : c->seq;
	my_err_build(&c->sock.wbuf, seq, error_code_of(sqlstate), mysql_sqlstate(sqlstate), msg);
	client_core_report_failure(&c->base, sqlstate, msg);
	my_client_close(c, msg);
}

void my_client_close(struct my_client *c, const char *reason)
{
	if (c->closing)
		return;
	c->closing = true;
	bool zombie = client_core_leave_queue(&c->base);
	const struct config *cfg = runtime_config();
	CLOG(c, cfg->log_disconnections && c->state >= CLIENT_IDLE ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG,
	     "closing because: %s", reason);
	if (c->server) {
		struct my_server *s = c->server;
		c->server = NULL;
		s->client = NULL;
		my_server_client_gone(s);
	}
	client_core_close(&c->base);
	if (!zombie)
		worker_bury_client(c->worker, &c->base);
}

void my_client_free(struct my_client *c)
{
	worker_remove_client(c->worker, &c->base);
	my_session_client_free(c);
	free(c);
}

void my_client_server_lost(struct my_client *c, const char *msg)
{
	my_client_fail(c, "08S01", msg);
}

/* ---- command phase ---- */

void my_client_accept(struct worker *w, int fd, const char *peer, bool has_data)
{
	struct my_client *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	client_core_init(&c->base, &my_ops, w, fd, peer, client_cb);
	client_core_count_new(&c->base); /* refused once its user is known */
	/* Its connection id is its cancel key (KILL QUERY names it). */
	cancel_register(&c->base);
	CLOG(c, LOG_LEVEL_DEBUG, "accepted");
	if (!my_login_greet(c))
		return;
	if (has_data)
		client_cb(&c->sock.h, EPOLLIN);
}

/* Before a command goes to a server: what sluice answers or refuses
 * itself. Returns true when the command was dealt with here. */
static bool command_here(struct my_client *c, const struct my_packet *pk)
{
	uint8_t cmd = pk->payload[0];
	switch (cmd) {
	case MY_COM_QUIT:
		my_client_close(c, "client quit");
		return true;
	case MY_COM_PING:
		if (c->server)
			return false;
		pgsock_drop(&c->sock, MY_HEADER_LEN + pk->len);
		my_ok_build(&c->sock.wbuf, 1, 0, 0, MY_STATUS_AUTOCOMMIT, 0);
		my_client_flush_own(c);
		return true;
	case MY_COM_CHANGE_USER:
	case MY_COM_BINLOG_DUMP:
	case MY_COM_PROCESS_KILL:
	case MY_COM_DEBUG:
	case MY_COM_STMT_FETCH:
		pgsock_drop(&c->sock, MY_HEADER_LEN + pk->len);
		my_err_build(&c->sock.wbuf, 1, 1235, "42000", "This command is not supported through sluice");
		my_client_flush_own(c);
		return true;
	case MY_COM_INIT_DB: {
		size_t n = pk->len - 1;
		if (n >= sizeof(c->want_schema)) {
			pgsock_drop(&c->sock, MY_HEADER_LEN + pk->len);
			my_err_build(&c->sock.wbuf, 1, 1102, "42000", "Incorrect database name");
			my_client_flush_own(c);
			return true;
		}
		memcpy(c->want_schema, pk->payload + 1, n);
		c->want_schema[n] = '\0';
		return false;
	}
	case MY_COM_QUERY: {
		/* KILL names a connection id: the client knows sluice's, which
		 * would name an unrelated session on the server. */
		if (my_query_is_kill(pk->payload + 1, pk->len - 1)) {
			pgsock_drop(&c->sock, MY_HEADER_LEN + pk->len);
			my_err_build(&c->sock.wbuf, 1, 1235, "42000", "KILL through sluice is not supported yet");
			my_client_flush_own(c);
			return true;
		}
		my_screen_query(c, pk->payload, pk->len);
		return false;
	}
	case MY_COM_STMT_PREPARE:
	case MY_COM_SET_OPTION:
		/* Prepared statements and the multi-statement option live in the
		 * server's session. */
		c->pinned = true;
		return false;
	case MY_COM_RESET_CONNECTION:
		return false;
	default:
		return false;
	}
}

/* A server for the command at the cursor: true when c has one now. */
static bool get_server(struct my_client *c)
{
	if (c->server)
		return true;
	const char *fail = NULL;
	struct server *s = pool_acquire(c->pool, &c->base, &fail);
	if (fail) {
		my_client_fail(c, "08004", fail);
		return false;
	}
	if (!s) {
		my_client_set_state(c, CLIENT_WAITING);
		c->sock.want_read = false;
		my_client_update_events(c);
		return false;
	}
	my_client_on_server(c, my_server(s));
	return false; /* my_client_on_server processed the command */
}

static void process(struct my_client *c)
{
	while (!c->closing) {
		struct my_packet pk;
		uint32_t avail = pgsock_unexamined(&c->sock);
		int whole = my_packet_peek(pgsock_cursor(&c->sock), avail, &pk);
		if (c->login != MY_LOGIN_DONE) {
			if (!whole) {
				if (pgsock_rbuf_full(&c->sock) && avail >= MY_HEADER_LEN)
					my_client_fail(c, "08S01", "login packet too long");
				break;
			}
			my_login_packet(c, &pk);
			if (!c->closing)
				pgsock_drop(&c->sock, MY_HEADER_LEN + pk.len);
			continue;
		}
		if (c->skip_cmd) {
			/* The rest of a command longer than the buffer: on as it comes. */
			uint32_t n = avail < c->skip_cmd ? avail : c->skip_cmd;
			if (!n)
				break;
			c->sock.fwd += n;
			c->skip_cmd -= n;
			my_server_send_pending(c->server);
			continue;
		}
		/* One command at a time: the next is read once this one's
		 * answer is through, but for a LOCAL INFILE's file. */
		if (c->server && (c->server->answering || c->server->internal) && !c->infile) {
			c->sock.want_read = false; /* my_client_answered / my_client_resume read on */
			break;
		}
		bool partial = false;
		if (!whole) {
			/* A command longer than the receive buffer goes on as it
			 * comes (a long INSERT): judged by its first bytes. */
			if (avail < MY_HEADER_LEN + 1 || !pgsock_rbuf_full(&c->sock) || c->infile || c->continued)
				break;
			partial = true;
			pk.payload = pgsock_cursor(&c->sock) + MY_HEADER_LEN;
			pk.seq = pgsock_cursor(&c->sock)[3];
			pk.len = avail - MY_HEADER_LEN; /* what the screens below see */
		}
		c->last_active_us = c->worker->loop.now_us;
		if (c->infile || c->continued) {
			/* File packets, or the rest of a 16 MiB - 1 packet: as they are. */
			if (c->infile && pk.len == 0)
				c->infile = false;
			c->continued = pk.len == MY_MAX_PAYLOAD;
			c->sock.fwd += MY_HEADER_LEN + pk.len;
			my_server_send_pending(c->server);
			continue;
		}
		if (pk.len == 0) {
			my_client_fail(c, "08S01", "empty command packet");
			return;
		}
		uint32_t full = partial ? my_header_len(pgsock_cursor(&c->sock)) : pk.len;
		if (partial && pk.payload[0] != MY_COM_QUERY && pk.payload[0] != MY_COM_STMT_EXECUTE &&
		    pk.payload[0] != MY_COM_STMT_SEND_LONG_DATA && pk.payload[0] != MY_COM_STMT_PREPARE) {
			my_client_fail(c, "08S01", "command packet too long");
			return;
		}
		if (partial && pk.payload[0] == MY_COM_QUERY && (c->caps & MY_CLIENT_MULTI_STATEMENTS))
			c->pinned = true; /* a second statement may hide beyond the buffer */
		if (command_here(c, &pk))
			continue;
		if (!get_server(c))
			return; /* waiting, failed, or processed on its new server */
		my_client_set_state(c, CLIENT_ACTIVE);
		c->continued = full == MY_MAX_PAYLOAD;
		c->sock.fwd += MY_HEADER_LEN + pk.len;
		c->skip_cmd = full - pk.len;
		my_server_forward(c->server, pk.payload, pk.len);
	}
}

void my_client_on_server(struct my_client *c, struct my_server *s)
{
	if (!client_core_receive_server(&c->base, &s->base))
		return;
	my_server_link(s, c);
	my_client_set_state(c, CLIENT_ACTIVE);
	c->sock.want_read = true;
	process(c);
}

void my_client_resume(struct my_client *c)
{
	c->sock.want_read = true;
	my_client_update_events(c);
	process(c);
}

void my_client_answered(struct my_client *c)
{
	struct my_server *s = c->server;
	if (s && !s->answering && !s->internal && !s->in_trans && !c->pinned && !s->pinned &&
	    c->pool->mode != POOL_MODE_SESSION && c->sock.fwd == 0) {
		c->server = NULL;
		s->client = NULL;
		my_client_set_state(c, CLIENT_IDLE);
		pool_release(&s->base);
	} else if (!s) {
		my_client_set_state(c, CLIENT_IDLE);
	}
	c->sock.want_read = true;
	my_client_update_events(c);
	process(c);
}

/* ---- events and ticks ---- */

static void client_cb(struct loop_handle *h, uint32_t revents)
{
	struct my_client *c = (struct my_client *)((char *)h - offsetof(struct my_client, sock.h));
	if (c->closing)
		return;
	if (revents & EPOLLOUT) {
		if (c->server) {
			my_server_deliver_pending(c->server);
			if (c->closing)
				return;
		} else if (!my_client_flush_own(c)) {
			return;
		}
	}
	if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		int n = pgsock_read(&c->sock);
		if (n == 0 || (n < 0 && n != -EAGAIN && n != -ENOBUFS)) {
			my_client_close(c, n == 0 ? "client closed the connection" : pgsock_read_failure(n, "client"));
			return;
		}
		if (n > 0 && c->pool)
			stats_add(&pool_stats(c->pool, c->worker)->bytes_in, (uint64_t)n);
		process(c);
	}
	if (!c->closing)
		my_client_update_events(c);
}

void my_client_tick(struct my_client *c, int64_t now_us)
{
	const struct config *cfg = runtime_config();
	if (control_phase() != PHASE_RUNNING && control_at_boundary(&c->base))
		return;
	int64_t age = now_us - c->state_since_us;
	switch (c->state) {
	case CLIENT_STARTUP:
	case CLIENT_AUTH:
		if (cfg->client_login_timeout_us && age > cfg->client_login_timeout_us)
			my_client_fail(c, "08S01", "client_login_timeout");
		break;
	case CLIENT_WAITING: {
		char msg[240];
		if (client_core_wait_expired(&c->base, age, msg, sizeof(msg)))
			my_client_fail(c, "08S01", msg);
		break;
	}
	case CLIENT_IDLE: {
		int64_t limit = c->pool ? c->pool->t.client_idle_timeout_us : cfg->client_idle_timeout_us;
		if (limit && now_us - c->last_active_us > limit && age > limit)
			my_client_fail(c, "08S01", "client_idle_timeout");
		break;
	}
	default:
		break;
	}
}
