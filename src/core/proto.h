/*
 * proto.h - what a wire protocol provides to the protocol-neutral core.
 *
 * The core (event loop, workers, pools and their wait queue, limits,
 * timeouts, console jobs, online restart) never calls a protocol's state
 * machines by name: it calls through one of these tables. A client finds
 * its table in c->proto (set when it is accepted), a pool in p->proto (set
 * by pool_get from the asking client), a server through s->pool->proto.
 *
 * What a protocol does on its own sockets (read the startup or handshake,
 * authenticate, frame messages, tell where a transaction ends, reset a
 * server, carry session state) is not here: its socket callbacks do it and
 * call the core (pool_acquire, pool_release, worker_bury_client, stats_*).
 * The core only asks the few things below, per transaction or per tick,
 * never per message.
 *
 * Every entry is called on the thread of the worker that owns the object
 * (c->worker, s->worker).
 */
#ifndef SLUICE_PROTO_H
#define SLUICE_PROTO_H

#include <stdbool.h>
#include <stdint.h>

struct worker;
struct pool;
struct client;
struct server;
struct takeover_enc;

/* The cells of SHOW CLIENTS, SERVERS and FDS that only the protocol knows. */
struct proto_show {
	const char *replication;   /* "replication" column ("no" for none) */
	const char *app_name;      /* application_name, NULL = none */
	int64_t prepared;          /* prepared statements it holds */
	int64_t remote_pid;        /* servers: the server's process id */
	bool linked;               /* linked to a peer, in user space or in the kernel */
	uint64_t link_id;          /* then the peer's id */
	uint64_t cancel;           /* SHOW FDS "cancel": the key, pid in the high half */
	const char *fd_params[4];  /* SHOW FDS: client_encoding, std_strings, datestyle,
				    * timezone; NULL = unknown */
	const char *pinned;        /* clients: why it keeps its server (SHOW PINS);
				    * NULL = it does not */
};

struct proto_ops {
	const char *name;          /* "postgresql": log lines */
	int protocol;              /* enum config_protocol: the [databases] entries it serves */
	uint8_t takeover_frame;    /* frame type of its clients in an online restart (takeover.c) */

	/* ---- clients ---- */
	/* Accepted socket (non-blocking): create the client on worker w.
	 * has_data: bytes are already waiting (TCP_DEFER_ACCEPT). */
	void (*client_accept)(struct worker *w, int fd, const char *peer, bool has_data);
	/* A server was handed to waiting client c (both on c's worker now). */
	void (*client_on_server)(struct client *c, struct server *s);
	/* Tell c why it cannot go on (sqlstate: a PostgreSQL SQLSTATE, which
	 * names the class of error for the statistics), then close it. */
	void (*client_fail)(struct client *c, const char *sqlstate, const char *msg);
	/* Waiting client c was taken off a reader pool whose standby went
	 * away (route.h): choose where its request goes again. NULL for a
	 * protocol that does not route reads. */
	void (*client_reroute)(struct client *c);
	/* Close without a word (the peer is gone or was told already). */
	void (*client_close)(struct client *c, const char *reason);
	/* Free a closed client: the worker's safe point only. */
	void (*client_free)(struct client *c);
	/* Periodic checks: login, wait and idle timeouts. */
	void (*client_tick)(struct client *c, int64_t now_us);
	/* Recompute the socket's interest (SUSPEND and RESUME). */
	void (*client_update_events)(struct client *c);
	/* Between transactions: move to the worker the balance wants, if any;
	 * the move was called off; the client arrived on c->worker. */
	void (*client_maybe_move)(struct client *c);
	void (*client_stay)(struct client *c);
	void (*client_arrive)(struct client *c);
	/* The console answered a command c waited for: read on. */
	void (*client_resume_admin)(struct client *c);
	/* Cancel what c's server runs for it (a cancel key of c's arrived). */
	void (*client_cancel)(struct client *c);
	/* Online restart, old process: the protocol's part of "c may move to
	 * the new process now" (the core checked pool mode, state, TLS and
	 * buffers); then c's state as the new process reads it. */
	bool (*client_handover_ok)(const struct client *c);
	int (*client_encode)(struct client *c, struct takeover_enc *e);
	/* New process: create a client on w from an encoded state and its
	 * socket (closed on failure). */
	void (*client_adopt)(struct worker *w, int fd, const uint8_t *state, uint32_t len);
	void (*client_show)(const struct client *c, struct proto_show *out);
	/* Take c (and its server) back from the kernel fast path before the
	 * core reads its state (where: the caller, for log lines); NULL when
	 * the protocol has no fast path. */
	void (*client_take_back)(struct client *c, const char *where);

	/* ---- servers ---- */
	/* Start connecting a server for pool p on worker w (already counted). */
	void (*server_launch)(struct worker *w, struct pool *p);
	/* Idle s, taken from its pool, is checked (server_check_query) and
	 * comes back through pool_release, or closes. */
	void (*server_check)(struct server *s);
	/* s went idle in its pool: watch it for a close or a surprise. */
	void (*server_watch_idle)(struct server *s);
	/* Leave the worker's loop before a handoff to another worker. */
	void (*server_detach)(struct server *s);
	/* Between transactions, nothing in flight either way. */
	bool (*server_at_boundary)(const struct server *s);
	/* Periodic checks: connect, idle and lifetime timeouts. */
	void (*server_tick)(struct server *s, int64_t now_us);
	void (*server_close)(struct server *s, const char *reason);
	/* Free a closed server: the worker's safe point only. */
	void (*server_free)(struct server *s);
	void (*server_show)(const struct server *s, struct proto_show *out);

	/* ---- monitors of routed hosts (route.h); NULL = the protocol has none ---- */
	/* Open a monitor connection to host i of p on worker w: it logs in
	 * as p's servers do, runs a check, and reports through route_report,
	 * or route_monitor_gone when it closes. NULL when it failed at once
	 * (reported too). */
	struct server *(*monitor_open)(struct worker *w, struct pool *p, int host);
	/* Run the next check on monitor s (idle since its last report). */
	void (*monitor_check)(struct server *s);

	/* ---- per worker ---- */
	/* Periodic upkeep of the protocol's own per-worker work (cancels in
	 * flight); all: give up everything (the worker is stopping). */
	void (*worker_tick)(struct worker *w, int64_t now_us, bool all);
	/* A fresh random cancel key in the protocol's shape (the registry,
	 * cancel.h, retries until it is unique). */
	void (*cancel_draw_key)(uint32_t *pid, uint32_t *key);
};

#endif
