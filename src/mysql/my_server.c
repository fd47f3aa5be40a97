/*
 * my_server.c - the MySQL server state machine: connect, log in with the
 * pool's user (mysql_native_password or caching_sha2_password, with
 * AuthSwitchRequest and, for a full caching_sha2 authentication without
 * TLS, the server's RSA key), the server->client direction of the command
 * phase, and the reset before a session goes to another client
 * (COM_CHANGE_USER: it re-authenticates and clears the session, character
 * set included, which COM_RESET_CONNECTION would not restore).
 */
#include "my_conn.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <openssl/crypto.h>

#include "config.h"
#include "log.h"
#include "my_ops.h"
#include "pool.h"
#include "runtime.h"
#include "stats.h"
#include "worker.h"

#define SLOG(s, lvl, fmt, ...) \
	log_write(lvl, "S-%llu %s/%s@%s mysql " fmt, (unsigned long long)(s)->id, (s)->pool->db_name, \
		  (s)->pool->user, server_core_host(&(s)->base)->addr_text, ##__VA_ARGS__)

#define NATIVE "mysql_native_password"
#define SHA2 "caching_sha2_password"

/* What sluice asks of every server, beside the client's part (the pool's
 * variant). Not CONNECT_ATTRS, SSL or COMPRESS. */
#define MY_SERVER_BASE_CAPS                                                                             \
	(MY_CLIENT_LONG_PASSWORD | MY_CLIENT_LONG_FLAG | MY_CLIENT_CONNECT_WITH_DB | MY_CLIENT_PROTOCOL_41 | \
	 MY_CLIENT_TRANSACTIONS | MY_CLIENT_SECURE_CONNECTION | MY_CLIENT_PLUGIN_AUTH |                     \
	 MY_CLIENT_PLUGIN_AUTH_LENENC)

static void server_cb(struct loop_handle *h, uint32_t revents);
static bool process(struct my_server *s);

static void update_events(struct my_server *s)
{
	/* A MySQL server speaks first: a connect is done when its greeting
	 * comes (or fails with an error event). */
	bool want_write = iobuf_len(&s->sock.wbuf) || (s->client && s->client->sock.fwd);
	if (pgsock_update(&s->worker->loop, &s->sock, want_write) < 0)
		my_server_close(s, "epoll failure");
}

static void login_fail(struct my_server *s, const char *sqlstate, const char *msg, bool auth_error)
{
	if (!server_core_host_failed(&s->base, sqlstate, msg, auth_error))
		SLOG(s, LOG_LEVEL_WARNING, "trying the next host: %s", msg);
	s->login_step = 2; /* reported */
	my_server_close(s, msg);
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
		login_fail(s, "08006", msg, false);
		return;
	}
	SLOG(s, LOG_LEVEL_DEBUG, "connecting");
	s->sock.want_read = true;
	update_events(s);
}

void my_server_close(struct my_server *s, const char *reason)
{
	if (s->closed)
		return;
	s->closed = true;
	bool was_connecting = s->state == SERVER_CONNECTING || s->state == SERVER_LOGIN;
	SLOG(s, was_connecting ? LOG_LEVEL_WARNING : LOG_LEVEL_INFO, "closing because: %s", reason);
	/* Any end before the login completes is a failed login: without the
	 * server_login_retry pause the pool would reconnect in a tight loop. */
	if (was_connecting && s->login_step < 2)
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
	server_core_close(&s->base);
}

void my_server_free(struct my_server *s)
{
	list_del(&s->node);
	free(s);
}

/* ---- logging in ---- */

/* The answer to nonce for plugin, with the pool's password. Returns the
 * plugin answered for (mysql_native_password for one sluice does not know). */
/* The password to log in with: the [databases] entry's, else auth_file's
 * for the server user when it is in plain text ("" otherwise: a MySQL
 * server needs the password itself, not a hash of it). */
static const char *password(const struct my_server *s)
{
	if (s->pool->server_password)
		return s->pool->server_password;
	const char *pw = config_find_secret(runtime_config(), s->pool->server_user);
	if (!pw || (pw[0] == '*' && strlen(pw) == 41) || strncmp(pw, "md5", 3) == 0 ||
	    strncmp(pw, "SCRAM-SHA-256$", 14) == 0)
		return "";
	return pw;
}

static const char *auth_answer(struct my_server *s, const char *plugin, const uint8_t *nonce, uint8_t *out,
			       uint32_t *len)
{
	const char *pw = password(s);
	if (strcmp(plugin, SHA2) == 0) {
		my_sha2_answer(pw, nonce, out, len);
		return SHA2;
	}
	my_native_answer(pw, nonce, out, len);
	return NATIVE;
}

static void handle_greeting(struct my_server *s, const struct my_packet *pk)
{
	if (pk->len && pk->payload[0] == 0xff) {
		struct my_err e;
		char msg[300];
		if (my_err_parse(pk->payload, pk->len, &e) == 0)
			snprintf(msg, sizeof(msg), "server refused the connection: %.*s", (int)e.msg_len, e.msg);
		else
			snprintf(msg, sizeof(msg), "server refused the connection");
		login_fail(s, "08004", msg, false);
		return;
	}
	struct my_handshake h;
	if (my_handshake_parse(pk->payload, pk->len, &h) < 0) {
		login_fail(s, "08P01", "not a MySQL server (bad greeting)", false);
		return;
	}
	const uint8_t *v = s->pool->variant;
	uint32_t want = v ? (uint32_t)v[0] | (uint32_t)v[1] << 8 | (uint32_t)v[2] << 16 | (uint32_t)v[3] << 24 : 0;
	uint32_t caps = (MY_SERVER_BASE_CAPS | want) & h.caps;
	if ((caps & want) != want) {
		char msg[200];
		snprintf(msg, sizeof(msg), "server lacks capabilities its clients use (0x%x)", want & ~caps);
		login_fail(s, "08004", msg, false);
		return;
	}
	s->caps = caps;
	s->conn_id = h.conn_id;
	memcpy(s->scramble, h.scramble, MY_SCRAMBLE_LEN);
	struct my_response r = {
		.caps = caps,
		.max_packet = 1u << 24,
		.charset = v ? v[4] : 45,
		.has_db = true,
	};
	snprintf(r.user, sizeof(r.user), "%s", s->pool->server_user);
	snprintf(r.db, sizeof(r.db), "%s", s->pool->server_db);
	const char *plugin = auth_answer(s, h.auth_plugin, h.scramble, r.auth, &r.auth_len);
	snprintf(r.auth_plugin, sizeof(r.auth_plugin), "%s", plugin);
	snprintf(s->plugin, sizeof(s->plugin), "%s", plugin);
	s->seq = (uint8_t)(pk->seq + 1);
	int rc = my_response_build(&s->sock.wbuf, s->seq++, &r);
	OPENSSL_cleanse(r.auth, sizeof(r.auth));
	if (rc < 0) {
		login_fail(s, "53200", "out of memory", false);
		return;
	}
	s->login_step = 1;
	server_core_set_state(&s->base, SERVER_LOGIN);
	my_server_send_pending(s);
}

/* The login (or a COM_CHANGE_USER reset) is through. */
static void logged_in(struct my_server *s, const struct my_packet *pk)
{
	struct my_ok ok;
	snprintf(s->schema, sizeof(s->schema), "%s", s->pool->server_db);
	s->pinned = false;
	s->in_trans = false;
	/* The server's default, or what a reset left. */
	s->autocommit_off = my_ok_parse(pk->payload, pk->len, s->caps, &ok) == 0 && !(ok.status & MY_STATUS_AUTOCOMMIT);
	if (s->state == SERVER_LOGIN)
		SLOG(s, LOG_LEVEL_DEBUG, "logged in (connection id %u)", s->conn_id);
	pool_release(&s->base);
}

/* A packet of the login (or of a reset's COM_CHANGE_USER). */
static void handle_auth(struct my_server *s, const struct my_packet *pk)
{
	const uint8_t *p = pk->payload;
	s->seq = (uint8_t)(pk->seq + 1);
	if (pk->len == 0) {
		login_fail(s, "08P01", "empty packet during login", false);
		return;
	}
	if (p[0] == 0x00) {
		logged_in(s, pk);
		return;
	}
	if (p[0] == 0xff && s->state == SERVER_RESET) {
		my_server_close(s, "the server refused to reset the session (COM_CHANGE_USER)");
		return;
	}
	if (p[0] == 0xff) {
		struct my_err e;
		char msg[300];
		bool parsed = my_err_parse(p, pk->len, &e) == 0;
		snprintf(msg, sizeof(msg), "%.*s", parsed ? (int)e.msg_len : 0, parsed ? e.msg : "");
		bool denied = parsed && (e.code == 1045 || e.code == 1044 || e.code == 1049 || e.code == 1698);
		login_fail(s, parsed ? e.sqlstate : "28000", msg[0] ? msg : "login refused", denied);
		return;
	}
	if (p[0] == 0xfe) { /* AuthSwitchRequest */
		char plugin[64];
		const uint8_t *data;
		uint32_t dlen;
		if (my_auth_switch_parse(p, pk->len, plugin, sizeof(plugin), &data, &dlen) < 0 ||
		    dlen < MY_SCRAMBLE_LEN) {
			login_fail(s, "08P01", "bad AuthSwitchRequest from the server", false);
			return;
		}
		memcpy(s->scramble, data, MY_SCRAMBLE_LEN);
		uint8_t answer[32];
		uint32_t alen;
		const char *used = auth_answer(s, plugin, s->scramble, answer, &alen);
		if (strcmp(used, plugin) != 0) {
			char msg[200];
			snprintf(msg, sizeof(msg), "server asks for authentication plugin %s, which sluice does not speak",
				 plugin);
			login_fail(s, "28000", msg, true);
			return;
		}
		snprintf(s->plugin, sizeof(s->plugin), "%s", plugin);
		my_packet_put(&s->sock.wbuf, s->seq++, answer, alen);
		OPENSSL_cleanse(answer, sizeof(answer));
		my_server_send_pending(s);
		return;
	}
	if (p[0] == 0x01 && strcmp(s->plugin, SHA2) == 0) { /* AuthMoreData */
		if (pk->len == 2 && p[1] == 3)
			return; /* fast authentication succeeded: the OK follows */
		if (pk->len == 2 && p[1] == 4) {
			/* Full authentication: no TLS on this leg, so ask for the
			 * server's RSA public key. */
			uint8_t ask = 2;
			my_packet_put(&s->sock.wbuf, s->seq++, &ask, 1);
			my_server_send_pending(s);
			return;
		}
		/* The public key (PEM). */
		const char *pw = password(s);
		uint8_t enc[1024];
		int n = my_sha2_rsa_encrypt(pw, s->scramble, (const char *)p + 1, pk->len - 1, enc, sizeof(enc));
		if (n < 0) {
			login_fail(s, "28000", "cannot encrypt the password with the server's RSA key", false);
			return;
		}
		my_packet_put(&s->sock.wbuf, s->seq++, enc, (uint32_t)n);
		my_server_send_pending(s);
		return;
	}
	login_fail(s, "08P01", "unexpected packet during login", false);
}

/* ---- command phase ---- */

/* A command of sluice's own (command byte and its text) ahead of the
 * client's; its answer is swallowed (internal_answer). */
static bool send_internal(struct my_server *s, int kind, uint8_t command, const char *text)
{
	if (s->internal >= sizeof(s->internal_kind))
		return false;
	int off = my_begin(&s->sock.wbuf, 0);
	if (off < 0 || my_put_u8(&s->sock.wbuf, command) < 0 ||
	    iobuf_append(&s->sock.wbuf, text, (uint32_t)strlen(text)) < 0 || my_end(&s->sock.wbuf, off) < 0)
		return false;
	s->internal_kind[s->internal++] = (uint8_t)kind;
	return true;
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
	if (s->internal)
		my_server_send_pending(s);
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
	update_events(s);
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
	update_events(s);
	if (rc == 0 && !s->answering && !s->internal) {
		my_client_answered(c); /* s may be back in the pool: not ours now */
		return true;
	}
	my_client_update_events(c);
	return false;
}

/* The answer to a command sluice sent itself. */
static void internal_answer(struct my_server *s, const struct my_packet *pk)
{
	int kind = s->internal_kind[0];
	s->internal_kind[0] = s->internal_kind[1];
	s->internal--;
	struct my_ok ok;
	if (pk->len && pk->payload[0] == 0x00 && my_ok_parse(pk->payload, pk->len, s->caps, &ok) == 0) {
		if (kind == MY_INTERNAL_INIT_DB)
			snprintf(s->schema, sizeof(s->schema), "%s", s->want_schema);
		s->autocommit_off = !(ok.status & MY_STATUS_AUTOCOMMIT);
		return; /* process() lets the client's command go */
	}
	char msg[300], what[120];
	if (kind == MY_INTERNAL_INIT_DB)
		snprintf(what, sizeof(what), "Could not switch to database '%s'", s->want_schema);
	else
		snprintf(what, sizeof(what), "Could not set the session's autocommit");
	struct my_err e;
	if (my_err_parse(pk->payload, pk->len, &e) == 0)
		snprintf(msg, sizeof(msg), "%s: %.*s", what, (int)e.msg_len, e.msg);
	else
		snprintf(msg, sizeof(msg), "%s", what);
	struct my_client *c = s->client;
	if (c) {
		s->client = NULL;
		c->server = NULL;
		my_client_fail(c, "42000", msg);
	}
	my_server_close(s, msg);
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
	bool ok = s->answer.status_known;
	if (ok && c->want_schema[0]) {
		snprintf(c->schema, sizeof(c->schema), "%s", c->want_schema);
		snprintf(s->schema, sizeof(s->schema), "%s", c->want_schema);
	}
	c->want_schema[0] = '\0';
	if (ok && s->answer.command == MY_COM_RESET_CONNECTION)
		c->pinned = s->pinned = false;
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
					login_fail(s, "08P01", "login packet too long", false);
				break;
			}
			/* Handled after it left the buffer (logged in, s may be
			 * handed to another worker at once): from a copy. */
			uint8_t copy[2048];
			if (pk.len > sizeof(copy)) {
				login_fail(s, "08P01", "login packet too long", false);
				return true;
			}
			memcpy(copy, pk.payload, pk.len);
			pk.payload = copy;
			bool done = s->login_step == 1 && pk.len && pk.payload[0] == 0x00;
			pgsock_drop(&s->sock, MY_HEADER_LEN + pk.len);
			if (s->login_step == 0)
				handle_greeting(s, &pk);
			else
				handle_auth(s, &pk);
			if (done)
				return true; /* in the pool now */
			continue;
		}
		if (!whole) {
			/* A row longer than the buffer (never an OK, EOF or
			 * ERR): the tracker sees a one-byte row. */
			if (avail >= MY_HEADER_LEN && pgsock_rbuf_full(&s->sock) && s->answering &&
			    !s->internal && !s->continued && s->client) {
				static const uint8_t row[1] = { 0 };
				if (my_answer_feed(&s->answer, row, 1) != MY_ANSWER_MORE) {
					my_server_close(s, "protocol error: a long packet ends the answer");
					return true;
				}
				uint32_t len = my_header_len(pgsock_cursor(&s->sock));
				s->continued = len == MY_MAX_PAYLOAD;
				s->skip_rows = MY_HEADER_LEN + len - avail;
				s->sock.fwd += avail;
				continue;
			}
			break;
		}
		if (s->internal) {
			internal_answer(s, &pk);
			if (s->closed)
				return true;
			pgsock_drop(&s->sock, MY_HEADER_LEN + pk.len);
			if (!s->internal && s->client)
				my_client_resume(s->client);
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
		int r = my_answer_feed(&s->answer, pk.payload, pk.len);
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

/* Clear the session for the next client: COM_CHANGE_USER with the pool's
 * user, database and character set. */
static bool reset_session(struct my_server *s)
{
	const uint8_t *v = s->pool->variant;
	uint8_t answer[32];
	uint32_t alen;
	const char *plugin = auth_answer(s, s->plugin, s->scramble, answer, &alen);
	int off = my_begin(&s->sock.wbuf, 0);
	bool ok = off >= 0 && my_put_u8(&s->sock.wbuf, MY_COM_CHANGE_USER) == 0 &&
		  my_put_strnul(&s->sock.wbuf, s->pool->server_user) == 0 && my_put_u8(&s->sock.wbuf, (uint8_t)alen) == 0 &&
		  iobuf_append(&s->sock.wbuf, answer, alen) == 0 && my_put_strnul(&s->sock.wbuf, s->pool->server_db) == 0 &&
		  my_put_u16(&s->sock.wbuf, v ? v[4] : 45) == 0 && my_put_strnul(&s->sock.wbuf, plugin) == 0 &&
		  my_end(&s->sock.wbuf, off) == 0;
	OPENSSL_cleanse(answer, sizeof(answer));
	if (!ok)
		return false;
	s->seq = 1;
	server_core_set_state(&s->base, SERVER_RESET);
	s->sock.want_read = true;
	my_server_send_pending(s);
	return true;
}

void my_server_client_gone(struct my_server *s)
{
	if (s->answering || s->internal || s->sock.fwd || iobuf_len(&s->sock.rbuf)) {
		my_server_close(s, "client gone before the answer ended");
		return;
	}
	if (s->in_trans || s->pinned || s->pool->mode == POOL_MODE_SESSION) {
		if (!reset_session(s))
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
	update_events(s);
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
	if (revents & EPOLLOUT) {
		my_server_send_pending(s);
		if (s->closed)
			return;
	}
	if (s->state == SERVER_IDLE && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
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
		update_events(s);
}
