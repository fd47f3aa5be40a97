/*
 * shardroute.h - where a statement of a sharded database goes (issue 19,
 * docs/sharding.md): a pure function of the SQL text, the types of its
 * parameters (when a Parse gave them) and the database's sharded tables.
 * PostgreSQL's own grammar reads the text (sqlparse.h, libpg_query); the
 * shard of a key value is PostgreSQL's hash partitioning (pghash.h).
 *
 * What fixes a table's shard key: `key = constant`, `key = $n` and
 * `key IN (constants)` among the AND-ed conditions at the top of a WHERE
 * (or of an inner join's ON); under OR or NOT nothing is fixed. Sharded
 * tables of one statement must be co-located: joined by equality of their
 * keys (`a.k = b.k`, or USING (k)), so every row a shard's join needs is on
 * that shard. Tables not in the map are replicated: the same on every
 * shard. The answer is never a guess: what sluice cannot route exactly is
 * refused (SQLSTATE 0A000) with a message naming the construct.
 *
 * Owns: struct shard_route's items (shard_route_deinit frees them).
 * Must not: do I/O, keep state between calls, or know about clients,
 * servers and pools.
 */
#ifndef SLUICE_SHARDROUTE_H
#define SLUICE_SHARDROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shard_copy.h"
#include "shard_sort.h"
#include "sqlshape.h"

/* One sharded table of the database ([sharded_tables]; names as the
 * parser leaves them: unquoted ones in lower case). */
struct shard_table {
	const char *schema; /* NULL: the name in any schema */
	const char *table;
	const char *column; /* the shard key column */
	int key_type;       /* enum pghash_type; PGHASH_UNKNOWN when not configured */
};

/* A sharded database as the router sees it; the caller owns it all. */
struct shard_map {
	const struct shard_table *tables;
	size_t n_tables;
	int n_shards;       /* 1..PGHASH_MAX_MODULUS */
};

enum shard_route_kind {
	SHARD_ROUTE_ONE = 0,          /* one shard: .shard */
	SHARD_ROUTE_SEVERAL,          /* the shards in .mask (an IN list, the rows of a
				       * multi-row INSERT: .items), each running the
				       * text as it is; their answers merged */
	SHARD_ROUTE_BIND,             /* one shard, decided at Bind: the shard of
				       * parameter $.param's value, of type .param_type */
	SHARD_ROUTE_REPLICATED_READ,  /* only replicated tables, reads: any one shard */
	SHARD_ROUTE_REPLICATED_WRITE, /* only replicated tables (or DDL), writes: every shard */
	SHARD_ROUTE_MULTI,            /* sharded tables, no fixed key: every shard, merged */
	SHARD_ROUTE_SESSION,          /* transaction control and session settings (BEGIN,
				       * COMMIT, SET, SHOW, ...): the client side applies
				       * them on the shards its transaction uses */
	SHARD_ROUTE_REFUSE,           /* cannot be answered exactly: .sqlstate, .message */
	SHARD_ROUTE_KINDS
};

/* A text that is one transaction-control statement the client side may
 * answer itself (a BEGIN before the shard is known, docs/sharding.md). */
enum shard_tx {
	SHARD_TX_NONE = 0,  /* anything else (also SAVEPOINT, COMMIT PREPARED, ...) */
	SHARD_TX_BEGIN,     /* BEGIN or START TRANSACTION, alone */
	SHARD_TX_COMMIT,    /* COMMIT or END, alone */
	SHARD_TX_ROLLBACK,  /* ROLLBACK or ABORT, alone */
	SHARD_TX_ENDS,      /* anything else that ends a transaction: COMMIT or ROLLBACK AND
			     * CHAIN, PREPARE TRANSACTION, or among several statements */
};

/* An aggregate the client side can combine over shards (shard_route.aggs). */
enum shard_agg {
	SHARD_AGG_COUNT = 1, /* count(*), count(x): the counts added */
	SHARD_AGG_SUM,       /* sum(x): the sums added (NULL when every shard's is) */
	SHARD_AGG_MIN,       /* min(x) */
	SHARD_AGG_MAX,       /* max(x) */
	SHARD_AGG_KEY,       /* not an aggregate: a GROUP BY (or DISTINCT) key column */
	SHARD_AGG_AVG_SUM,   /* avg(x), which each shard runs as sum(x), count(x): the sum... */
	SHARD_AGG_AVG_COUNT, /* ...and the count (the next column), the avg's name "avg"... */
	SHARD_AGG_AVG_COUNT_NAMED, /* ...or the count's (the target had an alias, now the count's) */
};
#define SHARD_MAX_AGGS 16

/* One row of a multi-row INSERT ... VALUES, in order. */
struct shard_item {
	int shard;          /* its shard, or -1: decided at Bind */
	int param;          /* -1 rows: the parameter ($n) holding its key */
	int param_type;     /* -1 rows: the parameter's type (enum pghash_type) */
};

/* A route in 10 bytes: what a client keeps per prepared statement, so that
 * a statement bound again and again is parsed once (shard_plan_of). */
struct shard_plan {
	int8_t kind;        /* enum shard_route_kind + 1; 0 = not routed yet */
	uint8_t tx;         /* enum shard_tx */
	int8_t param_type;  /* BIND: enum pghash_type */
	bool write;
	bool bind_alone;    /* BIND: the only parameter that fixes a key */
	int8_t shard;       /* ONE (< PGHASH_MAX_MODULUS) */
	bool concat;        /* MULTI, SEVERAL: shard_route's concat */
	bool aggregate;     /* MULTI, SEVERAL: shard_route's n_aggs > 0 */
	int16_t param;      /* BIND: $n */
};

struct shard_route {
	int kind;           /* enum shard_route_kind */
	bool write;         /* the statement writes (or locks rows: FOR UPDATE) */
	uint8_t tx;         /* SESSION: enum shard_tx */
	int shard;          /* ONE: the shard */
	uint64_t mask;      /* SEVERAL: bit i for shard i (known rows only for items) */
	int param;          /* BIND: $n, from 1 */
	int param_type;     /* BIND: enum pghash_type of the value (PGHASH_UNKNOWN when
			     * neither the configuration nor the Parse said) */
	bool concat;        /* MULTI, SEVERAL: a SELECT whose answer is the shards' rows, one
			     * shard's after the other or merged in the order of its
			     * ORDER BY (.sort: output columns only); no DISTINCT,
			     * grouping, aggregate or other function call in its output;
			     * LIMIT and OFFSET of constants (.limit, .offset) */
	int64_t limit;      /* concat: LIMIT n, its rows stop after n; -1 = none */
	int64_t offset;     /* concat: OFFSET k, the first k rows skipped; 0 = none */
	uint8_t n_sort;     /* concat: its ORDER BY keys; 0 = none */
	struct shard_sort_key sort[SHARD_SORT_MAX_KEYS];
	char *shard_sql;    /* concat with an OFFSET: the text each shard runs instead, LIMIT
			     * n+k OFFSET 0 (heap); NULL = the statement's own */
	uint8_t n_aggs;     /* MULTI, SEVERAL: a SELECT of only count/sum/min/max calls, with
			     * no grouping, ordering or limit: each shard's one row
			     * combined (enum shard_agg per output column); 0 = not so */
	uint8_t aggs[SHARD_MAX_AGGS];
	bool copy_in;       /* MULTI, REPLICATED_WRITE: COPY ... FROM STDIN, its rows read by
			     * sluice and split by .copy (a replicated table: .copy.key -1) */
	struct shard_copy_format copy;
	bool bind_alone;    /* BIND: $param is the only parameter that fixes a key (others
			     * fixing the same key would intersect with it) */
	struct shard_item *items; /* SEVERAL from INSERT ... VALUES: one per row; else NULL */
	size_t n_items;
	char sqlstate[6];   /* REFUSE */
	char message[256];  /* REFUSE: what cannot be routed, and why */
};

/*
 * Route the NUL-terminated SQL text (one or several statements) over map.
 * param_types: the Parse's parameter type OIDs (n_param_types of them, 0 =
 * unspecified; NULL for a simple Query). Fills *out (then always
 * shard_route_deinit it) and returns 0; -ENOMEM when memory ran out (out
 * is then a REFUSE with SQLSTATE 53200).
 */
int shard_route(const char *sql, const uint32_t *param_types, int n_param_types, const struct shard_map *map,
		struct shard_route *out);
void shard_route_deinit(struct shard_route *r);

const char *shard_route_kind_name(int kind);

/* A simple query's text routed by its shape (sqlshape.h): plan is the
 * shape's, the literals are the text's (lits[k] at sql + off, the value
 * of $k+1; sql_shape's output). When the shape's key is one of those integer literals, the
 * shard that literal's value gives (what the text's own route says);
 * else -1: the text must be routed itself. */
int shard_plan_literal_shard(const struct shard_plan *plan, const char *sql, const struct sql_literal *lits,
			     int n_lits, int n_shards);

/* The plan of a simple query's shape, to keep for the texts of that
 * shape: shape and its literals are sql_shape's output for sql. A shape
 * whose key is one of the literals is checked once against sql's own
 * route (a shape may parse where its text does not: `c $1` but not
 * `c 12`), and kept as a plan for any literal only when they agree.
 * Returns 0 or -ENOMEM. */
int shard_plan_of_shape(const char *shape, const char *sql, const struct sql_literal *lits, int n_lits,
			const struct shard_map *map, struct shard_plan *out);

/* The plan that keeps r (its items, mask and refusal are not kept: a
 * client routes such texts again when it needs them). */
struct shard_plan shard_plan_of(const struct shard_route *r);

#endif
