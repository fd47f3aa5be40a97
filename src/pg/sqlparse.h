/*
 * sqlparse.h - the SQL parser shared by sqlinfo (what a text does to the
 * session) and sqlread (whether a text only reads): PostgreSQL's own
 * grammar through libpg_query (PostgreSQL 15), whose parse tree comes as
 * protobuf (its only stable C interface) and is walked generically through
 * protobuf-c's descriptors, so no node type can hide a function call or a
 * relation from a walk. Also the blank-and-comment skip of the lexical
 * screens that keep plain traffic away from the parser.
 *
 * Owns: nothing beyond a call (the parse result belongs to the caller).
 * Must not: do I/O, or know what a node means (its callers decide).
 */
#ifndef SLUICE_SQLPARSE_H
#define SLUICE_SQLPARSE_H

#include <stddef.h>

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>

/* The tree of one text. The unpacked messages live in an arena (the
 * first part inline, so a short query's tree costs no malloc, and nothing
 * is freed message by message): unpacking with malloc and freeing each
 * message cost about as much as the rest of sql_parse's work on a pgbench
 * SELECT. Embedded, usually on the caller's stack; the tree is gone at
 * sql_tree_deinit. */
#define SQL_TREE_INLINE 4096

struct sql_tree {
	PgQuery__ParseResult *pr; /* the statements; NULL when the text did not parse */
	char *chunk;              /* arena chunk being filled: inline, or the last heap one */
	size_t used, cap;         /* bytes of chunk handed out, and its size */
	void *heap;               /* heap chunks, each starting with the previous one's address */
	_Alignas(16) char inline_chunk[SQL_TREE_INLINE]; /* the first chunk */
};

/* Parse a NUL-terminated text into t (then always sql_tree_deinit it).
 * t->pr is NULL when the text does not parse (PostgreSQL would refuse it
 * too). Returns 0, or -ENOMEM when the tree cannot be unpacked. */
int sql_parse(struct sql_tree *t, const char *sql);
void sql_tree_deinit(struct sql_tree *t);

/* What a visitor tells the walk. */
enum {
	SQL_WALK_ON = 0, /* go on, below m too */
	SQL_WALK_SKIP,   /* go on, but not below m */
	/* anything else stops the walk, which returns it */
};

/* Deeper than this, a walk asks too_deep instead of descending. */
#define SQL_WALK_MAX_DEPTH 400

/* Embedded in the caller's walk state (first member, or container_of). */
struct sql_walker {
	/* Every message, parents before children; parent is the descriptor
	 * of the message holding m (NULL for the root). Returns SQL_WALK_ON,
	 * SQL_WALK_SKIP or a value that stops the walk. */
	int (*visit)(struct sql_walker *w, const ProtobufCMessage *m, const ProtobufCMessageDescriptor *parent);
	/* A message below SQL_WALK_MAX_DEPTH, not visited: the same answers
	 * (SQL_WALK_SKIP or ON leave it out and go on). */
	int (*too_deep)(struct sql_walker *w);
};

/* Every message below and including m (oneofs: the set case only;
 * repeated fields: each element, in order). Returns SQL_WALK_ON when the
 * walk ran to its end, else the value that stopped it. */
int sql_walk(struct sql_walker *w, const ProtobufCMessage *m);

/* Past blanks, -- comments and (nested) slash-star comments from p; an
 * unterminated comment runs to end. */
const char *sql_skip_space(const char *p, const char *end);

#endif
