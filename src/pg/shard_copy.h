/*
 * shard_copy.h - the rows of `COPY table (columns) FROM STDIN` into a
 * sharded database, split by shard (docs/sharding.md): each row goes to
 * the shard PostgreSQL's hash partitioning gives its key column's value;
 * into a replicated table every row goes to every shard.
 *
 * Reads the text and CSV formats as PostgreSQL writes and reads them: rows
 * end at a newline (in CSV, outside quotes), fields at the delimiter,
 * backslash escapes (text) and quotes (CSV) undone for the key, the NULL
 * string (NULL keys are shard 0), a HEADER line given to every shard, and
 * the old `\.` end marker. The data arrives in CopyData pieces that need
 * not end with a row. The rows wait for their shard within a budget.
 *
 * Owns: each shard's rows (heap). Must not: do I/O.
 */
#ifndef SLUICE_SHARD_COPY_H
#define SLUICE_SHARD_COPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHARD_COPY_NULL_MAX 16

/* How the client's data is written (from the COPY statement's options). */
struct shard_copy_format {
	int key;            /* the key's field, from 0; -1 = a replicated table: every row
			     * to every shard */
	int key_type;       /* enum pghash_type */
	int n_fields;       /* the column list's length; 0 = none given */
	bool csv;
	bool header;        /* its first line is a header */
	char delim;         /* text: tab, CSV: comma, unless said */
	char quote, escape; /* CSV: '"' both, unless said */
	char null[SHARD_COPY_NULL_MAX]; /* text: \N, CSV: empty, unless said */
};

struct shard_copy;

/* A split over n_shards, keeping at most budget bytes; NULL without memory. */
struct shard_copy *shard_copy_new(const struct shard_copy_format *fmt, int n_shards, size_t budget);
void shard_copy_free(struct shard_copy *s);

/* A piece of the client's data. 0, or -1 when the copy failed
 * (shard_copy_error says why); nothing more is taken then. */
int shard_copy_feed(struct shard_copy *s, const uint8_t *data, size_t len);
/* The client's CopyDone: the last row may lack its newline. 0 or -1. */
int shard_copy_end(struct shard_copy *s);
/* Why it failed: SQLSTATE and message. */
const char *shard_copy_error(const struct shard_copy *s, const char **message);

/* The shards that got rows (bit i: shard i; every shard for a replicated
 * table that got any), and shard i's data as the client wrote it. */
uint64_t shard_copy_shards(const struct shard_copy *s);
const uint8_t *shard_copy_data(const struct shard_copy *s, int shard, size_t *len);
/* HEADER: the header line each shard's data begins with (len 0: none). */
const uint8_t *shard_copy_header(const struct shard_copy *s, size_t *len);

#endif
