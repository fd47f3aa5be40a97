/*
 * shard_merge.h - one answer from the answers of several shards to an
 * aggregate query (docs/sharding.md): `SELECT count(*), sum(x), min(y),
 * max(z) FROM t WHERE ...` runs on each shard, each answers one row, and
 * the row the client gets is their combination: counts and sums added,
 * the least of the minimums, the greatest of the maximums, NULL where no
 * shard had a value (a count is never NULL).
 *
 * Values come in text format (the simple protocol's). Combined exactly for
 * the integer types (int2, int4, int8) and numeric (decimal arithmetic on
 * the digits, any precision; sum keeps the largest scale, as PostgreSQL's
 * sum does); any other column type, or a numeric NaN or infinity, is
 * refused with SQLSTATE 0A000 rather than guessed.
 *
 * With GROUP BY (or DISTINCT, a GROUP BY of every output column) each
 * shard answers a row per group; rows of equal keys (compared as written,
 * which numeric and floats are not fit for) are combined into one, the
 * groups kept within a budget (shard_buffer_size).
 *
 * Owns: the first shard's RowDescription and the groups (heap).
 * Must not: do I/O.
 */
#ifndef SLUICE_SHARD_MERGE_H
#define SLUICE_SHARD_MERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct iobuf;
struct shard_merge;
struct shard_sort;

/* A merge of n output columns (enum shard_agg each, shardroute.h: an
 * aggregate, or SHARD_AGG_KEY for a GROUP BY or DISTINCT key); groups
 * offset+1 .. offset+limit (limit -1: all) are answered; the groups take
 * at most budget bytes. NULL without memory. */
struct shard_merge *shard_merge_new(const uint8_t *aggs, int n, int64_t limit, int64_t offset, size_t budget);
void shard_merge_free(struct shard_merge *m);

/* A shard's RowDescription (body, whole): the first is kept for the
 * client; each says the columns' types. */
void shard_merge_describe(struct shard_merge *m, const uint8_t *body, uint32_t len);
/* A shard's DataRow (body, whole). */
void shard_merge_row(struct shard_merge *m, const uint8_t *body, uint32_t len);

/* The client's answer, into out: RowDescription (with_rowdesc: a simple
 * query, or a Describe asked for it), a DataRow per group (one without
 * keys) and CommandComplete "SELECT n"; or an ErrorResponse when the
 * values could not be combined. sort: an ORDER BY the groups go through
 * (its LIMIT and OFFSET then apply; NULL = the order groups were met).
 * Returns 0 or -ENOMEM. */
int shard_merge_finish(struct shard_merge *m, struct iobuf *out, bool with_rowdesc, struct shard_sort *sort);

/* Decimal arithmetic on numeric's text form ("-12.340"): a + b, new heap
 * string (NULL without memory or for text that is not a plain decimal);
 * and the sign of a - b. Exposed for the unit test. */
char *shard_decimal_add(const char *a, const char *b);
int shard_decimal_cmp(const char *a, const char *b);
bool shard_decimal_valid(const char *s);
/* avg from a sum (numeric's text form) and a count, as PostgreSQL's
 * numeric division gives it (scale, rounding); new heap string, NULL
 * without memory or for a count < 1. */
char *shard_decimal_avg(const char *sum, int64_t count);

#endif
