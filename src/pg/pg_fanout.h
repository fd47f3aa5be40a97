/*
 * pg_fanout.h - a statement of a sharded database that sluice runs over
 * several shards itself (docs/sharding.md), outside a transaction, sent as
 * a simple Query or as an extended-protocol batch of that one statement:
 *
 * - a read whose answer is the shards' rows one after the other (a LIMIT
 *   of a constant kept), or one row of count/sum/min/max that they
 *   combine into (shard_merge.h);
 * - a write (shard key not fixed to one shard, a replicated table, DDL):
 *   on each shard BEGIN, the statement and PREPARE TRANSACTION, then
 *   COMMIT PREPARED on each, the coordinator's first (the decision,
 *   shard_2pc.h); a shard's error rolls back what the others prepared.
 *   The tag adds the shards' counts; RETURNING rows go on as they come.
 *
 * The shards are run one at a time. The client's Query (or batch) stays
 * unread in its buffer until the last shard has answered: each shard's
 * server runs it as sluice's own query (internal, pg_server.h), whose rows
 * (and the first RowDescription) go to the client while the rest is
 * swallowed; the server is then free, goes back to its pool, and the
 * client is routed again, to the next shard (pg_shard_pick calls
 * pg_fanout_next while a fan-out runs). Rows stream through: memory stays
 * bounded. A shard's error ends it; the next shards are not asked.
 *
 * Owns: struct pg_shard_fanout (pg_client.shard_fanout, heap) and what it
 * holds (the extended messages, the merge, its two-phase commit's number
 * in flight).
 */
#ifndef SLUICE_PG_FANOUT_H
#define SLUICE_PG_FANOUT_H

#include <stdbool.h>
#include <stdint.h>

struct pg_client;
struct pg_msg;
struct pg_server;
struct pool;
struct shard_map;
struct shard_plan;
struct shard_route;

/* Does sluice run a statement of plan pl over several shards itself
 * (outside a transaction)? A read whose answers concatenate or combine,
 * or a write (shard_2pc.h). */
bool pg_fanout_runs(const struct shard_plan *pl);

/* A simple Query (text sql, consumed bytes of the client's) that plan pl
 * says is such a read, outside a transaction: start its fan-out (true),
 * else false (routed or refused as it is; *failed: the client was failed,
 * out of memory). known: its route, when at hand. want_rowdesc: the client
 * gets the first RowDescription. */
bool pg_fanout_start(struct pg_client *c, const struct shard_map *map, const struct shard_plan *pl,
		     const struct shard_route *known, const char *sql, uint32_t consumed, bool want_rowdesc,
		     bool *failed);
/* An extended-protocol batch (from first, len bytes, ending with its
 * Sync) of one such read of statement sql (types of its parameters),
 * aggregate or not: when it is exactly [Parse] Bind [Describe] Execute
 * Sync of one portal with no row limit (and, for an aggregate, text
 * results), its fan-out starts; sluice answers ParseComplete and
 * BindComplete, and each shard gets sluice's own Parse, Bind, Describe,
 * Execute and Sync. False: not so (the batch goes the usual way). */
bool pg_fanout_batch(struct pg_client *c, const struct shard_map *map, const struct pg_msg *first, uint32_t len,
		     const char *sql, const uint32_t *types, int n_types, bool aggregate);
/* The next step of c's fan-out: the next shard's pool (PG_SHARD_GO, *out),
 * or its end: sluice's CommandComplete (or combined row) and ReadyForQuery
 * answer the client's Query or batch, which is dropped
 * (PG_SHARD_ANSWERED). */
int pg_fanout_next(struct pg_client *c, struct pool **out);

/* Linked client c is fanning out its Query m (still unread in its buffer)
 * to server s: true when so (the text is sent to s the first time; the
 * caller reads no further). */
bool pg_fanout_linked(struct pg_client *c, struct pg_server *s, const struct pg_msg *m);
/* An answer of server s (avail bytes of m in) to its client c's fan-out:
 * forward it (a row, the first RowDescription), or let the server swallow
 * it as the answer to a query of sluice's own (OTHER; an aggregate's row
 * is combined then; an ErrorResponse goes to the client). */
enum { PG_FANOUT_OTHER, PG_FANOUT_FORWARD, PG_FANOUT_DROP /* swallowed, an error too */ };
int pg_fanout_server_msg(struct pg_client *c, struct pg_server *s, const struct pg_msg *m, uint32_t avail);

void pg_fanout_free(struct pg_client *c);

/* COPY FROM STDIN (docs/sharding.md): is c's fan-out reading the client's
 * rows? Then each message of the client goes to pg_fanout_copy, which
 * splits CopyData by shard and, at CopyDone, runs the write on each shard
 * (PG_SHARD_GO, *out) or answers (PG_SHARD_ANSWERED, WAIT, FAILED as
 * pg_shard_pick). pg_fanout_refill: the server's output drained; more of
 * the rows go (true when it added some). */
bool pg_fanout_copying(const struct pg_client *c);
int pg_fanout_copy(struct pg_client *c, const struct pg_msg *m, uint32_t avail, struct pool **out);
bool pg_fanout_refill(struct pg_client *c, struct pg_server *s);

/*
 * A transaction over several shards (docs/sharding.md). It runs on one
 * shard at a time; when a statement needs another shard, its part on the
 * current one is prepared (PREPARE TRANSACTION; the first one prepared is
 * the coordinator) and the transaction goes on, with a BEGIN of the same
 * kind, on the other. Its COMMIT prepares the last part, then commits
 * every part, the coordinator's first; its ROLLBACK (or a failure) rolls
 * every part back. The transaction's state is pg_client.shard_tx (heap).
 */
/* Linked client c's transaction leaves its shard (its statement waits
 * unread): false when c was failed. */
bool pg_fanout_leave(struct pg_client *c);
/* Linked client c's COMMIT (commit) or ROLLBACK, consumed bytes of its
 * (answered at the end): false when c was failed. */
bool pg_fanout_end(struct pg_client *c, bool commit, uint32_t consumed);
/* Has c's transaction a prepared part on shard? */
bool pg_fanout_tx_visited(const struct pg_client *c, int shard);
/* The client's end: its transaction's prepared parts are left to the
 * recovery (pg_shard_recover.h), which rolls them back. */
void pg_fanout_tx_free(struct pg_client *c);

#endif
