/*
 * server.c - the core's part of a server connection's life, the same for
 * every protocol: joining a worker and the pool's host list, connecting,
 * reporting a failed login, and leaving the pool when it closes. The
 * protocol calls these from its own state machine.
 */
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "pool.h"
#include "route.h"
#include "runtime.h"
#include "sockopt.h"
#include "worker.h"

void server_core_set_state(struct server *s, int state)
{
	s->state = (uint8_t)state;
	s->state_since_us = s->worker ? s->worker->loop.now_us : loop_now_us();
}

const struct pool_host *server_core_host(const struct server *s)
{
	return &s->pool->hosts.h[s->host_index];
}

int server_core_connect(struct server *s, struct pool *p, struct worker *w, loop_cb cb, char *err, size_t errlen)
{
	s->pool = p;
	s->worker = w;
	s->id = worker_next_id(w);
	s->generation = __atomic_load_n(&p->generation, __ATOMIC_RELAXED);
	list_init(&s->pool_node);
	list_add_tail(&w->servers, &s->node);
	s->connect_time_us = w->loop.now_us;
	server_core_set_state(s, SERVER_CONNECTING);
	/* An aside server comes with its host; a routed pool may have none
	 * in the right role (pool.c launches only when one is known, but
	 * roles change). */
	int host = s->aside ? s->host_index : pool_pick_host(p);
	s->host_index = host >= 0 ? host : 0;
	if (p->route)
		s->route_epoch = route_epoch(p, s->host_index);
	const struct pool_host *h = server_core_host(s);
	if (host < 0) {
		pgsock_init(&s->sock, -1, cb);
		snprintf(err, errlen, "no host of database %s is in the role target_session_attrs asks for", p->db_name);
		return -1;
	}
	int fd = socket(h->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	pgsock_init(&s->sock, fd, cb);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create socket: %s", strerror(errno));
		return -1;
	}
	if (h->addr.ss_family != AF_UNIX)
		sockopt_tune_tcp(fd, runtime_config());
	if (connect(fd, (struct sockaddr *)&h->addr, h->addr_len) < 0 && errno != EINPROGRESS) {
		snprintf(err, errlen, "could not connect to server %s: %s", h->addr_text, strerror(errno));
		return -1;
	}
	return 0;
}

bool server_core_host_failed(struct server *s, const char *sqlstate, const char *msg, bool auth_error)
{
	if (auth_error || pool_host_failed(s->pool, s->host_index)) {
		pool_login_failed(s->pool, sqlstate, msg, auth_error);
		return true;
	}
	return false;
}

void server_core_close(struct server *s)
{
	if (s->state == SERVER_IDLE)
		pool_take_idle(s);
	pgsock_close(&s->worker->loop, &s->sock);
	if (!s->aside)
		pool_server_gone(s->pool, s->state);
	worker_bury_server(s->worker, s);
}

const char *server_core_idle_due(struct server *s, int64_t now_us)
{
	const struct config *cfg = runtime_config();
	int64_t age = now_us - s->state_since_us;
	int64_t lifetime = s->pool->t.server_lifetime_us; /* per database (pool.h) */
	switch (s->state) {
	case SERVER_CONNECTING:
	case SERVER_LOGIN:
		return cfg->server_connect_timeout_us && age > cfg->server_connect_timeout_us ? "server_connect_timeout"
											       : NULL;
	case SERVER_IDLE:
		if (pool_server_outdated(s))
			return pool_take_idle(s) ? (s->pool->paused ? "database paused"
								    : "reconnect requested (RECONNECT or RELOAD)")
						 : NULL;
		if (cfg->server_idle_timeout_us && age > cfg->server_idle_timeout_us)
			return pool_take_idle(s) ? "server_idle_timeout" : NULL;
		if (lifetime && now_us - s->connect_time_us > lifetime)
			return pool_take_idle(s) ? "server_lifetime" : NULL;
		return NULL;
	default:
		return NULL;
	}
}
