/*
 * prepared.c - see prepared.h. Maps are small arrays searched linearly
 * with a hash check first: a client rarely has more than a few hundred
 * statements, and lookups happen once per Bind, not per byte.
 */
#include "prepared.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_proto.h"
#include "fnv.h"
#include "sqlinfo.h"



int pstmt_parse_msg(const uint8_t *body, uint32_t len, const char **name, struct pstmt_def *out)
{
	struct pg_reader r;
	pg_reader_init(&r, body, len);
	*name = pg_read_str(&r);
	const char *query = pg_read_str(&r);
	uint16_t n = pg_read_u16(&r);
	const uint8_t *types = pg_read_bytes(&r, (size_t)n * 4);
	if (r.err)
		return -EPROTO;
	memset(out, 0, sizeof(*out));
	out->query = strdup(query);
	out->n_types = n;
	out->types = n ? malloc((size_t)n * 4) : NULL;
	if (!out->query || (n && !out->types)) {
		pstmt_def_free(out);
		return -ENOMEM;
	}
	for (uint16_t i = 0; i < n; i++)
		out->types[i] = pg_get_u32(types + 4 * i);
	pstmt_def_rehash(out);
	return 0;
}

void pstmt_def_rehash(struct pstmt_def *d)
{
	/* Over the query and the types as they travel (big-endian), so a
	 * definition rebuilt from its parts hashes as the parsed one did. */
	uint64_t h = fnv1a(FNV1A_START, d->query, strlen(d->query));
	for (uint16_t i = 0; i < d->n_types; i++) {
		uint8_t be[4];
		pg_put_u32(be, d->types[i]);
		h = fnv1a(h, be, 4);
	}
	d->hash = h;
}

int pstmt_def_copy(struct pstmt_def *dst, const struct pstmt_def *src)
{
	*dst = *src;
	dst->query = strdup(src->query);
	dst->types = src->n_types ? malloc((size_t)src->n_types * 4) : NULL;
	if (!dst->query || (src->n_types && !dst->types)) {
		pstmt_def_free(dst);
		return -ENOMEM;
	}
	if (src->n_types)
		memcpy(dst->types, src->types, (size_t)src->n_types * 4);
	return 0;
}

void pstmt_def_free(struct pstmt_def *d)
{
	free(d->query);
	free(d->types);
	memset(d, 0, sizeof(*d));
}

bool pstmt_def_equal(const struct pstmt_def *a, const struct pstmt_def *b)
{
	return a->hash == b->hash && a->n_types == b->n_types &&
	       strcmp(a->query, b->query) == 0 &&
	       (a->n_types == 0 || memcmp(a->types, b->types, (size_t)a->n_types * 4) == 0);
}

struct client_stmt *client_stmts_find(struct client_stmts *m, const char *name)
{
	for (uint32_t i = 0; i < m->n; i++)
		if (strcmp(m->v[i].name, name) == 0)
			return &m->v[i];
	return NULL;
}

size_t pstmt_cost(const char *name, const struct pstmt_def *d)
{
	return sizeof(struct client_stmt) + strlen(name) + 1 + strlen(d->query) + 1 + (size_t)d->n_types * 4;
}

int client_stmts_add(struct client_stmts *m, const char *name, struct pstmt_def *def, struct sql_info *info)
{
	if (m->n == m->cap) {
		uint32_t ncap = m->cap ? m->cap * 2 : 8;
		struct client_stmt *v = realloc(m->v, ncap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		m->v = v;
		m->cap = ncap;
	}
	char *n = strdup(name);
	if (!n)
		return -ENOMEM;
	m->v[m->n].name = n;
	m->v[m->n].def = *def;
	m->v[m->n].info = info;
	m->v[m->n].read_class = 0;
	m->v[m->n].shard = (struct shard_plan){ 0 };
	memset(def, 0, sizeof(*def));
	m->bytes += pstmt_cost(n, &m->v[m->n].def);
	m->n++;
	return 0;
}

void client_stmt_free(struct client_stmt *e)
{
	free(e->name);
	pstmt_def_free(&e->def);
	sql_info_put(e->info);
	memset(e, 0, sizeof(*e));
}

const char *client_stmts_name_of(const struct client_stmts *m, const struct pstmt_def *def)
{
	for (uint32_t i = 0; i < m->n; i++)
		if (pstmt_def_equal(&m->v[i].def, def))
			return m->v[i].name;
	return NULL;
}

bool client_stmts_remove(struct client_stmts *m, const char *name, struct client_stmt *out)
{
	struct client_stmt *e = client_stmts_find(m, name);
	if (!e)
		return false;
	m->bytes -= pstmt_cost(e->name, &e->def);
	if (out)
		*out = *e;
	else
		client_stmt_free(e);
	*e = m->v[--m->n];
	return true;
}

void client_stmts_clear(struct client_stmts *m)
{
	for (uint32_t i = 0; i < m->n; i++)
		client_stmt_free(&m->v[i]);
	free(m->v);
	memset(m, 0, sizeof(*m));
}

struct server_stmt *server_stmts_find(struct server_stmts *c, const struct pstmt_def *def)
{
	for (uint32_t i = 0; i < c->n; i++) {
		if (pstmt_def_equal(&c->v[i].def, def)) {
			c->v[i].last_use = ++c->clock;
			return &c->v[i];
		}
	}
	return NULL;
}

struct server_stmt *server_stmts_find_id(struct server_stmts *c, uint32_t id)
{
	for (uint32_t i = 0; i < c->n; i++)
		if (c->v[i].id == id)
			return &c->v[i];
	return NULL;
}

struct server_stmt *server_stmts_add(struct server_stmts *c, const struct pstmt_def *def)
{
	if (c->n == c->cap) {
		uint32_t ncap = c->cap ? c->cap * 2 : 8;
		struct server_stmt *v = realloc(c->v, ncap * sizeof(*v));
		if (!v)
			return NULL;
		c->v = v;
		c->cap = ncap;
	}
	struct server_stmt *e = &c->v[c->n];
	if (pstmt_def_copy(&e->def, def) < 0)
		return NULL;
	e->id = ++c->next_id;
	e->last_use = ++c->clock;
	c->n++;
	return e;
}

void server_stmts_remove_id(struct server_stmts *c, uint32_t id)
{
	for (uint32_t i = 0; i < c->n; i++) {
		if (c->v[i].id == id) {
			pstmt_def_free(&c->v[i].def);
			c->v[i] = c->v[--c->n];
			return;
		}
	}
}

struct server_stmt *server_stmts_lru(struct server_stmts *c)
{
	struct server_stmt *best = NULL;
	for (uint32_t i = 0; i < c->n; i++)
		if (!best || c->v[i].last_use < best->last_use)
			best = &c->v[i];
	return best;
}

void server_stmts_clear(struct server_stmts *c)
{
	for (uint32_t i = 0; i < c->n; i++)
		pstmt_def_free(&c->v[i].def);
	free(c->v);
	uint32_t next = c->next_id;
	memset(c, 0, sizeof(*c));
	c->next_id = next; /* names are never reused on one connection */
}

static void stmt_name(uint32_t id, char buf[24])
{
	snprintf(buf, 24, "sluice_%u", id);
}

int pstmt_build_parse_as(struct iobuf *out, const char *name, const char *query,
			 const struct pstmt_def *types)
{
	struct pg_builder b;
	pg_build_init(&b, out);
	pg_build_begin(&b, 'P');
	pg_build_str(&b, name);
	pg_build_str(&b, query);
	pg_build_u16(&b, types->n_types);
	for (uint16_t i = 0; i < types->n_types; i++)
		pg_build_u32(&b, types->types[i]);
	pg_build_end(&b);
	return pg_build_done(&b);
}

int pstmt_build_parse(struct iobuf *out, uint32_t id, const struct pstmt_def *def)
{
	char name[24];
	stmt_name(id, name);
	return pstmt_build_parse_as(out, name, def->query, def);
}

/* Close or Describe ('C' / 'D') of statement sluice_<id>. */
static int build_stmt_op(struct iobuf *out, uint8_t type, uint32_t id)
{
	char name[24];
	stmt_name(id, name);
	struct pg_builder b;
	pg_build_init(&b, out);
	pg_build_begin(&b, type);
	pg_build_u8(&b, 'S');
	pg_build_str(&b, name);
	pg_build_end(&b);
	return pg_build_done(&b);
}

int pstmt_build_close(struct iobuf *out, uint32_t id)
{
	return build_stmt_op(out, 'C', id);
}

int pstmt_build_describe(struct iobuf *out, uint32_t id)
{
	return build_stmt_op(out, 'D', id);
}

const char *pstmt_bind_stmt_name(const uint8_t *body, uint32_t len)
{
	struct pg_reader r;
	pg_reader_init(&r, body, len);
	pg_read_str(&r);
	const char *stmt = pg_read_str(&r);
	return r.err ? NULL : stmt;
}

int pstmt_build_bind(struct iobuf *out, uint32_t id, const uint8_t *body, uint32_t len)
{
	struct pg_reader r;
	pg_reader_init(&r, body, len);
	const char *portal = pg_read_str(&r);
	pg_read_str(&r);
	if (r.err)
		return -EPROTO;
	char name[24];
	stmt_name(id, name);
	struct pg_builder b;
	pg_build_init(&b, out);
	pg_build_begin(&b, 'B');
	pg_build_str(&b, portal);
	pg_build_str(&b, name);
	pg_build_bytes(&b, r.p, (size_t)(r.end - r.p));
	pg_build_end(&b);
	return pg_build_done(&b);
}
