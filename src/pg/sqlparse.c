/*
 * sqlparse.c - see sqlparse.h.
 */
#include "sqlparse.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>

int sql_parse(const char *sql, PgQuery__ParseResult **out)
{
	*out = NULL;
	PgQueryProtobufParseResult r = pg_query_parse_protobuf(sql);
	if (r.error) {
		pg_query_free_protobuf_parse_result(r);
		return 0;
	}
	PgQuery__ParseResult *pr = pg_query__parse_result__unpack(NULL, r.parse_tree.len, (const uint8_t *)r.parse_tree.data);
	pg_query_free_protobuf_parse_result(r);
	if (!pr)
		return -ENOMEM;
	*out = pr;
	return 0;
}

void sql_parse_free(PgQuery__ParseResult *pr)
{
	if (pr)
		pg_query__parse_result__free_unpacked(pr, NULL);
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
