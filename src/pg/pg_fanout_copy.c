/*
 * pg_fanout_copy.c - COPY FROM STDIN over shards (pg_fanout.h,
 * docs/sharding.md): the client's rows read and split by shard
 * (shard_copy.h) until its CopyDone, then each shard's rows sent in the
 * write's two-phase commit as the server's socket takes them.
 */
#include <stdio.h>

#include "iobuf.h"
#include "pg_client.h"
#include "pg_fanout.h"
#include "pg_fanout_impl.h"
#include "pg_proto.h"
#include "pg_server.h"
#include "pg_shard.h"
#include "pgsock.h"
#include "pool.h"
#include "shard_copy.h"

/* PREPARE of a COPY: more of the current shard's rows as CopyData into w,
 * up to COPY_CHUNK bytes, and once all are in, CopyDone, PREPARE
 * TRANSACTION and Sync (at once after an error: the server drops what
 * comes before the Sync). */
enum { COPY_CHUNK = 256 * 1024, COPY_PIECE = 64 * 1024 };

int pg_fanout_copy_more(struct pg_client *c, struct pg_shard_fanout *f, struct iobuf *w)
{
	size_t hlen, dlen;
	const uint8_t *head = shard_copy_header(f->copy, &hlen), *data = shard_copy_data(f->copy, f->shard, &dlen);
	size_t total = hlen + dlen, budget = COPY_CHUNK;
	struct pg_builder pb;
	pg_build_init(&pb, w);
	while (!f->failed && f->copy_sent < total && budget) {
		size_t at = f->copy_sent, n = total - at;
		if (n > COPY_PIECE)
			n = COPY_PIECE;
		if (at < hlen && n > hlen - at)
			n = hlen - at; /* the header, then the rows */
		pg_build_begin(&pb, 'd');
		pg_build_bytes(&pb, at < hlen ? head + at : data + (at - hlen), n);
		pg_build_end(&pb);
		f->copy_sent += n;
		budget = budget > n ? budget - n : 0;
	}
	if (f->failed || f->copy_sent == total) {
		pg_build_begin(&pb, 'c');
		pg_build_end(&pb);
		pg_fanout_build_prepare(&pb, c, f);
		f->copy_done = true;
	}
	return pg_build_done(&pb);
}

bool pg_fanout_refill(struct pg_client *c, struct pg_server *s)
{
	struct pg_shard_fanout *f = c->shard_fanout;
	if (!f || !f->copy || f->phase != FAN_PREPARE || !f->sent || f->copy_done || iobuf_len(&s->sock.wbuf))
		return false;
	if (pg_fanout_copy_more(c, f, &s->sock.wbuf) < 0) {
		client_fail(c, "53200", "out of memory");
		return false;
	}
	return true;
}

int pg_fanout_copy(struct pg_client *c, const struct pg_msg *m, uint32_t avail, struct pool **out)
{
	struct pg_shard_fanout *f = c->shard_fanout;
	struct iobuf *w = &c->sock.wbuf;
	if (m->len > avail) {
		if (iobuf_reserve(&c->sock.rbuf, m->len - avail) < 0) {
			client_fail(c, "54000", "a CopyData message too large to split over shards (at most 1 MiB each)");
			return PG_SHARD_FAILED;
		}
		return PG_SHARD_WAIT;
	}
	switch (m->type) {
	case 'd':
		if (!f->copy_failed && shard_copy_feed(f->copy, m->body, m->body_len) < 0) {
			const char *msg, *code = shard_copy_error(f->copy, &msg);
			pg_be_error(w, "ERROR", code, msg);
			f->copy_failed = true; /* the rest is dropped until CopyDone */
		}
		pgsock_drop(&c->sock, m->len);
		return PG_SHARD_ANSWERED;
	case 'H':
	case 'S':
		pgsock_drop(&c->sock, m->len); /* as PostgreSQL, ignored during COPY */
		return PG_SHARD_ANSWERED;
	case 'f':
	case 'c': {
		uint64_t shards = 0;
		if (m->type == 'f' && !f->copy_failed) {
			char msg[200];
			snprintf(msg, sizeof(msg), "COPY from stdin failed: %.*s", (int)(m->body_len ? m->body_len - 1 : 0),
				 (const char *)m->body);
			pg_be_error(w, "ERROR", "57014", msg);
		} else if (m->type == 'c' && !f->copy_failed && shard_copy_end(f->copy) < 0) {
			const char *msg, *code = shard_copy_error(f->copy, &msg);
			pg_be_error(w, "ERROR", code, msg);
		} else if (m->type == 'c' && !f->copy_failed) {
			shards = shard_copy_shards(f->copy);
			if (shards) {
				/* The CopyDone stays unread, as a fan-out's Query does,
				 * until the end answers it. */
				f->phase = FAN_PREPARE;
				f->todo = shards;
				f->consumed = m->len;
				return pg_fanout_next(c, out);
			}
			pg_be_complete(w, "COPY 0"); /* no rows */
		}
		pgsock_drop(&c->sock, m->len);
		pg_be_ready(w, 'I');
		pg_fanout_free(c);
		return PG_SHARD_ANSWERED;
	}
	default:
		client_fail(c, "08P01", "unexpected message during COPY from stdin");
		return PG_SHARD_FAILED;
	}
}

bool pg_fanout_copying(const struct pg_client *c)
{
	return c->shard_fanout && c->shard_fanout->phase == FAN_COPY_IN;
}
