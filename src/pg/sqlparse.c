/*
 * sqlparse.c - see sqlparse.h.
 */
#include "sqlparse.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

/* protobuf-c's allocator over the tree's arena: 16-byte aligned bumps,
 * frees do nothing (sql_tree_deinit drops it all). */
static void *arena_alloc(void *data, size_t n)
{
	struct sql_tree *t = data;
	n = (n + 15) & ~(size_t)15;
	if (n > t->cap - t->used) {
		size_t cap = t->cap * 2 > n + 16 ? t->cap * 2 : n + 16;
		char *c = malloc(cap);
		if (!c)
			return NULL;
		*(void **)c = t->heap; /* the chain, in the first 16 bytes */
		t->heap = c;
		t->chunk = c;
		t->used = 16;
		t->cap = cap;
	}
	void *p = t->chunk + t->used;
	t->used += n;
	return p;
}

static void arena_free(void *data, void *p)
{
}

int sql_parse(struct sql_tree *t, const char *sql)
{
	t->pr = NULL;
	t->chunk = t->inline_chunk;
	t->used = 0;
	t->cap = sizeof(t->inline_chunk);
	t->heap = NULL;
	PgQueryProtobufParseResult r = pg_query_parse_protobuf(sql);
	if (r.error) {
		pg_query_free_protobuf_parse_result(r);
		return 0;
	}
	ProtobufCAllocator arena = { .alloc = arena_alloc, .free = arena_free, .allocator_data = t };
	t->pr = pg_query__parse_result__unpack(&arena, r.parse_tree.len, (const uint8_t *)r.parse_tree.data);
	pg_query_free_protobuf_parse_result(r);
	return t->pr ? 0 : -ENOMEM;
}

void sql_tree_deinit(struct sql_tree *t)
{
	while (t->heap) {
		void *next = *(void **)t->heap;
		free(t->heap);
		t->heap = next;
	}
	t->pr = NULL;
}

static int walk(struct sql_walker *w, const ProtobufCMessage *m, const ProtobufCMessageDescriptor *parent, int depth)
{
	if (!m)
		return SQL_WALK_ON;
	int rc = depth > SQL_WALK_MAX_DEPTH ? w->too_deep(w) : w->visit(w, m, parent);
	if (rc == SQL_WALK_SKIP)
		return SQL_WALK_ON;
	if (rc != SQL_WALK_ON || depth > SQL_WALK_MAX_DEPTH)
		return rc;
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;
	if (d == &pg_query__node__descriptor) {
		/* Node is one oneof of some 240 messages, every second message of
		 * a tree: straight to the case that is set. */
		const PgQuery__Node *n = (const PgQuery__Node *)m;
		const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(d, (unsigned)n->node_case);
		if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE)
			return SQL_WALK_ON;
		return walk(w, *(ProtobufCMessage *const *)(base + f->offset), d, depth + 1);
	}
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && *(const uint32_t *)(base + f->quantifier_offset) != f->id)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			ProtobufCMessage *const *v = *(ProtobufCMessage *const *const *)(base + f->offset);
			for (size_t k = 0; k < n; k++)
				if ((rc = walk(w, v[k], d, depth + 1)) != SQL_WALK_ON)
					return rc;
		} else {
			rc = walk(w, *(ProtobufCMessage *const *)(base + f->offset), d, depth + 1);
			if (rc != SQL_WALK_ON)
				return rc;
		}
	}
	return SQL_WALK_ON;
}

int sql_walk(struct sql_walker *w, const ProtobufCMessage *m)
{
	return walk(w, m, NULL, 0);
}

const char *sql_skip_space(const char *p, const char *end)
{
	while (p < end) {
		if (isspace((unsigned char)*p)) {
			p++;
		} else if (*p == '-' && p + 1 < end && p[1] == '-') {
			while (p < end && *p != '\n')
				p++;
		} else if (*p == '/' && p + 1 < end && p[1] == '*') {
			int depth = 0;
			while (p < end) {
				if (*p == '/' && p + 1 < end && p[1] == '*') {
					depth++;
					p += 2;
				} else if (*p == '*' && p + 1 < end && p[1] == '/') {
					p += 2;
					if (--depth == 0)
						break;
				} else {
					p++;
				}
			}
		} else {
			break;
		}
	}
	return p;
}
