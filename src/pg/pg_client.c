/*
 * client.c - client side state machine (see client.h).
 *
 * Reading order: accept -> startup packet -> authentication -> welcome
 * (ParameterStatus, BackendKeyData, ReadyForQuery) -> requests, which are
 * forwarded to a server obtained from the pool. Protocol: PostgreSQL docs
 * 55.2.1 (start-up), 55.2.2 (simple query), 55.2.3 (extended query).
 */
#include "pg_client.h"
#include "bypass.h"
#include "bpf/pgframe.h"

#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "admin.h"
#include "auth_crypto.h"
#include "balance.h"
#include "cancel.h"
#include "cancel_conn.h"
#include "config.h"
#include "control.h"
#include "log.h"
#include "pg_mirror.h"
#include "pg_ops.h"
#include "pg_proto.h"
#include "pool.h"
#include "replication.h"
#include "runtime.h"
#include "scram_cache.h"
#include "pg_server.h"
#include "pg_route.h"
#include "pg_fanout.h"
#include "pg_shard.h"
#include "sqlinfo.h"
#include "hba.h"
#include "ident.h"
#include "tls.h"
#include "track.h"
#include "version.h"
#include "worker.h"

const char *const tracked_param_names[TRACKED_PARAMS] = {
	"client_encoding", "DateStyle", "TimeZone", "IntervalStyle",
	"standard_conforming_strings", "application_name",
};

/* Startup parameters that are not tracked but harmless to accept. */
static const char *const accepted_startup_params[] = {
	"user", "database", "fallback_application_name", NULL,
};

static void client_cb(struct loop_handle *h, uint32_t revents);
static void client_process(struct pg_client *c);
static void client_pump(struct pg_client *c);

/* bpf_bypass: taken from the kernel while answers to requests it sent are
 * still on their way; statement tracking resumes, and the client's next
 * request is read, once they are in. */
static bool waits_for_kernel_answers(const struct pg_server *s)
{
	return s->bp_retrack && !s->client_mid_batch && s->outstanding > 0;
}

#define CLOG(c, lvl, fmt, ...) \
	log_write(lvl, "C-%llu %s/%s@%s " fmt, (unsigned long long)(c)->id, \
		  (c)->db[0] ? (c)->db : "-", (c)->user[0] ? (c)->user : "-", (c)->peer, ##__VA_ARGS__)

static bool client_is_unix(const struct pg_client *c)
{
	return strcmp(c->peer, "unix") == 0;
}

static void client_set_state(struct pg_client *c, int state)
{
	c->state = (uint8_t)state;
	c->state_since_us = c->worker->loop.now_us;
}

static void client_set_events(struct pg_client *c);

void client_update_events(struct pg_client *c)
{
	if ((c->state == CLIENT_IDLE || c->state == CLIENT_ACTIVE) && !c->bp_kernel && bypass_active())
		bypass_client_maybe_enter(c);
	client_set_events(c);
}

/* Epoll interest from the client's buffers and state. */
static void client_set_events(struct pg_client *c)
{
	bool want_write = iobuf_len(&c->sock.wbuf) || (c->server && c->server->sock.fwd) ||
			  (c->adm && admin_wants_write(&c->base));
	/* SUSPEND: pooled clients are not read until RESUME (the console is,
	 * or nobody could say RESUME). */
	bool want_read = c->sock.want_read;
	if (c->worker->suspended && !c->adm)
		c->sock.want_read = false;
	int rc = pgsock_update(&c->worker->loop, &c->sock, want_write);
	c->sock.want_read = want_read;
	if (rc < 0)
		client_close(c, "epoll failure");
}

static struct pg_client *client_create(struct worker *w, int fd, const char *peer)
{
	struct pg_client *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return NULL;
	}
	client_core_init(&c->base, &pg_ops, w, fd, peer, client_cb);
	return c;
}

struct pg_client *client_adopt(struct worker *w, int fd, const char *peer)
{
	struct pg_client *c = client_create(w, fd, peer);
	if (c) {
		client_set_state(c, CLIENT_IDLE);
		runtime_clients_add(1);
	}
	return c;
}

void client_adopt_finish(struct pg_client *c)
{
	char err[200];
	c->pool = pool_get(runtime_config(), c->proto, c->db, c->user, err, sizeof(err));
	if (!c->pool) {
		client_fail(c, "08P01", err);
		return;
	}
	cancel_register(&c->base);
	client_core_join_pool(&c->base);
	c->sock.want_read = true;
	CLOG(c, LOG_LEVEL_DEBUG, "taken over from the previous process");
	client_process(c);
}

void client_accept(struct worker *w, int fd, const char *peer, bool has_data)
{
	struct pg_client *c = client_create(w, fd, peer);
	if (!c)
		return;
	client_core_count_new(&c->base); /* refused once the startup packet is in */
	c->sock.want_read = true;
	client_update_events(c);
	CLOG(c, LOG_LEVEL_DEBUG, "accepted");
	/* Its first bytes are there already: read them in this wakeup rather
	 * than in the next one. */
	if (has_data)
		client_cb(&c->sock.h, EPOLLIN);
}

/* Send an ErrorResponse and close (one non-blocking write attempt: the
 * message is small and the socket buffer empty in practice). */
void client_fail(struct pg_client *c, const char *sqlstate, const char *msg)
{
	if (c->closing)
		return;
	client_take_from_kernel(c); /* sluice writes to the socket now */
	pg_be_error(&c->sock.wbuf, "FATAL", sqlstate, msg);
	client_core_report_failure(&c->base, sqlstate, msg);
	client_close(c, msg);
}

void client_close(struct pg_client *c, const char *reason)
{
	if (c->closing)
		return;
	client_take_from_kernel(c);
	c->closing = true;
	bool zombie = client_core_leave_queue(&c->base);
	/* A console job holds c: its completion reaps. */
	if (admin_job_pending(&c->base))
		zombie = true;
	const struct config *cfg = runtime_config();
	if (cfg->log_disconnections && c->state >= CLIENT_IDLE)
		CLOG(c, LOG_LEVEL_INFO, "closing because: %s", reason);
	else
		CLOG(c, LOG_LEVEL_DEBUG, "closing because: %s", reason);
	if (c->server) {
		struct pg_server *s = c->server;
		c->server = NULL;
		s->client = NULL;
		server_client_gone(s);
	}
	track_account(c, true);
	bypass_client_forget(c);
	client_core_close(&c->base);
	/* A server or failure is on its way by mail: the mail handler reaps. */
	if (!zombie) {
		worker_bury_client(c->worker, &c->base);
	}
}

void client_free(struct pg_client *c)
{
	worker_remove_client(c->worker, &c->base);
	admin_free(&c->base);
	if (c->lookup_secret) {
		OPENSSL_cleanse(c->lookup_secret, strlen(c->lookup_secret));
		free(c->lookup_secret);
	}
	track_client_free(c);
	free(c->shard_begin);
	pg_shard_client_free(c);
	pg_fanout_free(c);
	pg_fanout_tx_free(c);
	if (c->mirror_tx)
		pg_mirror_client_free(c);
	free(c->scram);
	for (int i = 0; i < TRACKED_PARAMS; i++)
		free(c->params[i]);
	free(c->repl_startup);
	free(c);
}

/* ---- startup ---- */

static bool startup_param_allowed(const char *name)
{
	for (const char *const *p = accepted_startup_params; *p; p++)
		if (strcmp(*p, name) == 0)
			return true;
	for (int i = 0; i < TRACKED_PARAMS; i++)
		if (strcasecmp(tracked_param_names[i], name) == 0)
			return true;
	const struct config *cfg = runtime_config();
	return config_list_contains(cfg->ignore_startup_parameters, name) ||
	       config_list_contains(cfg->track_extra_parameters, name);
}

/* track_extra_parameters (PgBouncer's key): a startup parameter listed
 * there is kept for the client and set on every server it borrows, as a
 * session setting. Returns false without memory. */
static bool keep_extra_param(struct pg_client *c, const char *name, const char *value)
{
	if (!config_list_contains(runtime_config()->track_extra_parameters, name))
		return true;
	char lower[64];
	snprintf(lower, sizeof(lower), "%s", name);
	for (char *p = lower; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	char *sql = sql_set_config_statement(lower, value);
	bool ok = sql && session_vars_set(&c->vars, lower, sql) == 0;
	free(sql);
	return ok;
}

/* A startup parameter sluice keeps for the client: the tracked ones and
 * track_extra_parameters; others (ignore_startup_parameters) are dropped.
 * Returns 0 or -ENOMEM. */
static int take_startup_param(struct pg_client *c, const char *name, const char *value)
{
	for (int k = 0; k < TRACKED_PARAMS; k++) {
		if (strcasecmp(tracked_param_names[k], name) == 0) {
			free(c->params[k]);
			if (!(c->params[k] = strdup(value)))
				return -ENOMEM;
		}
	}
	return keep_extra_param(c, name, value) ? 0 : -ENOMEM;
}

struct options_walk {
	struct pg_client *c;
	bool ignore_unknown; /* "options" is in ignore_startup_parameters */
	char bad[128];       /* the setting or word refused */
};

static int take_option_setting(void *ctx, const char *name, const char *value)
{
	struct options_walk *ow = ctx;
	if (startup_param_allowed(name))
		return take_startup_param(ow->c, name, value);
	if (ow->ignore_unknown)
		return 0;
	snprintf(ow->bad, sizeof(ow->bad), "%s", name);
	return -EINVAL;
}

/* The settings inside "options" (-c name=value ...) are judged one by one
 * as startup parameters, as PgBouncer 1.20+ does; with "options" in
 * ignore_startup_parameters what is not kept is dropped. false: c failed. */
static bool take_startup_options(struct pg_client *c, const char *opts)
{
	struct options_walk ow = {
		.c = c,
		.ignore_unknown = config_list_contains(runtime_config()->ignore_startup_parameters, "options"),
	};
	int rc = pg_options_parse(opts, take_option_setting, &ow, ow.bad, sizeof(ow.bad));
	if (rc == -ENOMEM) {
		client_fail(c, "53200", "out of memory");
		return false;
	}
	if (rc < 0 && !ow.ignore_unknown) {
		char msg[200];
		snprintf(msg, sizeof(msg), "unsupported options startup parameter: %.100s", ow.bad);
		client_fail(c, "08P01", msg);
		return false;
	}
	return true;
}

/* application_name_add_host: PgBouncer's "APP - ADDR:PORT" (APP "app"
 * when the client named none; "[ADDR]:PORT" for IPv6; over the unix
 * socket "unix(PID@HOST):PORT", PORT being sluice's). Set once, at login:
 * a later SET application_name is the client's own business. Clipped to
 * the 63 bytes PostgreSQL keeps (NAMEDATALEN - 1), on a UTF-8 character
 * boundary, so the value sluice tracks is the one the server reports. */
static int add_host_to_appname(struct pg_client *c)
{
	enum { APPNAME_MAX = 63 };
	const char *app = c->params[5] ? c->params[5] : "app";
	char where[128], buf[256];
	const char *colon = strrchr(c->peer, ':');
	if (client_is_unix(c)) {
		struct ucred cred = { 0 };
		socklen_t len = sizeof(cred);
		char host[64] = "";
		if (getsockopt(c->sock.h.fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
			cred.pid = 0;
		if (gethostname(host, sizeof(host)) < 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		snprintf(where, sizeof(where), "unix(%ld@%s):%d", (long)cred.pid, host, runtime_config()->listen_port);
	} else if (colon && strchr(c->peer, ':') != colon) {
		snprintf(where, sizeof(where), "[%.*s]%s", (int)(colon - c->peer), c->peer, colon);
	} else {
		snprintf(where, sizeof(where), "%s", c->peer);
	}
	snprintf(buf, sizeof(buf), "%s - %s", app, where);
	size_t n = strlen(buf);
	if (n > APPNAME_MAX) {
		n = APPNAME_MAX;
		while (n > 0 && ((unsigned char)buf[n] & 0xc0) == 0x80)
			n--;
		buf[n] = '\0';
	}
	return take_startup_param(c, "application_name", buf);
}

static void auth_begin(struct pg_client *c);
static void auth_with(struct pg_client *c, int method, const char *map);

static void handle_startup(struct pg_client *c, const struct pg_startup *st)
{
	const char *user = pg_startup_get(st, "user");
	const char *db = pg_startup_get(st, "database");
	if (!user || !*user) {
		client_fail(c, "08P01", "no user name specified in startup packet");
		return;
	}
	if (!db || !*db)
		db = user;
	snprintf(c->user, sizeof(c->user), "%s", user);
	snprintf(c->db, sizeof(c->db), "%s", db);
	if (strlen(user) >= sizeof(c->user) || strlen(db) >= sizeof(c->db)) {
		client_fail(c, "08P01", "user or database name too long");
		return;
	}
	if (c->over_limit) {
		client_fail(c, "53300", "no more connections allowed (max_client_conn)");
		return;
	}
	const struct config *tcfg = runtime_config();
	if (tcfg->client_tls_sslmode >= TLS_MODE_REQUIRE && !c->sock.ssl && !client_is_unix(c)) {
		client_fail(c, "28000", "SSL required: this server accepts only TLS connections (client_tls_sslmode)");
		return;
	}
	/* Before any password work, so a flood of logins costs no crypto. */
	const char *over = client_core_take_limits(&c->base, db, user, CONFIG_PROTO_PG);
	if (over) {
		client_fail(c, "53300", over);
		return;
	}
	char repl_err[160];
	int repl = repl_kind_of(st, repl_err, sizeof(repl_err));
	if (repl < 0) {
		client_fail(c, "22023", repl_err);
		return;
	}
	if (repl != REPL_NONE) {
		/* Every parameter goes to the client's own server (replication.h),
		 * which judges them as PostgreSQL does. */
		if (admin_is_console_db(db)) {
			client_fail(c, "08P01", "replication connections to the admin console are not supported");
			return;
		}
		c->replication = (uint8_t)repl;
		if (!(c->repl_startup = repl_startup_pack(st, &c->repl_startup_len))) {
			client_fail(c, "53200", "out of memory");
			return;
		}
	}
	for (int i = 0; i < st->n_params; i++) {
		if (!repl && strcmp(st->names[i], "options") == 0) {
			if (!take_startup_options(c, st->values[i]))
				return;
			continue;
		}
		if (!repl && !startup_param_allowed(st->names[i])) {
			char msg[160];
			snprintf(msg, sizeof(msg), "unsupported startup parameter: %.100s", st->names[i]);
			client_fail(c, "08P01", msg);
			return;
		}
		if (take_startup_param(c, st->names[i], st->values[i]) < 0) {
			client_fail(c, "53200", "out of memory");
			return;
		}
	}
	if (!repl && tcfg->application_name_add_host && add_host_to_appname(c) < 0) {
		client_fail(c, "53200", "out of memory");
		return;
	}
	const struct config *cfg = runtime_config();
	if (admin_is_console_db(db)) {
		/* PgBouncer's rule: user "pgbouncer" over the unix socket, from
		 * the OS user sluice runs as, is an admin without a password. */
		if (admin_peer_is_own_user(c->sock.h.fd, user)) {
			c->admin_level = ADMIN_FULL;
			if (cfg->log_connections)
				CLOG(c, LOG_LEVEL_INFO, "console login from the unix socket by sluice's own OS user");
			client_set_state(c, CLIENT_AUTH);
			auth_with(c, AUTH_TYPE_ANY, NULL);
			return;
		}
		c->admin_level = (uint8_t)admin_level_for(cfg, user);
		if (c->admin_level == ADMIN_NONE) {
			char msg[160];
			snprintf(msg, sizeof(msg), "user \"%.64s\" is not allowed on the admin console (admin_users, stats_users)", user);
			client_fail(c, "28000", msg);
			return;
		}
	} else if (!config_find_database_for(cfg, db, CONFIG_PROTO_PG)) {
		char msg[160];
		snprintf(msg, sizeof(msg), "no such database: %.100s", db);
		client_fail(c, "3D000", msg);
		return;
	} else if (pool_db_disabled(db)) {
		char msg[240];
		snprintf(msg, sizeof(msg), "database \"%.100s\" is disabled (DISABLE): new connections are refused", db);
		client_fail(c, "55000", msg);
		return;
	}
	if (cfg->log_connections)
		CLOG(c, LOG_LEVEL_INFO, "login attempt");
	client_set_state(c, CLIENT_AUTH);
	auth_begin(c);
}

/* ---- authentication ---- */

static void auth_failed(struct pg_client *c)
{
	char msg[160];
	snprintf(msg, sizeof(msg), "password authentication failed for user \"%s\"", c->user);
	client_fail(c, "28P01", msg);
}

static void login_finish(struct pg_client *c);

/* auth_type = hba: the method of the first matching line, as PostgreSQL
 * picks it, and its map= (*map, NULL for none; it lives in the config
 * snapshot, valid while this callback runs). Returns -1 after refusing the
 * client. */
static int hba_method_for(struct pg_client *c, const char **map)
{
	const struct config *cfg = runtime_config();
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	bool is_unix = client_is_unix(c);
	bool have_addr = !is_unix && getpeername(c->sock.h.fd, (struct sockaddr *)&ss, &sl) == 0;
	struct hba_request req = {
		.is_unix = is_unix,
		.tls = c->sock.ssl != NULL,
		.addr = have_addr ? (const struct sockaddr *)&ss : NULL,
		.database = c->db,
		.user = c->user,
		.physical_replication = c->replication == REPL_PHYSICAL,
	};
	int line = 0;
	enum hba_method m = hba_match(cfg->hba, &req, &line);
	char host[64];
	snprintf(host, sizeof(host), "%s", is_unix ? "[local]" : c->peer);
	char *colon = strrchr(host, ':');
	if (colon && !is_unix)
		*colon = '\0'; /* the port is not part of PostgreSQL's message */
	if (m == HBA_REJECT) {
		char msg[400];
		if (line)
			snprintf(msg, sizeof(msg), "pg_hba.conf rejects connection for host \"%s\", user \"%s\", database \"%s\", %s",
				 host, c->user, c->db, c->sock.ssl ? "SSL encryption" : "no encryption");
		else
			snprintf(msg, sizeof(msg), "no pg_hba.conf entry for host \"%s\", user \"%s\", database \"%s\", %s",
				 host, c->user, c->db, c->sock.ssl ? "SSL encryption" : "no encryption");
		client_fail(c, "28000", msg);
		return -1;
	}
	CLOG(c, LOG_LEVEL_DEBUG, "auth_hba_file line %d: %s", line, hba_method_name(m));
	*map = hba_map_at(cfg->hba, line);
	switch (m) {
	case HBA_TRUST: return AUTH_TYPE_ANY;
	case HBA_PASSWORD: return AUTH_TYPE_PLAIN;
	case HBA_MD5: return AUTH_TYPE_MD5;
	case HBA_SCRAM: return AUTH_TYPE_SCRAM;
	case HBA_CERT: return AUTH_TYPE_CERT;
	case HBA_PEER: return AUTH_TYPE_PEER;
	default: break;
	}
	client_fail(c, "28000", "unsupported method in auth_hba_file");
	return -1;
}

/* peer and cert: may the identity the connection proved (OS user,
 * certificate CN) log in as c->user, itself or through the map= of its
 * auth_hba_file line (ident.c)? */
static bool ident_ok(struct pg_client *c, const char *map, const char *system_user)
{
	int line;
	if (ident_allows(runtime_config()->ident, map, system_user, c->user, &line)) {
		if (map)
			CLOG(c, LOG_LEVEL_DEBUG, "auth_ident_file line %d: map \"%s\" lets \"%s\" in", line, map, system_user);
		return true;
	}
	if (map)
		CLOG(c, LOG_LEVEL_INFO, "no match in map \"%s\" for system user \"%s\"", map, system_user);
	return false;
}

/* TLS client certificate: verified by OpenSSL against client_tls_ca_file;
 * its common name must be the user name, or map to it (PostgreSQL's cert
 * method). */
static void auth_cert(struct pg_client *c, const char *map)
{
	char cn[256], msg[200];
	if (!c->sock.ssl || !tls_peer_cn(c->sock.ssl, cn, sizeof(cn))) {
		client_fail(c, "28000", "connection requires a valid client certificate");
		return;
	}
	if (!ident_ok(c, map, cn)) {
		snprintf(msg, sizeof(msg), "certificate authentication failed for user \"%s\"", c->user);
		client_fail(c, "28000", msg);
		return;
	}
	login_finish(c);
}

/* Unix-socket peer credentials: the client's OS user must be the user
 * name, or map to it, as in PostgreSQL's peer method. */
static void auth_peer(struct pg_client *c, const char *map)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	char buf[1024], msg[200];
	struct passwd pw, *res = NULL;
	if (client_is_unix(c) && getsockopt(c->sock.h.fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
	    getpwuid_r(cred.uid, &pw, buf, sizeof(buf), &res) == 0 && res && ident_ok(c, map, res->pw_name)) {
		login_finish(c);
		return;
	}
	snprintf(msg, sizeof(msg), "peer authentication failed for user \"%s\"", c->user);
	client_fail(c, "28000", msg);
}

static void auth_begin(struct pg_client *c)
{
	const struct config *cfg = runtime_config();
	int method = cfg->auth_type;
	const char *map = NULL;
	if (method == AUTH_TYPE_HBA && (method = hba_method_for(c, &map)) < 0)
		return;
	auth_with(c, method, map);
}

/* The user's secret: auth_file first, then what auth_query found. */
static const char *client_secret(const struct pg_client *c)
{
	const char *secret = config_find_secret(runtime_config(), c->user);
	return secret ? secret : c->lookup_secret;
}

/* Users not in auth_file are looked up with auth_query on a server of the
 * (auth_dbname, auth_user) pool; the client waits in the pool's queue like
 * any other, so a slow lookup holds only its own client. Returns true when
 * the lookup started (or the client was failed). */
static bool lookup_start(struct pg_client *c, int method)
{
	const struct config *cfg = runtime_config();
	char err[200];
	struct config_auth_lookup how;
	config_auth_lookup_for(cfg, c->db, &how);
	const char *db = how.dbname ? how.dbname : c->db;
	struct pool *p = pool_get(cfg, c->proto, db, how.user, err, sizeof(err));
	if (!p) {
		client_fail(c, "08P01", err);
		return true;
	}
	p = pool_for_login(p);
	c->lookup_method = (uint8_t)method;
	c->pool = p; /* the lookup pool until login_finish picks the real one */
	c->sock.want_read = false;
	client_update_events(c);
	const char *fail = NULL;
	struct pg_server *s = pg_server(pool_acquire(p, &c->base, &fail));
	if (fail) {
		client_fail(c, "08P01", fail);
		return true;
	}
	if (s)
		client_on_server(c, s);
	return true;
}

void client_lookup_done(struct pg_client *c, const char *secret, const char *error)
{
	c->lookup_done = true;
	c->pool = NULL;
	if (error) {
		CLOG(c, LOG_LEVEL_WARNING, "auth_query failed: %s", error);
		client_fail(c, "28000", "authentication lookup failed (auth_query); see the sluice log");
		return;
	}
	if (secret) {
		c->lookup_secret = strdup(secret);
		if (!c->lookup_secret) {
			client_fail(c, "53200", "out of memory");
			return;
		}
	}
	c->sock.want_read = true;
	auth_with(c, c->lookup_method, NULL); /* never peer or cert: they need no lookup */
	if (!c->closing) {
		client_pump(c);
		client_process(c);
	}
}

/* map: the auth_hba_file line's map= for peer and cert, else NULL. */
static void auth_with(struct pg_client *c, int method, const char *map)
{
	const struct config *cfg = runtime_config();
	const char *secret = client_secret(c);
	bool needs_secret = method == AUTH_TYPE_PLAIN || method == AUTH_TYPE_MD5 ||
			    method == AUTH_TYPE_SCRAM || method == AUTH_TYPE_TRUST;
	struct config_auth_lookup how;
	config_auth_lookup_for(cfg, c->db, &how);
	if (!secret && needs_secret && how.user && !c->lookup_done && strcmp(c->user, how.user) != 0 &&
	    lookup_start(c, method))
		return;
	switch (method) {
	case AUTH_TYPE_CERT:
		auth_cert(c, map);
		return;
	case AUTH_TYPE_PEER:
		auth_peer(c, map);
		return;
	case AUTH_TYPE_ANY:
		login_finish(c);
		return;
	case AUTH_TYPE_TRUST:
		if (!secret) {
			char msg[160];
			snprintf(msg, sizeof(msg), "no such user: %s", c->user);
			client_fail(c, "28000", msg);
			return;
		}
		login_finish(c);
		return;
	case AUTH_TYPE_PLAIN:
		c->auth_step = PG_AUTH_CLEARTEXT;
		pg_be_auth(&c->sock.wbuf, PG_AUTH_CLEARTEXT, NULL, 0);
		return;
	case AUTH_TYPE_MD5:
		if (!secret || !pg_secret_is_scram(secret)) {
			c->auth_step = PG_AUTH_MD5;
			auth_random_bytes(c->md5_salt, sizeof(c->md5_salt));
			pg_be_auth(&c->sock.wbuf, PG_AUTH_MD5, c->md5_salt, 4);
			return;
		}
		/* Only a SCRAM verifier is known: md5 cannot be checked against
		 * it, so ask for SCRAM, as PostgreSQL does. */
		/* fall through */
	case AUTH_TYPE_SCRAM: {
		struct scram_verifier v;
		int rc;
		if (secret && pg_secret_is_scram(secret))
			rc = scram_verifier_parse(secret, &v);
		else if (secret && !pg_secret_is_md5(secret))
			rc = scram_cache_verifier(c->user, secret, runtime_config()->scram_iterations, &v);
		else {
			/* Unknown user or an md5 hash (useless for SCRAM): run the
			 * exchange against a random verifier so the answer is the
			 * same "authentication failed" without revealing which. */
			uint8_t junk[16];
			char pw[40];
			auth_random_bytes(junk, sizeof(junk));
			auth_base64_encode(junk, sizeof(junk), pw, sizeof(pw));
			/* The same count as a real user's, which would tell them apart otherwise. */
			rc = scram_verifier_from_password_iter(pw, runtime_config()->scram_iterations, &v);
			if (secret)
				CLOG(c, LOG_LEVEL_WARNING, "auth_file holds an md5 hash; SCRAM needs a plain password or a SCRAM secret");
		}
		if (rc < 0) {
			client_fail(c, "28000", "invalid SCRAM secret in auth_file");
			return;
		}
		c->scram = calloc(1, sizeof(*c->scram));
		if (!c->scram) {
			client_fail(c, "53200", "out of memory");
			return;
		}
		scram_server_init(c->scram, &v);
		c->auth_step = PG_AUTH_SASL;
		pg_be_auth_sasl_mechs(&c->sock.wbuf);
		return;
	}
	default:
		client_fail(c, "28000", "unsupported auth_type");
	}
}

/* A password message ('p') arrived during authentication. */
static void auth_message(struct pg_client *c, const struct pg_msg *m)
{
	const char *secret = client_secret(c);
	struct pg_reader r;
	pg_reader_init(&r, m->body, m->body_len);

	if (c->auth_step == PG_AUTH_CLEARTEXT || c->auth_step == PG_AUTH_MD5) {
		const char *given = pg_read_str(&r);
		if (r.err) {
			client_fail(c, "08P01", "invalid password message");
			return;
		}
		bool ok = false;
		if (secret && c->auth_step == PG_AUTH_MD5) {
			char want[36];
			pg_md5_response(secret, c->user, c->md5_salt, want);
			ok = auth_str_equal_ct(want, given);
		} else if (secret && pg_secret_is_md5(secret)) {
			char hashed[36];
			pg_md5_password_hash(given, c->user, hashed);
			ok = auth_str_equal_ct(hashed, secret);
		} else if (secret && pg_secret_is_scram(secret)) {
			/* Cleartext against a verifier: run both halves locally. */
			struct scram_verifier v;
			struct scram_server ss;
			struct scram_client sc;
			char a[SCRAM_MAX_MSG], b[SCRAM_MAX_MSG];
			int n;
			ok = scram_verifier_parse(secret, &v) == 0;
			if (ok) {
				scram_server_init(&ss, &v);
				ok = (n = scram_client_first(&sc, given, a, sizeof(a))) > 0 &&
				     (n = scram_server_first(&ss, a, (size_t)n, b, sizeof(b))) > 0 &&
				     (n = scram_client_final(&sc, b, (size_t)n, a, sizeof(a))) > 0 &&
				     scram_server_final(&ss, a, (size_t)n, b, sizeof(b)) > 0;
			}
		} else if (secret) {
			ok = auth_str_equal_ct(secret, given);
		}
		if (!ok) {
			auth_failed(c);
			return;
		}
		login_finish(c);
		return;
	}

	if (c->auth_step == PG_AUTH_SASL && c->scram) {
		/* SASLInitialResponse: mechanism, int32 length, data. */
		const char *mech = pg_read_str(&r);
		uint32_t len = pg_read_u32(&r);
		const uint8_t *data = r.err || len > SCRAM_MAX_MSG ? NULL : pg_read_bytes(&r, len);
		if (!data || strcmp(mech, "SCRAM-SHA-256") != 0) {
			client_fail(c, "08P01", "invalid SASL initial response (only SCRAM-SHA-256 is offered)");
			return;
		}
		char out[SCRAM_MAX_MSG];
		int n = scram_server_first(c->scram, (const char *)data, len, out, sizeof(out));
		if (n < 0) {
			client_fail(c, "08P01", n == -ENOTSUP ? "channel binding is not supported"
							      : "malformed SCRAM message");
			return;
		}
		c->auth_step = PG_AUTH_SASL_CONTINUE;
		pg_be_auth(&c->sock.wbuf, PG_AUTH_SASL_CONTINUE, out, (size_t)n);
		return;
	}

	if (c->auth_step == PG_AUTH_SASL_CONTINUE && c->scram) {
		char out[SCRAM_MAX_MSG];
		int n = scram_server_final(c->scram, (const char *)m->body, m->body_len, out, sizeof(out));
		if (n == -EACCES || (n < 0 && n != -EPROTO)) {
			auth_failed(c);
			return;
		}
		if (n < 0) {
			client_fail(c, "08P01", "malformed SCRAM message");
			return;
		}
		pg_be_auth(&c->sock.wbuf, PG_AUTH_SASL_FINAL, out, (size_t)n);
		login_finish(c); /* frees c->scram after taking pass-through keys */
		return;
	}
	client_fail(c, "08P01", "unexpected password message");
}

/* Write the welcome: AuthenticationOk was sent by login_finish; now the
 * pool's ParameterStatus set with the client's own values substituted,
 * BackendKeyData and ReadyForQuery. When the pool does not know its
 * parameters yet and only_if_known is set, writes nothing and returns false. */
static bool send_welcome(struct pg_client *c, bool only_if_known)
{
	struct iobuf params = { 0 };
	if (!pool_copy_welcome(pool_for_login(c->pool), &params) && only_if_known)
		return false;
	bool seen[TRACKED_PARAMS] = { false };
	uint32_t off = 0, len = iobuf_len(&params);
	while (off < len) {
		struct pg_msg m;
		if (pg_msg_peek(iobuf_head(&params) + off, len - off, &m) != 1 || m.len > len - off)
			break;
		const char *name, *value;
		if (m.type == 'S' && pg_be_param_parse(m.body, m.body_len, &name, &value) == 0) {
			for (int k = 0; k < TRACKED_PARAMS; k++) {
				if (strcasecmp(name, tracked_param_names[k]) == 0) {
					seen[k] = true;
					/* The value the client is told is the value it
					 * must keep on every server it borrows. */
					if (c->params[k])
						value = c->params[k];
					else
						c->params[k] = strdup(value);
				}
			}
			pg_be_param_status(&c->sock.wbuf, name, value);
		}
		off += m.len;
	}
	for (int k = 0; k < TRACKED_PARAMS; k++)
		if (!seen[k] && c->params[k])
			pg_be_param_status(&c->sock.wbuf, tracked_param_names[k], c->params[k]);
	iobuf_release(&params);
	pg_be_key_data(&c->sock.wbuf, c->cancel_pid, c->cancel_key);
	pg_be_ready(&c->sock.wbuf, 'I');
	CLOG(c, LOG_LEVEL_DEBUG, "login succeeded");
	return true;
}

/* The console's welcome: what a PostgreSQL client expects after
 * AuthenticationOk (PgBouncer's console sends the same parameters). */
static void admin_welcome(struct pg_client *c)
{
	struct iobuf *w = &c->sock.wbuf;
	pg_be_param_status(w, "server_version", SLUICE_VERSION "/sluice");
	pg_be_param_status(w, "server_encoding", "UTF8");
	pg_be_param_status(w, "client_encoding", "UTF8");
	pg_be_param_status(w, "DateStyle", "ISO");
	pg_be_param_status(w, "TimeZone", "UTC");
	pg_be_param_status(w, "integer_datetimes", "on");
	pg_be_param_status(w, "standard_conforming_strings", "on");
	pg_be_param_status(w, "application_name", c->params[5] ? c->params[5] : "");
	pg_be_key_data(w, c->cancel_pid, c->cancel_key);
	pg_be_ready(w, 'I');
}

static void login_finish(struct pg_client *c)
{
	char err[200];
	if (c->admin_level) {
		OPENSSL_cleanse(c->scram, c->scram ? sizeof(*c->scram) : 0);
		free(c->scram);
		c->scram = NULL;
		cancel_register(&c->base);
		pg_be_auth(&c->sock.wbuf, PG_AUTH_OK, NULL, 0);
		if (admin_start(&c->base, c->admin_level) < 0) {
			client_fail(c, "53200", "out of memory");
			return;
		}
		admin_welcome(c);
		client_set_state(c, CLIENT_IDLE);
		CLOG(c, LOG_LEVEL_DEBUG, "admin console login");
		return;
	}
	c->pool = c->replication ? pool_get_replication(runtime_config(), c->proto, c->db, c->user, c->replication,
							c->repl_startup, c->repl_startup_len, err, sizeof(err))
				 : pool_get(runtime_config(), c->proto, c->db, c->user, err, sizeof(err));
	if (!c->pool) {
		client_fail(c, "08P01", err);
		return;
	}
	/* What logs in to the servers goes to each pool that has them: the
	 * client's own, or each of its shards'. */
	int n_serving = c->pool->n_shards ? c->pool->n_shards : 1;
	for (int i = 0; i < n_serving; i++) {
		struct pool *p = c->pool->n_shards ? c->pool->shard_pools[i] : c->pool;
		if (c->lookup_secret)
			pool_set_lookup_secret(p, c->lookup_secret);
		/* Authenticated against a verifier: the same keys log in to
		 * the server when it holds the same verifier (no plain
		 * password stored anywhere). Only for the pool's own user. */
		const char *secret = client_secret(c);
		if (c->scram && c->scram->have_client_key && secret && pg_secret_is_scram(secret) &&
		    strcmp(p->server_user, c->user) == 0)
			pool_set_scram_keys(p, c->scram->client_key, c->scram->v.server_key);
	}
	if (c->scram) {
		OPENSSL_cleanse(c->scram, sizeof(*c->scram));
		free(c->scram);
		c->scram = NULL;
	}
	cancel_register(&c->base);
	client_core_join_pool(&c->base);
	pg_be_auth(&c->sock.wbuf, PG_AUTH_OK, NULL, 0);
	if (send_welcome(c, true)) {
		client_set_state(c, CLIENT_IDLE);
		return;
	}
	/* First client of this pool: a server must log in before we know
	 * which parameters to report. */
	client_set_state(c, CLIENT_LOGIN_WAIT);
	c->sock.want_read = false;
	const char *fail = NULL;
	struct pg_server *s = pg_server(pool_acquire(pool_for_login(c->pool), &c->base, &fail));
	if (fail) {
		client_fail(c, "08P01", fail);
		return;
	}
	if (s)
		client_on_server(c, s);
}

/* ---- linking ---- */

void client_on_server(struct pg_client *c, struct pg_server *s)
{
	if (!client_core_receive_server(&c->base, &s->base))
		return;
	if (c->state == CLIENT_AUTH) {
		server_lookup(s, c, c->user);
		return;
	}
	if (c->state == CLIENT_LOGIN_WAIT) {
		send_welcome(c, false);
		c->sock.want_read = true;
		if (c->pool->mode != POOL_MODE_SESSION) {
			pool_release(&s->base);
			client_set_state(c, CLIENT_IDLE);
			client_pump(c);
			client_process(c);
			return;
		}
	}
	server_link(s, c);
	client_set_state(c, CLIENT_ACTIVE);
	c->sock.want_read = true;
	client_process(c);
}

void client_take_from_kernel_at(struct pg_client *c, const char *where)
{
	if (!c->bp_kernel)
		return;
	CLOG(c, LOG_LEVEL_DEBUG, "bpf_bypass: taken back into user space by %s", where);
	if (bypass_client_takeover(c) < 0) {
		c->bp_kernel = false;
		c->sock.want_read = false;
		client_close(c, "bpf_bypass: the kernel's framing state was unusable");
		return;
	}
	if (c->server && c->state != CLIENT_ACTIVE)
		client_set_state(c, CLIENT_ACTIVE);
	/* Watch for input again (not client_update_events: the client must
	 * not go straight back to the kernel before the caller acts). */
	client_set_events(c);
}

/* ---- moving between workers (balance.h) ---- */

/* Between transactions with nothing in flight: no server, not queued,
 * no byte buffered on either side (TLS included), no protocol state that
 * waits for the next message, not carried by the kernel path. */
static bool client_movable(const struct pg_client *c)
{
	return c->state == CLIENT_IDLE && !c->server && !c->queued && !c->handoff_pending && !c->closing &&
	       !c->moving && !c->adm && !c->replication && !c->pinned && !c->hold_for_sync &&
	       !c->skip_until_sync && !c->bp_slot && !c->bp_kernel && pgsock_quiet(&c->sock) &&
	       !c->worker->suspended && control_phase() == PHASE_RUNNING;
}

void client_maybe_move(struct pg_client *c)
{
	if (client_movable(c))
		client_core_move(&c->base);
}

void client_unlinked(struct pg_client *c)
{
	c->server = NULL;
	client_set_state(c, CLIENT_IDLE);
	/* Between the shards of a statement or transaction it goes on. */
	if (control_phase() != PHASE_RUNNING && !c->shard_fanout && control_at_boundary(&c->base))
		return;
	/* The client may have pipelined its next request already. */
	client_process(c);
	client_maybe_move(c);
}

void client_server_lost(struct pg_client *c, const char *msg)
{
	c->server = NULL;
	client_fail(c, "08006", msg);
}

/* ---- requests ---- */

#define TOO_BIG_TO_TRACK "message too large for prepared statement tracking"

/* The first unanswered request since the last ReadyForQuery was sent. */
/* A client request that ReadyForQuery answers (Query, Sync, FunctionCall,
 * or a Query sluice answers itself) is on its way. */
static void request_sent(struct pg_server *s, int64_t now)
{
	copy_watch_request(&s->copy);
	if (s->outstanding++ > 0)
		return;
	s->query_start_us = now;
	if (!s->xact_begin_us)
		s->xact_begin_us = now;
}

/* Bytes to wait for before a tracked message can be judged. A Bind names
 * its statement first: a bounded prefix tells whether the whole (maybe
 * huge) message is needed at all (track_wants_whole). */
static uint32_t tracked_wait(const struct pg_msg *m, uint32_t avail)
{
	enum { BIND_PREFIX = 4096 };
	if (m->type == 'B' && avail < BIND_PREFIX && m->len > BIND_PREFIX)
		return BIND_PREFIX - avail;
	return m->len - avail;
}

/* A message that must be examined whole is not complete yet: make room for
 * the missing bytes. Returns false when the client was failed instead. */
static bool await_rest(struct pg_client *c, uint32_t missing, const char *sqlstate, const char *too_big)
{
	if (iobuf_reserve(&c->sock.rbuf, missing) == 0)
		return true;
	client_fail(c, sqlstate, too_big);
	return false;
}

/* RELOAD changed the server settings of c's pool: go on with the pool
 * that has the new ones. Returns false when c was failed. */
static bool client_repool(struct pg_client *c)
{
	char err[200];
	struct pool *p = pool_current(c->pool, err, sizeof(err));
	if (!p) {
		client_fail(c, "08P01", err);
		return false;
	}
	if (p != c->pool) {
		track_account(c, true);
		__atomic_sub_fetch(&c->pool->n_clients, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&p->n_clients, 1, __ATOMIC_RELAXED);
		if (c->pool->n_shards || p->n_shards)
			pg_shard_forget_routes(c);
		c->pool = p;
		track_account(c, false);
	}
	return true;
}

/* TLS is offered over TCP when client_tls_sslmode is not disable (unix
 * sockets answer 'N', as PostgreSQL does). */
static bool tls_offered(const struct pg_client *c)
{
	return runtime_config()->client_tls_sslmode != TLS_MODE_DISABLE && !client_is_unix(c) && !c->sock.ssl;
}

static void tls_step(struct pg_client *c)
{
	char why[240];
	int rc = pgsock_tls_step(&c->worker->loop, &c->sock, why, sizeof(why));
	if (rc == -EAGAIN)
		return;
	if (rc < 0) {
		/* Nothing readable can be sent mid-handshake: log and close. */
		CLOG(c, LOG_LEVEL_WARNING, "%s", why);
		client_close(c, why);
		return;
	}
	c->tls_handshaking = false;
	c->sock.want_read = true;
	CLOG(c, LOG_LEVEL_DEBUG, "TLS established");
	client_update_events(c);
}

/* PostgreSQL's negotiation rule (postmaster.c, ProcessStartupPacket): one
 * SSLRequest and one GSSENCRequest at most, in either order, and none
 * once TLS is up. Anything else is read as an unsupported protocol. */
static bool encryption_request_allowed(struct pg_client *c, uint32_t code)
{
	if (code != PG_SSL_REQUEST && code != PG_GSSENC_REQUEST)
		return false;
	uint8_t bit = code == PG_SSL_REQUEST ? CLIENT_ASKED_SSL : CLIENT_ASKED_GSS;
	if (c->sock.ssl || (c->asked_encryption & bit))
		return false;
	c->asked_encryption |= bit;
	return true;
}

/* SSLRequest accepted: 'S', then the handshake. */
static void start_tls(struct pg_client *c)
{
	if (pgsock_unexamined(&c->sock) > 0) {
		/* Bytes sent after the SSLRequest before the handshake are
		 * plaintext a man in the middle could have injected; they must
		 * not be read as part of the encrypted session (CVE-2021-3935). */
		client_fail(c, "08P01", "received unencrypted data after SSL request");
		return;
	}
	iobuf_append(&c->sock.wbuf, "S", 1);
	if (pgsock_flush(&c->sock, NULL) != 0) {
		client_close(c, "cannot answer the SSL request");
		return;
	}
	c->sock.ssl = tls_new_for_client(c->sock.h.fd);
	if (!c->sock.ssl) {
		client_close(c, "cannot start TLS");
		return;
	}
	c->tls_handshaking = true;
	iobuf_release(&c->sock.rbuf);
	tls_step(c);
}

/* A message sluice answers itself (password, console command) must be
 * whole and at most 64 KiB. Returns 1 when it is in, 0 when more bytes are
 * needed, -1 when the client was failed. */
static int await_small(struct pg_client *c, const struct pg_msg *m, uint32_t avail, const char *too_long)
{
	if (m->len <= avail)
		return 1;
	if (m->len > 65536) {
		client_fail(c, "08P01", too_long);
		return -1;
	}
	return await_rest(c, m->len - avail, "53200", "out of memory") ? 0 : -1;
}

/* Examine client bytes: while linked, mark whole or partial messages for
 * forwarding; while idle, ask the pool for a server. Stops at a message
 * that cannot go yet. */
static void client_process(struct pg_client *c)
{
	struct pgsock *sk = &c->sock;
	while (!c->closing) {
		if (c->server && copy_watch_marker_due(&c->server->copy) && !sk->skip) {
			/* After a failed COPY (copy_watch.h): the marker goes
			 * right behind the Sync just forwarded, nothing before. */
			if (sk->fwd) {
				sk->parse_blocked = true;
				break;
			}
			if (!copy_watch_send_marker(c->server)) {
				client_fail(c, "53200", "out of memory");
				return;
			}
		}
		uint32_t avail = pgsock_unexamined(sk);
		if (c->state == CLIENT_STARTUP) {
			struct pg_startup st;
			int n = pg_fe_startup_parse(pgsock_cursor(sk), avail, &st);
			if (n == 0)
				break;
			if (n < 0) {
				client_fail(c, "08P01", "invalid startup packet");
				return;
			}
			pgsock_drop(sk, (uint32_t)n);
			if (encryption_request_allowed(c, st.code)) {
				if (st.code == PG_SSL_REQUEST && tls_offered(c)) {
					start_tls(c);
					return;
				}
				/* Refused; the client may go on in plain text. */
				iobuf_append(&sk->wbuf, "N", 1);
				continue;
			}
			if (st.code == PG_CANCEL_REQUEST) {
				cancel_request(c->worker, st.cancel_pid, st.cancel_key);
				client_close(c, "cancel request handled");
				return;
			}
			if (st.code >> 16 != 3 || (st.code & 0xffff) != 0) {
				/* Also a second SSLRequest or GSSENCRequest: PostgreSQL
				 * reads it as a startup packet of protocol 1234.567x. */
				char msg[120];
				snprintf(msg, sizeof(msg), "unsupported frontend protocol %u.%u: server supports 3.0 to 3.0",
					 st.code >> 16, st.code & 0xffff);
				client_fail(c, "0A000", msg);
				return;
			}
			handle_startup(c, &st);
			continue;
		}
		if (sk->skip) {
			uint32_t take = avail < sk->skip ? avail : sk->skip;
			sk->fwd += take;
			sk->skip -= take;
			if (!sk->skip && c->server)
				continue;
			break;
		}
		if (sk->drop) {
			uint32_t take = avail < sk->drop ? avail : sk->drop;
			pgsock_drop(sk, take);
			sk->drop -= take;
			if (sk->drop)
				break;
			continue;
		}
		struct pg_msg m;
		int rc = pg_msg_peek(pgsock_cursor(sk), avail, &m);
		if (rc == 0)
			break;
		if (rc < 0) {
			client_fail(c, "08P01", "invalid message length from client");
			return;
		}
		if (m.len > (uint32_t)runtime_config()->max_packet_size) {
			/* PgBouncer's words for a message longer than max_packet_size. */
			char msg[160];
			snprintf(msg, sizeof(msg), "bad packet header: message of %u bytes exceeds max_packet_size (%d)",
				 m.len, runtime_config()->max_packet_size);
			client_fail(c, "08P01", msg);
			return;
		}
		if (c->state == CLIENT_AUTH) {
			if (m.type != 'p') {
				client_fail(c, "08P01", "expected password message");
				return;
			}
			int whole = await_small(c, &m, avail, "password message too long");
			if (whole <= 0) {
				if (whole < 0)
					return;
				break;
			}
			auth_message(c, &m);
			if (c->closing)
				return;
			pgsock_drop(sk, m.len);
			continue;
		}
		if (c->state == CLIENT_LOGIN_WAIT || c->state == CLIENT_WAITING)
			break;
		if (m.type == 'Q' && runtime_config()->disable_pqexec) {
			/* As PgBouncer: the simple protocol closes the client,
			 * on the console too (only the extended one is allowed). */
			if (sk->fwd) {
				sk->parse_blocked = true; /* what precedes it goes first */
				break;
			}
			client_fail(c, "08P01", "PQexec disallowed");
			return;
		}
		if (c->adm) {
			if (admin_blocked(&c->base))
				break;
			if (m.type == 'X') {
				client_close(c, "client terminated");
				return;
			}
			int whole = await_small(c, &m, avail, "admin console command too long");
			if (whole <= 0) {
				if (whole < 0)
					return;
				break;
			}
			admin_message(&c->base, m.type, m.body, m.body_len);
			if (c->closing)
				return;
			pgsock_drop(sk, m.len);
			continue;
		}
		if (m.type == 'X') {
			if (sk->fwd) {
				sk->parse_blocked = true; /* let what precedes it go first */
				break;
			}
			client_close(c, "client terminated");
			return;
		}
		if (c->state == CLIENT_IDLE && __atomic_load_n(&c->pool->stale, __ATOMIC_RELAXED) &&
		    !client_repool(c))
			return;
		if (c->state == CLIENT_IDLE) {
			/* A message that must be examined whole is awaited before
			 * taking a server: a server taken for half a message would
			 * look idle and go straight back. */
			if (track_enabled(c->pool) && track_wants_whole(c, &m, avail) && m.len > avail) {
				if (!await_rest(c, tracked_wait(&m, avail), "54000", TOO_BIG_TO_TRACK))
					return;
				break;
			}
			struct pool *serving;
			if (c->pool->n_shards) { /* a shard's pool (pg_shard.h) */
				int act = pg_shard_pick(c, &m, avail, &serving);
				if (act == PG_SHARD_FAILED)
					return;
				if (act == PG_SHARD_WAIT)
					break;
				if (act == PG_SHARD_ANSWERED)
					continue;
				c->route_kind = ROUTE_KIND_PRIMARY;
			} else {
				serving = pg_route_pick(c, &m, avail); /* c->pool, or a standby's */
			}
			client_set_state(c, CLIENT_WAITING);
			sk->want_read = false;
			const char *fail = NULL;
			struct pg_server *s = pg_server(pool_acquire(serving, &c->base, &fail));
			if (fail) {
				client_fail(c, "08P01", fail);
				return;
			}
			if (!s) {
				client_update_events(c);
				return;
			}
			server_link(s, c);
			client_set_state(c, CLIENT_ACTIVE);
			sk->want_read = true;
		}
		/* CLIENT_ACTIVE: forward; count requests that end with ReadyForQuery. */
		struct pg_server *s = c->server;
		struct pg_shard_refusal refusal;
		bool refused = false;
		if (c->shard_fanout && pg_fanout_linked(c, s, &m)) {
			sk->parse_blocked = true; /* the Query is read again for the next shard */
			break;
		}
		if (c->pool->n_shards && !c->hold_for_sync) {
			int act = pg_shard_follow(c, &m, avail, &refusal);
			if (act == PG_SHARD_FAIL)
				return;
			if (act == PG_SHARD_AWAIT)
				break;
			if (act == PG_SHARD_FANOUT) {
				/* The message waits while the transaction's part here
				 * is prepared (pg_fanout.h). */
				pg_fanout_linked(c, s, &m);
				sk->parse_blocked = true;
				break;
			}
			if (act == PG_SHARD_HOLD) {
				/* Once the answers in flight are in, the server may be
				 * free and the message routed anew. */
				c->hold_for_sync = true;
				s->resume_client = true;
				sk->parse_blocked = true;
				break;
			}
			refused = act == PG_SHARD_REFUSE;
			if (refused && !s->tracking) {
				client_fail(c, refusal.sqlstate, refusal.message);
				return;
			}
		}
		if (!pg_route_may_follow(c, &m, avail)) {
			/* On a standby, and this may write: once the server is
			 * free, the client's next transaction is routed anew. */
			c->hold_for_sync = true;
			s->resume_client = true;
			sk->parse_blocked = true;
			break;
		}
		if (waits_for_kernel_answers(s) && !copy_watch_passes_wait(&s->copy, m.type)) {
			/* Taken from the kernel with answers on their way:
			 * tracking resumes once they are in (the server's
			 * ReadyForQuery resumes parsing). What a COPY needs
			 * goes on (copy_watch.h). */
			sk->parse_blocked = true;
			break;
		}
		if (s->bp_retrack && s->client_mid_batch &&
		    (m.type == 'P' || m.type == 'B' || m.type == 'D' || m.type == 'C')) {
			if (avail < 7 && m.len > avail)
				break;
			uint32_t n = m.body_len < 2 ? m.body_len : 2;
			if (avail - 5 < n)
				n = avail - 5;
			if (pgf_client_verdict(m.type, m.body, n, PGF_OPT_TRACKING) != PGF_OK) {
				client_fail(c, "0A000", "bpf_bypass: a named prepared statement inside a batch the kernel "
					    "began cannot be tracked (send Sync first, or set bpf_bypass = off)");
				return;
			}
		}
		if ((c->mirror_chan || c->mirror_tx || c->mirror_cfg != runtime_config()) &&
		    !(s->tracking && c->hold_for_sync)) {
			uint32_t missing = pg_mirror_client_msg(c, s, &m, avail);
			if (missing) {
				if (!await_rest(c, missing, "53200", "out of memory"))
					return;
				break;
			}
		}
		if (s->tracking) {
			if (c->hold_for_sync) {
				sk->parse_blocked = true;
				break;
			}
			if (track_wants_whole(c, &m, avail) && m.len > avail) {
				if (!await_rest(c, tracked_wait(&m, avail), "54000", TOO_BIG_TO_TRACK))
					return;
				break;
			}
			uint32_t wbuf_before = iobuf_len(&s->sock.wbuf);
			int act = refused ? track_refuse(c, s, &m, refusal.sqlstate, refusal.message)
					  : track_client_msg(c, s, &m);
			track_journal_note(s, &m, act, avail, wbuf_before);
			if (act == TRACK_FLUSH_FIRST) {
				if (c->mirror_tx)
					pg_mirror_client_unsee(c); /* examined again later */
				sk->parse_blocked = true;
				break;
			}
			if (act == TRACK_ERROR) {
				client_fail(c, "08P01", "invalid extended-protocol message, or out of memory");
				return;
			}
			if (act == TRACK_DROP || act == TRACK_DROP_QUERY) {
				if (act == TRACK_DROP_QUERY)
					request_sent(s, c->worker->loop.now_us);
				else if (iobuf_len(&s->sock.wbuf) > wbuf_before &&
					 copy_watch_client(s, m.type) == COPY_BROKEN) {
					/* Sent rewritten, it is a request all the same. */
					client_fail(c, "08P01", copy_watch_broken_reason(&s->copy));
					return;
				}
				if (act == TRACK_DROP && m.type != 'Q' && m.type != 'S')
					s->client_mid_batch = true;
				if (m.len > avail) {
					/* Skipped after an error, and not all here yet. */
					pgsock_drop(sk, avail);
					sk->drop = m.len - avail;
					break;
				}
				pgsock_drop(sk, m.len);
				continue;
			}
		}
		int copy_verdict = copy_watch_client(s, m.type);
		if (copy_verdict == COPY_BROKEN) {
			client_fail(c, "08P01", copy_watch_broken_reason(&s->copy));
			return;
		}
		switch (m.type) {
		case 'Q':
		case 'F':
		case 'S':
			/* Each of these is answered by exactly one ReadyForQuery.
			 * Only a Sync closes an extended-protocol batch: a Query
			 * in the middle of one leaves it open. */
			request_sent(s, c->worker->loop.now_us);
			if (m.type == 'S')
				s->client_mid_batch = false;
			break;
		case 'P': case 'B': case 'D': case 'E': case 'C':
			s->client_mid_batch = true;
			break;
		default:
			break; /* Flush, COPY data: no batch of their own */
		}
		if (m.len <= avail) {
			sk->fwd += m.len;
		} else {
			sk->fwd += avail;
			sk->skip = m.len - avail;
			break;
		}
		if (c->hold_for_sync) {
			sk->parse_blocked = true; /* until this batch's ReadyForQuery */
			break;
		}
	}
	if (!c->closing)
		client_pump(c);
}

void client_resume_admin(struct pg_client *c)
{
	c->sock.want_read = true;
	client_process(c);
}

/* May parsing go on now that the forwarded bytes are out? */
static bool parse_may_resume(const struct pg_client *c)
{
	const struct pg_server *s = c->server;
	if (s && copy_watch_marker_due(&s->copy))
		return true; /* the loop sends it first */
	if (c->hold_for_sync || c->shard_fanout)
		return false; /* a query over several shards reads on when it is done */
	if (!s || !waits_for_kernel_answers(s) || c->sock.skip || c->sock.drop)
		return true;
	/* Only what a COPY needs goes on meanwhile (copy_watch.h). */
	return pgsock_unexamined(&c->sock) > 0 && copy_watch_passes_wait(&s->copy, pgsock_cursor(&c->sock)[0]);
}

void client_reroute(struct pg_client *c)
{
	if (c->state != CLIENT_WAITING || c->server)
		return;
	/* Its request is still unread in its buffer: read it again, as an
	 * idle client does, and route it where it can go now. */
	client_set_state(c, CLIENT_IDLE);
	c->sock.want_read = true;
	client_process(c);
}

void client_resume_parse(struct pg_client *c)
{
	if (c->sock.parse_blocked && c->sock.fwd == 0 && parse_may_resume(c)) {
		c->sock.parse_blocked = false;
		client_process(c);
	}
}

/* Send what sluice generated for the client, and the client's examined
 * bytes to its server. */
static void client_pump(struct pg_client *c)
{
	if (c->adm)
		admin_pump(&c->base);
	if (c->closing)
		return;
	if (iobuf_len(&c->sock.wbuf)) {
		int rc = pgsock_flush(&c->sock, NULL);
		if (rc < 0 && rc != -EAGAIN) {
			client_close(c, "write failed");
			return;
		}
	}
	if (c->server) {
		server_send_pending(c->server);
		/* sluice's own answers may be due without any server byte. */
		if (!c->closing && c->server && track_answer_due(c->server))
			server_deliver_pending(c->server);
	}
	if (!c->closing) {
		track_account(c, false);
		client_update_events(c);
	}
}

static void client_cb(struct loop_handle *h, uint32_t revents)
{
	struct pg_client *c = list_entry(h, struct pg_client, sock.h);
	if (c->tls_handshaking) {
		tls_step(c);
		return;
	}
	if (c->bp_kernel) {
		if (!bypass_client_wake(c, revents))
			return;
		/* The kernel passed bytes up (or the peer hung up): the pair is
		 * user space's from here. */
		client_take_from_kernel(c);
		if (c->closing)
			return;
		if (c->server)
			revents |= EPOLLIN;
	}
	if (revents & EPOLLOUT) {
		/* Bytes towards the client: its own wbuf and its server's examined bytes. */
		if (c->server) {
			server_deliver_pending(c->server);
		} else if (c->adm) {
			admin_pump(&c->base);
			if (c->closing)
				return;
			if (!admin_blocked(&c->base))
				client_process(c);
			else
				client_update_events(c);
		} else {
			int rc = pgsock_flush(&c->sock, NULL);
			if (rc < 0 && rc != -EAGAIN) {
				client_close(c, "write failed");
				return;
			}
			client_update_events(c);
		}
		if (c->closing)
			return;
	}
	if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) {
		if (!c->sock.want_read && !(revents & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)))
			return;
		int n = pgsock_read(&c->sock);
		if (n == 0 || (n < 0 && n != -EAGAIN && n != -ENOBUFS)) {
			client_close(c, n == 0 ? "client closed connection" : pgsock_read_failure(n, "read failed"));
			return;
		}
		if (n > 0) {
			c->last_active_us = c->worker->loop.now_us;
			if (c->pool)
				stats_add(&pool_stats(c->pool, c->worker)->bytes_in, (uint64_t)n);
			client_process(c);
		} else if (n == -ENOBUFS) {
			client_process(c);
		} else {
			client_update_events(c);
		}
	}
}

/* Timeouts of a client linked to a server (PgBouncer's names). */
static void active_tick(struct pg_client *c, int64_t now_us)
{
	const struct pg_server *s = c->server;
	const struct config_timeouts *cfg = &s->pool->t; /* per user / database (pool.h) */
	bool in_xact = s->tx_status == 'T' || s->tx_status == 'E';
	if (cfg->query_timeout_us && s->outstanding > 0 &&
	    now_us - s->query_start_us > cfg->query_timeout_us) {
		/* Closing the client cancels the query and drops the server. */
		client_fail(c, "57014", "query_timeout: canceling statement and closing the connection");
	} else if (cfg->transaction_timeout_us && s->xact_start_us &&
		   now_us - s->xact_start_us > cfg->transaction_timeout_us) {
		client_fail(c, "25P04", "transaction_timeout: terminating connection");
	} else if (cfg->idle_transaction_timeout_us && in_xact && s->outstanding == 0 &&
		   !s->client_mid_batch && now_us - s->ready_since_us > cfg->idle_transaction_timeout_us &&
		   now_us - c->last_active_us > cfg->idle_transaction_timeout_us) {
		client_fail(c, "25P03", "idle_transaction_timeout: terminating connection");
	} else if (cfg->client_idle_timeout_us && !in_xact && s->outstanding == 0 &&
		   !s->client_mid_batch && now_us - c->last_active_us > cfg->client_idle_timeout_us) {
		client_fail(c, "08P01", "client_idle_timeout");
	}
}

/* A client queued for a server, for age: query_timeout counts the wait
 * too, then query_wait_timeout (PgBouncer's order); the message says why
 * when server logins are failing. */
static void wait_tick(struct pg_client *c, int64_t age)
{
	int64_t notify_us = runtime_config()->query_wait_notify_us;
	if (c->state == CLIENT_WAITING && notify_us && age > notify_us && !c->wait_notified) {
		/* query_wait_notify: once per connection, as PgBouncer; the
		 * client is linked to no server, so the NOTICE goes alone. */
		c->wait_notified = true;
		pg_be_notice(&c->sock.wbuf, "No server connection available in postgres backend, client being queued");
		int rc = pgsock_flush(&c->sock, NULL);
		if (rc < 0 && rc != -EAGAIN) {
			client_close(c, "write failed");
			return;
		}
		client_set_events(c);
	}
	char msg[240];
	if (client_core_wait_expired(&c->base, age, msg, sizeof(msg)))
		client_fail(c, "08P01", msg);
}

void client_tick(struct pg_client *c, int64_t now_us)
{
	const struct config *cfg = runtime_config();
	/* Shutdown, online restart, SUSPEND: user space decides what happens
	 * to the client, so it must know where the client really is. */
	if (bypass_client_handed_up(c)) {
		/* Its hand-over event was lost (ring full): act now. */
		client_cb(&c->sock.h, EPOLLIN);
		if (c->closing)
			return;
	}
	if (c->bp_kernel && (control_phase() != PHASE_RUNNING || c->worker->suspended ||
			     bypass_client_timeout_due(c, now_us)))
		client_take_from_kernel(c);
	bypass_client_count(c);
	if (c->closing)
		return;
	if (control_phase() != PHASE_RUNNING && control_at_boundary(&c->base))
		return;
	if (c->adm) {
		admin_tick(&c->base, now_us);
		return;
	}
	int64_t age = now_us - c->state_since_us;
	switch (c->state) {
	case CLIENT_STARTUP:
	case CLIENT_AUTH:
		if (cfg->client_login_timeout_us && age > cfg->client_login_timeout_us)
			client_fail(c, "08P01", "client_login_timeout");
		else if (c->state == CLIENT_AUTH && c->pool && !c->lookup_done && !c->server)
			wait_tick(c, age); /* waiting for a server to run auth_query */
		break;
	case CLIENT_WAITING:
	case CLIENT_LOGIN_WAIT:
		wait_tick(c, age);
		break;
	case CLIENT_IDLE: {
		/* In the kernel: bypass_client_timeout_due decided above. The
		 * console has no pool: the global value. */
		int64_t limit = c->pool ? c->pool->t.client_idle_timeout_us : cfg->client_idle_timeout_us;
		if (!c->bp_kernel && limit && now_us - c->last_active_us > limit && age > limit)
			client_fail(c, "08P01", "client_idle_timeout");
		break;
	}
	case CLIENT_ACTIVE:
		if (c->server && !c->bp_kernel) /* in the kernel: see above */
			active_tick(c, now_us);
		break;
	default:
		break;
	}
}
