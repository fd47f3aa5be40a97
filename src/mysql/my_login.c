/*
 * my_login.c - a MySQL client's connection phase: sluice's greeting, the
 * password check against auth_file (mysql_native_password, or
 * caching_sha2_password's fast path), AuthSwitchRequest, and the pool the
 * client joins (see my_conn.h).
 */
#include "my_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "config.h"
#include "log.h"
#include "my_ops.h"
#include "pool.h"
#include "runtime.h"

/* What sluice offers a client. Not SSL (no TLS on MySQL's client leg yet),
 * not COMPRESS. */
#define MY_SLUICE_CAPS                                                                                         \
	(MY_CLIENT_LONG_PASSWORD | MY_CLIENT_FOUND_ROWS | MY_CLIENT_LONG_FLAG | MY_CLIENT_CONNECT_WITH_DB |      \
	 MY_CLIENT_NO_SCHEMA | MY_CLIENT_ODBC | MY_CLIENT_LOCAL_FILES | MY_CLIENT_IGNORE_SPACE |                \
	 MY_CLIENT_PROTOCOL_41 | MY_CLIENT_INTERACTIVE | MY_CLIENT_IGNORE_SIGPIPE | MY_CLIENT_TRANSACTIONS |   \
	 MY_CLIENT_SECURE_CONNECTION | MY_CLIENT_MULTI_STATEMENTS | MY_CLIENT_MULTI_RESULTS |                  \
	 MY_CLIENT_PS_MULTI_RESULTS | MY_CLIENT_PLUGIN_AUTH | MY_CLIENT_CONNECT_ATTRS |                         \
	 MY_CLIENT_PLUGIN_AUTH_LENENC | MY_CLIENT_SESSION_TRACK | MY_CLIENT_DEPRECATE_EOF)

#define NATIVE "mysql_native_password"
#define SHA2 "caching_sha2_password"

/* A nonce as MySQL servers draw it: printable bytes, never NUL (clients
 * read part 2 of the greeting's nonce as a NUL-terminated string). */
static void draw_scramble(uint8_t out[MY_SCRAMBLE_LEN])
{
	if (RAND_bytes(out, MY_SCRAMBLE_LEN) != 1)
		abort(); /* no randomness: every password answer could be replayed */
	for (unsigned i = 0; i < MY_SCRAMBLE_LEN; i++)
		out[i] = (uint8_t)(33 + out[i] % 94);
}

/* Greet a new client: protocol 10 with a fresh nonce. False when it is
 * gone (closed). */
bool my_login_greet(struct my_client *c)
{
	struct my_handshake h = {
		.conn_id = c->cancel_pid,
		.caps = MY_SLUICE_CAPS,
		.charset = 45, /* utf8mb4_general_ci */
		.status = MY_STATUS_AUTOCOMMIT,
	};
	snprintf(h.server_version, sizeof(h.server_version), "%s", runtime_config()->mysql_server_version);
	snprintf(h.auth_plugin, sizeof(h.auth_plugin), NATIVE);
	draw_scramble(c->scramble);
	memcpy(h.scramble, c->scramble, MY_SCRAMBLE_LEN);
	c->login = MY_LOGIN_GREETED;
	if (my_handshake_build(&c->sock.wbuf, &h) < 0) {
		my_client_close(c, "out of memory");
		return false;
	}
	c->sock.want_read = true;
	return my_client_flush_own(c);
}

/* The protocol's own part of a pool's identity: what changes the bytes a
 * server sends or how it reads a command, so clients that differ in it
 * never share a server (pool.h, variant). */
#define MY_VARIANT_CAPS                                                                                      \
	(MY_CLIENT_FOUND_ROWS | MY_CLIENT_NO_SCHEMA | MY_CLIENT_ODBC | MY_CLIENT_LOCAL_FILES |                \
	 MY_CLIENT_IGNORE_SPACE | MY_CLIENT_INTERACTIVE | MY_CLIENT_MULTI_STATEMENTS | MY_CLIENT_MULTI_RESULTS | \
	 MY_CLIENT_PS_MULTI_RESULTS | MY_CLIENT_SESSION_TRACK | MY_CLIENT_DEPRECATE_EOF)

struct pool *my_login_pool(const struct my_client *c, char *err, size_t errlen)
{
	uint32_t caps = c->caps & MY_VARIANT_CAPS;
	uint8_t variant[5] = { (uint8_t)caps, (uint8_t)(caps >> 8), (uint8_t)(caps >> 16), (uint8_t)(caps >> 24),
			       c->charset };
	return pool_get_variant(runtime_config(), &my_ops, c->db, c->user, variant, sizeof(variant), err, errlen);
}

static void login_finish(struct my_client *c)
{
	if (!c->db[0]) {
		my_kill_login_finish(c);
		return;
	}
	char err[200];
	c->pool = my_login_pool(c, err, sizeof(err));
	if (!c->pool) {
		char msg[300];
		snprintf(msg, sizeof(msg), "Unknown database '%s' (%s)", c->db, err);
		my_client_fail(c, "42000", msg);
		return;
	}
	client_core_join_pool(&c->base);
	snprintf(c->schema, sizeof(c->schema), "%s", c->pool->server_db);
	my_ok_build(&c->sock.wbuf, c->seq, 0, 0, MY_STATUS_AUTOCOMMIT, 0);
	c->login = MY_LOGIN_DONE;
	my_client_set_state(c, CLIENT_IDLE);
	CLOG(c, LOG_LEVEL_DEBUG, "logged in");
	my_client_flush_own(c);
}

static void deny(struct my_client *c)
{
	char msg[300];
	char host[48];
	snprintf(host, sizeof(host), "%s", c->peer);
	char *colon = strrchr(host, ':');
	if (colon)
		*colon = '\0';
	snprintf(msg, sizeof(msg), "Access denied for user '%s'@'%s' (using password: YES)", c->user, host);
	my_client_fail(c, "28000", msg);
}

/* Ask the client to answer for mysql_native_password with a new nonce. */
static void switch_to_native(struct my_client *c)
{
	draw_scramble(c->scramble);
	uint8_t data[MY_SCRAMBLE_LEN + 1];
	memcpy(data, c->scramble, MY_SCRAMBLE_LEN);
	data[MY_SCRAMBLE_LEN] = 0;
	if (my_auth_switch_build(&c->sock.wbuf, c->seq++, NATIVE, data, sizeof(data)) < 0) {
		my_client_close(c, "out of memory");
		return;
	}
	c->login = MY_LOGIN_SWITCHED;
	my_client_set_state(c, CLIENT_AUTH);
	my_client_flush_own(c);
}

/* Check an answer for plugin against auth_file's secret for the user.
 * Returns 1 (proven), 0 (wrong), -1 (this plugin cannot check that
 * secret: switch to mysql_native_password). */
static int check_answer(struct my_client *c, const char *plugin, const uint8_t *answer, uint32_t len)
{
	const struct config *cfg = runtime_config();
	if (cfg->auth_type == AUTH_TYPE_ANY || cfg->auth_type == AUTH_TYPE_TRUST)
		return 1;
	const char *secret = config_find_secret(cfg, c->user);
	if (!secret)
		return 0;
	bool native_hash = secret[0] == '*' && strlen(secret) == 41;
	if (strcmp(plugin, NATIVE) == 0) {
		uint8_t stage2[20];
		if (native_hash) {
			if (my_native_stage2_from_hex(secret, stage2) < 0)
				return 0;
		} else {
			if (!*secret)
				return len == 0;
			my_native_stage2(secret, stage2);
		}
		bool ok = my_native_check(stage2, c->scramble, answer, len);
		OPENSSL_cleanse(stage2, sizeof(stage2));
		return ok;
	}
	if (strcmp(plugin, SHA2) == 0 && !native_hash) {
		if (!*secret)
			return len == 0;
		uint8_t stage2[32];
		my_sha2_stage2(secret, stage2);
		bool ok = my_sha2_check(stage2, c->scramble, answer, len);
		OPENSSL_cleanse(stage2, sizeof(stage2));
		if (ok) {
			/* caching_sha2_password's "fast auth success" before the OK. */
			uint8_t fast = 3;
			my_auth_more_build(&c->sock.wbuf, c->seq++, &fast, 1);
		}
		return ok;
	}
	return -1;
}

static void handle_response(struct my_client *c, const uint8_t *payload, uint32_t len)
{
	struct my_response r;
	if (my_response_parse(payload, len, &r) < 0) {
		my_client_fail(c, "08S01", "Bad handshake");
		return;
	}
	if (r.ssl_request) {
		my_client_fail(c, "08S01", "SSL connection error: sluice does not offer TLS to MySQL clients yet");
		return;
	}
	c->caps = r.caps & MY_SLUICE_CAPS;
	c->charset = r.charset;
	if (strlen(r.user) >= sizeof(c->user) || strlen(r.db) >= sizeof(c->db)) {
		my_client_fail(c, "28000", "user or database name too long");
		return;
	}
	snprintf(c->user, sizeof(c->user), "%s", r.user);
	/* No database: a connection that can only KILL (my_kill.c). */
	snprintf(c->db, sizeof(c->db), "%s", r.has_db ? r.db : "");
	const char *over = client_core_take_limits(&c->base, c->db, c->user, CONFIG_PROTO_MYSQL);
	if (over) {
		my_client_fail(c, "08004", over);
		return;
	}
	const char *plugin = r.auth_plugin[0] ? r.auth_plugin : NATIVE;
	int ok = check_answer(c, plugin, r.auth, r.auth_len);
	OPENSSL_cleanse(r.auth, sizeof(r.auth));
	if (ok < 0)
		switch_to_native(c);
	else if (ok)
		login_finish(c);
	else
		deny(c);
}

void my_login_packet(struct my_client *c, const struct my_packet *pk)
{
	c->seq = (uint8_t)(pk->seq + 1);
	if (c->login == MY_LOGIN_GREETED) {
		handle_response(c, pk->payload, pk->len);
		return;
	}
	/* The answer to an AuthSwitchRequest: the raw plugin data. */
	int ok = check_answer(c, NATIVE, pk->payload, pk->len);
	if (ok > 0)
		login_finish(c);
	else
		deny(c);
}

