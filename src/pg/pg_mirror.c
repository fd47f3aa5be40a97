/*
 * pg_mirror.c - see pg_mirror.h.
 *
 * A captured transaction is a list of items in one buffer, each
 * [u8 kind][u32 length][payload]:
 *   'R' a client message to replay as it is (its whole wire bytes);
 *   'N' a message naming a named statement: [u8 op][u64 hash][u16 n]
 *       [n x u32 parameter types][query NUL] then the client's wire bytes.
 *       op 'P' (Parse), 'B' (Bind), 'D' (Describe of the statement). On
 *       the mirror the statement is called sluice_m_<hash>, parsed once
 *       per connection (a small cache) right before its first use.
 * A Close of a named statement is not replayed (the mirror's names live
 * as long as its connection). A Bind of the unnamed statement whose Parse
 * came in an earlier transaction gets that Parse first.
 *
 * Answers are summarised per statement ('C', 'E', 'I', 's' end one) on
 * both sides the same way; each statement is attributed to the request
 * that ran it (a Query, or the Execute of a portal), for the text SHOW
 * MIRRORS gives of the last one that differed.
 */
#include "pg_mirror.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "log.h"
#include "loop.h"
#include "mirror.h"
#include "mirror_chan.h"
#include "pg_client.h"
#include "pg_proto.h"
#include "pg_server.h"
#include "pool.h"
#include "prepared.h"
#include "runtime.h"
#include "track.h"
#include "worker.h"

enum {
	MX_REQ_MAX = 448 * 1024,  /* bytes of captured requests per transaction (a
				   * replay, statements' Parses added, fits an iobuf) */
	MX_ROW_MAX = 256 * 1024,  /* largest answer message summarised (held whole) */
	MX_RESULTS_MAX = 1024,    /* statements per transaction */
	MX_REQS_MAX = 1024,       /* requests (Query, Execute, Sync) per transaction */
	MX_NAMED_MAX = 64,        /* named statements parsed within one transaction */
	MX_PREPARED_MAX = 128,    /* statements kept prepared per mirror connection */
};

/* One statement's answer. */
struct mx_result {
	char tag[48];              /* CommandComplete tag, "ERROR <sqlstate>", "EMPTY", "SUSPENDED" */
	uint32_t rows;             /* DataRows */
	uint64_t hash;             /* of the DataRows' bytes, in order */
	uint32_t req;              /* index of the request it answered (mirror_tx.reqs) */
};

/* A side's answers to one transaction, as they arrive. */
struct mx_sum {
	struct mx_result *v;       /* heap, n of cap */
	uint32_t n, cap;
	uint32_t rows;             /* DataRows of the statement running */
	uint64_t hash;             /* their hash so far */
	uint32_t cur;              /* request the next statement answers */
	bool over;                 /* more than MX_RESULTS_MAX statements */
};

/* A request that ends with a statement's answer or a ReadyForQuery. */
struct mx_req {
	char kind;                 /* 'Q' Query, 'X' Execute, 'S' Sync, 'F' FunctionCall */
	uint32_t text;             /* offset of its text in texts, UINT32_MAX = none */
};

/* What a capture looked like before its last message (unsee). */
struct mx_mark {
	uint32_t req_len, n_reqs, zs, n_named;
	bool unnamed_known;
	uint32_t unnamed_text, bind_text;
};

/* A statement the transaction itself parsed (the client's name). */
struct mx_named {
	char name[64];
	uint32_t item;             /* offset of its 'N' item in req */
	uint32_t text;             /* offset of its text in texts */
};

struct pg_mirror_chan;

/* One captured transaction: the client's (pg_client.mirror_tx) while it
 * runs, then its channel's (queued or being replayed). */
struct mirror_tx {
	struct mirror_qnode qn;    /* in the channel's queue */
	struct pg_mirror_chan *chan;  /* where it is replayed */
	struct iobuf req;          /* the items (file header) */
	struct iobuf texts;        /* request texts, NUL-terminated, <= MIRROR_QUERY_MAX */
	struct mx_req *reqs;       /* heap, n_reqs of MX_REQS_MAX */
	uint32_t n_reqs;
	uint32_t zs;               /* ReadyForQuery messages the replay brings */
	struct mx_named named[MX_NAMED_MAX];
	uint32_t n_named;
	bool unnamed_known;        /* the unnamed statement is (re)defined within the transaction */
	uint32_t unnamed_text;     /* its text (offset in texts), UINT32_MAX = none */
	uint32_t bind_text;        /* text of the statement last bound, for the next Execute */
	struct mx_mark mark;       /* before the last message captured */
	struct mx_sum primary;     /* the primary's answers */
	bool over;                 /* too large or not replayable: dropped at its end */
	int64_t start_us;          /* its first message */
	int64_t primary_us;        /* how long it took on the primary */
};

enum { PH_IDLE, PH_PREP, PH_TX, PH_END };

/* A worker's way to one mirror pool for one mirrored database. */
struct pg_mirror_chan {
	MIRROR_CHAN_FIELDS(pg_mirror_chan, pg_server, mirror_tx) /* pool: mirror database, client's user */
	int phase;                 /* PH_*: what srv's answers belong to */
	uint32_t zs_left;          /* ReadyForQuery still to come in this phase */
	char status;               /* last ReadyForQuery status from srv */
	bool errored;              /* the replay had an error: statements may be missing */
	bool reset_due;            /* DEALLOCATE ALL before the next replay */
	struct mx_sum sum;         /* the mirror's answers to cur */
	uint64_t prepared[MX_PREPARED_MAX]; /* hashes of statements prepared on srv (ring) */
	uint32_t n_prepared, next_slot;
};

static __thread struct mirror_chan *chans; /* this worker's channels (of this protocol) */

#define CORE(ch) ((struct mirror_chan *)(ch))
#define LIST (&chans)

static const struct mirror_chan_ops chan_ops;

static struct pg_mirror_chan *chan_of(const struct pg_server *s)
{
	return (struct pg_mirror_chan *)mirror_chan_of(*LIST, &s->base);
}

/* Which channel, if any, c's transactions go to under the current
 * configuration. */
static void judge(struct pg_client *c)
{
	const struct config *cfg = runtime_config();
	c->mirror_chan = NULL;
	if (!c->pool)
		return; /* judged once it has one */
	c->mirror_cfg = cfg;
	if (c->replication)
		return;
	const struct config_database *d = config_find_database_for(cfg, c->pool->db_name, CONFIG_PROTO_PG);
	if (!d || !d->mirror || d->mirror_fraction <= 0)
		return;
	char err[200] = "";
	struct pool *p = pool_get(cfg, c->proto, d->mirror, c->user, err, sizeof(err));
	c->mirror_chan = (struct pg_mirror_chan *)mirror_chan_get(LIST, &chan_ops, sizeof(struct pg_mirror_chan),
								  c->worker, c->pool->db_name, d->mirror,
								  d->mirror_fraction, p, err);
}

static void sum_free(struct mx_sum *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static void tx_free(struct mirror_tx *tx)
{
	if (!tx)
		return;
	iobuf_release(&tx->req);
	iobuf_release(&tx->texts);
	free(tx->reqs);
	sum_free(&tx->primary);
	free(tx);
}

/* ---- replay ---- */

static bool prepared_has(const struct pg_mirror_chan *ch, uint64_t h)
{
	for (uint32_t i = 0; i < ch->n_prepared; i++)
		if (ch->prepared[i] == h)
			return true;
	return false;
}

static void stmt_name(char *buf, size_t n, uint64_t h)
{
	snprintf(buf, n, "sluice_m_%016llx", (unsigned long long)h);
}

/* Payload of an 'N' item: its statement parsed on ch's connection if it
 * is not yet (a Parse goes first), then the message with its name. */
static void replay_named(struct pg_mirror_chan *ch, struct pg_builder *b, const uint8_t *p, uint32_t len)
{
	struct pg_reader r;
	pg_reader_init(&r, p, len);
	uint8_t op = pg_read_u8(&r);
	uint64_t h = (uint64_t)pg_read_u32(&r) << 32;
	h |= pg_read_u32(&r);
	uint16_t n = pg_read_u16(&r);
	const uint8_t *types = pg_read_bytes(&r, (size_t)n * 4);
	const char *query = pg_read_str(&r);
	const uint8_t *msg = r.p;
	uint32_t msg_len = (uint32_t)(r.end - r.p);
	if (r.err || msg_len < 5)
		return;
	char name[40];
	stmt_name(name, sizeof(name), h);
	if (!prepared_has(ch, h)) {
		if (ch->n_prepared == MX_PREPARED_MAX) {
			char old[40];
			stmt_name(old, sizeof(old), ch->prepared[ch->next_slot]);
			pg_build_begin(b, 'C');
			pg_build_u8(b, 'S');
			pg_build_str(b, old);
			pg_build_end(b);
			ch->prepared[ch->next_slot] = h;
			ch->next_slot = (ch->next_slot + 1) % MX_PREPARED_MAX;
		} else
			ch->prepared[ch->n_prepared++] = h;
		pg_build_begin(b, 'P');
		pg_build_str(b, name);
		pg_build_str(b, query);
		pg_build_u16(b, n);
		pg_build_bytes(b, types, (size_t)n * 4);
		pg_build_end(b);
	}
	if (op == 'B') {
		struct pg_reader m;
		pg_reader_init(&m, msg + 5, msg_len - 5);
		const char *portal = pg_read_str(&m);
		(void)pg_read_str(&m);
		if (m.err)
			return;
		pg_build_begin(b, 'B');
		pg_build_str(b, portal);
		pg_build_str(b, name);
		pg_build_bytes(b, m.p, (size_t)(m.end - m.p));
		pg_build_end(b);
	} else if (op == 'D') {
		pg_build_begin(b, 'D');
		pg_build_u8(b, 'S');
		pg_build_str(b, name);
		pg_build_end(b);
	}
}

static void chan_start(struct mirror_chan *core, struct mirror_qnode *rec)
{
	struct pg_mirror_chan *ch = (struct pg_mirror_chan *)core;
	struct mirror_tx *tx = (struct mirror_tx *)rec;
	struct pg_server *s = ch->srv;
	/* sum and errored: cleared by chan_forget when the last replay ended. */
	ch->phase = PH_TX;
	ch->zs_left = tx->zs;
	struct pg_builder b;
	pg_build_init(&b, &s->sock.wbuf);
	if (ch->reset_due) {
		/* An error may have skipped a Parse the cache counts as done. */
		pg_build_begin(&b, 'Q');
		pg_build_str(&b, "DEALLOCATE ALL");
		pg_build_end(&b);
		ch->n_prepared = ch->next_slot = 0;
		ch->reset_due = false;
		ch->phase = PH_PREP;
	}
	const uint8_t *p = iobuf_head(&tx->req), *end = p + iobuf_len(&tx->req);
	while (p + 5 <= end) {
		uint8_t kind = p[0];
		uint32_t len = pg_get_u32(p + 1);
		p += 5;
		if (kind == 'R')
			pg_build_bytes(&b, p, len);
		else
			replay_named(ch, &b, p, len);
		p += len;
	}
	if (pg_build_done(&b) < 0) {
		server_close(s, "mirror: out of memory");
		return;
	}
	s->sock.want_read = true;
	server_send_pending(s);
}

/* ---- summaries (both sides) ---- */

static void sum_row(struct mx_sum *s, const struct pg_msg *m)
{
	s->rows++;
	s->hash = mirror_hash(s->hash, m->body, m->body_len);
}

/* A statement ended with tag; it answered request sum->cur. */
static void sum_result(struct mx_sum *s, const struct mirror_tx *tx, const char *tag, bool error)
{
	if (s->n == MX_RESULTS_MAX) {
		s->over = true;
	} else {
		if (s->n == s->cap) {
			uint32_t cap = s->cap ? s->cap * 2 : 8;
			struct mx_result *v = realloc(s->v, cap * sizeof(*v));
			if (!v) {
				s->over = true;
				goto next;
			}
			s->v = v;
			s->cap = cap;
		}
		struct mx_result *r = &s->v[s->n++];
		snprintf(r->tag, sizeof(r->tag), "%s", tag);
		r->rows = s->rows;
		r->hash = s->hash;
		r->req = s->cur;
	}
next:
	s->rows = 0;
	s->hash = 0;
	if (s->cur < tx->n_reqs && tx->reqs[s->cur].kind == 'X') {
		s->cur++;
		/* An error skips the rest of the batch up to its Sync. */
		while (error && s->cur < tx->n_reqs && tx->reqs[s->cur].kind == 'X')
			s->cur++;
	}
}

static void sum_ready(struct mx_sum *s, const struct mirror_tx *tx)
{
	if (s->cur < tx->n_reqs && tx->reqs[s->cur].kind != 'X')
		s->cur++;
}

/* Fold one answer message into s. */
static void sum_message(struct mx_sum *s, const struct mirror_tx *tx, const struct pg_msg *m, bool *error)
{
	switch (m->type) {
	case 'D':
		sum_row(s, m);
		break;
	case 'C': {
		char tag[48];
		uint32_t n = m->body_len && m->body[m->body_len - 1] == '\0' ? m->body_len - 1 : m->body_len;
		snprintf(tag, sizeof(tag), "%.*s", (int)n, (const char *)m->body);
		sum_result(s, tx, tag, false);
		break;
	}
	case 'I':
		sum_result(s, tx, "EMPTY", false);
		break;
	case 's':
		sum_result(s, tx, "SUSPENDED", false);
		break;
	case 'E': {
		struct pg_error_fields f;
		pg_be_error_parse(m->body, m->body_len, &f);
		char tag[48];
		snprintf(tag, sizeof(tag), "ERROR %s", f.code);
		sum_result(s, tx, tag, true);
		if (error)
			*error = true;
		break;
	}
	case 'Z':
		sum_ready(s, tx);
		break;
	default:
		break;
	}
}

static const char *req_text(const struct mirror_tx *tx, uint32_t req)
{
	if (req >= tx->n_reqs || tx->reqs[req].text == UINT32_MAX)
		return NULL;
	return (const char *)iobuf_head(&tx->texts) + tx->reqs[req].text;
}

/* The replay of ch->cur is complete: compare and count. */
static void chan_finish(struct pg_mirror_chan *ch)
{
	struct mirror_tx *tx = ch->cur;
	const struct mx_sum *p = &tx->primary, *m = &ch->sum;
	uint32_t n = p->n > m->n ? p->n : m->n;
	bool differ = m->over;
	uint32_t at = m->over ? m->n : 0;
	for (uint32_t i = 0; i < n && !differ; i++) {
		if (i >= p->n || i >= m->n || strcmp(p->v[i].tag, m->v[i].tag) != 0 || p->v[i].rows != m->v[i].rows ||
		    p->v[i].hash != m->v[i].hash) {
			differ = true;
			at = i;
		}
	}
	uint32_t req = at < p->n ? p->v[at].req : at < m->n ? m->v[at].req : UINT32_MAX;
	mirror_chan_done(CORE(ch), differ, differ ? req_text(tx, req) : NULL, tx->primary_us);
}

/* What the channel kept of its replay in flight. */
static void chan_forget(struct mirror_chan *core)
{
	struct pg_mirror_chan *ch = (struct pg_mirror_chan *)core;
	ch->phase = PH_IDLE;
	sum_free(&ch->sum);
	if (ch->errored)
		ch->reset_due = true; /* an error may have skipped a Parse the cache counts as done */
	ch->errored = false;
}

static struct server *chan_open(struct mirror_chan *ch, int host, char *err, size_t errlen)
{
	struct pg_server *s = server_launch_aside(ch->worker, ch->pool, host, SERVER_MIRROR, err, errlen);
	return s ? &s->base : NULL;
}

static void chan_rec_free(struct mirror_qnode *rec)
{
	tx_free((struct mirror_tx *)rec);
}

static const struct mirror_chan_ops chan_ops = {
	.open = chan_open,
	.start = chan_start,
	.forget = chan_forget,
	.rec_free = chan_rec_free,
};

void mirror_ready(struct pg_server *s)
{
	struct pg_mirror_chan *ch = chan_of(s);
	if (!ch) {
		server_close(s, "mirror: no longer needed");
		return;
	}
	ch->n_prepared = ch->next_slot = 0;
	ch->reset_due = false;
	mirror_chan_ready(CORE(ch));
}

bool mirror_message(struct pg_server *s, const struct pg_msg *m)
{
	struct pg_mirror_chan *ch = chan_of(s);
	if (!ch || !ch->cur) {
		if (m->type == 'N' || m->type == 'S' || m->type == 'A')
			return true; /* notices, settings, notifications of a replayed LISTEN */
		server_close(s, "mirror: unexpected message");
		return false;
	}
	if (m->type == 'Z')
		ch->status = m->body_len ? (char)m->body[0] : 'I';
	switch (ch->phase) {
	case PH_PREP:
		if (m->type == 'Z')
			ch->phase = PH_TX;
		return true;
	case PH_TX:
		sum_message(&ch->sum, ch->cur, m, &ch->errored);
		if (m->type != 'Z' || --ch->zs_left > 0)
			return true;
		if (ch->status != 'I') {
			/* Left in a transaction (the primary's ended): end it. */
			pg_fe_query(&s->sock.wbuf, "ROLLBACK");
			ch->phase = PH_END;
			server_send_pending(s);
			return !s->closed;
		}
		chan_finish(ch);
		return !s->closed;
	case PH_END:
		if (m->type == 'Z')
			chan_finish(ch);
		return !s->closed;
	default:
		return true;
	}
}

void mirror_closed(struct pg_server *s, const char *reason)
{
	struct pg_mirror_chan *ch = chan_of(s);
	if (ch)
		mirror_chan_closed(CORE(ch), reason);
}

/* ---- capture (client side) ---- */

static struct mirror_tx *tx_new(struct pg_mirror_chan *ch)
{
	struct mirror_tx *tx = calloc(1, sizeof(*tx));
	if (!tx || !(tx->reqs = malloc(MX_REQS_MAX * sizeof(*tx->reqs)))) {
		free(tx);
		return NULL;
	}
	tx->chan = ch;
	tx->unnamed_text = tx->bind_text = UINT32_MAX;
	tx->start_us = loop_now_us();
	return tx;
}

/* Keep text (truncated) for SHOW MIRRORS; its offset or UINT32_MAX. */
static uint32_t add_text(struct mirror_tx *tx, const char *text, size_t len)
{
	if (len > MIRROR_QUERY_MAX)
		len = MIRROR_QUERY_MAX;
	if (iobuf_len(&tx->texts) + len + 1 > MX_REQ_MAX)
		return UINT32_MAX;
	uint32_t off = iobuf_len(&tx->texts);
	if (iobuf_append(&tx->texts, text, (uint32_t)len) < 0 || iobuf_append(&tx->texts, "", 1) < 0) {
		tx->over = true;
		return UINT32_MAX;
	}
	return off;
}

static void add_req(struct mirror_tx *tx, char kind, uint32_t text)
{
	if (tx->n_reqs == MX_REQS_MAX) {
		tx->over = true;
		return;
	}
	tx->reqs[tx->n_reqs++] = (struct mx_req){ .kind = kind, .text = text };
	if (kind != 'X')
		tx->zs++;
}

static void put_item_header(struct mirror_tx *tx, uint8_t kind, uint32_t len)
{
	uint8_t h[5] = { kind };
	pg_put_u32(h + 1, len);
	if (iobuf_append(&tx->req, h, 5) < 0)
		tx->over = true;
}

static void put(struct mirror_tx *tx, const void *p, uint32_t n)
{
	if (!tx->over && iobuf_append(&tx->req, p, n) < 0)
		tx->over = true;
}

static void add_raw(struct mirror_tx *tx, const struct pg_msg *m)
{
	put_item_header(tx, 'R', m->len);
	put(tx, m->body - 5, m->len);
}

/* An 'N' item: op on statement def, with the client's message m. */
static void add_named(struct mirror_tx *tx, uint8_t op, const struct pstmt_def *def, const struct pg_msg *m)
{
	size_t qlen = strlen(def->query) + 1;
	uint32_t len = (uint32_t)(1 + 8 + 2 + (size_t)def->n_types * 4 + qlen + m->len);
	put_item_header(tx, 'N', len);
	uint8_t h[11];
	h[0] = op;
	pg_put_u32(h + 1, (uint32_t)(def->hash >> 32));
	pg_put_u32(h + 5, (uint32_t)def->hash);
	h[9] = (uint8_t)(def->n_types >> 8);
	h[10] = (uint8_t)def->n_types;
	put(tx, h, sizeof(h));
	for (uint16_t i = 0; i < def->n_types; i++) {
		uint8_t t[4];
		pg_put_u32(t, def->types[i]);
		put(tx, t, 4);
	}
	put(tx, def->query, (uint32_t)qlen);
	put(tx, m->body - 5, m->len);
}

/* The definition of named statement name as the transaction sees it: one
 * it parsed itself (copied out of its item into *tmp), else the client's
 * (statement tracking's map). NULL when unknown. */
static const struct pstmt_def *find_def(struct mirror_tx *tx, struct pg_client *c, const char *name,
					struct pstmt_def *tmp, uint32_t *text)
{
	for (uint32_t i = tx->n_named; i-- > 0;) {
		if (strcmp(tx->named[i].name, name) != 0)
			continue;
		struct pg_reader r;
		const uint8_t *p = iobuf_head(&tx->req) + tx->named[i].item;
		pg_reader_init(&r, p + 5, pg_get_u32(p + 1));
		(void)pg_read_u8(&r);
		uint64_t h = (uint64_t)pg_read_u32(&r) << 32;
		h |= pg_read_u32(&r);
		tmp->hash = h;
		tmp->n_types = pg_read_u16(&r);
		const uint8_t *types = pg_read_bytes(&r, (size_t)tmp->n_types * 4);
		tmp->query = (char *)pg_read_str(&r);
		if (r.err)
			return NULL;
		tmp->types = malloc(((size_t)tmp->n_types + 1) * sizeof(uint32_t));
		if (!tmp->types)
			return NULL;
		for (uint16_t k = 0; k < tmp->n_types; k++)
			tmp->types[k] = pg_get_u32(types + 4 * k);
		*text = tx->named[i].text;
		return tmp;
	}
	struct client_stmt *e = client_stmts_find(&c->stmts, name);
	if (!e)
		return NULL;
	*text = add_text(tx, e->def.query, strlen(e->def.query));
	return &e->def;
}

/* A statement the client refers to by name: replayed under the mirror's
 * name for it. */
static void capture_named_ref(struct mirror_tx *tx, struct pg_client *c, uint8_t op, const char *name,
			      const struct pg_msg *m)
{
	struct pstmt_def tmp = { 0 };
	uint32_t text = UINT32_MAX;
	const struct pstmt_def *def = find_def(tx, c, name, &tmp, &text);
	if (!def) {
		tx->over = true; /* prepared in a way sluice did not follow */
		return;
	}
	add_named(tx, op, def, m);
	if (op == 'B')
		tx->bind_text = text;
	free(tmp.types);
}

static bool starts_with_word(const char *s, const char *word)
{
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	return strncasecmp(s, word, strlen(word)) == 0;
}

static void capture(struct mirror_tx *tx, struct pg_client *c, struct pg_server *s, const struct pg_msg *m)
{
	struct pg_reader r;
	pg_reader_init(&r, m->body, m->body_len);
	switch (m->type) {
	case 'Q': {
		const char *q = pg_read_str(&r);
		/* Statement tracking answers DEALLOCATE and DISCARD in part
		 * itself, and on the mirror they would drop its own names:
		 * such a transaction is not replayed. */
		if (starts_with_word(q, "DEALLOCATE") || starts_with_word(q, "DISCARD")) {
			tx->over = true;
			return;
		}
		add_raw(tx, m);
		add_req(tx, 'Q', add_text(tx, q, strlen(q)));
		tx->unnamed_known = true; /* a Query drops the unnamed statement */
		tx->unnamed_text = UINT32_MAX;
		return;
	}
	case 'P': {
		const char *name;
		struct pstmt_def def = { 0 };
		if (pstmt_parse_msg(m->body, m->body_len, &name, &def) < 0) {
			tx->over = true;
			return;
		}
		uint32_t text = add_text(tx, def.query, strlen(def.query));
		if (!*name) {
			add_raw(tx, m);
			tx->unnamed_known = true;
			tx->unnamed_text = text;
		} else if (tx->n_named == MX_NAMED_MAX || strlen(name) >= sizeof(tx->named[0].name)) {
			tx->over = true;
		} else {
			struct mx_named *e = &tx->named[tx->n_named++];
			snprintf(e->name, sizeof(e->name), "%s", name);
			e->item = iobuf_len(&tx->req);
			e->text = text;
			add_named(tx, 'P', &def, m);
		}
		pstmt_def_free(&def);
		return;
	}
	case 'B': {
		const char *stmt = pstmt_bind_stmt_name(m->body, m->body_len);
		if (!stmt) {
			tx->over = true;
			return;
		}
		if (*stmt) {
			capture_named_ref(tx, c, 'B', stmt, m);
			return;
		}
		if (!tx->unnamed_known && c->unnamed) {
			/* Parsed in an earlier transaction: parse it again here. */
			struct pg_builder b;
			struct iobuf tmp = { 0 };
			pg_build_init(&b, &tmp);
			pg_build_begin(&b, 'P');
			pg_build_str(&b, "");
			pg_build_str(&b, c->unnamed->def.query);
			pg_build_u16(&b, c->unnamed->def.n_types);
			for (uint16_t i = 0; i < c->unnamed->def.n_types; i++)
				pg_build_u32(&b, c->unnamed->def.types[i]);
			pg_build_end(&b);
			if (pg_build_done(&b) < 0) {
				tx->over = true;
			} else {
				put_item_header(tx, 'R', iobuf_len(&tmp));
				put(tx, iobuf_head(&tmp), iobuf_len(&tmp));
			}
			iobuf_release(&tmp);
			tx->unnamed_known = true;
			tx->unnamed_text = add_text(tx, c->unnamed->def.query, strlen(c->unnamed->def.query));
		}
		tx->bind_text = tx->unnamed_text;
		add_raw(tx, m);
		return;
	}
	case 'D':
	case 'C': {
		uint8_t what = pg_read_u8(&r);
		const char *name = pg_read_str(&r);
		if (r.err) {
			tx->over = true;
			return;
		}
		if (what == 'S' && *name) {
			if (m->type == 'D')
				capture_named_ref(tx, c, 'D', name, m);
			return; /* Close of a named statement: the mirror keeps it */
		}
		add_raw(tx, m);
		return;
	}
	case 'E':
		add_raw(tx, m);
		add_req(tx, 'X', tx->bind_text);
		return;
	case 'S':
	case 'F':
		add_raw(tx, m);
		add_req(tx, (char)m->type, UINT32_MAX);
		return;
	default: /* Flush, COPY data */
		add_raw(tx, m);
		return;
	}
}

bool pg_mirror_wanted(struct pg_client *c)
{
	if (c->mirror_cfg != runtime_config() || (c->mirror_chan && c->mirror_chan->worker != c->worker))
		judge(c);
	return c->mirror_chan != NULL;
}

/* Without statement tracking's renaming (session mode, or
 * max_prepared_statements = 0) sluice keeps no map of a client's named
 * statements: a mirrored client's are noted here, in the map tracking would keep (unused
 * otherwise), so that a later transaction's Bind can be replayed. Noted
 * as parsed (a Parse PostgreSQL refuses stays noted), forgotten at their
 * Close or at DISCARD ALL / DEALLOCATE ALL; at most
 * max_client_prepared_statements of them (10000 when 0). */
static void session_note(struct pg_client *c, const struct pg_msg *m)
{
	struct pg_reader r;
	pg_reader_init(&r, m->body, m->body_len);
	if (m->type == 'C') {
		uint8_t what = pg_read_u8(&r);
		const char *name = pg_read_str(&r);
		if (!r.err && what == 'S' && *name)
			client_stmts_remove(&c->stmts, name, NULL);
		return;
	}
	if (m->type == 'Q') {
		const char *q = pg_read_str(&r);
		if (starts_with_word(q, "DISCARD ALL") || starts_with_word(q, "DEALLOCATE ALL"))
			client_stmts_clear(&c->stmts);
		return;
	}
	const char *name;
	struct pstmt_def def = { 0 };
	if (pstmt_parse_msg(m->body, m->body_len, &name, &def) < 0)
		return;
	int max = runtime_config()->max_client_prepared_statements;
	if (*name) {
		client_stmts_remove(&c->stmts, name, NULL);
		if (c->stmts.n < (uint32_t)(max > 0 ? max : 10000) && client_stmts_add(&c->stmts, name, &def, NULL) == 0)
			return; /* the map owns def now */
	}
	pstmt_def_free(&def);
}

uint32_t pg_mirror_client_msg(struct pg_client *c, struct pg_server *s, const struct pg_msg *m, uint32_t avail)
{
	pg_mirror_wanted(c);
	struct pg_mirror_chan *ch = c->mirror_chan;
	struct mirror_tx *tx = c->mirror_tx;
	if (!ch && !tx)
		return 0;
	if (ch && !track_renames(c->pool) && (m->type == 'P' || m->type == 'C' || m->type == 'Q')) {
		if (m->len > avail && m->len <= MX_REQ_MAX)
			return m->len - avail;
		if (m->len <= avail)
			session_note(c, m);
	}
	if (!tx) {
		bool boundary = s->tx_status == 'I' && s->outstanding == 0 && !s->client_mid_batch;
		if (!boundary || !mirror_chan_take(CORE(ch)))
			return 0;
		if (!(tx = tx_new(ch)))
			return 0;
		c->mirror_tx = tx;
	}
	if (tx->over)
		return 0;
	if (m->len > avail) {
		if (iobuf_len(&tx->req) + m->len > MX_REQ_MAX) {
			tx->over = true;
			return 0;
		}
		return m->len - avail;
	}
	if (iobuf_len(&tx->req) + m->len + 64 > MX_REQ_MAX) {
		tx->over = true;
		return 0;
	}
	tx->mark = (struct mx_mark){ iobuf_len(&tx->req), tx->n_reqs, tx->zs, tx->n_named,
				     tx->unnamed_known, tx->unnamed_text, tx->bind_text };
	capture(tx, c, s, m);
	return 0;
}

void pg_mirror_client_unsee(struct pg_client *c)
{
	struct mirror_tx *tx = c->mirror_tx;
	if (!tx || tx->over)
		return;
	tx->req.end = tx->req.start + tx->mark.req_len;
	tx->n_reqs = tx->mark.n_reqs;
	tx->zs = tx->mark.zs;
	tx->n_named = tx->mark.n_named;
	tx->unnamed_known = tx->mark.unnamed_known;
	tx->unnamed_text = tx->mark.unnamed_text;
	tx->bind_text = tx->mark.bind_text;
}

/* The client's transaction ended: hand it to its channel. */
static void tx_end(struct pg_client *c)
{
	struct mirror_tx *tx = c->mirror_tx;
	struct pg_mirror_chan *ch = tx->chan;
	c->mirror_tx = NULL;
	tx->primary_us = loop_now_us() - tx->start_us;
	if (tx->over || tx->primary.over || !tx->zs) {
		mirror_count(ch->stats, MIRROR_DROPPED);
		tx_free(tx);
		return;
	}
	mirror_chan_push(CORE(ch), &tx->qn);
}

uint32_t pg_mirror_server_msg(struct pg_server *s, const struct pg_msg *m, uint32_t avail)
{
	struct pg_client *c = s->client;
	struct mirror_tx *tx = c->mirror_tx;
	switch (m->type) {
	case 'D': case 'C': case 'E': case 'I': case 's': case 'Z':
		break;
	default:
		return 0;
	}
	if (m->len > avail) {
		if (m->len > MX_ROW_MAX) {
			tx->over = true;
			return 0;
		}
		if (!tx->over)
			return m->len - avail;
		if (m->type != 'Z')
			return 0;
		return m->len - avail;
	}
	if (!tx->over)
		sum_message(&tx->primary, tx, m, NULL);
	if (m->type == 'Z' && m->body_len == 1 && m->body[0] == 'I' && s->outstanding <= 1 && !s->client_mid_batch)
		tx_end(c);
	return 0;
}

void pg_mirror_client_free(struct pg_client *c)
{
	if (c->mirror_tx) {
		mirror_count(c->mirror_tx->chan->stats, MIRROR_DROPPED);
		tx_free(c->mirror_tx);
		c->mirror_tx = NULL;
	}
}

void pg_mirror_tick(struct worker *w, int64_t now_us, bool all)
{
	(void)w;
	mirror_chans_tick(LIST, now_us, all);
}
