/*
 * track.h - transparent prepared statements and pinning in transaction
 * and statement mode: the client direction (rewrite Parse/Bind/Describe/
 * Close to sluice's statement names, answer what the server need not
 * see) and the server direction (match answers to the expect queue, drop
 * the ones for sluice's own messages, insert sluice's answers).
 *
 * Owns: no state of its own; works on client->stmts, server->stmts and
 * server->expect. Runs on the pair's worker thread.
 */
#ifndef SLUICE_TRACK_H
#define SLUICE_TRACK_H

#include <stdbool.h>

#include "pg_proto.h"

struct client;
struct server;
struct pool;

enum track_action {
	TRACK_FORWARD,       /* forward the message unchanged */
	TRACK_DROP,          /* consumed (answered or rewritten): drop its bytes */
	TRACK_DROP_QUERY,    /* like DROP, for a Query sluice answers whole (counts as a request) */
	TRACK_FLUSH_FIRST,   /* send what is queued first, then call again */
	TRACK_ERROR,         /* malformed message: close the client */
};

/* Is tracking used for clients of this pool? */
bool track_enabled(const struct pool *p);

/* Must this client message be complete in the buffer before
 * track_client_msg can decide? */
bool track_wants_whole(const struct client *c, const struct pg_msg *m, uint32_t avail);

/* One client message (complete when track_wants_whole said so). */
int track_client_msg(struct client *c, struct server *s, const struct pg_msg *m);

/* One server message header (complete for '1' and '3'). */
int track_server_msg(struct server *s, const struct pg_msg *m);

/* Write sluice's own answers that are due now into the client's wbuf.
 * Returns TRACK_FLUSH_FIRST when server bytes must be sent first. */
int track_emit(struct server *s);

/* Is one of sluice's own answers next in line for s's client? */
bool track_answer_due(struct server *s);

/* Statements prepared on s are gone (DISCARD ALL, reset). */
void track_server_forget(struct server *s);
/* Free the expect queue and its entries' data. */
void track_server_free(struct server *s);

/* Does this SQL text do something a shared server cannot keep for one
 * client (session advisory lock, LISTEN, temporary table, WITH HOLD
 * cursor, SQL-level PREPARE)? Conservative: may say yes needlessly. */
bool track_sql_pins(const char *sql, size_t len);

#endif
