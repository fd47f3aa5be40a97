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

#endif
