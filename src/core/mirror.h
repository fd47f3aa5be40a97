/*
 * mirror.h - workload mirroring, the protocol-neutral part: the counters
 * of each (database, mirror) pair, what SHOW MIRRORS and /metrics show of
 * them, and the bounded queue of transactions waiting for a mirror.
 *
 * A [databases] entry with "mirror = OTHER" has a share (mirror_fraction)
 * of its clients' transactions replayed on OTHER's servers; the
 * protocol's code (PostgreSQL: pg_mirror.h) captures, replays and compares
 * them and reports here. Nothing here waits: the primary path never does.
 *
 * Owns: the list of struct mirror_stats (global, made on first use, freed
 * only at exit: pointers to them stay valid across reloads). The queue
 * owns nothing: its records belong to the protocol that queued them.
 * Must not: do I/O, know any protocol.
 */
#ifndef SLUICE_MIRROR_H
#define SLUICE_MIRROR_H

#include <stdbool.h>
#include <stdint.h>

struct admin_reply;

/* What became of one transaction chosen for mirroring. */
enum mirror_result {
	MIRROR_SENT,     /* handed to the mirror (queued or sent at once) */
	MIRROR_DROPPED,  /* not replayed: the queue was full, or it was too large to capture */
	MIRROR_ERROR,    /* lost: the mirror connection failed or was unavailable */
	MIRROR_DIFFERED, /* replayed, and some statement's answer differed from the primary's */
	MIRROR_RESULTS
};

#define MIRROR_QUERY_MAX 200 /* bytes of last_differing_query kept */

/* The counters of one (database, mirror) pair: any thread adds to them
 * (atomics); read by SHOW MIRRORS and /metrics. */
struct mirror_stats {
	struct mirror_stats *next;   /* in the global list (mirror.c lock) */
	char db[64];                 /* the mirrored database (its [databases] name) */
	char mirror[64];             /* the database it is mirrored to */
	uint64_t n[MIRROR_RESULTS];  /* transactions, by enum mirror_result */
	uint64_t primary_us;         /* summed primary durations of replayed transactions */
	uint64_t mirror_us;          /* summed mirror durations of the same */
	uint64_t timed;              /* how many transactions those sums hold */
	char last_query[MIRROR_QUERY_MAX + 1]; /* text of the last statement that differed (lock) */
};

/* The counters of (db, mirror), made on first use; NULL when out of memory. */
struct mirror_stats *mirror_stats_get(const char *db, const char *mirror);
void mirror_count(struct mirror_stats *m, enum mirror_result r);
/* A replayed transaction's durations, on the primary and the mirror. */
void mirror_note_times(struct mirror_stats *m, int64_t primary_us, int64_t mirror_us);
/* A statement whose answers differed (query may be NULL: unknown). */
void mirror_note_differed(struct mirror_stats *m, const char *query);

/* SHOW MIRRORS. */
void mirror_show(struct admin_reply *r);
/* The mirror families of /metrics, as Prometheus text (heap, NULL when
 * out of memory; "" when nothing is mirrored). */
char *mirror_metrics_text(void);
/* Free the counters (exit only). */
void mirror_free_all(void);

/* A FIFO of transactions waiting for one mirror connection, bounded by
 * mirror_queue_size (read at each push, so RELOAD applies at once).
 * Records start with a struct mirror_qnode; one thread uses a queue. */
struct mirror_qnode {
	struct mirror_qnode *next;   /* next record in the queue */
};
struct mirror_queue {
	struct mirror_qnode *head, *tail; /* oldest, newest; NULL when empty */
	uint32_t n;                  /* records queued */
};
/* Queue rec when fewer than limit wait; false (rec not taken) when full. */
bool mirror_queue_push(struct mirror_queue *q, struct mirror_qnode *rec, int limit);
/* The oldest record, or NULL. */
struct mirror_qnode *mirror_queue_pop(struct mirror_queue *q);

#endif
