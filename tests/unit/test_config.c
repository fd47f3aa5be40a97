/*
 * test_config.c - unit tests for config.c: the INI reader, connection
 * strings, %include, auth_file, value parsers and error messages.
 *
 * Every test writes its own files into a private mkdtemp() directory, so
 * tests are independent and leave nothing behind. Run under
 * `valgrind --leak-check=full` to check that config_free() releases all.
 */
#include "config.h"
#include "pghash.h"
#include "unit.h"

#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/sluice_test_config_XXXXXX";

/* ---- helpers ----------------------------------------------------------- */

#define MAX_WARNS 64
static char *warns[MAX_WARNS];
static int n_warns;

static void warn_cb(const char *msg)
{
	if (n_warns < MAX_WARNS)
		warns[n_warns++] = strdup(msg);
}

static void reset_warns(void)
{
	int i;

	for (i = 0; i < n_warns; i++)
		free(warns[i]);
	n_warns = 0;
}

static bool any_warn_contains(const char *needle)
{
	int i;

	for (i = 0; i < n_warns; i++)
		if (strstr(warns[i], needle))
			return true;
	return false;
}

static void write_all(const char *path, const char *content)
{
	FILE *f = fopen(path, "w");

	if (!f) {
		perror(path);
		exit(2);
	}
	fputs(content, f);
	fclose(f);
}

/* Write content to a fresh mkstemp() file in tmpdir; path gets its name. */
static void write_tmp(const char *content, char *path, size_t pathlen)
{
	int fd;

	snprintf(path, pathlen, "%s/cfgXXXXXX", tmpdir);
	fd = mkstemp(path);
	if (fd < 0) {
		perror("mkstemp");
		exit(2);
	}
	close(fd);
	write_all(path, content);
}

/* Path of a fixed name inside tmpdir (for %include targets). */
static void tmp_named(const char *name, char *path, size_t pathlen)
{
	snprintf(path, pathlen, "%s/%s", tmpdir, name);
}

static char last_path[512];
static char err[512];

/* Write content to a temp file and load it. */
static int load_str(const char *content, struct config **cfg)
{
	write_tmp(content, last_path, sizeof(last_path));
	err[0] = '\0';
	reset_warns();
	return config_load(last_path, cfg, err, sizeof(err), warn_cb);
}

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- value parsers ----------------------------------------------------- */

static void test_parse_duration(void)
{
	static const struct { const char *in; int64_t us; } ok[] = {
		{ "0", 0 },
		{ "5", 5000000 },
		{ "0.5", 500000 },
		{ ".5", 500000 },
		{ "1.25", 1250000 },
		{ "3600", 3600000000LL },
		{ "250us", 250 },
		{ "100ms", 100000 },
		{ "2s", 2000000 },
		{ "10 s", 10000000 },
		{ "3min", 180000000LL },
		{ "1h", 3600000000LL },
		{ "1.5h", 5400000000LL },
		{ "1d", 86400000000LL },
		{ "2MS", 2000 },
		{ "0.0000015", 2 }, /* 1.5 us rounds to nearest */
		{ "0.000001", 1 },
		{ "1.0000000000001", 1000000 }, /* digits beyond precision ignored */
	};
	static const char *const bad[] = {
		"", "abc", "-1", "+1", "5x", "1e3", "s", ".", "5 weeks", " 5",
		"1..2", "5m", "99999999999999999999", "10000000000000d",
	};
	size_t i;
	int64_t v;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		v = -1;
		CHECK(config_parse_duration_us(ok[i].in, &v) == 0);
		if (v != ok[i].us)
			fprintf(stderr, "duration '%s' -> %lld, want %lld\n", ok[i].in,
				(long long)v, (long long)ok[i].us);
		CHECK(v == ok[i].us);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (config_parse_duration_us(bad[i], &v) != -EINVAL)
			fprintf(stderr, "duration '%s' accepted\n", bad[i]);
		CHECK(config_parse_duration_us(bad[i], &v) == -EINVAL);
	}
	CHECK(config_parse_duration_us(NULL, &v) == -EINVAL);
}

static void test_parse_bool(void)
{
	static const struct { const char *in; bool val; } ok[] = {
		{ "1", true }, { "on", true }, { "yes", true }, { "true", true },
		{ "ON", true }, { "True", true }, { "YES", true },
		{ "0", false }, { "off", false }, { "no", false }, { "false", false },
		{ "OFF", false }, { "False", false },
	};
	static const char *const bad[] = { "", "2", "y", "n", "enabled", "1 ", "tru" };
	size_t i;
	bool b;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		b = !ok[i].val;
		CHECK(config_parse_bool(ok[i].in, &b) == 0);
		CHECK(b == ok[i].val);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(config_parse_bool(bad[i], &b) == -EINVAL);
}

static void test_parse_int(void)
{
	static const struct { const char *in; int64_t min, max, want; int rc; } cases[] = {
		{ "42", 0, 100, 42, 0 },
		{ "0", 0, 100, 0, 0 },
		{ "100", 0, 100, 100, 0 },
		{ "-1", -1, 10, -1, 0 },
		{ "101", 0, 100, 0, -EINVAL },
		{ "-1", 0, 100, 0, -EINVAL },
		{ "", 0, 100, 0, -EINVAL },
		{ " 1", 0, 100, 0, -EINVAL },
		{ "1 ", 0, 100, 0, -EINVAL },
		{ "1x", 0, 100, 0, -EINVAL },
		{ "0x10", 0, 100, 0, -EINVAL },
		{ "99999999999999999999", 0, INT64_MAX, 0, -EINVAL },
	};
	size_t i;
	int64_t v;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		v = 12345;
		CHECK(config_parse_int(cases[i].in, cases[i].min, cases[i].max, &v) == cases[i].rc);
		if (cases[i].rc == 0)
			CHECK(v == cases[i].want);
	}
}

static void test_parse_enums(void)
{
	static const struct { const char *in; int want; } modes[] = {
		{ "session", POOL_MODE_SESSION },
		{ "transaction", POOL_MODE_TRANSACTION },
		{ "statement", POOL_MODE_STATEMENT },
		{ "Transaction", POOL_MODE_TRANSACTION },
		{ "bogus", -1 },
		{ "", -1 },
	};
	static const struct { const char *in; int want; } auths[] = {
		{ "trust", AUTH_TYPE_TRUST },
		{ "any", AUTH_TYPE_ANY },
		{ "plain", AUTH_TYPE_PLAIN },
		{ "password", AUTH_TYPE_PLAIN },
		{ "md5", AUTH_TYPE_MD5 },
		{ "MD5", AUTH_TYPE_MD5 },
		{ "scram-sha-256", AUTH_TYPE_SCRAM },
		{ "hba", AUTH_TYPE_HBA },
		{ "cert", AUTH_TYPE_CERT },
		{ "pam", -1 },
		{ "scram", -1 },
		{ "", -1 },
	};
	size_t i;
	int v;

	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		v = -2;
		if (modes[i].want < 0) {
			CHECK(config_parse_pool_mode(modes[i].in, &v) == -EINVAL);
		} else {
			CHECK(config_parse_pool_mode(modes[i].in, &v) == 0);
			CHECK(v == modes[i].want);
		}
	}
	for (i = 0; i < sizeof(auths) / sizeof(auths[0]); i++) {
		v = -2;
		if (auths[i].want < 0) {
			CHECK(config_parse_auth_type(auths[i].in, &v) == -EINVAL);
		} else {
			CHECK(config_parse_auth_type(auths[i].in, &v) == 0);
			CHECK(v == auths[i].want);
		}
	}
}

static void test_list_contains(void)
{
	static const struct { const char *list, *name; bool want; } cases[] = {
		{ "admin", "admin", true },
		{ "admin, stats ,ops", "stats", true },
		{ "admin, stats ,ops", "ops", true },
		{ " admin ,stats", "admin", true },
		{ "admin,stats", "adm", false },
		{ "admin,stats", "stats2", false },
		{ "admin,,stats", "", false },
		{ "", "admin", false },
		{ NULL, "admin", false },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK(config_list_contains(cases[i].list, cases[i].name) == cases[i].want);
}

/* ---- whole files ------------------------------------------------------- */

static void test_defaults(void)
{
	char authpath[512], ini[1024];
	struct config *cfg = NULL;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int want_workers = ncpu < 1 ? 1 : ncpu > 256 ? 256 : (int)ncpu;

	write_tmp("\"bob\" \"pw\"\n", authpath, sizeof(authpath));
	snprintf(ini, sizeof(ini), "[pgbouncer]\nauth_file = %s\n", authpath);
	CHECK(load_str(ini, &cfg) == 0);
	if (!cfg)
		return;
	CHECK_STR(cfg->path, last_path);
	CHECK(cfg->listen_addr == NULL);
	CHECK(cfg->listen_port == 6432);
	CHECK_STR(cfg->unix_socket_dir, "/tmp");
	CHECK(cfg->unix_socket_mode == 0777);
	CHECK(cfg->listen_backlog == 128);
	CHECK(cfg->auth_type == AUTH_TYPE_MD5);
	CHECK_STR(cfg->auth_file, authpath);
	CHECK(cfg->pool_mode == POOL_MODE_SESSION);
	CHECK(cfg->default_pool_size == 20);
	CHECK(cfg->min_pool_size == 0);
	CHECK(cfg->reserve_pool_size == 0);
	CHECK(cfg->reserve_pool_timeout_us == 5000000);
	CHECK(cfg->max_client_conn == 100);
	CHECK(cfg->max_db_connections == 0);
	CHECK(cfg->max_user_connections == 0);
	CHECK_STR(cfg->server_reset_query, "DISCARD ALL");
	CHECK(cfg->server_reset_query_always == false);
	CHECK_STR(cfg->server_check_query, "select 1");
	CHECK(cfg->server_check_delay_us == 30000000LL);
	CHECK(cfg->server_lifetime_us == 3600000000LL);
	CHECK(cfg->server_idle_timeout_us == 600000000LL);
	CHECK(cfg->server_connect_timeout_us == 15000000LL);
	CHECK(cfg->server_login_retry_us == 15000000LL);
	CHECK(cfg->client_login_timeout_us == 60000000LL);
	CHECK(cfg->query_wait_timeout_us == 120000000LL);
	CHECK(cfg->client_idle_timeout_us == 0);
	CHECK(cfg->idle_transaction_timeout_us == 0);
	CHECK(cfg->query_timeout_us == 0);
	CHECK(cfg->logfile == NULL);
	CHECK(cfg->pidfile == NULL);
	CHECK(cfg->admin_users == NULL);
	CHECK(cfg->stats_users == NULL);
	CHECK(cfg->ignore_startup_parameters == NULL);
	CHECK(cfg->workers == want_workers);
	CHECK(cfg->verbose == 0);
	CHECK(cfg->log_connections == true);
	CHECK(cfg->log_disconnections == true);
	CHECK(cfg->log_pooler_errors == true);
	CHECK(cfg->pkt_buf == 4096);
	CHECK(cfg->sbuf_high_watermark == 65536);
	CHECK(cfg->tcp_keepalive == true);
	CHECK(cfg->stats_period_us == 60000000LL);
	CHECK(cfg->n_databases == 0);
	CHECK(cfg->n_users == 0);
	CHECK(cfg->n_auth == 1);
	CHECK(n_warns == 0);
	config_free(cfg);
}

static void test_main_keys(void)
{
	static const char ini[] =
		"; a comment\n"
		"# another comment\n"
		"\n"
		"[sluice]\n"
		"listen_addr = 127.0.0.1, ::1\n"
		"listen_port=7432\n"
		"  unix_socket_dir =   \n"
		"unix_socket_mode = 0700\n"
		"listen_backlog = 512\n"
		"auth_type = any\n"
		"pool_mode = transaction\n"
		"default_pool_size = 50\n"
		"min_pool_size = 5\n"
		"reserve_pool_size = 3\n"
		"reserve_pool_timeout = 0.5\n"
		"max_client_conn = 5000\n"
		"max_db_connections = 80\n"
		"max_user_connections = 40\n"
		"server_reset_query = \n"
		"server_reset_query_always = yes\n"
		"server_check_query = SELECT 1; -- not a comment\n"
		"server_check_delay = 10\n"
		"server_lifetime = 1h\n"
		"server_idle_timeout = 0\n"
		"server_connect_timeout = 2500ms\n"
		"server_login_retry = 1\n"
		"client_login_timeout = 30s\n"
		"query_wait_timeout = 2min\n"
		"client_idle_timeout = 1d\n"
		"idle_transaction_timeout = 45\n"
		"query_timeout = 100us\n"
		"logfile = sluice.log\n"
		"pidfile = run/sluice.pid\n"
		"admin_users = admin, root\n"
		"stats_users = stats\n"
		"ignore_startup_parameters = extra_float_digits,options\n"
		"workers = 4\n"
		"verbose = 2\n"
		"log_connections = off\n"
		"log_disconnections = 0\n"
		"log_pooler_errors = false\n"
		"pkt_buf = 8192\n"
		"sbuf_high_watermark = 262144\n"
		"tcp_keepalive = no\n"
		"stats_period = 15\n"
		"LISTEN_BACKLOG = 1024\n"; /* keys are case-insensitive; last wins */
	struct config *cfg = NULL;

	CHECK(load_str(ini, &cfg) == 0);
	if (!cfg) {
		fprintf(stderr, "err: %s\n", err);
		return;
	}
	CHECK_STR(cfg->listen_addr, "127.0.0.1, ::1");
	CHECK(cfg->listen_port == 7432);
	CHECK_STR(cfg->unix_socket_dir, "");
	CHECK(cfg->unix_socket_mode == 0700);
	CHECK(cfg->listen_backlog == 1024);
	CHECK(cfg->auth_type == AUTH_TYPE_ANY);
	CHECK(cfg->auth_file == NULL);
	CHECK(cfg->pool_mode == POOL_MODE_TRANSACTION);
	CHECK(cfg->default_pool_size == 50);
	CHECK(cfg->min_pool_size == 5);
	CHECK(cfg->reserve_pool_size == 3);
	CHECK(cfg->reserve_pool_timeout_us == 500000);
	CHECK(cfg->max_client_conn == 5000);
	CHECK(cfg->max_db_connections == 80);
	CHECK(cfg->max_user_connections == 40);
	CHECK_STR(cfg->server_reset_query, "");
	CHECK(cfg->server_reset_query_always == true);
	CHECK_STR(cfg->server_check_query, "SELECT 1; -- not a comment");
	CHECK(cfg->server_check_delay_us == 10000000LL);
	CHECK(cfg->server_lifetime_us == 3600000000LL);
	CHECK(cfg->server_idle_timeout_us == 0);
	CHECK(cfg->server_connect_timeout_us == 2500000LL);
	CHECK(cfg->server_login_retry_us == 1000000LL);
	CHECK(cfg->client_login_timeout_us == 30000000LL);
	CHECK(cfg->query_wait_timeout_us == 120000000LL);
	CHECK(cfg->client_idle_timeout_us == 86400000000LL);
	CHECK(cfg->idle_transaction_timeout_us == 45000000LL);
	CHECK(cfg->query_timeout_us == 100);
	CHECK_STR(cfg->logfile, "sluice.log");
	CHECK_STR(cfg->pidfile, "run/sluice.pid");
	CHECK_STR(cfg->admin_users, "admin, root");
	CHECK(config_list_contains(cfg->admin_users, "root"));
	CHECK_STR(cfg->stats_users, "stats");
	CHECK_STR(cfg->ignore_startup_parameters, "extra_float_digits,options");
	CHECK(cfg->workers == 4);
	CHECK(cfg->verbose == 2);
	CHECK(cfg->log_connections == false);
	CHECK(cfg->log_disconnections == false);
	CHECK(cfg->log_pooler_errors == false);
	CHECK(cfg->pkt_buf == 8192);
	CHECK(cfg->sbuf_high_watermark == 262144);
	CHECK(cfg->tcp_keepalive == false);
	CHECK(cfg->stats_period_us == 15000000LL);
	CHECK(n_warns == 0);
	config_free(cfg);
}

/* application_name_add_host, disable_pqexec, query_wait_notify,
 * max_packet_size, server_round_robin, autodb_idle_timeout (issue 24):
 * PgBouncer's defaults, values, and bad values refused by name. */
static void test_client_keys(void)
{
	static const struct { const char *ini; const char *want; } bad[] = {
		{ "[sluice]\nauth_type=any\napplication_name_add_host = sometimes\n", "key 'application_name_add_host'" },
		{ "[sluice]\nauth_type=any\ndisable_pqexec = 2\n", "key 'disable_pqexec'" },
		{ "[sluice]\nauth_type=any\nserver_round_robin = yes please\n", "key 'server_round_robin'" },
		{ "[sluice]\nauth_type=any\nquery_wait_notify = -1\n", "key 'query_wait_notify'" },
		{ "[sluice]\nauth_type=any\nquery_wait_notify = soon\n", "key 'query_wait_notify'" },
		{ "[sluice]\nauth_type=any\nautodb_idle_timeout = 1x\n", "key 'autodb_idle_timeout'" },
		{ "[sluice]\nauth_type=any\nmax_packet_size = 0\n", "key 'max_packet_size'" },
		{ "[sluice]\nauth_type=any\nmax_packet_size = -5\n", "key 'max_packet_size'" },
		{ "[sluice]\nauth_type=any\nmax_packet_size = 2147483648\n", "key 'max_packet_size'" },
		{ "[sluice]\nauth_type=any\nmax_packet_size = 1k\n", "key 'max_packet_size'" },
	};
	struct config *cfg = NULL;

	CHECK(load_str("[sluice]\nauth_type=any\n", &cfg) == 0);
	CHECK(cfg && !cfg->application_name_add_host && !cfg->disable_pqexec && !cfg->server_round_robin);
	CHECK(cfg && cfg->query_wait_notify_us == 5000000LL);
	CHECK(cfg && cfg->autodb_idle_timeout_us == 3600000000LL);
	CHECK(cfg && cfg->max_packet_size == 2147483647);
	config_free(cfg);
	cfg = NULL;
	CHECK(load_str("[pgbouncer]\nauth_type=any\napplication_name_add_host = 1\ndisable_pqexec = on\n"
		       "server_round_robin = true\nquery_wait_notify = 0\nautodb_idle_timeout = 2.5\n"
		       "max_packet_size = 16384\n", &cfg) == 0);
	CHECK(cfg && cfg->application_name_add_host && cfg->disable_pqexec && cfg->server_round_robin);
	CHECK(cfg && cfg->query_wait_notify_us == 0);
	CHECK(cfg && cfg->autodb_idle_timeout_us == 2500000LL);
	CHECK(cfg && cfg->max_packet_size == 16384);
	CHECK(n_warns == 0);
	config_free(cfg);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg = NULL;
		CHECK(load_str(bad[i].ini, &cfg) == -EINVAL && !cfg);
		if (!strstr(err, bad[i].want)) {
			unit_failed++;
			fprintf(stderr, "%s:%d: case %zu: '%s' lacks '%s'\n", __FILE__, __LINE__, i, err, bad[i].want);
		}
	}
}

/* [sluice], [pgbouncer] and any capitalisation mean the same section. */
static void test_main_section_names(void)
{
	static const char *const headers[] = {
		"[sluice]", "[pgbouncer]", "[PgBouncer]", "[ SLUICE ]", "[pgbouncer] ; main",
	};
	char ini[256];
	struct config *cfg;
	size_t i;

	for (i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		cfg = NULL;
		snprintf(ini, sizeof(ini), "%s\nauth_type = any\nlisten_port = 6543\n", headers[i]);
		CHECK(load_str(ini, &cfg) == 0);
		CHECK(cfg && cfg->listen_port == 6543);
		config_free(cfg);
	}
}

static void test_databases(void)
{
	static const char ini[] =
		"[sluice]\n"
		"auth_type = any\n"
		"[databases]\n"
		"foodb =\n"
		"bardb = host=localhost dbname=bazdb\n"
		"forcedb = host = 10.0.0.1  port=6000 user=baz password='p a''ss' pool_size=7 "
		"min_pool_size=2 reserve_pool=4 pool_mode=statement max_db_connections=9 "
		"connect_query='SELECT set_config(''a'', ''b'', false)' application_name=app1\n"
		"newdb = reserve_pool_size=6 pool_mode=TRANSACTION host=/var/run/postgresql\n"
		"\"my db\" = dbname=real\n"
		"\"we\"\"ird\" = port=1\n"
		"olddb = port=1\n"
		"olddb = port=2\n"
		"encdb = client_encoding=UTF8 datestyle=ISO timezone=UTC auth_user=x frobnicate=1\n";
	const struct config_database *db;
	struct config *cfg = NULL;

	CHECK(load_str(ini, &cfg) == 0);
	if (!cfg) {
		fprintf(stderr, "err: %s\n", err);
		return;
	}
	CHECK(cfg->n_databases == 8);

	db = config_find_database(cfg, "foodb");
	CHECK(db != NULL);
	if (db) {
		CHECK_STR(db->name, "foodb");
		CHECK(db->host == NULL);
		CHECK(db->port == 5432);
		CHECK(db->dbname == NULL);
		CHECK(db->user == NULL);
		CHECK(db->password == NULL);
		CHECK(db->pool_size == -1);
		CHECK(db->min_pool_size == -1);
		CHECK(db->reserve_pool_size == -1);
		CHECK(db->pool_mode == -1);
		CHECK(db->max_db_connections == -1);
		CHECK(db->connect_query == NULL);
		CHECK(db->server_params[CONFIG_SP_APPLICATION_NAME] == NULL);
	}
	db = config_find_database(cfg, "bardb");
	CHECK(db && db->host && strcmp(db->host, "localhost") == 0);
	CHECK(db && db->dbname && strcmp(db->dbname, "bazdb") == 0);

	db = config_find_database(cfg, "forcedb");
	CHECK(db != NULL);
	if (db) {
		CHECK_STR(db->host, "10.0.0.1");
		CHECK(db->port == 6000);
		CHECK_STR(db->user, "baz");
		CHECK_STR(db->password, "p a'ss");
		CHECK(db->pool_size == 7);
		CHECK(db->min_pool_size == 2);
		CHECK(db->reserve_pool_size == 4);
		CHECK(db->pool_mode == POOL_MODE_STATEMENT);
		CHECK(db->max_db_connections == 9);
		CHECK_STR(db->connect_query, "SELECT set_config('a', 'b', false)");
		CHECK_STR(db->server_params[CONFIG_SP_APPLICATION_NAME], "app1");
	}
	db = config_find_database(cfg, "newdb");
	CHECK(db && db->reserve_pool_size == 6);
	CHECK(db && db->pool_mode == POOL_MODE_TRANSACTION);
	CHECK(db && db->host && strcmp(db->host, "/var/run/postgresql") == 0);

	db = config_find_database(cfg, "my db");
	CHECK(db && db->dbname && strcmp(db->dbname, "real") == 0);
	db = config_find_database(cfg, "we\"ird");
	CHECK(db && db->port == 1);

	/* A repeated name replaces the earlier entry and keeps one slot. */
	db = config_find_database(cfg, "olddb");
	CHECK(db && db->port == 2);

	/* Unknown connection parameters warn and are otherwise ignored. */
	db = config_find_database(cfg, "encdb");
	CHECK(db != NULL);
	CHECK(n_warns == 1);
	CHECK(db && db->server_params[CONFIG_SP_CLIENT_ENCODING] &&
	      strcmp(db->server_params[CONFIG_SP_CLIENT_ENCODING], "UTF8") == 0);
	CHECK(db && db->server_params[CONFIG_SP_DATESTYLE] && db->server_params[CONFIG_SP_TIMEZONE]);
	CHECK(db && db->auth_user && strcmp(db->auth_user, "x") == 0 && !db->auth_query);
	CHECK(any_warn_contains("unknown parameter 'frobnicate' ignored"));
	CHECK(any_warn_contains(":12: database 'encdb'"));

	CHECK(config_find_database(cfg, "nosuch") == NULL);
	CHECK(config_find_database(cfg, "FOODB") == NULL); /* names are exact */
	config_free(cfg);
}

static void test_fallback_database(void)
{
	static const char ini[] =
		"[databases]\n"
		"* = host=fallback.example port=5433\n"
		"exact = host=exact.example\n"
		"[pgbouncer]\n"
		"auth_type = any\n";
	const struct config_database *db;
	struct config *cfg = NULL;

	CHECK(load_str(ini, &cfg) == 0);
	if (!cfg)
		return;
	db = config_find_database(cfg, "exact");
	CHECK(db && strcmp(db->name, "exact") == 0);
	db = config_find_database(cfg, "anything");
	CHECK(db && strcmp(db->name, "*") == 0);
	CHECK(db && db->port == 5433);
	CHECK(db && db->dbname == NULL); /* client's database name is used */
	config_free(cfg);

	CHECK(load_str("[sluice]\nauth_type=any\n[databases]\nexact = host=x\n", &cfg) == 0);
	CHECK(config_find_database(cfg, "anything") == NULL);
	config_free(cfg);
}

static void test_users(void)
{
	static const char ini[] =
		"[sluice]\n"
		"auth_type = any\n"
		"[users]\n"
		"alice = pool_mode=transaction max_user_connections=10 pool_size=3\n"
		"bob =\n"
		"\"carol smith\" = pool_mode=session query_timeout=5 frob=1\n"
		"erin = reserve_pool_size=2 max_user_client_connections=7 query_wait_timeout=1.5 "
		"idle_transaction_timeout=-1 transaction_timeout=30 client_idle_timeout=0\n"
		"[databases]\n"
		"d1 = host=/tmp server_lifetime=60 query_wait_timeout=3 max_db_client_connections=9\n";
	const struct config_user *u;
	struct config *cfg = NULL;

	CHECK(load_str(ini, &cfg) == 0);
	if (!cfg)
		return;
	CHECK(cfg->n_users == 4);
	u = config_find_user(cfg, "alice");
	CHECK(u && u->pool_mode == POOL_MODE_TRANSACTION);
	CHECK(u && u->max_user_connections == 10);
	CHECK(u && u->pool_size == 3);
	u = config_find_user(cfg, "bob");
	CHECK(u && u->pool_mode == -1 && u->max_user_connections == -1 && u->pool_size == -1);
	u = config_find_user(cfg, "carol smith");
	CHECK(u && u->pool_mode == POOL_MODE_SESSION);
	CHECK(u && u->t.query_timeout_us == 5000000 && u->t.query_wait_timeout_us == -1);
	u = config_find_user(cfg, "erin");
	CHECK(u && u->reserve_pool_size == 2 && u->max_user_client_connections == 7);
	CHECK(u && u->t.query_wait_timeout_us == 1500000 && u->t.idle_transaction_timeout_us == -1);
	CHECK(u && u->t.transaction_timeout_us == 30000000 && u->t.client_idle_timeout_us == 0);
	CHECK(u && u->t.server_lifetime_us == -1 && u->t.query_timeout_us == -1);
	const struct config_database *d = config_find_database(cfg, "d1");
	CHECK(d && d->t.server_lifetime_us == 60000000 && d->t.query_wait_timeout_us == 3000000);
	CHECK(d && d->max_db_client_connections == 9 && d->t.query_timeout_us == -1);
	CHECK(config_find_user(cfg, "dave") == NULL);
	CHECK(any_warn_contains("user 'carol smith': unknown parameter 'frob' ignored"));
	config_free(cfg);
}

/* Settings that only make sense together are checked after the file. */
static void test_tls_auth_dependencies(void)
{
	static const struct { const char *ini; const char *want; } cases[] = {
		{ "[sluice]\nauth_type = hba\n", "'hba' needs auth_hba_file" },
		{ "[sluice]\nauth_type = any\nclient_tls_sslmode = require\n", "needs client_tls_cert_file and client_tls_key_file" },
		{ "[sluice]\nauth_type = cert\nclient_tls_sslmode = require\nclient_tls_cert_file = a\nclient_tls_key_file = b\n",
		  "need client_tls_ca_file" },
		{ "[sluice]\nauth_type = cert\nclient_tls_ca_file = c\n", "'cert' needs client_tls_sslmode other than disable" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config *cfg = NULL;
		CHECK(load_str(cases[i].ini, &cfg) == -EINVAL);
		CHECK(cfg == NULL);
		if (!strstr(err, cases[i].want))
			fprintf(stderr, "tls/auth case %zu: err='%s' want '%s'\n", i, err, cases[i].want);
		CHECK(strstr(err, cases[i].want) != NULL);
	}
}

/* Host lists and load_balance_hosts (PgBouncer 1.24). */
static void test_host_lists(void)
{
	struct config *cfg = NULL;
	CHECK(load_str("[sluice]\nauth_type=any\n[databases]\n"
		       "a = host=h1,h2,/tmp port=5001,5002,5003 load_balance_hosts=disable\n"
		       "b = host=h1,h2 port=6000\n", &cfg) == 0);
	const struct config_database *d = cfg ? config_find_database(cfg, "a") : NULL;
	CHECK(d && config_database_hosts(d) == 3 && d->n_ports == 3 && d->ports[2] == 5003 && d->port == 5001 &&
	      d->lb_disable);
	d = cfg ? config_find_database(cfg, "b") : NULL;
	CHECK(d && config_database_hosts(d) == 2 && d->n_ports == 1 && d->port == 6000 && !d->lb_disable);
	CHECK(n_warns == 0);
	config_free(cfg);
	static const char *const bad[] = {
		"[databases]\na = host=h1,h2,h3 port=1,2\n",
		"[databases]\na = host=h1 port=1,x\n",
		"[databases]\na = host=h1 load_balance_hosts=random\n",
		"[databases]\na = host=a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg = NULL;
		CHECK(load_str(bad[i], &cfg) < 0 && !cfg && err[0]);
	}
}

/* peer_id and [peers] (PgBouncer 1.19's cancel forwarding). */
static void test_peers(void)
{
	struct config *cfg = NULL;
	CHECK(load_str("[sluice]\nauth_type=any\npeer_id = 2\nso_reuseport = 1\n[peers]\n"
		       "1 = host=127.0.0.1 port=7001 pool_size=3\n2 = host=/tmp/b\n1 = host=::1\n", &cfg) == 0);
	CHECK(cfg && cfg->peer_id == 2 && cfg->so_reuseport && cfg->n_peers == 2);
	/* a repeated id replaces the earlier line */
	CHECK(cfg && cfg->n_peers == 2 && strcmp(cfg->peers[0].host, "::1") == 0 && cfg->peers[0].port == 6432);
	CHECK(n_warns == 0);
	config_free(cfg);
	static const char *const bad[] = {
		"[sluice]\npeer_id = 16384\n",
		"[peers]\n0 = host=/tmp/a\n",
		"[peers]\n16384 = host=/tmp/a\n",
		"[peers]\nx1 = host=/tmp/a\n",
		"[peers]\n1 = port=7000\n",
		"[peers]\n1 = host=/tmp/a port=0\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg = NULL;
		CHECK(load_str(bad[i], &cfg) < 0 && !cfg && err[0]);
	}
	CHECK(load_str("[peers]\n1 = port=7000\n", &cfg) < 0 && strstr(err, "peer 1: host is required"));
}

static void test_warnings(void)
{
	static const char ini[] =
		"[pgbouncer]\n"
		"auth_type = any\n"
		"frobnicate = 1\n"
		"dns_max_ttl = 1\n"
		"Max_Prepared_Statements = 100\n"
		"listen_port = 7000\n"
		"[peers]\n"
		"1 = host=/tmp/a frob=1\n"
		"[whatever]\n"
		"x = y\n";
	char want[700];
	struct config *cfg = NULL;

	CHECK(load_str(ini, &cfg) == 0);
	CHECK(cfg && cfg->listen_port == 7000);
	/* max_prepared_statements is implemented: a value, no warning. */
	CHECK(cfg && cfg->max_prepared_statements == 100);
	CHECK(n_warns == 4);
	snprintf(want, sizeof(want), "%s:3: unknown key 'frobnicate' ignored", last_path);
	CHECK(n_warns > 0 && strcmp(warns[0], want) == 0);
	snprintf(want, sizeof(want), "%s:4: key 'dns_max_ttl' is not supported by sluice yet, ignored", last_path);
	CHECK(n_warns > 1 && strcmp(warns[1], want) == 0);
	CHECK(!any_warn_contains("Max_Prepared_Statements"));
	CHECK(any_warn_contains(":8: peer 1: unknown parameter 'frob' ignored"));
	CHECK(cfg && cfg->n_peers == 1 && cfg->peers[0].id == 1 && strcmp(cfg->peers[0].host, "/tmp/a") == 0 &&
	      cfg->peers[0].port == 6432 && cfg->peers[0].pool_size == -1);
	CHECK(any_warn_contains(":9: unknown section [whatever] ignored"));
	config_free(cfg);

	/* A NULL warn_cb is allowed. */
	write_tmp(ini, last_path, sizeof(last_path));
	cfg = NULL;
	CHECK(config_load(last_path, &cfg, err, sizeof(err), NULL) == 0);
	config_free(cfg);
}

/*
 * Every key of PgBouncer 1.25's [pgbouncer] section is either implemented
 * (config_key_known) or warned about by name as not supported; none may
 * fall through to "unknown key". Likewise every 1.25 [databases] and
 * [users] parameter is implemented or named as not supported, and [peers]
 * gets one warning. Table: docs/config.md, "PgBouncer 1.25 keys".
 */
static const char *const pgbouncer_125_main_keys[] = {
	"admin_users", "application_name_add_host", "auth_dbname", "auth_file",
	"auth_hba_file", "auth_ident_file", "auth_ldap_options", "auth_query",
	"auth_type", "auth_user", "autodb_idle_timeout", "cancel_wait_timeout",
	"client_idle_timeout", "client_login_timeout", "client_tls13_ciphers",
	"client_tls_ca_file", "client_tls_cert_file", "client_tls_ciphers",
	"client_tls_dheparams", "client_tls_ecdhcurve", "client_tls_key_file",
	"client_tls_protocols", "client_tls_sslmode", "conffile",
	"default_pool_size", "disable_pqexec", "dns_max_ttl", "dns_nxdomain_ttl",
	"dns_zone_check_period", "idle_transaction_timeout",
	"ignore_startup_parameters", "job_name", "listen_addr", "listen_backlog",
	"listen_port", "log_connections", "log_disconnections",
	"log_pooler_errors", "log_stats", "logfile", "max_client_conn",
	"max_db_client_connections", "max_db_connections", "max_packet_size",
	"max_prepared_statements", "max_user_client_connections",
	"max_user_connections", "min_pool_size", "peer_id", "pidfile", "pkt_buf",
	"pool_mode", "query_timeout", "query_wait_notify", "query_wait_timeout",
	"reserve_pool_size", "reserve_pool_timeout", "resolv_conf",
	"sbuf_loopcnt", "scram_iterations", "server_check_delay",
	"server_check_query", "server_connect_timeout", "server_fast_close",
	"server_idle_timeout", "server_lifetime", "server_login_retry",
	"server_reset_query", "server_reset_query_always", "server_round_robin",
	"server_tls13_ciphers", "server_tls_ca_file", "server_tls_cert_file",
	"server_tls_ciphers", "server_tls_key_file", "server_tls_protocols",
	"server_tls_sslmode", "service_name", "so_reuseport", "stats_period",
	"stats_users", "suspend_timeout", "syslog", "syslog_facility",
	"syslog_ident", "tcp_defer_accept", "tcp_keepalive", "tcp_keepcnt",
	"tcp_keepidle", "tcp_keepintvl", "tcp_socket_buffer", "tcp_user_timeout",
	"track_extra_parameters", "transaction_timeout", "unix_socket_dir",
	"unix_socket_group", "unix_socket_mode", "user", "verbose",
};

/* PgBouncer 1.25 [databases] parameters, each with a value sluice accepts
 * if it implements the parameter. */
static const char *const pgbouncer_125_db_params[][2] = {
	{ "dbname", "x" }, { "host", "/tmp" }, { "port", "5432" },
	{ "user", "u" }, { "password", "p" }, { "auth_user", "a" },
	{ "auth_query", "'select 1'" }, { "auth_dbname", "x" },
	{ "pool_size", "1" }, { "min_pool_size", "0" }, { "reserve_pool", "1" },
	{ "reserve_pool_size", "1" }, { "connect_query", "'select 1'" },
	{ "pool_mode", "session" }, { "max_db_connections", "1" },
	{ "max_db_client_connections", "1" }, { "server_lifetime", "10" },
	{ "client_encoding", "UTF8" }, { "datestyle", "ISO" },
	{ "timezone", "UTC" }, { "load_balance_hosts", "round-robin" },
	{ "application_name", "app" },
};

/* All of PgBouncer 1.25's [users] parameters are implemented. */
static const char *const pgbouncer_125_user_params[][2] = {
	{ "pool_size", "1" }, { "reserve_pool_size", "1" },
	{ "pool_mode", "session" }, { "max_user_connections", "1" },
	{ "query_timeout", "1" }, { "idle_transaction_timeout", "1" },
	{ "transaction_timeout", "1" }, { "client_idle_timeout", "1" },
	{ "max_user_client_connections", "1" },
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static void test_pgbouncer_125_keys(void)
{
	char ini[8192], want[700];
	int line_of[N_OF(pgbouncer_125_main_keys)];
	int db_line_of[N_OF(pgbouncer_125_db_params)];
	size_t i, len = 0;
	int line = 3, n_unsupported = 0, n_db_unsupported = 0, peers_line;
	struct config *cfg = NULL;

	/* auth_type = any: no auth_file needed for a load that only looks at keys. */
	len += (size_t)snprintf(ini + len, sizeof(ini) - len, "[pgbouncer]\nauth_type = any\n");
	for (i = 0; i < N_OF(pgbouncer_125_main_keys); i++) {
		line_of[i] = 0;
		if (config_key_known(pgbouncer_125_main_keys[i]))
			continue;
		len += (size_t)snprintf(ini + len, sizeof(ini) - len, "%s = 1\n", pgbouncer_125_main_keys[i]);
		line_of[i] = line++;
		n_unsupported++;
	}
	len += (size_t)snprintf(ini + len, sizeof(ini) - len, "[databases]\n");
	line++;
	for (i = 0; i < N_OF(pgbouncer_125_db_params); i++) {
		len += (size_t)snprintf(ini + len, sizeof(ini) - len, "d%zu = %s=%s\n", i,
					pgbouncer_125_db_params[i][0], pgbouncer_125_db_params[i][1]);
		db_line_of[i] = line++;
	}
	len += (size_t)snprintf(ini + len, sizeof(ini) - len, "[users]\n");
	line++;
	for (i = 0; i < N_OF(pgbouncer_125_user_params); i++) {
		len += (size_t)snprintf(ini + len, sizeof(ini) - len, "u%zu = %s=%s\n", i,
					pgbouncer_125_user_params[i][0], pgbouncer_125_user_params[i][1]);
		line++;
	}
	peers_line = line;
	len += (size_t)snprintf(ini + len, sizeof(ini) - len, "[peers]\n1 = host=/tmp/a port=6432 pool_size=2\n");
	CHECK(len < sizeof(ini));

	CHECK(load_str(ini, &cfg) == 0);
	if (!cfg)
		fprintf(stderr, "test_pgbouncer_125_keys: %s\n", err);
	config_free(cfg);

	/* Each main key sluice lacks: the "not supported" warning, on its line. */
	for (i = 0; i < N_OF(pgbouncer_125_main_keys); i++) {
		if (!line_of[i])
			continue;
		snprintf(want, sizeof(want), "%s:%d: key '%s' is not supported by sluice yet, ignored",
			 last_path, line_of[i], pgbouncer_125_main_keys[i]);
		if (!any_warn_contains(want)) {
			unit_failed++;
			fprintf(stderr, "%s:%d: no warning '%s'\n", __FILE__, __LINE__, want);
		}
	}
	/* A [databases] parameter either loads silently or is named as not supported. */
	for (i = 0; i < N_OF(pgbouncer_125_db_params); i++) {
		snprintf(want, sizeof(want), "%s:%d: database 'd%zu': parameter '%s' is not supported by sluice yet, ignored",
			 last_path, db_line_of[i], i, pgbouncer_125_db_params[i][0]);
		if (any_warn_contains(want))
			n_db_unsupported++;
	}
	CHECK(!any_warn_contains("unknown"));
	(void)peers_line; /* [peers] is implemented: no warning */
	/* Nothing else: no [users] or [peers] warning, one per unsupported key. */
	CHECK(n_warns == n_unsupported + n_db_unsupported);
	/* Today: load_balance_hosts is the one 1.25 [databases] parameter sluice lacks. */
	CHECK(n_db_unsupported <= 1);
	CHECK(n_unsupported > 0 && n_unsupported < MAX_WARNS - 2);
}

static void test_include(void)
{
	char main_path[512], sub_dir[512], inc1[512], inc2[512], ini[1024];
	struct config *cfg = NULL;

	/* main.ini -> sub/one.ini (relative to main.ini) -> two.ini
	 * (relative to sub/one.ini, i.e. sub/two.ini). */
	tmp_named("sub", sub_dir, sizeof(sub_dir));
	CHECK(mkdir(sub_dir, 0700) == 0);
	tmp_named("sub/one.ini", inc1, sizeof(inc1));
	tmp_named("sub/two.ini", inc2, sizeof(inc2));
	write_all(inc1, "[databases]\nincdb = port=1111\n%include two.ini\n");
	write_all(inc2, "[users]\nincuser = pool_size=2\n");
	tmp_named("main.ini", main_path, sizeof(main_path));
	write_all(main_path, "[sluice]\nauth_type = any\n%include sub/one.ini\nmaindb = port=2222\n");
	err[0] = '\0';
	CHECK(config_load(main_path, &cfg, err, sizeof(err), NULL) == 0);
	if (!cfg)
		fprintf(stderr, "err: %s\n", err);
	/* The section set inside the include carries on after it, so maindb
	 * lands in [users] here, as with PgBouncer's reader. */
	CHECK(cfg && config_find_database(cfg, "incdb") && config_find_database(cfg, "incdb")->port == 1111);
	CHECK(cfg && config_find_user(cfg, "incuser") != NULL);
	CHECK(cfg && config_find_user(cfg, "maindb") != NULL);
	config_free(cfg);

	/* Absolute include path. */
	snprintf(ini, sizeof(ini), "[sluice]\nauth_type = any\n%%include %s\n", inc1);
	CHECK(load_str(ini, &cfg) == 0);
	CHECK(cfg && config_find_database(cfg, "incdb") != NULL);
	config_free(cfg);

	/* An error inside an included file names that file and its line. */
	write_all(inc2, "[users]\nbad = pool_size=many\n");
	CHECK(config_load(main_path, &cfg, err, sizeof(err), NULL) == -EINVAL);
	snprintf(ini, sizeof(ini), "%s:2: key 'bad'", inc2);
	CHECK(starts_with(err, ini));
	CHECK(strstr(err, "pool_size") != NULL);

	/* Missing include: error at the %include line of the includer. */
	write_all(inc1, "[databases]\n%include nothere.ini\n");
	CHECK(config_load(main_path, &cfg, err, sizeof(err), NULL) == -ENOENT);
	snprintf(ini, sizeof(ini), "%s:2: %%include '%s/sub/nothere.ini': cannot open: %s",
		 inc1, tmpdir, strerror(ENOENT));
	CHECK_STR(err, ini);

	/* A file including itself is stopped by the depth bound. */
	write_all(inc1, "%include one.ini\n");
	CHECK(config_load(main_path, &cfg, err, sizeof(err), NULL) == -EINVAL);
	CHECK(strstr(err, "nested too deeply") != NULL);
	CHECK(cfg == NULL);

	unlink(inc1);
	unlink(inc2);
	unlink(main_path);
	rmdir(sub_dir);
}

/* One table row: file content, expected line, text that must be in err,
 * and text that must not be (a secret). */
struct error_case {
	const char *ini;
	int line;
	const char *want;
	const char *secret;
};

static void test_errors(void)
{
	static const struct error_case cases[] = {
		{ "[sluice]\nlisten_port = abc\n", 2, "key 'listen_port'", NULL },
		{ "[sluice]\nlisten_port = 70000\n", 2, "key 'listen_port'", NULL },
		{ "[sluice]\nlisten_port =\n", 2, "key 'listen_port'", NULL },
		{ "[sluice]\nmax_client_conn = 12x\n", 2, "key 'max_client_conn'", NULL },
		{ "[sluice]\npool_mode = bogus\n", 2, "key 'pool_mode'", NULL },
		{ "[sluice]\nauth_type = pam\n", 2, "key 'auth_type': auth_type 'pam' is not supported by sluice yet", NULL },
		{ "[users]\nu1 = query_timeout=soon\n", 2, "key 'u1': parameter 'query_timeout': 'soon' is not a duration", NULL },
		{ "[databases]\nd1 = server_lifetime=1x\n", 2, "key 'd1': parameter 'server_lifetime': '1x' is not a duration", NULL },
		{ "[sluice]\nauth_type = ldap\n", 2, "key 'auth_type': auth_type 'ldap' is not supported by sluice yet", NULL },
		{ "[sluice]\nclient_tls_sslmode = sometimes\n", 2, "key 'client_tls_sslmode': 'sometimes' is not an sslmode", NULL },
		{ "[sluice]\nauth_type = kerberos\n", 2, "key 'auth_type'", NULL },
		{ "[sluice]\nworkers = 0\n", 2, "key 'workers'", NULL },
		{ "[sluice]\nworkers = 257\n", 2, "key 'workers'", NULL },
		{ "[sluice]\nlog_connections = maybe\n", 2, "key 'log_connections'", NULL },
		{ "[sluice]\nserver_lifetime = 5 weeks\n", 2, "key 'server_lifetime'", NULL },
		{ "[sluice]\nquery_timeout = -1\n", 2, "key 'query_timeout'", NULL },
		{ "[sluice]\nunix_socket_mode = 0999\n", 2, "key 'unix_socket_mode'", NULL },
		{ "[sluice]\npkt_buf = 512\n", 2, "key 'pkt_buf'", NULL },
		{ "[sluice]\nstats_period = 0\n", 2, "key 'stats_period'", NULL },
		{ "[sluice]\n\nlisten_port 6432\n", 3, "key 'listen_port': malformed line", NULL },
		{ "[sluice]\nhunter2\n", 2, "malformed line", "hunter2" },
		{ "[sluice]\n= 5\n", 2, "empty key", NULL },
		{ "listen_port = 1\n", 1, "key 'listen_port': not inside any section", NULL },
		{ "[sluice\n", 1, "section header", NULL },
		{ "[sluice] junk\n", 1, "section header", NULL },
		{ "%frobnicate x\n", 1, "directive", NULL },
		{ "%include\n", 1, "%include", NULL },
		{ "[databases]\n\"unterminated = port=1\n", 2, "unterminated", NULL },
		{ "[databases]\n\"db\" port=1\n", 2, "key 'db'", NULL },
		{ "[databases]\ndb = host=x password='hunter2\n", 2, "key 'db': parameter 'password': unterminated quote", "hunter2" },
		{ "[databases]\ndb = password='hunter2'port=1\n", 2, "key 'db': parameter 'password'", "hunter2" },
		{ "[databases]\ndb = port=abc\n", 2, "key 'db': parameter 'port'", NULL },
		{ "[databases]\ndb = port=0\n", 2, "key 'db': parameter 'port'", NULL },
		{ "[databases]\ndb = pool_size=-1\n", 2, "key 'db': parameter 'pool_size'", NULL },
		{ "[databases]\ndb = reserve_pool=x\n", 2, "key 'db': parameter 'reserve_pool_size'", NULL },
		{ "[databases]\ndb = pool_mode=fast\n", 2, "key 'db': parameter 'pool_mode'", NULL },
		{ "[databases]\ndb = host\n", 2, "key 'db': parameter 'host' has no '=value'", NULL },
		{ "[databases]\ndb = =x\n", 2, "key 'db'", NULL },
		{ "[databases]\ndb = host=x hunter2\n", 2, "key 'db': connection string has a word without '=value'", "hunter2" },
		{ "[databases]\npgbouncer = host=x\n", 2, "key 'pgbouncer': database name is reserved", NULL },
		{ "[users]\nbob = pool_mode=x\n", 2, "key 'bob': parameter 'pool_mode'", NULL },
		{ "[users]\nbob = max_user_connections=lots\n", 2, "key 'bob': parameter 'max_user_connections'", NULL },
	};
	char prefix[600];
	struct config *cfg;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cfg = (struct config *)1; /* must be reset to NULL on failure */
		rc = load_str(cases[i].ini, &cfg);
		snprintf(prefix, sizeof(prefix), "%s:%d: ", last_path, cases[i].line);
		if (rc != -EINVAL || !starts_with(err, prefix) || !strstr(err, cases[i].want) ||
		    (cases[i].secret && strstr(err, cases[i].secret)))
			fprintf(stderr, "error case %zu: rc=%d err='%s' want '%s...%s'\n",
				i, rc, err, prefix, cases[i].want);
		CHECK(rc == -EINVAL);
		CHECK(cfg == NULL);
		CHECK(starts_with(err, prefix));
		CHECK(strstr(err, cases[i].want) != NULL);
		if (cases[i].secret)
			CHECK(strstr(err, cases[i].secret) == NULL);
		CHECK(strchr(err, '\n') == NULL);
	}
}

static void test_missing_file(void)
{
	char path[600], want[800];
	struct config *cfg = (struct config *)1;

	snprintf(path, sizeof(path), "%s/does-not-exist.ini", tmpdir);
	CHECK(config_load(path, &cfg, err, sizeof(err), warn_cb) == -ENOENT);
	CHECK(cfg == NULL);
	snprintf(want, sizeof(want), "%s: cannot open: %s", path, strerror(ENOENT));
	CHECK_STR(err, want);

	/* A tiny or absent error buffer must not be overrun. */
	CHECK(config_load(path, &cfg, err, 1, NULL) == -ENOENT);
	CHECK(err[0] == '\0');
	CHECK(config_load(path, &cfg, NULL, 0, NULL) == -ENOENT);
}

static void test_auth_file(void)
{
	static const char userlist[] =
		"; comment\n"
		"# another\n"
		"\n"
		"\"alice\" \"plainpw\"\n"
		"  \"bob\"   \"md545f2603610af569b6155c45067268c6b\" \"trailing\" junk\n"
		"\"we\"\"ird\" \"pa\"\"ss\"\"\"\n"
		"\"scram\" \"SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy\"\n"
		"\"empty\" \"\"\n"
		"\"alice\" \"newer\"\r\n";
	char authpath[512], ini[1024];
	struct config *cfg = NULL;

	write_tmp(userlist, authpath, sizeof(authpath));
	snprintf(ini, sizeof(ini), "[sluice]\nauth_type = scram-sha-256\nauth_file = %s\n", authpath);
	CHECK(load_str(ini, &cfg) == 0);
	if (!cfg) {
		fprintf(stderr, "err: %s\n", err);
		return;
	}
	CHECK(cfg->auth_type == AUTH_TYPE_SCRAM);
	CHECK(cfg->n_auth == 6);
	CHECK_STR(config_find_secret(cfg, "alice"), "newer"); /* later line wins */
	CHECK_STR(config_find_secret(cfg, "bob"), "md545f2603610af569b6155c45067268c6b");
	CHECK_STR(config_find_secret(cfg, "we\"ird"), "pa\"ss\"");
	CHECK_STR(config_find_secret(cfg, "scram"), "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy");
	CHECK_STR(config_find_secret(cfg, "empty"), "");
	CHECK(config_find_secret(cfg, "nobody") == NULL);
	config_free(cfg);

	/* Every auth type but "any" needs an auth_file. */
	static const char *const need[] = { "trust", "plain", "password", "md5", "scram-sha-256" };
	size_t i;
	for (i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		snprintf(ini, sizeof(ini), "[sluice]\nauth_type = %s\n", need[i]);
		CHECK(load_str(ini, &cfg) == -EINVAL);
		CHECK(cfg == NULL);
		CHECK(starts_with(err, last_path));
		CHECK(strstr(err, "key 'auth_type'") && strstr(err, "auth_file"));
	}

	/* auth_file named but absent. */
	snprintf(ini, sizeof(ini), "[sluice]\nauth_file = %s/no-such-userlist.txt\n", tmpdir);
	CHECK(load_str(ini, &cfg) == -ENOENT);
	CHECK(strstr(err, "no-such-userlist.txt: cannot open auth_file") != NULL);

	/* Malformed lines name the auth file and line, never the secret. */
	static const struct { const char *text; int line; } bad[] = {
		{ "\"alice\" \"pw\"\nalice hunter2\n", 2 },
		{ "\"alice\"\n", 1 },
		{ "\"alice\" hunter2\n", 1 },
		{ "\n\n\"alice\" \"hunter2\n", 3 },
		{ "\"alice \"hunter2\"\n", 1 },
	};
	char prefix[600];
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_all(authpath, bad[i].text);
		snprintf(ini, sizeof(ini), "[sluice]\nauth_file = %s\n", authpath);
		CHECK(load_str(ini, &cfg) == -EINVAL);
		CHECK(cfg == NULL);
		snprintf(prefix, sizeof(prefix), "%s:%d: ", authpath, bad[i].line);
		if (!starts_with(err, prefix))
			fprintf(stderr, "auth case %zu: err='%s'\n", i, err);
		CHECK(starts_with(err, prefix));
		CHECK(strstr(err, "hunter2") == NULL);
	}
}

/* A relative auth_file is opened relative to the current directory. */
static void test_auth_file_relative(void)
{
	char cwd[1024], authpath[512];
	struct config *cfg = NULL;

	CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	tmp_named("rel-userlist.txt", authpath, sizeof(authpath));
	write_all(authpath, "\"rel\" \"pw\"\n");
	CHECK(chdir(tmpdir) == 0);
	CHECK(load_str("[sluice]\nauth_file = rel-userlist.txt\n", &cfg) == 0);
	CHECK(cfg && config_find_secret(cfg, "rel") != NULL);
	config_free(cfg);
	CHECK(chdir(cwd) == 0);
	unlink(authpath);
}

static void test_long_lines_and_line_endings(void)
{
	size_t qlen = 20000, i;
	char *ini = malloc(qlen + 256), *q;
	struct config *cfg = NULL;
	const struct config_database *db;

	if (!ini)
		return;
	/* BOM, CRLF endings, and a 20 kB connect_query. */
	strcpy(ini, "\xEF\xBB\xBF[sluice]\r\nauth_type = any\r\nlisten_port = 7777\r\n[databases]\r\nbig = connect_query='");
	q = ini + strlen(ini);
	for (i = 0; i < qlen; i++)
		*q++ = (char)('a' + i % 26);
	strcpy(q, "' port=1234\r\n");
	CHECK(load_str(ini, &cfg) == 0);
	if (!cfg)
		fprintf(stderr, "err: %s\n", err);
	CHECK(cfg && cfg->listen_port == 7777);
	db = cfg ? config_find_database(cfg, "big") : NULL;
	CHECK(db && db->connect_query && strlen(db->connect_query) == qlen);
	CHECK(db && db->port == 1234);
	config_free(cfg);
	free(ini);
}

/* Network, TLS, SCRAM and cancel keys of PgBouncer 1.25 (issue 24):
 * defaults, values, bad values. TLS values are checked by tls.c when the
 * contexts are built (e2e: tests/e2e/test_keys_net.py). */
static void test_net_tls_keys(void)
{
	static const char ini[] =
		"[pgbouncer]\nauth_type = any\n"
		"tcp_defer_accept = 1\ntcp_socket_buffer = 65536\n"
		"unix_socket_group = postgres\n"
		"client_tls13_ciphers = TLS_AES_128_GCM_SHA256\n"
		"server_tls13_ciphers = TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256\n"
		"client_tls_ecdhcurve = secp384r1\nclient_tls_dheparams = none\n"
		"scram_iterations = 10000\ncancel_wait_timeout = 2.5\n";
	static const struct { const char *line, *key; } bad[] = {
		{ "tcp_defer_accept = -1", "tcp_defer_accept" },
		{ "tcp_socket_buffer = lots", "tcp_socket_buffer" },
		{ "tcp_socket_buffer = -4096", "tcp_socket_buffer" },
		{ "scram_iterations = 0", "scram_iterations" },
		{ "scram_iterations = 10000001", "scram_iterations" },
		{ "cancel_wait_timeout = -1", "cancel_wait_timeout" },
		{ "cancel_wait_timeout = soon", "cancel_wait_timeout" },
	};
	struct config *cfg = config_defaults();
	char text[256];

	CHECK(cfg && cfg->tcp_defer_accept == 0 && cfg->tcp_socket_buffer == 0);
	CHECK(cfg && cfg->unix_socket_group == NULL);
	CHECK(cfg && !cfg->client_tls13_ciphers && !cfg->server_tls13_ciphers);
	CHECK_STR(cfg ? cfg->client_tls_ecdhcurve : NULL, "auto");
	CHECK_STR(cfg ? cfg->client_tls_dheparams : NULL, "auto");
	CHECK(cfg && cfg->scram_iterations == 4096);
	CHECK(cfg && cfg->cancel_wait_timeout_us == 10000000LL);
	config_free(cfg);
	CHECK(config_key_needs_restart("tcp_defer_accept"));
	CHECK(config_key_needs_restart("unix_socket_group"));
	CHECK(!config_key_needs_restart("tcp_socket_buffer"));

	cfg = NULL;
	CHECK(load_str(ini, &cfg) == 0);
	if (!cfg) {
		fprintf(stderr, "test_net_tls_keys: %s\n", err);
		return;
	}
	CHECK(n_warns == 0);
	CHECK(cfg->tcp_defer_accept == 1 && cfg->tcp_socket_buffer == 65536);
	CHECK_STR(cfg->unix_socket_group, "postgres");
	CHECK_STR(cfg->client_tls13_ciphers, "TLS_AES_128_GCM_SHA256");
	CHECK_STR(cfg->server_tls13_ciphers, "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
	CHECK_STR(cfg->client_tls_ecdhcurve, "secp384r1");
	CHECK_STR(cfg->client_tls_dheparams, "none");
	CHECK(cfg->scram_iterations == 10000);
	CHECK(cfg->cancel_wait_timeout_us == 2500000LL);
	config_free(cfg);

	/* 0 turns cancel_wait_timeout off; empty values keep OpenSSL's choice. */
	cfg = NULL;
	CHECK(load_str("[sluice]\nauth_type = any\ncancel_wait_timeout = 0\n"
		       "client_tls13_ciphers =\nunix_socket_group =\n", &cfg) == 0);
	CHECK(cfg && cfg->cancel_wait_timeout_us == 0 && !cfg->client_tls13_ciphers &&
	      !cfg->unix_socket_group);
	config_free(cfg);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char want[128];
		snprintf(text, sizeof(text), "[sluice]\nauth_type = any\n%s\n", bad[i].line);
		snprintf(want, sizeof(want), ":3: key '%s'", bad[i].key);
		cfg = NULL;
		CHECK(load_str(text, &cfg) == -EINVAL && cfg == NULL);
		if (!strstr(err, want))
			fprintf(stderr, "bad case '%s': err '%s'\n", bad[i].line, err);
		CHECK(strstr(err, want) != NULL);
	}
}

static void test_misc(void)
{
	config_free(NULL);
	CHECK(config_find_database(NULL, "x") == NULL);
	CHECK(config_find_user(NULL, "x") == NULL);
	CHECK(config_find_secret(NULL, "x") == NULL);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* protocol = mysql entries, their default port, and the MySQL listener keys. */
static void test_mysql_keys(void)
{
	struct config *cfg = NULL;
	const char *ini = "[databases]\n"
			  "pgdb = host=127.0.0.1\n"
			  "mydb = host=127.0.0.1 protocol=mysql dbname=shop\n"
			  "mydb2 = host=127.0.0.1 port=3307 protocol=MariaDB\n"
			  "[sluice]\nauth_type=any\nmysql_listen_port=3306\n";
	CHECK(load_str(ini, &cfg) == 0);
	if (cfg) {
		CHECK(cfg->mysql_listen_port == 3306);
		CHECK(cfg->mysql_listen_addr == NULL);
		CHECK(strcmp(cfg->mysql_server_version, "8.0.30-sluice") == 0);
		const struct config_database *pg = config_find_database(cfg, "pgdb");
		const struct config_database *my = config_find_database(cfg, "mydb");
		const struct config_database *my2 = config_find_database(cfg, "mydb2");
		CHECK(pg && pg->protocol == CONFIG_PROTO_PG && pg->port == 5432);
		CHECK(my && my->protocol == CONFIG_PROTO_MYSQL && my->port == 3306);
		CHECK(my2 && my2->protocol == CONFIG_PROTO_MYSQL && my2->port == 3307);
		/* Each protocol's clients see only their entries. */
		CHECK(config_find_database_for(cfg, "mydb", CONFIG_PROTO_MYSQL) == my);
		CHECK(config_find_database_for(cfg, "mydb", CONFIG_PROTO_PG) == NULL);
		CHECK(config_find_database_for(cfg, "pgdb", CONFIG_PROTO_MYSQL) == NULL);
		config_free(cfg);
		cfg = NULL;
	}
	CHECK(load_str("[databases]\nx = protocol=oracle\n[sluice]\nauth_type=any\n", &cfg) < 0);
	CHECK(strstr(err, "protocol must be postgresql or mysql") != NULL);
	CHECK(load_str("[sluice]\nauth_type=any\nlisten_port=7000\nmysql_listen_port=7000\n", &cfg) < 0);
	CHECK(strstr(err, "MySQL clients need a port of their own") != NULL);
	CHECK(load_str("[sluice]\nauth_type=any\nmysql_listen_port=70000\n", &cfg) < 0);
}

/* Remove our own mkdtemp() directory, deepest entries first. */
static void cleanup_tmpdir(void)
{
	if (nftw(tmpdir, remove_entry, 8, FTW_DEPTH | FTW_PHYS) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
}

/* ---- sharding ------------------------------------------------------- */

static void test_shards(void)
{
	struct config *cfg = NULL;
	CHECK(load_str("[sluice]\nauth_type=any\n[sharded_tables]\nshop.orders = customer_id\n"
		       "shop.Sales.Items = Order_ID : BIGINT\nshop.users = id:uuid\n"
		       "[databases]\nshop_0 = host=/tmp dbname=s0\nshop_1 = host=/tmp dbname=s1\n"
		       "shop = shards='shop_0, shop_1' pool_size=5\n", &cfg) == 0);
	const struct config_database *d = cfg ? config_find_database(cfg, "shop") : NULL;
	CHECK(d && d->n_shards == 2 && strcmp(d->shards[0], "shop_0") == 0 && strcmp(d->shards[1], "shop_1") == 0);
	CHECK(d && d->shard_db && d->shard_db[0] == 0 && d->shard_db[1] == 1 && d->pool_size == 5);
	CHECK(d && d->n_tables == 3);
	if (d && d->n_tables == 3) {
		CHECK(!d->tables[0].schema && strcmp(d->tables[0].table, "orders") == 0 &&
		      strcmp(d->tables[0].column, "customer_id") == 0 && d->tables[0].key_type == CONFIG_KEY_UNKNOWN);
		CHECK(d->tables[1].schema && strcmp(d->tables[1].schema, "sales") == 0 &&
		      strcmp(d->tables[1].table, "items") == 0 && strcmp(d->tables[1].column, "order_id") == 0 &&
		      d->tables[1].key_type == CONFIG_KEY_INT8);
		CHECK(d->tables[2].key_type == CONFIG_KEY_UUID);
		CHECK(strstr(d->tables[0].where, ":4") != NULL);
	}
	d = cfg ? config_find_database(cfg, "shop_0") : NULL;
	CHECK(d && d->n_shards == 0 && d->n_tables == 0);
	config_free(cfg);

	static const struct {
		const char *ini, *err;
	} bad[] = {
		{ "[databases]\nshop = shards=a,b\n", ":2: database 'shop': key 'shards': 'a': no database entry named so" },
		{ "[databases]\na = host=/tmp\nshop = shards=a,shop\n", "'shop': a database cannot be its own shard" },
		{ "[databases]\na = host=/tmp\nb = shards=a\nshop = shards=a,b\n", "'b': that entry is itself sharded" },
		{ "[databases]\na = host=/tmp protocol=mysql\nb = host=/tmp\nshop = shards=b,a\n",
		  "'a': that entry speaks another protocol" },
		{ "[databases]\nshop = shards=\n", ":2: database 'shop': key 'shards': the list is empty" },
		{ "[databases]\nshop = shards=a,,b\n", "key 'shards': an empty name in the list" },
		{ "[databases]\na = host=/tmp\nshop = shards=a,a\n", "key 'shards': 'a' is listed twice" },
		{ "[databases]\na = host=/tmp\nshop = shards=a host=/tmp\n", "a sharded entry has no host of its own" },
		{ "[databases]\na = host=/tmp\n* = shards=a\n", "the fallback entry cannot be sharded" },
		{ "[databases]\na = host=/tmp\nshop = shards=* \n", "'*': no database entry named so" },
		{ "[databases]\na = host=/tmp\nshop = shards=a\n[sharded_tables]\nshop.t = k:numeric\n",
		  ":5: key 'shop.t': shard key type 'numeric' is not supported" },
		{ "[databases]\na = host=/tmp\nshop = shards=a\n[sharded_tables]\nshop = k\n", ":5: key 'shop': expected DATABASE.TABLE" },
		{ "[databases]\na = host=/tmp\nshop = shards=a\n[sharded_tables]\nshop.a.b.c = k\n", "expected DATABASE.TABLE" },
		{ "[databases]\na = host=/tmp\nshop = shards=a\n[sharded_tables]\nshop.1t = k\n", "expected DATABASE.TABLE" },
		{ "[databases]\na = host=/tmp\nshop = shards=a\n[sharded_tables]\nshop..t = k\n", "expected DATABASE.TABLE" },
		{ "[databases]\na = host=/tmp\nshop = shards=a\n[sharded_tables]\nshop.t = \n", "must be the shard key column" },
		{ "[databases]\na = host=/tmp\nshop = shards=a\n[sharded_tables]\nshop.t = k-1\n", "must be the shard key column" },
		{ "[databases]\na = host=/tmp\nshop = shards=a\n[sharded_tables]\na.t = k\n",
		  ":5: key 'a.t': 'a' is not a sharded [databases] entry" },
		{ "[databases]\na = host=/tmp\nshop = shards=a\n[sharded_tables]\nnone.t = k\n", "'none' is not a sharded" },
		{ "[databases]\na = host=/tmp\nshop = shards=a\n[sharded_tables]\nshop.t = k\nshop.public.T = j\n",
		  ":6: key 'shop.public.T': the table is already listed at " },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char ini[1024];
		snprintf(ini, sizeof(ini), "[sluice]\nauth_type=any\n%s", bad[i].ini);
		/* The [sluice] lines shift line numbers by two. */
		char want[256];
		const char *colon = bad[i].err[0] == ':' ? strchr(bad[i].err + 1, ':') : NULL;
		if (colon)
			snprintf(want, sizeof(want), ":%d%s", atoi(bad[i].err + 1) + 2, colon);
		else
			snprintf(want, sizeof(want), "%s", bad[i].err);
		cfg = NULL;
		int rc = load_str(ini, &cfg);
		CHECK(rc < 0 && !cfg);
		if (!strstr(err, want))
			fprintf(stderr, "shard config %zu: '%s' lacks '%s'\n", i, err, want);
		CHECK(strstr(err, want) != NULL);
		CHECK(strstr(err, last_path) != NULL);
	}
	/* 64 shards, not 65. */
	char big[8192] = "[sluice]\nauth_type=any\n[databases]\ns = host=/tmp\nshop = shards=s";
	for (int i = 1; i < CONFIG_MAX_SHARDS; i++)
		strcat(big, ",s");
	strcat(big, "\n");
	CHECK(load_str(big, &cfg) < 0 && strstr(err, "listed twice")); /* within the limit: the names count */
	snprintf(big, sizeof(big), "[sluice]\nauth_type=any\n[databases]\n");
	for (int i = 0; i <= CONFIG_MAX_SHARDS; i++)
		snprintf(big + strlen(big), sizeof(big) - strlen(big), "s%d = host=/tmp\n", i);
	strcat(big, "shop = shards=s0");
	for (int i = 1; i < CONFIG_MAX_SHARDS; i++)
		snprintf(big + strlen(big), sizeof(big) - strlen(big), ",s%d", i);
	strcat(big, "\n");
	cfg = NULL;
	CHECK(load_str(big, &cfg) == 0 && cfg && config_find_database(cfg, "shop")->n_shards == CONFIG_MAX_SHARDS);
	config_free(cfg);
	big[strlen(big) - 1] = '\0';
	strcat(big, ",s64\n");
	cfg = NULL;
	CHECK(load_str(big, &cfg) < 0 && strstr(err, "more than 64 shards"));
	/* The core's key types are pghash's (src/pg/pghash.h). */
	static const char *const names[] = { "int2", "smallint", "int4", "integer", "int", "int8", "bigint",
					     "text", "varchar", "uuid", "numeric", "float8", "" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		CHECK(config_key_type_from_name(names[i]) == pghash_type_from_name(names[i]));
	CHECK((int)CONFIG_KEY_TYPES == (int)PGHASH_TYPES && (int)CONFIG_KEY_INT8 == (int)PGHASH_INT8 && (int)CONFIG_KEY_UUID == (int)PGHASH_UUID);
}

UNIT_MAIN(
	if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 2; }
	test_parse_duration();
	test_parse_bool();
	test_parse_int();
	test_parse_enums();
	test_list_contains();
	test_defaults();
	test_main_keys();
	test_client_keys();
	test_main_section_names();
	test_databases();
	test_fallback_database();
	test_users();
	test_warnings();
	test_peers();
	test_host_lists();
	test_pgbouncer_125_keys();
	test_tls_auth_dependencies();
	test_include();
	test_errors();
	test_missing_file();
	test_auth_file();
	test_auth_file_relative();
	test_long_lines_and_line_endings();
	test_net_tls_keys();
	test_misc();
	test_mysql_keys();
	test_shards();
	reset_warns();
	cleanup_tmpdir()
)
