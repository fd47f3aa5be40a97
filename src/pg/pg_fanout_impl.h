/*
 * pg_fanout_impl.h - what the files of pg_fanout share (pg_fanout.c runs
 * statements and transactions over shards; pg_fanout_copy.c reads a COPY's
 * rows and streams each shard's): the fan-out's state. Not for other
 * modules: they use pg_fanout.h.
 */
#ifndef SLUICE_PG_FANOUT_IMPL_H
#define SLUICE_PG_FANOUT_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shard_2pc.h"

struct iobuf;
struct pg_builder;
struct pg_client;
struct shard_copy;
struct shard_merge;
struct shard_sort;

/* What a fan-out is doing on its current shard. */
enum fan_phase {
	FAN_READ,        /* the read, on each shard */
	FAN_COPY_IN,     /* COPY FROM STDIN: the client's rows read and split by shard */
	FAN_PREPARE,     /* a write: BEGIN, the statement, PREPARE TRANSACTION, on each shard */
	FAN_LEAVE,       /* a transaction moves on: its part on the client's shard is prepared */
	FAN_END,         /* a transaction over shards ends: its current part prepared (COMMIT)
			  * or rolled back */
	FAN_COMMIT,      /* COMMIT PREPARED, the coordinator's first (the decision) */
	FAN_ABORT,       /* ROLLBACK PREPARED of what was prepared */
};

/* What a fan-out has done so far (pg_client.shard_fanout). */
struct pg_shard_fanout {
	uint64_t todo;   /* shards still to run (bit i: shard i) */
	uint64_t rows;   /* rows sent to the client so far */
	int64_t limit;   /* the query's LIMIT: no more rows than that; -1 = none */
	struct shard_merge *merge; /* an aggregate: each shard's row combined (heap); NULL =
				    * the rows concatenated */
	struct shard_sort *sort; /* ORDER BY: the shards' rows kept and sorted (heap) */
	struct shard_copy *copy; /* COPY FROM STDIN: the rows by shard (heap) */
	size_t copy_sent;  /* PREPARE of a COPY: the current shard's data bytes sent */
	bool copy_done;    /* ...and its end (CopyDone, PREPARE, Sync) */
	bool copy_failed;  /* COPY_IN: the client was told an error; its data is dropped */
	char *sql;       /* a simple Query's text as each shard runs it, when not the
			  * client's (an OFFSET rewritten; heap) */
	int64_t skip;    /* OFFSET without ORDER BY: rows still to skip */
	uint8_t *ext;    /* extended protocol: the statement's Parse, Bind, Describe and
			  * Execute (heap); NULL = the Query's text */
	uint32_t ext_len;
	uint32_t consumed; /* the client's bytes answered at the end: its Query, or its batch */
	bool want_rowdesc; /* the client asked for a RowDescription (a Query, a Describe) */
	bool want_nodata; /* the client's Describe gets a shard's NoData (extended writes) */
	bool sent;       /* the text is on the current shard's server */
	bool described;  /* a shard described the rows (the first one's went to the client) */
	bool failed;     /* a shard answered an error: the rest are not asked */
	/* Writes and transactions (docs/sharding.md, shard_2pc.h): */
	uint8_t phase;   /* enum fan_phase */
	uint8_t step;    /* PREPARE, LEAVE: the current shard's CommandCompletes so far */
	bool rolling_back; /* PREPARE: the current shard's transaction failed; its ROLLBACK runs */
	bool commit;     /* END: the client asked for COMMIT */
	bool resolved;   /* every shard's prepared part was committed or rolled back */
	bool left_behind; /* a COMMIT or ROLLBACK PREPARED failed: the recovery's to finish */
	bool counted;    /* the tag ends with a number */
	int8_t shard;    /* the current shard */
	struct shard_tpc *t; /* the two-phase commit: &own, or the client's transaction's
			      * (pg_client.shard_tx); NULL = a read */
	struct shard_tpc own;
	uint64_t count;  /* the statement's rows over the shards (its tag's number) */
	char tag[64];    /* the first shard's CommandComplete, number cut off */
	char begin[160]; /* LEAVE: the BEGIN the next shard gets (the transaction's kind) */
	char fail_code[6]; /* LEAVE: the error that stopped it */
	char fail_msg[200];
};

/* A statement as extended-protocol messages, unnamed (Parse, Bind,
 * Describe when describe, Execute; no Sync): args, the Bind's arguments
 * from its parameter formats on (NULL: none). */
void pg_fanout_build_stmt(struct pg_builder *pb, const char *sql, const uint32_t *types, int n_types,
			  const uint8_t *args, uint32_t args_len, bool describe);
/* The end of a write's batch on the current shard: PREPARE TRANSACTION
 * under its name, and Sync. */
void pg_fanout_build_prepare(struct pg_builder *pb, const struct pg_client *c, const struct pg_shard_fanout *f);
/* PREPARE of a COPY: more of the current shard's rows into w
 * (pg_fanout_copy.c). 0 or -ENOMEM. */
int pg_fanout_copy_more(struct pg_client *c, struct pg_shard_fanout *f, struct iobuf *w);

#endif
