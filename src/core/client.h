/*
 * client.h - what the core knows of a client connection, whatever protocol
 * it speaks: its socket, worker, pool and linked server, its place in the
 * wait queue, limits and cancel registry, and its state.
 *
 * Owns: nothing; a protocol's client struct starts with these fields
 * (CLIENT_FIELDS) and the protocol creates and frees it (pg_client.h). A
 * client belongs to the worker that accepted it and is only ever touched
 * by that worker's thread (except wait_node/queued, which are guarded by
 * the pool lock, and worker/cancel_next, by the cancel registry's lock).
 *
 * States (the protocol's client_set_state is the only place that changes them):
 *   STARTUP  -> AUTH -> (LOGIN_WAIT) -> IDLE <-> WAITING <-> ACTIVE
 *   any state -> closed (freed at the worker's safe point)
 * LOGIN_WAIT: authenticated, waiting for a server before the login ends
 * (PostgreSQL: to learn the ParameterStatus set the client must see).
 */
#ifndef SLUICE_CLIENT_H
#define SLUICE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "list.h"
#include "pgsock.h"

struct proto_ops;
struct worker;
struct pool;
struct server;
struct admin_session;
struct limit_counter;

enum client_state {
	CLIENT_STARTUP,    /* reading the startup packet or handshake answer */
	CLIENT_AUTH,       /* password exchange in progress */
	CLIENT_LOGIN_WAIT, /* authenticated; waiting for a server to finish the login */
	CLIENT_IDLE,       /* logged in, no server, nothing to send */
	CLIENT_WAITING,    /* has a request, queued in the pool for a server */
	CLIENT_ACTIVE,     /* linked to a server */
};

/*
 * The core's fields, as a list a protocol's struct repeats at its start
 * (pg_client.h: a union of struct client and these fields by name), with
 * SERVER the struct tag of its servers: its code then reads c->server as
 * its own type, and passes &c->base where the core wants a struct client.
 */
#define CLIENT_FIELDS(SERVER) \
	const struct proto_ops *proto; /* its protocol's operations (proto.h); set at accept */    \
	struct pgsock sock;        /* socket + buffers */                                          \
	struct worker *worker;     /* owner thread */                                              \
	struct list node;          /* in worker->clients (until freed) */                          \
	struct client *dead_next;  /* in worker->dead_clients once closed */                       \
	bool buried;               /* on worker->dead_clients */                                   \
	bool moving;               /* leaving for move_to (out of the loop; worker->movers) */     \
	bool over_limit;           /* accepted past max_client_conn: refuse after startup */       \
	bool counted;              /* counted in pool->n_clients */                                \
	struct worker *move_to;    /* while moving: the worker that adopts it */                   \
	struct client *move_next;  /* chain in worker->movers */                                   \
	struct list wait_node;     /* in pool->waiters (pool lock) */                              \
	bool queued;               /* on pool->waiters (pool lock) */                              \
	bool handoff_pending;      /* dequeued by a handoff mail not yet delivered */              \
	bool closing;              /* closed: fd gone; memory freed at the loop's safe point */    \
	uint8_t state;             /* enum client_state */                                         \
	uint64_t id;               /* unique id for log lines */                                   \
	struct pool *pool;         /* set after startup */                                         \
	struct pool *wait_pool;    /* the pool whose queue it joined last (a reader pool, route.h) */ \
	struct SERVER *server;     /* linked server (ACTIVE, LOGIN_WAIT) */                        \
	struct client *cancel_next; /* chain in the cancel registry (its lock) */                  \
	struct limit_counter *db_clients, *user_clients; /* client limits taken (pool.c) */        \
	struct admin_session *adm; /* console session (heap), NULL for pooled clients */           \
	int64_t connect_us;        /* accepted (monotonic), for SHOW CLIENTS */                    \
	uint32_t cancel_pid;       /* cancel key sluice gave the client (cancel.h) */              \
	uint32_t cancel_key;       /* its second half */                                           \
	int64_t state_since_us;    /* when the current state began */                              \
	int64_t wait_since_us;     /* when it joined pool->waiters (pool lock) */                  \
	int64_t last_active_us;    /* last bytes received from the client (client_idle_timeout) */ \
	char user[64];             /* user name it logged in as */                                 \
	char db[64];               /* database name it asked for */                                \
	char peer[48];             /* "ip:port" or "unix" */                                       \
	/* end of CLIENT_FIELDS */

struct client {
	CLIENT_FIELDS(server)
};

/* ---- the core's part of a client's life (client.c) ---- */

/* A new client on worker w for socket fd: in w's list, in STARTUP. */
void client_core_init(struct client *c, const struct proto_ops *proto, struct worker *w, int fd,
		      const char *peer, loop_cb cb);
/* Count it against max_client_conn; past the limit it is marked
 * over_limit (refused at login, when the protocol can say why). */
void client_core_count_new(struct client *c);
/* At login, for (db, user) of protocol (enum config_protocol): the client
 * limits. NULL when taken, else why not (the client must be refused). */
const char *client_core_take_limits(struct client *c, const char *db, const char *user, int protocol);
/* Logged in to c->pool: counted in it (the protocol registers its cancel
 * key, cancel.h, when its protocol gives one: at login, or at accept). */
void client_core_join_pool(struct client *c);
/* A server was handed to waiting client c (proto.h client_on_server):
 * joined to c's worker when it comes from another, the wait counted in
 * the pool's statistics. False when c closed meanwhile: the server went
 * back to the pool, c is buried. */
bool client_core_receive_server(struct client *c, struct server *s);

/* Moving between workers (balance.h), for a client its protocol found
 * movable (between transactions): to the worker the balance wants, if any
 * (its socket leaves this loop at once). proto.h's client_stay and
 * client_arrive for every protocol: the move was called off / c arrived on
 * c->worker. */
void client_core_move(struct client *c);
void client_core_stay(struct client *c);
void client_core_arrive(struct client *c);
/* An error message for the client is in its wbuf, and it is about to
 * close: send it (one try), count it by SQLSTATE, log it when
 * log_pooler_errors asks. */
void client_core_report_failure(struct client *c, const char *sqlstate, const char *msg);
/* A client waiting age microseconds for a server: past query_timeout or
 * query_wait_timeout it leaves the queue (true), and msg says why. */
bool client_core_wait_expired(struct client *c, int64_t age, char *msg, size_t len);
/* Closing, first: out of the pool's wait queue. True when a mail is on its
 * way for c (a server or a failure): the mail's handler buries it, else
 * the protocol does (worker_bury_client) once it closed c. */
bool client_core_leave_queue(struct client *c);
/* Closing, last: out of the counts, limits and cancel registry; the
 * socket closed. */
void client_core_close(struct client *c);

#endif
