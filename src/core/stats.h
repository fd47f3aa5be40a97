/*
 * stats.h - traffic statistics per pool (SHOW STATS, /metrics, log_stats).
 *
 * Owns: struct stats_slot, one per (pool, worker). A worker only ever
 * writes its own slot, with relaxed atomic stores and no lock, so counting
 * costs a few plain instructions on the per-query path; readers sum the
 * slots of all workers. The per-period averages (stats_period) live here
 * too, under one lock taken only by readers and the period roll-over.
 * Must not: do I/O, or be written by any thread but the slot's worker.
 */
#ifndef SLUICE_STATS_H
#define SLUICE_STATS_H

#include <stdint.h>

#include "stats_buckets.h"

/* Upper bounds of the duration histogram buckets, in microseconds; the last
 * bucket (+Inf) has no bound (stats_buckets.h). */
extern const int64_t stats_bucket_us[STATS_BUCKETS - 1];

/* Distinct SQLSTATE classes counted per slot; more land in class "??". */
#define STATS_ERROR_CLASSES 15

struct stats_error_class {
	char cls[4];          /* two SQLSTATE characters, NUL-terminated */
	uint64_t n;           /* ErrorResponses of this class sent to clients */
};

struct stats_slot {
	uint64_t xacts;       /* transactions finished (ReadyForQuery 'I') */
	uint64_t queries;     /* requests answered (ReadyForQuery) */
	uint64_t bytes_in;    /* bytes received from clients */
	uint64_t bytes_out;   /* bytes received from servers for clients */
	uint64_t xact_us;     /* time in transactions */
	uint64_t query_us;    /* time in queries */
	uint64_t wait_us;     /* time clients waited for a server */
	uint64_t assigns;     /* servers handed to a client in user space (SHOW STATS'
			       * server_assignment_count, as PgBouncer counts it) */
	uint64_t client_parses; /* named Parse messages from clients (tracked statements) */
	uint64_t server_parses; /* Parse messages sluice sent for them, under its own names */
	uint64_t binds;       /* Binds of those statements sent on */
	uint64_t query_hist[STATS_BUCKETS]; /* queries per duration bucket */
	uint64_t xact_hist[STATS_BUCKETS];  /* transactions per duration bucket */
	uint32_t n_errors;    /* used entries of errors[] (release store) */
	struct stats_error_class errors[STATS_ERROR_CLASSES + 1]; /* last = "??" */
} __attribute__((aligned(64)));

/* The sum of all slots of a pool (or of several pools). */
struct stats_totals {
	uint64_t xacts, queries, bytes_in, bytes_out, xact_us, query_us, wait_us, assigns;
	uint64_t client_parses, server_parses, binds;
	uint64_t query_hist[STATS_BUCKETS], xact_hist[STATS_BUCKETS];
	uint32_t n_errors;
	struct stats_error_class errors[STATS_ERROR_CLASSES + 1];
};

/* Single-writer increment: the slot's worker is the only writer. */
static inline void stats_add(uint64_t *field, uint64_t v)
{
	__atomic_store_n(field, __atomic_load_n(field, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

void stats_query_done(struct stats_slot *s, int64_t us);
void stats_xact_done(struct stats_slot *s, int64_t us);
/* An ErrorResponse with this SQLSTATE went to a client. */
void stats_error(struct stats_slot *s, const char *sqlstate);

/* Add slot (read from another thread) into t. */
void stats_accumulate(struct stats_totals *t, const struct stats_slot *s);
/* Add totals b into a. */
void stats_merge(struct stats_totals *a, const struct stats_totals *b);

#endif
