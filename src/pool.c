/*
 * pool.c - see pool.h. Lock order: pools_lock before any pool->lock; no
 * code takes pools_lock while holding a pool lock. Nothing here does
 * network I/O while holding a lock: launches and handoffs happen after
 * unlocking.
 */
#include "pool.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "client.h"
#include "config.h"
#include "log.h"
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

static int resolve_address(struct pool *p, const struct config_database *d, char *err, size_t errlen)
{
	int port = d->port > 0 ? d->port : 5432;
	const char *host = d->host;
	if (!host || !*host || host[0] == '/') {
		const char *dir = host && *host ? host : "/var/run/postgresql";
		struct sockaddr_un *un = (struct sockaddr_un *)&p->addr;
		un->sun_family = AF_UNIX;
		int n = snprintf(un->sun_path, sizeof(un->sun_path), "%s/.s.PGSQL.%d", dir, port);
		if (n < 0 || (size_t)n >= sizeof(un->sun_path)) {
			snprintf(err, errlen, "unix socket path too long for database %s", d->name);
			return -ENAMETOOLONG;
		}
		p->addr_len = sizeof(*un);
		snprintf(p->addr_text, sizeof(p->addr_text), "%s", un->sun_path);
		return 0;
	}
	/* Resolved once per pool; a slow DNS answer delays only this first login. */
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	char portstr[16];
	snprintf(portstr, sizeof(portstr), "%d", port);
	int rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc || !res) {
		snprintf(err, errlen, "cannot resolve host \"%s\" of database %s: %s", host, d->name, gai_strerror(rc));
		return -EHOSTUNREACH;
	}
	memcpy(&p->addr, res->ai_addr, res->ai_addrlen);
	p->addr_len = res->ai_addrlen;
	freeaddrinfo(res);
	snprintf(p->addr_text, sizeof(p->addr_text), "%s:%d", host, port);
	return 0;
}

static int pick(int a, int b) { return a >= 0 ? a : b; }

struct pool *pool_get(const struct config *cfg, const char *db, const char *user,
		      char *err, size_t errlen)
{
	pthread_mutex_lock(&pools_lock);
	struct pool *p;
	for (p = pools; p; p = p->next)
		if (strcmp(p->db_name, db) == 0 && strcmp(p->user, user) == 0)
			goto out;
	const struct config_database *d = config_find_database(cfg, db);
	if (!d) {
		snprintf(err, errlen, "no such database: %s", db);
		goto out;
	}
	const struct config_user *u = config_find_user(cfg, user);
	p = calloc(1, sizeof(*p));
	if (!p || !(p->idle = calloc((size_t)n_workers, sizeof(*p->idle)))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (resolve_address(p, d, err, errlen) < 0)
		goto fail;
	snprintf(p->db_name, sizeof(p->db_name), "%s", db);
	snprintf(p->user, sizeof(p->user), "%s", user);
	snprintf(p->server_db, sizeof(p->server_db), "%s", d->dbname ? d->dbname : db);
	snprintf(p->server_user, sizeof(p->server_user), "%s", d->user ? d->user : user);
	p->server_password = d->password ? strdup(d->password) : NULL;
	p->connect_query = d->connect_query ? strdup(d->connect_query) : NULL;
	p->application_name = d->application_name ? strdup(d->application_name) : NULL;
	p->mode = pick(u ? u->pool_mode : -1, pick(d->pool_mode, cfg->pool_mode));
	p->pool_size = pick(u ? u->pool_size : -1, pick(d->pool_size, cfg->default_pool_size));
	p->min_pool_size = pick(d->min_pool_size, cfg->min_pool_size);
	p->reserve_size = pick(d->reserve_pool_size, cfg->reserve_pool_size);
	p->max_db = pick(d->max_db_connections, cfg->max_db_connections);
	p->max_user = pick(u ? u->max_user_connections : -1, cfg->max_user_connections);
	p->db_count = limit_get("db", p->server_db);
	p->user_count = limit_get("user", p->server_user);
	if (!p->db_count || !p->user_count) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	pthread_mutex_init(&p->lock, NULL);
	list_init(&p->waiters);
	for (int i = 0; i < n_workers; i++)
		list_init(&p->idle[i]);
	p->next = pools;
	pools = p;
	log_info("pool %s/%s created: server %s db=%s user=%s mode=%d size=%d", db, user,
		 p->addr_text, p->server_db, p->server_user, p->mode, p->pool_size);
	goto out;
fail:
	if (p) {
		free(p->idle);
		free(p->server_password);
		free(p->connect_query);
		free(p->application_name);
		free(p);
	}
	p = NULL;
out:
	pthread_mutex_unlock(&pools_lock);
	return p;
}

/* Decide under p->lock whether to open one more server; counts it. */
static bool want_launch_locked(struct pool *p, int64_t now, bool for_waiters, bool reserve_ok)
{
	if (now < p->login_fail_until_us)
		return false;
	if (for_waiters && p->n_waiting <= p->n_connecting)
		return false;
	int limit = p->pool_size + (reserve_ok ? p->reserve_size : 0);
	if (p->n_servers >= limit)
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

struct server *pool_acquire(struct pool *p, struct client *c, const char **fail)
{
	static __thread char fail_msg[200];
	struct worker *w = c->worker;
	int64_t now = w->loop.now_us;
	*fail = NULL;
	pthread_mutex_lock(&p->lock);
	if (list_empty(&p->waiters) && !list_empty(&p->idle[w->id])) {
		struct server *s = list_entry(list_pop(&p->idle[w->id]), struct server, pool_node);
		p->n_idle--;
		pthread_mutex_unlock(&p->lock);
		return s;
	}
	list_add_tail(&p->waiters, &c->wait_node);
	c->queued = true;
	c->wait_since_us = now;
	p->n_waiting++;
	int poke = p->n_idle > 0 ? first_worker_with_idle(p) : -1;
	bool launch = poke < 0 && want_launch_locked(p, now, true, false);
	if (!launch && poke < 0 && p->n_servers == 0 && p->login_auth_error &&
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
		server_launch(w, p);
	return NULL;
}

/* Give server s (on worker s->worker) to client c popped from the queue. */
static void deliver(struct server *s, struct client *c)
{
	if (c->worker == s->worker) {
		client_on_server(c, s);
		return;
	}
	struct mail *m = calloc(1, sizeof(*m));
	server_detach(s);
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
	if (c->worker != server_worker)
		c->handoff_pending = true;
	return c;
}

void pool_release(struct server *s)
{
	struct pool *p = s->pool;
	struct worker *w = s->worker;
	pthread_mutex_lock(&p->lock);
	if (s->state == SERVER_CONNECTING || s->state == SERVER_LOGIN) {
		p->n_connecting--;
		p->login_error[0] = '\0'; /* a login worked: the failure is over */
	}
	/* Not linked to anyone from here on (a waiter links it again). */
	s->state = SERVER_IDLE;
	struct client *c = pop_waiter_locked(p, w);
	if (!c) {
		s->state_since_us = w->loop.now_us;
		list_add_tail(&p->idle[w->id], &s->pool_node);
		p->n_idle++;
	}
	pthread_mutex_unlock(&p->lock);
	if (c)
		deliver(s, c);
	else
		server_watch_idle(s);
}

void pool_serve_waiters(struct pool *p, struct worker *w)
{
	for (;;) {
		pthread_mutex_lock(&p->lock);
		if (list_empty(&p->waiters) || list_empty(&p->idle[w->id])) {
			pthread_mutex_unlock(&p->lock);
			return;
		}
		struct server *s = list_entry(list_pop(&p->idle[w->id]), struct server, pool_node);
		p->n_idle--;
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
		removed = true;
	}
	pthread_mutex_unlock(&p->lock);
	return removed;
}

void pool_server_gone(struct pool *p, bool was_connecting)
{
	struct worker *w = worker_self();
	pthread_mutex_lock(&p->lock);
	p->n_servers--;
	if (was_connecting)
		p->n_connecting--;
	limit_put(p->db_count);
	limit_put(p->user_count);
	bool launch = w && want_launch_locked(p, w->loop.now_us, true, false);
	pthread_mutex_unlock(&p->lock);
	if (launch)
		server_launch(w, p);
}

void pool_login_failed(struct pool *p, const char *sqlstate, const char *msg, bool auth_error)
{
	const struct config *cfg = runtime_config();
	struct worker *self = worker_self();
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
	struct list *n;
	while ((n = list_pop(&failed)) != NULL) {
		struct client *c = list_entry(n, struct client, wait_node);
		if (c->worker == self) {
			c->handoff_pending = false;
			if (c->closing) {
				worker_bury_client(self, c);
			} else {
				client_fail(c, sqlstate, msg);
			}
			continue;
		}
		struct mail *m = calloc(1, sizeof(*m));
		if (!m)
			abort();
		m->kind = MAIL_FAIL_CLIENT;
		m->client = c;
		snprintf(m->sqlstate, sizeof(m->sqlstate), "%s", sqlstate);
		snprintf(m->message, sizeof(m->message), "%s", msg);
		worker_post(c->worker, m);
	}
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
			server_close(s, "idle server closed for a pool waiting on a shared connection limit");
			return;
		}
	}
}

void pool_tick(struct worker *w, int64_t now_us)
{
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
		if (!launch && p->n_servers < p->min_pool_size && p->welcome)
			launch = want_launch_locked(p, now_us, false, false);
		bool serve = !list_empty(&p->waiters) && !list_empty(&p->idle[w->id]);
		bool starved = !launch && p->n_waiting > p->n_connecting && p->n_idle == 0 &&
			       p->n_servers < p->pool_size && now_us >= p->login_fail_until_us;
		pthread_mutex_unlock(&p->lock);
		if (launch)
			server_launch(w, p);
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
		free(p->idle);
		free(p->server_password);
		free(p->connect_query);
		free(p->application_name);
		free(p->welcome);
		free(p);
	}
	while (limits) {
		struct limit_counter *l = limits;
		limits = l->next;
		free(l);
	}
	pthread_mutex_unlock(&pools_lock);
}
