/*
 * shard_sort.h - one ordered answer from the answers of several shards to
 * `SELECT ... ORDER BY ... [LIMIT n] [OFFSET k]` (docs/sharding.md): each
 * shard answers its rows in order (with LIMIT n+k, OFFSET 0); the rows
 * are kept, sorted as PostgreSQL sorts them, cut to the first n+k, and the
 * client gets rows k+1 .. k+n with one RowDescription and `SELECT count`.
 *
 * The shards are read one after the other, so the rows wait in memory:
 * at most the first n+k with a LIMIT, else all of them, within a budget
 * (shard_buffer_size); past it the query is refused (SQLSTATE 54000)
 * rather than memory grown without bound.
 *
 * Sort keys are output columns (by position, or by a name that is one
 * output column's, as PostgreSQL resolves `ORDER BY name`), compared on
 * their text form exactly as PostgreSQL compares their values for the
 * types it can: int2/int4/int8, numeric, float4/float8 (NaN greatest),
 * bool, date, timestamp and timestamptz (DateStyle ISO), uuid, and text,
 * varchar, char and name under COLLATE "C". Any other type, a collation
 * other than "C", binary results, or a value it cannot read, gets SQLSTATE
 * 0A000 (or 22xxx) instead of a guessed order.
 *
 * Owns: the first shard's RowDescription and the rows kept (heap).
 * Must not: do I/O.
 */
#ifndef SLUICE_SHARD_SORT_H
#define SLUICE_SHARD_SORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct iobuf;
struct shard_sort;

#define SHARD_SORT_MAX_KEYS 8
#define SHARD_SORT_NAME_MAX 64

/* One ORDER BY item (shardroute.h's route keeps them). */
struct shard_sort_key {
	int16_t position;   /* output column, from 1; 0 = by name */
	char name[SHARD_SORT_NAME_MAX]; /* position 0: the output column of that name */
	bool desc;
	bool nulls_first;
	bool collate_c;     /* COLLATE "C": text compares by bytes */
};

/* A sort by n keys keeping rows offset+1 .. offset+limit (limit -1: all),
 * in at most budget bytes; NULL without memory. */
struct shard_sort *shard_sort_new(const struct shard_sort_key *keys, int n, int64_t limit, int64_t offset,
				  size_t budget);
void shard_sort_free(struct shard_sort *s);

/* A shard's RowDescription (body, whole): the first is kept for the
 * client, and says which columns are the keys and their types. */
void shard_sort_describe(struct shard_sort *s, const uint8_t *body, uint32_t len);
/* A shard's DataRow (body, whole). */
void shard_sort_row(struct shard_sort *s, const uint8_t *body, uint32_t len);
/* Has it failed (an error is what finish gives)? No more rows are needed. */
bool shard_sort_failed(const struct shard_sort *s);

/* The client's answer, into out: RowDescription (with_rowdesc), the rows,
 * CommandComplete "SELECT n"; or an ErrorResponse. 0 or -ENOMEM. */
int shard_sort_finish(struct shard_sort *s, struct iobuf *out, bool with_rowdesc);

/* Text of a timestamp, timestamptz or date in DateStyle ISO as
 * microseconds since 2000-01-01 UTC (a date: its midnight); infinity and
 * -infinity as INT64_MAX and INT64_MIN. False when it is not such text.
 * Exposed for the unit test. */
bool shard_sort_time(const char *s, size_t n, int64_t *out);

#endif
