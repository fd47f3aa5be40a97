/*
 * pg_shard_recover.h - finishing the two-phase commits over shards that
 * nobody will finish (shard_2pc.h, docs/sharding.md): those of a sluice
 * that died between the phases, and those this one left when a client or
 * a server went away mid-commit.
 *
 * A round looks at one sharded pool (a logical database and a user: only
 * the user who prepared a transaction may finish it): it opens an aside
 * connection (pg_server.h) to each shard, lists sluice's prepared
 * transactions of that database and user, leaves those of a commit still
 * running (this process's in flight, or another live sluice's on this
 * host), asks each coordinator with txid_status() what was decided, then
 * commits or rolls back each one. A pool gets a round when first seen
 * (so after a restart, as soon as a client of it has connected), soon
 * after this process left something behind, and every minute.
 *
 * Owns: the round (one at a time, on worker 0) and its connections.
 */
#ifndef SLUICE_PG_SHARD_RECOVER_H
#define SLUICE_PG_SHARD_RECOVER_H

#include <stdbool.h>
#include <stdint.h>

struct pg_msg;
struct pg_server;
struct worker;

/* From the PostgreSQL worker tick (worker 0 only does anything). */
void shard_recover_tick(struct worker *w, int64_t now_us);
/* Something was left prepared: a round soon, for every sharded pool. */
void shard_recover_soon(void);

/* From pg_server.c's aside dispatch (SERVER_RECOVER). */
void shard_recover_ready(struct pg_server *s);
bool shard_recover_message(struct pg_server *s, const struct pg_msg *m);
void shard_recover_closed(struct pg_server *s, const char *reason);

#endif
