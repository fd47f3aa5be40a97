/*
 * my_route.h - read_routing for MySQL clients (route.h): the command an
 * idle client sends when it takes a server decides where it goes. A
 * COM_QUERY that only reads, or a COM_STMT_EXECUTE (without a cursor) of a
 * statement whose text only reads, may go to a standby fresh enough for
 * the client; START TRANSACTION READ ONLY takes its whole transaction
 * there; everything else goes to the primary (my_sqlread.h decides what
 * reads). Clients of session-mode pools, pinned clients and clients with
 * autocommit off are never routed.
 *
 * Owns: nothing; works on the client's route_kind and last_write_us.
 */
#ifndef SLUICE_MY_ROUTE_H
#define SLUICE_MY_ROUTE_H

#include <stdbool.h>

struct client;
struct my_client;
struct my_server;
struct my_packet;
struct pool;

/* What the client's current transaction is, for routing. */
enum my_route_kind {
	MY_ROUTE_PRIMARY,  /* may write: on the primary */
	MY_ROUTE_READS,    /* a statement that only reads */
	MY_ROUTE_READ_TX,  /* a transaction opened READ ONLY */
};

/* The pool that serves the command pk (partial: only its first bytes are
 * in) that client c, without a server, sends now: a reader pool or
 * c->pool. */
struct pool *my_route_pick(struct my_client *c, const struct my_packet *pk, bool partial);
/* c holds a standby's server after a read and sends pk: may it go there
 * too (false: the server should go back and pk be routed anew)? */
bool my_route_may_follow(const struct my_client *c, const struct my_packet *pk, bool partial);
/* An answer on s ended outside a transaction: a write on the primary is
 * remembered for read-your-writes. */
void my_route_tx_end(struct my_client *c, const struct my_server *s);
/* proto.h client_reroute for MySQL. */
void my_route_reroute(struct client *c);

#endif
