/*
 * client.c - the core's part of a client's life, the same for every
 * protocol: joining a worker, the client limits, the pool's count and the
 * cancel registry, and leaving them all when the client closes. The
 * protocol calls these from its own state machine.
 */
#include "client.h"

#include <stdio.h>

#include "balance.h"
#include "cancel.h"
#include "control.h"
#include "config.h"
#include "log.h"
#include "pool.h"
#include "proto.h"
#include "runtime.h"
#include "server.h"
#include "stats.h"
#include "worker.h"

void client_core_init(struct client *c, const struct proto_ops *proto, struct worker *w, int fd,
		      const char *peer, loop_cb cb)
{
	c->proto = proto;
	pgsock_init(&c->sock, fd, cb);
	c->worker = w;
	c->id = worker_next_id(w);
	list_init(&c->wait_node);
	worker_add_client(w, c);
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	c->last_active_us = w->loop.now_us;
	c->connect_us = w->loop.now_us;
	c->state = CLIENT_STARTUP;
	c->state_since_us = w->loop.now_us;
}

void client_core_count_new(struct client *c)
{
	if (runtime_clients_add(1) > runtime_config()->max_client_conn) {
		/* Refused properly once the protocol can say so; not counted
		 * meanwhile, so the count (SHOW LISTS, /metrics, the limit
		 * itself) never goes past max_client_conn. */
		runtime_clients_add(-1);
		c->over_limit = true;
	}
}

const char *client_core_take_limits(struct client *c, const char *db, const char *user, int protocol)
{
	if (c->over_limit)
		return "no more connections allowed (max_client_conn)";
	/* [databases] and [users] may set their own limits. */
	const struct config *cfg = runtime_config();
	const struct config_database *cdb = config_find_database_for(cfg, db, protocol);
	const struct config_user *cuser = config_find_user(cfg, user);
	int max_db = cdb && cdb->max_db_client_connections >= 0 ? cdb->max_db_client_connections
								 : cfg->max_db_client_connections;
	int max_user = cuser && cuser->max_user_client_connections >= 0 ? cuser->max_user_client_connections
									 : cfg->max_user_client_connections;
	if (!pool_client_limits_take(db, user, max_db, max_user, &c->db_clients, &c->user_clients))
		return "too many client connections for this database or user "
		       "(max_db_client_connections, max_user_client_connections)";
	return NULL;
}

void client_core_join_pool(struct client *c)
{
	__atomic_add_fetch(&c->pool->n_clients, 1, __ATOMIC_RELAXED);
	c->counted = true;
}

void client_core_report_failure(struct client *c, const char *sqlstate, const char *msg)
{
	pgsock_flush(&c->sock, NULL);
	if (c->pool)
		stats_error(pool_stats(c->pool, c->worker), sqlstate);
	if (runtime_config()->log_pooler_errors)
		log_write(LOG_LEVEL_WARNING, "C-%llu %s/%s@%s pooler error: %s", (unsigned long long)c->id,
			  c->db[0] ? c->db : "-", c->user[0] ? c->user : "-", c->peer, msg);
}

bool client_core_wait_expired(struct client *c, int64_t age, char *msg, size_t len)
{
	const struct config_timeouts *t = &c->pool->t; /* per user / database (pool.h) */
	const char *what = t->query_timeout_us && age > t->query_timeout_us ? "query_timeout"
			   : t->query_wait_timeout_us && age > t->query_wait_timeout_us ? "query_wait_timeout"
			   : NULL;
	struct pool *queue = c->wait_pool ? c->wait_pool : c->pool;
	if (!what || !pool_dequeue(queue, c))
		return false;
	char why[160];
	if (pool_login_failing(queue, why, sizeof(why)))
		snprintf(msg, len, "%s (server login failing: %s)", what, why);
	else
		snprintf(msg, len, "%s", what);
	return true;
}

bool client_core_receive_server(struct client *c, struct server *s)
{
	c->handoff_pending = false;
	if (s->worker != c->worker) {
		/* Handed over from another worker (pool.c): into this loop's list. */
		s->worker = c->worker;
		list_add_tail(&c->worker->servers, &s->node);
	}
	if (c->closing) {
		/* Closed while the handoff was in flight: give the server back. */
		pool_release(s);
		worker_bury_client(c->worker, c);
		return false;
	}
	if (c->state == CLIENT_WAITING) /* SHOW STATS' wait time */
		stats_add(&pool_stats(c->pool, c->worker)->wait_us,
			  (uint64_t)(c->worker->loop.now_us - c->state_since_us));
	return true;
}

bool client_core_leave_queue(struct client *c)
{
	if ((c->state == CLIENT_WAITING || c->state == CLIENT_LOGIN_WAIT || c->state == CLIENT_AUTH) &&
	    c->pool && !c->server)
		return !pool_dequeue(c->wait_pool ? c->wait_pool : c->pool, c) && c->handoff_pending;
	return false;
}

void client_core_close(struct client *c)
{
	if (c->counted) {
		__atomic_sub_fetch(&c->pool->n_clients, 1, __ATOMIC_RELAXED);
		c->counted = false;
	}
	if (c->cancel_pid || c->cancel_key)
		cancel_unregister(c);
	c->cancel_pid = c->cancel_key = 0;
	pool_client_limits_put(c->db_clients, c->user_clients);
	c->db_clients = c->user_clients = NULL;
	pgsock_close(&c->worker->loop, &c->sock);
	if (!c->over_limit)
		runtime_clients_add(-1);
}

void client_core_move(struct client *c)
{
	struct worker *to = balance_move_target(c->worker);
	if (!to || to == c->worker)
		return;
	/* Out of this loop now; off the worker's list at its safe point. */
	loop_forget(&c->worker->loop, &c->sock.h);
	c->moving = true;
	worker_move_client(c->worker, c, to);
}

void client_core_stay(struct client *c)
{
	c->moving = false;
	c->proto->client_update_events(c);
}

void client_core_arrive(struct client *c)
{
	c->moving = false;
	log_write(LOG_LEVEL_DEBUG, "C-%llu moved to worker %d", (unsigned long long)c->id, c->worker->id);
	/* A shutdown or an online restart began while it travelled: the
	 * drain went over this worker's clients without it. */
	if (control_phase() != PHASE_RUNNING && control_at_boundary(c))
		return;
	c->proto->client_update_events(c);
}
