/*
 * pg_fanout.c - see pg_fanout.h.
 */
#include "pg_fanout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iobuf.h"
#include "pg_client.h"
#include "pg_proto.h"
#include "pg_server.h"
#include "pg_shard.h"
#include "pgsock.h"
#include "pool.h"
#include "shard_merge.h"
#include "shardroute.h"
#include "track.h"

/* What a fan-out has done so far (pg_client.shard_fanout). */
struct pg_shard_fanout {
	uint64_t todo;   /* shards still to run (bit i: shard i) */
	uint64_t rows;   /* rows sent to the client so far */
	int64_t limit;   /* the query's LIMIT: no more rows than that; -1 = none */
	struct shard_merge *merge; /* an aggregate: each shard's row combined (heap); NULL =
				    * the rows concatenated */
	uint8_t *ext;    /* extended protocol: the messages each shard gets (Parse, Bind,
			  * Describe, Execute, Sync; heap); NULL = the Query's text */
	uint32_t ext_len;
	uint32_t consumed; /* the client's bytes answered at the end: its Query, or its batch */
	bool want_rowdesc; /* the client asked for a RowDescription (a Query, a Describe) */
	bool sent;       /* the text is on the current shard's server */
	bool described;  /* a shard described the rows (the first one's went to the client) */
	bool failed;     /* a shard answered an error: the rest are not asked */
};

bool pg_fanout_start(struct pg_client *c, const struct shard_map *map, const struct shard_plan *pl,
		     const struct shard_route *known, const char *sql, uint32_t consumed, bool want_rowdesc,
		     bool *failed)
{
	int kind = pl->kind - 1;
	uint64_t all = map->n_shards >= 64 ? ~UINT64_C(0) : (UINT64_C(1) << map->n_shards) - 1;
	*failed = false;
	if ((kind != SHARD_ROUTE_MULTI && kind != SHARD_ROUTE_SEVERAL) || (!pl->concat && !pl->aggregate) ||
	    c->shard_begin || c->pinned)
		return false;
	struct shard_route r;
	if (!known && (kind == SHARD_ROUTE_SEVERAL || pl->aggregate)) {
		shard_route(sql, NULL, 0, map, &r);
		known = &r;
	}
	/* Without a route at hand, the plan was kept for the text itself: a
	 * LIMIT would have been a literal, routed by a parse. */
	uint64_t mask = !known ? all : known->kind == SHARD_ROUTE_SEVERAL ? known->mask
			: known->kind == SHARD_ROUTE_MULTI ? all : 0;
	struct pg_shard_fanout *f = mask ? calloc(1, sizeof(*f)) : NULL;
	if (f) {
		f->todo = mask;
		f->consumed = consumed;
		f->want_rowdesc = want_rowdesc;
		f->limit = known && known->concat ? known->limit : -1;
		if (known && !known->concat && known->n_aggs && !(f->merge = shard_merge_new(known->aggs, known->n_aggs))) {
			free(f);
			f = NULL;
		}
		if (!f)
			*failed = true;
	}
	if (known == &r)
		shard_route_deinit(&r);
	if (*failed) {
		client_fail(c, "53200", "out of memory");
		return false;
	}
	c->shard_fanout = f;
	return f != NULL;
}

int pg_fanout_next(struct pg_client *c, struct pool **out)
{
	struct pg_shard_fanout *f = c->shard_fanout;
	c->sock.parse_blocked = false; /* idle: the Query is read again */
	/* Past the LIMIT once a shard has described the rows (LIMIT 0 too). */
	if (f->failed || !f->todo || (f->limit >= 0 && f->rows >= (uint64_t)f->limit && f->described)) {
		int rc = 0;
		if (!f->failed && f->merge) {
			rc = shard_merge_finish(f->merge, &c->sock.wbuf, f->want_rowdesc);
		} else if (!f->failed) {
			char tag[32];
			snprintf(tag, sizeof(tag), "SELECT %llu", (unsigned long long)f->rows);
			pg_be_complete(&c->sock.wbuf, tag);
		}
		pg_be_ready(&c->sock.wbuf, 'I');
		pgsock_drop(&c->sock, f->consumed);
		pg_fanout_free(c);
		if (rc < 0) {
			client_fail(c, "53200", "out of memory");
			return PG_SHARD_FAILED;
		}
		return PG_SHARD_ANSWERED;
	}
	int shard = __builtin_ctzll(f->todo);
	f->todo &= f->todo - 1;
	f->sent = false;
	if (shard >= c->pool->n_shards) { /* a RELOAD changed the shards meanwhile */
		client_fail(c, "08P01", "the database's shards changed during a read over several shards; reconnect");
		return PG_SHARD_FAILED;
	}
	return pg_shard_go(c, shard, out);
}

bool pg_fanout_linked(struct pg_client *c, struct pg_server *s, const struct pg_msg *m)
{
	struct pg_shard_fanout *f = c->shard_fanout;
	if (!f)
		return false;
	if (!f->sent) {
		/* After the settings server_link may have queued: its answers
		 * come last, when internal is back to one. */
		if (f->ext ? iobuf_append(&s->sock.wbuf, f->ext, f->ext_len) < 0
			   : pg_fe_query(&s->sock.wbuf, (const char *)m->body) < 0) {
			client_fail(c, "53200", "out of memory");
			return true;
		}
		s->internal++;
		s->unnamed_owner = 0; /* a simple Query drops the unnamed statement */
		s->last_was_ready = false; /* busy: a client that leaves now cannot lend it on */
		f->sent = true;
	}
	return true;
}

int pg_fanout_server_msg(struct pg_client *c, const struct pg_server *s, const struct pg_msg *m,
			       uint32_t avail)
{
	struct pg_shard_fanout *f = c->shard_fanout;
	if (!f || !f->sent || s->internal != 1)
		return PG_FANOUT_OTHER; /* not the fan-out's answer (settings first) */
	if (f->merge) {
		/* Each shard's row is combined, not sent: looked at once, whole,
		 * just before the server swallows it. */
		if ((m->type == 'T' || m->type == 'D') && m->len <= avail && !s->sock.fwd) {
			if (m->type == 'T')
				shard_merge_describe(f->merge, m->body, m->body_len);
			else
				shard_merge_row(f->merge, m->body, m->body_len);
		} else if (m->type == 'E') {
			f->failed = true;
		}
		return PG_FANOUT_OTHER;
	}
	switch (m->type) {
	case 'D':
		if (f->limit >= 0 && f->rows >= (uint64_t)f->limit)
			return PG_FANOUT_OTHER; /* past the LIMIT: swallowed */
		f->rows++;
		return PG_FANOUT_FORWARD;
	case 'T': {
		bool first = !f->described;
		f->described = true;
		return first && f->want_rowdesc ? PG_FANOUT_FORWARD : PG_FANOUT_OTHER;
	}
	case 'E':
		f->failed = true;
		return PG_FANOUT_OTHER;
	default:
		return PG_FANOUT_OTHER;
	}
}

void pg_fanout_free(struct pg_client *c)
{
	if (c->shard_fanout) {
		shard_merge_free(c->shard_fanout->merge);
		free(c->shard_fanout->ext);
	}
	free(c->shard_fanout);
	c->shard_fanout = NULL;
}

bool pg_fanout_batch(struct pg_client *c, const struct shard_map *map, const struct pg_msg *first, uint32_t len,
		     const char *sql, const uint32_t *types, int n_types, bool aggregate)
{
	const uint8_t *p = first->body - 5;
	const struct pg_msg *bind = NULL;
	struct pg_msg msgs[5], m;
	int n = 0;
	bool has_parse = false, has_describe = false, has_execute = false;
	const char *portal = NULL;
	for (uint32_t off = 0; off < len && pg_msg_peek(p + off, len - off, &m) == 1; off += m.len) {
		if (n == 5)
			return false;
		msgs[n] = m;
		struct pg_reader r;
		pg_reader_init(&r, m.body, m.body_len);
		switch (m.type) {
		case 'P':
			if (n != 0)
				return false;
			has_parse = true;
			break;
		case 'B':
			if (bind)
				return false;
			bind = &msgs[n];
			portal = pg_read_str(&r);
			break;
		case 'D':
			if (!bind || has_describe || pg_read_u8(&r) != 'P' || strcmp(pg_read_str(&r), portal) != 0 ||
			    r.err)
				return false;
			has_describe = true;
			break;
		case 'E':
			if (!bind || has_execute || strcmp(pg_read_str(&r), portal) != 0 || pg_read_u32(&r) != 0 || r.err)
				return false;
			has_execute = true;
			break;
		case 'S':
			break;
		default:
			return false;
		}
		n++;
	}
	if (!bind || !has_execute || msgs[n - 1].type != 'S')
		return false;
	struct pg_bind bd;
	if (pg_bind_read(bind->body, bind->body_len, &bd) < 0 ||
	    (has_parse && strcmp(bd.stmt, (const char *)msgs[0].body) != 0))
		return false;
	for (uint16_t i = 0; aggregate && i < bd.n_results; i++)
		if (pg_get_u16(bd.results + 2 * i) != 0)
			return false; /* combined from text values only: refused in place */
	struct iobuf out = { 0 };
	struct pg_builder pb;
	pg_build_init(&pb, &out);
	pg_build_begin(&pb, 'P');
	pg_build_str(&pb, "");
	pg_build_str(&pb, sql);
	pg_build_u16(&pb, (uint16_t)n_types);
	for (int i = 0; i < n_types; i++)
		pg_build_u32(&pb, types[i]);
	pg_build_end(&pb);
	pg_build_begin(&pb, 'B');
	pg_build_str(&pb, "");
	pg_build_str(&pb, "");
	pg_build_bytes(&pb, bind->body + bd.args_at, bind->body_len - bd.args_at); /* the client's arguments */
	pg_build_end(&pb);
	pg_build_begin(&pb, 'D');
	pg_build_u8(&pb, 'P');
	pg_build_str(&pb, "");
	pg_build_end(&pb);
	pg_build_begin(&pb, 'E');
	pg_build_str(&pb, "");
	pg_build_u32(&pb, 0);
	pg_build_end(&pb);
	pg_build_begin(&pb, 'S');
	pg_build_end(&pb);
	bool failed;
	uint8_t *ext = NULL;
	if (pg_build_done(&pb) < 0 || !(ext = malloc(iobuf_len(&out)))) {
		iobuf_release(&out);
		client_fail(c, "53200", "out of memory");
		return false;
	}
	uint32_t ext_len = iobuf_len(&out);
	memcpy(ext, iobuf_head(&out), ext_len);
	iobuf_release(&out);
	/* Routed again for what a plan does not keep (the shards, a LIMIT, the aggregates). */
	struct shard_route route;
	shard_route(sql, types, n_types, map, &route);
	struct shard_plan pl = shard_plan_of(&route);
	bool started = pg_fanout_start(c, map, &pl, &route, sql, len, has_describe, &failed);
	shard_route_deinit(&route);
	if (!started) {
		free(ext);
		return false;
	}
	/* The client's Parse is its statement from now on, as if a server had
	 * taken it (a name in use goes the usual way: PostgreSQL's error). */
	if (has_parse && track_local_parse(c, &msgs[0]) < 0) {
		pg_fanout_free(c);
		free(ext);
		return false;
	}
	struct pg_shard_fanout *f = c->shard_fanout;
	f->ext = ext;
	f->ext_len = ext_len;
	if (has_parse)
		pg_be_empty(&c->sock.wbuf, '1');
	pg_be_empty(&c->sock.wbuf, '2');
	return true;
}
