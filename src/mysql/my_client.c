/*
 * my_client.c - the MySQL client state machine: the greeting, password
 * check and the client->server direction of the command phase (see
 * my_conn.h). The server->client direction and the server's own login are
 * my_server.c's.
 *
 * A command is read whole (or, when it does not fit the receive buffer,
 * forwarded as it arrives), given a server, and forwarded; the client is
 * not read again until its answer is complete, except for the packets of
 * a LOCAL INFILE the server asked for.
 */
#include "my_conn.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "cancel.h"
#include "config.h"
#include "control.h"
#include "log.h"
#include "my_ops.h"
#include "pool.h"
#include "runtime.h"
#include "stats.h"
#include "worker.h"

#define CLOG(c, lvl, fmt, ...) \
	log_write(lvl, "C-%llu %s/%s@%s mysql " fmt, (unsigned long long)(c)->id, \
		  (c)->db[0] ? (c)->db : "-", (c)->user[0] ? (c)->user : "-", (c)->peer, ##__VA_ARGS__)

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

static void client_cb(struct loop_handle *h, uint32_t revents);
static void process(struct my_client *c);

static void set_state(struct my_client *c, int state)
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
static bool flush_own(struct my_client *c)
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
	free(c);
}

void my_client_server_lost(struct my_client *c, const char *msg)
{
	my_client_fail(c, "08S01", msg);
}

/* ---- greeting and password ---- */

/* A nonce as MySQL servers draw it: printable bytes, never NUL (clients
 * read part 2 of the greeting's nonce as a NUL-terminated string). */
static void draw_scramble(uint8_t out[MY_SCRAMBLE_LEN])
{
	if (RAND_bytes(out, MY_SCRAMBLE_LEN) != 1)
		abort(); /* no randomness: every password answer could be replayed */
	for (unsigned i = 0; i < MY_SCRAMBLE_LEN; i++)
		out[i] = (uint8_t)(33 + out[i] % 94);
}

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
		return;
	}
	c->sock.want_read = true;
	CLOG(c, LOG_LEVEL_DEBUG, "accepted");
	if (!flush_own(c))
		return;
	if (has_data)
		client_cb(&c->sock.h, EPOLLIN);
}

/* The protocol's own part of a pool's identity: what changes the bytes a
 * server sends or how it reads a command, so clients that differ in it
 * never share a server (pool.h, variant). */
#define MY_VARIANT_CAPS                                                                                      \
	(MY_CLIENT_FOUND_ROWS | MY_CLIENT_NO_SCHEMA | MY_CLIENT_ODBC | MY_CLIENT_LOCAL_FILES |                \
	 MY_CLIENT_IGNORE_SPACE | MY_CLIENT_INTERACTIVE | MY_CLIENT_MULTI_STATEMENTS | MY_CLIENT_MULTI_RESULTS | \
	 MY_CLIENT_PS_MULTI_RESULTS | MY_CLIENT_SESSION_TRACK | MY_CLIENT_DEPRECATE_EOF)

static void login_finish(struct my_client *c)
{
	char err[200];
	uint32_t caps = c->caps & MY_VARIANT_CAPS;
	uint8_t variant[5] = { (uint8_t)caps, (uint8_t)(caps >> 8), (uint8_t)(caps >> 16), (uint8_t)(caps >> 24),
			       c->charset };
	c->pool = pool_get_variant(runtime_config(), &my_ops, c->db, c->user, variant, sizeof(variant), err,
				   sizeof(err));
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
	set_state(c, CLIENT_IDLE);
	CLOG(c, LOG_LEVEL_DEBUG, "logged in");
	flush_own(c);
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
	set_state(c, CLIENT_AUTH);
	flush_own(c);
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
	if (!r.has_db || !r.db[0]) {
		my_client_fail(c, "3D000", "No database selected: give a database when connecting "
					   "(sluice pools connections per [databases] entry)");
		return;
	}
	snprintf(c->db, sizeof(c->db), "%s", r.db);
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

static void handle_login_packet(struct my_client *c, const struct my_packet *pk)
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

/* ---- command phase ---- */

static bool word_at(const char *s, size_t n, size_t *i, const char *w)
{
	size_t k = strlen(w);
	if (*i + k > n || strncasecmp(s + *i, w, k) != 0)
		return false;
	if (*i + k < n && (isalnum((unsigned char)s[*i + k]) || s[*i + k] == '_'))
		return false;
	*i += k;
	return true;
}

static void skip_blanks(const char *s, size_t n, size_t *i)
{
	while (*i < n && isspace((unsigned char)s[*i]))
		(*i)++;
}

static bool is_word_char(char ch)
{
	return isalnum((unsigned char)ch) || ch == '_' || ch == '$';
}

/* Is w (lower case) a whole word somewhere in the n bytes of s? */
static bool contains_word(const char *s, size_t n, const char *w)
{
	size_t k = strlen(w);
	for (size_t i = 0; i + k <= n; i++)
		if ((i == 0 || !is_word_char(s[i - 1])) && strncasecmp(s + i, w, k) == 0 &&
		    (i + k == n || !is_word_char(s[i + k])))
			return true;
	return false;
}

/* A user variable (@name; @@name is a system variable, which a SELECT
 * only reads). */
static bool has_user_variable(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '@')
			continue;
		if (i + 1 < n && s[i + 1] == '@') {
			i++; /* @@: skip both */
			continue;
		}
		return true;
	}
	return false;
}

/* "SET [SESSION] autocommit = 0|1|ON|OFF|TRUE|FALSE" alone (drivers send it
 * at connect: PyMySQL, Connector/J): sluice sets it on each server the
 * client gets, instead of pinning. */
static bool sets_autocommit_only(const char *s, size_t n)
{
	static const char *const values[] = { "0", "1", "on", "off", "true", "false" };
	size_t i = 0;
	skip_blanks(s, n, &i);
	if (!word_at(s, n, &i, "set"))
		return false;
	skip_blanks(s, n, &i);
	if (i + 2 <= n && s[i] == '@' && s[i + 1] == '@')
		i += 2;
	size_t j = i;
	if (word_at(s, n, &j, "session") && j < n && s[j] == '.')
		i = j + 1;
	else if (word_at(s, n, &i, "session"))
		skip_blanks(s, n, &i);
	if (!word_at(s, n, &i, "autocommit"))
		return false;
	skip_blanks(s, n, &i);
	if (i >= n || s[i] != '=')
		return false;
	i++;
	skip_blanks(s, n, &i);
	bool value = false;
	for (size_t k = 0; k < sizeof(values) / sizeof(values[0]) && !value; k++)
		value = word_at(s, n, &i, values[k]);
	if (!value)
		return false;
	skip_blanks(s, n, &i);
	if (i < n && s[i] == ';')
		i++;
	skip_blanks(s, n, &i);
	return i == n;
}

/* COM_QUERY: "USE name" moves the client to a database sluice follows;
 * statements whose effect outlives the transaction pin the client to its
 * server: those that begin with one of first_words (at the start or after
 * any ';'), and any text with one of any_words or a user variable ('@').
 * Lexical and conservative: quotes and comments are not parsed, so a word
 * inside a string counts too (docs/behaviour.md, "MySQL"). */
static void screen_query(struct my_client *c, const uint8_t *payload, uint32_t len)
{
	static const char *const first_words[] = {
		"set", "lock", "prepare", "execute", "deallocate", "handler", "xa", "use", "flush", "load",
	};
	static const char *const any_words[] = {
		"temporary", "get_lock", "found_rows", "sql_calc_found_rows", "last_insert_id", "release_lock",
	};
	const char *s = (const char *)payload + 1;
	size_t n = len - 1, i = 0;
	skip_blanks(s, n, &i);
	if (sets_autocommit_only(s, n))
		return; /* the answer's status flags say what the session has now */
	if (word_at(s, n, &i, "use")) {
		skip_blanks(s, n, &i);
		char name[64];
		size_t k = 0;
		bool quoted = i < n && s[i] == '`';
		if (quoted)
			i++;
		while (i < n && k + 1 < sizeof(name) && (quoted ? s[i] != '`' : is_word_char(s[i])))
			name[k++] = s[i++];
		name[k] = '\0';
		if (quoted && i < n)
			i++;
		skip_blanks(s, n, &i);
		if (i < n && s[i] == ';')
			i++;
		skip_blanks(s, n, &i);
		if (k && i == n) {
			snprintf(c->want_schema, sizeof(c->want_schema), "%s", name);
			return;
		}
	}
	const char *why = has_user_variable(s, n) ? "@" : NULL;
	for (size_t k = 0; !why && k < sizeof(any_words) / sizeof(any_words[0]); k++)
		if (contains_word(s, n, any_words[k]))
			why = any_words[k];
	for (size_t at = 0; !why && at <= n;) {
		size_t j = at;
		skip_blanks(s, n, &j);
		for (size_t k = 0; k < sizeof(first_words) / sizeof(first_words[0]); k++) {
			size_t p = j;
			if (word_at(s, n, &p, first_words[k])) {
				why = first_words[k];
				break;
			}
		}
		const char *semi = memchr(s + at, ';', n - at);
		at = semi ? (size_t)(semi - s) + 1 : n + 1;
	}
	if (why && !c->pinned) {
		CLOG(c, LOG_LEVEL_DEBUG, "pinned to its server (\"%s\")", why);
		c->pinned = true;
	}
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
		flush_own(c);
		return true;
	case MY_COM_CHANGE_USER:
	case MY_COM_BINLOG_DUMP:
	case MY_COM_PROCESS_KILL:
	case MY_COM_DEBUG:
	case MY_COM_STMT_FETCH:
		pgsock_drop(&c->sock, MY_HEADER_LEN + pk->len);
		my_err_build(&c->sock.wbuf, 1, 1235, "42000", "This command is not supported through sluice");
		flush_own(c);
		return true;
	case MY_COM_INIT_DB: {
		size_t n = pk->len - 1;
		if (n >= sizeof(c->want_schema)) {
			pgsock_drop(&c->sock, MY_HEADER_LEN + pk->len);
			my_err_build(&c->sock.wbuf, 1, 1102, "42000", "Incorrect database name");
			flush_own(c);
			return true;
		}
		memcpy(c->want_schema, pk->payload + 1, n);
		c->want_schema[n] = '\0';
		return false;
	}
	case MY_COM_QUERY: {
		/* KILL names a connection id: the client knows sluice's, which
		 * would name an unrelated session on the server. */
		size_t i = 0;
		skip_blanks((const char *)pk->payload + 1, pk->len - 1, &i);
		if (word_at((const char *)pk->payload + 1, pk->len - 1, &i, "kill")) {
			pgsock_drop(&c->sock, MY_HEADER_LEN + pk->len);
			my_err_build(&c->sock.wbuf, 1, 1235, "42000", "KILL through sluice is not supported yet");
			flush_own(c);
			return true;
		}
		screen_query(c, pk->payload, pk->len);
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
		set_state(c, CLIENT_WAITING);
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
			handle_login_packet(c, &pk);
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
		set_state(c, CLIENT_ACTIVE);
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
	set_state(c, CLIENT_ACTIVE);
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
		set_state(c, CLIENT_IDLE);
		pool_release(&s->base);
	} else if (!s) {
		set_state(c, CLIENT_IDLE);
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
		} else if (!flush_own(c)) {
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
