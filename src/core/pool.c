/*
 * pool.c - see pool.h. Lock order: pools_lock before any pool->lock; no
 * code takes pools_lock while holding a pool lock. Nothing here does
 * network I/O while holding a lock: launches and handoffs happen after
 * unlocking.
 */
#include "pool.h"
#include "fnv.h"
#include "proto.h"
#include "balance.h"
#include "bypass.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <openssl/crypto.h>

#include "client.h"
#include "config.h"
#include "log.h"
#include "route.h"
#include "runtime.h"
#include "server.h"
#include "worker.h"

static pthread_mutex_t pools_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pool *pools;              /* all pools (pools_lock) */
static struct limit_counter *limits;    /* db and user counters (pools_lock) */

static struct limit_counter *limit_get(const char *kind, const char *name)
{
	char key[64];
	snprintf(key, sizeof(key), "%s:%s", kind, name);
	for (struct limit_counter *l = limits; l; l = l->next)
		if (strcmp(l->name, key) == 0)
			return l;
	struct limit_counter *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	snprintf(l->name, sizeof(l->name), "%s", key);
	l->next = limits;
	limits = l;
	return l;
}

/* Take one unit of a shared limit (0 = unlimited). */
static bool limit_take(struct limit_counter *l, int max)
{
	int cur = __atomic_load_n(&l->count, __ATOMIC_RELAXED);
	do {
		if (max > 0 && cur >= max)
			return false;
	} while (!__atomic_compare_exchange_n(&l->count, &cur, cur + 1, false,
					      __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
	return true;
}

static void limit_put(struct limit_counter *l)
{
	__atomic_sub_fetch(&l->count, 1, __ATOMIC_ACQ_REL);
}

bool pool_client_limits_take(const char *db, const char *user, int max_db, int max_user,
			     struct limit_counter **db_out, struct limit_counter **user_out)
{
	pthread_mutex_lock(&pools_lock);
	struct limit_counter *d = limit_get("client-db", db);
	struct limit_counter *u = limit_get("client-user", user);
	pthread_mutex_unlock(&pools_lock);
	if (!d || !u)
		return false;
	if (!limit_take(d, max_db))
		return false;
	if (!limit_take(u, max_user)) {
		limit_put(d);
		return false;
	}
	*db_out = d;
	*user_out = u;
	return true;
}

void pool_client_limits_put(struct limit_counter *db, struct limit_counter *user)
{
	if (db)
		limit_put(db);
	if (user)
		limit_put(user);
}

int pool_limit_count(const char *kind, const char *name)
{
	char key[64];
	snprintf(key, sizeof(key), "%s:%s", kind, name);
	int n = 0;
	pthread_mutex_lock(&pools_lock);
	for (struct limit_counter *l = limits; l; l = l->next)
		if (strcmp(l->name, key) == 0)
			n = __atomic_load_n(&l->count, __ATOMIC_ACQUIRE);
	pthread_mutex_unlock(&pools_lock);
	return n;
}

static int resolve_host(struct pool_host *h, const char *host, int port, const char *db_name,
			char *err, size_t errlen)
{
	if (!*host || host[0] == '/') {
		const char *dir = *host ? host : "/var/run/postgresql";
		struct sockaddr_un *un = (struct sockaddr_un *)&h->addr;
		un->sun_family = AF_UNIX;
		int n = snprintf(un->sun_path, sizeof(un->sun_path), "%s/.s.PGSQL.%d", dir, port);
		if (n < 0 || (size_t)n >= sizeof(un->sun_path)) {
			snprintf(err, errlen, "unix socket path too long for database %s", db_name);
			return -ENAMETOOLONG;
		}
		h->addr_len = sizeof(*un);
		snprintf(h->addr_text, sizeof(h->addr_text), "%s", un->sun_path);
		return 0;
	}
	if (strlen(host) >= sizeof(h->name)) {
		snprintf(err, errlen, "host name too long for database %s", db_name);
		return -ENAMETOOLONG;
	}
	/* Resolved once per pool; a slow DNS answer delays only this first login. */
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	char portstr[16];
	snprintf(portstr, sizeof(portstr), "%d", port);
	int rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc || !res) {
		snprintf(err, errlen, "cannot resolve host \"%s\" of database %s: %s", host, db_name, gai_strerror(rc));
		return -EHOSTUNREACH;
	}
	memcpy(&h->addr, res->ai_addr, res->ai_addrlen);
	h->addr_len = res->ai_addrlen;
	freeaddrinfo(res);
	snprintf(h->name, sizeof(h->name), "%s", host);
	snprintf(h->addr_text, sizeof(h->addr_text), "%.100s:%d", host, port);
	return 0;
}

/* Every host of d ("host=a,b,c", ports one for all or one each). */
static int resolve_hosts(struct pool_hosts *hs, const struct config_database *d, char *err, size_t errlen)
{
	char list[1024];
	if (d->host && strlen(d->host) >= sizeof(list)) {
		snprintf(err, errlen, "host list too long for database %s", d->name);
		return -ENAMETOOLONG;
	}
	snprintf(list, sizeof(list), "%s", d->host ? d->host : "");
	memset(hs, 0, sizeof(*hs));
	char *rest = list;
	for (;;) {
		char *comma = strchr(rest, ',');
		if (comma)
			*comma = '\0';
		int i = hs->n;
		int port = d->n_ports > 1 ? d->ports[i] : d->port > 0 ? d->port : 5432;
		int rc = resolve_host(&hs->h[i], rest, port, d->name, err, errlen);
		if (rc < 0)
			return rc;
		hs->n++;
		if (!comma || hs->n == CONFIG_MAX_HOSTS)
			return 0;
		rest = comma + 1;
	}
}

static bool hosts_same(const struct pool_hosts *a, const struct pool_hosts *b)
{
	if (a->n != b->n)
		return false;
	for (int i = 0; i < a->n; i++)
		if (a->h[i].addr_len != b->h[i].addr_len || memcmp(&a->h[i].addr, &b->h[i].addr, a->h[i].addr_len) != 0 ||
		    strcmp(a->h[i].name, b->h[i].name) != 0)
			return false;
	return true;
}

static int pick(int a, int b) { return a >= 0 ? a : b; }

/* PAUSE / DISABLE given before a pool exists must hold for it too. */
struct db_flag {
	struct db_flag *next;
	char name[64];              /* database name clients use */
	bool paused, disabled;
};
static struct db_flag *db_flags;        /* (pools_lock) */
static bool all_paused;                 /* PAUSE without a database (pools_lock) */

static struct db_flag *db_flag_get(const char *db, bool create)
{
	for (struct db_flag *f = db_flags; f; f = f->next)
		if (strcmp(f->name, db) == 0)
			return f;
	if (!create)
		return NULL;
	struct db_flag *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	snprintf(f->name, sizeof(f->name), "%s", db);
	f->next = db_flags;
	db_flags = f;
	return f;
}

/* Settings a pool takes from the configuration (pool_get, RELOAD). */
struct pool_settings {
	char server_db[64], server_user[64];
	const char *server_password, *connect_query; /* in cfg */
	char *const *server_params;                    /* in cfg */
	int mode, pool_size, min_pool_size, reserve_size, max_db, max_user;
	struct config_timeouts t;
};

static int64_t pick64(int64_t a, int64_t b) { return a >= 0 ? a : b; }

/* Each timeout from [users], else [databases], else the global key. */
static void timeouts_from(const struct config *cfg, const struct config_database *d,
			  const struct config_user *u, struct config_timeouts *t)
{
	static const struct config_timeouts none = { -1, -1, -1, -1, -1, -1 };
	const struct config_timeouts *ut = u ? &u->t : &none;
	t->query_timeout_us = pick64(ut->query_timeout_us, pick64(d->t.query_timeout_us, cfg->query_timeout_us));
	t->query_wait_timeout_us = pick64(ut->query_wait_timeout_us,
					  pick64(d->t.query_wait_timeout_us, cfg->query_wait_timeout_us));
	t->idle_transaction_timeout_us = pick64(ut->idle_transaction_timeout_us,
						pick64(d->t.idle_transaction_timeout_us, cfg->idle_transaction_timeout_us));
	t->transaction_timeout_us = pick64(ut->transaction_timeout_us,
					   pick64(d->t.transaction_timeout_us, cfg->transaction_timeout_us));
	t->client_idle_timeout_us = pick64(ut->client_idle_timeout_us,
					   pick64(d->t.client_idle_timeout_us, cfg->client_idle_timeout_us));
	t->server_lifetime_us = pick64(ut->server_lifetime_us, pick64(d->t.server_lifetime_us, cfg->server_lifetime_us));
}

static void settings_from(const struct config *cfg, const struct config_database *d, const char *db,
			  const char *user, struct pool_settings *st)
{
	const struct config_user *u = config_find_user(cfg, user);
	snprintf(st->server_db, sizeof(st->server_db), "%s", d->dbname ? d->dbname : db);
	snprintf(st->server_user, sizeof(st->server_user), "%s", d->user ? d->user : user);
	st->server_password = d->password;
	st->connect_query = d->connect_query;
	st->server_params = d->server_params;
	st->mode = pick(u ? u->pool_mode : -1, pick(d->pool_mode, cfg->pool_mode));
	st->pool_size = pick(u ? u->pool_size : -1, pick(d->pool_size, cfg->default_pool_size));
	st->min_pool_size = pick(d->min_pool_size, cfg->min_pool_size);
	st->reserve_size = pick(u ? u->reserve_pool_size : -1, pick(d->reserve_pool_size, cfg->reserve_pool_size));
	st->max_db = pick(d->max_db_connections, cfg->max_db_connections);
	st->max_user = pick(u ? u->max_user_connections : -1, cfg->max_user_connections);
	timeouts_from(cfg, d, u, &st->t);
}

static char *dup_opt(const char *s) { return s ? strdup(s) : NULL; }

static bool str_same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool server_params_same(char *const *a, char *const *b)
{
	for (int i = 0; i < CONFIG_SERVER_PARAMS; i++)
		if (!str_same(a[i], b[i]))
			return false;
	return true;
}

/* Sizes and limits: plain ints read by other threads, changed in place. */
static void apply_sizes_locked(struct pool *p, const struct pool_settings *st)
{
	/* A replication connection is a session of its own: never shared,
	 * never opened ahead of its client. */
	__atomic_store_n(&p->mode, p->replication ? POOL_MODE_SESSION : st->mode, __ATOMIC_RELAXED);
	p->pool_size = st->pool_size;
	p->min_pool_size = p->replication || p->n_shards ? 0 : st->min_pool_size;
	p->reserve_size = st->reserve_size;
	p->max_db = st->max_db;
	p->max_user = st->max_user;
	p->t = st->t;
}

static void pool_destroy(struct pool *p)
{
	if (!p)
		return;
	OPENSSL_cleanse(p->lookup_secret, sizeof(p->lookup_secret));
	free(p->idle);
	free(p->slots);
	free(p->server_password);
	free(p->connect_query);
	for (int i = 0; i < CONFIG_SERVER_PARAMS; i++)
		free(p->server_params[i]);
	free(p->repl_startup);
	free(p->variant);
	free(p->welcome);
	free(p->shard_pools);
	free(p->shard_map); /* one block (pg_shard.c) */
	free(p);
}

static bool same_replication(const struct pool *p, int kind, const char *startup, uint32_t len)
{
	return p->replication == kind &&
	       (kind == 0 || (p->repl_startup_len == len && memcmp(p->repl_startup, startup, len) == 0));
}

static bool same_variant(const struct pool *p, const void *variant, uint32_t len)
{
	return p->variant_len == len && (len == 0 || memcmp(p->variant, variant, len) == 0);
}

/* A copy of n bytes (at least one byte allocated), NULL without memory. */
static void *dup_bytes(const void *src, uint32_t n)
{
	void *d = malloc(n ? n : 1);
	if (d && n)
		memcpy(d, src, n);
	return d;
}

static bool want_launch_locked(struct pool *p, int64_t now, bool for_waiters, bool reserve_ok);
static struct client *pop_waiter_locked(struct pool *p, struct worker *server_worker);
static void send_waiters_away(struct list *drained, const char *sqlstate, const char *msg);

/* What a sharded entry's pool is made of: its shards and its
 * [sharded_tables] lines (FNV-1a); 0 for an entry without shards. A RELOAD
 * that changes it makes a new pool. */
static uint64_t shard_signature(const struct config_database *d)
{
	if (!d->n_shards)
		return 0;
	uint64_t h = FNV1A_START;
	for (int i = 0; i < d->n_shards; i++) /* each name with its NUL: "ab","c" is not "a","bc" */
		h = fnv1a(h, d->shards[i], strlen(d->shards[i]) + 1);
	for (size_t i = 0; i < d->n_tables; i++) {
		const struct config_sharded_table *t = &d->tables[i];
		const char *schema = t->schema ? t->schema : "";
		h = fnv1a(h, schema, strlen(schema) + 1);
		h = fnv1a(h, t->table, strlen(t->table) + 1);
		h = fnv1a(h, t->column, strlen(t->column) + 1);
		h = fnv1a(h, &t->key_type, sizeof(t->key_type));
	}
	return h;
}

/* A pool's identity: protocol, database and user, its kind of
 * replication and protocol variant, and for a reader pool its home pool
 * (home NULL = not a reader). */
struct pool_key {
	const struct proto_ops *proto;
	const char *db, *user;
	int kind;
	const char *startup;
	uint32_t startup_len;
	const void *variant;
	uint32_t variant_len;
	struct pool *home;
	int fixed_host;
};

static bool key_matches(const struct pool *p, const struct pool_key *k)
{
	return !p->stale && p->proto == k->proto && strcmp(p->db_name, k->db) == 0 && strcmp(p->user, k->user) == 0 &&
	       same_replication(p, k->kind, k->startup, k->startup_len) &&
	       same_variant(p, k->variant, k->variant_len) && p->fixed_host == k->fixed_host &&
	       (!k->home || p->home == k->home);
}

static struct pool *find_or_make(const struct config *cfg, const struct pool_key *k, char *err, size_t errlen)
{
	const struct proto_ops *proto = k->proto;
	const char *db = k->db, *user = k->user;
	int kind = k->kind;
	pthread_mutex_lock(&pools_lock);
	struct pool *p;
	for (p = pools; p; p = p->next)
		if (key_matches(p, k))
			break;
	if (p) {
		if (p->forgotten)
			log_info("pool %s/%s in use again after autodb_idle_timeout", db, user);
		__atomic_store_n(&p->forgotten, false, __ATOMIC_RELAXED);
		p->unused_since_us = 0;
		goto out;
	}
	const struct config_database *d = config_find_database_for(cfg, db, proto->protocol);
	if (!d) {
		snprintf(err, errlen, "no such database: %s", db);
		goto out;
	}
	struct pool_settings st;
	settings_from(cfg, d, db, user, &st);
	p = calloc(1, sizeof(*p));
	static int next_bp_index; /* under pools_lock */
	if (p)
		p->bp_index = next_bp_index++;
	if (!p || !(p->idle = calloc((size_t)n_workers, sizeof(*p->idle))) ||
	    !(p->slots = aligned_alloc(64, (size_t)n_workers * sizeof(*p->slots)))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	memset(p->slots, 0, (size_t)n_workers * sizeof(*p->slots));
	p->proto = proto;
	if (resolve_hosts(&p->hosts, d, err, errlen) < 0)
		goto fail;
	p->lb_disable = d->lb_disable;
	p->autodb = strcmp(d->name, "*") == 0;
	if (kind != 0) {
		p->replication = kind;
		if (!(p->repl_startup = dup_bytes(k->startup, k->startup_len))) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		p->repl_startup_len = k->startup_len;
	}
	if (k->variant_len) {
		if (!(p->variant = dup_bytes(k->variant, k->variant_len))) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		p->variant_len = k->variant_len;
	}
	snprintf(p->db_name, sizeof(p->db_name), "%s", db);
	snprintf(p->user, sizeof(p->user), "%s", user);
	snprintf(p->server_db, sizeof(p->server_db), "%s", st.server_db);
	snprintf(p->server_user, sizeof(p->server_user), "%s", st.server_user);
	p->server_password = dup_opt(st.server_password);
	p->connect_query = dup_opt(st.connect_query);
	for (int i = 0; i < CONFIG_SERVER_PARAMS; i++) {
		p->server_params[i] = dup_opt(st.server_params[i]);
		if (st.server_params[i] && !p->server_params[i]) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	}
	apply_sizes_locked(p, &st);
	if (d->n_shards) {
		/* A logical pool: its shards' pools hold the servers
		 * (with_shards fills them in, outside pools_lock). */
		if (!(p->shard_pools = calloc((size_t)d->n_shards, sizeof(*p->shard_pools)))) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		p->n_shards = d->n_shards;
		p->shard_sig = shard_signature(d);
		p->min_pool_size = 0;
	}
	p->db_count = limit_get("db", p->server_db);
	p->user_count = limit_get("user", p->server_user);
	if (!p->db_count || !p->user_count) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	struct db_flag *f = db_flag_get(db, false);
	p->paused = all_paused || (f && f->paused);
	p->disabled = f && f->disabled;
	pthread_mutex_init(&p->lock, NULL);
	list_init(&p->waiters);
	for (int i = 0; i < n_workers; i++)
		list_init(&p->idle[i]);
	p->fixed_host = k->fixed_host;
	p->home = k->home ? k->home : p;
	p->route = k->home ? k->home->route : route_new(p, d);
	p->next = pools;
	pools = p;
	if (k->home)
		log_info("pool %s/%s: reads go to host %s too", db, user, p->hosts.h[k->fixed_host].addr_text);
	else if (p->n_shards)
		log_info("pool %s/%s created: sharded over %d shards, mode=%d", db, user, p->n_shards, p->mode);
	else
		log_info("pool %s/%s created: server %s%s db=%s user=%s mode=%d size=%d", db, user,
		 p->hosts.h[0].addr_text, p->hosts.n > 1 ? " (and more)" : "", p->server_db, p->server_user, p->mode, p->pool_size);
	goto out;
fail:
	pool_destroy(p);
	p = NULL;
out:
	pthread_mutex_unlock(&pools_lock);
	return p;
}

/* A sharded pool's shard pools, made when missing (each an ordinary pool
 * of its shard's entry and the same user). Returns p, or NULL with err
 * set. Sharded clients need transaction or statement mode: sluice decides
 * at each transaction where it goes. */
static struct pool *with_shards(const struct config *cfg, struct pool *p, char *err, size_t errlen)
{
	if (!p || !p->n_shards)
		return p;
	if (p->mode == POOL_MODE_SESSION) {
		snprintf(err, errlen, "database \"%s\" is sharded: it needs pool_mode = transaction or statement",
			 p->db_name);
		return NULL;
	}
	const struct config_database *d = config_find_database_for(cfg, p->db_name, p->proto->protocol);
	for (int i = 0; i < p->n_shards; i++) {
		if (__atomic_load_n(&p->shard_pools[i], __ATOMIC_ACQUIRE))
			continue;
		if (!d || !d->shard_db || d->n_shards != p->n_shards) {
			snprintf(err, errlen, "database \"%s\": its shards changed; reconnect", p->db_name);
			return NULL;
		}
		const char *name = cfg->databases[d->shard_db[i]].name;
		struct pool *sp = pool_get(cfg, p->proto, name, p->user, err, errlen);
		if (!sp)
			return NULL;
		if (sp->mode == POOL_MODE_SESSION) {
			snprintf(err, errlen, "database \"%s\" is sharded: its shard \"%s\" needs pool_mode = "
				 "transaction or statement", p->db_name, name);
			return NULL;
		}
		struct pool *none = NULL;
		__atomic_compare_exchange_n(&p->shard_pools[i], &none, sp, false, __ATOMIC_ACQ_REL,
					    __ATOMIC_ACQUIRE);
	}
	return p;
}

struct pool *pool_shard(struct pool *p, int i, char *err, size_t errlen)
{
	struct pool *sp = __atomic_load_n(&p->shard_pools[i], __ATOMIC_ACQUIRE);
	if (!__atomic_load_n(&sp->stale, __ATOMIC_RELAXED))
		return sp;
	struct pool *now = pool_current(sp, err, errlen);
	if (now)
		__atomic_compare_exchange_n(&p->shard_pools[i], &sp, now, false, __ATOMIC_ACQ_REL,
					    __ATOMIC_ACQUIRE);
	return now;
}

struct pool *pool_for_login(struct pool *p)
{
	return p->n_shards ? __atomic_load_n(&p->shard_pools[0], __ATOMIC_ACQUIRE) : p;
}

struct pool *pool_get(const struct config *cfg, const struct proto_ops *proto, const char *db,
		      const char *user, char *err, size_t errlen)
{
	struct pool_key k = { .proto = proto, .db = db, .user = user, .fixed_host = -1 };
	return with_shards(cfg, find_or_make(cfg, &k, err, errlen), err, errlen);
}

struct pool *pool_get_variant(const struct config *cfg, const struct proto_ops *proto, const char *db,
			      const char *user, const void *variant, uint32_t variant_len, char *err, size_t errlen)
{
	struct pool_key k = { .proto = proto, .db = db, .user = user, .variant = variant,
			      .variant_len = variant_len, .fixed_host = -1 };
	return find_or_make(cfg, &k, err, errlen);
}

struct pool *pool_get_replication(const struct config *cfg, const struct proto_ops *proto, const char *db,
				  const char *user, int kind, const char *startup, uint32_t startup_len,
				  char *err, size_t errlen)
{
	struct pool_key k = { .proto = proto, .db = db, .user = user, .kind = kind, .startup = startup,
			      .startup_len = startup_len, .fixed_host = -1 };
	return find_or_make(cfg, &k, err, errlen);
}

struct pool *pool_get_reader(struct pool *p, int host)
{
	char err[200];
	struct pool_key k = { .proto = p->proto, .db = p->db_name, .user = p->user, .variant = p->variant,
			      .variant_len = p->variant_len, .home = p, .fixed_host = host };
	struct pool *r = find_or_make(runtime_config(), &k, err, sizeof(err));
	if (!r)
		log_warning("pool %s/%s: no reader pool for host %d: %s", p->db_name, p->user, host, err);
	return r;
}

void pool_hosts_changed(struct pool *p)
{
	struct worker *w = worker_self();
	struct list away;
	list_init(&away);
	pthread_mutex_lock(&p->lock);
	p->login_fail_until_us = 0;
	p->hosts_failed = 0;
	bool launch = w && want_launch_locked(p, w->loop.now_us, true, false);
	/* A reader pool whose standby is gone: its waiters are routed anew
	 * (to another standby or the primary) rather than wait for it. */
	if (p->fixed_host >= 0 && !route_host_available(p)) {
		struct client *c;
		while ((c = pop_waiter_locked(p, NULL)) != NULL)
			list_add_tail(&away, &c->wait_node);
	}
	pthread_mutex_unlock(&p->lock);
	send_waiters_away(&away, NULL, NULL);
	if (launch)
		p->proto->server_launch(w, p);
}

/* Decide under p->lock whether to open one more server; counts it. */
static bool want_launch_locked(struct pool *p, int64_t now, bool for_waiters, bool reserve_ok)
{
	if (now < p->login_fail_until_us || p->paused || p->stale)
		return false;
	/* A server being checked is about to be handed on, as one logging in. */
	if (for_waiters && p->n_waiting <= p->n_connecting + p->n_checking)
		return false;
	/* Replication connections pair with their clients one to one: only
	 * max_db_connections and max_user_connections bound them. */
	int limit = p->replication ? INT_MAX : p->pool_size + (reserve_ok ? p->reserve_size : 0);
	if (p->n_servers >= limit)
		return false;
	/* Routed: only when a host in the right role is known. */
	if (p->route && !route_host_available(p))
		return false;
	if (!limit_take(p->db_count, p->max_db))
		return false;
	if (!limit_take(p->user_count, p->max_user)) {
		limit_put(p->db_count);
		return false;
	}
	p->n_servers++;
	p->n_connecting++;
	return true;
}

static int first_worker_with_idle(struct pool *p)
{
	for (int i = 0; i < n_workers; i++)
		if (!list_empty(&p->idle[i]))
			return i;
	return -1;
}

static void post_poke(struct pool *p, int wid)
{
	struct mail *m = calloc(1, sizeof(*m));
	if (!m)
		return; /* the tick serves the queue later */
	m->kind = MAIL_POKE_POOL;
	m->pool = p;
	worker_post(&workers[wid], m);
}

/* server_check_delay: a server idle this long runs server_check_query
 * before a client gets it (PgBouncer's sanity check). The caller popped s
 * from p->idle and holds p->lock; when due, s is counted as checking. */
static bool check_due_locked(struct pool *p, const struct server *s, int64_t now)
{
	const struct config *cfg = runtime_config();
	if (!cfg->server_check_query || !*cfg->server_check_query ||
	    now - s->state_since_us < cfg->server_check_delay_us)
		return false;
	p->n_checking++;
	return true;
}

struct server *pool_acquire(struct pool *p, struct client *c, const char **fail)
{
	static __thread char fail_msg[200];
	struct worker *w = c->worker;
	int64_t now = w->loop.now_us;
	*fail = NULL;
	if (p->n_shards) { /* its shards' pools serve (pg_shard.c picks one) */
		*fail = "internal error: a sharded database has no servers of its own";
		return NULL;
	}
	pthread_mutex_lock(&p->lock);
	while (list_empty(&p->waiters) && !list_empty(&p->idle[w->id]) && !p->paused) {
		struct server *s = list_entry(list_pop(&p->idle[w->id]), struct server, pool_node);
		p->n_idle--;
		bool outdated = pool_server_outdated(s);
		bool check = !outdated && check_due_locked(p, s, now);
		pthread_mutex_unlock(&p->lock);
		if (outdated) /* RECONNECT or RELOAD since it went idle: the tick has
			       * not closed it yet; do it now rather than hand it out. */
			s->pool->proto->server_close(s, "reconnect requested (RECONNECT or RELOAD)");
		else if (check)
			s->pool->proto->server_check(s); /* comes back through pool_release */
		else
			return s;
		pthread_mutex_lock(&p->lock);
	}
	/* bpf_bypass: a server idle in the kernel comes back for this client. */
	struct server *ks = list_empty(&p->waiters) && !p->paused ? bypass_server_reclaim(p, w) : NULL;
	if (ks) {
		pthread_mutex_unlock(&p->lock);
		if (!pool_server_outdated(ks))
			return ks;
		p->proto->server_close(ks, "reconnect requested (RECONNECT or RELOAD)");
		pthread_mutex_lock(&p->lock);
	}
	list_add_tail(&p->waiters, &c->wait_node);
	c->queued = true;
	c->wait_pool = p;
	c->wait_since_us = now;
	p->n_waiting++;
	bypass_pool_waiters(p, p->n_waiting);
	int poke = p->n_idle > 0 && !p->paused ? first_worker_with_idle(p) : -1;
	for (int i = 0; poke < 0 && !p->paused && i < n_workers; i++)
		if (bypass_lent_count(p, &workers[i]) > 0)
			poke = i;
	bool launch = poke < 0 && want_launch_locked(p, now, true, false);
	if (!launch && poke < 0 && p->n_servers == 0 && p->login_auth_error && !p->paused &&
	    now < p->login_fail_until_us) {
		list_del(&c->wait_node);
		c->queued = false;
		p->n_waiting--;
		snprintf(fail_msg, sizeof(fail_msg), "server login has been failing, try again later (server_login_retry): %.120s",
			 p->login_error);
		*fail = fail_msg;
	}
	pthread_mutex_unlock(&p->lock);
	if (poke >= 0)
		post_poke(p, poke);
	if (launch)
		p->proto->server_launch(w, p);
	return NULL;
}

/* Give server s (on worker s->worker) to client c popped from the queue. */
static void deliver(struct server *s, struct client *c)
{
	if (c->worker == s->worker) {
		c->proto->client_on_server(c, s);
		return;
	}
	balance_count_handoff();
	struct mail *m = calloc(1, sizeof(*m));
	s->pool->proto->server_detach(s);
	if (!m) {
		log_error("out of memory handing a server over; closing both");
		abort();
	}
	m->kind = MAIL_HANDOFF;
	m->client = c;
	m->server = s;
	worker_post(c->worker, m);
}

/* Pop the first waiter (p->lock held). */
static struct client *pop_waiter_locked(struct pool *p, struct worker *server_worker)
{
	struct list *n = list_pop(&p->waiters);
	if (!n)
		return NULL;
	struct client *c = list_entry(n, struct client, wait_node);
	c->queued = false;
	p->n_waiting--;
	bypass_pool_waiters(p, p->n_waiting);
	if (c->worker != server_worker)
		c->handoff_pending = true;
	return c;
}

void pool_release(struct server *s)
{
	struct pool *p = s->pool;
	struct worker *w = s->worker;
	const struct config *cfg = runtime_config();
	pthread_mutex_lock(&p->lock);
	/* server_check_delay = 0: the check always runs (PgBouncer's
	 * meaning), also on a server going from one client straight to a
	 * waiting one; with a delay, a server just released needs none. */
	if ((s->state == SERVER_ACTIVE || s->state == SERVER_RESET) && cfg->server_check_delay_us == 0 &&
	    cfg->server_check_query && *cfg->server_check_query && !p->paused && !list_empty(&p->waiters)) {
		p->n_checking++;
		pthread_mutex_unlock(&p->lock);
		p->proto->server_check(s); /* comes back here, as SERVER_CHECK */
		return;
	}
	if (s->state == SERVER_CONNECTING || s->state == SERVER_LOGIN) {
		p->n_connecting--;
		p->login_error[0] = '\0'; /* a login worked: the failure is over */
		p->hosts_failed = 0;
	} else if (s->state == SERVER_CHECK) {
		p->n_checking--;
	}
	/* Not linked to anyone from here on (a waiter links it again). */
	s->state = SERVER_IDLE;
	struct client *c = p->paused ? NULL : pop_waiter_locked(p, w);
	/* bpf_bypass: an idle server goes to the kernel's idle set, where
	 * clients in the kernel take it without waking sluice. */
	if (!c && !bypass_server_lend(s)) {
		s->state_since_us = w->loop.now_us;
		/* Taken from the head: server_round_robin reuses the longest
		 * idle first, spreading load over all servers (and the hosts
		 * behind them); by default the most recent first, as
		 * PgBouncer, so few servers stay warm and the rest time out. */
		if (runtime_config()->server_round_robin)
			list_add_tail(&p->idle[w->id], &s->pool_node);
		else
			list_add_head(&p->idle[w->id], &s->pool_node);
		p->n_idle++;
	}
	pthread_mutex_unlock(&p->lock);
	if (c)
		deliver(s, c);
	else
		s->pool->proto->server_watch_idle(s);
}

void pool_serve_waiters(struct pool *p, struct worker *w)
{
	for (;;) {
		pthread_mutex_lock(&p->lock);
		if (list_empty(&p->waiters) || p->paused) {
			pthread_mutex_unlock(&p->lock);
			return;
		}
		struct server *s;
		if (!list_empty(&p->idle[w->id])) {
			s = list_entry(list_pop(&p->idle[w->id]), struct server, pool_node);
			p->n_idle--;
			if (check_due_locked(p, s, w->loop.now_us)) {
				pthread_mutex_unlock(&p->lock);
				s->pool->proto->server_check(s); /* comes back through pool_release */
				continue;
			}
		} else if (!(s = bypass_server_reclaim(p, w))) {
			pthread_mutex_unlock(&p->lock);
			return;
		}
		struct client *c = pop_waiter_locked(p, w);
		pthread_mutex_unlock(&p->lock);
		deliver(s, c);
	}
}

bool pool_take_idle(struct server *s)
{
	struct pool *p = s->pool;
	bool taken = false;
	pthread_mutex_lock(&p->lock);
	if (s->state == SERVER_IDLE && !list_empty(&s->pool_node)) {
		list_del(&s->pool_node);
		p->n_idle--;
		taken = true;
	}
	pthread_mutex_unlock(&p->lock);
	return taken;
}

bool pool_login_failing(struct pool *p, char *why, size_t len)
{
	pthread_mutex_lock(&p->lock);
	bool failing = p->login_error[0] != '\0';
	if (failing)
		snprintf(why, len, "%s", p->login_error);
	pthread_mutex_unlock(&p->lock);
	return failing;
}

bool pool_dequeue(struct pool *p, struct client *c)
{
	bool removed = false;
	pthread_mutex_lock(&p->lock);
	if (c->queued) {
		list_del(&c->wait_node);
		c->queued = false;
		p->n_waiting--;
		bypass_pool_waiters(p, p->n_waiting);
		removed = true;
	}
	pthread_mutex_unlock(&p->lock);
	return removed;
}

void pool_server_gone(struct pool *p, int state)
{
	struct worker *w = worker_self();
	pthread_mutex_lock(&p->lock);
	p->n_servers--;
	if (state == SERVER_CONNECTING || state == SERVER_LOGIN)
		p->n_connecting--;
	else if (state == SERVER_CHECK)
		p->n_checking--;
	limit_put(p->db_count);
	limit_put(p->user_count);
	bool launch = w && want_launch_locked(p, w->loop.now_us, true, false);
	pthread_mutex_unlock(&p->lock);
	if (launch)
		p->proto->server_launch(w, p);
}

/* Waiters taken off a queue (pop_waiter_locked, chained by wait_node):
 * each fails with sqlstate and msg, or with sqlstate NULL goes back to its
 * protocol to be routed anew (proto.h client_reroute); on its own worker,
 * by mail when another. */
static void send_waiters_away(struct list *drained, const char *sqlstate, const char *msg)
{
	struct worker *self = worker_self();
	struct list *n;
	while ((n = list_pop(drained)) != NULL) {
		struct client *c = list_entry(n, struct client, wait_node);
		if (c->worker == self) {
			c->handoff_pending = false;
			if (c->closing)
				worker_bury_client(self, c);
			else if (sqlstate)
				c->proto->client_fail(c, sqlstate, msg);
			else
				c->proto->client_reroute(c);
			continue;
		}
		struct mail *m = calloc(1, sizeof(*m));
		if (!m)
			abort();
		m->kind = sqlstate ? MAIL_FAIL_CLIENT : MAIL_REROUTE;
		m->client = c;
		if (sqlstate) {
			snprintf(m->sqlstate, sizeof(m->sqlstate), "%s", sqlstate);
			snprintf(m->message, sizeof(m->message), "%s", msg);
		}
		worker_post(c->worker, m);
	}
}

void pool_login_failed(struct pool *p, const char *sqlstate, const char *msg, bool auth_error)
{
	const struct config *cfg = runtime_config();
	struct list failed;
	list_init(&failed);
	pthread_mutex_lock(&p->lock);
	p->login_fail_until_us = loop_now_us() + cfg->server_login_retry_us;
	snprintf(p->login_error, sizeof(p->login_error), "%s", msg);
	snprintf(p->login_sqlstate, sizeof(p->login_sqlstate), "%s", sqlstate);
	p->login_auth_error = auth_error;
	if (auth_error) {
		struct client *c;
		while ((c = pop_waiter_locked(p, NULL)) != NULL)
			list_add_tail(&failed, &c->wait_node);
	}
	pthread_mutex_unlock(&p->lock);
	log_warning("pool %s/%s: server login failed: %s", p->db_name, p->user, msg);
	send_waiters_away(&failed, sqlstate, msg);
}

int pool_pick_host(struct pool *p)
{
	if (p->route)
		return route_pick_host(p);
	if (p->hosts.n <= 1)
		return 0;
	pthread_mutex_lock(&p->lock);
	int i = p->lb_disable ? p->cur_host : p->next_host;
	p->next_host = (p->next_host + 1) % p->hosts.n;
	pthread_mutex_unlock(&p->lock);
	return i;
}

bool pool_host_failed(struct pool *p, int i)
{
	/* Routed: the route picks the host; its monitors tell when another
	 * one takes over (pool_hosts_changed ends the pause). */
	if (p->hosts.n <= 1 || p->route)
		return true;
	pthread_mutex_lock(&p->lock);
	if (p->lb_disable && p->cur_host == i)
		p->cur_host = (i + 1) % p->hosts.n;
	p->hosts_failed |= 1u << i;
	bool all = __builtin_popcount(p->hosts_failed) >= p->hosts.n;
	if (all)
		p->hosts_failed = 0;
	pthread_mutex_unlock(&p->lock);
	return all;
}

void pool_set_lookup_secret(struct pool *p, const char *secret)
{
	pthread_mutex_lock(&p->lock);
	snprintf(p->lookup_secret, sizeof(p->lookup_secret), "%s", secret);
	pthread_mutex_unlock(&p->lock);
}

bool pool_get_lookup_secret(struct pool *p, char *out, size_t len)
{
	pthread_mutex_lock(&p->lock);
	bool have = p->lookup_secret[0] != '\0';
	if (have)
		snprintf(out, len, "%s", p->lookup_secret);
	pthread_mutex_unlock(&p->lock);
	return have;
}

void pool_set_scram_keys(struct pool *p, const uint8_t client_key[32], const uint8_t server_key[32])
{
	pthread_mutex_lock(&p->lock);
	memcpy(p->scram_client_key, client_key, 32);
	memcpy(p->scram_server_key, server_key, 32);
	p->have_scram_keys = true;
	pthread_mutex_unlock(&p->lock);
}

bool pool_get_scram_keys(struct pool *p, uint8_t client_key[32], uint8_t server_key[32])
{
	pthread_mutex_lock(&p->lock);
	bool have = p->have_scram_keys;
	if (have) {
		memcpy(client_key, p->scram_client_key, 32);
		memcpy(server_key, p->scram_server_key, 32);
	}
	pthread_mutex_unlock(&p->lock);
	return have;
}

void pool_set_welcome(struct pool *p, const uint8_t *params, uint32_t len)
{
	pthread_mutex_lock(&p->lock);
	if (!p->welcome && len) {
		p->welcome = malloc(len);
		if (p->welcome) {
			memcpy(p->welcome, params, len);
			p->welcome_len = len;
		}
	}
	pthread_mutex_unlock(&p->lock);
}

bool pool_copy_welcome(struct pool *p, struct iobuf *out)
{
	pthread_mutex_lock(&p->lock);
	bool known = p->welcome != NULL;
	if (known && out)
		iobuf_append(out, p->welcome, p->welcome_len);
	pthread_mutex_unlock(&p->lock);
	return known;
}

/* p waits for a server but a shared limit (max_db_connections or
 * max_user_connections) is used up: close one idle server of another pool
 * that shares the limit and sits on worker w, so p can open its own. */
static void evict_idle_for(struct pool *p, struct worker *w, struct pool *head)
{
	for (struct pool *q = head; q; q = q->next) {
		if (q == p || (q->db_count != p->db_count && q->user_count != p->user_count))
			continue;
		pthread_mutex_lock(&q->lock);
		struct list *n = list_pop(&q->idle[w->id]);
		if (n)
			q->n_idle--;
		pthread_mutex_unlock(&q->lock);
		if (n) {
			struct server *s = list_entry(n, struct server, pool_node);
			s->pool->proto->server_close(s, "idle server closed for a pool waiting on a shared connection limit");
			return;
		}
	}
}

/* autodb_idle_timeout (worker 0's tick): a pool made from the "*" entry
 * with no client, waiter or server that long is forgotten, as PgBouncer
 * frees such a database: SHOW and /metrics stop listing it and its
 * statistics restart from zero. Its memory stays, reused when a client
 * comes back: workers and the console walk the pool list without a lock,
 * so a pool is never freed while they run. */
static void forget_idle_autodbs(int64_t now_us)
{
	int64_t timeout = runtime_config()->autodb_idle_timeout_us;
	pthread_mutex_lock(&pools_lock);
	for (struct pool *p = pools; p; p = p->next) {
		if (!p->autodb || p->forgotten)
			continue;
		pthread_mutex_lock(&p->lock);
		bool busy = p->n_servers > 0 || p->n_waiting > 0 || __atomic_load_n(&p->n_clients, __ATOMIC_RELAXED) > 0;
		pthread_mutex_unlock(&p->lock);
		if (busy) {
			p->unused_since_us = 0;
		} else if (!p->unused_since_us) {
			p->unused_since_us = now_us;
		} else if (now_us - p->unused_since_us > timeout) {
			__atomic_store_n(&p->forgotten, true, __ATOMIC_RELAXED);
			memset(p->slots, 0, (size_t)n_workers * sizeof(*p->slots));
			memset(&p->period_start, 0, sizeof(p->period_start));
			memset(&p->period_delta, 0, sizeof(p->period_delta));
			p->period_us = 0;
			log_info("pool %s/%s forgotten: unused for autodb_idle_timeout", p->db_name, p->user);
		}
	}
	pthread_mutex_unlock(&pools_lock);
}

void pool_tick(struct worker *w, int64_t now_us)
{
	if (w->id == 0)
		forget_idle_autodbs(now_us);
	const struct config *cfg = runtime_config();
	pthread_mutex_lock(&pools_lock);
	struct pool *head = pools;
	pthread_mutex_unlock(&pools_lock);
	/* Pools are never freed while workers run, and new ones are pushed at
	 * the head, so walking from a snapshot of the head is safe. */
	for (struct pool *p = head; p; p = p->next) {
		pthread_mutex_lock(&p->lock);
		bool reserve_ok = false;
		if (!list_empty(&p->waiters)) {
			struct client *first = list_entry(p->waiters.next, struct client, wait_node);
			reserve_ok = now_us - first->wait_since_us >= cfg->reserve_pool_timeout_us;
		}
		bool launch = want_launch_locked(p, now_us, true, reserve_ok);
		if (!launch && p->n_servers < p->min_pool_size && p->welcome &&
		    !__atomic_load_n(&p->forgotten, __ATOMIC_RELAXED))
			launch = want_launch_locked(p, now_us, false, false);
		bool serve = !list_empty(&p->waiters) && !list_empty(&p->idle[w->id]) && !p->paused;
		bool starved = !launch && p->n_waiting > p->n_connecting + p->n_checking && p->n_idle == 0 &&
			       p->n_servers < p->pool_size && now_us >= p->login_fail_until_us;
		pthread_mutex_unlock(&p->lock);
		if (launch)
			p->proto->server_launch(w, p);
		else if (starved)
			evict_idle_for(p, w, head);
		if (serve)
			pool_serve_waiters(p, w);
	}
}

void pool_free_all(void)
{
	pthread_mutex_lock(&pools_lock);
	while (pools) {
		struct pool *p = pools;
		pools = p->next;
		pthread_mutex_destroy(&p->lock);
		pool_destroy(p);
	}
	while (db_flags) {
		struct db_flag *f = db_flags;
		db_flags = f->next;
		free(f);
	}
	while (limits) {
		struct limit_counter *l = limits;
		limits = l->next;
		free(l);
	}
	pthread_mutex_unlock(&pools_lock);
}

/* ---- inspection and operator controls ---- */

static struct pool *pools_head(void)
{
	pthread_mutex_lock(&pools_lock);
	struct pool *head = pools;
	pthread_mutex_unlock(&pools_lock);
	return head;
}

void pool_foreach(void (*fn)(struct pool *p, void *arg), void *arg)
{
	for (struct pool *p = pools_head(); p; p = p->next)
		if (!__atomic_load_n(&p->forgotten, __ATOMIC_RELAXED))
			fn(p, arg);
}

void pool_foreach_all(void (*fn)(struct pool *p, void *arg), void *arg)
{
	for (struct pool *p = pools_head(); p; p = p->next)
		fn(p, arg);
}

void pool_get_counts(struct pool *p, int64_t now_us, struct pool_counts *out)
{
	pthread_mutex_lock(&p->lock);
	out->cl_waiting = p->n_waiting;
	int lent = 0;
	for (int i = 0; i < n_workers; i++)
		lent += bypass_lent_count(p, &workers[i]);
	out->sv_idle = p->n_idle + lent;
	out->sv_login = p->n_connecting;
	out->sv_tested = p->n_checking;
	out->sv_active = p->n_servers - out->sv_idle - p->n_connecting - p->n_checking;
	out->maxwait_us = 0;
	if (!list_empty(&p->waiters)) {
		struct client *first = list_entry(p->waiters.next, struct client, wait_node);
		out->maxwait_us = now_us - first->wait_since_us;
	}
	pthread_mutex_unlock(&p->lock);
	/* Clients waiting only to learn the welcome parameters are not
	 * counted in n_clients yet. */
	int clients = __atomic_load_n(&p->n_clients, __ATOMIC_RELAXED);
	out->cl_active = clients - out->cl_waiting;
	if (out->cl_active < 0)
		out->cl_active = 0;
	out->prepared = __atomic_load_n(&p->client_prepared, __ATOMIC_RELAXED);
	out->prepared_bytes = __atomic_load_n(&p->client_prepared_bytes, __ATOMIC_RELAXED);
	if (out->sv_active < 0)
		out->sv_active = 0;
}

void pool_get_totals(struct pool *p, struct stats_totals *out)
{
	memset(out, 0, sizeof(*out));
	for (int i = 0; i < n_workers; i++)
		stats_accumulate(out, &p->slots[i]);
}

void pool_get_period(struct pool *p, struct stats_totals *delta, int64_t *period_us)
{
	pthread_mutex_lock(&pools_lock);
	*delta = p->period_delta;
	*period_us = p->period_us;
	pthread_mutex_unlock(&pools_lock);
}

#define DELTA(f) d.f = now.f - p->period_start.f

void pool_roll_period(int64_t period_us)
{
	pthread_mutex_lock(&pools_lock);
	for (struct pool *p = pools; p; p = p->next) {
		struct stats_totals now, d;
		pool_get_totals(p, &now);
		memset(&d, 0, sizeof(d));
		DELTA(xacts);
		DELTA(queries);
		DELTA(bytes_in);
		DELTA(bytes_out);
		DELTA(xact_us);
		DELTA(query_us);
		DELTA(wait_us);
		DELTA(assigns);
		DELTA(client_parses);
		DELTA(server_parses);
		DELTA(binds);
		p->period_delta = d;
		p->period_start = now;
		p->period_us = period_us;
	}
	pthread_mutex_unlock(&pools_lock);
}

static bool db_matches(const struct pool *p, const char *db)
{
	return !db || strcmp(p->db_name, db) == 0;
}

int pool_set_paused(const char *db, bool paused)
{
	int n = 0;
	pthread_mutex_lock(&pools_lock);
	if (!db) {
		all_paused = paused;
		for (struct db_flag *f = db_flags; f && !paused; f = f->next)
			f->paused = false;
	} else {
		struct db_flag *f = db_flag_get(db, true);
		if (f)
			f->paused = paused;
	}
	for (struct pool *p = pools; p; p = p->next) {
		if (!db_matches(p, db))
			continue;
		struct db_flag *f = db_flag_get(p->db_name, false);
		pthread_mutex_lock(&p->lock);
		/* RESUME of one database leaves a global PAUSE in force. */
		__atomic_store_n(&p->paused, paused || all_paused || (f && f->paused), __ATOMIC_RELAXED);
		pthread_mutex_unlock(&p->lock);
		n++;
	}
	pthread_mutex_unlock(&pools_lock);
	bypass_sync_pools(); /* before PAUSE or RESUME is answered */
	return n;
}

int pool_set_disabled(const char *db, bool disabled)
{
	int n = 0;
	pthread_mutex_lock(&pools_lock);
	struct db_flag *f = db_flag_get(db, true);
	if (f)
		f->disabled = disabled;
	for (struct pool *p = pools; p; p = p->next) {
		if (db_matches(p, db)) {
			__atomic_store_n(&p->disabled, disabled, __ATOMIC_RELAXED);
			n++;
		}
	}
	pthread_mutex_unlock(&pools_lock);
	return n;
}

bool pool_db_disabled(const char *db)
{
	pthread_mutex_lock(&pools_lock);
	struct db_flag *f = db_flag_get(db, false);
	bool d = f && f->disabled;
	pthread_mutex_unlock(&pools_lock);
	return d;
}

bool pool_db_paused(const char *db)
{
	pthread_mutex_lock(&pools_lock);
	struct db_flag *f = db_flag_get(db, false);
	bool d = all_paused || (f && f->paused);
	pthread_mutex_unlock(&pools_lock);
	return d;
}

static void bump_generation_locked(struct pool *p)
{
	__atomic_add_fetch(&p->generation, 1, __ATOMIC_RELAXED);
}

int pool_reconnect(const char *db)
{
	int n = 0;
	for (struct pool *p = pools_head(); p; p = p->next) {
		if (!db_matches(p, db))
			continue;
		pthread_mutex_lock(&p->lock);
		bump_generation_locked(p);
		pthread_mutex_unlock(&p->lock);
		n++;
	}
	bypass_sync_pools(); /* servers lent before are not linked again */
	return n;
}

int pool_open_servers(const char *db)
{
	int n = 0;
	for (struct pool *p = pools_head(); p; p = p->next) {
		if (!db_matches(p, db))
			continue;
		pthread_mutex_lock(&p->lock);
		n += p->n_servers;
		pthread_mutex_unlock(&p->lock);
	}
	return n;
}

bool pool_server_outdated(const struct server *s)
{
	struct pool *p = s->pool;
	return s->generation != __atomic_load_n(&p->generation, __ATOMIC_RELAXED) ||
	       __atomic_load_n(&p->paused, __ATOMIC_RELAXED) ||
	       __atomic_load_n(&p->stale, __ATOMIC_RELAXED) ||
	       (p->route && !s->aside && !route_server_current(s));
}

/* Does p route as entry d says? */
static bool route_same(const struct pool *p, const struct config_database *d)
{
	const struct route *r = p->route;
	if (!r)
		return config_database_target(d) == CONFIG_TARGET_ANY && !d->read_routing;
	return r->target == config_database_target(d) && r->read_routing == d->read_routing &&
	       r->primary_reads == d->primary_reads &&
	       r->max_lag_bytes == d->max_standby_lag_bytes && r->max_lag_us == d->max_standby_lag_us;
}

void pool_reconfigure(const struct config *cfg)
{
	pthread_mutex_lock(&pools_lock);
	for (struct pool *p = pools; p; p = p->next) {
		if (p->stale)
			continue;
		const struct config_database *d = config_find_database_for(cfg, p->db_name, p->proto->protocol);
		if (!d)
			continue; /* removed: no new logins (client.c checks); old clients go on */
		struct pool_settings st;
		settings_from(cfg, d, p->db_name, p->user, &st);
		struct pool_hosts probe;
		char err[200];
		bool moved = resolve_hosts(&probe, d, err, sizeof(err)) < 0 || !hosts_same(&probe, &p->hosts) ||
			     d->lb_disable != p->lb_disable;
		bool changed = moved || strcmp(st.server_db, p->server_db) != 0 || !route_same(p, d) ||
			       strcmp(st.server_user, p->server_user) != 0 ||
			       !str_same(st.server_password, p->server_password) ||
			       !str_same(st.connect_query, p->connect_query) ||
			       !server_params_same(st.server_params, p->server_params) ||
			       shard_signature(d) != p->shard_sig;
		pthread_mutex_lock(&p->lock);
		if (changed) {
			/* A new pool is made at the next login; this one drains. */
			__atomic_store_n(&p->stale, true, __ATOMIC_RELAXED);
			bump_generation_locked(p);
		} else {
			apply_sizes_locked(p, &st);
		}
		pthread_mutex_unlock(&p->lock);
		if (changed)
			log_info("pool %s/%s: server settings changed; its connections are replaced", p->db_name, p->user);
	}
	/* Reader pools follow their home pool. */
	for (struct pool *p = pools; p; p = p->next) {
		if (p->home != p && __atomic_load_n(&p->home->stale, __ATOMIC_RELAXED) && !p->stale) {
			pthread_mutex_lock(&p->lock);
			__atomic_store_n(&p->stale, true, __ATOMIC_RELAXED);
			bump_generation_locked(p);
			pthread_mutex_unlock(&p->lock);
		}
	}
	pthread_mutex_unlock(&pools_lock);
	bypass_sync_pools();
}

struct pool *pool_current(struct pool *p, char *err, size_t errlen)
{
	if (!__atomic_load_n(&p->stale, __ATOMIC_RELAXED))
		return p;
	struct pool_key k = { .proto = p->proto, .db = p->db_name, .user = p->user, .variant = p->variant,
			      .variant_len = p->variant_len, .fixed_host = -1 };
	return with_shards(runtime_config(), find_or_make(runtime_config(), &k, err, errlen), err, errlen);
}

int pool_host_port(const struct pool_host *h)
{
	if (h->addr.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&h->addr)->sin_port);
	if (h->addr.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&h->addr)->sin6_port);
	return 0;
}
