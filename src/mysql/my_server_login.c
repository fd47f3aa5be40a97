/*
 * my_server_login.c - sluice logging in to a MySQL server with the pool's
 * user: mysql_native_password or caching_sha2_password, with
 * AuthSwitchRequest and, for a full caching_sha2 authentication without
 * TLS, the server's RSA key; and the reset before a session goes to
 * another client (COM_CHANGE_USER: it re-authenticates and clears the
 * session, character set included, which COM_RESET_CONNECTION would not
 * restore). With server_tls_sslmode, the login runs inside TLS when the
 * server's greeting offers CLIENT_SSL.
 */
#include "my_conn.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/crypto.h>

#include "config.h"
#include "log.h"
#include "my_mirror.h"
#include "my_monitor.h"
#include "pool.h"
#include "runtime.h"
#include "tls.h"

#define NATIVE "mysql_native_password"
#define SHA2 "caching_sha2_password"

/* What sluice asks of every server, beside the client's part (the pool's
 * variant). Not CONNECT_ATTRS or COMPRESS; SSL when TLS is used. */
#define MY_SERVER_BASE_CAPS                                                                             \
	(MY_CLIENT_LONG_PASSWORD | MY_CLIENT_LONG_FLAG | MY_CLIENT_CONNECT_WITH_DB | MY_CLIENT_PROTOCOL_41 | \
	 MY_CLIENT_TRANSACTIONS | MY_CLIENT_SECURE_CONNECTION | MY_CLIENT_PLUGIN_AUTH |                     \
	 MY_CLIENT_PLUGIN_AUTH_LENENC)

void my_server_login_fail(struct my_server *s, const char *sqlstate, const char *msg, bool auth_error)
{
	if (!s->aside && !server_core_host_failed(&s->base, sqlstate, msg, auth_error))
		SLOG(s, LOG_LEVEL_WARNING, "trying the next host: %s", msg);
	s->login_step = 2; /* reported */
	my_server_close(s, msg);
}

/* The password to log in with: the [databases] entry's, else auth_file's
 * for the server user when it is in plain text ("" otherwise: a MySQL
 * server needs the password itself, not a hash of it). */
const char *my_server_password(const struct pool *p)
{
	if (p->server_password)
		return p->server_password;
	const char *pw = config_find_secret(runtime_config(), p->server_user);
	if (!pw || (pw[0] == '*' && strlen(pw) == 41) || strncmp(pw, "md5", 3) == 0 ||
	    strncmp(pw, "SCRAM-SHA-256$", 14) == 0)
		return "";
	return pw;
}

const char *my_server_auth_answer(const struct pool *p, const char *plugin, const uint8_t *nonce, uint8_t *out,
				  uint32_t *len)
{
	const char *pw = my_server_password(p);
	if (strcmp(plugin, SHA2) == 0) {
		my_sha2_answer(pw, nonce, out, len);
		return SHA2;
	}
	my_native_answer(pw, nonce, out, len);
	return NATIVE;
}

/* s's answer to nonce for plugin. */
static const char *auth_answer(struct my_server *s, const char *plugin, const uint8_t *nonce, uint8_t *out,
			       uint32_t *len)
{
	return my_server_auth_answer(s->pool, plugin, nonce, out, len);
}

static int auth_fail(const char **sqlstate, const char *state, char *err, size_t errlen, bool *auth_error,
		     bool denied, const char *msg)
{
	*sqlstate = state;
	*auth_error = denied;
	snprintf(err, errlen, "%s", msg);
	return -1;
}

int my_pool_auth_more(const struct pool *p, struct my_pool_auth *a, const struct my_packet *pk, bool tls,
		      struct iobuf *out, const char **sqlstate, char *err, size_t errlen, bool *auth_error)
{
	const uint8_t *b = pk->payload;
	if (pk->len && b[0] == 0xfe) { /* AuthSwitchRequest */
		char plugin[64];
		const uint8_t *data;
		uint32_t dlen;
		if (my_auth_switch_parse(b, pk->len, plugin, sizeof(plugin), &data, &dlen) < 0 || dlen < MY_SCRAMBLE_LEN)
			return auth_fail(sqlstate, "08P01", err, errlen, auth_error, false,
					 "bad AuthSwitchRequest from the server");
		memcpy(a->scramble, data, MY_SCRAMBLE_LEN);
		uint8_t answer[32];
		uint32_t alen;
		const char *used = my_server_auth_answer(p, plugin, a->scramble, answer, &alen);
		if (strcmp(used, plugin) != 0) {
			char msg[200];
			snprintf(msg, sizeof(msg), "server asks for authentication plugin %s, which sluice does not speak",
				 plugin);
			return auth_fail(sqlstate, "28000", err, errlen, auth_error, true, msg);
		}
		snprintf(a->plugin, sizeof(a->plugin), "%s", plugin);
		int rc = my_packet_put(out, a->seq++, answer, alen);
		OPENSSL_cleanse(answer, sizeof(answer));
		return rc == 0 ? 0 : auth_fail(sqlstate, "53200", err, errlen, auth_error, false, "out of memory");
	}
	if (pk->len && b[0] == 0x01 && strcmp(a->plugin, SHA2) == 0) { /* AuthMoreData */
		int rc = 0;
		if (pk->len == 2 && b[1] == 3)
			return 0; /* fast authentication succeeded: the OK follows */
		if (pk->len == 2 && b[1] == 4 && tls) {
			/* Full authentication inside TLS: the password itself. */
			const char *pw = my_server_password(p);
			rc = my_packet_put(out, a->seq++, pw, (uint32_t)strlen(pw) + 1);
		} else if (pk->len == 2 && b[1] == 4) {
			/* Full authentication without TLS: ask for the server's RSA
			 * public key. */
			uint8_t ask = 2;
			rc = my_packet_put(out, a->seq++, &ask, 1);
		} else {
			/* The public key (PEM). */
			uint8_t enc[1024];
			int n = my_sha2_rsa_encrypt(my_server_password(p), a->scramble, (const char *)b + 1, pk->len - 1, enc,
						    sizeof(enc));
			if (n < 0)
				return auth_fail(sqlstate, "28000", err, errlen, auth_error, false,
						 "cannot encrypt the password with the server's RSA key");
			rc = my_packet_put(out, a->seq++, enc, (uint32_t)n);
		}
		return rc == 0 ? 0 : auth_fail(sqlstate, "53200", err, errlen, auth_error, false, "out of memory");
	}
	return auth_fail(sqlstate, "08P01", err, errlen, auth_error, false, "unexpected packet during login");
}

/* HandshakeResponse41 with the pool's user, database and collation,
 * answering the greeting's nonce for its plugin (s->auth.plugin); inside TLS
 * when the SSLRequest went before it. */
static void send_response(struct my_server *s)
{
	const uint8_t *v = s->pool->variant;
	struct my_response r = {
		.caps = s->caps | (s->sock.ssl ? MY_CLIENT_SSL : 0),
		.max_packet = 1u << 24,
		.charset = v ? v[4] : 45,
		.has_db = true,
	};
	snprintf(r.user, sizeof(r.user), "%s", s->pool->server_user);
	snprintf(r.db, sizeof(r.db), "%s", s->pool->server_db);
	const char *plugin = auth_answer(s, s->auth.plugin, s->auth.scramble, r.auth, &r.auth_len);
	snprintf(r.auth_plugin, sizeof(r.auth_plugin), "%s", plugin);
	snprintf(s->auth.plugin, sizeof(s->auth.plugin), "%s", plugin);
	int rc = my_response_build(&s->sock.wbuf, s->auth.seq++, &r);
	OPENSSL_cleanse(r.auth, sizeof(r.auth));
	if (rc < 0) {
		my_server_login_fail(s, "53200", "out of memory", false);
		return;
	}
	s->login_step = 1;
	server_core_set_state(&s->base, SERVER_LOGIN);
	my_server_send_pending(s);
}

void my_server_tls_step(struct my_server *s)
{
	char why[240];
	int rc = pgsock_tls_step(&s->worker->loop, &s->sock, why, sizeof(why));
	if (rc == -EAGAIN)
		return;
	if (rc < 0) {
		char msg[400];
		snprintf(msg, sizeof(msg), "TLS towards server %s: %s", server_core_host(&s->base)->addr_text, why);
		/* A certificate that does not verify will not verify on retry:
		 * waiting clients get the reason now. */
		my_server_login_fail(s, "08006", msg, true);
		return;
	}
	s->tls_handshaking = false;
	SLOG(s, LOG_LEVEL_DEBUG, "TLS established");
	send_response(s);
}

/* The greeting offers CLIENT_SSL and server_tls_sslmode asks for TLS: an
 * SSLRequest (the response's first 32 bytes), then the handshake; the
 * server says nothing in between. */
static void start_tls(struct my_server *s)
{
	const uint8_t *v = s->pool->variant;
	struct my_response r = {
		.caps = s->caps | MY_CLIENT_SSL,
		.max_packet = 1u << 24,
		.charset = v ? v[4] : 45,
		.ssl_request = true,
	};
	if (pgsock_unexamined(&s->sock) > 0) {
		my_server_login_fail(s, "08006", "server sent unencrypted data after its greeting", false);
		return;
	}
	if (my_response_build(&s->sock.wbuf, s->auth.seq++, &r) < 0 || pgsock_flush(&s->sock, NULL) != 0) {
		my_server_login_fail(s, "08006", "cannot send the SSLRequest", false);
		return;
	}
	s->sock.ssl = tls_new_for_server(s->sock.h.fd, server_core_host(&s->base)->name,
					 runtime_config()->server_tls_sslmode);
	if (!s->sock.ssl) {
		my_server_login_fail(s, "08006", "cannot start TLS towards the server", false);
		return;
	}
	s->tls_handshaking = true;
	my_server_tls_step(s);
}

static void handle_greeting(struct my_server *s, const struct my_packet *pk)
{
	if (pk->len && pk->payload[0] == 0xff) {
		char msg[300];
		my_err_text(pk->payload, pk->len, "server refused the connection", msg, sizeof(msg));
		my_server_login_fail(s, "08004", msg, false);
		return;
	}
	struct my_handshake h;
	if (my_handshake_parse(pk->payload, pk->len, &h) < 0) {
		my_server_login_fail(s, "08P01", "not a MySQL server (bad greeting)", false);
		return;
	}
	const uint8_t *v = s->pool->variant;
	uint32_t want = v ? (uint32_t)v[0] | (uint32_t)v[1] << 8 | (uint32_t)v[2] << 16 | (uint32_t)v[3] << 24 : 0;
	uint32_t caps = (MY_SERVER_BASE_CAPS | want) & h.caps;
	if ((caps & want) != want) {
		char msg[200];
		snprintf(msg, sizeof(msg), "server lacks capabilities its clients use (0x%x)", want & ~caps);
		my_server_login_fail(s, "08004", msg, false);
		return;
	}
	s->caps = caps;
	s->conn_id = h.conn_id;
	s->mariadb = strstr(h.server_version, "MariaDB") != NULL;
	memcpy(s->auth.scramble, h.scramble, MY_SCRAMBLE_LEN);
	snprintf(s->auth.plugin, sizeof(s->auth.plugin), "%s", h.auth_plugin);
	s->auth.seq = (uint8_t)(pk->seq + 1);
	const struct config *cfg = runtime_config();
	if (cfg->server_tls_sslmode != TLS_MODE_DISABLE && server_core_host(&s->base)->addr.ss_family != AF_UNIX) {
		if (h.caps & MY_CLIENT_SSL) {
			start_tls(s);
			return;
		}
		if (cfg->server_tls_sslmode >= TLS_MODE_REQUIRE) {
			/* Told to the waiting clients at once, as a refused password. */
			my_server_login_fail(s, "08006", "server does not offer TLS (no CLIENT_SSL in its greeting), "
							"but server_tls_sslmode requires it", true);
			return;
		}
	}
	send_response(s);
}

/* The login (or a COM_CHANGE_USER reset) is through. */
static void logged_in(struct my_server *s, const struct my_packet *pk)
{
	struct my_ok ok;
	snprintf(s->schema, sizeof(s->schema), "%s", s->pool->server_db);
	my_server_stmts_clear(&s->stmts); /* a reset closed them */
	s->last_insert_id = 0;
	s->pinned = false;
	s->in_trans = false;
	my_session_server_clear(s); /* every variable at its login value */
	/* The server's default, or what a reset left. */
	s->autocommit_off = my_ok_parse(pk->payload, pk->len, s->caps, &ok) == 0 && !(ok.status & MY_STATUS_AUTOCOMMIT);
	if (s->state == SERVER_LOGIN)
		SLOG(s, LOG_LEVEL_DEBUG, "logged in (connection id %u)", s->conn_id);
	if (s->state == SERVER_LOGIN && s->aside == SERVER_MIRROR) {
		my_mirror_ready(s); /* it replays mirrored transactions */
		return;
	}
	if (s->state == SERVER_LOGIN && my_monitor_logged_in(s))
		return; /* its role is asked first (routed pools), or it is a monitor */
	pool_release(&s->base);
}

/* A packet of the login (or of a reset's COM_CHANGE_USER). */
static void handle_auth(struct my_server *s, const struct my_packet *pk)
{
	const uint8_t *p = pk->payload;
	s->auth.seq = (uint8_t)(pk->seq + 1);
	if (pk->len == 0) {
		my_server_login_fail(s, "08P01", "empty packet during login", false);
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
		my_server_login_fail(s, parsed ? e.sqlstate : "28000", msg[0] ? msg : "login refused", denied);
		return;
	}
	const char *sqlstate;
	char err[240];
	bool denied;
	if (my_pool_auth_more(s->pool, &s->auth, pk, s->sock.ssl != NULL, &s->sock.wbuf, &sqlstate, err, sizeof(err),
			      &denied) < 0) {
		my_server_login_fail(s, sqlstate, err, denied);
		return;
	}
	my_server_send_pending(s);
}

void my_server_login_packet(struct my_server *s, const struct my_packet *pk)
{
	if (s->login_step == 0)
		handle_greeting(s, pk);
	else
		handle_auth(s, pk);
}

/* Clear the session for the next client: COM_CHANGE_USER with the pool's
 * user, database and character set. */
bool my_server_reset_session(struct my_server *s)
{
	const uint8_t *v = s->pool->variant;
	uint8_t answer[32];
	uint32_t alen;
	const char *plugin = auth_answer(s, s->auth.plugin, s->auth.scramble, answer, &alen);
	int off = my_begin(&s->sock.wbuf, 0);
	bool ok = off >= 0 && my_put_u8(&s->sock.wbuf, MY_COM_CHANGE_USER) == 0 &&
		  my_put_strnul(&s->sock.wbuf, s->pool->server_user) == 0 && my_put_u8(&s->sock.wbuf, (uint8_t)alen) == 0 &&
		  iobuf_append(&s->sock.wbuf, answer, alen) == 0 && my_put_strnul(&s->sock.wbuf, s->pool->server_db) == 0 &&
		  my_put_u16(&s->sock.wbuf, v ? v[4] : 45) == 0 && my_put_strnul(&s->sock.wbuf, plugin) == 0 &&
		  my_end(&s->sock.wbuf, off) == 0;
	OPENSSL_cleanse(answer, sizeof(answer));
	if (!ok)
		return false;
	s->auth.seq = 1;
	server_core_set_state(&s->base, SERVER_RESET);
	s->sock.want_read = true;
	my_server_send_pending(s);
	return true;
}

