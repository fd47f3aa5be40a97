/*
 * route.c - see route.h.
 */
#include "route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop.h"
#include "pool.h"
#include "proto.h"
#include "runtime.h"
#include "server.h"
#include "worker.h"

static pthread_mutex_t routes_lock = PTHREAD_MUTEX_INITIALIZER;
static struct route *routes; /* (routes_lock) */

const char *route_role_name(int role)
{
	switch (role) {
	case HOST_PRIMARY: return "primary";
	case HOST_STANDBY: return "standby";
	case HOST_DOWN: return "down";
	default: return "unknown";
	}
}

struct route *route_new(struct pool *home, const struct config_database *d)
{
	int target = config_database_target(d);
	/* "any" needs no roles: the hosts are used as PgBouncer does. */
	if (!home->proto->monitor_open || (target == CONFIG_TARGET_ANY && !d->read_routing))
		return NULL;
	struct route *r = calloc(1, sizeof(*r));
	if (!r) {
		log_warning("pool %s/%s: out of memory for its routing; its hosts are used in turn",
			    home->db_name, home->user);
		return NULL;
	}
	pthread_mutex_init(&r->lock, NULL);
	r->home = home;
	r->n_hosts = home->hosts.n;
	r->target = target;
	r->read_routing = d->read_routing;
	r->primary_reads = d->primary_reads;
	r->max_lag_bytes = d->max_standby_lag_bytes;
	r->max_lag_us = d->max_standby_lag_us;
	for (int i = 0; i < r->n_hosts; i++) {
		r->host[i].lag_bytes = -1;
		r->host[i].lag_us = -1;
	}
	pthread_mutex_lock(&routes_lock);
	r->next = routes;
	routes = r;
	pthread_mutex_unlock(&routes_lock);
	return r;
}

/* ---- which host a server uses ---- */

static bool role_fits(int target, int role)
{
	switch (target) {
	case CONFIG_TARGET_READ_WRITE:
	case CONFIG_TARGET_PRIMARY:
		return role == HOST_PRIMARY;
	case CONFIG_TARGET_READ_ONLY:
	case CONFIG_TARGET_STANDBY:
		return role == HOST_STANDBY;
	default:
		return role == HOST_PRIMARY || role == HOST_STANDBY;
	}
}

/* The target a pool's servers follow: a reader pool wants its standby. */
static int pool_target(const struct pool *p)
{
	return p->fixed_host >= 0 ? CONFIG_TARGET_STANDBY : p->route->target;
}

/* r->lock held. Host for a new server of p, -1 = none. */
static int pick_locked(struct route *r, const struct pool *p, bool advance)
{
	if (p->fixed_host >= 0)
		return r->host[p->fixed_host].role == HOST_STANDBY ? p->fixed_host : -1;
	int target = pool_target(p);
	if (target == CONFIG_TARGET_PREFER_STANDBY) {
		bool unknown = false;
		for (int k = 0; k < r->n_hosts; k++) {
			int i = (int)((r->rr + (unsigned)k) % (unsigned)r->n_hosts);
			unknown |= r->host[i].role == HOST_UNKNOWN;
			if (r->host[i].role == HOST_STANDBY) {
				if (advance)
					r->rr = (unsigned)i + 1;
				return i;
			}
		}
		if (unknown)
			return -1; /* a standby may yet show up: its monitor reports soon */
		target = CONFIG_TARGET_ANY;
	}
	/* load_balance_hosts = disable: stay on a host while it fits. */
	if (p->lb_disable && role_fits(target, r->host[r->cur].role))
		return r->cur;
	for (int k = 0; k < r->n_hosts; k++) {
		int i = (int)((r->rr + (unsigned)k) % (unsigned)r->n_hosts);
		if (role_fits(target, r->host[i].role)) {
			if (advance && p->lb_disable)
				r->cur = i;
			else if (advance)
				r->rr = (unsigned)i + 1;
			return i;
		}
	}
	return -1;
}

int route_pick_host(struct pool *p)
{
	struct route *r = p->route;
	pthread_mutex_lock(&r->lock);
	int i = pick_locked(r, p, true);
	pthread_mutex_unlock(&r->lock);
	return i;
}

bool route_host_available(struct pool *p)
{
	struct route *r = p->route;
	pthread_mutex_lock(&r->lock);
	bool ok = pick_locked(r, p, false) >= 0;
	pthread_mutex_unlock(&r->lock);
	return ok;
}

int route_login_role(const struct pool *p)
{
	switch (pool_target(p)) {
	case CONFIG_TARGET_READ_WRITE:
	case CONFIG_TARGET_PRIMARY:
		return HOST_PRIMARY;
	case CONFIG_TARGET_READ_ONLY:
	case CONFIG_TARGET_STANDBY:
		return HOST_STANDBY;
	default:
		return HOST_UNKNOWN;
	}
}

uint32_t route_epoch(const struct pool *p, int host)
{
	struct route *r = p->route;
	pthread_mutex_lock(&r->lock);
	uint32_t e = r->host[host].epoch;
	pthread_mutex_unlock(&r->lock);
	return e;
}

bool route_server_current(const struct server *s)
{
	struct route *r = s->pool->route;
	if (__atomic_load_n(&r->host[s->host_index].epoch, __ATOMIC_RELAXED) != s->route_epoch)
		return false;
	if (pool_target(s->pool) != CONFIG_TARGET_PREFER_STANDBY)
		return true;
	/* prefer-standby on another host: only while no standby is up. */
	pthread_mutex_lock(&r->lock);
	bool standby_up = false;
	for (int i = 0; i < r->n_hosts; i++)
		standby_up |= r->host[i].role == HOST_STANDBY;
	bool ok = r->host[s->host_index].role == HOST_STANDBY || !standby_up;
	pthread_mutex_unlock(&r->lock);
	return ok;
}

/* A pool whose hosts changed: servers may launch for its waiters now,
 * without waiting out server_login_retry. */
static void wake_pools(struct route *r)
{
	struct pool *pools[CONFIG_MAX_HOSTS + 1];
	int n = 0;
	pthread_mutex_lock(&r->lock);
	pools[n++] = r->home;
	for (int i = 0; i < r->n_hosts; i++)
		if (r->readers[i])
			pools[n++] = r->readers[i];
	pthread_mutex_unlock(&r->lock);
	for (int i = 0; i < n; i++)
		pool_hosts_changed(pools[i]);
}

/* r->lock held: host i is now in role. True when that is news. */
static bool set_role_locked(struct route *r, int i, int role)
{
	struct route_host *h = &r->host[i];
	if (h->role == role)
		return false;
	const struct pool_host *ph = &r->home->hosts.h[i];
	if (h->role != HOST_UNKNOWN || role != HOST_DOWN)
		log_info("database %s: host %s is %s (was %s)", r->home->db_name, ph->addr_text, route_role_name(role),
			 route_role_name(h->role));
	h->role = (uint8_t)role;
	__atomic_add_fetch(&h->epoch, 1, __ATOMIC_RELAXED);
	if (role != HOST_STANDBY) {
		h->lag_bytes = -1;
		h->lag_us = -1;
	}
	return true;
}

void route_login_found(struct pool *p, int host, int role)
{
	struct route *r = p->route;
	pthread_mutex_lock(&r->lock);
	bool news = set_role_locked(r, host, role);
	pthread_mutex_unlock(&r->lock);
	if (news)
		wake_pools(r);
}

/* ---- reports ---- */

/* r->lock held: the primary's newest position known (0 = none). */
static const uint64_t *primary_now_locked(const struct route *r)
{
	return r->hist_n ? &r->hist[r->hist_n - 1].lsn : NULL;
}

/* r->lock held: the standby lag of host i from the primary's history. */
static void standby_lag_locked(struct route *r, int i, int64_t now_us)
{
	struct route_host *h = &r->host[i];
	const uint64_t *top = primary_now_locked(r);
	if (h->pos_opaque || (r->hist_n && r->hist[r->hist_n - 1].opaque)) {
		h->lag_bytes = h->lag_us = -1; /* not comparable: unknown */
		return;
	}
	h->lag_bytes = top ? (*top > h->lsn ? (int64_t)(*top - h->lsn) : 0) : -1;
	/* In time: since the oldest primary position the standby has not
	 * reached yet (0 when it has all of them). */
	h->lag_us = top ? 0 : -1;
	for (int k = 0; k < r->hist_n; k++) {
		if (r->hist[k].lsn > h->lsn) {
			h->lag_us = now_us - r->hist[k].sent_us;
			break;
		}
	}
	if (top && r->hist_n == ROUTE_HISTORY && r->hist[0].lsn > h->lsn)
		h->lag_us = now_us - r->hist[0].sent_us; /* at least */
}

void route_report(struct route *r, int i, int role, uint64_t lsn, int64_t sent_us)
{
	route_report_pos(r, i, role, lsn, true, sent_us);
}

void route_report_pos(struct route *r, int i, int role, uint64_t lsn, bool comparable, int64_t sent_us)
{
	int64_t now = loop_now_us();
	pthread_mutex_lock(&r->lock);
	struct route_host *h = &r->host[i];
	bool news = set_role_locked(r, i, role);
	h->monitor_busy = false;
	h->lsn = comparable ? lsn : 0;
	h->pos_opaque = !comparable;
	h->sampled_us = sent_us;
	h->error[0] = '\0';
	if (role == HOST_PRIMARY) {
		if (r->hist_n == ROUTE_HISTORY) {
			memmove(&r->hist[0], &r->hist[1], sizeof(r->hist[0]) * (ROUTE_HISTORY - 1));
			r->hist_n--;
		}
		/* A new primary (failover) starts a new history: positions of
		 * the old one mean nothing on its timeline. */
		if (news)
			r->hist_n = 0;
		r->hist[r->hist_n].sent_us = sent_us;
		r->hist[r->hist_n].lsn = h->lsn;
		r->hist[r->hist_n].opaque = !comparable;
		r->hist_n++;
		for (int k = 0; k < r->n_hosts; k++)
			if (r->host[k].role == HOST_STANDBY)
				standby_lag_locked(r, k, now);
	} else if (role == HOST_STANDBY) {
		standby_lag_locked(r, i, now);
	}
	pthread_mutex_unlock(&r->lock);
	if (news)
		wake_pools(r);
}

void route_monitor_gone(struct route *r, int i, const char *why)
{
	const struct config *cfg = runtime_config();
	pthread_mutex_lock(&r->lock);
	struct route_host *h = &r->host[i];
	h->monitor = NULL;
	h->monitor_busy = false;
	h->next_check_us = loop_now_us() + cfg->role_check_interval_us;
	if (h->error[0] == '\0' || h->role != HOST_DOWN)
		log_warning("database %s: host %s: role check failed: %s", r->home->db_name,
			    r->home->hosts.h[i].addr_text, why);
	snprintf(h->error, sizeof(h->error), "%s", why);
	bool news = set_role_locked(r, i, HOST_DOWN);
	pthread_mutex_unlock(&r->lock);
	if (news)
		wake_pools(r);
}

/* ---- where a read goes ---- */

/* r->lock held: may standby i serve a client that last wrote at w? */
static bool fresh_enough_locked(const struct route *r, int i, int64_t last_write_us, int64_t now_us)
{
	const struct route_host *h = &r->host[i];
	int64_t interval = runtime_config()->role_check_interval_us;
	if (h->role != HOST_STANDBY || now_us - h->sampled_us > 3 * interval + 1000000)
		return false; /* its last report is too old to trust */
	/* Unknown lag: no primary heard of yet, or positions that cannot be
	 * compared (route_report_pos), which serve only clients that never
	 * wrote, without lag limits. */
	bool opaque = h->pos_opaque || (r->hist_n && r->hist[r->hist_n - 1].opaque);
	if (h->lag_bytes < 0 && !(opaque && r->hist_n))
		return false;
	if (r->max_lag_bytes && (h->lag_bytes < 0 || h->lag_bytes > r->max_lag_bytes))
		return false;
	if (r->max_lag_us && (h->lag_us < 0 || h->lag_us > r->max_lag_us))
		return false;
	if (!last_write_us)
		return true;
	if (h->pos_opaque)
		return false;
	/* The first primary position sampled after the write covers it. */
	for (int k = 0; k < r->hist_n; k++)
		if (r->hist[k].sent_us > last_write_us)
			return !r->hist[k].opaque && h->lsn >= r->hist[k].lsn;
	return false;
}

struct pool *route_for_read(struct pool *home, int64_t last_write_us)
{
	struct route *r = home->route;
	if (!r || !r->read_routing)
		return NULL;
	int64_t now = loop_now_us();
	pthread_mutex_lock(&r->lock);
	int pick = -1;
	bool primary = false; /* primary_reads: its turn came */
	for (int k = 0; k < r->n_hosts && pick < 0; k++) {
		int i = (int)((r->rr + (unsigned)k) % (unsigned)r->n_hosts);
		if (fresh_enough_locked(r, i, last_write_us, now))
			pick = i;
		else if (r->primary_reads && r->host[i].role == HOST_PRIMARY)
			pick = i, primary = true;
	}
	struct pool *reader = NULL;
	if (pick >= 0) {
		r->rr = (unsigned)pick + 1;
		r->host[pick].reads++;
		reader = primary ? NULL : r->readers[pick];
	} else {
		r->reads_on_primary++;
	}
	pthread_mutex_unlock(&r->lock);
	if (pick < 0 || primary || reader)
		return reader;
	reader = pool_get_reader(home, pick);
	if (!reader)
		return NULL; /* out of memory: the primary serves it */
	pthread_mutex_lock(&r->lock);
	if (!r->readers[pick])
		r->readers[pick] = reader;
	reader = r->readers[pick];
	pthread_mutex_unlock(&r->lock);
	return reader;
}

int64_t route_write_time(void)
{
	return loop_now_us();
}

/* ---- monitors (worker 0) ---- */

static void tick_route(struct route *r, struct worker *w, int64_t now)
{
	const struct config *cfg = runtime_config();
	int64_t interval = cfg->role_check_interval_us;
	/* A check without an answer for this long means the host is gone
	 * (or unreachable, which is the same to its clients). */
	int64_t stuck = 2 * interval > 2000000 ? 2 * interval : 2000000;
	const struct proto_ops *proto = r->home->proto;
	for (int i = 0; i < r->n_hosts; i++) {
		pthread_mutex_lock(&r->lock);
		struct route_host *h = &r->host[i];
		struct server *m = h->monitor;
		bool open = !m && now >= h->next_check_us;
		bool check = m && !h->monitor_busy && now >= h->next_check_us;
		bool hung = m && h->monitor_busy && now - h->monitor_since_us > stuck;
		if (open || check) {
			h->monitor_busy = true;
			h->monitor_since_us = now;
			h->next_check_us = now + interval;
		}
		pthread_mutex_unlock(&r->lock);
		if (open) {
			struct server *s = proto->monitor_open(w, r->home, i);
			pthread_mutex_lock(&r->lock);
			if (s && !s->closed)
				h->monitor = s;
			pthread_mutex_unlock(&r->lock);
		} else if (check) {
			proto->monitor_check(m);
		} else if (hung) {
			proto->server_close(m, "role check got no answer in time");
		}
	}
}

void route_tick(struct worker *w, int64_t now_us)
{
	if (w->id != 0)
		return;
	pthread_mutex_lock(&routes_lock);
	struct route *list = routes;
	pthread_mutex_unlock(&routes_lock);
	/* Routes are only added at the head and freed at exit. */
	for (struct route *r = list; r; r = r->next) {
		if (__atomic_load_n(&r->home->stale, __ATOMIC_RELAXED)) {
			/* Replaced by RELOAD: its monitors close, no new ones. */
			for (int i = 0; i < r->n_hosts; i++) {
				pthread_mutex_lock(&r->lock);
				struct server *m = r->host[i].monitor;
				r->host[i].next_check_us = INT64_MAX;
				pthread_mutex_unlock(&r->lock);
				if (m)
					r->home->proto->server_close(m, "database settings changed (RELOAD)");
			}
			continue;
		}
		tick_route(r, w, now_us);
	}
}

void route_foreach_host(void (*fn)(const struct route *r, int i, void *arg), void *arg)
{
	pthread_mutex_lock(&routes_lock);
	for (struct route *r = routes; r; r = r->next) {
		if (__atomic_load_n(&r->home->stale, __ATOMIC_RELAXED))
			continue;
		pthread_mutex_lock(&r->lock);
		for (int i = 0; i < r->n_hosts; i++)
			fn(r, i, arg);
		pthread_mutex_unlock(&r->lock);
	}
	pthread_mutex_unlock(&routes_lock);
}

void route_free_all(void)
{
	pthread_mutex_lock(&routes_lock);
	struct route *r = routes;
	routes = NULL;
	pthread_mutex_unlock(&routes_lock);
	while (r) {
		struct route *next = r->next;
		pthread_mutex_destroy(&r->lock);
		free(r);
		r = next;
	}
}

void route_add_reader_counts(struct pool *home, struct pool_counts *k)
{
	struct route *r = home->route;
	if (!r || r->home != home)
		return;
	struct pool *readers[CONFIG_MAX_HOSTS];
	pthread_mutex_lock(&r->lock);
	memcpy(readers, r->readers, sizeof(readers));
	pthread_mutex_unlock(&r->lock);
	int64_t now = loop_now_us();
	for (int i = 0; i < r->n_hosts; i++) {
		if (!readers[i])
			continue;
		struct pool_counts c;
		pool_get_counts(readers[i], now, &c);
		k->cl_waiting += c.cl_waiting; /* its clients are home's, counted active there */
		k->cl_active -= c.cl_waiting < k->cl_active ? c.cl_waiting : k->cl_active;
		k->sv_active += c.sv_active;
		k->sv_idle += c.sv_idle;
		k->sv_tested += c.sv_tested;
		k->sv_login += c.sv_login;
		if (c.maxwait_us > k->maxwait_us)
			k->maxwait_us = c.maxwait_us;
	}
}
