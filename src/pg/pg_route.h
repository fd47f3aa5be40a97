/*
 * pg_route.h - read_routing for PostgreSQL clients (route.h): what the
 * client sends first decides where its transaction goes. A simple Query
 * that only reads, or opens a READ ONLY transaction, and an
 * extended-protocol batch whose every Parse and Bind only reads (all of it
 * in, up to its Sync) may go to a standby fresh enough for the client;
 * everything else goes to the primary (sqlread.h decides what reads).
 *
 * Owns: nothing; works on the client's route_kind and last_write_us.
 */
#ifndef SLUICE_PG_ROUTE_H
#define SLUICE_PG_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

struct pg_client;
struct pg_server;
struct pg_msg;
struct pool;

/* What the client's current transaction is, for routing. */
enum route_kind {
	ROUTE_KIND_PRIMARY,  /* may write: on the primary */
	ROUTE_KIND_READS,    /* single statements that only read */
	ROUTE_KIND_READ_TX,  /* a transaction opened READ ONLY */
};

/* The pool that serves the transaction client c begins with message m
 * (avail bytes of it in): a reader pool or c->pool. */
struct pool *pg_route_pick(struct pg_client *c, const struct pg_msg *m, uint32_t avail);
/* c is linked to a standby for single reads and sends m: may m go there
 * too (false: hold it until the server is free, then route it anew)? */
bool pg_route_may_follow(struct pg_client *c, const struct pg_msg *m, uint32_t avail);
/* c's transaction on s ended (ReadyForQuery 'I'): a write on the primary
 * is remembered for read-your-writes. */
void pg_route_tx_end(struct pg_client *c, const struct pg_server *s);

#endif
