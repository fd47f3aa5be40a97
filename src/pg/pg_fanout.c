/*
 * pg_fanout.c - see pg_fanout.h.
 */
#include "pg_fanout.h"
#include "pg_fanout_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iobuf.h"
#include "pg_client.h"
#include "pg_proto.h"
#include "pg_server.h"
#include "pg_shard.h"
#include "pgsock.h"
#include "pool.h"
#include "log.h"
#include "pg_shard_recover.h"
#include "shard_2pc.h"
#include "runtime.h"
#include "shard_copy.h"
#include "shard_merge.h"
#include "shard_sort.h"
#include "shardroute.h"
#include "track.h"

static void pg_fanout_free_one(struct pg_shard_fanout *f);

bool pg_fanout_runs(const struct shard_plan *pl)
{
	int kind = pl->kind - 1;
	if (kind == SHARD_ROUTE_MULTI || kind == SHARD_ROUTE_SEVERAL)
		return pl->concat || pl->aggregate || pl->write;
	return kind == SHARD_ROUTE_REPLICATED_WRITE;
}

/* A statement as extended-protocol messages, unnamed (Parse, Bind,
 * Describe, Execute; no Sync): args, the Bind's arguments from its
 * parameter formats on (NULL: none). */
void pg_fanout_build_stmt(struct pg_builder *pb, const char *sql, const uint32_t *types, int n_types,
			  const uint8_t *args, uint32_t args_len, bool describe)
{
	static const uint8_t no_args[6] = { 0 }; /* no formats, no values, no result formats */
	pg_build_begin(pb, 'P');
	pg_build_str(pb, "");
	pg_build_str(pb, sql);
	pg_build_u16(pb, (uint16_t)n_types);
	for (int i = 0; i < n_types; i++)
		pg_build_u32(pb, types[i]);
	pg_build_end(pb);
	pg_build_begin(pb, 'B');
	pg_build_str(pb, "");
	pg_build_str(pb, "");
	if (args)
		pg_build_bytes(pb, args, args_len);
	else
		pg_build_bytes(pb, no_args, sizeof(no_args));
	pg_build_end(pb);
	if (describe) {
		pg_build_begin(pb, 'D');
		pg_build_u8(pb, 'P');
		pg_build_str(pb, "");
		pg_build_end(pb);
	}
	pg_build_begin(pb, 'E');
	pg_build_str(pb, "");
	pg_build_u32(pb, 0);
	pg_build_end(pb);
}

/* The messages pb built, as one heap block (*out, *len); false without memory. */
static bool built(struct pg_builder *pb, struct iobuf *buf, uint8_t **out, uint32_t *len)
{
	*out = NULL;
	if (pg_build_done(pb) == 0 && (*out = malloc(iobuf_len(buf))))
		memcpy(*out, iobuf_head(buf), iobuf_len(buf));
	*len = iobuf_len(buf);
	iobuf_release(buf);
	return *out != NULL;
}

bool pg_fanout_start(struct pg_client *c, const struct shard_map *map, const struct shard_plan *pl,
		     const struct shard_route *known, const char *sql, uint32_t consumed, bool want_rowdesc,
		     bool *failed)
{
	int kind = pl->kind - 1;
	uint64_t all = map->n_shards >= 64 ? ~UINT64_C(0) : (UINT64_C(1) << map->n_shards) - 1;
	*failed = false;
	if (!pg_fanout_runs(pl) || c->shard_begin || c->pinned)
		return false;
	bool write = !pl->concat && !pl->aggregate;
	if (write && map->n_shards == 1)
		return false; /* one shard: an ordinary transaction (pg_shard.c) */
	struct shard_route r;
	if (!known && (kind == SHARD_ROUTE_SEVERAL || pl->aggregate || pl->concat || pl->write)) {
		shard_route(sql, NULL, 0, map, &r);
		known = &r;
	}
	/* Without a route at hand, the plan was kept for the text itself: a
	 * LIMIT would have been a literal, routed by a parse. */
	uint64_t mask = !known || kind == SHARD_ROUTE_REPLICATED_WRITE ? all
			: known->kind == SHARD_ROUTE_SEVERAL ? known->mask
			: known->kind == SHARD_ROUTE_MULTI ? all : 0;
	if (write && known && known->n_items)
		mask = 0; /* the rows of one INSERT on several shards: refused (pg_shard.c) */
	struct pg_shard_fanout *f = mask ? calloc(1, sizeof(*f)) : NULL;
	if (f) {
		f->todo = mask;
		f->consumed = consumed;
		f->want_rowdesc = want_rowdesc;
		f->limit = known && known->concat ? known->limit : -1;
		if (write) {
			struct iobuf buf = { 0 };
			struct pg_builder pb;
			pg_build_init(&pb, &buf);
			bool copy = known && known->copy_in;
			pg_fanout_build_stmt(&pb, sql, NULL, 0, NULL, 0, !copy);
			f->phase = copy ? FAN_COPY_IN : FAN_PREPARE;
			f->t = &f->own;
			f->own.coord = -1;
			if (!(f->own.seq = shard_2pc_start()) || !built(&pb, &buf, &f->ext, &f->ext_len) ||
			    (copy && !(f->copy = shard_copy_new(&known->copy, map->n_shards,
								 (size_t)runtime_config()->shard_buffer_size)))) {
				pg_fanout_free_one(f);
				f = NULL;
			} else if (copy) {
				/* Its rows come now: sluice reads them (CopyInResponse, text). */
				struct pg_builder g;
				pg_build_init(&g, &c->sock.wbuf);
				pg_build_begin(&g, 'G');
				pg_build_u8(&g, 0);
				pg_build_u16(&g, (uint16_t)known->copy.n_fields);
				for (int i = 0; i < known->copy.n_fields; i++)
					pg_build_u16(&g, 0);
				pg_build_end(&g);
				(void)pg_build_done(&g);
				pgsock_drop(&c->sock, consumed);
				f->consumed = 0;
			}
		} else if (known && (known->concat || known->n_aggs)) {
			/* Rows concatenated (OFFSET skipped), sorted, or combined
			 * per group (then sorted). */
			size_t budget = (size_t)runtime_config()->shard_buffer_size;
			f->skip = known->concat && !known->n_sort ? known->offset : 0;
			if ((known->n_aggs && !(f->merge = shard_merge_new(known->aggs, known->n_aggs, known->limit,
									  known->offset, budget))) ||
			    (known->n_sort && !(f->sort = shard_sort_new(known->sort, known->n_sort, known->limit,
									 known->offset, budget))) ||
			    (known->shard_sql && !(f->sql = strdup(known->shard_sql)))) {
				pg_fanout_free_one(f);
				f = NULL;
			}
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

/* The statement's tag (a CommandComplete's body) added to what the
 * shards before said: "UPDATE 3" and "UPDATE 4" make "UPDATE 7". */
static void add_tag(struct pg_shard_fanout *f, const uint8_t *body, uint32_t len)
{
	const char *tag = (const char *)body;
	size_t n = strnlen(tag, len), cut = n;
	while (cut > 0 && tag[cut - 1] >= '0' && tag[cut - 1] <= '9')
		cut--;
	bool counted = cut < n && cut > 0 && tag[cut - 1] == ' ';
	if (!f->tag[0]) {
		size_t keep = counted ? cut - 1 : n;
		snprintf(f->tag, sizeof(f->tag), "%.*s", (int)keep, tag);
		f->counted = counted;
	}
	if (counted)
		f->count += strtoull(tag + cut, NULL, 10);
}

/* The end of a two-phase commit: t's number is no longer in flight;
 * what it left prepared is the recovery's. Not resolved: a PREPARE may
 * still be on its way on a server the client left (it lands all the
 * same), so a round comes soon whatever t knows was prepared. */
static void tpc_end(const struct shard_tpc *t, bool resolved, bool left_behind)
{
	shard_2pc_done(t->seq);
	if (left_behind || !resolved)
		shard_recover_soon();
}

void pg_fanout_tx_free(struct pg_client *c)
{
	if (!c->shard_tx)
		return;
	tpc_end(c->shard_tx, false, false);
	free(c->shard_tx);
	c->shard_tx = NULL;
}

/* The end of the fan-out: sluice's own answer to the client's Query or
 * batch, which is dropped. */
static int finish(struct pg_client *c)
{
	struct pg_shard_fanout *f = c->shard_fanout;
	int rc = 0;
	if (!f->failed && f->merge) {
		rc = shard_merge_finish(f->merge, &c->sock.wbuf, f->want_rowdesc, f->sort);
	} else if (!f->failed && f->sort) {
		rc = shard_sort_finish(f->sort, &c->sock.wbuf, f->want_rowdesc);
	} else if (!f->failed) {
		char tag[96];
		if (f->t && !f->counted)
			snprintf(tag, sizeof(tag), "%s", f->tag);
		else
			snprintf(tag, sizeof(tag), "%s %llu", f->t ? f->tag : "SELECT",
				 (unsigned long long)(f->t ? f->count : f->rows));
		pg_be_complete(&c->sock.wbuf, tag);
	}
	pg_be_ready(&c->sock.wbuf, 'I');
	pgsock_drop(&c->sock, f->consumed);
	f->resolved = true;
	if (f->t && f->t == c->shard_tx) { /* the transaction over shards is over */
		tpc_end(f->t, true, f->left_behind);
		free(c->shard_tx);
		c->shard_tx = NULL;
		f->t = NULL;
	}
	pg_fanout_free(c);
	if (rc < 0) {
		client_fail(c, "53200", "out of memory");
		return PG_SHARD_FAILED;
	}
	return PG_SHARD_ANSWERED;
}

/* The next phase, once the current one has run on all its shards (or
 * failed): after the writes or the transaction's last part, the decision. */
static void next_phase(struct pg_shard_fanout *f)
{
	bool commit = f->phase == FAN_PREPARE ? !f->failed : f->commit && !f->failed;
	if (f->phase == FAN_END && !f->commit && !f->failed)
		snprintf(f->tag, sizeof(f->tag), "ROLLBACK");
	if (commit)
		shard_2pc_crash_point("prepared");
	f->phase = commit ? FAN_COMMIT : FAN_ABORT; /* COMMIT: the coordinator, the lowest shard, first */
	f->todo = f->t->prepared;
}

/* A transaction's part on the client's shard is prepared: it goes on
 * elsewhere, with the BEGIN the shard told (or it ends, failed). */
static int left(struct pg_client *c)
{
	struct pg_shard_fanout *f = c->shard_fanout;
	if (f->failed || !f->begin[0] || !(f->t->prepared & (UINT64_C(1) << f->shard))) {
		char msg[400];
		snprintf(msg, sizeof(msg), "this transaction could not go on from shard %s to another: %s",
			 c->pool->shard_pools[f->shard]->db_name, f->fail_msg[0] ? f->fail_msg : "its part was not prepared");
		client_fail(c, f->fail_code[0] ? f->fail_code : "XX000", msg);
		return PG_SHARD_FAILED;
	}
	free(c->shard_begin);
	if (!(c->shard_begin = strdup(f->begin))) {
		client_fail(c, "53200", "out of memory");
		return PG_SHARD_FAILED;
	}
	pg_fanout_free(c);
	return PG_SHARD_AGAIN;
}

int pg_fanout_next(struct pg_client *c, struct pool **out)
{
	struct pg_shard_fanout *f = c->shard_fanout;
	c->sock.parse_blocked = false; /* idle: the Query is read again */
	if (f->phase == FAN_LEAVE)
		return left(c);
	if (f->phase == FAN_COPY_IN)
		return PG_SHARD_ANSWERED; /* the COPY's rows come next (pg_fanout_copy) */
	if ((f->phase == FAN_PREPARE && (f->failed || !f->todo)) || f->phase == FAN_END)
		next_phase(f);
	if (f->phase == FAN_COMMIT && f->shard == f->t->coord && f->sent) {
		if (f->failed) { /* the coordinator did not commit: nothing is decided */
			f->phase = FAN_ABORT;
			f->todo |= UINT64_C(1) << f->t->coord; /* still prepared, if it is there */
		} else {
			shard_2pc_crash_point("decided");
		}
	}
	/* A read stops past the LIMIT once a shard has described the rows
	 * (LIMIT 0 too). */
	if (!f->todo || (f->phase == FAN_READ && (f->failed || (f->sort && shard_sort_failed(f->sort)) ||
						 (!f->sort && f->limit >= 0 && f->rows >= (uint64_t)f->limit &&
						  f->described))))
		return finish(c);
	int shard = __builtin_ctzll(f->todo);
	if (f->t && f->t->coord >= 0 && (f->todo & (UINT64_C(1) << f->t->coord)))
		shard = f->t->coord; /* its COMMIT PREPARED is the decision: first */
	f->todo &= ~(UINT64_C(1) << shard);
	f->sent = false;
	f->step = 0;
	f->rolling_back = false;
	f->shard = (int8_t)shard;
	if (f->t && f->t->coord < 0)
		f->t->coord = (int8_t)shard;
	if (shard >= c->pool->n_shards) { /* a RELOAD changed the shards meanwhile */
		client_fail(c, "08P01", f->t ? "the database's shards changed during a write over several shards: "
				"it is rolled back, or committed, by recovery (docs/sharding.md); reconnect"
			    : "the database's shards changed during a read over several shards; reconnect");
		return PG_SHARD_FAILED;
	}
	return pg_shard_go(c, shard, out);
}

/* What the transaction's part on a shard is asked, before it is prepared:
 * its id (for the coordinator) and its kind (for the next shard's BEGIN). */
static const char leave_query[] =
	"SELECT pg_catalog.txid_current(), pg_catalog.current_setting('transaction_isolation'), "
	"pg_catalog.current_setting('transaction_read_only'), pg_catalog.current_setting('transaction_deferrable')";

/* A step of a write or a transaction on the current shard's server (w,
 * its output). */
static int send_step(struct pg_client *c, struct pg_shard_fanout *f, const struct pg_server *s, struct iobuf *w)
{
	char gid[SHARD_GID_MAX], sql[SHARD_GID_MAX + 300];
	shard_tpc_gid(f->t, c->pool->db_name, f->shard, gid);
	switch (f->phase) {
	case FAN_COMMIT:
	case FAN_ABORT:
		snprintf(sql, sizeof(sql), "%s PREPARED '%s'", f->phase == FAN_COMMIT ? "COMMIT" : "ROLLBACK", gid);
		return pg_fe_query(w, sql);
	case FAN_LEAVE:
		snprintf(sql, sizeof(sql), "%s; PREPARE TRANSACTION '%s'", leave_query, gid);
		return pg_fe_query(w, sql);
	case FAN_END:
		if (f->commit && s->tx_status == 'T')
			snprintf(sql, sizeof(sql), "PREPARE TRANSACTION '%s'", gid);
		else
			snprintf(sql, sizeof(sql), "ROLLBACK");
		if (f->commit && s->tx_status != 'T')
			f->commit = false; /* a failed transaction's COMMIT rolls back, as PostgreSQL's does */
		return pg_fe_query(w, sql);
	default:
		break;
	}
	struct pg_builder pb;
	pg_build_init(&pb, w);
	pg_fanout_build_stmt(&pb, "BEGIN", NULL, 0, NULL, 0, false);
	if (f->shard == f->t->coord)
		pg_fanout_build_stmt(&pb, "SELECT pg_catalog.txid_current()", NULL, 0, NULL, 0, false);
	pg_build_bytes(&pb, f->ext, f->ext_len); /* whole messages: the client's statement */
	if (f->copy) {
		/* Its rows follow as the socket takes them (pg_fanout_refill),
		 * then the end. */
		f->copy_sent = 0;
		f->copy_done = false;
		int rc = pg_build_done(&pb);
		return rc < 0 ? rc : pg_fanout_copy_more(c, f, w);
	}
	pg_fanout_build_prepare(&pb, c, f);
	return pg_build_done(&pb);
}

void pg_fanout_build_prepare(struct pg_builder *pb, const struct pg_client *c, const struct pg_shard_fanout *f)
{
	char gid[SHARD_GID_MAX], sql[SHARD_GID_MAX + 40];
	shard_tpc_gid(f->t, c->pool->db_name, f->shard, gid);
	snprintf(sql, sizeof(sql), "PREPARE TRANSACTION '%s'", gid);
	pg_fanout_build_stmt(pb, sql, NULL, 0, NULL, 0, false);
	pg_build_begin(pb, 'S');
	pg_build_end(pb);
}

bool pg_fanout_linked(struct pg_client *c, struct pg_server *s, const struct pg_msg *m)
{
	struct pg_shard_fanout *f = c->shard_fanout;
	if (!f)
		return false;
	if (!f->sent) {
		/* After the settings server_link may have queued: its answers
		 * come last, when internal is back to one. */
		int rc;
		if (f->t) {
			rc = send_step(c, f, s, &s->sock.wbuf);
		} else if (f->ext) {
			rc = iobuf_append(&s->sock.wbuf, f->ext, f->ext_len);
			if (rc == 0)
				rc = iobuf_append(&s->sock.wbuf, (const uint8_t[]){ 'S', 0, 0, 0, 4 }, 5);
		} else {
			rc = pg_fe_query(&s->sock.wbuf, f->sql ? f->sql : (const char *)m->body);
		}
		if (rc < 0) {
			client_fail(c, "53200", "out of memory");
			return true;
		}
		s->internal++;
		s->unnamed_owner = 0; /* a simple Query drops the unnamed statement */
		s->last_was_ready = false; /* busy: a client that leaves now cannot lend it on */
		f->sent = true;
		if (f->phase == FAN_LEAVE || f->phase == FAN_END)
			server_send_pending(s); /* linked already: nothing else sends it */
	}
	return true;
}

/* The text of column i of DataRow m, NUL-terminated in out (n bytes);
 * false when it is NULL, missing or too long. */
static bool column_text(const struct pg_msg *m, int i, char *out, size_t n)
{
	const uint8_t *v;
	uint32_t len;
	if (pg_datarow_column(m->body, m->body_len, i, &v, &len) < 0 || !v || len >= n)
		return false;
	memcpy(out, v, len);
	out[len] = '\0';
	return true;
}

/* LEAVE: the transaction's kind, as the BEGIN the next shard gets. */
static void note_kind(struct pg_shard_fanout *f, const struct pg_msg *m)
{
	char xid[24], iso[40], ro[8], def[8];
	if (!column_text(m, 0, xid, sizeof(xid)) || !column_text(m, 1, iso, sizeof(iso)) ||
	    !column_text(m, 2, ro, sizeof(ro)) || !column_text(m, 3, def, sizeof(def)))
		return;
	if (f->t->coord == f->shard)
		f->t->xid = strtoull(xid, NULL, 10);
	for (char *p = iso; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || *p == ' '))
			return; /* "read committed", "repeatable read", "serializable" */
	snprintf(f->begin, sizeof(f->begin), "BEGIN ISOLATION LEVEL %s, READ %s, %sDEFERRABLE", iso,
		 strcmp(ro, "on") == 0 ? "ONLY" : "WRITE", strcmp(def, "on") == 0 ? "" : "NOT ");
}

/* An answer of the current shard to a step of a write or a transaction
 * (whole: settled). */
static int step_answer(struct pg_client *c, struct pg_shard_fanout *f, struct pg_server *s, const struct pg_msg *m,
		       bool settled)
{
	uint64_t bit = UINT64_C(1) << f->shard;
	switch (f->phase) {
	case FAN_COMMIT:
	case FAN_ABORT: {
		/* COMMIT PREPARED, ROLLBACK PREPARED: the coordinator's error
		 * goes to the client (nothing was decided); the others' are the
		 * recovery's to mend (pg_shard_recover.h). */
		if (m->type != 'E')
			return PG_FANOUT_OTHER;
		if (f->phase == FAN_COMMIT && f->shard == f->t->coord) {
			f->failed = true;
			return PG_FANOUT_OTHER;
		}
		if (!settled)
			return PG_FANOUT_OTHER;
		struct pg_error_fields ef;
		pg_be_error_parse(m->body, m->body_len, &ef);
		log_warning("client %llu: shard %s: %s PREPARED failed (recovery will retry): %s",
			    (unsigned long long)c->base.id, s->pool->db_name, f->phase == FAN_COMMIT ? "COMMIT" : "ROLLBACK",
			    ef.message);
		f->left_behind = true;
		return PG_FANOUT_DROP;
	}
	case FAN_LEAVE:
		/* The client has not asked anything of it: an error fails the
		 * client (its transaction is rolled back), not a statement. */
		if (!settled)
			return PG_FANOUT_OTHER;
		if (m->type == 'D') {
			note_kind(f, m);
		} else if (m->type == 'C' && ++f->step == 2) {
			f->t->prepared |= bit;
		} else if (m->type == 'E') {
			struct pg_error_fields ef;
			pg_be_error_parse(m->body, m->body_len, &ef);
			snprintf(f->fail_code, sizeof(f->fail_code), "%s", ef.code);
			snprintf(f->fail_msg, sizeof(f->fail_msg), "%s", ef.message);
			f->failed = true;
			return PG_FANOUT_DROP;
		}
		return PG_FANOUT_OTHER;
	case FAN_END:
		/* A failed PREPARE is the COMMIT's error, as PostgreSQL's own
		 * COMMIT may fail (a deferred constraint): it goes to the client. */
		if (m->type == 'E')
			f->failed = true;
		else if (settled && m->type == 'C' && f->commit)
			f->t->prepared |= bit;
		return PG_FANOUT_OTHER;
	default:
		break;
	}
	if (f->rolling_back)
		return PG_FANOUT_OTHER; /* the ROLLBACK's answers */
	int stmt_at = f->shard == f->t->coord ? 2 : 1; /* BEGIN [txid_current()] statement PREPARE */
	switch (m->type) {
	case 'C':
		if (!settled)
			return PG_FANOUT_OTHER;
		if (f->step == stmt_at)
			add_tag(f, m->body, m->body_len);
		else if (f->step == stmt_at + 1)
			f->t->prepared |= bit;
		f->step++;
		return PG_FANOUT_OTHER;
	case 'D':
		if (f->step == 1 && stmt_at == 2) { /* txid_current() */
			char num[24];
			if (settled && column_text(m, 0, num, sizeof(num)))
				f->t->xid = strtoull(num, NULL, 10);
			return PG_FANOUT_OTHER;
		}
		f->rows++;
		return PG_FANOUT_FORWARD; /* RETURNING */
	case 'T':
	case 'n': {
		bool first = !f->described;
		f->described = true;
		return first && (m->type == 'T' ? f->want_rowdesc : f->want_nodata) ? PG_FANOUT_FORWARD
										    : PG_FANOUT_OTHER;
	}
	case 'E':
		f->failed = true;
		return PG_FANOUT_OTHER;
	case 'Z':
		if (settled && m->body_len == 1 && m->body[0] != 'I') {
			/* Failed, or not prepared: end the shard's transaction. */
			if (pg_fe_query(&s->sock.wbuf, "ROLLBACK") < 0) {
				f->failed = true;
				return PG_FANOUT_OTHER;
			}
			s->internal++;
			f->rolling_back = true;
		}
		return PG_FANOUT_OTHER;
	default:
		return PG_FANOUT_OTHER;
	}
}

int pg_fanout_server_msg(struct pg_client *c, struct pg_server *s, const struct pg_msg *m, uint32_t avail)
{
	struct pg_shard_fanout *f = c->shard_fanout;
	if (!f || !f->sent || s->internal != 1)
		return PG_FANOUT_OTHER; /* not the fan-out's answer (settings first) */
	/* Looked at once, whole, just before the server swallows it. */
	bool settled = m->len <= avail && !s->sock.fwd;
	if (f->t)
		return step_answer(c, f, s, m, settled);
	if (f->merge || f->sort) {
		/* Each shard's rows are combined or sorted, not sent. */
		if ((m->type == 'T' || m->type == 'D') && settled) {
			if (m->type == 'T' && f->merge)
				shard_merge_describe(f->merge, m->body, m->body_len);
			else if (m->type == 'T')
				shard_sort_describe(f->sort, m->body, m->body_len);
			else if (f->merge)
				shard_merge_row(f->merge, m->body, m->body_len);
			else
				shard_sort_row(f->sort, m->body, m->body_len);
		} else if (m->type == 'E') {
			f->failed = true;
		}
		return PG_FANOUT_OTHER;
	}
	switch (m->type) {
	case 'D':
		if (f->skip > 0 && settled) {
			f->skip--; /* OFFSET: skipped */
			return PG_FANOUT_OTHER;
		}
		if (f->skip > 0)
			return PG_FANOUT_OTHER; /* whole first */
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

/* A fan-out of client c's transaction over shards (LEAVE, END); false
 * when memory ran out (c was failed). */
static bool tx_fanout(struct pg_client *c, int phase)
{
	if (!c->shard_tx) {
		struct shard_tpc *t = calloc(1, sizeof(*t));
		if (!t || !(t->seq = shard_2pc_start())) {
			free(t);
			client_fail(c, "53200", "out of memory");
			return false;
		}
		t->coord = -1;
		c->shard_tx = t;
	}
	struct pg_shard_fanout *f = calloc(1, sizeof(*f));
	if (!f) {
		client_fail(c, "53200", "out of memory");
		return false;
	}
	f->phase = (uint8_t)phase;
	f->t = c->shard_tx;
	f->shard = c->shard;
	f->limit = -1;
	if (phase == FAN_LEAVE && f->t->coord < 0)
		f->t->coord = c->shard;
	c->shard_fanout = f;
	return true;
}

bool pg_fanout_leave(struct pg_client *c)
{
	return tx_fanout(c, FAN_LEAVE);
}

bool pg_fanout_end(struct pg_client *c, bool commit, uint32_t consumed)
{
	if (!tx_fanout(c, FAN_END))
		return false;
	struct pg_shard_fanout *f = c->shard_fanout;
	f->commit = commit;
	f->consumed = consumed;
	snprintf(f->tag, sizeof(f->tag), "%s", commit ? "COMMIT" : "ROLLBACK");
	return true;
}

bool pg_fanout_tx_visited(const struct pg_client *c, int shard)
{
	return c->shard_tx && (c->shard_tx->prepared & (UINT64_C(1) << shard));
}

static void pg_fanout_free_one(struct pg_shard_fanout *f)
{
	if (!f)
		return;
	if (f->t == &f->own)
		tpc_end(&f->own, f->resolved, f->left_behind);
	shard_merge_free(f->merge);
	shard_sort_free(f->sort);
	shard_copy_free(f->copy);
	free(f->sql);
	free(f->ext);
	free(f);
}

void pg_fanout_free(struct pg_client *c)
{
	pg_fanout_free_one(c->shard_fanout);
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
	/* Routed again for what a plan does not keep (the shards, a LIMIT, the
	 * aggregates, the ORDER BY keys, an OFFSET's text). */
	struct shard_route route;
	bool failed;
	shard_route(sql, types, n_types, map, &route);
	struct iobuf buf = { 0 };
	struct pg_builder pb;
	pg_build_init(&pb, &buf);
	pg_fanout_build_stmt(&pb, route.shard_sql ? route.shard_sql : sql, types, n_types, bind->body + bd.args_at,
		   bind->body_len - bd.args_at, true);
	uint8_t *ext;
	uint32_t ext_len;
	if (!built(&pb, &buf, &ext, &ext_len)) {
		shard_route_deinit(&route);
		client_fail(c, "53200", "out of memory");
		return false;
	}
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
	free(f->ext); /* a write's, made of the text alone */
	f->ext = ext;
	f->ext_len = ext_len;
	f->want_nodata = has_describe;
	if (has_parse)
		pg_be_empty(&c->sock.wbuf, '1');
	pg_be_empty(&c->sock.wbuf, '2');
	return true;
}
