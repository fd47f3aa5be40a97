/*
 * server.c - server side state machine (see server.h).
 *
 * Reading order: launch (non-blocking connect) -> startup packet ->
 * authentication (cleartext, md5, SCRAM-SHA-256; PostgreSQL docs 55.2.1 and
 * 55.3) -> ReadyForQuery -> pool. While linked, everything the server sends
 * is forwarded to the client; only ReadyForQuery and ParameterStatus are
 * examined, to know when the server is clean and what the session's
 * reported parameters are.
 */
#include "pg_server.h"
#include "bypass.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "auth_crypto.h"
#include "cancel_conn.h"
#include "pg_client.h"
#include "pg_mirror.h"
#include "pg_monitor.h"
#include "pg_route.h"
#include "pg_fanout.h"
#include "pg_shard_recover.h"
#include "pg_shard.h"
#include "config.h"
#include "log.h"
#include "pg_proto.h"
#include "pool.h"
#include "replication.h"
#include "route.h"
#include "runtime.h"
#include "sockopt.h"
#include "tls.h"
#include "track.h"
#include "worker.h"

#define SLOG(s, lvl, fmt, ...) \
	log_write(lvl, "S-%llu %s/%s@%s " fmt, (unsigned long long)(s)->id, \
		  (s)->pool->db_name, (s)->pool->user, server_host(s)->addr_text, ##__VA_ARGS__)

static void server_cb(struct loop_handle *h, uint32_t revents);
static void server_process(struct pg_server *s);

static void server_set_state(struct pg_server *s, int state)
{
	server_core_set_state(&s->base, state);
}

static void server_update_events(struct pg_server *s)
{
	bool want_write = (s->state == SERVER_CONNECTING && s->tls_step == 0) || iobuf_len(&s->sock.wbuf) ||
			  (s->client && s->client->sock.fwd);
	if (pgsock_update(&s->worker->loop, &s->sock, want_write) < 0)
		server_close(s, "epoll failure");
}

static void host_failed(struct pg_server *s, const char *sqlstate, const char *msg, bool auth_error);

/* ---- servers sluice uses itself (server.h enum server_aside) ---- */

/* Logged in: its kind's code takes over. */
static void aside_ready(struct pg_server *s)
{
	switch (s->aside) {
	case SERVER_MONITOR:
		monitor_ready(s);
		break;
	case SERVER_MIRROR:
		mirror_ready(s);
		break;
	case SERVER_RECOVER:
		shard_recover_ready(s);
		break;
	default:
		server_close(s, "no use for this connection");
		break;
	}
}

/* A whole message from it; false when it closed. */
static bool aside_message(struct pg_server *s, const struct pg_msg *m)
{
	switch (s->aside) {
	case SERVER_MONITOR:
		return monitor_message(s, m);
	case SERVER_MIRROR:
		return mirror_message(s, m);
	case SERVER_RECOVER:
		return shard_recover_message(s, m);
	default:
		server_close(s, "unexpected message");
		return false;
	}
}

static void aside_closed(struct pg_server *s, const char *reason)
{
	switch (s->aside) {
	case SERVER_MONITOR:
		monitor_closed(s, reason);
		break;
	case SERVER_MIRROR:
		mirror_closed(s, reason);
		break;
	case SERVER_RECOVER:
		shard_recover_closed(s, reason);
		break;
	default:
		break;
	}
}

const struct pool_host *server_host(const struct pg_server *s)
{
	return server_core_host(&s->base);
}

void server_close(struct pg_server *s, const char *reason)
{
	if (s->closed)
		return;
	bool was_in_sockhash = s->bp_slot != 0;
	bypass_server_forget(s); /* a client linked in the kernel comes back with it */
	if (s->closed)
		return;
	s->closed = true;
	bool was_connecting = s->state == SERVER_CONNECTING || s->state == SERVER_LOGIN;
	/* A monitor's failures are the route's to tell (once per change), the
	 * shard recovery's its own. */
	bool quiet = s->aside == SERVER_MONITOR || s->aside == SERVER_RECOVER;
	SLOG(s, quiet ? LOG_LEVEL_DEBUG : was_connecting ? LOG_LEVEL_WARNING : LOG_LEVEL_INFO, "closing because: %s",
	     reason);
	/* Any end before login completes is a failed login: without the
	 * server_login_retry pause the pool would reconnect in a tight loop. */
	if (was_connecting && !s->login_failure_reported)
		host_failed(s, "08006", reason, false);
	struct pg_client *c = s->client;
	s->client = NULL;
	if (c) {
		char msg[200];
		snprintf(msg, sizeof(msg), "server connection lost: %s", reason);
		client_server_lost(c, msg);
	}
	if (!was_connecting && s->sock.h.fd >= 0) {
		/* Polite goodbye; ignore failure (the socket may be dead). */
		uint8_t bye[5] = { 'X', 0, 0, 0, 4 };
		if (send(s->sock.h.fd, bye, sizeof(bye), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			(void)0;
	}
	if (was_in_sockhash && s->outstanding > 0 && s->sock.h.fd >= 0) {
		/* Bytes the server sent that nobody read sit in the sockhash's
		 * queue, where close() does not see them: it would end with a
		 * FIN, and a backend blocked on a full window would notice only
		 * at its next window probe (seconds). Reset, as close() does for
		 * unread bytes elsewhere. */
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		(void)setsockopt(s->sock.h.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	if (s->cancels_pending)
		cancel_forget_server(s->worker, s);
	if (s->aside)
		aside_closed(s, reason);
	server_core_close(&s->base);
}

void server_free(struct pg_server *s)
{
	list_del(&s->node);
	for (int i = 0; i < TRACKED_PARAMS; i++)
		free(s->params[i]);
	iobuf_release(&s->login_params);
	free(s->lookup_secret);
	track_server_free(s);
	free(s->scram);
	free(s);
}

/* ---- connect and log in ---- */

/* A failed connection or login. With a host list the next host is tried
 * at once; clients hear of it, and the server_login_retry pause starts,
 * when every host failed in a row, or at once for a refused password. */
static void host_failed(struct pg_server *s, const char *sqlstate, const char *msg, bool auth_error)
{
	s->login_failure_reported = true;
	if (s->aside)
		return; /* its own code hears of it when it closes */
	if (!server_core_host_failed(&s->base, sqlstate, msg, auth_error))
		SLOG(s, LOG_LEVEL_WARNING, "trying the next host: %s", msg);
}

static void login_fail(struct pg_server *s, const char *sqlstate, const char *msg, bool auth_error)
{
	host_failed(s, sqlstate, msg, auth_error);
	server_close(s, msg);
}

static bool names_contain(const char *const *names, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcasecmp(names[i], name) == 0)
			return true;
	return false;
}

static void send_startup(struct pg_server *s)
{
	enum { MAX = 2 + CONFIG_SERVER_PARAMS + PG_STARTUP_MAX_PARAMS };
	const char *names[MAX], *values[MAX];
	int n = 0;
	names[n] = "user"; values[n++] = s->pool->server_user;
	names[n] = "database"; values[n++] = s->pool->server_db;
	/* A replication client's own parameters, replication included. */
	if (s->pool->repl_startup)
		n += repl_startup_unpack(s->pool->repl_startup, s->pool->repl_startup_len, names + n, values + n,
					 PG_STARTUP_MAX_PARAMS);
	for (int i = 0; i < CONFIG_SERVER_PARAMS; i++) {
		if (s->pool->server_params[i] && !names_contain(names, n, config_server_param_names[i])) {
			names[n] = config_server_param_names[i];
			values[n++] = s->pool->server_params[i];
		}
	}
	pg_fe_startup(&s->sock.wbuf, names, values, n);
	server_set_state(s, SERVER_LOGIN);
	s->sock.want_read = true;
}

void server_launch(struct worker *w, struct pool *p)
{
	struct pg_server *s = calloc(1, sizeof(*s));
	if (!s) {
		pool_login_failed(p, "53200", "out of memory", false);
		pool_server_gone(p, SERVER_CONNECTING);
		return;
	}
	s->tx_status = 'I';
	char msg[200];
	if (server_core_connect(&s->base, p, w, server_cb, msg, sizeof(msg)) < 0) {
		login_fail(s, "08006", msg, false);
		return;
	}
	SLOG(s, LOG_LEVEL_DEBUG, "connecting");
	server_update_events(s);
}

struct pg_server *server_launch_aside(struct worker *w, struct pool *p, int host, int kind, char *err, size_t errlen)
{
	struct pg_server *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->tx_status = 'I';
	s->aside = (uint8_t)kind;
	s->host_index = host;
	if (server_core_connect(&s->base, p, w, server_cb, err, errlen) < 0) {
		s->login_failure_reported = true;
		s->aside = SERVER_POOLED; /* closing: nobody to tell but the caller */
		s->closed = true;
		pgsock_close(&w->loop, &s->sock);
		worker_bury_server(w, &s->base);
		return NULL;
	}
	server_update_events(s);
	return s;
}

static void connect_done(struct pg_server *s)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(s->sock.h.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		char msg[160];
		snprintf(msg, sizeof(msg), "could not connect to server %s: %s", server_host(s)->addr_text, strerror(err));
		login_fail(s, "08006", msg, false);
		return;
	}
	const struct config *cfg = runtime_config();
	if (cfg->server_tls_sslmode != TLS_MODE_DISABLE && server_host(s)->addr.ss_family != AF_UNIX) {
		/* SSLRequest: int32 8, int32 80877103 (protocol docs 55.2.10). */
		static const uint8_t req[8] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };
		iobuf_append(&s->sock.wbuf, req, sizeof(req));
		s->tls_step = 1;
		s->sock.want_read = true;
		server_send_pending(s);
		return;
	}
	send_startup(s);
	server_send_pending(s);
}

/* The SSLRequest's answer and the handshake (state CONNECTING, tls_step 1-2). */
static void tls_progress(struct pg_server *s)
{
	const struct config *cfg = runtime_config();
	char why[240];
	if (s->tls_step == 1) {
		if (iobuf_len(&s->sock.wbuf)) {
			server_send_pending(s);
			return;
		}
		uint8_t b[16];
		ssize_t n = recv(s->sock.h.fd, b, sizeof(b), 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			login_fail(s, "08006", "server closed the connection during the TLS request", false);
			return;
		}
		if (n > 1) {
			/* Bytes after the answer, before the handshake, would be
			 * read as if encrypted: a man in the middle's injection
			 * (the CVE-2021-23222 class). */
			login_fail(s, "08006", "server sent unencrypted data after the TLS answer", false);
			return;
		}
		if (b[0] == 'N') {
			if (cfg->server_tls_sslmode >= TLS_MODE_REQUIRE) {
				login_fail(s, "08006", "server does not support TLS, but server_tls_sslmode requires it", true);
				return;
			}
			s->tls_step = 0;
			send_startup(s);
			server_send_pending(s);
			return;
		}
		if (b[0] != 'S') {
			login_fail(s, "08006", "unexpected answer to the TLS request", false);
			return;
		}
		s->sock.ssl = tls_new_for_server(s->sock.h.fd, server_host(s)->name, cfg->server_tls_sslmode);
		if (!s->sock.ssl) {
			login_fail(s, "08006", "cannot start TLS towards the server", false);
			return;
		}
		s->tls_step = 2;
	}
	int rc = pgsock_tls_step(&s->worker->loop, &s->sock, why, sizeof(why));
	if (rc == -EAGAIN)
		return;
	if (rc < 0) {
		char msg[400];
		snprintf(msg, sizeof(msg), "TLS towards server %s: %s", server_host(s)->addr_text, why);
		/* A certificate that does not verify will not verify on retry:
		 * waiting clients get the reason now, as for a refused login. */
		login_fail(s, "08006", msg, true);
		return;
	}
	s->tls_step = 3;
	SLOG(s, LOG_LEVEL_DEBUG, "TLS established");
	send_startup(s);
	server_send_pending(s);
}

/* Remember a reported parameter (tracked ones only). */
static void note_param(struct pg_server *s, const char *name, const char *value)
{
	for (int k = 0; k < TRACKED_PARAMS; k++) {
		if (strcasecmp(name, tracked_param_names[k]) != 0)
			continue;
		if (!s->params[k] || strcmp(s->params[k], value) != 0) {
			free(s->params[k]);
			s->params[k] = strdup(value);
		}
		/* What the server reports while linked is what the client's
		 * session now has: its own SET, RESET or DISCARD, or the SET
		 * sluice sent for it, in the server's spelling ("ISO" becomes
		 * "ISO, MDY"), so the next link does not SET it again. */
		if (s->client) {
			free(s->client->params[k]);
			s->client->params[k] = strdup(value);
		}
	}
}

static const char *server_password(struct pg_server *s)
{
	static __thread char looked_up[512];
	if (s->pool->server_password)
		return s->pool->server_password;
	const char *pw = config_find_secret(runtime_config(), s->pool->server_user);
	if (!pw && pool_get_lookup_secret(s->pool->home, looked_up, sizeof(looked_up)))
		pw = looked_up;
	return pw;
}

/* One complete message during login. Returns false when s was closed. */
/* The answer to the login's role check is in: go on (true), or close a
 * server on a host in the wrong role (false) and tell the route. */
static bool role_check_passed(struct pg_server *s)
{
	s->role_check = ROLE_CHECK_DONE;
	int want = route_login_role(s->pool);
	if (s->role_found == HOST_UNKNOWN) {
		login_fail(s, "08006", "could not read pg_is_in_recovery() at login", false);
		return false;
	}
	route_login_found(s->pool, s->host_index, s->role_found);
	if (want == HOST_UNKNOWN || want == s->role_found)
		return true;
	char msg[200];
	snprintf(msg, sizeof(msg), "host %s is %s now, not a %s", server_host(s)->addr_text,
		 route_role_name(s->role_found), route_role_name(want));
	s->login_failure_reported = true; /* not a failure: the route picks another host */
	server_close(s, msg);
	return false;
}

static bool login_message(struct pg_server *s, const struct pg_msg *m)
{
	struct pg_reader r;
	pg_reader_init(&r, m->body, m->body_len);
	switch (m->type) {
	case 'R': {
		uint32_t code = pg_read_u32(&r);
		const char *pw = server_password(s);
		if (r.err)
			break;
		if (code == PG_AUTH_OK)
			return true;
		if (!pw) {
			char msg[160];
			snprintf(msg, sizeof(msg), "no password for server user \"%s\" in the database line or auth_file",
				 s->pool->server_user);
			login_fail(s, "28P01", msg, true);
			return false;
		}
		if (code == PG_AUTH_CLEARTEXT) {
			if (pg_secret_is_md5(pw) || pg_secret_is_scram(pw)) {
				login_fail(s, "28P01", "server asked for a cleartext password but only a hash is known", true);
				return false;
			}
			pg_fe_password(&s->sock.wbuf, pw);
			return true;
		}
		if (code == PG_AUTH_MD5) {
			const uint8_t *salt = pg_read_bytes(&r, 4);
			if (!salt || pg_secret_is_scram(pw)) {
				login_fail(s, "28P01", salt ? "server asked for md5 but only a SCRAM secret is known"
							    : "invalid md5 request from server", true);
				return false;
			}
			char resp[36];
			pg_md5_response(pw, s->pool->server_user, salt, resp);
			pg_fe_password(&s->sock.wbuf, resp);
			return true;
		}
		if (code == PG_AUTH_SASL) {
			bool have = false;
			for (;;) {
				const char *mech = pg_read_str(&r);
				if (r.err || !*mech)
					break;
				if (strcmp(mech, "SCRAM-SHA-256") == 0)
					have = true;
			}
			uint8_t ck[SCRAM_KEY_LEN], sk[SCRAM_KEY_LEN];
			bool keys = have && pg_secret_is_scram(pw) && pool_get_scram_keys(s->pool->home, ck, sk);
			if (!have || pg_secret_is_md5(pw) || (pg_secret_is_scram(pw) && !keys)) {
				login_fail(s, "28P01", have ? "SCRAM login to the server needs a plain password, "
							      "or a client that logged in with SCRAM first"
							    : "server offers no supported SASL mechanism", true);
				return false;
			}
			char out[SCRAM_MAX_MSG];
			s->scram = calloc(1, sizeof(*s->scram));
			int n = !s->scram ? -ENOMEM
				: keys ? scram_client_first_keys(s->scram, ck, sk, out, sizeof(out))
				       : scram_client_first(s->scram, pw, out, sizeof(out));
			OPENSSL_cleanse(ck, sizeof(ck));
			OPENSSL_cleanse(sk, sizeof(sk));
			if (n < 0) {
				login_fail(s, "08006", "SCRAM start failed", true);
				return false;
			}
			pg_fe_sasl_initial(&s->sock.wbuf, "SCRAM-SHA-256", out, (size_t)n);
			return true;
		}
		if (code == PG_AUTH_SASL_CONTINUE && s->scram) {
			char out[SCRAM_MAX_MSG];
			int n = scram_client_final(s->scram, (const char *)r.p, (size_t)(r.end - r.p), out, sizeof(out));
			if (n < 0) {
				login_fail(s, "08006", "invalid SCRAM message from server", true);
				return false;
			}
			pg_fe_sasl_response(&s->sock.wbuf, out, (size_t)n);
			return true;
		}
		if (code == PG_AUTH_SASL_FINAL && s->scram) {
			int rc = scram_client_verify(s->scram, (const char *)r.p, (size_t)(r.end - r.p));
			free(s->scram);
			s->scram = NULL;
			if (rc < 0) {
				login_fail(s, "08006", "server failed to prove it knows the password (SCRAM)", true);
				return false;
			}
			return true;
		}
		char msg[80];
		snprintf(msg, sizeof(msg), "server asked for unsupported authentication method %u", code);
		login_fail(s, "08006", msg, true);
		return false;
	}
	case 'S': {
		const char *name, *value;
		if (pg_be_param_parse(m->body, m->body_len, &name, &value) < 0)
			break;
		note_param(s, name, value);
		if (iobuf_append(&s->login_params, pgsock_cursor(&s->sock), m->len) < 0)
			break;
		return true;
	}
	case 'K':
		s->backend_pid = pg_read_u32(&r);
		s->backend_key = pg_read_u32(&r);
		if (r.err)
			break;
		return true;
	case 'N':
		return true;
	case 'E': {
		struct pg_error_fields f;
		pg_be_error_parse(m->body, m->body_len, &f);
		char msg[200];
		snprintf(msg, sizeof(msg), "%s", *f.message ? f.message : "server refused the login");
		/* A refusal that passes by itself (PostgreSQL starting up or
		 * shutting down: class 57; too many connections, no memory:
		 * class 53) is like a failed connect: waiting clients keep
		 * waiting for the retry. Anything else (a wrong password, no
		 * such database) fails them now. */
		bool passes = strncmp(f.code, "57", 2) == 0 || strncmp(f.code, "53", 2) == 0;
		login_fail(s, *f.code ? f.code : "08006", msg, !passes);
		return false;
	}
	case 'Z':
		/* The answer to connect_query ends the login (internal back to 0). */
		if (s->internal && --s->internal > 0)
			return true;
		if (s->pool->connect_query && !s->pool->replication && !s->aside && !s->last_was_ready) {
			/* First ReadyForQuery: run connect_query once, then finish. */
			s->last_was_ready = true;
			pg_fe_query(&s->sock.wbuf, s->pool->connect_query);
			s->internal++;
			return true;
		}
		if (s->role_check == ROLE_CHECK_SENT && !role_check_passed(s))
			return false;
		if (s->pool->route && !s->pool->replication && !s->aside && s->role_check == ROLE_CHECK_NONE) {
			/* Routed: is the host in the role the pool wants? */
			s->last_was_ready = true;
			s->role_check = ROLE_CHECK_SENT;
			s->role_found = HOST_UNKNOWN;
			pg_fe_query(&s->sock.wbuf, "SELECT pg_catalog.pg_is_in_recovery()");
			s->internal++;
			return true;
		}
		break;
	case 'D':
		if (s->role_check == ROLE_CHECK_SENT) {
			bool in_recovery;
			if (pg_first_column_bool(m->body, m->body_len, &in_recovery) == 0)
				s->role_found = in_recovery ? HOST_STANDBY : HOST_PRIMARY;
			return true;
		}
		if (s->internal)
			return true;
		break;
	case 'C': case 'T': case 'I':
		if (s->internal)
			return true;
		break;
	default:
		break;
	}
	if (m->type == 'Z') {
		/* Logged in. */
		SLOG(s, LOG_LEVEL_DEBUG, "logged in (backend pid %u)", s->backend_pid);
		if (s->aside) {
			iobuf_release(&s->login_params);
			s->tx_status = 'I';
			pgsock_drop(&s->sock, m->len);
			aside_ready(s);
			return false;
		}
		pool_set_welcome(s->pool, iobuf_head(&s->login_params), iobuf_len(&s->login_params));
		iobuf_release(&s->login_params);
		s->last_was_ready = true;
		s->tx_status = 'I';
		pgsock_drop(&s->sock, m->len);
		pool_release(&s->base);
		return false; /* the message was consumed here */
	}
	login_fail(s, "08P01", "unexpected message from server during login", false);
	return false;
}

static void server_give_back(struct pg_server *s);

/* ---- auth_query ---- */

void server_lookup(struct pg_server *s, struct pg_client *c, const char *user)
{
	struct config_auth_lookup how;
	config_auth_lookup_for(runtime_config(), c->db, &how);
	s->client = c;
	c->server = s;
	s->lookup = true;
	s->lookup_error[0] = '\0';
	server_set_state(s, SERVER_ACTIVE);
	s->sock.want_read = true;
	/* Extended protocol: the user name travels as a parameter, never
	 * spliced into the SQL (protocol docs 55.2.3). */
	struct pg_builder b;
	pg_build_init(&b, &s->sock.wbuf);
	pg_build_begin(&b, 'P');
	pg_build_str(&b, "");
	pg_build_str(&b, how.query);
	pg_build_u16(&b, 0);
	pg_build_end(&b);
	pg_build_begin(&b, 'B');
	pg_build_str(&b, "");
	pg_build_str(&b, "");
	pg_build_u16(&b, 0);
	pg_build_u16(&b, 1);
	pg_build_u32(&b, (uint32_t)strlen(user));
	pg_build_bytes(&b, user, strlen(user));
	pg_build_u16(&b, 0);
	pg_build_end(&b);
	pg_build_begin(&b, 'E');
	pg_build_str(&b, "");
	pg_build_u32(&b, 0);
	pg_build_end(&b);
	pg_build_begin(&b, 'S');
	pg_build_end(&b);
	if (pg_build_done(&b) < 0) {
		server_close(s, "out of memory");
		return;
	}
	SLOG(s, LOG_LEVEL_DEBUG, "auth_query for C-%llu", (unsigned long long)c->id);
	server_send_pending(s);
}

/* One whole message answering auth_query. Returns false when s closed. */
static bool lookup_message(struct pg_server *s, const struct pg_msg *m)
{
	switch (m->type) {
	case 'D': {
		/* Row: name, password. A NULL name means no such user; a NULL
		 * password, a user no password logs in as (PgBouncer 1.25). */
		struct pg_reader r;
		pg_reader_init(&r, m->body, m->body_len);
		uint16_t n = pg_read_u16(&r);
		uint32_t len0 = pg_read_u32(&r);
		if (!r.err && len0 != 0xffffffff)
			pg_read_bytes(&r, len0);
		uint32_t len1 = n >= 2 ? pg_read_u32(&r) : 0xffffffff;
		const uint8_t *pw = !r.err && len0 != 0xffffffff && len1 != 0xffffffff && len1 < 512
					    ? pg_read_bytes(&r, len1) : NULL;
		if (n < 2 || r.err) {
			snprintf(s->lookup_error, sizeof(s->lookup_error), "auth_query must return two columns (name, password)");
		} else if (pw && !s->lookup_secret) {
			s->lookup_secret = strndup((const char *)pw, len1);
		}
		return true;
	}
	case 'E': {
		struct pg_error_fields f;
		pg_be_error_parse(m->body, m->body_len, &f);
		snprintf(s->lookup_error, sizeof(s->lookup_error), "%s", *f.message ? f.message : "error");
		return true;
	}
	case 'Z': {
		struct pg_client *c = s->client;
		char *secret = s->lookup_secret;
		char status = m->body_len ? (char)m->body[0] : 'I';
		/* Consumed before s goes back: the next user must not see it. */
		pgsock_drop(&s->sock, m->len);
		char error[160];
		snprintf(error, sizeof(error), "%s", s->lookup_error);
		s->lookup_secret = NULL;
		s->lookup = false;
		s->tx_status = status;
		s->last_was_ready = true;
		s->client = NULL;
		c->server = NULL;
		server_give_back(s);
		client_lookup_done(c, error[0] ? NULL : secret, error[0] ? error : NULL);
		if (secret) {
			OPENSSL_cleanse(secret, strlen(secret));
			free(secret);
		}
		return false; /* s belongs to the pool again */
	}
	default:
		return true; /* ParseComplete, BindComplete, CommandComplete, notices */
	}
}

/* ---- linked: server -> client ---- */

void server_link(struct pg_server *s, struct pg_client *c)
{
	s->client = c;
	c->server = s;
	stats_add(&pool_stats(s->pool, s->worker)->assigns, 1); /* SHOW STATS server_assignment_count */
	s->outstanding = 0;
	s->client_mid_batch = false;
	copy_watch_reset(&s->copy);
	s->tracking = track_enabled(s->pool);
	server_set_state(s, SERVER_ACTIVE);
	s->sock.want_read = true;
	/* Bring the server's reported parameters in line with the client's
	 * (PgBouncer calls this the varcache); one round trip is avoided by
	 * pipelining the SETs in front of the client's own request. */
	size_t cap = 1;
	for (int k = 0; k < TRACKED_PARAMS; k++)
		if (c->params[k])
			cap += 2 * strlen(c->params[k]) + strlen(tracked_param_names[k]) + 16;
	char *sql = malloc(cap);
	size_t n = 0;
	s->skipping = false;
	/* A replication server logged in with its client's own parameters,
	 * and a physical walsender would refuse a SET. */
	for (int k = 0; sql && k < TRACKED_PARAMS && !s->pool->replication; k++) {
		const char *want = c->params[k];
		if (!want || (s->params[k] && strcmp(s->params[k], want) == 0))
			continue;
		/* E'' with both quote and backslash doubled reads the same
		 * whatever standard_conforming_strings is: the client's value
		 * cannot end the literal. */
		n += (size_t)sprintf(sql + n, "SET %s = E'", tracked_param_names[k]);
		for (const char *p = want; *p; p++) {
			if (*p == '\'' || *p == '\\')
				sql[n++] = *p;
			sql[n++] = *p;
		}
		n += (size_t)sprintf(sql + n, "';");
	}
	/* Then the other settings the client SET (track.c). */
	if (sql)
		sql[n] = '\0';
	if (sql && s->tracking && track_restore_sql(s, c, &sql, &n, &cap) < 0) {
		free(sql);
		sql = NULL;
	}
	if (!sql) {
		/* Its settings cannot be restored: better no answer than one
		 * computed under another client's settings. */
		server_close(s, "out of memory restoring the client's settings");
		return;
	}
	if (n > 0) {
		pg_fe_query(&s->sock.wbuf, sql);
		s->internal++;
		s->unnamed_owner = 0; /* a simple Query drops the unnamed statement */
		s->last_was_ready = false; /* until their answer: never lent on before it */
	}
	free(sql);
	if (c->shard_begin) {
		/* Sharding: the BEGIN sluice answered goes ahead of the
		 * transaction's first statement, now that its shard is known
		 * (pg_shard.h). Alone: settings made before it must not become
		 * part of the transaction. */
		pg_fe_query(&s->sock.wbuf, c->shard_begin);
		s->internal++;
		s->unnamed_owner = 0;
		s->last_was_ready = false;
		free(c->shard_begin);
		c->shard_begin = NULL;
	}
	server_update_events(s);
}

void server_link_from_kernel(struct pg_server *s, struct pg_client *c, int outstanding, bool mid_batch,
			     char tx_status, bool at_boundary, const struct server_kernel_times *t)
{
	int64_t now = s->worker->loop.now_us;
	bool quiet = outstanding == 0 && !mid_batch;
	s->client = c;
	c->server = s;
	s->outstanding = outstanding;
	s->client_mid_batch = mid_batch;
	copy_watch_reset(&s->copy); /* what the kernel carried is not counted */
	s->tx_status = tx_status;
	s->last_was_ready = at_boundary && outstanding == 0;
	s->internal = 0;
	s->tracking = quiet && track_enabled(s->pool);
	s->bp_retrack = !quiet && track_enabled(s->pool);
	s->query_start_us = t->query_start_us ? t->query_start_us : now;
	s->xact_begin_us = t->xact_begin_us ? t->xact_begin_us : (quiet && tx_status == 'I' ? 0 : now);
	s->ready_since_us = t->ready_since_us ? t->ready_since_us : now;
	s->xact_start_us = tx_status == 'I' ? 0 : (t->xact_start_us ? t->xact_start_us : now);
	server_set_state(s, SERVER_ACTIVE);
	s->sock.want_read = true;
	server_update_events(s);
}

void server_watch_idle(struct pg_server *s)
{
	s->sock.want_read = true;
	server_update_events(s);
}


void server_detach(struct pg_server *s)
{
	loop_forget(&s->worker->loop, &s->sock.h);
	list_del(&s->node);
	s->worker = NULL;
}

/* True when the server may go to another client right now. */
static bool server_is_clean(const struct pg_server *s)
{
	const struct pg_client *c = s->client;
	return s->outstanding == 0 && !s->client_mid_batch && s->last_was_ready && !s->skipping &&
	       !s->cancels_pending && !s->copy.doubt && !s->copy.in_copy &&
	       expect_empty(&s->expect) && !s->pinned &&
	       s->tx_status == 'I' && s->internal == 0 && iobuf_len(&s->sock.rbuf) == 0 &&
	       s->sock.skip == 0 && iobuf_len(&s->sock.wbuf) == 0 &&
	       (!c || (c->sock.fwd == 0 && c->sock.skip == 0));
}

bool server_at_boundary(const struct pg_server *s)
{
	/* server_is_clean without the pin: a pinned client may leave too. */
	const struct pg_client *c = s->client;
	return !s->closed && s->state == SERVER_ACTIVE && s->outstanding == 0 && !s->copy.doubt &&
	       !s->client_mid_batch && s->last_was_ready && expect_empty(&s->expect) &&
	       s->tx_status == 'I' && s->internal == 0 && iobuf_len(&s->sock.rbuf) == 0 &&
	       s->sock.skip == 0 && iobuf_len(&s->sock.wbuf) == 0 &&
	       (!c || (c->sock.fwd == 0 && c->sock.skip == 0 && iobuf_len(&c->sock.wbuf) == 0));
}

/* Back to the pool, unless it has lived past server_lifetime. */
static void server_give_back(struct pg_server *s)
{
	int64_t lifetime = s->pool->t.server_lifetime_us; /* per database (pool.h) */
	if (lifetime && s->worker->loop.now_us - s->connect_time_us > lifetime) {
		server_close(s, "server_lifetime");
		return;
	}
	if (pool_server_outdated(&s->base)) {
		server_close(s, s->pool->paused ? "database paused" : "reconnect requested (RECONNECT or RELOAD)");
		return;
	}
	pool_release(&s->base);
}

static void server_unlink_release(struct pg_server *s)
{
	struct pg_client *c = s->client;
	s->client = NULL;
	c->server = NULL;
	server_give_back(s);
	client_unlinked(c);
}

void server_deliver_pending(struct pg_server *s)
{
	struct pg_client *c = s->client;
	int rc;
	for (;;) {
		rc = pgsock_flush(&c->sock, &s->sock);
		/* Answers sluice gives itself become due once the server's
		 * answers before them are out. */
		if (rc != 0 || !s->tracking || expect_empty(&s->expect) ||
		    expect_head(&s->expect)->kind < SYNTH_PARSE_DONE)
			break;
		track_emit(s);
	}
	if (rc < 0 && rc != -EAGAIN) {
		client_close(c, "write to client failed");
		return;
	}
	if (rc == 0 && s->resume_client) {
		/* The batch the client waited on is answered: read on. */
		s->resume_client = false;
		c->hold_for_sync = false;
		c->sock.parse_blocked = true;
	}
	if (rc == 0 && s->sock.parse_blocked) {
		/* Parsing stopped to let forwarded bytes go first. */
		s->sock.parse_blocked = false;
		server_process(s);
		return;
	}
	if (rc == 0 && s->pool->mode != POOL_MODE_SESSION && server_is_clean(s)) {
		if (track_check_before_release(s)) {
			/* Dynamic SQL ran: look at the session first (track.c). */
			server_send_pending(s);
			return;
		}
		client_update_events(c);
		server_unlink_release(s);
		return;
	}
	client_update_events(c);
	server_update_events(s);
	if (rc == 0)
		client_resume_parse(c);
}

void server_send_pending(struct pg_server *s)
{
	int rc = pgsock_flush(&s->sock, s->client ? &s->client->sock : NULL);
	/* A COPY over shards sends its rows as the socket takes them. */
	while (rc == 0 && s->client && s->client->shard_fanout && pg_fanout_refill(s->client, s))
		rc = pgsock_flush(&s->sock, &s->client->sock);
	if (rc < 0 && rc != -EAGAIN) {
		server_close(s, "write to server failed");
		return;
	}
	server_update_events(s);
	if (s->client) {
		client_update_events(s->client);
		if (rc == 0)
			client_resume_parse(s->client);
	}
}

static void statement_mode_violation(struct pg_server *s)
{
	struct pg_client *c = s->client;
	s->dirty = true;
	client_fail(c, "08P01", "transaction blocks not allowed in statement pooling mode");
}

/* An ErrorResponse goes to the client: count it by SQLSTATE class. A
 * message not wholly received yet is counted without its class rather than
 * held back (errors may be large). */
static void count_error(struct pg_server *s, const struct pg_msg *m, uint32_t avail)
{
	struct pg_error_fields f = { .code = "" };
	if (m->len <= avail)
		pg_be_error_parse(m->body, m->body_len, &f);
	stats_error(pool_stats(s->pool, s->worker), f.code);
}

/* A failed COPY left Syncs in doubt and the client's next Sync is
 * forwarded (copy_watch.h): the marker goes behind it once the client's
 * bytes are written (client_process sends it then). False when s closed. */
static bool copy_marker_soon(struct pg_server *s)
{
	struct pg_client *c = s->client;
	if (c->sock.fwd || c->sock.skip) {
		if (!c->sock.skip)
			c->sock.parse_blocked = true;
		return true;
	}
	if (!copy_watch_send_marker(s)) {
		server_close(s, "out of memory");
		return false;
	}
	server_update_events(s);
	return true;
}

/* Examine server bytes according to state. */
static void server_process(struct pg_server *s)
{
	struct pgsock *sk = &s->sock;
	for (;;) {
		uint32_t avail = pgsock_unexamined(sk);
		if (sk->skip) {
			uint32_t take = avail < sk->skip ? avail : sk->skip;
			sk->fwd += take;
			sk->skip -= take;
			if (sk->skip)
				break;
			continue;
		}
		struct pg_msg m;
		int rc = pg_msg_peek(pgsock_cursor(sk), avail, &m);
		if (rc == 0)
			break;
		if (rc < 0) {
			server_close(s, "invalid message length from server");
			return;
		}
		if (s->lookup) {
			if (m.len > avail) {
				if (iobuf_reserve(&sk->rbuf, m.len - avail) < 0) {
					server_close(s, "auth_query answer too large");
					return;
				}
				break;
			}
			if (!lookup_message(s, &m))
				return;
			pgsock_drop(sk, m.len);
			continue;
		}
		if (s->state == SERVER_ACTIVE && !s->internal && copy_watch_wants(&s->copy, m.type)) {
			/* Whole, and once: what precedes it goes first, so that
			 * nothing below has to stop and look at it again. */
			if (sk->fwd) {
				sk->parse_blocked = true;
				break;
			}
			if (m.len > avail) {
				if (iobuf_reserve(&sk->rbuf, m.len - avail) < 0) {
					server_close(s, "message from server too large to examine");
					return;
				}
				break;
			}
			int v = copy_watch_server(s, m.type);
			if (v == COPY_BROKEN) {
				client_fail(s->client, "08P01", copy_watch_broken_reason(&s->copy));
				return;
			}
			if (v == COPY_SWALLOW) {
				pgsock_drop(sk, m.len);
				continue;
			}
			if (copy_watch_marker_due(&s->copy) && !copy_marker_soon(s))
				return;
		}
		if (s->state == SERVER_ACTIVE && s->tracking && !s->internal) {
			if (m.len > avail && track_server_wants_whole(s, &m)) {
				if (iobuf_reserve(&sk->rbuf, m.len - avail) < 0) {
					server_close(s, "message from server too large to examine");
					return;
				}
				break; /* the rest is on its way */
			}
			int act = track_server_msg(s, &m);
			if (act == TRACK_FLUSH_FIRST) {
				sk->parse_blocked = true;
				break;
			}
			if (act == TRACK_ERROR) {
				server_close(s, "out of memory");
				return;
			}
			if (act == TRACK_DROP) {
				pgsock_drop(sk, m.len);
				continue;
			}
		}
		if (s->client && s->client->mirror_tx && s->state == SERVER_ACTIVE && !s->internal) {
			uint32_t missing = pg_mirror_server_msg(s, &m, avail);
			if (missing) {
				if (iobuf_reserve(&sk->rbuf, missing) < 0) {
					server_close(s, "out of memory");
					return;
				}
				break;
			}
		}
		/* Rows of a query over several shards go on as they come (pg_fanout.h). */
		int fan = s->internal == 1 && s->client && s->client->shard_fanout && s->state == SERVER_ACTIVE
				  ? pg_fanout_server_msg(s->client, s, &m, avail) : PG_FANOUT_OTHER;
		if (fan == PG_FANOUT_DROP) { /* whole, nothing before it to forward */
			pgsock_drop(sk, m.len);
			continue;
		}
		bool fanout_rows = fan == PG_FANOUT_FORWARD;
		bool examine = !fanout_rows &&
			       (s->state != SERVER_ACTIVE || m.type == 'Z' || m.type == 'S' || s->internal);
		if (!examine) {
			if (!fanout_rows)
				s->last_was_ready = false;
			if (m.type == 'E')
				count_error(s, &m, avail);
			if (m.len <= avail) {
				sk->fwd += m.len;
				continue;
			}
			sk->fwd += avail;
			sk->skip = m.len - avail;
			break;
		}
		if (m.type == 'Z' && (m.body_len != 1 ||
				      (m.len <= avail && !strchr("ITE", m.body[0] ? m.body[0] : '?')))) {
			server_close(s, "malformed ReadyForQuery from server");
			return;
		}
		if (m.len > avail) {
			if (iobuf_reserve(&sk->rbuf, m.len - avail) < 0) {
				server_close(s, "message from server too large to examine");
				return;
			}
			break;
		}
		if (s->state == SERVER_LOGIN) {
			if (!login_message(s, &m))
				return;
			pgsock_drop(sk, m.len);
			continue;
		}
		if (s->aside) {
			if (!aside_message(s, &m))
				return;
			pgsock_drop(sk, m.len);
			continue;
		}
		if (s->state == SERVER_IDLE || s->state == SERVER_RESET || s->state == SERVER_CHECK ||
		    s->state == SERVER_CONNECTING) {
			/* No client: swallow answers to our own queries; anything
			 * unexpected makes the server unusable. */
			if (m.type == 'S') {
				const char *name, *value;
				if (pg_be_param_parse(m.body, m.body_len, &name, &value) == 0)
					note_param(s, name, value);
			} else if (m.type == 'E' || (s->state == SERVER_IDLE && m.type != 'N')) {
				struct pg_error_fields f;
				pg_be_error_parse(m.body, m.body_len, &f);
				server_close(s, m.type == 'E' ? (*f.message ? f.message : "error from server")
							      : "unexpected message from idle server");
				return;
			} else if (m.type == 'Z' && (s->state == SERVER_RESET || s->state == SERVER_CHECK)) {
				pgsock_drop(sk, m.len);
				s->internal = 0;
				s->tx_status = (char)m.body[0];
				if (s->tx_status != 'I' || iobuf_len(&sk->rbuf)) {
					server_close(s, s->state == SERVER_CHECK ? "server_check_query left the server busy"
										   : "reset query left the server busy");
					return;
				}
				server_give_back(s);
				return;
			}
			pgsock_drop(sk, m.len);
			continue;
		}
		/* SERVER_ACTIVE with a client. */
		if (s->internal && m.type != 'E') {
			if (sk->fwd) {
				sk->parse_blocked = true; /* flush what precedes first */
				break;
			}
			if (m.type == 'Z') {
				s->internal--;
				if (!s->internal) {
					/* At a ReadyForQuery again, in the state sluice's
					 * own queries left (a BEGIN for a sharded client). */
					s->last_was_ready = true;
					s->tx_status = (char)m.body[0]; /* checked above */
				}
			} else if (m.type == 'S') {
				const char *name, *value;
				if (pg_be_param_parse(m.body, m.body_len, &name, &value) == 0)
					note_param(s, name, value);
			}
			pgsock_drop(sk, m.len);
			continue;
		}
		s->last_was_ready = false;
		if (m.type == 'S') {
			const char *name, *value;
			if (pg_be_param_parse(m.body, m.body_len, &name, &value) == 0)
				note_param(s, name, value);
		} else if (m.type == 'Z') {
			char status = (char)m.body[0];
			if (s->pool->mode == POOL_MODE_STATEMENT && status != 'I' && s->outstanding <= 1) {
				/* A transaction block in statement mode: refuse it in
				 * place of this ReadyForQuery, so the client sees the
				 * error as the answer to its BEGIN. */
				if (sk->fwd) {
					sk->parse_blocked = true;
					break;
				}
				pgsock_drop(sk, m.len);
				statement_mode_violation(s);
				return;
			}
			int64_t now = s->worker->loop.now_us;
			if (status == 'I')
				s->xact_start_us = 0;
			else if (s->tx_status == 'I')
				s->xact_start_us = now;
			s->ready_since_us = now;
			s->tx_status = status;
			s->last_was_ready = true;
			struct stats_slot *st = pool_stats(s->pool, s->worker);
			if (s->outstanding > 0) {
				s->outstanding--;
				stats_query_done(st, now - s->query_start_us);
				s->query_start_us = now; /* the next pipelined request runs from here */
			}
			if (s->bp_retrack && s->outstanding == 0 && !s->client_mid_batch) {
				s->bp_retrack = false;
				s->tracking = track_enabled(s->pool);
			}
			if (status == 'I' && s->xact_begin_us) {
				stats_xact_done(st, now - s->xact_begin_us);
				s->xact_begin_us = 0;
			}
			if (status == 'I' && s->outstanding == 0)
				pg_route_tx_end(s->client, s);
			if (status == 'I' && s->client->shard_tx && !s->client->shard_fanout && s->outstanding == 0) {
				/* Never: its end is the client's COMMIT or ROLLBACK
				 * alone, which sluice runs (pg_fanout.h). */
				client_fail(s->client, "XX000", "a transaction over several shards ended on one of them "
					    "without a COMMIT or ROLLBACK sluice saw: its other parts are rolled back; end such "
					    "a transaction with COMMIT or ROLLBACK alone");
				return;
			}
		}
		sk->fwd += m.len;
	}
	if (s->client)
		server_deliver_pending(s);
	else
		server_update_events(s);
}

/* ---- the client left ---- */

void server_client_gone(struct pg_server *s)
{
	const struct config *cfg = runtime_config();
	s->client = NULL;
	if (s->lookup) {
		/* auth_query answers are still on their way. */
		server_close(s, "client left during auth_query");
		return;
	}
	if (s->pool->replication) {
		/* Its own client's session only (replication.h). */
		if (s->outstanding)
			server_cancel(s, false);
		server_close(s, "replication client disconnected");
		return;
	}
	iobuf_release(&s->sock.wbuf); /* internal SETs not sent yet are moot */
	s->internal = 0;
	bool clean = !s->dirty && !s->cancels_pending && s->outstanding == 0 && !s->client_mid_batch && s->last_was_ready &&
		     !s->copy.doubt && !s->copy.in_copy &&
		     expect_empty(&s->expect) &&
		     s->tx_status == 'I' && iobuf_len(&s->sock.rbuf) == 0 && s->sock.skip == 0;
	if (!clean) {
		/* Mid-query or mid-transaction: the work must not reach the next
		 * client. Cancel what runs and drop the connection. */
		if (s->outstanding)
			server_cancel(s, false);
		server_close(s, "client disconnected while server was busy");
		return;
	}
	bool reset = cfg->server_reset_query && *cfg->server_reset_query &&
		     (s->pool->mode == POOL_MODE_SESSION || cfg->server_reset_query_always);
	if (reset || s->pinned) {
		/* A pinned server carries session state (locks, LISTEN, temp
		 * tables, cursors): DISCARD ALL clears all of it, and with it the
		 * statements sluice prepared there. */
		const char *q = reset ? cfg->server_reset_query : "DISCARD ALL";
		if (s->pinned && strcasestr(q, "discard all") == NULL)
			q = "DISCARD ALL";
		s->pinned = false;
		s->check_due = false;
		track_server_forget(s);
		if (strcasestr(q, "discard all"))
			session_vars_clear(&s->vars);
		else if (strcasestr(q, "reset all"))
			session_vars_reset_all(&s->vars);
		s->unnamed_owner = 0;
		server_set_state(s, SERVER_RESET);
		pg_fe_query(&s->sock.wbuf, q);
		s->internal = 1;
		s->sock.want_read = true;
		server_send_pending(s);
		return;
	}
	server_give_back(s);
}

void server_check(struct pg_server *s)
{
	const char *q = runtime_config()->server_check_query;
	server_set_state(s, SERVER_CHECK);
	/* "<empty>" asks for an empty query, as PgBouncer 1.25 reads it. */
	pg_fe_query(&s->sock.wbuf, strcmp(q, "<empty>") == 0 ? "" : q);
	s->internal = 1;
	s->sock.want_read = true;
	server_send_pending(s);
}

void server_cancel(struct pg_server *s, bool hold)
{
	if (!s->backend_pid && !s->backend_key)
		return;
	const struct pool_host *h = server_host(s);
	cancel_send(s->worker, (struct sockaddr *)&h->addr, h->addr_len,
		    s->backend_pid, s->backend_key, hold ? s : NULL);
}

void server_cancel_done(struct pg_server *s)
{
	if (s->cancels_pending > 0)
		s->cancels_pending--;
	if (!s->cancels_pending && s->client && !s->closed)
		server_deliver_pending(s); /* it may go back to the pool now */
}

/* ---- events ---- */

static void server_cb(struct loop_handle *h, uint32_t revents)
{
	struct pg_server *s = list_entry(h, struct pg_server, sock.h);
	if (s->state == SERVER_CONNECTING) {
		if (s->tls_step)
			tls_progress(s);
		else if (revents & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			connect_done(s);
		return;
	}
	bool was_lent_idle = false;
	if (s->bp_lent) {
		if (!bypass_server_wake(s, revents))
			return;
		/* Bytes passed up by the kernel, or a hang-up. */
		was_lent_idle = s->state == SERVER_IDLE;
		if (!bypass_server_event(s)) {
			server_close(s, "bpf_bypass: lost its client in the kernel");
			return;
		}
		if (s->closed)
			return;
		was_lent_idle = was_lent_idle && !s->client;
		revents |= EPOLLIN;
	}
	if (revents & EPOLLOUT) {
		server_send_pending(s);
		if (s->closed)
			return;
	}
	if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		int n = pgsock_read(&s->sock);
		if (n == 0 || (n < 0 && n != -EAGAIN && n != -ENOBUFS)) {
			server_close(s, n == 0 ? "server closed the connection unexpectedly"
					    : pgsock_read_failure(n, "read from server failed"));
			return;
		}
		if (n > 0 && s->client)
			stats_add(&pool_stats(s->pool, s->worker)->bytes_out, (uint64_t)n);
		if (n > 0 || n == -ENOBUFS)
			server_process(s);
		else
			server_update_events(s);
	}
	/* Taken back from the kernel's idle set (a notice, a spurious wake):
	 * it is idle again once examined. */
	if (was_lent_idle && !s->closed && s->state == SERVER_IDLE && !s->client)
		pool_release(&s->base);
}

void server_tick(struct pg_server *s, int64_t now_us)
{
	const struct config *cfg = runtime_config();
	if (bypass_server_handed_up(s)) {
		/* Its hand-over event was lost (ring full): act now. */
		server_cb(&s->sock.h, EPOLLIN);
		if (s->closed)
			return;
	}
	int64_t age = now_us - s->state_since_us;
	int64_t lifetime = s->pool->t.server_lifetime_us; /* per database (pool.h) */
	if (s->aside && s->state != SERVER_CONNECTING && s->state != SERVER_LOGIN)
		return; /* its own code watches it (route.c, mirror) */
	switch (s->state) {
	case SERVER_CONNECTING:
	case SERVER_LOGIN:
		if (cfg->server_connect_timeout_us && age > cfg->server_connect_timeout_us)
			server_close(s, "server_connect_timeout");
		break;
	case SERVER_IDLE:
		if (pool_server_outdated(&s->base)) {
			/* A lent server is closed only when the kernel does not use it. */
			if (s->bp_lent ? bypass_server_unlend(s) : pool_take_idle(&s->base))
				server_close(s, s->pool->paused ? "database paused" : "reconnect requested (RECONNECT or RELOAD)");
		} else if (s->bp_lent) {
			/* Idle since the kernel last gave it back, and only closed
			 * when no client has it at this moment. */
			int64_t used = bypass_server_last_used_us(s);
			int64_t idle = now_us - (used > s->state_since_us ? used : s->state_since_us);
			if (cfg->server_idle_timeout_us && idle > cfg->server_idle_timeout_us && bypass_server_unlend(s))
				server_close(s, "server_idle_timeout");
			else if (lifetime && now_us - s->connect_time_us > lifetime && bypass_server_unlend(s))
				server_close(s, "server_lifetime");
		} else if (cfg->server_idle_timeout_us && age > cfg->server_idle_timeout_us)
			server_close(s, "server_idle_timeout");
		else if (lifetime && now_us - s->connect_time_us > lifetime)
			server_close(s, "server_lifetime");
		break;
	case SERVER_CHECK:
		/* A connection that does not answer its check is as good as
		 * dead; the waiting client gets another server. */
		if (cfg->server_connect_timeout_us && age > cfg->server_connect_timeout_us)
			server_close(s, "server_check_query not answered within server_connect_timeout");
		break;
	case SERVER_ACTIVE:
		/* server_fast_close (session mode): a server RECONNECT or a
		 * RELOAD outdated goes between transactions, and its client
		 * with it, so the client sees its session end. */
		if (cfg->server_fast_close && s->client && s->pool->mode == POOL_MODE_SESSION &&
		    (s->generation != __atomic_load_n(&s->pool->generation, __ATOMIC_RELAXED) ||
		     __atomic_load_n(&s->pool->stale, __ATOMIC_RELAXED)) &&
		    server_at_boundary(s) && !s->client->bp_kernel)
			client_fail(s->client, "08P01", "database configuration changed (server_fast_close)");
		break;
	default:
		break;
	}
}
