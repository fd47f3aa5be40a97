/*
 * expect.h - what a server will answer, in order: one entry per message
 * sent to it while prepared statements are tracked (transaction and
 * statement mode). Lets sluice swallow answers to messages it injected
 * and put its own answers (ParseComplete for a statement the server
 * already has, PostgreSQL's own errors) at exactly the place PostgreSQL
 * would have, and undo its bookkeeping for messages PostgreSQL skips after
 * an error (PostgreSQL docs 55.2.3: after an error, everything up to Sync
 * is discarded).
 *
 * Owns: a growable ring of small entries. Pure data structure, no I/O.
 */
#ifndef SLUICE_EXPECT_H
#define SLUICE_EXPECT_H

#include <stdbool.h>
#include <stdint.h>

enum expect_kind {
	EXPECT_PARSE,       /* '1' forwarded to the client */
	EXPECT_PARSE_OWN,   /* '1' for a Parse sluice injected: swallowed */
	EXPECT_BIND,        /* '2' */
	EXPECT_CLOSE,       /* '3' forwarded */
	EXPECT_CLOSE_OWN,   /* '3' for a Close sluice injected (eviction): swallowed */
	EXPECT_DESCRIBE,    /* ends with 'T' or 'n' (after 't' for a statement) */
	EXPECT_EXECUTE,     /* ends with 'C', 'I', 's' */
	EXPECT_SYNC,        /* ends with 'Z' */
	EXPECT_QUERY,       /* simple Query or FunctionCall: ends with 'Z' */
	EXPECT_FLUSH_ONLY,  /* Flush/COPY data: no answer of its own (never queued) */
	SYNTH_PARSE_DONE,   /* sluice answers ParseComplete here */
	SYNTH_CLOSE_DONE,   /* sluice answers CloseComplete here */
	SYNTH_ERROR,        /* sluice answers ErrorResponse here (msg in arg) */
	SYNTH_QUERY_DONE,   /* sluice answers a whole simple query (CommandComplete + ReadyForQuery) */
};

struct expect {
	uint8_t kind;     /* enum expect_kind */
	uint8_t flags;    /* EXPECT_F_* */
	uint32_t id;      /* server statement id (PARSE/PARSE_OWN/CLOSE_OWN) */
	void *arg;        /* SYNTH_ERROR / SYNTH_QUERY_DONE: heap text; PARSE: client entry to undo */
};

#define EXPECT_F_CLEAR_CACHE 1 /* QUERY/SYNC: DISCARD ALL / DEALLOCATE ALL, server statements gone */
#define EXPECT_F_RESUME 2      /* SYNC: the client waits for this answer before going on */

struct expect_queue {
	struct expect *ring; /* capacity cap, entries [head, head + len) modulo cap */
	uint32_t cap, head, len;
};

int expect_push(struct expect_queue *q, struct expect e);
static inline bool expect_empty(const struct expect_queue *q) { return q->len == 0; }
static inline struct expect *expect_head(struct expect_queue *q) { return &q->ring[q->head]; }
void expect_pop(struct expect_queue *q);
void expect_free(struct expect_queue *q);

#endif
