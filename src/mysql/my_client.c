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
#include "my_handover.h"
#include "my_mirror.h"
#include "my_ops.h"
#include "my_route.h"
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
	if (c->moving)
		return; /* out of this worker's loop: its new worker sets them (client_core_arrive) */
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
	my_client_fail_code(c, error_code_of(sqlstate), sqlstate, msg);
}

void my_client_fail_code(struct my_client *c, uint16_t code, const char *sqlstate, const char *msg)
{
	if (c->closing)
		return;
	uint8_t seq = c->login == MY_LOGIN_DONE ? 1 : c->seq;
	my_err_build(&c->sock.wbuf, seq, code, mysql_sqlstate(sqlstate), msg);
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
	if (c->mirror_tx)
		my_mirror_client_free(c);
	my_stmts_clear(&c->stmts);
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
	if (!c->pool && my_kill_refuse_without_pool(c, pk))
		return true;
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
	case MY_COM_PROCESS_KILL:
		my_kill_command(c, pk);
		return true;
	case MY_COM_CHANGE_USER:
		my_login_change_user(c, pk);
		return true;
	case MY_COM_BINLOG_DUMP:
	case MY_COM_DEBUG:
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
		 * would name an unrelated session on the server (my_kill.c). */
		if (my_query_is_kill(pk->payload + 1, pk->len - 1)) {
			my_kill_query(c, pk);
			return true;
		}
		my_screen_query(c, pk->payload, pk->len);
		return false;
	}
	case MY_COM_STMT_PREPARE:
		if (!my_stmt_enabled()) {
			c->pinned = true; /* its statements live in the server's session */
			c->pin_why = "COM_STMT_PREPARE (max_prepared_statements = 0)";
		}
		return false;
	case MY_COM_STMT_CLOSE:
	case MY_COM_STMT_RESET:
	case MY_COM_STMT_FETCH:
	case MY_COM_STMT_EXECUTE:
		return my_stmt_enabled() && my_stmt_command_here(c, pk);
	case MY_COM_SET_OPTION:
		/* The multi-statement option lives in the server's session. */
		c->pinned = true;
		c->pin_why = "COM_SET_OPTION (multi-statements on or off)";
		return false;
	case MY_COM_RESET_CONNECTION:
		return false;
	default:
		return false;
	}
}

static bool is_stmt_command(uint8_t cmd)
{
	return cmd == MY_COM_STMT_PREPARE || cmd == MY_COM_STMT_EXECUTE || cmd == MY_COM_STMT_SEND_LONG_DATA ||
	       cmd == MY_COM_STMT_RESET || cmd == MY_COM_STMT_FETCH;
}

/* A server for the command pk at the cursor: true when c has one now. */
static bool get_server(struct my_client *c, const struct my_packet *pk, bool partial)
{
	if (c->server && !my_route_may_follow(c, pk, partial) && !c->server->answering && !c->server->internal &&
	    !c->server->in_trans && !c->server->pinned && !c->server->kills && !c->sock.fwd &&
	    pgsock_quiet(&c->server->sock)) {
		/* Kept on a standby after a read (my_route.h): pk goes where
		 * it is routed now. */
		struct my_server *s = c->server;
		c->server = NULL;
		s->client = NULL;
		my_client_set_state(c, CLIENT_IDLE);
		pool_release(&s->base);
	}
	if (c->server)
		return true;
	const char *fail = NULL;
	struct pool *serving = my_route_pick(c, pk, partial); /* c->pool, or a standby's */
	struct server *s = pool_acquire(serving, &c->base, &fail);
	if (fail) {
		my_client_fail(c, "08004", fail);
		return false;
	}
	if (!s) {
		/* Queued; read on while there is room (process waits for
		 * the server), which saves two epoll_ctl per wait. */
		my_client_set_state(c, CLIENT_WAITING);
		if (pgsock_rbuf_full(&c->sock))
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
			if (!c->closing && c->login == MY_LOGIN_TLS) {
				my_login_start_tls(c);
				return;
			}
			continue;
		}
		if (c->state == CLIENT_WAITING)
			break; /* queued for a server: my_client_on_server goes on */
		if (c->killing)
			break; /* its KILL's answer reads on (my_kill.c) */
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
		 * answer is through, but for a LOCAL INFILE's file and the
		 * rest of a 16 MiB - 1 packet. */
		if (c->server && (c->server->answering || c->server->internal) && !c->infile && !c->continued) {
			/* Reading on costs nothing while the client waits for its
			 * answer, and saves two epoll_ctl per command; only a full
			 * buffer must stop it (my_client_answered reads on). */
			if (pgsock_rbuf_full(&c->sock))
				c->sock.want_read = false;
			break;
		}
		if (c->server && c->sock.fwd && !c->infile && !c->continued) {
			/* The last command had no answer (SEND_LONG_DATA) and is not
			 * all sent: the next one may need to be rewritten or dropped,
			 * which the buffer allows once it has left. */
			c->wait_flush = true;
			c->sock.want_read = false;
			break;
		}
		bool partial = false;
		if (!whole) {
			/* A command longer than the receive buffer goes on as it
			 * comes (a long INSERT): judged by its first bytes. */
			if (avail < MY_HEADER_LEN + 1 || !pgsock_rbuf_full(&c->sock))
				break;
			if (c->infile || c->continued) {
				/* A file packet or the rest of a 16 MiB - 1 one, longer
				 * than the buffer (PyMySQL sends 16 KiB file packets):
				 * on as it comes. */
				uint32_t len = my_header_len(pgsock_cursor(&c->sock));
				c->continued = len == MY_MAX_PAYLOAD;
				c->sock.fwd += avail;
				c->skip_cmd = MY_HEADER_LEN + len - avail;
				my_server_send_pending(c->server);
				continue;
			}
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
		if (partial && pk.payload[0] == MY_COM_QUERY && (c->caps & MY_CLIENT_MULTI_STATEMENTS)) {
			c->pinned = true; /* a second statement may hide beyond the buffer */
			c->pin_why = "a multi-statement query longer than the receive buffer";
		}
		bool stmt = my_stmt_enabled() && is_stmt_command(pk.payload[0]);
		if (stmt && partial && pk.payload[0] == MY_COM_STMT_PREPARE) {
			/* Its text is kept: wait for all of it. */
			if (MY_HEADER_LEN + full > IOBUF_MAX) {
				my_client_fail(c, "08S01", "prepared statement text longer than 1 MiB");
				return;
			}
			if (iobuf_reserve(&c->sock.rbuf, full - pk.len) < 0) {
				my_client_fail(c, "53200", "out of memory");
				return;
			}
			break;
		}
		if (command_here(c, &pk))
			continue;
		if (!get_server(c, &pk, partial))
			return; /* waiting, failed, or processed on its new server */
		if (c->reads_insert_id) {
			c->reads_insert_id = false;
			if (c->last_insert_id != c->server->last_insert_id) {
				/* Its own LAST_INSERT_ID(), not the last client's on
				 * this server: set first, then the command (screened
				 * again on my_client_resume). */
				if (!my_server_restore_insert_id(c->server, c->last_insert_id)) {
					my_client_fail(c, "53200", "out of memory");
					return;
				}
				break;
			}
		}
		if (c->mirror_chan || c->mirror_tx || c->mirror_cfg != runtime_config())
			my_mirror_client_command(c, &pk, partial); /* before ids are rewritten */
		if (stmt) {
			enum my_stmt_verdict v = my_stmt_command(c, &pk, full);
			if (v != MY_STMT_FORWARD && v != MY_STMT_SENT && c->mirror_tx)
				my_mirror_client_unsee(c); /* not forwarded now */
			if (v == MY_STMT_GONE)
				return;
			if (v == MY_STMT_WAIT) {
				c->sock.want_read = false; /* my_client_resume reads on */
				break;
			}
			if (v == MY_STMT_ANSWERED) {
				my_client_answered(c);
				return;
			}
			if (v == MY_STMT_SENT)
				continue;
		}
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
	    c->pool->mode != POOL_MODE_SESSION && c->sock.fwd == 0 && !s->kills) {
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
	my_handover_at_rest(c);
}

/* ---- events and ticks ---- */

static void client_cb(struct loop_handle *h, uint32_t revents)
{
	struct my_client *c = (struct my_client *)((char *)h - offsetof(struct my_client, sock.h));
	if (c->closing)
		return;
	if (c->login == MY_LOGIN_TLS) {
		my_login_tls_step(c);
		return;
	}
	if (revents & EPOLLOUT) {
		if (c->server) {
			my_server_deliver_pending(c->server);
			if (c->closing || c->moving)
				return;
		} else if (!my_client_flush_own(c)) {
			return;
		}
	}
	if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		int n = my_login_reads_exactly(c) ? my_login_read_first(c) : pgsock_read(&c->sock);
		if (n == 0 && c->server && (c->server->answering || c->server->internal)) {
			/* Gone while its command is answered: the answer ends first,
			 * so the server goes back clean (the EOF is read again). */
			c->sock.want_read = false;
			my_client_update_events(c);
			return;
		}
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

/* ---- taken over (my_handover.c) ---- */

struct my_client *my_client_adopt(struct worker *w, int fd, const char *peer)
{
	struct my_client *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return NULL;
	}
	client_core_init(&c->base, &my_ops, w, fd, peer, client_cb);
	runtime_clients_add(1);
	c->login = MY_LOGIN_DONE;
	my_client_set_state(c, CLIENT_IDLE);
	return c;
}

/* COM_CHANGE_USER gives the client a new session, as it does on a server:
 * what sluice keeps of the old one goes (its schema is the new pool's,
 * set by the login). Per-client session state added later is cleared
 * here too. */
void my_client_session_cleared(struct my_client *c)
{
	c->schema[0] = '\0';
	c->want_schema[0] = '\0';
	c->autocommit_off = false;
	c->pinned = false;
	c->infile = false;
	c->continued = false;
	c->skip_cmd = 0;
	c->reads_insert_id = false;
	c->last_insert_id = 0;
	c->pin_why = NULL;
	c->mirror_cfg = NULL; /* judged again: maybe another pool */
	my_stmts_clear(&c->stmts); /* a server's session loses its statements too */
	my_session_client_free(c); /* its variables: a new session has none set */
}
