/*
 * pg_client.h - the PostgreSQL client state machine: startup,
 * authentication, waiting for a server, and the client->server direction
 * of a linked pair.
 *
 * Owns: struct pg_client (the core's struct pg_client, client.h, and what
 * PostgreSQL needs beside it) and its socket; created at accept, freed by
 * client_free at the worker's safe point. States: client.h.
 */
#ifndef SLUICE_PG_CLIENT_H
#define SLUICE_PG_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "client.h"
#include "prepared.h"
#include "session_vars.h"
#include "track.h"

struct worker;
struct pool;
struct pg_server;
struct scram_server;
struct config;
struct pg_mirror_chan;
struct mirror_tx;
struct pg_shard_shapes;
struct pg_shard_fanout;
struct shard_tpc;

#define CLIENT_ASKED_SSL 1 /* an SSLRequest was answered */
#define CLIENT_ASKED_GSS 2 /* a GSSENCRequest was answered */

/* Client parameters that sluice keeps in step on every server it lends to
 * the client (the GUCs PostgreSQL reports with ParameterStatus). */
enum { TRACKED_PARAMS = 6 };
extern const char *const tracked_param_names[TRACKED_PARAMS];

struct pg_client {
	union {
		struct client base;                   /* the core's view (client.h) */
		struct { CLIENT_FIELDS(pg_server) }; /* the same fields, by name */
	};
	/* Grouped by size, so that a client idle by the ten thousand costs no padding. */
	struct scram_server *scram; /* heap, only during a SCRAM exchange */
	char *lookup_secret;       /* secret found by auth_query (heap, wiped on free) */
	char *params[TRACKED_PARAMS]; /* wanted values (heap), NULL = server default */
	char *repl_startup;        /* then its startup parameters, packed (replication.h; heap) */
	struct client_stmts stmts; /* named prepared statements (transaction/statement mode) */
	struct unnamed_stmt *unnamed; /* the unnamed statement as the client's messages so far
				    * leave it (heap), NULL = none (track.c) */
	struct portal_infos portals; /* portals whose statement does something (track.h) */
	size_t acct_bytes;         /* bytes counted in pool->client_prepared_bytes */
	struct session_vars vars;  /* settings the client SET (session_vars.h) */
	int64_t last_write_us;     /* when its last write on the primary ended (route.h), 0 = never */
	const struct config *mirror_cfg; /* configuration mirror_chan was found under (pg_mirror.h) */
	struct pg_mirror_chan *mirror_chan; /* where its transactions are mirrored, NULL = nowhere */
	struct mirror_tx *mirror_tx; /* its transaction being captured for the mirror (heap), NULL = none */
	struct pg_shard_shapes *shard_shapes; /* sharded: routes of its simple queries' shapes
				    * (pg_shard.c; heap), NULL = none yet */
	struct pg_shard_fanout *shard_fanout; /* sharded: a statement running over several
				    * shards, one after the other (pg_fanout.h; heap), NULL = none */
	struct shard_tpc *shard_tx; /* sharded: its transaction has left a shard, whose part is
				    * prepared (pg_fanout.h; heap), NULL = none */
	char *shard_begin;         /* sharded database: the BEGIN sluice answered itself, sent ahead of
				    * the transaction's first statement on its shard (heap), NULL = none */
	uint32_t repl_startup_len;
	uint32_t unnamed_gen;      /* bumped at each unnamed Parse sent; names its version */
	uint32_t batch;            /* Syncs and simple Queries read so far (track.c) */
	uint32_t acct_prepared;    /* statements counted in pool->client_prepared (track_account) */
	uint32_t bp_slot;          /* bpf_bypass: slot + 1 in the kernel's state, 0 = none */
	uint32_t bp_unnamed_ver;   /* bpf_bypass: the kernel's unnamed_ver sluice last read */
	uint16_t shard_judged;     /* sharded: messages already judged when the transaction was routed */
	int8_t shard;              /* sharded: the shard of its server, or of its last transaction */
	uint8_t md5_salt[4];       /* salt of the md5 challenge */
	uint8_t auth_step;         /* 0 = nothing asked yet, else the code asked */
	bool tls_handshaking;      /* answered 'S' to SSLRequest; handshake running */
	uint8_t asked_encryption;  /* CLIENT_ASKED_*: negotiation requests already answered */
	bool lookup_done;          /* auth_query answered (lookup_secret may still be NULL) */
	uint8_t lookup_method;     /* auth method to resume with after the lookup */
	uint8_t admin_level;       /* console login in progress: enum admin_level */
	uint8_t replication;       /* enum repl_kind asked for in the startup packet */
	bool skip_until_sync;      /* sluice answered an error: drop messages until Sync */
	bool batch_changed_names;  /* this batch Parse'd or Closed a named statement */
	bool batch_clears_cache;   /* this batch runs DISCARD ALL / DEALLOCATE ALL */
	bool hold_for_sync;        /* wait for the batch's ReadyForQuery before reading on */
	bool pinned;               /* did something a shared server cannot keep: keeps its server */
	uint8_t route_kind;        /* its current transaction (pg_route.h enum route_kind) */
	bool wait_notified;        /* got the query_wait_notify NOTICE (once per connection) */
	bool unnamed_doubt;        /* bpf_bypass: the kernel carried an unnamed Parse whose batch
				    * had an error: the server is asked before it is lent on */
	bool bp_kernel;            /* bpf_bypass: the kernel carries this client (bypass.h) */
	bool bp_refused;           /* bpf_bypass: cannot go to the kernel (no slot, no group) */
};

/* The PostgreSQL client a core client is (its protocol is pg_ops). */
static inline struct pg_client *pg_client(struct client *c)
{
	return (struct pg_client *)c;
}

/* Accepted socket: create the client on worker w (fd is non-blocking).
 * has_data: the client has sent something already (TCP_DEFER_ACCEPT), so
 * it is read at once. */
void client_accept(struct worker *w, int fd, const char *peer, bool has_data);

/* Online restart, new process: a logged-in client arrives from the old
 * one. client_adopt creates it (state IDLE, not yet reading); the caller
 * fills in user, db, params, statements, cancel key and pending input,
 * then client_adopt_finish attaches it to its pool and reads on. */
struct pg_client *client_adopt(struct worker *w, int fd, const char *peer);
void client_adopt_finish(struct pg_client *c);

/* A server was handed to a waiting client (same thread as the client). */
void client_on_server(struct pg_client *c, struct pg_server *s);

/* The client's waiting ended with an error (pool failure, timeout). */
void client_fail(struct pg_client *c, const char *sqlstate, const char *msg);
/* proto.h client_reroute: waiting c routes its request again. */
void client_reroute(struct pg_client *c);

/* The client's forward part was sent: resume parsing if it waited for that. */
void client_resume_parse(struct pg_client *c);

/* The console answered a command that was waiting: read on. */
void client_resume_admin(struct pg_client *c);

/* auth_query finished on the lookup server: secret found (NULL when the
 * user is unknown) or error set. Authentication goes on. */
void client_lookup_done(struct pg_client *c, const char *secret, const char *error);

/* Recompute the client socket's epoll interest. */
void client_update_events(struct pg_client *c);

/* The linked server is gone or unusable: tell the client and close it. */
void client_server_lost(struct pg_client *c, const char *msg);

/* bpf_bypass: take the client (and the server the kernel linked to it)
 * back into user space before sluice reads, writes or closes it. */
#define client_take_from_kernel(c) client_take_from_kernel_at((c), __func__)
void client_take_from_kernel_at(struct pg_client *c, const char *where);

/* The server finished the client's work (transaction mode: released). */
void client_unlinked(struct pg_client *c);

/* balance.h: between transactions, move c to the worker the balance
 * wants it on, if any (its socket leaves this loop at once). */
void client_maybe_move(struct pg_client *c);

/* Periodic checks (login timeout, query_wait_timeout, reserve pool). */
void client_tick(struct pg_client *c, int64_t now_us);

void client_close(struct pg_client *c, const char *reason);
/* Free a closed client (worker's safe point only). */
void client_free(struct pg_client *c);

#endif
