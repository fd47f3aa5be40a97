/*
 * admin_show.c - the SHOW commands of the admin console. Column names and
 * order are PgBouncer 1.25's, so tools that read rows by position
 * (pgbouncer_exporter, pgbouncer_fdw) work; a column sluice adds may only
 * ever go at the end of a row. Figures sluice does not keep (cancel
 * queues, prepared statement counters) are sent as 0, never left out.
 *
 * Pool-level answers (POOLS, STATS, ...) are read from the pools directly;
 * connection lists (CLIENTS, SERVERS, FDS) are collected by each worker
 * from its own connections (admin_show_collect runs on that worker).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "admin.h"
#include "bypass.h"
#include "client.h"
#include "config.h"
#include "control.h"
#include "loop.h"
#include "mirror.h"
#include "pool.h"
#include "route.h"
#include "proto.h"
#include "runtime.h"
#include "server.h"
#include "tls.h"
#include "version.h"
#include "worker.h"

#define NCOLS(a) ((int)(sizeof(a) / sizeof(a[0])))

static const char *mode_name(int m)
{
	return m == POOL_MODE_TRANSACTION ? "transaction" : m == POOL_MODE_STATEMENT ? "statement" : "session";
}

/* ---- SHOW HELP, VERSION, STATE ---- */

static void show_help(struct admin_reply *r)
{
	reply_notice(r, "Console usage",
		     "\n\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION"
		     "\n\tSHOW FDS|LISTS|MEM|STATE|BYPASS|PINS|HOSTS"
		     "\n\tSHOW STATS|STATS_TOTALS|STATS_AVERAGES"
		     "\n\tSET key = arg"
		     "\n\tRELOAD"
		     "\n\tPAUSE [<db>]"
		     "\n\tRESUME [<db>]"
		     "\n\tDISABLE <db>"
		     "\n\tENABLE <db>"
		     "\n\tRECONNECT [<db>]"
		     "\n\tKILL [<db>]"
		     "\n\tKILL_CLIENT <client_id>"
		     "\n\tSUSPEND"
		     "\n\tSHUTDOWN"
		     "\n\tSHUTDOWN WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS"
		     "\n\tWAIT_CLOSE [<db>]");
	reply_complete(r, "SHOW");
}

static void show_version(struct admin_reply *r)
{
	static const struct admin_col cols[] = { { "version", 's' } };
	reply_columns(r, cols, 1);
	reply_row_begin(r, 1);
	reply_cell(r, "sluice " SLUICE_VERSION);
	reply_row_end(r);
	reply_complete(r, "SHOW");
}

static void show_state(struct admin_reply *r)
{
	static const struct admin_col cols[] = { { "key", 's' }, { "value", 's' } };
	bool paused = pool_db_paused("\x01"); /* no database has that name: global only */
	bool suspended = control_suspended();
	const char *rows[3][2] = {
		{ "active", !paused && !suspended ? "yes" : "no" },
		{ "paused", paused ? "yes" : "no" },
		{ "suspended", suspended ? "yes" : "no" },
	};
	reply_columns(r, cols, 2);
	for (int i = 0; i < 3; i++) {
		reply_row_begin(r, 2);
		reply_cell(r, rows[i][0]);
		reply_cell(r, rows[i][1]);
		reply_row_end(r);
	}
	reply_complete(r, "SHOW");
}

/* ---- SHOW BYPASS: the kernel fast path (name | value) ---- */

static void bypass_row(struct admin_reply *r, const char *name, const char *value)
{
	reply_row_begin(r, 2);
	reply_cell(r, name);
	reply_cell(r, value);
	reply_row_end(r);
}

static void bypass_row_u(struct admin_reply *r, const char *name, uint64_t v)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	bypass_row(r, name, buf);
}

static void show_bypass(struct admin_reply *r)
{
	static const struct admin_col cols[] = { { "name", 's' }, { "value", 's' } };
	struct bypass_stats b;
	bypass_stats(&b);
	reply_columns(r, cols, 2);
	bypass_row(r, "enabled", b.enabled ? "yes" : "no");
	bypass_row(r, "reason", b.reason);
	bypass_row_u(r, "kernel_transactions", b.kernel_transactions);
	bypass_row_u(r, "kernel_bytes", b.kernel_bytes);
	bypass_row_u(r, "kernel_links", b.kernel_links);
	bypass_row_u(r, "user_transactions", b.user_transactions);
	bypass_row_u(r, "fallbacks", b.fallbacks);
	for (int i = 0; i < BYPASS_REASONS; i++) {
		char name[48];
		snprintf(name, sizeof(name), "fallbacks_%s", bypass_reason_names[i]);
		bypass_row_u(r, name, b.fallback[i]);
	}
	bypass_row_u(r, "takeovers", b.takeovers);
	bypass_row_u(r, "resent_bytes", b.resent_bytes);
	bypass_row_u(r, "kernel_clients", (uint64_t)(b.kernel_clients > 0 ? b.kernel_clients : 0));
	bypass_row_u(r, "lent_servers", (uint64_t)(b.lent_servers > 0 ? b.lent_servers : 0));
	bypass_row_u(r, "slots_used", (uint64_t)(b.slots_used > 0 ? b.slots_used : 0));
	reply_complete(r, "SHOW");
}

/* ---- SHOW HOSTS: sluice's own, one row per host of each routed pool (route.h) ---- */

static const struct admin_col hosts_cols[] = {
	{ "database", 's' }, { "user", 's' }, { "host", 's' }, { "port", 'i' }, { "role", 's' },
	{ "lsn", 's' }, { "lag_bytes", 'i' }, { "lag_ms", 'i' }, { "checked_ms_ago", 'i' },
	{ "reads", 'i' }, { "reads_on_primary", 'i' }, { "error", 's' },
};

static void host_row(const struct route *rt, int i, void *arg)
{
	struct admin_reply *r = arg;
	const struct route_host *h = &rt->host[i];
	const struct pool_host *ph = &rt->home->hosts.h[i];
	int64_t now = loop_now_us();
	reply_row_begin(r, NCOLS(hosts_cols));
	reply_cell(r, rt->home->db_name);
	reply_cell(r, rt->home->user);
	reply_cell(r, *ph->name ? ph->name : ph->addr_text);
	reply_cell_int(r, pool_host_port(ph));
	reply_cell(r, route_role_name(h->role));
	if (h->sampled_us && h->pos_opaque)
		reply_cell(r, NULL);
	else if (h->sampled_us && rt->home->proto->protocol == CONFIG_PROTO_MYSQL)
		reply_cellf(r, "%llu", (unsigned long long)h->lsn); /* a GTID's sequence number */
	else if (h->sampled_us)
		reply_cellf(r, "%X/%X", (unsigned)(h->lsn >> 32), (unsigned)h->lsn);
	else
		reply_cell(r, NULL);
	if (h->lag_bytes >= 0)
		reply_cell_int(r, h->lag_bytes);
	else
		reply_cell(r, NULL);
	if (h->lag_us >= 0)
		reply_cell_int(r, h->lag_us / 1000);
	else
		reply_cell(r, NULL);
	if (h->sampled_us)
		reply_cell_int(r, (now - h->sampled_us) / 1000);
	else
		reply_cell(r, NULL);
	reply_cell_int(r, h->reads);
	reply_cell_int(r, rt->reads_on_primary);
	reply_cell(r, *h->error ? h->error : NULL);
	reply_row_end(r);
}

static void show_hosts(struct admin_reply *r)
{
	reply_columns(r, hosts_cols, NCOLS(hosts_cols));
	route_foreach_host(host_row, r);
	reply_complete(r, "SHOW");
}

/* ---- SHOW POOLS ---- */

static const struct admin_col pools_cols[] = {
	{ "database", 's' }, { "user", 's' }, { "cl_active", 'i' }, { "cl_waiting", 'i' },
	{ "cl_active_cancel_req", 'i' }, { "cl_waiting_cancel_req", 'i' }, { "sv_active", 'i' },
	{ "sv_active_cancel", 'i' }, { "sv_being_canceled", 'i' }, { "sv_idle", 'i' },
	{ "sv_used", 'i' }, { "sv_tested", 'i' }, { "sv_login", 'i' }, { "maxwait", 'i' },
	{ "maxwait_us", 'i' }, { "pool_mode", 's' }, { "load_balance_hosts", 's' },
};

/* load_balance_hosts as PgBouncer shows it: NULL for a single host. */
static const char *load_balance_name(int hosts, bool disable)
{
	return hosts > 1 ? (disable ? "disable" : "round-robin") : NULL;
}

/* One SHOW POOLS row. Cancel requests travel on their own short
 * connections (cancel.c), not counted per pool: the four cancel columns
 * are 0. sv_used is 0: sluice keeps no such server list (a server due a
 * check is checked when taken, and counted in sv_tested meanwhile).
 * load_balance_hosts is NULL for a single host, as PgBouncer sends it. */
static void pools_row(struct admin_reply *r, const char *db, const char *user, const struct pool_counts *k,
		      int mode, const char *load_balance)
{
	reply_row_begin(r, NCOLS(pools_cols));
	reply_cell(r, db);
	reply_cell(r, user);
	reply_cell_int(r, k->cl_active);
	reply_cell_int(r, k->cl_waiting);
	reply_cell_int(r, 0); /* cl_active_cancel_req */
	reply_cell_int(r, 0); /* cl_waiting_cancel_req */
	reply_cell_int(r, k->sv_active);
	reply_cell_int(r, 0); /* sv_active_cancel */
	reply_cell_int(r, 0); /* sv_being_canceled */
	reply_cell_int(r, k->sv_idle);
	reply_cell_int(r, 0); /* sv_used */
	reply_cell_int(r, k->sv_tested); /* running server_check_query */
	reply_cell_int(r, k->sv_login);
	reply_cell_int(r, k->maxwait_us / 1000000);
	reply_cell_int(r, k->maxwait_us % 1000000);
	reply_cell(r, mode_name(mode));
	reply_cell(r, load_balance);
	reply_row_end(r);
}

static void pool_row(struct pool *p, void *arg)
{
	struct admin_reply *r = arg;
	struct pool_counts k;
	if (p->home != p)
		return; /* a reader pool (route.h): counted in its home pool's row */
	pool_get_counts(p, loop_now_us(), &k);
	route_add_reader_counts(p, &k);
	if (p->stale && k.cl_active + k.cl_waiting + k.sv_active + k.sv_idle + k.sv_login == 0)
		return;
	pools_row(r, p->db_name, p->user, &k, p->mode, load_balance_name(p->hosts.n, p->lb_disable));
}

static void show_pools(struct admin_reply *r)
{
	reply_columns(r, pools_cols, NCOLS(pools_cols));
	/* The console's own pools first, as PgBouncer lists its admin pool:
	 * every console session counts as an active client of user
	 * "pgbouncer" in statement mode. */
	for (int i = 0; i < ADMIN_CONSOLE_DBS; i++) {
		struct pool_counts k = { .cl_active = admin_console_sessions(admin_console_dbs[i]) };
		pools_row(r, admin_console_dbs[i], ADMIN_CONSOLE_USER, &k, POOL_MODE_STATEMENT, NULL);
	}
	pool_foreach(pool_row, r);
	reply_complete(r, "SHOW");
}

/* ---- SHOW STATS, STATS_TOTALS, STATS_AVERAGES ---- */

/* Statistics are kept per pool and shown per database, as PgBouncer. */
struct db_stats {
	char name[64];
	struct stats_totals total, delta;
	int64_t period_us;
};

struct stats_collect {
	struct db_stats *v;
	int n, cap;
	bool oom;
};

static void stats_of_pool(struct pool *p, void *arg)
{
	struct stats_collect *sc = arg;
	struct db_stats *d = NULL;
	for (int i = 0; i < sc->n; i++)
		if (strcmp(sc->v[i].name, p->db_name) == 0)
			d = &sc->v[i];
	if (!d) {
		if (sc->n == sc->cap) {
			int cap = sc->cap ? sc->cap * 2 : 16;
			struct db_stats *v = realloc(sc->v, (size_t)cap * sizeof(*v));
			if (!v) {
				sc->oom = true;
				return;
			}
			sc->v = v;
			sc->cap = cap;
		}
		d = &sc->v[sc->n++];
		memset(d, 0, sizeof(*d));
		snprintf(d->name, sizeof(d->name), "%s", p->db_name);
	}
	struct stats_totals t, delta;
	int64_t period;
	pool_get_totals(p, &t);
	pool_get_period(p, &delta, &period);
	stats_merge(&d->total, &t);
	stats_merge(&d->delta, &delta);
	if (period > d->period_us)
		d->period_us = period;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct db_stats *)a)->name, ((const struct db_stats *)b)->name);
}

static void stats_cells_totals(struct admin_reply *r, const struct stats_totals *t)
{
	reply_cell_int(r, (int64_t)t->assigns);
	reply_cell_int(r, (int64_t)t->xacts);
	reply_cell_int(r, (int64_t)t->queries);
	reply_cell_int(r, (int64_t)t->bytes_in);
	reply_cell_int(r, (int64_t)t->bytes_out);
	reply_cell_int(r, (int64_t)t->xact_us);
	reply_cell_int(r, (int64_t)t->query_us);
	reply_cell_int(r, (int64_t)t->wait_us);
	reply_cell_int(r, (int64_t)t->client_parses);
	reply_cell_int(r, (int64_t)t->server_parses);
	reply_cell_int(r, (int64_t)t->binds);
}

/* Per-second rates and per-transaction / per-query times of the last
 * stats_period, as PgBouncer's avg_* columns. */
static void stats_cells_averages(struct admin_reply *r, const struct db_stats *d)
{
	const struct stats_totals *t = &d->delta;
	double secs = d->period_us > 0 ? (double)d->period_us / 1e6 : 0;
	reply_cell_int(r, secs > 0 ? (int64_t)((double)t->assigns / secs) : 0);
	reply_cell_int(r, secs > 0 ? (int64_t)((double)t->xacts / secs) : 0);
	reply_cell_int(r, secs > 0 ? (int64_t)((double)t->queries / secs) : 0);
	reply_cell_int(r, secs > 0 ? (int64_t)((double)t->bytes_in / secs) : 0);
	reply_cell_int(r, secs > 0 ? (int64_t)((double)t->bytes_out / secs) : 0);
	reply_cell_int(r, t->xacts ? (int64_t)(t->xact_us / t->xacts) : 0);
	reply_cell_int(r, t->queries ? (int64_t)(t->query_us / t->queries) : 0);
	reply_cell_int(r, t->xacts ? (int64_t)(t->wait_us / t->xacts) : 0);
	reply_cell_int(r, secs > 0 ? (int64_t)((double)t->client_parses / secs) : 0);
	reply_cell_int(r, secs > 0 ? (int64_t)((double)t->server_parses / secs) : 0);
	reply_cell_int(r, secs > 0 ? (int64_t)((double)t->binds / secs) : 0);
}

enum { STATS_BOTH, STATS_TOTALS_ONLY, STATS_AVERAGES_ONLY };

static void show_stats(struct admin_reply *r, int which)
{
	static const struct admin_col both[] = {
		{ "database", 's' }, { "total_server_assignment_count", 'i' }, { "total_xact_count", 'i' },
		{ "total_query_count", 'i' }, { "total_received", 'i' }, { "total_sent", 'i' },
		{ "total_xact_time", 'i' }, { "total_query_time", 'i' }, { "total_wait_time", 'i' },
		{ "total_client_parse_count", 'i' }, { "total_server_parse_count", 'i' },
		{ "total_bind_count", 'i' }, { "avg_server_assignment_count", 'i' },
		{ "avg_xact_count", 'i' }, { "avg_query_count", 'i' }, { "avg_recv", 'i' },
		{ "avg_sent", 'i' }, { "avg_xact_time", 'i' }, { "avg_query_time", 'i' },
		{ "avg_wait_time", 'i' }, { "avg_client_parse_count", 'i' },
		{ "avg_server_parse_count", 'i' }, { "avg_bind_count", 'i' },
	};
	/* STATS_TOTALS and STATS_AVERAGES share these names. */
	static const struct admin_col half[] = {
		{ "database", 's' }, { "server_assignment_count", 'i' }, { "xact_count", 'i' },
		{ "query_count", 'i' }, { "bytes_received", 'i' }, { "bytes_sent", 'i' },
		{ "xact_time", 'i' }, { "query_time", 'i' }, { "wait_time", 'i' },
		{ "client_parse_count", 'i' }, { "server_parse_count", 'i' }, { "bind_count", 'i' },
	};
	struct stats_collect sc = { 0 };
	pool_foreach(stats_of_pool, &sc);
	if (sc.oom)
		r->oom = true;
	qsort(sc.v, (size_t)sc.n, sizeof(*sc.v), by_name);
	if (which == STATS_BOTH)
		reply_columns(r, both, NCOLS(both));
	else
		reply_columns(r, half, NCOLS(half));
	for (int i = 0; i < sc.n; i++) {
		reply_row_begin(r, which == STATS_BOTH ? NCOLS(both) : NCOLS(half));
		reply_cell(r, sc.v[i].name);
		if (which != STATS_AVERAGES_ONLY)
			stats_cells_totals(r, &sc.v[i].total);
		if (which != STATS_TOTALS_ONLY)
			stats_cells_averages(r, &sc.v[i]);
		reply_row_end(r);
	}
	free(sc.v);
	reply_complete(r, "SHOW");
}

/* ---- SHOW DATABASES, USERS, CONFIG ---- */

struct db_conns {
	const char *db;  /* database name clients use */
	int n;           /* server connections of its pools */
};

static void count_db_servers(struct pool *p, void *arg)
{
	struct db_conns *dc = arg;
	if (strcmp(p->db_name, dc->db) == 0) {
		struct pool_counts k;
		pool_get_counts(p, 0, &k);
		dc->n += k.sv_active + k.sv_idle + k.sv_login;
	}
}

static const struct admin_col databases_cols[] = {
	{ "name", 's' }, { "host", 's' }, { "port", 'i' }, { "database", 's' },
	{ "force_user", 's' }, { "pool_size", 'i' }, { "min_pool_size", 'i' },
	{ "reserve_pool_size", 'i' }, { "server_lifetime", 'i' }, { "pool_mode", 's' },
	{ "load_balance_hosts", 's' }, { "max_connections", 'i' }, { "current_connections", 'i' },
	{ "max_client_connections", 'i' }, { "current_client_connections", 'i' },
	{ "paused", 'i' }, { "disabled", 'i' },
};

/* A SHOW DATABASES row to be: a [databases] entry, or a console database
 * (d NULL). */
struct db_entry {
	const char *name;
	const struct config_database *d;
};

static int db_entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct db_entry *)a)->name, ((const struct db_entry *)b)->name);
}

static int or_global(int v, int global)
{
	return v >= 0 ? v : global;
}

/* PgBouncer's console database: port is sluice's own, pool_size 2,
 * statement mode, forced user "pgbouncer", never paused or disabled. */
static void console_db_row(struct admin_reply *r, const struct config *cfg, const char *name)
{
	reply_row_begin(r, NCOLS(databases_cols));
	reply_cell(r, name);
	reply_cell(r, NULL);
	reply_cell_int(r, cfg->listen_port);
	reply_cell(r, name);
	reply_cell(r, ADMIN_CONSOLE_USER);
	reply_cell_int(r, 2);
	reply_cell_int(r, 0);
	reply_cell_int(r, 0);
	reply_cell_int(r, cfg->server_lifetime_us / 1000000);
	reply_cell(r, mode_name(POOL_MODE_STATEMENT));
	reply_cell(r, NULL);
	reply_cell_int(r, cfg->max_db_connections);
	reply_cell_int(r, 0);
	reply_cell_int(r, cfg->max_db_client_connections);
	reply_cell_int(r, pool_limit_count("client-db", name));
	reply_cell_int(r, 0);
	reply_cell_int(r, 0);
	reply_row_end(r);
}

static void config_db_row(struct admin_reply *r, const struct config *cfg, const struct config_database *d)
{
	struct db_conns dc = { d->name, 0 };
	pool_foreach(count_db_servers, &dc);
	int64_t lifetime = d->t.server_lifetime_us >= 0 ? d->t.server_lifetime_us : cfg->server_lifetime_us;
	reply_row_begin(r, NCOLS(databases_cols));
	reply_cell(r, d->name);
	reply_cell(r, d->host);
	reply_cell_int(r, d->port > 0 ? d->port : 5432);
	reply_cell(r, d->dbname ? d->dbname : d->name);
	reply_cell(r, d->user);
	reply_cell_int(r, or_global(d->pool_size, cfg->default_pool_size));
	reply_cell_int(r, or_global(d->min_pool_size, cfg->min_pool_size));
	reply_cell_int(r, or_global(d->reserve_pool_size, cfg->reserve_pool_size));
	reply_cell_int(r, lifetime / 1000000); /* seconds, as PgBouncer */
	reply_cell(r, d->pool_mode >= 0 ? mode_name(d->pool_mode) : NULL);
	reply_cell(r, load_balance_name(config_database_hosts(d), d->lb_disable));
	reply_cell_int(r, or_global(d->max_db_connections, cfg->max_db_connections));
	reply_cell_int(r, dc.n);
	reply_cell_int(r, or_global(d->max_db_client_connections, cfg->max_db_client_connections));
	reply_cell_int(r, pool_limit_count("client-db", d->name));
	reply_cell_int(r, pool_db_paused(d->name));
	reply_cell_int(r, pool_db_disabled(d->name));
	reply_row_end(r);
}

/* In name order, the console databases among them, as PgBouncer keeps its
 * database list. */
static void show_databases(struct admin_reply *r)
{
	const struct config *cfg = runtime_config();
	size_t n = 0;
	struct db_entry *v = calloc(cfg->n_databases + ADMIN_CONSOLE_DBS, sizeof(*v));
	if (!v) {
		r->oom = true;
		return;
	}
	for (size_t i = 0; i < cfg->n_databases; i++)
		if (!admin_is_console_db(cfg->databases[i].name))
			v[n++] = (struct db_entry){ cfg->databases[i].name, &cfg->databases[i] };
	for (int i = 0; i < ADMIN_CONSOLE_DBS; i++)
		v[n++] = (struct db_entry){ admin_console_dbs[i], NULL };
	qsort(v, n, sizeof(*v), db_entry_cmp);
	reply_columns(r, databases_cols, NCOLS(databases_cols));
	for (size_t i = 0; i < n; i++) {
		if (v[i].d)
			config_db_row(r, cfg, v[i].d);
		else
			console_db_row(r, cfg, v[i].name);
	}
	free(v);
	reply_complete(r, "SHOW");
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A per-user size: the [users] value, or NULL where the user sets none
 * (PgBouncer sends these two as text). */
static void user_size_cell(struct admin_reply *r, const struct config_user *u, int v)
{
	if (u && v >= 0)
		reply_cell_int(r, v);
	else
		reply_cell(r, NULL);
}

/* Every user sluice knows by name: [users], auth_file and the console's
 * "pgbouncer", in name order, as PgBouncer lists them. Users known only
 * through auth_query are not listed (PgBouncer keeps those apart too). */
static void show_users(struct admin_reply *r)
{
	static const struct admin_col cols[] = {
		{ "name", 's' }, { "pool_size", 's' }, { "reserve_pool_size", 's' }, { "pool_mode", 's' },
		{ "max_user_connections", 'i' }, { "current_connections", 'i' },
		{ "max_user_client_connections", 'i' }, { "current_client_connections", 'i' },
	};
	const struct config *cfg = runtime_config();
	size_t n = 0;
	const char **names = calloc(cfg->n_users + cfg->n_auth + 1, sizeof(*names));
	if (!names) {
		r->oom = true;
		return;
	}
	for (size_t i = 0; i < cfg->n_users; i++)
		names[n++] = cfg->users[i].name;
	for (size_t i = 0; i < cfg->n_auth; i++)
		if (!config_find_user(cfg, cfg->auth[i].user))
			names[n++] = cfg->auth[i].user;
	bool have_console_user = false;
	for (size_t i = 0; i < n; i++)
		have_console_user |= strcmp(names[i], ADMIN_CONSOLE_USER) == 0;
	if (!have_console_user)
		names[n++] = ADMIN_CONSOLE_USER;
	qsort(names, n, sizeof(*names), str_cmp);
	reply_columns(r, cols, NCOLS(cols));
	for (size_t i = 0; i < n; i++) {
		const struct config_user *u = config_find_user(cfg, names[i]);
		reply_row_begin(r, NCOLS(cols));
		reply_cell(r, names[i]);
		user_size_cell(r, u, u ? u->pool_size : -1);
		user_size_cell(r, u, u ? u->reserve_pool_size : -1);
		reply_cell(r, u && u->pool_mode >= 0 ? mode_name(u->pool_mode) : NULL);
		reply_cell_int(r, or_global(u ? u->max_user_connections : -1, cfg->max_user_connections));
		reply_cell_int(r, pool_limit_count("user", names[i]));
		reply_cell_int(r, or_global(u ? u->max_user_client_connections : -1,
					    cfg->max_user_client_connections));
		reply_cell_int(r, pool_limit_count("client-user", names[i]));
		reply_row_end(r);
	}
	free(names);
	reply_complete(r, "SHOW");
}

static void show_config(struct admin_reply *r)
{
	static const struct admin_col cols[] = {
		{ "key", 's' }, { "value", 's' }, { "default", 's' }, { "changeable", 's' },
	};
	const struct config *cfg = runtime_config();
	struct config *defaults = config_defaults();
	if (!defaults) {
		r->oom = true;
		return;
	}
	reply_columns(r, cols, NCOLS(cols));
	for (size_t i = 0; i < config_key_count(); i++) {
		char val[512], def[512];
		const char *name = config_key_describe(cfg, i, val, sizeof(val));
		config_key_describe(defaults, i, def, sizeof(def));
		reply_row_begin(r, 4);
		reply_cell(r, name);
		reply_cell(r, val);
		reply_cell(r, def);
		reply_cell(r, config_key_needs_restart(name) ? "no" : "yes");
		reply_row_end(r);
	}
	config_free(defaults);
	reply_complete(r, "SHOW");
}

/* ---- SHOW LISTS, MEM ---- */

struct list_counts {
	int pools, servers, waiting;
};

static void count_pool(struct pool *p, void *arg)
{
	struct list_counts *lc = arg;
	struct pool_counts k;
	pool_get_counts(p, 0, &k);
	lc->pools++;
	lc->servers += k.sv_active + k.sv_idle + k.sv_login;
	lc->waiting += k.cl_waiting;
}

static void show_lists(struct admin_reply *r)
{
	static const struct admin_col cols[] = { { "list", 's' }, { "items", 'i' } };
	const struct config *cfg = runtime_config();
	struct list_counts lc = { 0 };
	pool_foreach(count_pool, &lc);
	const struct { const char *name; int64_t n; } rows[] = {
		{ "databases", (int64_t)cfg->n_databases }, { "users", (int64_t)(cfg->n_users + cfg->n_auth) },
		{ "pools", lc.pools }, { "free_clients", 0 }, { "used_clients", runtime_clients_add(0) },
		{ "login_clients", 0 }, { "free_servers", 0 }, { "used_servers", lc.servers },
		{ "dns_names", 0 }, { "dns_zones", 0 }, { "dns_queries", 0 }, { "dns_pending", 0 },
	};
	reply_columns(r, cols, NCOLS(cols));
	for (int i = 0; i < NCOLS(rows); i++) {
		reply_row_begin(r, 2);
		reply_cell(r, rows[i].name);
		reply_cell_int(r, rows[i].n);
		reply_row_end(r);
	}
	reply_complete(r, "SHOW");
}

static void show_mem(struct admin_reply *r)
{
	static const struct admin_col cols[] = {
		{ "name", 's' }, { "size", 'i' }, { "used", 'i' }, { "free", 'i' }, { "memtotal", 'i' },
	};
	struct list_counts lc = { 0 };
	pool_foreach(count_pool, &lc);
	int64_t clients = runtime_clients_add(0);
	/* sluice allocates objects one by one (no slab caches): "free" is 0.
	 * Network buffers come from per-thread block caches, shown as iobuf. */
	const struct { const char *name; int64_t size, used; } rows[] = {
		{ "client_cache", (int64_t)sizeof(struct client), clients },
		{ "server_cache", (int64_t)sizeof(struct server), lc.servers },
		{ "pool_cache", (int64_t)sizeof(struct pool), lc.pools },
		{ "iobuf_block", (int64_t)iobuf_block_size(), 0 },
	};
	reply_columns(r, cols, NCOLS(cols));
	for (int i = 0; i < NCOLS(rows); i++) {
		reply_row_begin(r, 5);
		reply_cell(r, rows[i].name);
		reply_cell_int(r, rows[i].size);
		reply_cell_int(r, rows[i].used);
		reply_cell_int(r, 0);
		reply_cell_int(r, rows[i].size * rows[i].used);
		reply_row_end(r);
	}
	reply_complete(r, "SHOW");
}

/* ---- SHOW CLIENTS, SERVERS, FDS (collected on every worker) ---- */

static const struct admin_col conn_cols[] = {
	{ "type", 's' }, { "user", 's' }, { "database", 's' }, { "replication", 's' },
	{ "state", 's' }, { "addr", 's' },
	{ "port", 'i' }, { "local_addr", 's' }, { "local_port", 'i' }, { "connect_time", 's' },
	{ "request_time", 's' }, { "wait", 'i' }, { "wait_us", 'i' }, { "close_needed", 'i' },
	{ "ptr", 's' }, { "link", 's' }, { "remote_pid", 'i' }, { "tls", 's' },
	{ "application_name", 's' }, { "prepared_statements", 'i' }, { "id", 'i' },
};

static const struct admin_col fds_cols[] = {
	{ "fd", 'i' }, { "task", 's' }, { "user", 's' }, { "database", 's' }, { "addr", 's' },
	{ "port", 'i' }, { "cancel", 'i' }, { "link", 'i' }, { "client_encoding", 's' },
	{ "std_strings", 's' }, { "datestyle", 's' }, { "timezone", 's' }, { "password", 's' },
	{ "scram_client_key", 's' }, { "scram_server_key", 's' },
};

/* SHOW PINS: sluice's own, one row per client that keeps its server. */
static const struct admin_col pins_cols[] = {
	{ "id", 'i' }, { "user", 's' }, { "database", 's' }, { "protocol", 's' }, { "link", 's' },
	{ "reason", 's' },
};

void admin_show_header(int kind, struct admin_reply *r)
{
	if (kind == JOB_SHOW_PINS)
		reply_columns(r, pins_cols, NCOLS(pins_cols));
	else if (kind == JOB_SHOW_FDS)
		reply_columns(r, fds_cols, NCOLS(fds_cols));
	else
		reply_columns(r, conn_cols, NCOLS(conn_cols));
}

/* Split a socket address into text address and port. */
static void sock_name(int fd, bool local, char *addr, size_t len, int *port)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int rc = local ? getsockname(fd, (struct sockaddr *)&ss, &sl) : getpeername(fd, (struct sockaddr *)&ss, &sl);
	*port = 0;
	snprintf(addr, len, "unix");
	if (rc < 0) {
		snprintf(addr, len, "%s", "");
		return;
	}
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &in->sin_addr, addr, (socklen_t)len);
		*port = ntohs(in->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, addr, (socklen_t)len);
		*port = ntohs(in6->sin6_port);
	}
}

/* A monotonic time as "YYYY-MM-DD HH:MM:SS UTC" (PgBouncer's format). */
static void wall_time(const struct admin_job *job, int64_t mono_us, char *out, size_t len)
{
	int64_t wall_us = job->now_wall_us - (loop_now_us() - mono_us);
	time_t t = (time_t)(wall_us / 1000000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* PgBouncer 1.25's words: "active" when linked to a server (here or in
 * the kernel), "idle" when logged in with no request waiting. */
static const char *client_state_name(const struct client *c, bool linked)
{
	switch (c->state) {
	case CLIENT_STARTUP:
	case CLIENT_AUTH: return "login";
	case CLIENT_LOGIN_WAIT:
	case CLIENT_WAITING: return "waiting";
	default: return linked ? "active" : "idle";
	}
}

static void client_row(struct admin_reply *r, const struct admin_job *job, const struct client *c, int64_t now)
{
	char addr[64], laddr[64], t1[40], t2[40];
	int port, lport;
	sock_name(c->sock.h.fd, false, addr, sizeof(addr), &port);
	sock_name(c->sock.h.fd, true, laddr, sizeof(laddr), &lport);
	wall_time(job, c->connect_us, t1, sizeof(t1));
	wall_time(job, c->last_active_us, t2, sizeof(t2));
	int64_t wait = c->state == CLIENT_WAITING || c->state == CLIENT_LOGIN_WAIT ? now - c->state_since_us : 0;
	struct proto_show ps;
	c->proto->client_show(c, &ps);
	reply_row_begin(r, NCOLS(conn_cols));
	reply_cell(r, "C");
	reply_cell(r, c->user);
	reply_cell(r, c->db);
	reply_cell(r, ps.replication);
	reply_cell(r, client_state_name(c, ps.linked));
	reply_cell(r, addr);
	reply_cell_int(r, port);
	reply_cell(r, laddr);
	reply_cell_int(r, lport);
	reply_cell(r, t1);
	reply_cell(r, t2);
	reply_cell_int(r, wait / 1000000);
	reply_cell_int(r, wait % 1000000);
	reply_cell_int(r, 0);
	reply_cellf(r, "%llx", (unsigned long long)c->id);
	if (ps.linked)
		reply_cellf(r, "%llx", (unsigned long long)ps.link_id);
	else
		reply_cell(r, "");
	reply_cell_int(r, 0);
	char tls[96];
	tls_describe(c->sock.ssl, tls, sizeof(tls));
	reply_cell(r, tls);
	reply_cell(r, ps.app_name ? ps.app_name : "");
	reply_cell_int(r, ps.prepared);
	reply_cell_int(r, (int64_t)c->id);
	reply_row_end(r);
}

static const char *server_state_name(const struct server *s)
{
	switch (s->state) {
	case SERVER_CONNECTING:
	case SERVER_LOGIN: return "login";
	case SERVER_IDLE: return "idle";
	case SERVER_RESET: return "used";
	case SERVER_CHECK: return "tested";
	default: return "active";
	}
}

static void server_row(struct admin_reply *r, const struct admin_job *job, const struct server *s)
{
	char addr[64], laddr[64], t1[40], t2[40];
	int port, lport;
	sock_name(s->sock.h.fd, false, addr, sizeof(addr), &port);
	sock_name(s->sock.h.fd, true, laddr, sizeof(laddr), &lport);
	wall_time(job, s->connect_time_us, t1, sizeof(t1));
	wall_time(job, s->state_since_us, t2, sizeof(t2));
	struct proto_show ps;
	s->pool->proto->server_show(s, &ps);
	reply_row_begin(r, NCOLS(conn_cols));
	reply_cell(r, "S");
	reply_cell(r, s->pool->server_user);
	reply_cell(r, s->pool->db_name);
	reply_cell(r, ps.replication);
	reply_cell(r, ps.linked && !s->client ? "active" : server_state_name(s)); /* linked in the kernel */
	reply_cell(r, addr);
	reply_cell_int(r, port);
	reply_cell(r, laddr);
	reply_cell_int(r, lport);
	reply_cell(r, t1);
	reply_cell(r, t2);
	reply_cell_int(r, 0);
	reply_cell_int(r, 0);
	reply_cell_int(r, pool_server_outdated(s));
	reply_cellf(r, "%llx", (unsigned long long)s->id);
	if (ps.linked)
		reply_cellf(r, "%llx", (unsigned long long)ps.link_id);
	else
		reply_cell(r, "");
	reply_cell_int(r, ps.remote_pid);
	char tls[96];
	tls_describe(s->sock.ssl, tls, sizeof(tls));
	reply_cell(r, tls);
	reply_cell(r, ps.app_name ? ps.app_name : "");
	reply_cell_int(r, ps.prepared);
	reply_cell_int(r, (int64_t)s->id);
	reply_row_end(r);
}

static void fd_row(struct admin_reply *r, int fd, const char *task, const char *user, const char *db,
		   int link, const struct proto_show *ps)
{
	char addr[64];
	int port;
	sock_name(fd, false, addr, sizeof(addr), &port);
	reply_row_begin(r, NCOLS(fds_cols));
	reply_cell_int(r, fd);
	reply_cell(r, task);
	reply_cell(r, user);
	reply_cell(r, db);
	reply_cell(r, addr);
	reply_cell_int(r, port);
	reply_cell_int(r, (int64_t)ps->cancel);
	reply_cell_int(r, link);
	for (int i = 0; i < 4; i++) /* client_encoding, std_strings, DateStyle, TimeZone */
		reply_cell(r, ps->fd_params[i]);
	reply_cell(r, "");          /* never a password or key */
	reply_cell(r, "");
	reply_cell(r, "");
	reply_row_end(r);
}

void admin_show_collect(struct worker *w, struct admin_job *job)
{
	struct admin_reply rows = { 0 };
	int64_t now = loop_now_us();
	struct list *pos, *tmp;
	if (job->kind == JOB_SHOW_CLIENTS || job->kind == JOB_SHOW_FDS) {
		list_for_each_safe(pos, tmp, &w->clients) {
			struct client *c = list_entry(pos, struct client, node);
			if (c->closing)
				continue;
			if (job->kind == JOB_SHOW_CLIENTS) {
				client_row(&rows, job, c, now);
			} else {
				struct proto_show ps;
				c->proto->client_show(c, &ps);
				fd_row(&rows, c->sock.h.fd, "client", c->user, c->db,
				       c->server ? c->server->sock.h.fd : 0, &ps);
			}
		}
	}
	if (job->kind == JOB_SHOW_PINS) {
		list_for_each_safe(pos, tmp, &w->clients) {
			struct client *c = list_entry(pos, struct client, node);
			struct proto_show ps = { 0 };
			if (c->closing || c->state < CLIENT_IDLE)
				continue;
			c->proto->client_show(c, &ps);
			if (!ps.pinned)
				continue;
			reply_row_begin(&rows, NCOLS(pins_cols));
			reply_cell_int(&rows, (int64_t)c->id);
			reply_cell(&rows, c->user);
			reply_cell(&rows, c->db);
			reply_cell(&rows, c->proto->name);
			if (ps.linked)
				reply_cellf(&rows, "%llx", (unsigned long long)ps.link_id);
			else
				reply_cell(&rows, "");
			reply_cell(&rows, ps.pinned);
			reply_row_end(&rows);
		}
	}
	if (job->kind == JOB_SHOW_SERVERS || job->kind == JOB_SHOW_FDS) {
		list_for_each_safe(pos, tmp, &w->servers) {
			struct server *s = list_entry(pos, struct server, node);
			if (s->closed || s->aside) /* sluice's own: SHOW HOSTS */
				continue;
			if (job->kind == JOB_SHOW_SERVERS) {
				server_row(&rows, job, s);
			} else {
				struct proto_show ps;
				s->pool->proto->server_show(s, &ps);
				fd_row(&rows, s->sock.h.fd, "server", s->pool->server_user, s->pool->db_name,
				       s->client ? s->client->sock.h.fd : 0, &ps);
			}
		}
	}
	pthread_mutex_lock(&job->lock);
	reply_append(&job->rows, rows.data, rows.len);
	if (rows.oom)
		job->rows.oom = true;
	pthread_mutex_unlock(&job->lock);
	reply_free(&rows);
}

static void show_stats_both(struct admin_reply *r) { show_stats(r, STATS_BOTH); }
static void show_stats_totals(struct admin_reply *r) { show_stats(r, STATS_TOTALS_ONLY); }
static void show_stats_averages(struct admin_reply *r) { show_stats(r, STATS_AVERAGES_ONLY); }

bool admin_show(struct client *c, const char *what, struct admin_reply *r, int *job_kind)
{
	/* Answered here from the pools, or by a job on every worker. */
	static const struct {
		const char *name;
		void (*show)(struct admin_reply *r);
		int job;
	} subjects[] = {
		{ "HELP", show_help, -1 },         { "VERSION", show_version, -1 },
		{ "STATE", show_state, -1 },       { "POOLS", show_pools, -1 },
		{ "STATS", show_stats_both, -1 },  { "STATS_TOTALS", show_stats_totals, -1 },
		{ "STATS_AVERAGES", show_stats_averages, -1 },
		{ "DATABASES", show_databases, -1 }, { "USERS", show_users, -1 },
		{ "CONFIG", show_config, -1 },     { "LISTS", show_lists, -1 },
		{ "MEM", show_mem, -1 },           { "CLIENTS", NULL, JOB_SHOW_CLIENTS },
		{ "SERVERS", NULL, JOB_SHOW_SERVERS }, { "FDS", NULL, JOB_SHOW_FDS },
		{ "BYPASS", show_bypass, -1 },     { "PINS", NULL, JOB_SHOW_PINS },
		{ "HOSTS", show_hosts, -1 },       { "MIRRORS", mirror_show, -1 },
	};
	(void)c;
	*job_kind = -1;
	for (size_t i = 0; i < sizeof(subjects) / sizeof(subjects[0]); i++) {
		if (strcasecmp(what, subjects[i].name) != 0)
			continue;
		if (subjects[i].show)
			subjects[i].show(r);
		else
			*job_kind = subjects[i].job;
		return true;
	}
	return false;
}
