/*
 * my_login.c - a MySQL client's connection phase: sluice's greeting, TLS
 * (SSLRequest), the password check against auth_file
 * (mysql_native_password; caching_sha2_password's fast path and its full
 * authentication, in clear over TLS or RSA-encrypted), AuthSwitchRequest,
 * the pool the client joins (see my_conn.h), and COM_CHANGE_USER, which
 * runs the same checks again in the command phase.
 *
 * Which plugin checks which auth_file secret:
 *   plain text      both plugins; caching_sha2's fast path always works
 *                   (sluice knows the password, so its "cache" is warm).
 *   *HEX (native)   mysql_native_password. A caching_sha2_password answer
 *                   is checked from the cache of earlier full
 *                   authentications; without an entry, full
 *                   authentication over TLS (the password checks against
 *                   the hash, then fills the cache), or without TLS a
 *                   switch to mysql_native_password, which every client
 *                   speaks without an RSA round trip.
 *   md5 / SCRAM     (PostgreSQL's forms) caching_sha2_password only: the
 *                   cache, else full authentication (TLS, or RSA when the
 *                   client asks for sluice's public key); a
 *                   mysql_native_password answer is switched to it.
 */
#include "my_conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <sys/socket.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "auth_crypto.h"
#include "config.h"
#include "log.h"
#include "my_ops.h"
#include "pool.h"
#include "runtime.h"
#include "tls.h"

/* What sluice offers a client, and CLIENT_SSL when client_tls_sslmode is
 * not disable (tls_offered). Not COMPRESS. */
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

/* TLS is offered when client_tls_sslmode is not disable (MySQL's
 * listener is TCP only), once. */
static bool tls_offered(const struct my_client *c)
{
	return runtime_config()->client_tls_sslmode != TLS_MODE_DISABLE && !c->sock.ssl;
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
	if (tls_offered(c))
		h.caps |= MY_CLIENT_SSL;
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
	my_client_session_cleared(c);
	snprintf(c->schema, sizeof(c->schema), "%s", c->pool->server_db);
	my_ok_build(&c->sock.wbuf, c->seq, 0, 0, MY_STATUS_AUTOCOMMIT, 0);
	c->login = MY_LOGIN_DONE;
	my_client_set_state(c, CLIENT_IDLE);
	CLOG(c, LOG_LEVEL_DEBUG, "%s%s", c->changing_user ? "changed user (COM_CHANGE_USER)" : "logged in",
	     c->sock.ssl ? " over TLS" : "");
	c->changing_user = false;
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

/* Ask the client to answer for plugin (NATIVE or SHA2) with a new nonce. */
static void switch_to(struct my_client *c, const char *plugin)
{
	draw_scramble(c->scramble);
	uint8_t data[MY_SCRAMBLE_LEN + 1];
	memcpy(data, c->scramble, MY_SCRAMBLE_LEN);
	data[MY_SCRAMBLE_LEN] = 0;
	if (my_auth_switch_build(&c->sock.wbuf, c->seq++, plugin, data, sizeof(data)) < 0) {
		my_client_close(c, "out of memory");
		return;
	}
	c->login = strcmp(plugin, SHA2) == 0 ? MY_LOGIN_SWITCHED_SHA2 : MY_LOGIN_SWITCHED;
	my_client_set_state(c, CLIENT_AUTH);
	my_client_flush_own(c);
}

/* ---- auth_file secrets ---- */

enum secret_kind {
	SECRET_NONE,        /* no such user */
	SECRET_PLAIN,       /* the password itself */
	SECRET_NATIVE_HASH, /* MySQL's "*" + 40 hex: SHA1(SHA1(password)) */
	SECRET_PG_MD5,      /* PostgreSQL's "md5" + md5(password + user) */
	SECRET_PG_SCRAM,    /* PostgreSQL's SCRAM-SHA-256 verifier */
};

static enum secret_kind secret_kind_of(const char *secret)
{
	if (!secret)
		return SECRET_NONE;
	if (secret[0] == '*' && strlen(secret) == 41)
		return SECRET_NATIVE_HASH;
	if (pg_secret_is_md5(secret))
		return SECRET_PG_MD5;
	if (pg_secret_is_scram(secret))
		return SECRET_PG_SCRAM;
	return SECRET_PLAIN;
}

/* A SCRAM-SHA-256 verifier's StoredKey from a password (RFC 5802:
 * SHA256(HMAC(PBKDF2(password, salt, i), "Client Key"))). The password is
 * used as given: PostgreSQL's SASLprep changes only non-ASCII ones. */
static bool scram_matches(const char *password, const char *secret)
{
	struct scram_verifier v;
	if (scram_verifier_parse(secret, &v) < 0)
		return false;
	uint8_t salted[SCRAM_KEY_LEN], client_key[SCRAM_KEY_LEN], stored[SCRAM_KEY_LEN];
	unsigned int n = sizeof(client_key);
	bool ok = PKCS5_PBKDF2_HMAC(password, (int)strlen(password), v.salt, (int)v.salt_len, v.iterations,
				    EVP_sha256(), sizeof(salted), salted) == 1 &&
		  HMAC(EVP_sha256(), salted, sizeof(salted), (const uint8_t *)"Client Key", 10, client_key, &n) &&
		  EVP_Digest(client_key, sizeof(client_key), stored, NULL, EVP_sha256(), NULL) == 1 &&
		  CRYPTO_memcmp(stored, v.stored_key, SCRAM_KEY_LEN) == 0;
	OPENSSL_cleanse(salted, sizeof(salted));
	OPENSSL_cleanse(client_key, sizeof(client_key));
	return ok;
}

/* Does a password sent in full (caching_sha2's full authentication)
 * match auth_file's secret for user? */
static bool password_matches(const char *password, const char *user, const char *secret)
{
	switch (secret_kind_of(secret)) {
	case SECRET_PLAIN:
		return auth_str_equal_ct(password, secret);
	case SECRET_NATIVE_HASH: {
		uint8_t want[20], got[20];
		if (my_native_stage2_from_hex(secret, want) < 0)
			return false;
		my_native_stage2(password, got);
		bool ok = CRYPTO_memcmp(want, got, sizeof(got)) == 0;
		OPENSSL_cleanse(got, sizeof(got));
		return ok;
	}
	case SECRET_PG_MD5: {
		char hash[36];
		pg_md5_password_hash(password, user, hash);
		bool ok = auth_str_equal_ct(hash, secret);
		OPENSSL_cleanse(hash, sizeof(hash));
		return ok;
	}
	case SECRET_PG_SCRAM:
		return scram_matches(password, secret);
	default:
		return false;
	}
}

/* ---- caching_sha2_password's cache ----
 *
 * What MySQL keeps after a full authentication: SHA256(SHA256(password))
 * per user, which the fast path checks against. An entry holds a digest of
 * the auth_file secret it was proven against, so a RELOAD that changes the
 * secret makes it useless. Shared by the workers (sha2_lock); a small
 * table, overwritten round-robin when full. */

#define SHA2_CACHE_SIZE 256

struct sha2_entry {
	char user[64];                     /* "" = free */
	uint8_t secret_digest[32];         /* SHA256 of the auth_file secret */
	uint8_t stage2[32];                /* SHA256(SHA256(password)) */
};

static pthread_mutex_t sha2_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sha2_entry sha2_cache[SHA2_CACHE_SIZE]; /* sha2_lock */
static unsigned sha2_next;                             /* slot overwritten next (sha2_lock) */

static void secret_digest(const char *secret, uint8_t out[32])
{
	EVP_Digest(secret, strlen(secret), out, NULL, EVP_sha256(), NULL);
}

static bool sha2_cache_get(const char *user, const char *secret, uint8_t stage2[32])
{
	uint8_t d[32];
	secret_digest(secret, d);
	bool found = false;
	pthread_mutex_lock(&sha2_lock);
	for (unsigned i = 0; i < SHA2_CACHE_SIZE && !found; i++) {
		struct sha2_entry *e = &sha2_cache[i];
		if (e->user[0] && strcmp(e->user, user) == 0 && memcmp(e->secret_digest, d, 32) == 0) {
			memcpy(stage2, e->stage2, 32);
			found = true;
		}
	}
	pthread_mutex_unlock(&sha2_lock);
	return found;
}

static void sha2_cache_put(const char *user, const char *secret, const char *password)
{
	struct sha2_entry n = { 0 };
	snprintf(n.user, sizeof(n.user), "%s", user);
	secret_digest(secret, n.secret_digest);
	my_sha2_stage2(password, n.stage2);
	pthread_mutex_lock(&sha2_lock);
	struct sha2_entry *slot = NULL;
	for (unsigned i = 0; i < SHA2_CACHE_SIZE && !slot; i++)
		if (strcmp(sha2_cache[i].user, user) == 0)
			slot = &sha2_cache[i];
	if (!slot)
		slot = &sha2_cache[sha2_next++ % SHA2_CACHE_SIZE];
	*slot = n;
	pthread_mutex_unlock(&sha2_lock);
	OPENSSL_cleanse(&n, sizeof(n));
}

/* ---- sluice's RSA key for full authentication without TLS ----
 *
 * An ephemeral 2048-bit key pair, made the first time a client asks for
 * the public key (a pause of some milliseconds for that worker, once per
 * process). Clients that carry a copy of the server's key
 * (--server-public-key-path) cannot know it: they fetch it
 * (--get-server-public-key), or use TLS. */

static pthread_mutex_t rsa_lock = PTHREAD_MUTEX_INITIALIZER;
static EVP_PKEY *rsa_key;      /* made once, kept for the process (rsa_lock) */
static char *rsa_pem;          /* its public half, PEM "BEGIN PUBLIC KEY" (rsa_lock) */
static size_t rsa_pem_len;

static EVP_PKEY *rsa_get(const char **pem, size_t *pem_len)
{
	pthread_mutex_lock(&rsa_lock);
	if (!rsa_key) {
		EVP_PKEY *k = EVP_RSA_gen(2048);
		BIO *bio = k ? BIO_new(BIO_s_mem()) : NULL;
		char *p;
		long n;
		if (bio && PEM_write_bio_PUBKEY(bio, k) == 1 && (n = BIO_get_mem_data(bio, &p)) > 0 &&
		    (rsa_pem = malloc((size_t)n))) {
			memcpy(rsa_pem, p, (size_t)n);
			rsa_pem_len = (size_t)n;
			rsa_key = k;
			k = NULL;
		}
		BIO_free(bio);
		EVP_PKEY_free(k);
	}
	*pem = rsa_pem;
	*pem_len = rsa_pem_len;
	EVP_PKEY *k = rsa_key;
	pthread_mutex_unlock(&rsa_lock);
	return k;
}

/* ---- checking answers ---- */

/* What check_answer decided. */
enum verdict {
	PROVEN,         /* logged in (an AuthMoreData may be queued before the OK) */
	WRONG,          /* access denied */
	SWITCH_NATIVE,  /* ask for mysql_native_password */
	SWITCH_SHA2,    /* ask for caching_sha2_password */
	FULL_AUTH,      /* "perform full authentication" sent */
};

static bool send_more(struct my_client *c, uint8_t what)
{
	if (my_auth_more_build(&c->sock.wbuf, c->seq++, &what, 1) < 0) {
		my_client_close(c, "out of memory");
		return false;
	}
	return true;
}

/* Check an answer for plugin against auth_file's secret for the user. */
static enum verdict check_answer(struct my_client *c, const char *plugin, const uint8_t *answer, uint32_t len)
{
	const struct config *cfg = runtime_config();
	if (cfg->auth_type == AUTH_TYPE_ANY || cfg->auth_type == AUTH_TYPE_TRUST)
		return PROVEN;
	const char *secret = config_find_secret(cfg, c->user);
	enum secret_kind kind = secret_kind_of(secret);
	if (kind == SECRET_NONE)
		return WRONG;
	if (strcmp(plugin, NATIVE) == 0) {
		uint8_t stage2[20];
		if (kind == SECRET_NATIVE_HASH) {
			if (my_native_stage2_from_hex(secret, stage2) < 0)
				return WRONG;
		} else if (kind == SECRET_PLAIN) {
			if (!*secret)
				return len == 0 ? PROVEN : WRONG;
			my_native_stage2(secret, stage2);
		} else {
			return SWITCH_SHA2; /* PostgreSQL's hashes prove nothing here */
		}
		bool ok = my_native_check(stage2, c->scramble, answer, len);
		OPENSSL_cleanse(stage2, sizeof(stage2));
		return ok ? PROVEN : WRONG;
	}
	if (strcmp(plugin, SHA2) != 0)
		return kind == SECRET_PLAIN || kind == SECRET_NATIVE_HASH ? SWITCH_NATIVE : SWITCH_SHA2;
	if (len == 0 && *secret && c->login == MY_LOGIN_GREETED) {
		/* libmariadb answers a greeting for another plugin with nothing:
		 * it wants a switch with a nonce for its own (MySQL switches). */
		return kind == SECRET_NATIVE_HASH && !c->sock.ssl ? SWITCH_NATIVE : SWITCH_SHA2;
	}
	uint8_t stage2[32];
	bool known;
	if (kind == SECRET_PLAIN) {
		if (!*secret)
			return len == 0 ? PROVEN : WRONG;
		my_sha2_stage2(secret, stage2);
		known = true;
	} else {
		known = sha2_cache_get(c->user, secret, stage2);
	}
	bool ok = known && my_sha2_check(stage2, c->scramble, answer, len);
	OPENSSL_cleanse(stage2, sizeof(stage2));
	if (ok && kind != SECRET_PLAIN)
		CLOG(c, LOG_LEVEL_DEBUG, "caching_sha2_password: fast authentication from the cache");
	if (ok)
		return send_more(c, 3) ? PROVEN : WRONG; /* "fast auth success" before the OK */
	if (kind == SECRET_PLAIN)
		return WRONG;
	if (len == 0)
		return WRONG; /* the client has no password to send */
	if (kind == SECRET_NATIVE_HASH && !c->sock.ssl)
		return SWITCH_NATIVE;
	/* Not in the cache (or a wrong password): the password itself. */
	CLOG(c, LOG_LEVEL_DEBUG, "caching_sha2_password: full authentication (%s)", c->sock.ssl ? "TLS" : "RSA");
	if (!send_more(c, 4))
		return WRONG;
	c->login = MY_LOGIN_FULL_AUTH;
	my_client_set_state(c, CLIENT_AUTH);
	my_client_flush_own(c);
	return FULL_AUTH;
}

static void act_on(struct my_client *c, enum verdict v, bool may_switch)
{
	if (c->closing)
		return;
	switch (v) {
	case PROVEN:
		login_finish(c);
		break;
	case SWITCH_NATIVE:
	case SWITCH_SHA2:
		if (may_switch)
			switch_to(c, v == SWITCH_NATIVE ? NATIVE : SHA2);
		else
			deny(c);
		break;
	case FULL_AUTH:
		break;
	default:
		deny(c);
		break;
	}
}

/* The answer to "perform full authentication": the password in clear
 * (over TLS), a request for the public key (0x02), or the password
 * RSA-encrypted with it. */
static void full_auth_packet(struct my_client *c, const uint8_t *p, uint32_t len)
{
	char password[512];
	int n;
	if (c->sock.ssl) {
		/* NUL-terminated (libmariadb, pymysql); take it without one too. */
		n = (int)len;
		if (n && p[n - 1] == 0)
			n--;
		if ((size_t)n >= sizeof(password) || memchr(p, 0, (size_t)n)) {
			deny(c);
			return;
		}
		memcpy(password, p, (size_t)n);
		password[n] = '\0';
	} else {
		const char *pem;
		size_t pem_len;
		EVP_PKEY *key = rsa_get(&pem, &pem_len);
		if (!key) {
			my_client_fail(c, "08S01", "cannot make an RSA key for caching_sha2_password");
			return;
		}
		if (len == 1 && p[0] == 2) {
			if (my_auth_more_build(&c->sock.wbuf, c->seq++, (const uint8_t *)pem, (uint32_t)pem_len) < 0)
				my_client_close(c, "out of memory");
			else
				my_client_flush_own(c);
			return;
		}
		n = my_sha2_rsa_decrypt(key, c->scramble, p, len, password, sizeof(password));
		if (n < 0) {
			/* libmariadb built with GnuTLS (Debian's) sends the password
			 * in clear here; MySQL refuses that, and so does sluice. */
			if (len != (uint32_t)EVP_PKEY_get_size(key))
				CLOG(c, LOG_LEVEL_WARNING, "caching_sha2_password: the client sent its password "
							   "unencrypted without TLS: refused");
			deny(c);
			return;
		}
	}
	const char *secret = config_find_secret(runtime_config(), c->user);
	bool ok = secret && password_matches(password, c->user, secret);
	if (ok)
		sha2_cache_put(c->user, secret, password);
	OPENSSL_cleanse(password, sizeof(password));
	if (ok)
		login_finish(c);
	else
		deny(c);
}

/* A user and database to log in to (a HandshakeResponse41's or a
 * COM_CHANGE_USER's): false when c was failed. */
static bool take_names(struct my_client *c, const struct my_response *r)
{
	if (strlen(r->user) >= sizeof(c->user) || strlen(r->db) >= sizeof(c->db)) {
		my_client_fail(c, "28000", "user or database name too long");
		return false;
	}
	snprintf(c->user, sizeof(c->user), "%s", r->user);
	/* No database: a connection that can only KILL (my_kill.c). */
	snprintf(c->db, sizeof(c->db), "%s", r->has_db ? r->db : "");
	const char *over = client_core_take_limits(&c->base, c->db, c->user, CONFIG_PROTO_MYSQL);
	if (over) {
		my_client_fail(c, "08004", over);
		return false;
	}
	return true;
}

static void handle_response(struct my_client *c, const uint8_t *payload, uint32_t len)
{
	struct my_response r;
	if (my_response_parse(payload, len, &r) < 0) {
		my_client_fail(c, "08S01", "Bad handshake");
		return;
	}
	if (r.ssl_request) {
		if (!tls_offered(c)) {
			my_client_fail(c, "08S01", c->sock.ssl ? "SSLRequest inside TLS"
							       : "SSL connection error: TLS is not offered (client_tls_sslmode)");
			return;
		}
		c->login = MY_LOGIN_TLS; /* process() drops the request, then my_login_start_tls */
		return;
	}
	if (runtime_config()->client_tls_sslmode >= TLS_MODE_REQUIRE && !c->sock.ssl) {
		/* MySQL's ER_SECURE_TRANSPORT_REQUIRED. */
		my_client_fail_code(c, 3159, "HY000",
				    "Connections using insecure transport are prohibited (client_tls_sslmode "
				    "requires TLS)");
		return;
	}
	c->caps = r.caps & MY_SLUICE_CAPS;
	c->charset = r.charset;
	if (!take_names(c, &r))
		return;
	const char *plugin = r.auth_plugin[0] ? r.auth_plugin : NATIVE;
	enum verdict v = check_answer(c, plugin, r.auth, r.auth_len);
	OPENSSL_cleanse(r.auth, sizeof(r.auth));
	act_on(c, v, true);
}

void my_login_packet(struct my_client *c, const struct my_packet *pk)
{
	c->seq = (uint8_t)(pk->seq + 1);
	switch (c->login) {
	case MY_LOGIN_GREETED:
		handle_response(c, pk->payload, pk->len);
		break;
	case MY_LOGIN_SWITCHED: /* the raw plugin data */
		act_on(c, check_answer(c, NATIVE, pk->payload, pk->len), false);
		break;
	case MY_LOGIN_SWITCHED_SHA2:
		act_on(c, check_answer(c, SHA2, pk->payload, pk->len), false);
		break;
	case MY_LOGIN_FULL_AUTH:
		full_auth_packet(c, pk->payload, pk->len);
		break;
	default:
		my_client_fail(c, "08S01", "unexpected packet during the login");
		break;
	}
}

/* ---- TLS ---- */

void my_login_tls_step(struct my_client *c)
{
	char why[240];
	int rc = pgsock_tls_step(&c->worker->loop, &c->sock, why, sizeof(why));
	if (rc == -EAGAIN)
		return;
	if (rc < 0) {
		/* Nothing readable can be sent mid-handshake: log and close. */
		CLOG(c, LOG_LEVEL_WARNING, "%s", why);
		my_client_close(c, why);
		return;
	}
	c->login = MY_LOGIN_GREETED; /* the HandshakeResponse41 comes inside TLS */
	c->sock.want_read = true;
	CLOG(c, LOG_LEVEL_DEBUG, "TLS established");
	my_client_update_events(c);
}

bool my_login_reads_exactly(const struct my_client *c)
{
	return c->login == MY_LOGIN_GREETED && !c->changing_user && tls_offered(c);
}

/* An SSLRequest has no answer: the client's TLS ClientHello may follow it
 * in the same segment, and is OpenSSL's to read. So the first packet is
 * read to its last byte and no further (a header, then its payload). */
int my_login_read_first(struct my_client *c)
{
	struct iobuf *b = &c->sock.rbuf;
	uint32_t have = iobuf_len(b);
	uint32_t want = MY_HEADER_LEN;
	if (have >= MY_HEADER_LEN)
		want += my_header_len(iobuf_head(b));
	if (want <= have || want - have > iobuf_block_size() / 2)
		return pgsock_read(&c->sock); /* too long for an SSLRequest: process() judges it */
	if (!b->data || iobuf_space(b) < want - have) {
		int rc = iobuf_reserve(b, want - have);
		if (rc)
			return rc;
	}
	ssize_t n = recv(c->sock.h.fd, b->data + b->end, want - have, 0);
	if (n > 0) {
		b->end += (uint32_t)n;
		return (int)n;
	}
	if (n == 0)
		return 0;
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN : -errno;
}

void my_login_start_tls(struct my_client *c)
{
	if (pgsock_unexamined(&c->sock) > 0) {
		/* my_login_read_first reads nothing past the request. */
		my_client_fail(c, "08S01", "received more than the SSLRequest before TLS");
		return;
	}
	c->sock.ssl = tls_new_for_client(c->sock.h.fd);
	if (!c->sock.ssl) {
		my_client_close(c, "cannot start TLS");
		return;
	}
	iobuf_release(&c->sock.rbuf);
	my_login_tls_step(c);
}

/* ---- COM_CHANGE_USER ---- */

void my_login_change_user(struct my_client *c, const struct my_packet *pk)
{
	struct my_response r;
	int rc = my_change_user_parse(pk->payload, pk->len, c->caps, &r);
	pgsock_drop(&c->sock, MY_HEADER_LEN + pk->len);
	if (rc < 0) {
		my_client_fail(c, "08S01", "Bad COM_CHANGE_USER packet");
		return;
	}
	/* The old session ends first: its server goes back to the pool, reset
	 * (a transaction in it is rolled back) when it holds anything. */
	if (c->server) {
		struct my_server *s = c->server;
		c->server = NULL;
		s->client = NULL;
		my_server_client_gone(s);
	}
	if (c->counted) {
		__atomic_sub_fetch(&c->pool->n_clients, 1, __ATOMIC_RELAXED);
		c->counted = false;
	}
	pool_client_limits_put(c->db_clients, c->user_clients);
	c->db_clients = c->user_clients = NULL;
	c->pool = NULL;
	c->changing_user = true;
	c->login = MY_LOGIN_GREETED;
	my_client_set_state(c, CLIENT_AUTH);
	my_client_session_cleared(c);
	c->seq = 1;
	if (r.charset)
		c->charset = r.charset;
	if (!take_names(c, &r))
		return;
	CLOG(c, LOG_LEVEL_DEBUG, "COM_CHANGE_USER");
	/* The answer is to the last nonce sluice sent (MySQL keeps the
	 * session's too); a switch follows when sluice cannot check it. */
	enum verdict v = check_answer(c, r.auth_plugin[0] ? r.auth_plugin : NATIVE, r.auth, r.auth_len);
	OPENSSL_cleanse(r.auth, sizeof(r.auth));
	act_on(c, v, true);
}
