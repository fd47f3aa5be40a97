/*
 * prepared.h - protocol-level prepared statements in transaction and
 * statement mode. A client's statement names live in sluice (client map);
 * each server connection has its own cache of statements sluice prepared
 * on it under sluice's names ("sluice_<id>"), bounded by
 * max_prepared_statements with least-recently-used eviction.
 *
 * Owns: struct pstmt_def (query text + parameter type OIDs), the client
 * map and the server cache, and builders for the rewritten messages.
 * Must not: do I/O. Message formats: PostgreSQL docs 55.7 (Parse, Bind,
 * Describe, Close).
 */
#ifndef SLUICE_PREPARED_H
#define SLUICE_PREPARED_H

#include <stdbool.h>
#include <stdint.h>

#include "iobuf.h"
#include "shardroute.h"

struct pstmt_def {
	char *query;       /* heap, NUL-terminated */
	uint32_t *types;   /* heap, n_types parameter type OIDs (may be NULL) */
	uint16_t n_types;
	uint64_t hash;     /* of query and types */
};

struct sql_info;

struct client_stmt {
	char *name;              /* client's statement name (heap) */
	struct pstmt_def def;
	struct sql_info *info;   /* what its text does (sqlinfo.h), one reference; NULL = nothing */
	int8_t read_class;       /* 1 + its sql_read_class (sqlread.h), 0 = not known yet */
	struct shard_plan shard; /* where it goes on a sharded database (pg_shard.c) */
};

struct client_stmts {            /* owned by one client */
	struct client_stmt *v;
	uint32_t n, cap;
	size_t bytes;            /* heap bytes of names, texts and types (the client's budget) */
};

struct server_stmt {
	struct pstmt_def def;
	uint32_t id;             /* server-side name is sluice_<id> */
	uint64_t last_use;       /* LRU clock */
};

struct server_stmts {            /* owned by one server connection */
	struct server_stmt *v;
	uint32_t n, cap;
	uint32_t next_id;
	uint64_t clock;
};

/* Parse message body -> statement name (pointer into body) and a new def.
 * Returns 0 or -EPROTO / -ENOMEM. */
int pstmt_parse_msg(const uint8_t *body, uint32_t len, const char **name, struct pstmt_def *out);
/* Recompute def->hash from its query and types. */
void pstmt_def_rehash(struct pstmt_def *d);
int pstmt_def_copy(struct pstmt_def *dst, const struct pstmt_def *src);
void pstmt_def_free(struct pstmt_def *d);
bool pstmt_def_equal(const struct pstmt_def *a, const struct pstmt_def *b);
/* Heap bytes a client statement of this name and definition holds. */
size_t pstmt_cost(const char *name, const struct pstmt_def *d);

struct client_stmt *client_stmts_find(struct client_stmts *m, const char *name);
/* Takes ownership of *def and of one reference to info. Returns 0 or -ENOMEM. */
int client_stmts_add(struct client_stmts *m, const char *name, struct pstmt_def *def, struct sql_info *info);
/* Removes the entry; when out is given the entry is moved there instead of freed. */
bool client_stmts_remove(struct client_stmts *m, const char *name, struct client_stmt *out);
/* Free an entry moved out by client_stmts_remove. */
void client_stmt_free(struct client_stmt *e);
/* Name of the client statement whose definition is def, or NULL. */
const char *client_stmts_name_of(const struct client_stmts *m, const struct pstmt_def *def);
void client_stmts_clear(struct client_stmts *m);

struct server_stmt *server_stmts_find(struct server_stmts *c, const struct pstmt_def *def);
struct server_stmt *server_stmts_find_id(struct server_stmts *c, uint32_t id);
/* Add a copy of def; returns the entry or NULL (no memory). */
struct server_stmt *server_stmts_add(struct server_stmts *c, const struct pstmt_def *def);
void server_stmts_remove_id(struct server_stmts *c, uint32_t id);
/* Least recently used entry, or NULL when empty. */
struct server_stmt *server_stmts_lru(struct server_stmts *c);
void server_stmts_clear(struct server_stmts *c);

/* Builders (append one message). */
int pstmt_build_parse(struct iobuf *out, uint32_t id, const struct pstmt_def *def);
/* Parse of query under name, with the parameter types of types. */
int pstmt_build_parse_as(struct iobuf *out, const char *name, const char *query,
			 const struct pstmt_def *types);
int pstmt_build_close(struct iobuf *out, uint32_t id);
/* Bind/Describe with the statement name replaced by sluice_<id>. The
 * original body is given; returns -EPROTO when it is malformed. */
int pstmt_build_bind(struct iobuf *out, uint32_t id, const uint8_t *body, uint32_t len);
int pstmt_build_describe(struct iobuf *out, uint32_t id);

/* Statement name of a Bind body (portal, then statement), or NULL. */
const char *pstmt_bind_stmt_name(const uint8_t *body, uint32_t len);

#endif
