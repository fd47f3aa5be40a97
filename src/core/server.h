/*
 * server.h - what the core knows of a server connection, whatever protocol
 * it speaks: its socket, worker, pool, host and linked client, and its
 * state.
 *
 * Owns: nothing; a protocol's server struct starts with these fields
 * (SERVER_FIELDS) and the protocol creates and frees it (pg_server.h). A
 * server is touched only by the worker whose loop has its fd
 * (server->worker); it changes worker only through a handoff mail, after
 * it left the old worker's loop (proto.h server_detach).
 *
 * States (the protocol's server_set_state is the only place that changes them):
 *   CONNECTING -> LOGIN -> IDLE <-> ACTIVE -> (RESET) -> IDLE
 *   any -> closed
 */
#ifndef SLUICE_SERVER_H
#define SLUICE_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "list.h"
#include "loop.h"
#include "pgsock.h"

struct worker;
struct pool;
struct client;

enum server_state {
	SERVER_CONNECTING, /* non-blocking connect (and TLS) in progress */
	SERVER_LOGIN,      /* startup sent, authenticating */
	SERVER_IDLE,       /* clean, in pool->idle[worker] */
	SERVER_ACTIVE,     /* linked to a client */
	SERVER_RESET,      /* being reset for the next client, no client */
	SERVER_CHECK,      /* being checked before a client gets it (PostgreSQL:
			    * server_check_query), no client; counted in pool->n_checking */
};

/* A server sluice opens for itself, not counted in its pool nor handed to
 * clients: its protocol's own code drives it from login on. */
enum server_aside {
	SERVER_POOLED = 0,  /* an ordinary server of the pool */
	SERVER_MONITOR,     /* checks its host's role (route.h) */
	SERVER_MIRROR,      /* replays mirrored transactions */
	SERVER_RECOVER,     /* finishes two-phase commits over shards (PostgreSQL) */
};

/*
 * The core's fields, as a list a protocol's struct repeats at its start
 * (pg_server.h), with CLIENT the struct tag of its clients: see
 * CLIENT_FIELDS in client.h.
 */
#define SERVER_FIELDS(CLIENT) \
	struct pgsock sock;        /* socket + buffers */                                   \
	struct worker *worker;     /* thread whose loop has the fd */                       \
	struct list node;          /* in worker->servers (until freed) */                   \
	struct server *dead_next;  /* in worker->dead_servers once closed */                \
	struct list pool_node;     /* in pool->idle[worker] (pool lock) */                  \
	struct pool *pool;                                                                  \
	int host_index;            /* its address in pool->hosts (pool_pick_host) */       \
	uint32_t route_epoch;      /* its host's epoch at connect (route.h) */             \
	uint8_t aside;             /* enum server_aside: not one of the pool's servers */  \
	struct CLIENT *client;     /* linked client (ACTIVE) */                             \
	uint8_t state;             /* enum server_state */                                  \
	bool closed;               /* fd gone; memory freed at the loop's safe point */     \
	uint64_t id;               /* unique id for log lines */                            \
	uint32_t generation;       /* pool->generation when launched (RECONNECT, RELOAD) */ \
	int64_t connect_time_us;   /* for server_lifetime */                                \
	int64_t state_since_us;    /* for connect timeout and idle timeout */               \
	/* end of SERVER_FIELDS */

struct server {
	SERVER_FIELDS(client)
};

/* ---- the core's part of a server's life (server.c) ---- */

struct pool_host;

void server_core_set_state(struct server *s, int state);
/* The address s connects to (one of its pool's hosts). */
const struct pool_host *server_core_host(const struct server *s);
/* A new server of pool p (already counted) on worker w: in w's list, a
 * host picked, the socket created (callback cb) and connecting. 0, or -1
 * with err filled in (the protocol reports the failure and closes s). */
int server_core_connect(struct server *s, struct pool *p, struct worker *w, loop_cb cb, char *err, size_t errlen);
/* Its connection or login failed. With a host list the next host is
 * tried at once; the pool hears of it (its clients are told, and the
 * server_login_retry pause starts) when every host failed in a row, or
 * at once for a refused password: then true. */
bool server_core_host_failed(struct server *s, const char *sqlstate, const char *msg, bool auth_error);
/* Closing, last: out of the idle list, the socket closed, the pool's
 * count, buried for the worker's safe point. */
void server_core_close(struct server *s);
/* Periodic checks of a server not in use: why it must close now
 * (connect timeout; idle: outdated, server_idle_timeout, server_lifetime,
 * in which case it was taken from the idle list), or NULL. */
const char *server_core_idle_due(struct server *s, int64_t now_us);

#endif
