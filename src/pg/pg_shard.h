/*
 * pg_shard.h - the client side of a sharded database (docs/sharding.md):
 * each transaction runs on the one shard its statements fix, with the
 * shard's own pool; the router (shardroute.h) reads the SQL, the shard of
 * a Bind comes from the bound value (pghash.h).
 *
 * A transaction is routed when it starts: by its simple Query, or by the
 * first Bind of its batch that fixes a shard (a Parse and Bind in the same
 * batch, or a statement prepared before, whose route is kept per
 * statement). A BEGIN that comes alone is answered by sluice and sent
 * ahead of the transaction's first statement, on the shard that statement
 * goes to. Inside a transaction, a statement that needs another shard
 * moves the transaction there, its part on the shard it leaves prepared,
 * and its COMMIT or ROLLBACK ends every part (pg_fanout.h). Inside a batch
 * up to its Sync every statement must stay on the batch's shard, and a
 * transaction never comes back to a shard it left: such a statement is
 * refused in place (SQLSTATE 0A000), so PostgreSQL aborts the transaction
 * as it would for its own error. A read over several shards outside a
 * transaction is run on each in turn, and so is a write, with two-phase
 * commit (pg_fanout.h); other statements that need several shards are
 * refused the same way.
 *
 * Owns: the shard map of each sharded pool (made on first use, one heap
 * block that pool_destroy frees), the client's deferred BEGIN
 * (pg_client.shard_begin) and its simple queries' routes by shape
 * (pg_client.shard_shapes).
 */
#ifndef SLUICE_PG_SHARD_H
#define SLUICE_PG_SHARD_H

#include <stdbool.h>
#include <stdint.h>

struct pg_client;
struct pg_msg;
struct pg_server;
struct pool;

/* What an idle client's next message leads to. */
enum pg_shard_pick {
	PG_SHARD_GO,       /* *out: the shard pool that serves the transaction */
	PG_SHARD_WAIT,     /* more of the batch must arrive first (room was made) */
	PG_SHARD_ANSWERED, /* sluice answered it (a BEGIN alone, or its end): bytes dropped */
	PG_SHARD_FAILED,   /* the client was failed */
	PG_SHARD_AGAIN,    /* (pg_fanout_next) a transaction left its shard: route its
			    * statement as usual */
};
int pg_shard_pick(struct pg_client *c, const struct pg_msg *m, uint32_t avail, struct pool **out);

/* A refusal: what sluice answers in place of a message. */
struct pg_shard_refusal {
	char sqlstate[6];
	char message[240];
};

/* What a linked client's next message leads to. */
enum pg_shard_follow {
	PG_SHARD_FOLLOW,   /* it goes to the client's server */
	PG_SHARD_HOLD,     /* it needs another shard: wait for the answers in flight, then
			    * route again (the server may be free by then) */
	PG_SHARD_REFUSE,   /* refuse it in place (*why) */
	PG_SHARD_AWAIT,    /* it must be whole first (room was made) */
	PG_SHARD_FAIL,     /* the client was failed */
	PG_SHARD_FANOUT,   /* pg_fanout takes over (pg_fanout_linked): the transaction's part
			    * here is prepared, to leave the shard or to end */
};
int pg_shard_follow(struct pg_client *c, const struct pg_msg *m, uint32_t avail, struct pg_shard_refusal *why);

/* The client's transaction (or a step of a read over several shards,
 * pg_fanout.h) goes to shard's pool: PG_SHARD_GO with it in *out, or
 * PG_SHARD_FAILED when the client was failed. */
int pg_shard_go(struct pg_client *c, int shard, struct pool **out);

/* Free what the client keeps for routing (at its end). */
void pg_shard_client_free(struct pg_client *c);

/* The client moved to another pool (RELOAD): the routes its statements
 * keep were computed over the old one's shards and tables. */
void pg_shard_forget_routes(struct pg_client *c);

#endif
