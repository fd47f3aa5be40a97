/*
 * my_server.c - the MySQL server state machine: connect, the
 * server->client direction of the command phase (answers tracked to their
 * end, sluice's own commands ahead of a client's), and giving a session
 * back to the pool or to a reset. Logging in and the reset itself are
 * my_server_login.c's.
 */
#include "my_conn.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "config.h"
#include "log.h"
#include "my_mirror.h"
#include "my_monitor.h"
#include "my_ops.h"
#include "my_route.h"
#include "pool.h"
#include "runtime.h"
#include "stats.h"
#include "worker.h"

static void server_cb(struct loop_handle *h, uint32_t revents);
static bool process(struct my_server *s);

void my_server_update_events(struct my_server *s)
{
	/* A MySQL server speaks first: a connect is done when its greeting
	 * comes (or fails with an error event). */
	bool want_write = iobuf_len(&s->sock.wbuf) || (s->client && s->client->sock.fwd);
	if (pgsock_update(&s->worker->loop, &s->sock, want_write) < 0)
		my_server_close(s, "epoll failure");
}

void my_server_launch(struct worker *w, struct pool *p)
{
	struct my_server *s = calloc(1, sizeof(*s));
	if (!s) {
		pool_login_failed(p, "53200", "out of memory", false);
		pool_server_gone(p, SERVER_CONNECTING);
		return;
	}
	char msg[200];
	if (server_core_connect(&s->base, p, w, server_cb, msg, sizeof(msg)) < 0) {
		my_server_login_fail(s, "08006", msg, false);
		return;
	}
	SLOG(s, LOG_LEVEL_DEBUG, "connecting");
	s->sock.want_read = true;
	my_server_update_events(s);
}

struct my_server *my_server_launch_aside(struct worker *w, struct pool *p, int host, int kind, char *err,
					 size_t errlen)
{
	struct my_server *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->aside = (uint8_t)kind;
	s->host_index = host;
	if (server_core_connect(&s->base, p, w, server_cb, err, errlen) < 0) {
		s->closed = true; /* nobody to tell but the caller */
		pgsock_close(&w->loop, &s->sock);
		worker_bury_server(w, &s->base);
		return NULL;
	}
	s->sock.want_read = true;
	my_server_update_events(s);
	return s;
}

void my_server_close(struct my_server *s, const char *reason)
{
	if (s->closed)
		return;
	s->closed = true;
	if (s->kills)
		my_kill_forget_server(s);
	bool was_connecting = s->state == SERVER_CONNECTING || s->state == SERVER_LOGIN;
	/* A monitor's failures are the route's to tell (once per change). */
	SLOG(s, s->aside ? LOG_LEVEL_DEBUG : was_connecting ? LOG_LEVEL_WARNING : LOG_LEVEL_INFO, "closing because: %s",
	     reason);
	/* Any end before the login completes is a failed login: without the
	 * server_login_retry pause the pool would reconnect in a tight loop. */
	if (was_connecting && s->login_step < 2 && !s->aside)
		server_core_host_failed(&s->base, "08006", reason, false);
	struct my_client *c = s->client;
	s->client = NULL;
	if (c) {
		c->server = NULL;
		char msg[200];
		snprintf(msg, sizeof(msg), "Lost connection to server: %s", reason);
		my_client_server_lost(c, msg);
	}
	if (!was_connecting && s->sock.h.fd >= 0) {
		/* COM_QUIT, a polite goodbye; failure does not matter. */
		uint8_t quit[5] = { 1, 0, 0, 0, MY_COM_QUIT };
		if (send(s->sock.h.fd, quit, sizeof(quit), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			(void)0;
	}
	if (s->aside == SERVER_MIRROR)
		my_mirror_closed(s, reason);
	else if (s->aside)
		my_monitor_closed(s, reason);
	server_core_close(&s->base);
}

void my_server_free(struct my_server *s)
{
	my_server_stmts_clear(&s->stmts);
	list_del(&s->node);
	my_session_server_clear(s);
	free(s);
}

/* ---- command phase ---- */

bool my_server_send_internal(struct my_server *s, int kind, uint8_t command, const void *data, size_t len)
{
	if (s->internal >= sizeof(s->internal_kind) || len >= MY_MAX_PAYLOAD)
		return false;
	int off = my_begin(&s->sock.wbuf, 0);
	if (off < 0 || my_put_u8(&s->sock.wbuf, command) < 0 || iobuf_append(&s->sock.wbuf, data, (uint32_t)len) < 0 ||
	    my_end(&s->sock.wbuf, off) < 0)
		return false;
	s->internal_kind[s->internal++] = (uint8_t)kind;
	return true;
}

/* A command of sluice's own (command byte and its text) ahead of the
 * client's. */
static bool send_internal(struct my_server *s, int kind, uint8_t command, const char *text)
{
	return my_server_send_internal(s, kind, command, text, strlen(text));
}

void my_server_link(struct my_server *s, struct my_client *c)
{
	s->client = c;
	c->server = s;
	server_core_set_state(&s->base, SERVER_ACTIVE);
	s->sock.want_read = true;
	stats_add(&pool_stats(s->pool, s->worker)->assigns, 1);
	/* The session must be in the client's database, with its autocommit,
	 * before its command (which waits for these answers). */
	if (strcmp(s->schema, c->schema) != 0) {
		snprintf(s->want_schema, sizeof(s->want_schema), "%s", c->schema);
		if (!send_internal(s, MY_INTERNAL_INIT_DB, MY_COM_INIT_DB, c->schema))
			s->pinned = true; /* cannot say it: the session is not clean */
	}
	if (s->autocommit_off != c->autocommit_off &&
	    !send_internal(s, MY_INTERNAL_AUTOCOMMIT, MY_COM_QUERY, c->autocommit_off ? "SET autocommit=0" : "SET autocommit=1"))
		s->pinned = true;
	char set[8192];
	int n = my_session_restore(s, c, set, sizeof(set));
	if (n < 0 || (n > 0 && !send_internal(s, MY_INTERNAL_SESSION, MY_COM_QUERY, set)))
		s->pinned = true;
	if (s->internal)
		my_server_send_pending(s);
}

bool my_server_restore_insert_id(struct my_server *s, uint64_t id)
{
	char text[64];
	snprintf(text, sizeof(text), "DO LAST_INSERT_ID(%llu)", (unsigned long long)id);
	if (!send_internal(s, MY_INTERNAL_INSERT_ID, MY_COM_QUERY, text))
		return false;
	s->want_insert_id = id;
	my_server_send_pending(s);
	return true;
}

void my_server_forward(struct my_server *s, const uint8_t *cmd, uint32_t len)
{
	if (my_command_answered(cmd[0])) {
		my_answer_begin(&s->answer, cmd, len, s->caps);
		s->answering = true;
	}
	my_server_send_pending(s);
	if (!s->answering && s->client)
		my_client_answered(s->client);
}

void my_server_send_pending(struct my_server *s)
{
	struct my_client *c = s->client;
	int rc = pgsock_flush(&s->sock, c ? &c->sock : NULL);
	if (rc < 0 && rc != -EAGAIN) {
		my_server_close(s, "write failed");
		return;
	}
	my_server_update_events(s);
	if (c)
		my_client_update_events(c);
}

bool my_server_deliver_pending(struct my_server *s)
{
	struct my_client *c = s->client;
	if (!c)
		return false;
	int rc = pgsock_flush(&c->sock, &s->sock);
	if (rc < 0 && rc != -EAGAIN) {
		my_client_close(c, "write failed");
		return true;
	}
	my_server_update_events(s);
	if (rc == 0 && !s->answering && !s->internal) {
		my_client_answered(c); /* s may be back in the pool: not ours now */
		return true;
	}
	my_client_update_events(c);
	return false;
}

static void pop_internal(struct my_server *s)
{
	s->internal--;
	memmove(s->internal_kind, s->internal_kind + 1, s->internal);
	s->internal_started = false;
}

/* The client's waiting command gets the ERR packet payload (sluice's
 * re-prepare of its statement failed) and goes unsent. */
static void refuse_waiting_command(struct my_server *s, const struct my_packet *err)
{
	struct my_client *c = s->client;
	if (!c)
		return;
	struct my_packet pk;
	if (c->sock.fwd || !my_packet_peek(pgsock_cursor(&c->sock), pgsock_unexamined(&c->sock), &pk)) {
		my_client_fail(c, "HY000", "could not prepare the statement on another server connection");
		return;
	}
	pgsock_drop(&c->sock, MY_HEADER_LEN + pk.len);
	my_packet_put(&c->sock.wbuf, 1, err->payload, err->len);
	s->answered_meanwhile = true;
}

/* A packet of the answer to sluice's own COM_STMT_PREPARE (OK, parameter
 * and column definitions). False when s was closed. */
static bool internal_prepare_answer(struct my_server *s, const struct my_packet *pk)
{
	if (!s->internal_started) {
		uint8_t cmd = MY_COM_STMT_PREPARE;
		my_answer_begin(&s->answer, &cmd, 1, s->caps);
		s->internal_started = true;
		if (!my_stmt_internal_prepared(s, pk->payload, pk->len))
			refuse_waiting_command(s, pk);
	}
	int r = my_answer_feed(&s->answer, pk->payload, pk->len);
	if (r == MY_ANSWER_BAD) {
		my_server_close(s, "protocol error: unexpected packet in the answer to a prepare");
		return false;
	}
	if (r == MY_ANSWER_DONE)
		pop_internal(s);
	return true;
}

/* A packet of the answer to sluice's SELECT of session values (a result
 * set of one row). False when s was closed. */
static bool internal_learn_answer(struct my_server *s, const struct my_packet *pk)
{
	if (!s->internal_started) {
		uint8_t cmd = MY_COM_QUERY;
		my_answer_begin(&s->answer, &cmd, 1, s->caps);
		s->internal_started = true;
		if (pk->len && pk->payload[0] == 0xff && s->client)
			my_session_learned(s->client, s, NULL, 0);
	}
	bool row = my_answer_in_rows(&s->answer);
	int r = my_answer_feed(&s->answer, pk->payload, pk->len);
	if (r == MY_ANSWER_BAD) {
		my_server_close(s, "protocol error: unexpected packet in the answer to a SELECT of session values");
		return false;
	}
	if (row && r == MY_ANSWER_MORE && s->client)
		my_session_learned(s->client, s, pk->payload, pk->len);
	if (r == MY_ANSWER_DONE)
		pop_internal(s);
	return true;
}

/* The answer to a command sluice sent itself. */
static void internal_answer(struct my_server *s, const struct my_packet *pk)
{
	int kind = s->internal_kind[0];
	pop_internal(s);
	struct my_ok ok;
	if (pk->len && pk->payload[0] == 0x00 && my_ok_parse(pk->payload, pk->len, s->caps, &ok) == 0) {
		if (kind == MY_INTERNAL_INIT_DB)
			snprintf(s->schema, sizeof(s->schema), "%s", s->want_schema);
		if (kind == MY_INTERNAL_INSERT_ID)
			s->last_insert_id = s->want_insert_id;
		if (kind == MY_INTERNAL_SESSION && s->client && !my_session_restored(s, s->client))
			s->pinned = true;
		s->autocommit_off = !(ok.status & MY_STATUS_AUTOCOMMIT);
		return; /* process() lets the client's command go */
	}
	char msg[300], what[120];
	if (kind == MY_INTERNAL_INIT_DB || kind == MY_INTERNAL_STMT_SCHEMA)
		snprintf(what, sizeof(what), "Could not switch to database '%s'",
			 kind == MY_INTERNAL_INIT_DB ? s->want_schema : "of a prepared statement");
	else if (kind == MY_INTERNAL_INSERT_ID)
		snprintf(what, sizeof(what), "Could not set the session's LAST_INSERT_ID()");
	else if (kind == MY_INTERNAL_SESSION)
		snprintf(what, sizeof(what), "Could not restore the session's variables");
	else
		snprintf(what, sizeof(what), "Could not set the session's autocommit");
	my_err_text(pk->payload, pk->len, what, msg, sizeof(msg));
	struct my_client *c = s->client;
	if (c) {
		s->client = NULL;
		c->server = NULL;
		my_client_fail(c, kind == MY_INTERNAL_INIT_DB ? "42000" : "HY000", msg);
	}
	my_server_close(s, msg);
}

/* A SET that gave variables values from expressions: ask the server for
 * them (SELECT @@session.x, ...) before the server goes on. */
static void learn_session_values(struct my_server *s, struct my_client *c)
{
	char query[600];
	int n = my_session_learn_query(c, query, sizeof(query));
	if (n == 0)
		return;
	if (n < 0 || !send_internal(s, MY_INTERNAL_LEARN, MY_COM_QUERY, query)) {
		my_session_learned(c, s, NULL, 0); /* pins */
		return;
	}
	s->answered_meanwhile = true;
	my_server_send_pending(s);
}

static void answered(struct my_server *s)
{
	struct my_client *c = s->client;
	s->answering = false;
	if (s->answer.status_known) {
		s->in_trans = (s->answer.status & MY_STATUS_IN_TRANS) != 0;
		s->autocommit_off = !(s->answer.status & MY_STATUS_AUTOCOMMIT);
		if (c)
			c->autocommit_off = s->autocommit_off; /* SET autocommit, or a procedure's */
	}
	struct stats_slot *st = pool_stats(s->pool, s->worker);
	stats_add(&st->queries, 1);
	if (!s->in_trans)
		stats_add(&st->xacts, 1);
	if (!c)
		return;
	if (!s->in_trans)
		my_route_tx_end(c, s); /* read-your-writes */
	bool ok = s->answer.status_known;
	if (s->answer.last_insert_id)
		c->last_insert_id = s->last_insert_id = s->answer.last_insert_id;
	if (ok && c->want_schema[0]) {
		snprintf(c->schema, sizeof(c->schema), "%s", c->want_schema);
		snprintf(s->schema, sizeof(s->schema), "%s", c->want_schema);
	}
	c->want_schema[0] = '\0';
	my_session_answered(c, s, ok);
	if (ok)
		learn_session_values(s, c);
	if (ok && s->answer.command == MY_COM_RESET_CONNECTION) {
		c->pinned = s->pinned = false;
		c->pin_why = NULL;
		my_session_reset_connection(c, s);
		my_stmts_clear(&c->stmts);
		my_server_stmts_clear(&s->stmts);
	}
	if (c->pinned)
		s->pinned = true;
}

/* Returns true when s is no longer this caller's to touch (closed, or
 * back in the pool). */
static bool process(struct my_server *s)
{
	while (!s->closed) {
		uint32_t avail = pgsock_unexamined(&s->sock);
		if (s->skip_rows) {
			/* The rest of a packet too long for the buffer: on as it comes. */
			uint32_t n = avail < s->skip_rows ? avail : s->skip_rows;
			if (!n)
				break;
			s->sock.fwd += n;
			s->skip_rows -= n;
			continue;
		}
		struct my_packet pk;
		int whole = my_packet_peek(pgsock_cursor(&s->sock), avail, &pk);
		if (s->aside == SERVER_MIRROR && (s->state == SERVER_IDLE || s->state == SERVER_CHECK)) {
			/* A mirror's answers are my_mirror.c's. */
			if (!whole) {
				if (my_mirror_partial(s, avail))
					return true;
				break;
			}
			if (my_mirror_packet(s, &pk))
				return true;
			continue;
		}
		if (s->role_query) {
			/* sluice's role query (routed pools, my_monitor.c). */
			if (!whole) {
				if (avail >= MY_HEADER_LEN && pgsock_rbuf_full(&s->sock))
					my_server_close(s, "role check: answer too long");
				if (s->closed)
					return true;
				break;
			}
			if (my_monitor_packet(s, &pk))
				return true;
			continue;
		}
		if (s->state == SERVER_CHECK) {
			/* The answer to server_check's COM_PING. */
			if (!whole)
				break;
			bool ok = pk.len && pk.payload[0] == 0x00;
			pgsock_drop(&s->sock, MY_HEADER_LEN + pk.len);
			if (!ok) {
				my_server_close(s, "server check (COM_PING) failed");
				return true;
			}
			pool_release(&s->base);
			return true;
		}
		if (s->state == SERVER_CONNECTING || s->state == SERVER_LOGIN || s->state == SERVER_RESET) {
			if (!whole) {
				if (avail >= MY_HEADER_LEN && pgsock_rbuf_full(&s->sock))
					my_server_login_fail(s, "08P01", "login packet too long", false);
				break;
			}
			/* Handled after it left the buffer (logged in, s may be
			 * handed to another worker at once): from a copy. */
			uint8_t copy[2048];
			if (pk.len > sizeof(copy)) {
				my_server_login_fail(s, "08P01", "login packet too long", false);
				return true;
			}
			memcpy(copy, pk.payload, pk.len);
			pk.payload = copy;
			bool done = s->login_step == 1 && pk.len && pk.payload[0] == 0x00;
			pgsock_drop(&s->sock, MY_HEADER_LEN + pk.len);
			my_server_login_packet(s, &pk);
			if (done)
				return true; /* in the pool now */
			continue;
		}
		if (!whole) {
			/* A row longer than the buffer (never an OK, EOF or
			 * ERR): the tracker sees a one-byte row. */
			if (avail >= MY_HEADER_LEN && pgsock_rbuf_full(&s->sock) && s->answering &&
			    !s->internal && s->client) {
				static const uint8_t row[1] = { 0 };
				if (!s->continued && my_answer_feed(&s->answer, row, 1) != MY_ANSWER_MORE) {
					my_server_close(s, "protocol error: a long packet ends the answer");
					return true;
				}
				uint32_t len = my_header_len(pgsock_cursor(&s->sock));
				if (s->client->mirror_tx)
					my_mirror_primary_unseen(s->client);
				s->continued = len == MY_MAX_PAYLOAD;
				s->skip_rows = MY_HEADER_LEN + len - avail;
				s->sock.fwd += avail;
				continue;
			}
			break;
		}
		if (s->internal) {
			if (s->internal_kind[0] == MY_INTERNAL_PREPARE) {
				if (!internal_prepare_answer(s, &pk))
					return true;
			} else if (s->internal_kind[0] == MY_INTERNAL_LEARN) {
				if (!internal_learn_answer(s, &pk))
					return true;
			} else {
				internal_answer(s, &pk);
				if (s->closed)
					return true;
			}
			pgsock_drop(&s->sock, MY_HEADER_LEN + pk.len);
			if (!s->internal && s->client) {
				if (s->answered_meanwhile) {
					/* The client's command was answered with the error. */
					s->answered_meanwhile = false;
					my_client_answered(s->client);
					return true;
				}
				my_client_resume(s->client);
			}
			continue;
		}
		if (!s->answering || !s->client) {
			/* MariaDB says why before it closes an idle session
			 * (wait_timeout); anything else is a surprise. */
			my_server_close(s, s->answering ? "client gone mid-answer" : "unexpected packet from the server");
			return true;
		}
		s->sock.fwd += MY_HEADER_LEN + pk.len;
		if (s->continued) {
			s->continued = pk.len == MY_MAX_PAYLOAD;
			continue;
		}
		s->continued = pk.len == MY_MAX_PAYLOAD;
		if (s->answer.command == MY_COM_STMT_PREPARE && s->client->stmts.preparing)
			my_stmt_prepare_answer(s, (uint8_t *)pk.payload, pk.len); /* in rbuf, not sent yet */
		bool rows = s->client->mirror_tx && my_answer_in_rows(&s->answer);
		int r = my_answer_feed(&s->answer, pk.payload, pk.len);
		if (s->client->mirror_tx)
			my_mirror_primary_packet(s, &pk, rows, r);
		if (r == MY_ANSWER_BAD) {
			my_server_close(s, "protocol error: unexpected packet in an answer");
			return true;
		}
		if (r == MY_ANSWER_INFILE) {
			s->client->infile = true;
			s->client->sock.want_read = true;
			my_client_update_events(s->client);
		}
		if (r == MY_ANSWER_DONE) {
			my_session_tracked(s, pk.payload, pk.len);
			answered(s);
			break;
		}
	}
	if (s->closed)
		return true;
	return s->client ? my_server_deliver_pending(s) : false;
}

/* ---- reset, ticks, events ---- */

bool my_server_at_boundary(const struct my_server *s)
{
	return !s->answering && !s->internal && !s->in_trans && pgsock_quiet(&s->sock) &&
	       (!s->client || pgsock_quiet(&s->client->sock));
}

void my_server_client_gone(struct my_server *s)
{
	if (s->answering || s->internal || s->sock.fwd || iobuf_len(&s->sock.rbuf)) {
		my_server_close(s, "client gone before the answer ended");
		return;
	}
	if (s->kills) {
		/* A KILL QUERY on its way would hit the next client's command. */
		my_server_close(s, "client gone while a KILL QUERY for it is on its way");
		return;
	}
	if (s->in_trans || s->pinned || s->pool->mode == POOL_MODE_SESSION) {
		if (!my_server_reset_session(s))
			my_server_close(s, "out of memory");
		return;
	}
	pool_release(&s->base);
}

void my_server_check(struct my_server *s)
{
	uint8_t ping = MY_COM_PING;
	server_core_set_state(&s->base, SERVER_CHECK);
	if (my_packet_put(&s->sock.wbuf, 0, &ping, 1) < 0) {
		my_server_close(s, "out of memory");
		return;
	}
	s->sock.want_read = true;
	my_server_send_pending(s);
}

void my_server_watch_idle(struct my_server *s)
{
	s->sock.want_read = true;
	my_server_update_events(s);
}

void my_server_detach(struct my_server *s)
{
	loop_forget(&s->worker->loop, &s->sock.h);
	list_del(&s->node);
	s->worker = NULL;
}

void my_server_tick(struct my_server *s, int64_t now_us)
{
	const char *why = server_core_idle_due(&s->base, now_us);
	if (!why && s->state == SERVER_RESET) {
		const struct config *cfg = runtime_config();
		if (cfg->server_connect_timeout_us && now_us - s->state_since_us > cfg->server_connect_timeout_us)
			why = "reset not answered within server_connect_timeout";
	}
	if (why)
		my_server_close(s, why);
}

static void server_cb(struct loop_handle *h, uint32_t revents)
{
	struct my_server *s = (struct my_server *)((char *)h - offsetof(struct my_server, sock.h));
	if (s->closed)
		return;
	if (s->tls_handshaking) {
		my_server_tls_step(s);
		return;
	}
	if (revents & EPOLLOUT) {
		my_server_send_pending(s);
		if (s->closed)
			return;
	}
	if (s->state == SERVER_IDLE && !s->aside && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
		/* MariaDB says why before it closes an idle session
		 * (wait_timeout): either way the session is over. */
		if (pool_take_idle(&s->base))
			my_server_close(s, "server closed an idle connection");
		return;
	}
	if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		int n = pgsock_read(&s->sock);
		if (n == 0 || (n < 0 && n != -EAGAIN && n != -ENOBUFS)) {
			my_server_close(s, n == 0 ? "server closed the connection" : pgsock_read_failure(n, "server"));
			return;
		}
		if (n > 0)
			stats_add(&pool_stats(s->pool, s->worker)->bytes_out, (uint64_t)n);
		if (process(s))
			return;
	}
	if (!s->closed)
		my_server_update_events(s);
}
