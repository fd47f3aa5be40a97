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
	EXPECT_CHECK,       /* sluice's own query after dynamic SQL: read, not forwarded, up to 'Z' */
	SYNTH_PARSE_DONE,   /* sluice answers ParseComplete here */
	SYNTH_COMPLETE,     /* sluice answers CommandComplete (DEALLOCATE), and ReadyForQuery
			     * with F_READY (a whole simple query) */
};

struct expect {
	uint8_t kind;     /* enum expect_kind */
	uint8_t flags;    /* EXPECT_F_* */
	uint16_t done;    /* QUERY: its statements answered so far (CommandComplete) */
	uint32_t id;      /* server statement sluice_<id> the message names, 0 = none;
			   * SYNC/QUERY: the client's batch it ends (track.c) */
	uint32_t gen;     /* client->unnamed_gen after this message, when it changes the
			   * client's unnamed statement (unnamed Parse or Close, Query); else 0 */
	void *arg;        /* struct track_undo (track.c) or NULL */
};

#define EXPECT_F_JOURNAL     0x01 /* BIND/DESCRIBE that began the batch journal (track.c): if
				   * its statement turns out lost, the batch can be sent again */
#define EXPECT_F_RESUME      0x02 /* SYNC/QUERY: the client waits for this answer before going on */
#define EXPECT_F_UNNAMED     0x04 /* PARSE/PARSE_OWN of the unnamed statement */
#define EXPECT_F_PROBE       0x08 /* PARSE of a taken name, under a new server name: its '1' is
				   * swallowed, an F_FAIL follows to say the name is taken */
#define EXPECT_F_GOT_ERROR   0x10 /* QUERY/SYNC: an ErrorResponse came before its ReadyForQuery */
#define EXPECT_F_OWN         0x80 /* BIND/SYNC sluice sent for itself: its answer is swallowed */
#define EXPECT_F_READY       0x40 /* SYNTH_COMPLETE: a simple query, ReadyForQuery follows */
#define EXPECT_F_FAIL        0x20 /* DESCRIBE/QUERY sluice sent to fail on purpose (statement
				   * sluice_0 never exists): its 26000 is replaced by arg's error */

struct expect_queue {
	struct expect *ring; /* capacity cap, entries [head, head + len) modulo cap */
	uint32_t cap, head, len;
};

int expect_push(struct expect_queue *q, struct expect e);
static inline bool expect_empty(const struct expect_queue *q) { return q->len == 0; }
static inline struct expect *expect_head(struct expect_queue *q) { return &q->ring[q->head]; }
/* Entry i (0 = head), i < len. */
static inline struct expect *expect_at(struct expect_queue *q, uint32_t i) { return &q->ring[(q->head + i) % q->cap]; }
void expect_pop(struct expect_queue *q);
/* Take out entry i (0 = head), i < len; the ones behind it move up. */
void expect_remove(struct expect_queue *q, uint32_t i);
void expect_free(struct expect_queue *q);

#endif
