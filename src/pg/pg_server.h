/*
 * pg_server.h - the PostgreSQL server state machine: connect, log in, the
 * server->client direction of a linked pair, reset before reuse.
 *
 * Owns: struct pg_server (the core's struct pg_server, server.h, and what
 * PostgreSQL needs beside it) and its socket. States: server.h.
 * A server is clean (may go to another client) only when the last message
 * was ReadyForQuery 'I', every request the client sent has been answered
 * and no byte is left unsent in either direction.
 */
#ifndef SLUICE_PG_SERVER_H
#define SLUICE_PG_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "copy_watch.h"
#include "expect.h"
#include "prepared.h"
#include "server.h"
#include "session_vars.h"

struct worker;
struct pool;
struct pg_client;
struct scram_client;
struct pool_host;

/* A routed pool's server checks its host's role once, after login. */
enum role_check { ROLE_CHECK_NONE, ROLE_CHECK_SENT, ROLE_CHECK_DONE };

struct pg_server {
	union {
		struct server base;                   /* the core's view (server.h) */
		struct { SERVER_FIELDS(pg_client) }; /* the same fields, by name */
	};
	struct scram_client *scram; /* heap, only during login */
	uint8_t tls_step;          /* while CONNECTING: 0 = plain, 1 = SSLRequest sent,
				    * 2 = handshaking, 3 = TLS up */
	char tx_status;            /* status byte of the last ReadyForQuery */
	bool last_was_ready;       /* last examined message was ReadyForQuery */
	bool dirty;                /* must not be reused (protocol surprise) */
	bool login_failure_reported; /* the pool already knows this login failed */
	int outstanding;           /* client Query/Sync/FunctionCall not yet answered by 'Z' */
	bool client_mid_batch;     /* client sent extended-protocol messages not yet closed by Sync */
	int internal;              /* queries sluice sent whose answers are swallowed */
	int64_t xact_begin_us;     /* first request of the current transaction (statistics); 0 = none */
	uint32_t backend_pid;      /* BackendKeyData from the server */
	uint32_t backend_key;
	int64_t query_start_us;    /* when the oldest unanswered client request was sent (query_timeout) */
	int64_t ready_since_us;    /* last ReadyForQuery forwarded (idle_transaction_timeout) */
	int64_t xact_start_us;     /* transaction began (first status T/E after I); 0 = none */
	char *params[6];            /* current values of tracked parameters (heap) */
	struct iobuf login_params; /* ParameterStatus bytes seen during login */
	struct server_stmts stmts; /* statements sluice prepared here */
	struct expect_queue expect; /* answers still to come (statement tracking) */
	bool tracking;             /* expect queue in use for the current client */
	bool skipping;             /* PostgreSQL answered an error in the client's open batch and
				    * discards everything up to its next Sync */
	uint64_t unnamed_owner;    /* client whose unnamed statement this session holds, 0 = unknown */
	uint32_t unnamed_gen;      /* that client's unnamed_gen when it was parsed here */
	struct session_vars vars;  /* settings sluice knows this session holds (session_vars.h) */
	struct track_pending *pending; /* setting changes answered, not yet committed (track.c) */
	bool check_due;            /* dynamic SQL ran: look at the session before lending it on */
	uint32_t parses_in_flight; /* expect entries that prepare a statement sluice_<id> */
	int cancels_pending;       /* cancels of its client's query on their way to PostgreSQL:
				    * it is not lent to another client until they are through */
	struct track_journal *journal; /* the current batch as sent, to send again (track.c) */
	bool batch_ran;            /* something of the client's current batch runs on the server */
	bool pinned;               /* its client did something session-bound: no sharing, reset after */
	uint32_t bp_slot;          /* bpf_bypass: slot + 1 in the kernel's state, 0 = none */
	bool bp_lent;              /* bpf_bypass: in the kernel's idle set, or used by a client there */
	bool bp_refused;           /* bpf_bypass: cannot be lent (no slot) */
	bool bp_retrack;           /* taken from the kernel mid-batch: statement tracking
				    * resumes once every request is answered */
	bool resume_client;        /* a held client may read on once this is delivered */
	struct copy_watch copy;    /* Syncs the client sent into a COPY FROM STDIN (copy_watch.h) */
	uint8_t role_check;        /* routed pools: enum role_check, the login's role check */
	uint8_t role_found;        /* what it found (enum host_role, route.h) */
	int64_t aside_sent_us;     /* aside servers: when their current query was sent */
	uint64_t aside_lsn;        /* monitors: the WAL position its answer gave */
	bool lookup;               /* running auth_query for the linked client (answers consumed) */
	char *lookup_secret;       /* what the lookup found so far (heap) */
	char lookup_error[160];    /* the lookup's ErrorResponse, "" = none */
};

/* The PostgreSQL server a core server is (its pool's protocol is pg_ops). */
static inline struct pg_server *pg_server(struct server *s)
{
	return (struct pg_server *)s;
}

/* Start connecting a new server for pool p on worker w. The pool already
 * counted it. Failures are reported through the pool. */
void server_launch(struct worker *w, struct pool *p);
/* A server sluice uses itself (server.h enum server_aside: kind) on host
 * of p: it logs in as p's servers do, then its kind's code drives it
 * (aside_ready, aside_message, aside_closed in pg_server.c). NULL with err
 * when it could not even start connecting. */
struct pg_server *server_launch_aside(struct worker *w, struct pool *p, int host, int kind, char *err, size_t errlen);

/* Link a clean idle server (already in c's loop) to client c and make it
 * ready to forward (sends SETs to match the client's parameters). */
void server_link(struct pg_server *s, struct pg_client *c);

/* bpf_bypass: the kernel handed over a pair it had linked; s goes on
 * forwarding for c with the kernel's count of unanswered requests. */
struct server_kernel_times {
	int64_t query_start_us; /* oldest unanswered request (0 = unknown) */
	int64_t ready_since_us; /* last ReadyForQuery */
	int64_t xact_start_us;  /* transaction began, 0 = none */
	int64_t xact_begin_us;  /* its first request (SHOW STATS), 0 = none open */
};
void server_link_from_kernel(struct pg_server *s, struct pg_client *c, int outstanding, bool mid_batch,
			     char tx_status, bool at_boundary, const struct server_kernel_times *t);

/* The pool made s idle: watch it for an unexpected close or message. */
void server_watch_idle(struct pg_server *s);

/* Detach from the worker's loop before a handoff to another worker. */
void server_detach(struct pg_server *s);

/* Send what waits towards the server: sluice's own bytes, then the
 * linked client's examined bytes. */
void server_send_pending(struct pg_server *s);
/* Send what waits towards the linked client: the client's wbuf, then the
 * server's examined bytes; returns the server to the pool when clean. */
void server_deliver_pending(struct pg_server *s);

/* Run auth_query for user on clean server s, for client c (in AUTH).
 * Answers go to client_lookup_done, then s goes back to its pool. */
void server_lookup(struct pg_server *s, struct pg_client *c, const char *user);

/* Between transactions with nothing in flight either way (a session-mode
 * client could leave or move now). */
bool server_at_boundary(const struct pg_server *s);

/* The client went away. Clean the server for reuse, or close it. */
void server_client_gone(struct pg_server *s);

/* The address s connected to (one of its pool's hosts). */
const struct pool_host *server_host(const struct pg_server *s);
/* Idle server s, taken from its pool, runs server_check_query; it goes
 * back through pool_release when answered, or closes on an error. */
void server_check(struct pg_server *s);
/* Send a CancelRequest for whatever this server is running. With hold,
 * s is not lent to another client until PostgreSQL has taken it. */
void server_cancel(struct pg_server *s, bool hold);
/* A cancel sent for s's client has been taken by PostgreSQL (or given up). */
void server_cancel_done(struct pg_server *s);

/* Periodic checks: connect timeout, idle timeout, lifetime. */
void server_tick(struct pg_server *s, int64_t now_us);

void server_close(struct pg_server *s, const char *reason);
/* Free a closed server (worker's safe point only). */
void server_free(struct pg_server *s);

#endif
