/*
 * config.c - reads a PgBouncer-compatible INI file (and the auth_file it
 * names) into an immutable struct config snapshot.
 *
 * Owns: the INI reader (sections, comments, %include), the libpq-style
 * connection-string reader used by [databases] and [users], the auth_file
 * (userlist.txt) reader, the value parsers (int, bool, duration, enums) and
 * every heap allocation hanging off struct config.
 * Must not: log directly (warnings go through warn_cb so the caller decides
 * where they land), keep global state (a reload may parse while workers read
 * the old snapshot), or put a secret into an error or warning message.
 *
 * Compatibility notes (an existing pgbouncer.ini must load unchanged):
 * - ';' and '#' start a comment only at the beginning of a line; later in a
 *   line they are ordinary characters, as in PgBouncer.
 * - Real PgBouncer keys that sluice does not implement are accepted with a
 *   warning rather than an error, so a production file keeps loading.
 * - auth_file, logfile and pidfile are used as written: a relative path is
 *   relative to the current directory, like PgBouncer.
 * - %include paths that are relative are resolved against the directory of
 *   the including file (a deliberate difference: PgBouncer uses the current
 *   directory, which makes the meaning of a file depend on where the daemon
 *   was started). Absolute paths behave the same in both.
 */
#include "config.h"
#include "hba.h"
#include "ident.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Bounds nesting and, with it, include cycles (a.ini includes itself). */
#define CONFIG_MAX_INCLUDE_DEPTH 10

/* Longest value echoed back in an error message; keeps messages one line. */
#define CONFIG_ECHO_MAX 64

enum config_section {
	SECT_NONE = 0,  /* before the first [section] header */
	SECT_MAIN,      /* [sluice] or [pgbouncer] */
	SECT_DATABASES, /* [databases] */
	SECT_USERS,     /* [users] */
	SECT_PEERS,     /* [peers] */
	SECT_SHARDED_TABLES, /* [sharded_tables] */
	SECT_IGNORED,   /* an unknown section: lines skipped */
};

/* A [sharded_tables] line until its database is known. */
struct pending_table {
	char *key;                       /* the line's key as written, for errors */
	char *db;                        /* the sharded [databases] entry it names */
	struct config_sharded_table t;   /* moved to that entry by check_shards */
};

/* State of one config_load(); lives on its stack. */
struct config_parser {
	struct config *cfg;      /* snapshot being built; owned until handed out */
	char *err;               /* caller's error buffer (may be NULL) */
	size_t errlen;           /* its size */
	void (*warn_cb)(const char *msg); /* may be NULL */
	enum config_section section; /* shared across %include, like PgBouncer */
	const char *file;        /* file being read (for messages); not owned */
	int line;                /* 1-based line in file */
	int depth;               /* %include nesting, 0 = top-level file */
	size_t cap_databases;    /* allocated slots in cfg->databases */
	size_t cap_users;        /* allocated slots in cfg->users */
	size_t cap_peers;        /* allocated slots in cfg->peers */
	size_t cap_auth;         /* allocated slots in cfg->auth */
	struct pending_table *tables; /* [sharded_tables] lines, handed to their
				       * databases once the whole file is read */
	size_t n_tables, cap_tables;
};

/* ---- messages ---------------------------------------------------------- */

static void set_err(struct config_parser *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_err(struct config_parser *p, const char *fmt, ...)
{
	va_list ap;

	if (!p->err || p->errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(p->err, p->errlen, fmt, ap);
	va_end(ap);
}

/* "FILE:LINE: " + message. Returns rc so callers can `return fail(...)`. */
static int fail_at(struct config_parser *p, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail_at(struct config_parser *p, int rc, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	set_err(p, "%s:%d: %s", p->file, p->line, msg);
	return rc;
}

static int fail_oom(struct config_parser *p)
{
	set_err(p, "%s: out of memory", p->file ? p->file : "config");
	return -ENOMEM;
}

static void warn_at(struct config_parser *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void warn_at(struct config_parser *p, const char *fmt, ...)
{
	char *body = NULL, *msg = NULL;
	va_list ap;

	if (!p->warn_cb)
		return;
	va_start(ap, fmt);
	/* Heap formatting so a long key name is never cut off mid-warning. */
	if (vasprintf(&body, fmt, ap) < 0)
		body = NULL;
	va_end(ap);
	if (body && asprintf(&msg, "%s:%d: %s", p->file, p->line, body) >= 0) {
		p->warn_cb(msg);
		free(msg);
	}
	free(body);
}

/* ---- small string helpers ---------------------------------------------- */

static char *trim(char *s)
{
	char *end;

	while (*s && isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	*end = '\0';
	return s;
}

/* Replace *dst with a copy of v; empty_is_null maps "" to NULL. */
static int set_str(char **dst, const char *v, bool empty_is_null)
{
	char *copy = NULL;

	if (!(empty_is_null && *v == '\0')) {
		copy = strdup(v);
		if (!copy)
			return -ENOMEM;
	}
	free(*dst);
	*dst = copy;
	return 0;
}

/*
 * Unquote a field that starts at s (s[0] is the quote character q) in place.
 * A doubled quote stands for one quote character, as in SQL identifiers
 * ("a""b") and PgBouncer connection strings ('it''s'). The unescaped text
 * is written starting at s, so it never overtakes the reading position.
 * Returns the unquoted text and sets *after to the character following the
 * closing quote, or returns NULL when the closing quote is missing.
 */
static char *unquote(char *s, char q, char **after)
{
	char *src = s + 1, *dst = s;

	for (;;) {
		if (*src == '\0')
			return NULL;
		if (*src == q) {
			if (src[1] == q) {
				*dst++ = q;
				src += 2;
				continue;
			}
			*after = src + 1;
			*dst = '\0';
			return s;
		}
		*dst++ = *src++;
	}
}

/* ---- value parsers (exported for tests) -------------------------------- */

int config_parse_bool(const char *s, bool *out)
{
	static const struct { const char *word; bool val; } words[] = {
		{ "1", true }, { "on", true }, { "yes", true }, { "true", true },
		{ "0", false }, { "off", false }, { "no", false }, { "false", false },
	};
	size_t i;

	if (!s)
		return -EINVAL;
	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (strcasecmp(s, words[i].word) == 0) {
			*out = words[i].val;
			return 0;
		}
	}
	return -EINVAL;
}

int config_parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
	long long v;
	char *end;

	/* strtoll would skip leading blanks and accept "", so check by hand. */
	if (!s || !(isdigit((unsigned char)*s) || *s == '-' || *s == '+'))
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		return -EINVAL;
	if (v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Octal with or without the leading 0 ("0777", "777"), like a chmod mode. */
static int parse_octal(const char *s, int64_t max, int64_t *out)
{
	long long v;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 8);
	if (errno != 0 || *end != '\0' || v < 0 || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/*
 * PgBouncer reads a time setting as a (possibly fractional) number of
 * seconds. Integer arithmetic is used for the whole part so "0.5" is exactly
 * 500000 us and large values do not lose precision; only the fraction goes
 * through long double, where rounding to the nearest microsecond is fine.
 */
int config_parse_duration_us(const char *s, int64_t *out)
{
	static const struct { const char *unit; int64_t us; } units[] = {
		{ "", 1000000 }, { "us", 1 }, { "ms", 1000 }, { "s", 1000000 },
		{ "min", 60 * 1000000LL }, { "h", 3600 * 1000000LL },
		{ "d", 86400 * 1000000LL },
	};
	uint64_t whole = 0, frac = 0, frac_scale = 1;
	int digits = 0;
	int64_t unit_us = -1, total, frac_us;
	const char *q = s;
	size_t i;

	if (!s)
		return -EINVAL;
	while (isdigit((unsigned char)*q)) {
		if (whole > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		whole = whole * 10 + (uint64_t)(*q - '0');
		digits++;
		q++;
	}
	if (*q == '.') {
		q++;
		while (isdigit((unsigned char)*q)) {
			/* Digits past 1e-12 of a unit cannot change the result. */
			if (frac_scale < 1000000000000ULL) {
				frac = frac * 10 + (uint64_t)(*q - '0');
				frac_scale *= 10;
			}
			digits++;
			q++;
		}
	}
	if (digits == 0)
		return -EINVAL;
	while (*q == ' ' || *q == '\t')
		q++;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(q, units[i].unit) == 0) {
			unit_us = units[i].us;
			break;
		}
	}
	if (unit_us < 0)
		return -EINVAL;
	if (whole > (uint64_t)(INT64_MAX / unit_us))
		return -EINVAL;
	total = (int64_t)whole * unit_us;
	frac_us = (int64_t)((long double)frac * (long double)unit_us /
			    (long double)frac_scale + 0.5L);
	if (total > INT64_MAX - frac_us)
		return -EINVAL;
	*out = total + frac_us;
	return 0;
}

int config_parse_pool_mode(const char *s, int *out)
{
	if (!s)
		return -EINVAL;
	if (strcasecmp(s, "session") == 0)
		*out = POOL_MODE_SESSION;
	else if (strcasecmp(s, "transaction") == 0)
		*out = POOL_MODE_TRANSACTION;
	else if (strcasecmp(s, "statement") == 0)
		*out = POOL_MODE_STATEMENT;
	else
		return -EINVAL;
	return 0;
}

static const char *const sslmode_names[] = {
	"disable", "allow", "prefer", "require", "verify-ca", "verify-full",
};

int config_parse_sslmode(const char *s, int *out)
{
	for (size_t i = 0; s && i < sizeof(sslmode_names) / sizeof(sslmode_names[0]); i++) {
		if (strcasecmp(s, sslmode_names[i]) == 0) {
			*out = (int)i;
			return 0;
		}
	}
	return -EINVAL;
}

int config_parse_auth_type(const char *s, int *out)
{
	static const struct { const char *name; int type; } types[] = {
		{ "trust", AUTH_TYPE_TRUST },
		{ "any", AUTH_TYPE_ANY },
		{ "plain", AUTH_TYPE_PLAIN },
		{ "password", AUTH_TYPE_PLAIN }, /* PostgreSQL's name for it */
		{ "md5", AUTH_TYPE_MD5 },
		{ "scram-sha-256", AUTH_TYPE_SCRAM },
		{ "cert", AUTH_TYPE_CERT },
		{ "hba", AUTH_TYPE_HBA },
	};
	size_t i;

	if (!s)
		return -EINVAL;
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (strcasecmp(s, types[i].name) == 0) {
			*out = types[i].type;
			return 0;
		}
	}
	return -EINVAL;
}

/* ---- [sluice] / [pgbouncer] keys --------------------------------------- */

enum config_key_type {
	KT_STR,       /* char *, "" kept as "" (it means "none" for queries) */
	KT_STR_OPT,   /* char *, "" stored as NULL */
	KT_INT,       /* int within [min, max] */
	KT_OCTAL,     /* int, octal digits, within [0, max] */
	KT_BOOL,      /* bool */
	KT_DURATION,  /* int64_t microseconds, within [min, max] */
	KT_POOL_MODE, /* int, enum pool_mode */
	KT_AUTH_TYPE, /* int, enum auth_type */
	KT_SSLMODE,   /* int, enum tls_mode */
};

struct config_key {
	const char *name;          /* lower case; matched case-insensitively */
	enum config_key_type type;
	size_t off;                /* offsetof(struct config, field) */
	int64_t min, max;          /* KT_INT, KT_OCTAL (max), KT_DURATION */
};

#define KEY(n, t, f, lo, hi) { n, t, offsetof(struct config, f), lo, hi }
#define DUR(n, f) KEY(n, KT_DURATION, f, 0, INT64_MAX)

static const struct config_key main_keys[] = {
	KEY("listen_addr", KT_STR_OPT, listen_addr, 0, 0),
	KEY("listen_port", KT_INT, listen_port, 1, 65535),
	KEY("mysql_listen_addr", KT_STR_OPT, mysql_listen_addr, 0, 0),
	KEY("mysql_listen_port", KT_INT, mysql_listen_port, 0, 65535),
	KEY("mysql_server_version", KT_STR, mysql_server_version, 0, 0),
	KEY("unix_socket_dir", KT_STR, unix_socket_dir, 0, 0),
	KEY("unix_socket_mode", KT_OCTAL, unix_socket_mode, 0, 07777),
	KEY("listen_backlog", KT_INT, listen_backlog, 1, 1000000),
	KEY("auth_type", KT_AUTH_TYPE, auth_type, 0, 0),
	KEY("auth_file", KT_STR_OPT, auth_file, 0, 0),
	KEY("pool_mode", KT_POOL_MODE, pool_mode, 0, 0),
	KEY("default_pool_size", KT_INT, default_pool_size, 0, 100000),
	KEY("min_pool_size", KT_INT, min_pool_size, 0, 100000),
	KEY("reserve_pool_size", KT_INT, reserve_pool_size, 0, 100000),
	DUR("reserve_pool_timeout", reserve_pool_timeout_us),
	KEY("max_client_conn", KT_INT, max_client_conn, 1, 10000000),
	KEY("max_db_connections", KT_INT, max_db_connections, 0, 10000000),
	KEY("max_user_connections", KT_INT, max_user_connections, 0, 10000000),
	KEY("max_db_client_connections", KT_INT, max_db_client_connections, 0, 10000000),
	KEY("max_user_client_connections", KT_INT, max_user_client_connections, 0, 10000000),
	KEY("server_reset_query", KT_STR, server_reset_query, 0, 0),
	KEY("server_reset_query_always", KT_BOOL, server_reset_query_always, 0, 0),
	KEY("server_fast_close", KT_BOOL, server_fast_close, 0, 0),
	KEY("server_check_query", KT_STR, server_check_query, 0, 0),
	DUR("server_check_delay", server_check_delay_us),
	/* Zero would re-check in a tight loop. */
	KEY("role_check_interval", KT_DURATION, role_check_interval_us, 10000, INT64_MAX),
	KEY("mirror_queue_size", KT_INT, mirror_queue_size, 0, 1000000),
	DUR("server_lifetime", server_lifetime_us),
	DUR("server_idle_timeout", server_idle_timeout_us),
	DUR("server_connect_timeout", server_connect_timeout_us),
	DUR("server_login_retry", server_login_retry_us),
	DUR("client_login_timeout", client_login_timeout_us),
	DUR("query_wait_timeout", query_wait_timeout_us),
	DUR("query_wait_notify", query_wait_notify_us),
	DUR("autodb_idle_timeout", autodb_idle_timeout_us),
	KEY("server_round_robin", KT_BOOL, server_round_robin, 0, 0),
	KEY("disable_pqexec", KT_BOOL, disable_pqexec, 0, 0),
	KEY("application_name_add_host", KT_BOOL, application_name_add_host, 0, 0),
	KEY("max_packet_size", KT_INT, max_packet_size, 1, INT32_MAX),
	DUR("client_idle_timeout", client_idle_timeout_us),
	DUR("idle_transaction_timeout", idle_transaction_timeout_us),
	DUR("query_timeout", query_timeout_us),
	KEY("logfile", KT_STR_OPT, logfile, 0, 0),
	KEY("pidfile", KT_STR_OPT, pidfile, 0, 0),
	KEY("admin_users", KT_STR_OPT, admin_users, 0, 0),
	KEY("stats_users", KT_STR_OPT, stats_users, 0, 0),
	KEY("ignore_startup_parameters", KT_STR_OPT, ignore_startup_parameters, 0, 0),
	KEY("workers", KT_INT, workers, 1, 256),
	KEY("adaptive_workers", KT_BOOL, adaptive_workers, 0, 0),
	KEY("adaptive_workers_busy", KT_INT, adaptive_workers_busy, 1, 100),
	KEY("peer_id", KT_INT, peer_id, 0, CONFIG_MAX_PEER_ID),
	KEY("so_reuseport", KT_BOOL, so_reuseport, 0, 0),
	KEY("max_prepared_statements", KT_INT, max_prepared_statements, 0, 100000),
	KEY("max_client_prepared_statements", KT_INT, max_client_prepared_statements, 0, INT32_MAX),
	KEY("max_client_prepared_bytes", KT_INT, max_client_prepared_bytes, 0, INT32_MAX),
	KEY("dynamic_sql_check", KT_BOOL, dynamic_sql_check, 0, 0),
	KEY("track_extra_parameters", KT_STR_OPT, track_extra_parameters, 0, 0),
	KEY("bpf_bypass", KT_BOOL, bpf_bypass, 0, 0),
	KEY("verbose", KT_INT, verbose, 0, 100),
	KEY("log_connections", KT_BOOL, log_connections, 0, 0),
	KEY("log_disconnections", KT_BOOL, log_disconnections, 0, 0),
	KEY("log_pooler_errors", KT_BOOL, log_pooler_errors, 0, 0),
	KEY("pkt_buf", KT_INT, pkt_buf, 1024, 16 * 1024 * 1024),
	KEY("shard_buffer_size", KT_INT, shard_buffer_size, 0, INT32_MAX),
	KEY("sbuf_high_watermark", KT_INT, sbuf_high_watermark, 1024, 1024 * 1024 * 1024),
	KEY("tcp_keepalive", KT_BOOL, tcp_keepalive, 0, 0),
	KEY("tcp_keepidle", KT_INT, tcp_keepidle, 0, 32767),
	KEY("tcp_keepintvl", KT_INT, tcp_keepintvl, 0, 32767),
	KEY("tcp_keepcnt", KT_INT, tcp_keepcnt, 0, 127),
	KEY("tcp_user_timeout", KT_INT, tcp_user_timeout, 0, INT32_MAX),
	KEY("tcp_defer_accept", KT_INT, tcp_defer_accept, 0, INT32_MAX),
	KEY("tcp_socket_buffer", KT_INT, tcp_socket_buffer, 0, INT32_MAX),
	KEY("unix_socket_group", KT_STR_OPT, unix_socket_group, 0, 0),
	DUR("cancel_wait_timeout", cancel_wait_timeout_us),
	KEY("scram_iterations", KT_INT, scram_iterations, 1, 10000000),
	DUR("transaction_timeout", transaction_timeout_us),
	/* A zero period would make the stats averaging divide by zero. */
	KEY("stats_period", KT_DURATION, stats_period_us, 1, INT64_MAX),
	KEY("log_stats", KT_BOOL, log_stats, 0, 0),
	KEY("syslog", KT_BOOL, syslog, 0, 0),
	KEY("syslog_ident", KT_STR_OPT, syslog_ident, 0, 0),
	KEY("syslog_facility", KT_STR_OPT, syslog_facility, 0, 0),
	DUR("shutdown_timeout", shutdown_timeout_us),
	KEY("metrics_port", KT_INT, metrics_port, 0, 65535),
	KEY("metrics_addr", KT_STR_OPT, metrics_addr, 0, 0),
	KEY("client_tls_sslmode", KT_SSLMODE, client_tls_sslmode, 0, 0),
	KEY("client_tls_cert_file", KT_STR_OPT, client_tls_cert_file, 0, 0),
	KEY("client_tls_key_file", KT_STR_OPT, client_tls_key_file, 0, 0),
	KEY("client_tls_ca_file", KT_STR_OPT, client_tls_ca_file, 0, 0),
	KEY("client_tls_protocols", KT_STR_OPT, client_tls_protocols, 0, 0),
	KEY("client_tls_ciphers", KT_STR_OPT, client_tls_ciphers, 0, 0),
	KEY("client_tls13_ciphers", KT_STR_OPT, client_tls13_ciphers, 0, 0),
	KEY("client_tls_ecdhcurve", KT_STR_OPT, client_tls_ecdhcurve, 0, 0),
	KEY("client_tls_dheparams", KT_STR_OPT, client_tls_dheparams, 0, 0),
	KEY("server_tls_sslmode", KT_SSLMODE, server_tls_sslmode, 0, 0),
	KEY("server_tls_cert_file", KT_STR_OPT, server_tls_cert_file, 0, 0),
	KEY("server_tls_key_file", KT_STR_OPT, server_tls_key_file, 0, 0),
	KEY("server_tls_ca_file", KT_STR_OPT, server_tls_ca_file, 0, 0),
	KEY("server_tls_protocols", KT_STR_OPT, server_tls_protocols, 0, 0),
	KEY("server_tls_ciphers", KT_STR_OPT, server_tls_ciphers, 0, 0),
	KEY("server_tls13_ciphers", KT_STR_OPT, server_tls13_ciphers, 0, 0),
	KEY("auth_hba_file", KT_STR_OPT, auth_hba_file, 0, 0),
	KEY("auth_ident_file", KT_STR_OPT, auth_ident_file, 0, 0),
	KEY("auth_user", KT_STR_OPT, auth_user, 0, 0),
	KEY("auth_query", KT_STR_OPT, auth_query, 0, 0),
	KEY("auth_dbname", KT_STR_OPT, auth_dbname, 0, 0),
};

/* Keys read only at start-up: SET refuses them, RELOAD keeps the old value
 * and logs that a restart is needed (SHOW CONFIG: changeable = no). */
static const char *const restart_keys[] = {
	"listen_addr", "listen_port", "unix_socket_dir", "unix_socket_mode", "mysql_listen_addr", "mysql_listen_port",
	"listen_backlog", "workers", "pidfile", "pkt_buf", "metrics_port",
	"metrics_addr", "syslog", "syslog_ident", "syslog_facility", "logfile",
	"tcp_defer_accept", "unix_socket_group",
};

/*
 * Keys PgBouncer (1.x up to 1.24) understands and sluice does not implement
 * yet. Accepted with a warning so an existing pgbouncer.ini keeps loading.
 */
static const char *const unsupported_main_keys[] = {
	"auth_ldap_options", "conffile",
	"dns_max_ttl", "dns_nxdomain_ttl",
	"dns_zone_check_period", "job_name",
	"resolv_conf", "sbuf_loopcnt",
	"service_name", "suspend_timeout",
	"user",
};

/* Every [users] key of PgBouncer 1.25 is implemented. */

static bool in_list(const char *const *list, size_t n, const char *key)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcasecmp(list[i], key) == 0)
			return true;
	return false;
}

#define IN_LIST(list, key) in_list(list, sizeof(list) / sizeof(list[0]), key)

static const struct config_key *find_main_key(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(main_keys) / sizeof(main_keys[0]); i++)
		if (strcasecmp(main_keys[i].name, name) == 0)
			return &main_keys[i];
	return NULL;
}

static int set_main_key(struct config_parser *p, const char *key, const char *val)
{
	const struct config_key *k = find_main_key(key);
	char *field;
	int64_t v;
	bool b;
	int e;

	if (!k) {
		if (IN_LIST(unsupported_main_keys, key))
			warn_at(p, "key '%s' is not supported by sluice yet, ignored", key);
		else
			warn_at(p, "unknown key '%s' ignored", key);
		return 0;
	}
	field = (char *)p->cfg + k->off;
	switch (k->type) {
	case KT_STR:
	case KT_STR_OPT:
		if (set_str((char **)(void *)field, val, k->type == KT_STR_OPT) < 0)
			return fail_oom(p);
		return 0;
	case KT_INT:
		if (config_parse_int(val, k->min, k->max, &v) < 0)
			return fail_at(p, -EINVAL, "key '%s': '%.*s' is not an integer in %lld..%lld",
				       k->name, CONFIG_ECHO_MAX, val, (long long)k->min, (long long)k->max);
		*(int *)(void *)field = (int)v;
		return 0;
	case KT_OCTAL:
		if (parse_octal(val, k->max, &v) < 0)
			return fail_at(p, -EINVAL, "key '%s': '%.*s' is not an octal mode in 0..%llo",
				       k->name, CONFIG_ECHO_MAX, val, (unsigned long long)k->max);
		*(int *)(void *)field = (int)v;
		return 0;
	case KT_BOOL:
		if (config_parse_bool(val, &b) < 0)
			return fail_at(p, -EINVAL, "key '%s': '%.*s' is not a boolean (use 1/0, on/off, yes/no, true/false)",
				       k->name, CONFIG_ECHO_MAX, val);
		*(bool *)(void *)field = b;
		return 0;
	case KT_DURATION:
		if (config_parse_duration_us(val, &v) < 0)
			return fail_at(p, -EINVAL, "key '%s': '%.*s' is not a duration (seconds, or a number with us/ms/s/min/h/d)",
				       k->name, CONFIG_ECHO_MAX, val);
		if (v < k->min || v > k->max)
			return fail_at(p, -EINVAL, "key '%s': must be greater than 0", k->name);
		*(int64_t *)(void *)field = v;
		return 0;
	case KT_POOL_MODE:
		if (config_parse_pool_mode(val, &e) < 0)
			return fail_at(p, -EINVAL, "key '%s': '%.*s' is not a pool mode (session, transaction, statement)",
				       k->name, CONFIG_ECHO_MAX, val);
		*(int *)(void *)field = e;
		return 0;
	case KT_SSLMODE:
		if (config_parse_sslmode(val, &e) < 0)
			return fail_at(p, -EINVAL, "key '%s': '%.*s' is not an sslmode (disable, allow, prefer, require, verify-ca, verify-full)",
				       k->name, CONFIG_ECHO_MAX, val);
		*(int *)(void *)field = e;
		return 0;
	case KT_AUTH_TYPE:
		if (config_parse_auth_type(val, &e) == 0) {
			*(int *)(void *)field = e;
			return 0;
		}
		/* Valid in PgBouncer, so say "not yet" rather than "unknown". */
		if (strcasecmp(val, "pam") == 0 || strcasecmp(val, "ldap") == 0)
			return fail_at(p, -EINVAL, "key '%s': auth_type '%s' is not supported by sluice yet",
				       k->name, val);
		return fail_at(p, -EINVAL, "key '%s': '%.*s' is not an auth type (trust, any, plain, password, md5, scram-sha-256, cert, hba)",
			       k->name, CONFIG_ECHO_MAX, val);
	}
	return 0;
}

/* ---- connection strings ([databases], [users]) ------------------------- */

/* Names of all keys we know; used to decide whether a malformed line's
 * first word is safe to echo (anything else might be a stray secret). */
static bool is_known_word(const char *w)
{
	static const char *const db_words[] = {
		"host", "port", "dbname", "user", "password", "pool_size", "protocol",
		"min_pool_size", "reserve_pool", "reserve_pool_size", "pool_mode",
		"max_db_connections", "connect_query", "application_name",
		"max_user_connections", "shards",
	};

	return find_main_key(w) || IN_LIST(unsupported_main_keys, w) ||
	       IN_LIST(db_words, w);
}


typedef int (*connstr_cb)(struct config_parser *p, void *ctx, const char *owner,
			  const char *key, const char *val);

/*
 * Walk "k1=v1 k2='v 2' ..." in place and call cb for each pair. Values may
 * be single-quoted with '' for a literal quote (PgBouncer's dialect of the
 * libpq syntax); blanks around '=' are allowed as in libpq. Error messages
 * name the key, never the value: a value may be a password.
 */
static int parse_connstr(struct config_parser *p, const char *owner, char *s,
			 connstr_cb cb, void *ctx)
{
	char *key, *val, *next;
	int rc;

	for (;;) {
		while (isspace((unsigned char)*s))
			s++;
		if (*s == '\0')
			return 0;
		key = s;
		while (*s && *s != '=' && !isspace((unsigned char)*s))
			s++;
		if (s == key)
			return fail_at(p, -EINVAL, "key '%s': connection string has '=' without a parameter name", owner);
		next = s;
		while (isspace((unsigned char)*next))
			next++;
		if (*next != '=') {
			*s = '\0';
			/* A lone word may be a password typed without "password=". */
			if (!is_known_word(key))
				return fail_at(p, -EINVAL, "key '%s': connection string has a word without '=value'",
					       owner);
			return fail_at(p, -EINVAL, "key '%s': parameter '%.*s' has no '=value'",
				       owner, CONFIG_ECHO_MAX, key);
		}
		*s = '\0';
		s = next + 1;
		while (isspace((unsigned char)*s))
			s++;
		if (*s == '\'') {
			val = unquote(s, '\'', &next);
			if (!val)
				return fail_at(p, -EINVAL, "key '%s': parameter '%.*s': unterminated quote",
					       owner, CONFIG_ECHO_MAX, key);
			/* "a='x'b=1" would silently glue two parameters together. */
			if (*next && !isspace((unsigned char)*next))
				return fail_at(p, -EINVAL, "key '%s': parameter '%.*s': text right after closing quote",
					       owner, CONFIG_ECHO_MAX, key);
			s = next;
		} else {
			val = s;
			while (*s && !isspace((unsigned char)*s))
				s++;
			if (*s)
				*s++ = '\0';
		}
		rc = cb(p, ctx, owner, key, val);
		if (rc < 0)
			return rc;
	}
}

/* Parse an int connection parameter; the value is not secret, so echo it. */
static int connstr_int(struct config_parser *p, const char *owner, const char *key,
		       const char *val, int64_t min, int64_t max, int *out)
{
	int64_t v;

	if (config_parse_int(val, min, max, &v) < 0)
		return fail_at(p, -EINVAL, "key '%s': parameter '%s': '%.*s' is not an integer in %lld..%lld",
			       owner, key, CONFIG_ECHO_MAX, val, (long long)min, (long long)max);
	*out = (int)v;
	return 0;
}

static int connstr_pool_mode(struct config_parser *p, const char *owner, const char *key,
			     const char *val, int *out)
{
	if (config_parse_pool_mode(val, out) < 0)
		return fail_at(p, -EINVAL, "key '%s': parameter '%s': '%.*s' is not a pool mode (session, transaction, statement)",
			       owner, key, CONFIG_ECHO_MAX, val);
	return 0;
}

/* The timeouts [databases] (for_db) or [users] entries may set. */
static const struct {
	const char *name;
	size_t off;       /* offsetof(struct config_timeouts, field) */
	bool db, user;    /* where PgBouncer accepts it */
} scoped_timeouts[] = {
	{ "query_timeout", offsetof(struct config_timeouts, query_timeout_us), false, true },
	{ "query_wait_timeout", offsetof(struct config_timeouts, query_wait_timeout_us), true, true },
	{ "idle_transaction_timeout", offsetof(struct config_timeouts, idle_transaction_timeout_us), false, true },
	{ "transaction_timeout", offsetof(struct config_timeouts, transaction_timeout_us), false, true },
	{ "client_idle_timeout", offsetof(struct config_timeouts, client_idle_timeout_us), false, true },
	{ "server_lifetime", offsetof(struct config_timeouts, server_lifetime_us), true, false },
};

static const struct config_timeouts timeouts_unset = { -1, -1, -1, -1, -1, -1 };

/* 1 when key is one of the timeouts this section may set (then stored in
 * t; "-1" means not set, as in PgBouncer), 0 when it is not, <0 on error. */
static int scoped_timeout(struct config_parser *p, const char *owner, const char *key, const char *val,
			  struct config_timeouts *t, bool for_db)
{
	for (size_t i = 0; i < sizeof(scoped_timeouts) / sizeof(scoped_timeouts[0]); i++) {
		if (strcasecmp(key, scoped_timeouts[i].name) != 0 ||
		    !(for_db ? scoped_timeouts[i].db : scoped_timeouts[i].user))
			continue;
		int64_t v = -1;
		if (strcmp(val, "-1") != 0 && config_parse_duration_us(val, &v) < 0)
			return fail_at(p, -EINVAL, "key '%s': parameter '%s': '%.*s' is not a duration",
				       owner, key, CONFIG_ECHO_MAX, val);
		*(int64_t *)(void *)((char *)t + scoped_timeouts[i].off) = v;
		return 1;
	}
	return 0;
}

/* As the server knows them (its startup packet and ParameterStatus). */
const char *const config_server_param_names[CONFIG_SERVER_PARAMS] = {
	"application_name", "client_encoding", "datestyle", "timezone",
};

/* "port=5432" or "port=5432,5433,...": one port per host of a host list. */
static int connstr_ports(struct config_parser *p, const char *owner, const char *val, struct config_database *db)
{
	char buf[256];
	if (strlen(val) >= sizeof(buf))
		return fail_at(p, -EINVAL, "database '%s': port list too long", owner);
	snprintf(buf, sizeof(buf), "%s", val);
	db->n_ports = 0;
	for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (db->n_ports == CONFIG_MAX_HOSTS)
			return fail_at(p, -EINVAL, "database '%s': more than %d ports", owner, CONFIG_MAX_HOSTS);
		int rc = connstr_int(p, owner, "port", trim(tok), 1, 65535, &db->ports[db->n_ports]);
		if (rc < 0)
			return rc;
		db->n_ports++;
	}
	if (db->n_ports == 0)
		return connstr_int(p, owner, "port", val, 1, 65535, &db->port); /* its message */
	db->port = db->ports[0];
	return 0;
}

/* Hosts in "host=a,b,c" (1 for none: the unix socket default). */
int config_database_hosts(const struct config_database *db)
{
	int n = 1;
	for (const char *s = db->host; s && *s; s++)
		n += *s == ',';
	return n;
}

const char *const config_target_names[CONFIG_TARGETS] = {
	"any", "read-write", "primary", "read-only", "standby", "prefer-standby",
};

int config_database_target(const struct config_database *db)
{
	if (db->target >= 0)
		return db->target;
	return config_database_hosts(db) > 1 ? CONFIG_TARGET_READ_WRITE : CONFIG_TARGET_ANY;
}

/* max_standby_lag: bytes (a number, or with B, kB, MB, GB) or a duration
 * (with a time unit). */
static int parse_standby_lag(const char *val, int64_t *bytes, int64_t *us)
{
	static const struct { const char *unit; int64_t mult; } sizes[] = {
		{ "", 1 }, { "B", 1 }, { "kB", 1024 }, { "MB", 1024 * 1024 }, { "GB", 1024LL * 1024 * 1024 },
	};
	char *end;
	errno = 0;
	long long n = strtoll(val, &end, 10);
	if (end != val && errno == 0 && n >= 0) {
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			if (strcasecmp(end, sizes[i].unit) == 0 && n <= INT64_MAX / sizes[i].mult) {
				*bytes = n * sizes[i].mult;
				*us = 0;
				return 0;
			}
		}
	}
	if (config_parse_duration_us(val, us) == 0) {
		*bytes = 0;
		return 0;
	}
	return -EINVAL;
}

/* The routing and mirroring keys of a [databases] entry: 1 when key is
 * one of them (0 when not, <0 on a bad value). */
static int routing_param(struct config_parser *p, const char *owner, const char *key, const char *val,
			 struct config_database *db)
{
	if (strcasecmp(key, "target_session_attrs") == 0) {
		for (int i = 0; i < CONFIG_TARGETS; i++) {
			if (strcasecmp(val, config_target_names[i]) == 0) {
				db->target = i;
				return 1;
			}
		}
		return fail_at(p, -EINVAL, "database '%s': target_session_attrs must be any, read-write, primary, "
			       "read-only, standby or prefer-standby, not '%.*s'", owner, CONFIG_ECHO_MAX, val);
	}
	if (strcasecmp(key, "read_routing") == 0) {
		if (strcasecmp(val, "off") == 0 || strcasecmp(val, "auto") == 0) {
			db->read_routing = strcasecmp(val, "auto") == 0;
			return 1;
		}
		return fail_at(p, -EINVAL, "database '%s': read_routing must be off or auto, not '%.*s'",
			       owner, CONFIG_ECHO_MAX, val);
	}
	if (strcasecmp(key, "primary_reads") == 0) {
		if (strcasecmp(val, "off") == 0 || strcasecmp(val, "on") == 0) {
			db->primary_reads = strcasecmp(val, "on") == 0;
			return 1;
		}
		return fail_at(p, -EINVAL, "database '%s': primary_reads must be off or on, not '%.*s'",
			       owner, CONFIG_ECHO_MAX, val);
	}
	if (strcasecmp(key, "max_standby_lag") == 0) {
		if (parse_standby_lag(val, &db->max_standby_lag_bytes, &db->max_standby_lag_us) == 0)
			return 1;
		return fail_at(p, -EINVAL, "database '%s': max_standby_lag must be a size (16MB) or a duration (5s), "
			       "not '%.*s'", owner, CONFIG_ECHO_MAX, val);
	}
	if (strcasecmp(key, "mirror_fraction") == 0) {
		char *end;
		errno = 0;
		double f = strtod(val, &end);
		if (end == val || *end || errno || !(f >= 0.0 && f <= 1.0))
			return fail_at(p, -EINVAL, "database '%s': mirror_fraction must be a number from 0 to 1, not '%.*s'",
				       owner, CONFIG_ECHO_MAX, val);
		db->mirror_fraction = f;
		return 1;
	}
	return 0;
}

static void shards_clear(struct config_database *db)
{
	for (int i = 0; i < db->n_shards; i++)
		free(db->shards[i]);
	free(db->shards);
	db->shards = NULL;
	db->n_shards = 0;
}

/* shards=a,b,c: the names, in shard order (checked against the other
 * entries by check_shards, once all are read). */
static int parse_shards(struct config_parser *p, const char *owner, const char *val, struct config_database *db)
{
	shards_clear(db);
	const char *s = val;
	for (;;) {
		const char *comma = strchr(s, ',');
		size_t n = comma ? (size_t)(comma - s) : strlen(s);
		while (n && isspace((unsigned char)*s)) {
			s++;
			n--;
		}
		while (n && isspace((unsigned char)s[n - 1]))
			n--;
		if (n == 0)
			return fail_at(p, -EINVAL, "database '%s': key 'shards': %s", owner,
				       *val ? "an empty name in the list" : "the list is empty");
		if (db->n_shards == CONFIG_MAX_SHARDS)
			return fail_at(p, -EINVAL, "database '%s': key 'shards': more than %d shards", owner,
				       CONFIG_MAX_SHARDS);
		if (!db->shards && !(db->shards = calloc(CONFIG_MAX_SHARDS, sizeof(*db->shards))))
			return fail_oom(p);
		if (!(db->shards[db->n_shards] = strndup(s, n)))
			return fail_oom(p);
		db->n_shards++; /* owned by db from here, freed with it on an error */
		for (int i = 0; i < db->n_shards - 1; i++)
			if (strcmp(db->shards[i], db->shards[db->n_shards - 1]) == 0)
				return fail_at(p, -EINVAL, "database '%s': key 'shards': '%.*s' is listed twice", owner,
					       CONFIG_ECHO_MAX, db->shards[i]);
		if (!comma)
			return 0;
		s = comma + 1;
	}
}

static int database_param(struct config_parser *p, void *ctx, const char *owner,
			  const char *key, const char *val)
{
	struct config_database *db = ctx;
	char **str = NULL;

	if (strcasecmp(key, "host") == 0)
		str = &db->host;
	else if (strcasecmp(key, "dbname") == 0)
		str = &db->dbname;
	else if (strcasecmp(key, "user") == 0)
		str = &db->user;
	else if (strcasecmp(key, "password") == 0)
		str = &db->password;
	else if (strcasecmp(key, "connect_query") == 0)
		str = &db->connect_query;
	else if (strcasecmp(key, "auth_user") == 0)
		str = &db->auth_user;
	else if (strcasecmp(key, "auth_query") == 0)
		str = &db->auth_query;
	else if (strcasecmp(key, "auth_dbname") == 0)
		str = &db->auth_dbname;
	else if (strcasecmp(key, "mirror") == 0)
		str = &db->mirror;
	else if (strcasecmp(key, "shards") == 0)
		return parse_shards(p, owner, val, db);
	for (int i = 0; !str && i < CONFIG_SERVER_PARAMS; i++) {
		if (strcasecmp(key, config_server_param_names[i]) == 0)
			str = &db->server_params[i];
	}
	if (str) {
		if (set_str(str, val, true) < 0)
			return fail_oom(p);
		return 0;
	}
	if (strcasecmp(key, "port") == 0)
		return connstr_ports(p, owner, val, db);
	if (strcasecmp(key, "protocol") == 0) {
		if (strcasecmp(val, "postgresql") == 0 || strcasecmp(val, "postgres") == 0) {
			db->protocol = CONFIG_PROTO_PG;
			return 0;
		}
		if (strcasecmp(val, "mysql") == 0 || strcasecmp(val, "mariadb") == 0) {
			db->protocol = CONFIG_PROTO_MYSQL;
			return 0;
		}
		return fail_at(p, -EINVAL, "database '%s': protocol must be postgresql or mysql, not '%.*s'",
			       owner, CONFIG_ECHO_MAX, val);
	}
	if (strcasecmp(key, "load_balance_hosts") == 0) {
		if (strcasecmp(val, "round-robin") == 0 || strcasecmp(val, "disable") == 0) {
			db->lb_disable = strcasecmp(val, "disable") == 0;
			return 0;
		}
		return fail_at(p, -EINVAL, "database '%s': load_balance_hosts must be round-robin or disable, not '%.*s'",
			       owner, CONFIG_ECHO_MAX, val);
	}
	if (strcasecmp(key, "pool_size") == 0)
		return connstr_int(p, owner, "pool_size", val, 0, 100000, &db->pool_size);
	int routed = routing_param(p, owner, key, val, db);
	if (routed)
		return routed < 0 ? routed : 0;
	if (strcasecmp(key, "min_pool_size") == 0)
		return connstr_int(p, owner, "min_pool_size", val, 0, 100000, &db->min_pool_size);
	/* reserve_pool is the older PgBouncer spelling, still accepted there. */
	if (strcasecmp(key, "reserve_pool") == 0 || strcasecmp(key, "reserve_pool_size") == 0)
		return connstr_int(p, owner, "reserve_pool_size", val, 0, 100000, &db->reserve_pool_size);
	if (strcasecmp(key, "max_db_connections") == 0)
		return connstr_int(p, owner, "max_db_connections", val, 0, 10000000, &db->max_db_connections);
	if (strcasecmp(key, "pool_mode") == 0)
		return connstr_pool_mode(p, owner, "pool_mode", val, &db->pool_mode);
	if (strcasecmp(key, "max_db_client_connections") == 0)
		return connstr_int(p, owner, "max_db_client_connections", val, 0, 10000000,
				   &db->max_db_client_connections);
	int rc = scoped_timeout(p, owner, key, val, &db->t, true);
	if (rc)
		return rc < 0 ? rc : 0;
	/* Every [databases] key of PgBouncer (to 1.25, and target_session_attrs) is implemented. */
	warn_at(p, "database '%s': unknown parameter '%s' ignored", owner, key);
	return 0;
}

static int user_param(struct config_parser *p, void *ctx, const char *owner,
		      const char *key, const char *val)
{
	struct config_user *u = ctx;

	if (strcasecmp(key, "pool_mode") == 0)
		return connstr_pool_mode(p, owner, "pool_mode", val, &u->pool_mode);
	if (strcasecmp(key, "max_user_connections") == 0)
		return connstr_int(p, owner, "max_user_connections", val, 0, 10000000, &u->max_user_connections);
	if (strcasecmp(key, "pool_size") == 0)
		return connstr_int(p, owner, "pool_size", val, 0, 100000, &u->pool_size);
	if (strcasecmp(key, "reserve_pool_size") == 0)
		return connstr_int(p, owner, "reserve_pool_size", val, 0, 100000, &u->reserve_pool_size);
	if (strcasecmp(key, "max_user_client_connections") == 0)
		return connstr_int(p, owner, "max_user_client_connections", val, 0, 10000000,
				   &u->max_user_client_connections);
	int rc = scoped_timeout(p, owner, key, val, &u->t, false);
	if (rc)
		return rc < 0 ? rc : 0;
	warn_at(p, "user '%s': unknown parameter '%s' ignored", owner, key);
	return 0;
}

static void sharded_table_clear(struct config_sharded_table *t)
{
	free(t->schema);
	free(t->table);
	free(t->column);
	free(t->where);
	memset(t, 0, sizeof(*t));
}

static void database_clear(struct config_database *db)
{
	free(db->name);
	free(db->host);
	free(db->dbname);
	free(db->user);
	free(db->password);
	free(db->connect_query);
	for (int i = 0; i < CONFIG_SERVER_PARAMS; i++)
		free(db->server_params[i]);
	free(db->auth_user);
	free(db->auth_query);
	free(db->auth_dbname);
	free(db->mirror);
	shards_clear(db);
	free(db->shard_db);
	for (size_t i = 0; i < db->n_tables; i++)
		sharded_table_clear(&db->tables[i]);
	free(db->tables);
	free(db->where);
	memset(db, 0, sizeof(*db));
}

/* Grow an array of elem-sized items so one more fits. */
static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	size_t ncap;
	void *na;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 8;
	na = realloc(*arr, ncap * elem);
	if (!na)
		return -ENOMEM;
	*arr = na;
	*cap = ncap;
	return 0;
}

static int add_database(struct config_parser *p, const char *name, char *val)
{
	struct config *cfg = p->cfg;
	struct config_database db = {
		.port = 0, /* 5432 or 3306 by protocol, unless given */
		.pool_size = -1,
		.min_pool_size = -1,
		.reserve_pool_size = -1,
		.pool_mode = -1,
		.max_db_connections = -1,
		.max_db_client_connections = -1,
		.t = timeouts_unset,
		.target = -1,
		.mirror_fraction = 1.0,
	};
	size_t i;
	int rc;

	/* PgBouncer reserves this name for its admin console; so do we. */
	if (strcmp(name, "pgbouncer") == 0)
		return fail_at(p, -EINVAL, "key '%s': database name is reserved for the admin console", name);
	db.name = strdup(name);
	char where[300];
	snprintf(where, sizeof(where), "%s:%d", p->file, p->line);
	db.where = strdup(where);
	if (!db.name || !db.where) {
		database_clear(&db);
		return fail_oom(p);
	}
	rc = parse_connstr(p, name, val, database_param, &db);
	if (db.port == 0)
		db.port = db.protocol == CONFIG_PROTO_MYSQL ? 3306 : 5432;
	if (rc == 0 && config_database_hosts(&db) > CONFIG_MAX_HOSTS)
		rc = fail_at(p, -EINVAL, "database '%s': more than %d hosts", name, CONFIG_MAX_HOSTS);
	if (rc == 0 && db.n_ports > 1 && db.n_ports != config_database_hosts(&db))
		rc = fail_at(p, -EINVAL, "database '%s': %d ports for %d hosts (give one port, or one per host)",
			     name, db.n_ports, config_database_hosts(&db));
	if (rc < 0) {
		database_clear(&db);
		return rc;
	}
	/* A repeated name replaces the earlier entry, as in PgBouncer. */
	for (i = 0; i < cfg->n_databases; i++) {
		if (strcmp(cfg->databases[i].name, name) == 0) {
			database_clear(&cfg->databases[i]);
			cfg->databases[i] = db;
			return 0;
		}
	}
	if (grow((void **)&cfg->databases, &p->cap_databases, cfg->n_databases,
		 sizeof(*cfg->databases)) < 0) {
		database_clear(&db);
		return fail_oom(p);
	}
	cfg->databases[cfg->n_databases++] = db;
	return 0;
}

static int add_user(struct config_parser *p, const char *name, char *val)
{
	struct config *cfg = p->cfg;
	struct config_user u = {
		.pool_mode = -1,
		.max_user_connections = -1,
		.pool_size = -1,
		.reserve_pool_size = -1,
		.max_user_client_connections = -1,
		.t = timeouts_unset,
	};
	size_t i;
	int rc;

	rc = parse_connstr(p, name, val, user_param, &u);
	if (rc < 0)
		return rc;
	u.name = strdup(name);
	if (!u.name)
		return fail_oom(p);
	for (i = 0; i < cfg->n_users; i++) {
		if (strcmp(cfg->users[i].name, name) == 0) {
			free(cfg->users[i].name);
			cfg->users[i] = u;
			return 0;
		}
	}
	if (grow((void **)&cfg->users, &p->cap_users, cfg->n_users, sizeof(*cfg->users)) < 0) {
		free(u.name);
		return fail_oom(p);
	}
	cfg->users[cfg->n_users++] = u;
	return 0;
}

static int peer_param(struct config_parser *p, void *ctx, const char *owner,
		      const char *key, const char *val)
{
	struct config_peer *peer = ctx;

	if (strcasecmp(key, "host") == 0) {
		if (set_str(&peer->host, val, true) < 0)
			return fail_oom(p);
		return 0;
	}
	if (strcasecmp(key, "port") == 0)
		return connstr_int(p, owner, "port", val, 1, 65535, &peer->port);
	if (strcasecmp(key, "pool_size") == 0)
		return connstr_int(p, owner, "pool_size", val, 0, 100000, &peer->pool_size);
	warn_at(p, "peer %s: unknown parameter '%s' ignored", owner, key);
	return 0;
}

/* [peers] "ID = host=... port=... pool_size=...": PgBouncer 1.19's cancel
 * forwarding between processes (peer.h). */
static int add_peer(struct config_parser *p, const char *name, char *val)
{
	struct config *cfg = p->cfg;
	struct config_peer peer = { .port = 6432, .pool_size = -1 };
	char *end = NULL;
	long id = strtol(name, &end, 10);
	if (!*name || *end || id < 1 || id > CONFIG_MAX_PEER_ID)
		return fail_at(p, -EINVAL, "peer '%.*s': the key must be a peer_id from 1 to %d",
			       CONFIG_ECHO_MAX, name, CONFIG_MAX_PEER_ID);
	peer.id = (int)id;
	int rc = parse_connstr(p, name, val, peer_param, &peer);
	if (rc < 0) {
		free(peer.host);
		return rc;
	}
	if (!peer.host)
		return fail_at(p, -EINVAL, "peer %ld: host is required", id);
	for (size_t i = 0; i < cfg->n_peers; i++) {
		if (cfg->peers[i].id == peer.id) {
			free(cfg->peers[i].host);
			cfg->peers[i] = peer;
			return 0;
		}
	}
	if (grow((void **)&cfg->peers, &p->cap_peers, cfg->n_peers, sizeof(*cfg->peers)) < 0) {
		free(peer.host);
		return fail_oom(p);
	}
	cfg->peers[cfg->n_peers++] = peer;
	return 0;
}

/* ---- the INI reader ---------------------------------------------------- */

static int parse_file(struct config_parser *p, const char *path);

/* ---- [sharded_tables] -------------------------------------------------- */

static const struct {
	const char *name;
	int type;
} key_type_names[] = {
	{ "int2", CONFIG_KEY_INT2 }, { "smallint", CONFIG_KEY_INT2 },
	{ "int4", CONFIG_KEY_INT4 }, { "integer", CONFIG_KEY_INT4 }, { "int", CONFIG_KEY_INT4 },
	{ "int8", CONFIG_KEY_INT8 }, { "bigint", CONFIG_KEY_INT8 },
	{ "text", CONFIG_KEY_TEXT }, { "varchar", CONFIG_KEY_TEXT },
	{ "uuid", CONFIG_KEY_UUID },
};

int config_key_type_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof(key_type_names) / sizeof(key_type_names[0]); i++)
		if (strcasecmp(name, key_type_names[i].name) == 0)
			return key_type_names[i].type;
	return -1;
}

/* A plain identifier as PostgreSQL reads one unquoted (a letter or '_',
 * then letters, digits, '_' or '$'; at most 63 bytes), folded to lower
 * case in place. */
static bool fold_identifier(char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 63 || !(isalpha((unsigned char)*s) || *s == '_'))
		return false;
	for (char *c = s; *c; c++) {
		if (!isalnum((unsigned char)*c) && *c != '_' && *c != '$')
			return false;
		*c = (char)tolower((unsigned char)*c);
	}
	return true;
}

/* "db.table = column[:type]" or "db.schema.table = column[:type]". The
 * database is checked once the whole file is read (check_shards). */
static int add_sharded_table(struct config_parser *p, const char *key, char *val)
{
	char name[512];
	if (strlen(key) >= sizeof(name))
		return fail_at(p, -EINVAL, "key '%.*s...': name too long", CONFIG_ECHO_MAX, key);
	strcpy(name, key);
	char *parts[4] = { name }, *dot;
	int n = 1;
	while (n < 4 && (dot = strchr(parts[n - 1], '.'))) {
		*dot = '\0';
		parts[n++] = dot + 1;
	}
	if (n < 2 || n > 3 || !*parts[0] || !fold_identifier(parts[n - 1]) || (n == 3 && !fold_identifier(parts[1])))
		return fail_at(p, -EINVAL, "key '%.*s': expected DATABASE.TABLE or DATABASE.SCHEMA.TABLE "
			       "(plain identifiers)", CONFIG_ECHO_MAX, key);
	char *type = strchr(val, ':');
	int key_type = CONFIG_KEY_UNKNOWN;
	if (type) {
		*type++ = '\0';
		type = trim(type);
		key_type = config_key_type_from_name(type);
		if (key_type < 0)
			return fail_at(p, -EINVAL, "key '%.*s': shard key type '%.*s' is not supported "
				       "(int2, int4, int8, text, varchar or uuid)", CONFIG_ECHO_MAX, key, CONFIG_ECHO_MAX, type);
	}
	val = trim(val);
	if (!fold_identifier(val))
		return fail_at(p, -EINVAL, "key '%.*s': the value must be the shard key column (a plain identifier), "
			       "optionally followed by :TYPE", CONFIG_ECHO_MAX, key);
	if (grow((void **)&p->tables, &p->cap_tables, p->n_tables, sizeof(*p->tables)) < 0)
		return fail_oom(p);
	char where[300];
	snprintf(where, sizeof(where), "%s:%d", p->file, p->line);
	struct pending_table *pt = &p->tables[p->n_tables];
	*pt = (struct pending_table){
		.key = strdup(key),
		.db = strdup(parts[0]),
		.t = {
			.schema = n == 3 ? strdup(parts[1]) : NULL,
			.table = strdup(parts[n - 1]),
			.column = strdup(val),
			.key_type = key_type,
			.where = strdup(where),
		},
	};
	p->n_tables++;
	if (!pt->key || !pt->db || (n == 3 && !pt->t.schema) || !pt->t.table || !pt->t.column || !pt->t.where)
		return fail_oom(p);
	return 0;
}

static void pending_tables_free(struct config_parser *p)
{
	for (size_t i = 0; i < p->n_tables; i++) {
		free(p->tables[i].key);
		free(p->tables[i].db);
		sharded_table_clear(&p->tables[i].t);
	}
	free(p->tables);
	p->tables = NULL;
	p->n_tables = p->cap_tables = 0;
}

static int database_index(const struct config *cfg, const char *name)
{
	for (size_t k = 0; k < cfg->n_databases; k++)
		if (strcmp(cfg->databases[k].name, name) == 0)
			return (int)k;
	return -1;
}

/* Two lines for one table: the same name, and schemas that could be the
 * same table (equal, or one unqualified). */
static bool same_table(const struct config_sharded_table *a, const struct config_sharded_table *b)
{
	return strcmp(a->table, b->table) == 0 && (!a->schema || !b->schema || strcmp(a->schema, b->schema) == 0);
}

/* What sharded entries say of others: each shard an entry of the same
 * section, itself not sharded, PostgreSQL like the sharded one; each
 * [sharded_tables] line names a sharded entry, once per table. */
static int check_shards(struct config_parser *p, struct config *cfg)
{
	for (size_t i = 0; i < cfg->n_databases; i++) {
		struct config_database *d = &cfg->databases[i];
		if (!d->n_shards)
			continue;
		if (strcmp(d->name, "*") == 0) {
			set_err(p, "%s: database '*': key 'shards': the fallback entry cannot be sharded", d->where);
			return -EINVAL;
		}
		if (d->protocol != CONFIG_PROTO_PG) {
			set_err(p, "%s: database '%s': key 'shards': sharding is for PostgreSQL entries only", d->where,
				d->name);
			return -EINVAL;
		}
		if (d->host || d->dbname) {
			set_err(p, "%s: database '%s': key 'shards': a sharded entry has no %s of its own (its shards have)",
				d->where, d->name, d->host ? "host" : "dbname");
			return -EINVAL;
		}
		if (d->mirror) {
			set_err(p, "%s: database '%s': key 'shards': a sharded entry cannot be mirrored (yet)", d->where,
				d->name);
			return -EINVAL;
		}
		d->shard_db = calloc((size_t)d->n_shards, sizeof(*d->shard_db));
		if (!d->shard_db) {
			set_err(p, "%s: out of memory", cfg->path);
			return -ENOMEM;
		}
		for (int k = 0; k < d->n_shards; k++) {
			const char *s = d->shards[k];
			int at = strcmp(s, "*") == 0 ? -1 : database_index(cfg, s);
			const char *why = at < 0 ? "no database entry named so"
					  : at == (int)i ? "a database cannot be its own shard"
					  : cfg->databases[at].n_shards ? "that entry is itself sharded"
					  : cfg->databases[at].protocol != d->protocol ? "that entry speaks another protocol"
					  : NULL;
			if (why) {
				set_err(p, "%s: database '%s': key 'shards': '%.*s': %s", d->where, d->name,
					CONFIG_ECHO_MAX, s, why);
				return -EINVAL;
			}
			d->shard_db[k] = at;
		}
	}
	for (size_t i = 0; i < p->n_tables; i++) {
		struct pending_table *pt = &p->tables[i];
		int at = database_index(cfg, pt->db);
		if (at < 0 || !cfg->databases[at].n_shards) {
			set_err(p, "%s: key '%.*s': '%.*s' is not a sharded [databases] entry (one with shards=)",
				pt->t.where, CONFIG_ECHO_MAX, pt->key, CONFIG_ECHO_MAX, pt->db);
			return -EINVAL;
		}
		struct config_database *d = &cfg->databases[at];
		for (size_t k = 0; k < d->n_tables; k++) {
			if (same_table(&d->tables[k], &pt->t)) {
				set_err(p, "%s: key '%.*s': the table is already listed at %s", pt->t.where,
					CONFIG_ECHO_MAX, pt->key, d->tables[k].where);
				return -EINVAL;
			}
		}
		size_t cap = d->n_tables; /* grow by one: the lists are short */
		struct config_sharded_table *nt = realloc(d->tables, (cap + 1) * sizeof(*nt));
		if (!nt) {
			set_err(p, "%s: out of memory", cfg->path);
			return -ENOMEM;
		}
		d->tables = nt;
		d->tables[d->n_tables++] = pt->t;
		memset(&pt->t, 0, sizeof(pt->t)); /* moved */
	}
	return 0;
}

static int do_include(struct config_parser *p, char *arg)
{
	const char *slash;
	char *path;
	int rc;

	arg = trim(arg);
	if (*arg == '\0')
		return fail_at(p, -EINVAL, "%%include needs a file name");
	if (p->depth + 1 > CONFIG_MAX_INCLUDE_DEPTH)
		return fail_at(p, -EINVAL, "%%include '%s': nested too deeply (max %d)",
			       arg, CONFIG_MAX_INCLUDE_DEPTH);
	slash = strrchr(p->file, '/');
	if (arg[0] == '/' || !slash)
		path = strdup(arg);
	else if (asprintf(&path, "%.*s/%s", (int)(slash - p->file), p->file, arg) < 0)
		path = NULL;
	if (!path)
		return fail_oom(p);
	p->depth++;
	rc = parse_file(p, path);
	p->depth--;
	free(path);
	return rc;
}

static int parse_line(struct config_parser *p, char *line)
{
	char *s = trim(line), *key, *val, *eq, *end;

	if (*s == '\0' || *s == ';' || *s == '#')
		return 0;

	if (*s == '%') {
		if (strncasecmp(s, "%include", 8) == 0 &&
		    (s[8] == '\0' || isspace((unsigned char)s[8])))
			return do_include(p, s + 8);
		return fail_at(p, -EINVAL, "unknown directive (only %%include is supported)");
	}

	if (*s == '[') {
		end = strchr(s, ']');
		if (!end)
			return fail_at(p, -EINVAL, "section header without closing ']'");
		*end = '\0';
		/* Allow a trailing comment after the header, nothing else. */
		val = trim(end + 1);
		if (*val && *val != ';' && *val != '#')
			return fail_at(p, -EINVAL, "unexpected text after section header");
		key = trim(s + 1);
		if (strcasecmp(key, "sluice") == 0 || strcasecmp(key, "pgbouncer") == 0) {
			p->section = SECT_MAIN;
		} else if (strcasecmp(key, "databases") == 0) {
			p->section = SECT_DATABASES;
		} else if (strcasecmp(key, "users") == 0) {
			p->section = SECT_USERS;
		} else if (strcasecmp(key, "peers") == 0) {
			p->section = SECT_PEERS;
		} else if (strcasecmp(key, "sharded_tables") == 0) {
			p->section = SECT_SHARDED_TABLES;
		} else {
			warn_at(p, "unknown section [%.*s] ignored", CONFIG_ECHO_MAX, key);
			p->section = SECT_IGNORED;
		}
		return 0;
	}

	/* key = value; a key in double quotes may contain any character. */
	if (*s == '"') {
		key = unquote(s, '"', &end);
		if (!key)
			return fail_at(p, -EINVAL, "unterminated double quote in key");
		while (isspace((unsigned char)*end))
			end++;
		if (*end != '=')
			return fail_at(p, -EINVAL, "key '%s': expected '=' after quoted name", key);
		val = trim(end + 1);
	} else {
		eq = strchr(s, '=');
		if (!eq) {
			/* No key to name; echo the first word only if it is one
			 * of ours, since a stray line could be a password. */
			end = s;
			while (*end && !isspace((unsigned char)*end))
				end++;
			*end = '\0';
			if (is_known_word(s))
				return fail_at(p, -EINVAL, "key '%s': malformed line, expected 'key = value'", s);
			return fail_at(p, -EINVAL, "malformed line, expected 'key = value'");
		}
		*eq = '\0';
		key = trim(s);
		val = trim(eq + 1);
	}
	if (*key == '\0')
		return fail_at(p, -EINVAL, "malformed line, empty key before '='");

	switch (p->section) {
	case SECT_NONE:
		return fail_at(p, -EINVAL, "key '%s': not inside any section (add [sluice] or [databases] above it)", key);
	case SECT_MAIN:
		return set_main_key(p, key, val);
	case SECT_DATABASES:
		return add_database(p, key, val);
	case SECT_USERS:
		return add_user(p, key, val);
	case SECT_PEERS:
		return add_peer(p, key, val);
	case SECT_SHARDED_TABLES:
		return add_sharded_table(p, key, val);
	case SECT_IGNORED:
		return 0;
	}
	return 0;
}

/* Feed every line of f to fn, counting lines in p->line; stops at the
 * first error. The line buffer is wiped: lines may hold passwords. */
static int read_lines(struct config_parser *p, const char *path, FILE *f,
		      int (*fn)(struct config_parser *, char *), const char *nul_msg)
{
	char *buf = NULL;
	size_t cap = 0;
	ssize_t len;
	int rc = 0, e;

	/* getline: no line-length limit, so nothing is silently truncated. */
	while ((len = getline(&buf, &cap, f)) >= 0) {
		p->line++;
		if (strlen(buf) != (size_t)len) {
			rc = fail_at(p, -EINVAL, "%s", nul_msg);
			break;
		}
		/* A UTF-8 byte order mark from a Windows editor is not a key. */
		if (p->line == 1 && strncmp(buf, "\xEF\xBB\xBF", 3) == 0)
			memmove(buf, buf + 3, (size_t)len - 2);
		rc = fn(p, buf);
		if (rc < 0)
			break;
	}
	if (rc == 0 && ferror(f)) {
		e = errno ? errno : EIO;
		set_err(p, "%s: read error: %s", path, strerror(e));
		rc = -e;
	}
	if (buf)
		explicit_bzero(buf, cap);
	free(buf);
	return rc;
}

static int parse_file(struct config_parser *p, const char *path)
{
	const char *saved_file = p->file;
	int saved_line = p->line;
	FILE *f;
	int rc, e;

	f = fopen(path, "re");
	if (!f) {
		e = errno;
		if (saved_file)
			fail_at(p, -e, "%%include '%s': cannot open: %s", path, strerror(e));
		else
			set_err(p, "%s: cannot open: %s", path, strerror(e));
		return -e;
	}
	p->file = path;
	p->line = 0;
	rc = read_lines(p, path, f, parse_line, "line contains a NUL byte");
	fclose(f);
	p->file = saved_file;
	p->line = saved_line;
	return rc;
}

/* ---- auth_file --------------------------------------------------------- */

/*
 * userlist.txt: "user" "secret" per line, "" inside quotes for a quote,
 * anything after the second field ignored. The secret is kept verbatim
 * (plain, md5... or SCRAM-SHA-256$...): auth decides what it is.
 */
static int parse_auth_line(struct config_parser *p, char *line)
{
	struct config *cfg = p->cfg;
	struct config_auth_entry ent;
	char *s = line, *user, *secret, *after;

	while (isspace((unsigned char)*s))
		s++;
	if (*s == '\0' || *s == ';' || *s == '#')
		return 0;
	if (*s != '"')
		return fail_at(p, -EINVAL, "malformed line, expected \"user\" \"secret\"");
	user = unquote(s, '"', &after);
	if (!user)
		return fail_at(p, -EINVAL, "unterminated quote in user name");
	s = after;
	while (isspace((unsigned char)*s))
		s++;
	if (*s != '"')
		return fail_at(p, -EINVAL, "user '%.*s': missing quoted secret after user name",
			       CONFIG_ECHO_MAX, user);
	secret = unquote(s, '"', &after);
	if (!secret)
		return fail_at(p, -EINVAL, "user '%.*s': unterminated quote in secret",
			       CONFIG_ECHO_MAX, user);
	ent.user = strdup(user);
	ent.secret = strdup(secret);
	if (!ent.user || !ent.secret ||
	    grow((void **)&cfg->auth, &p->cap_auth, cfg->n_auth, sizeof(*cfg->auth)) < 0) {
		free(ent.user);
		free(ent.secret);
		return fail_oom(p);
	}
	cfg->auth[cfg->n_auth++] = ent;
	return 0;
}

static int load_auth_file(struct config_parser *p, const char *path)
{
	FILE *f;
	int rc, e;

	/* Used as written: relative means relative to the current directory. */
	f = fopen(path, "re");
	if (!f) {
		e = errno;
		set_err(p, "%s: cannot open auth_file: %s", path, strerror(e));
		return -e;
	}
	p->file = path;
	p->line = 0;
	rc = read_lines(p, path, f, parse_auth_line, "auth_file line contains a NUL byte");
	fclose(f);
	p->file = NULL;
	return rc;
}

/* ---- snapshot lifecycle ------------------------------------------------ */

static int set_defaults(struct config *cfg)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	cfg->listen_port = 6432;
	cfg->unix_socket_mode = 0777;
	cfg->listen_backlog = 128;
	cfg->auth_type = AUTH_TYPE_MD5;
	cfg->pool_mode = POOL_MODE_SESSION;
	cfg->default_pool_size = 20;
	cfg->reserve_pool_timeout_us = 5 * 1000000LL;
	cfg->max_client_conn = 100;
	cfg->server_check_delay_us = 30 * 1000000LL;
	cfg->role_check_interval_us = 1000000;
	cfg->mirror_queue_size = 64;
	cfg->server_lifetime_us = 3600 * 1000000LL;
	cfg->server_idle_timeout_us = 600 * 1000000LL;
	cfg->server_connect_timeout_us = 15 * 1000000LL;
	cfg->server_login_retry_us = 15 * 1000000LL;
	cfg->client_login_timeout_us = 60 * 1000000LL;
	cfg->query_wait_timeout_us = 120 * 1000000LL;
	cfg->query_wait_notify_us = 5 * 1000000LL;
	cfg->autodb_idle_timeout_us = 3600 * 1000000LL;
	cfg->max_packet_size = INT32_MAX;
	/* Clamp to the range the workers key itself accepts. */
	cfg->workers = ncpu < 1 ? 1 : ncpu > 256 ? 256 : (int)ncpu;
	cfg->max_prepared_statements = 200;
	cfg->max_client_prepared_statements = 10000;
	cfg->max_client_prepared_bytes = 16 * 1024 * 1024;
	cfg->adaptive_workers = true;
	cfg->adaptive_workers_busy = 70;
	cfg->dynamic_sql_check = true;
	cfg->log_connections = true;
	cfg->log_disconnections = true;
	cfg->log_pooler_errors = true;
	cfg->pkt_buf = 4096;
	cfg->shard_buffer_size = 16 * 1024 * 1024;
	cfg->sbuf_high_watermark = 64 * 1024;
	cfg->tcp_keepalive = true;
	cfg->stats_period_us = 60 * 1000000LL;
	cfg->log_stats = true;
	cfg->server_tls_sslmode = TLS_MODE_PREFER;
	cfg->client_tls_protocols = strdup("secure");
	cfg->server_tls_protocols = strdup("secure");
	cfg->client_tls_ciphers = strdup("fast");
	cfg->server_tls_ciphers = strdup("fast");
	cfg->client_tls_ecdhcurve = strdup("auto");
	cfg->client_tls_dheparams = strdup("auto");
	cfg->scram_iterations = 4096;
	cfg->cancel_wait_timeout_us = 10 * 1000000LL;
	/* PgBouncer 1.25's default: a password past its VALID UNTIL, or a role
	 * that may not log in, is as good as none. */
	cfg->auth_query = strdup("SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END "
				 "FROM pg_authid WHERE rolname=$1 AND rolcanlogin");
	if (!cfg->client_tls_protocols || !cfg->server_tls_protocols || !cfg->client_tls_ciphers ||
	    !cfg->server_tls_ciphers || !cfg->auth_query || !cfg->client_tls_ecdhcurve ||
	    !cfg->client_tls_dheparams)
		return -ENOMEM;
	cfg->shutdown_timeout_us = 30 * 1000000LL;
	cfg->metrics_addr = strdup("127.0.0.1");
	cfg->syslog_ident = strdup("sluice");
	cfg->syslog_facility = strdup("daemon");
	if (!cfg->metrics_addr || !cfg->syslog_ident || !cfg->syslog_facility)
		return -ENOMEM;
	cfg->unix_socket_dir = strdup("/tmp");
	cfg->server_reset_query = strdup("DISCARD ALL");
	cfg->server_check_query = strdup("select 1");
	cfg->mysql_server_version = strdup("8.0.30-sluice");
	if (!cfg->unix_socket_dir || !cfg->server_reset_query || !cfg->server_check_query ||
	    !cfg->mysql_server_version)
		return -ENOMEM;
	return 0;
}

static const char *auth_type_name(int t)
{
	switch (t) {
	case AUTH_TYPE_TRUST: return "trust";
	case AUTH_TYPE_ANY: return "any";
	case AUTH_TYPE_PLAIN: return "plain";
	case AUTH_TYPE_MD5: return "md5";
	case AUTH_TYPE_SCRAM: return "scram-sha-256";
	case AUTH_TYPE_CERT: return "cert";
	case AUTH_TYPE_HBA: return "hba";
	}
	return "?";
}

/* What [databases] entries say of each other: mirror names another entry
 * of its protocol; read_routing needs the primary as its target. */
static int check_routing(struct config_parser *p, const struct config *cfg)
{
	for (size_t i = 0; i < cfg->n_databases; i++) {
		const struct config_database *d = &cfg->databases[i];
		int target = config_database_target(d);
		if (d->read_routing && target != CONFIG_TARGET_READ_WRITE && target != CONFIG_TARGET_PRIMARY) {
			set_err(p, "%s: database '%s': key 'read_routing': auto needs target_session_attrs read-write "
				"or primary, not %s", d->where, d->name, config_target_names[target]);
			return -EINVAL;
		}
		if (!d->mirror)
			continue;
		if (strcmp(d->mirror, d->name) == 0) {
			set_err(p, "%s: database '%s': key 'mirror': a database cannot mirror to itself", d->where, d->name);
			return -EINVAL;
		}
		const struct config_database *m = NULL;
		for (size_t k = 0; k < cfg->n_databases && !m; k++)
			if (strcmp(cfg->databases[k].name, d->mirror) == 0)
				m = &cfg->databases[k];
		if (!m || strcmp(m->name, "*") == 0) {
			set_err(p, "%s: database '%s': key 'mirror': no database entry named '%.*s'", d->where, d->name,
				CONFIG_ECHO_MAX, d->mirror);
			return -EINVAL;
		}
		if (m->protocol != d->protocol) {
			set_err(p, "%s: database '%s': key 'mirror': '%s' speaks another protocol", d->where, d->name,
				m->name);
			return -EINVAL;
		}
	}
	return 0;
}

int config_load(const char *path, struct config **out, char *err, size_t errlen,
		void (*warn_cb)(const char *msg))
{
	return config_load_with(path, NULL, 0, out, err, errlen, warn_cb);
}

int config_load_with(const char *path, const struct config_override *ov, size_t n_ov,
		     struct config **out, char *err, size_t errlen,
		     void (*warn_cb)(const char *msg))
{
	struct config_parser p = {
		.err = err,
		.errlen = errlen,
		.warn_cb = warn_cb,
	};
	struct config *cfg;
	int rc;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg) {
		set_err(&p, "%s: out of memory", path);
		return -ENOMEM;
	}
	p.cfg = cfg;
	if (set_defaults(cfg) < 0 || !(cfg->path = strdup(path))) {
		set_err(&p, "%s: out of memory", path);
		rc = -ENOMEM;
		goto fail;
	}

	rc = parse_file(&p, path);
	if (rc < 0)
		goto fail;
	for (size_t i = 0; i < n_ov; i++) {
		p.file = "SET";
		p.line = 0;
		if (!find_main_key(ov[i].key)) {
			set_err(&p, "unknown configuration key '%.*s'", CONFIG_ECHO_MAX, ov[i].key);
			rc = -EINVAL;
			goto fail;
		}
		rc = set_main_key(&p, ov[i].key, ov[i].value);
		if (rc < 0)
			goto fail;
	}

	if (cfg->mysql_listen_port && cfg->mysql_listen_port == cfg->listen_port) {
		set_err(&p, "%s: key 'mysql_listen_port': %d is listen_port too; MySQL clients need a port of their own",
			path, cfg->mysql_listen_port);
		rc = -EINVAL;
		goto fail;
	}
	rc = check_routing(&p, cfg);
	if (rc == 0)
		rc = check_shards(&p, cfg);
	pending_tables_free(&p);
	if (rc < 0)
		goto fail;
	if (cfg->auth_type == AUTH_TYPE_HBA && !cfg->auth_hba_file) {
		set_err(&p, "%s: key 'auth_type': 'hba' needs auth_hba_file to be set", path);
		rc = -EINVAL;
		goto fail;
	}
	if (cfg->client_tls_sslmode != TLS_MODE_DISABLE &&
	    (!cfg->client_tls_cert_file || !cfg->client_tls_key_file)) {
		set_err(&p, "%s: key 'client_tls_sslmode': TLS towards clients needs client_tls_cert_file and client_tls_key_file", path);
		rc = -EINVAL;
		goto fail;
	}
	if ((cfg->client_tls_sslmode >= TLS_MODE_VERIFY_CA || cfg->auth_type == AUTH_TYPE_CERT) &&
	    !cfg->client_tls_ca_file) {
		set_err(&p, "%s: client certificates (client_tls_sslmode verify-ca/verify-full or auth_type cert) need client_tls_ca_file", path);
		rc = -EINVAL;
		goto fail;
	}
	if (cfg->auth_type == AUTH_TYPE_CERT && cfg->client_tls_sslmode == TLS_MODE_DISABLE) {
		set_err(&p, "%s: key 'auth_type': 'cert' needs client_tls_sslmode other than disable", path);
		rc = -EINVAL;
		goto fail;
	}
	/* Every auth type except "any", "cert" and "hba" checks the user against auth_file. */
	if (!cfg->auth_file && cfg->auth_type != AUTH_TYPE_ANY && cfg->auth_type != AUTH_TYPE_CERT &&
	    cfg->auth_type != AUTH_TYPE_HBA) {
		set_err(&p, "%s: key 'auth_type': '%s' needs auth_file to be set",
			path, auth_type_name(cfg->auth_type));
		rc = -EINVAL;
		goto fail;
	}
	if (cfg->auth_file) {
		rc = load_auth_file(&p, cfg->auth_file);
		if (rc < 0)
			goto fail;
	}
	if (cfg->auth_type == AUTH_TYPE_HBA) {
		rc = hba_load(cfg->auth_hba_file, &cfg->hba, err, errlen);
		if (rc == 0 && cfg->auth_ident_file)
			rc = ident_load(cfg->auth_ident_file, &cfg->ident, err, errlen);
		if (rc < 0)
			goto fail;
		/* An undefined map fails its logins, as in PostgreSQL; say so now. */
		int map_line;
		const char *map = hba_unknown_map(cfg->hba, cfg->ident, &map_line);
		if (map) {
			p.file = cfg->auth_hba_file;
			p.line = map_line;
			warn_at(&p, "map \"%s\" is not defined in auth_ident_file%s; logins through this line fail",
				map, cfg->auth_ident_file ? "" : " (not set)");
		}
	}
	*out = cfg;
	return 0;

fail:
	pending_tables_free(&p);
	config_free(cfg);
	return rc;
}

void config_free(struct config *cfg)
{
	size_t i;

	if (!cfg)
		return;
	free(cfg->path);
	hba_free(cfg->hba);
	ident_free(cfg->ident);
	for (i = 0; i < sizeof(main_keys) / sizeof(main_keys[0]); i++)
		if (main_keys[i].type == KT_STR || main_keys[i].type == KT_STR_OPT)
			free(*(char **)(void *)((char *)cfg + main_keys[i].off));
	for (i = 0; i < cfg->n_databases; i++) {
		/* Passwords: wipe before the memory goes back to malloc. */
		if (cfg->databases[i].password)
			explicit_bzero(cfg->databases[i].password, strlen(cfg->databases[i].password));
		database_clear(&cfg->databases[i]);
	}
	free(cfg->databases);
	for (i = 0; i < cfg->n_users; i++)
		free(cfg->users[i].name);
	free(cfg->users);
	for (i = 0; i < cfg->n_peers; i++)
		free(cfg->peers[i].host);
	free(cfg->peers);
	for (i = 0; i < cfg->n_auth; i++) {
		free(cfg->auth[i].user);
		explicit_bzero(cfg->auth[i].secret, strlen(cfg->auth[i].secret));
		free(cfg->auth[i].secret);
	}
	free(cfg->auth);
	free(cfg);
}

/* ---- lookups ----------------------------------------------------------- */

const struct config_database *config_find_database_for(const struct config *cfg, const char *name, int protocol)
{
	const struct config_database *d = config_find_database(cfg, name);
	/* A name another protocol's entry has is not this protocol's, not
	 * even through "*". */
	return d && d->protocol == protocol ? d : NULL;
}

const struct config_database *config_find_database(const struct config *cfg, const char *name)
{
	const struct config_database *fallback = NULL;
	size_t i;

	if (!cfg || !name)
		return NULL;
	for (i = 0; i < cfg->n_databases; i++) {
		if (strcmp(cfg->databases[i].name, name) == 0)
			return &cfg->databases[i];
		if (strcmp(cfg->databases[i].name, "*") == 0)
			fallback = &cfg->databases[i];
	}
	return fallback;
}

void config_auth_lookup_for(const struct config *cfg, const char *db, struct config_auth_lookup *out)
{
	const struct config_database *d = config_find_database(cfg, db);
	out->user = d && d->auth_user ? d->auth_user : cfg->auth_user;
	out->query = d && d->auth_query ? d->auth_query : cfg->auth_query;
	out->dbname = d && d->auth_dbname ? d->auth_dbname : cfg->auth_dbname;
}

const struct config_user *config_find_user(const struct config *cfg, const char *name)
{
	size_t i;

	if (!cfg || !name)
		return NULL;
	for (i = 0; i < cfg->n_users; i++)
		if (strcmp(cfg->users[i].name, name) == 0)
			return &cfg->users[i];
	return NULL;
}

const char *config_find_secret(const struct config *cfg, const char *user)
{
	size_t i;

	if (!cfg || !user)
		return NULL;
	/* Search backwards: a user listed twice gets the later secret, which
	 * is what a file appended to by a tool means. No dedup pass needed. */
	for (i = cfg->n_auth; i > 0; i--)
		if (strcmp(cfg->auth[i - 1].user, user) == 0)
			return cfg->auth[i - 1].secret;
	return NULL;
}

bool config_list_contains(const char *list, const char *name)
{
	const char *s = list, *start, *end;
	size_t n;

	if (!list || !name)
		return false;
	n = strlen(name);
	while (*s) {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		start = s;
		while (*s && *s != ',')
			s++;
		end = s;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if ((size_t)(end - start) == n && n > 0 && memcmp(start, name, n) == 0)
			return true;
	}
	return false;
}

/* ---- description (SHOW CONFIG) ----------------------------------------- */

static const char *pool_mode_name(int m)
{
	switch (m) {
	case POOL_MODE_SESSION: return "session";
	case POOL_MODE_TRANSACTION: return "transaction";
	case POOL_MODE_STATEMENT: return "statement";
	}
	return "?";
}

size_t config_key_count(void)
{
	return sizeof(main_keys) / sizeof(main_keys[0]);
}

bool config_key_needs_restart(const char *name)
{
	return IN_LIST(restart_keys, name);
}

bool config_key_known(const char *name)
{
	return find_main_key(name) != NULL;
}

const char *config_key_describe(const struct config *cfg, size_t i, char *val, size_t vlen)
{
	const struct config_key *k = &main_keys[i];
	const char *field = (const char *)cfg + k->off;
	const char *s;
	int64_t us;

	switch (k->type) {
	case KT_STR:
	case KT_STR_OPT:
		s = *(char *const *)(const void *)field;
		/* Never show a secret: no main key holds one today, but the
		 * console must not become the way one leaks. */
		snprintf(val, vlen, "%s", s ? s : "");
		break;
	case KT_INT:
		snprintf(val, vlen, "%d", *(const int *)(const void *)field);
		break;
	case KT_OCTAL:
		snprintf(val, vlen, "0%o", (unsigned)*(const int *)(const void *)field);
		break;
	case KT_BOOL:
		snprintf(val, vlen, "%d", *(const bool *)(const void *)field ? 1 : 0);
		break;
	case KT_DURATION:
		us = *(const int64_t *)(const void *)field;
		if (us % 1000000 == 0)
			snprintf(val, vlen, "%lld", (long long)(us / 1000000));
		else
			snprintf(val, vlen, "%g", (double)us / 1e6);
		break;
	case KT_POOL_MODE:
		snprintf(val, vlen, "%s", pool_mode_name(*(const int *)(const void *)field));
		break;
	case KT_AUTH_TYPE:
		snprintf(val, vlen, "%s", auth_type_name(*(const int *)(const void *)field));
		break;
	case KT_SSLMODE:
		snprintf(val, vlen, "%s", sslmode_names[*(const int *)(const void *)field]);
		break;
	}
	return k->name;
}

struct config *config_defaults(void)
{
	struct config *cfg = calloc(1, sizeof(*cfg));
	if (cfg && set_defaults(cfg) < 0) {
		config_free(cfg);
		cfg = NULL;
	}
	return cfg;
}

int config_keep_restart_keys(struct config *cfg, const struct config *old,
			     void (*changed_cb)(const char *key))
{
	char a[512], b[512];

	for (size_t i = 0; i < config_key_count(); i++) {
		const struct config_key *k = &main_keys[i];
		if (!IN_LIST(restart_keys, k->name))
			continue;
		config_key_describe(cfg, i, a, sizeof(a));
		config_key_describe(old, i, b, sizeof(b));
		if (strcmp(a, b) == 0)
			continue;
		char *dst = (char *)cfg + k->off;
		const char *src = (const char *)old + k->off;
		switch (k->type) {
		case KT_STR:
		case KT_STR_OPT: {
			const char *v = *(char *const *)(const void *)src;
			char *copy = v ? strdup(v) : NULL;
			if (v && !copy)
				return -ENOMEM;
			free(*(char **)(void *)dst);
			*(char **)(void *)dst = copy;
			break;
		}
		case KT_BOOL:
			*(bool *)(void *)dst = *(const bool *)(const void *)src;
			break;
		case KT_DURATION:
			*(int64_t *)(void *)dst = *(const int64_t *)(const void *)src;
			break;
		default:
			*(int *)(void *)dst = *(const int *)(const void *)src;
			break;
		}
		if (changed_cb)
			changed_cb(k->name);
	}
	return 0;
}
