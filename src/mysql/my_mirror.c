/*
 * my_mirror.c - see my_mirror.h.
 *
 * A captured transaction is a list of commands in one buffer, each
 * [u8 kind][u32 length][payload]:
 *   'C' a command payload to replay as it is (COM_QUERY, COM_INIT_DB with
 *       the schema already named as on the mirror);
 *   'S' a command on a prepared statement: [u64 hash of its text]
 *       [u32 text length][text] then the command payload (COM_STMT_EXECUTE
 *       with its parameter types always bound, COM_STMT_RESET), whose
 *       statement id (bytes 1-4) is the mirror's, filled in at replay.
 * The mirror replays them one at a time: a statement not yet prepared on
 * its connection (for the schema it is in) is prepared right before its
 * first use. COM_STMT_PREPARE and COM_STMT_CLOSE are not replayed (the
 * mirror's statements live as long as its connection, at most
 * MX_PREPARED_MAX of them); COM_PING and the like are neither replayed
 * nor compared. A transaction with a command that cannot be replayed
 * (a cursor, long data, COM_SET_OPTION, a LOCAL INFILE, a command longer
 * than the receive buffer) is dropped at its end.
 *
 * Before a transaction the mirror's session is put in the client's
 * schema (mapped) and autocommit; other session state (variables set by
 * SET) is the connection's own, shared by every client of the worker.
 */
#include "my_mirror.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "loop.h"
#include "mirror.h"
#include "mirror_chan.h"
#include "my_conn.h"
#include "my_ops.h"
#include "pool.h"
#include "runtime.h"
#include "worker.h"

enum {
	MX_REQ_MAX = 512 * 1024,  /* bytes of captured commands per transaction */
	MX_RESULTS_MAX = 1024,    /* results per transaction */
	MX_CMDS_MAX = 1024,       /* commands per transaction */
	MX_PREPARED_MAX = 128,    /* statements kept prepared per mirror connection */
};

/* One result of a command: 'O' OK (a = affected rows), 'E' ERR (a = its
 * code), 'R' a result set (a = rows, hash of their payloads). */
struct mx_result {
	uint8_t kind;              /* 'O', 'E' or 'R' */
	uint64_t a;                /* affected rows, error code or row count */
	uint64_t hash;             /* 'R': of its rows' payloads in order; else 0 */
	uint32_t cmd;              /* index of the command it answered */
};

/* A side's results for one transaction, as they arrive. */
struct mx_sum {
	struct mx_result *v;       /* heap, n of cap */
	uint32_t n, cap;           /* results in v, and room */
	uint64_t rows;             /* rows of the result set running */
	uint64_t hash;             /* their hash so far */
	uint32_t cur;              /* command the next result answers */
	bool over;                 /* more than MX_RESULTS_MAX results */
};

/* Where a capture was before its last command (unsee). */
struct mx_mark {
	uint32_t req_len, texts_len, n_cmds; /* bytes of req and texts, commands */
};

struct my_mirror_chan;

/* One captured transaction: the client's (my_client.mirror_tx) while it
 * runs, then its channel's (queued or being replayed). */
struct my_mirror_tx {
	struct mirror_qnode qn;    /* in the channel's queue */
	struct my_mirror_chan *chan;  /* where it is replayed */
	struct iobuf req;          /* the commands (file header) */
	struct iobuf texts;        /* their texts, NUL-terminated, <= MIRROR_QUERY_MAX */
	uint32_t *cmd_text;        /* heap, MX_CMDS_MAX: offset of each command's text, UINT32_MAX = none */
	uint32_t n_cmds;           /* commands in req */
	char schema[64];           /* the client's schema at its start, as named on the mirror */
	bool autocommit_off;       /* the client's autocommit at its start */
	bool summarise;            /* the primary's answer to the command running is compared */
	struct mx_mark mark;       /* before the last command captured */
	struct mx_sum primary;     /* the primary's results */
	bool over;                 /* too large or not replayable: dropped at its end */
	int64_t start_us;          /* its first command */
	int64_t primary_us;        /* how long it took on the primary */
};

/* What the mirror connection's outstanding command is. */
enum { W_NONE, W_SCHEMA, W_SETUP, W_PREP, W_CMD, W_END };

/* A statement prepared on the mirror connection. */
struct mx_prepared {
	uint64_t key;              /* hash of its text and the schema it was prepared in */
	uint32_t id;               /* the mirror's statement id */
};

/* A worker's way to one mirror pool for one mirrored database. */
struct my_mirror_chan {
	MIRROR_CHAN_FIELDS(my_mirror_chan, my_server, my_mirror_tx) /* pool: mirror database, client's user and variant */
	int stage;                 /* of cur: 0 schema, 1 autocommit, 2 commands, 3 ending */
	uint32_t pos;              /* offset of cur's next command in its req */
	uint32_t cmd;              /* index of that command */
	int want;                  /* W_*: what srv's answer belongs to */
	char want_schema[64];      /* a COM_INIT_DB out asks for this one */
	uint64_t prep_key;         /* a COM_STMT_PREPARE out is for this key */
	bool prep_first;           /* its answer's first packet is still to come */
	struct mx_sum sum;         /* the mirror's results for cur */
	struct mx_prepared prepared[MX_PREPARED_MAX]; /* a ring */
	uint32_t n_prepared, next_slot; /* entries in prepared; the one replaced next when full */
};

static __thread struct mirror_chan *chans; /* this worker's channels (of this protocol) */

#define CORE(ch) ((struct mirror_chan *)(ch))
#define LIST (&chans)

static const struct mirror_chan_ops chan_ops;

static struct my_mirror_chan *chan_of(const struct my_server *s)
{
	return (struct my_mirror_chan *)mirror_chan_of(*LIST, &s->base);
}

/* Which channel, if any, c's transactions go to under the current
 * configuration. */
static void judge(struct my_client *c)
{
	const struct config *cfg = runtime_config();
	c->mirror_chan = NULL;
	if (!c->pool)
		return; /* judged once it has one */
	c->mirror_cfg = cfg;
	const struct config_database *d = config_find_database_for(cfg, c->pool->db_name, CONFIG_PROTO_MYSQL);
	if (!d || !d->mirror || d->mirror_fraction <= 0)
		return;
	char err[200] = "";
	/* The client's variant (capabilities, character set): answers such
	 * as affected rows (CLIENT_FOUND_ROWS) depend on it. */
	struct pool *p = pool_get_variant(cfg, &my_ops, d->mirror, c->user, c->pool->variant, c->pool->variant_len, err,
					  sizeof(err));
	c->mirror_chan = (struct my_mirror_chan *)mirror_chan_get(LIST, &chan_ops, sizeof(struct my_mirror_chan),
								  c->worker, c->pool->db_name, d->mirror,
								  d->mirror_fraction, p, err);
}

static void sum_free(struct mx_sum *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static void tx_free(struct my_mirror_tx *tx)
{
	if (!tx)
		return;
	iobuf_release(&tx->req);
	iobuf_release(&tx->texts);
	free(tx->cmd_text);
	sum_free(&tx->primary);
	free(tx);
}

/* ---- summaries (both sides) ---- */

static void sum_add(struct mx_sum *s, uint8_t kind, uint64_t a, uint64_t hash)
{
	if (s->n == MX_RESULTS_MAX) {
		s->over = true;
		return;
	}
	if (s->n == s->cap) {
		uint32_t cap = s->cap ? s->cap * 2 : 8;
		struct mx_result *v = realloc(s->v, cap * sizeof(*v));
		if (!v) {
			s->over = true;
			return;
		}
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = (struct mx_result){ .kind = kind, .a = a, .hash = hash, .cmd = s->cur };
}

/* Fold one answer packet into s. was_rows: the tracker expected a row or
 * a result set's end; row: it was a row. Column counts, definitions and
 * the EOF after them are not compared (definitions name the schema). */
static void sum_packet(struct mx_sum *s, const uint8_t *p, uint32_t len, bool was_rows, bool row)
{
	if (!len)
		return;
	if (p[0] == 0xff && len >= 3 && p[1] == 0xff && p[2] == 0xff)
		return; /* MariaDB's progress report */
	if (row) {
		s->rows++;
		s->hash = mirror_hash(s->hash, p, len);
		return;
	}
	if (p[0] == 0xff) {
		sum_add(s, 'E', len >= 3 ? (uint64_t)(p[1] | p[2] << 8) : 0, 0);
	} else if (was_rows) {
		sum_add(s, 'R', s->rows, s->hash);
	} else if (p[0] == 0x00) {
		struct my_reader r = my_reader_of(p + 1, len - 1);
		uint64_t affected = my_get_lenenc(&r, NULL);
		sum_add(s, 'O', r.err ? 0 : affected, 0);
	} else {
		return;
	}
	s->rows = 0;
	s->hash = 0;
}

static const char *cmd_text(const struct my_mirror_tx *tx, uint32_t cmd)
{
	if (cmd >= tx->n_cmds || tx->cmd_text[cmd] == UINT32_MAX)
		return NULL;
	return (const char *)iobuf_head(&tx->texts) + tx->cmd_text[cmd];
}

/* ---- replay ---- */

/* Send a command payload (its statement id replaced by id when id_at). */
static bool send_cmd(struct my_server *s, const uint8_t *p, uint32_t len, bool id_at, uint32_t id)
{
	struct iobuf *out = &s->sock.wbuf;
	int off = my_begin(out, 0);
	if (off < 0)
		return false;
	if (id_at) {
		uint8_t head[5] = { p[0] };
		my_le32_put(head + 1, id);
		if (iobuf_append(out, head, 5) < 0 || iobuf_append(out, p + 5, len - 5) < 0)
			return false;
	} else if (iobuf_append(out, p, len) < 0) {
		return false;
	}
	if (my_end(out, off) < 0)
		return false;
	my_answer_begin(&s->answer, p, len, s->caps);
	return true;
}

static void send_text(struct my_server *s, uint8_t command, const char *text, bool *ok)
{
	uint8_t buf[80];
	size_t n = strlen(text);
	if (n >= sizeof(buf)) {
		*ok = false;
		return;
	}
	buf[0] = command;
	memcpy(buf + 1, text, n);
	*ok = send_cmd(s, buf, (uint32_t)n + 1, false, 0);
}

static uint64_t stmt_key(const struct my_server *s, uint64_t text_hash)
{
	return mirror_hash(text_hash, s->schema, strlen(s->schema) + 1);
}

static const struct mx_prepared *prepared_find(const struct my_mirror_chan *ch, uint64_t key)
{
	for (uint32_t i = 0; i < ch->n_prepared; i++)
		if (ch->prepared[i].key == key)
			return &ch->prepared[i];
	return NULL;
}

/* Note a statement the mirror prepared; the oldest goes when the ring
 * is full (COM_STMT_CLOSE has no answer). */
static bool prepared_add(struct my_mirror_chan *ch, uint64_t key, uint32_t id)
{
	if (ch->n_prepared < MX_PREPARED_MAX) {
		ch->prepared[ch->n_prepared++] = (struct mx_prepared){ key, id };
		return true;
	}
	struct mx_prepared *old = &ch->prepared[ch->next_slot];
	uint8_t close[5] = { MY_COM_STMT_CLOSE };
	my_le32_put(close + 1, old->id);
	if (my_packet_put(&ch->srv->sock.wbuf, 0, close, sizeof(close)) < 0)
		return false;
	*old = (struct mx_prepared){ key, id };
	ch->next_slot = (ch->next_slot + 1) % MX_PREPARED_MAX;
	return true;
}

static void chan_finish(struct my_mirror_chan *ch);

/* Give up cur (counted as r) and close the connection: its session is
 * in a state the next replay cannot trust. */
static void chan_abandon(struct my_mirror_chan *ch, enum mirror_result r, const char *why)
{
	mirror_chan_abandon(CORE(ch), r, why);
}

/* Send the next command of cur, or finish it. */
static void replay_next(struct my_mirror_chan *ch)
{
	struct my_server *s = ch->srv;
	struct my_mirror_tx *tx = ch->cur;
	bool ok = true;
	if (ch->stage == 0) {
		ch->stage = 1;
		if (tx->schema[0] && strcmp(s->schema, tx->schema) != 0) {
			snprintf(ch->want_schema, sizeof(ch->want_schema), "%s", tx->schema);
			ch->want = W_SCHEMA;
			send_text(s, MY_COM_INIT_DB, tx->schema, &ok);
			goto sent;
		}
	}
	if (ch->stage == 1) {
		ch->stage = 2;
		if (s->autocommit_off != tx->autocommit_off) {
			ch->want = W_SETUP;
			send_text(s, MY_COM_QUERY, tx->autocommit_off ? "SET autocommit=0" : "SET autocommit=1", &ok);
			goto sent;
		}
	}
	if (ch->stage == 2) {
		const uint8_t *base = iobuf_head(&tx->req), *end = base + iobuf_len(&tx->req);
		while (base + ch->pos + 5 <= end) {
			const uint8_t *item = base + ch->pos;
			uint8_t kind = item[0];
			uint32_t len = my_le32_get(item + 1);
			const uint8_t *p = item + 5;
			ch->sum.cur = ch->cmd;
			if (kind == 'C') {
				if (p[0] == MY_COM_INIT_DB && len - 1 < sizeof(ch->want_schema))
					snprintf(ch->want_schema, sizeof(ch->want_schema), "%.*s", (int)(len - 1),
						 (const char *)p + 1);
				ch->pos += 5 + len;
				ch->cmd++;
				ch->want = W_CMD;
				ok = send_cmd(s, p, len, false, 0);
				goto sent;
			}
			/* 'S': [u64 hash][u32 text length][text][payload] */
			uint64_t h = (uint64_t)my_le32_get(p) | (uint64_t)my_le32_get(p + 4) << 32;
			uint32_t tlen = my_le32_get(p + 8);
			const uint8_t *text = p + 12;
			const uint8_t *cmd = text + tlen;
			uint32_t clen = len - 12 - tlen;
			uint64_t key = stmt_key(s, h);
			const struct mx_prepared *pr = prepared_find(ch, key);
			if (!pr) {
				/* Prepared here first; the command is sent after. */
				uint8_t head = MY_COM_STMT_PREPARE;
				int off = my_begin(&s->sock.wbuf, 0);
				ok = off >= 0 && iobuf_append(&s->sock.wbuf, &head, 1) == 0 &&
				     iobuf_append(&s->sock.wbuf, text, tlen) == 0 && my_end(&s->sock.wbuf, off) == 0;
				my_answer_begin(&s->answer, &head, 1, s->caps);
				ch->prep_key = key;
				ch->prep_first = true;
				ch->want = W_PREP;
				goto sent;
			}
			ch->pos += 5 + len;
			ch->cmd++;
			ch->want = W_CMD;
			ok = clen >= 5 && send_cmd(s, cmd, clen, true, pr->id);
			goto sent;
		}
		ch->stage = 3;
		if (s->in_trans) {
			/* Left in a transaction (the primary's ended): end it. */
			ch->want = W_END;
			send_text(s, MY_COM_QUERY, "ROLLBACK", &ok);
			goto sent;
		}
	}
	chan_finish(ch);
	return;
sent:
	if (!ok) {
		chan_abandon(ch, MIRROR_ERROR, "out of memory");
		return;
	}
	s->sock.want_read = true;
	my_server_send_pending(s);
}

static void chan_start(struct mirror_chan *core, struct mirror_qnode *rec)
{
	struct my_mirror_chan *ch = (struct my_mirror_chan *)core;
	(void)rec; /* ch->cur; sum was cleared by chan_forget when the last replay ended */
	ch->stage = 0;
	ch->pos = 0;
	ch->cmd = 0;
	ch->want = W_NONE;
	replay_next(ch);
}

static bool result_equal(const struct mx_result *a, const struct mx_result *b)
{
	return a->kind == b->kind && a->a == b->a && a->hash == b->hash;
}

/* The replay of ch->cur is complete: compare and count. */
static void chan_finish(struct my_mirror_chan *ch)
{
	struct my_mirror_tx *tx = ch->cur;
	const struct mx_sum *p = &tx->primary, *m = &ch->sum;
	uint32_t n = p->n > m->n ? p->n : m->n;
	bool differ = m->over;
	uint32_t at = m->over ? m->n : 0;
	for (uint32_t i = 0; i < n && !differ; i++) {
		if (i >= p->n || i >= m->n || !result_equal(&p->v[i], &m->v[i])) {
			differ = true;
			at = i;
		}
	}
	uint32_t cmd = at < p->n ? p->v[at].cmd : at < m->n ? m->v[at].cmd : UINT32_MAX;
	mirror_chan_done(CORE(ch), differ, differ ? cmd_text(tx, cmd) : NULL, tx->primary_us);
}

/* What the channel kept of its replay in flight. */
static void chan_forget(struct mirror_chan *core)
{
	struct my_mirror_chan *ch = (struct my_mirror_chan *)core;
	ch->want = W_NONE;
	sum_free(&ch->sum);
}

static struct server *chan_open(struct mirror_chan *ch, int host, char *err, size_t errlen)
{
	struct my_server *s = my_server_launch_aside(ch->worker, ch->pool, host, SERVER_MIRROR, err, errlen);
	return s ? &s->base : NULL;
}

static void chan_rec_free(struct mirror_qnode *rec)
{
	tx_free((struct my_mirror_tx *)rec);
}

static const struct mirror_chan_ops chan_ops = {
	.open = chan_open,
	.start = chan_start,
	.forget = chan_forget,
	.rec_free = chan_rec_free,
};

void my_mirror_ready(struct my_server *s)
{
	struct my_mirror_chan *ch = chan_of(s);
	if (!ch) {
		my_server_close(s, "mirror: no longer needed");
		return;
	}
	SLOG(s, LOG_LEVEL_DEBUG, "mirror connection ready");
	ch->n_prepared = ch->next_slot = 0;
	s->sock.want_read = true;
	my_server_update_events(s);
	mirror_chan_ready(CORE(ch));
}

bool my_mirror_partial(struct my_server *s, uint32_t avail)
{
	if (avail < MY_HEADER_LEN || !pgsock_rbuf_full(&s->sock))
		return false;
	uint32_t len = my_header_len(pgsock_cursor(&s->sock));
	uint32_t more = MY_HEADER_LEN + len - avail;
	if (more < PGSOCK_READ_MIN)
		more = PGSOCK_READ_MIN; /* room enough for the socket to be read again */
	if (MY_HEADER_LEN + len > IOBUF_MAX || iobuf_reserve(&s->sock.rbuf, more) < 0) {
		my_server_close(s, "mirror: answer packet longer than 1 MiB");
		return true;
	}
	return false;
}

bool my_mirror_packet(struct my_server *s, const struct my_packet *pk)
{
	struct my_mirror_chan *ch = chan_of(s);
	if (!ch || !ch->cur || ch->want == W_NONE) {
		my_server_close(s, "mirror: unexpected packet");
		return true;
	}
	bool was_rows = my_answer_in_rows(&s->answer);
	int rc = my_answer_feed(&s->answer, pk->payload, pk->len);
	if (rc == MY_ANSWER_BAD || rc == MY_ANSWER_INFILE) {
		pgsock_drop(&s->sock, MY_HEADER_LEN + pk->len);
		chan_abandon(ch, MIRROR_ERROR, rc == MY_ANSWER_BAD ? "unexpected packet in an answer" : "LOCAL INFILE asked");
		return true;
	}
	bool row = was_rows && rc == MY_ANSWER_MORE && my_answer_in_rows(&s->answer);
	bool failed = false;
	if (ch->want == W_CMD) {
		sum_packet(&ch->sum, pk->payload, pk->len, was_rows, row);
	} else if (ch->want == W_PREP && ch->prep_first) {
		ch->prep_first = false;
		if (pk->len >= 9 && pk->payload[0] == 0x00) {
			if (!prepared_add(ch, ch->prep_key, my_le32_get(pk->payload + 1)))
				failed = true;
		} else {
			/* Its command's result is this error; it is not sent. */
			sum_packet(&ch->sum, pk->payload, pk->len, false, false);
			const uint8_t *item = iobuf_head(&ch->cur->req) + ch->pos;
			ch->pos += 5 + my_le32_get(item + 1);
			ch->cmd++;
		}
	}
	pgsock_drop(&s->sock, MY_HEADER_LEN + pk->len);
	if (failed) {
		chan_abandon(ch, MIRROR_ERROR, "out of memory");
		return true;
	}
	if (rc != MY_ANSWER_DONE)
		return false;
	bool known = s->answer.status_known;
	if (known) {
		s->in_trans = (s->answer.status & MY_STATUS_IN_TRANS) != 0;
		s->autocommit_off = !(s->answer.status & MY_STATUS_AUTOCOMMIT);
	}
	int want = ch->want;
	ch->want = W_NONE;
	if (want == W_SCHEMA && known)
		snprintf(s->schema, sizeof(s->schema), "%s", ch->want_schema);
	if ((want == W_SCHEMA || want == W_SETUP) && !known) {
		chan_abandon(ch, MIRROR_ERROR, want == W_SCHEMA ? "cannot switch to the client's schema"
								 : "cannot set the client's autocommit");
		return true;
	}
	if (want == W_CMD && known && s->answer.command == MY_COM_INIT_DB)
		snprintf(s->schema, sizeof(s->schema), "%s", ch->want_schema);
	replay_next(ch);
	return s->closed;
}

void my_mirror_closed(struct my_server *s, const char *reason)
{
	struct my_mirror_chan *ch = chan_of(s);
	if (ch)
		mirror_chan_closed(CORE(ch), reason);
}

/* ---- capture (client side) ---- */

static struct my_mirror_tx *tx_new(struct my_mirror_chan *ch, struct my_client *c)
{
	struct my_mirror_tx *tx = calloc(1, sizeof(*tx));
	if (!tx || !(tx->cmd_text = malloc(MX_CMDS_MAX * sizeof(*tx->cmd_text)))) {
		free(tx);
		return NULL;
	}
	tx->chan = ch;
	tx->start_us = loop_now_us();
	tx->autocommit_off = c->autocommit_off;
	/* The primary entry's schema is the mirror entry's there. */
	const char *schema = strcmp(c->schema, c->pool->server_db) == 0 ? ch->pool->server_db : c->schema;
	snprintf(tx->schema, sizeof(tx->schema), "%s", schema);
	return tx;
}

/* Keep text (truncated) for SHOW MIRRORS; its offset or UINT32_MAX. */
static uint32_t add_text(struct my_mirror_tx *tx, const void *text, size_t len)
{
	if (len > MIRROR_QUERY_MAX)
		len = MIRROR_QUERY_MAX;
	uint32_t off = iobuf_len(&tx->texts);
	if (iobuf_append(&tx->texts, text, (uint32_t)len) < 0 || iobuf_append(&tx->texts, "", 1) < 0) {
		tx->over = true;
		return UINT32_MAX;
	}
	return off;
}

static void put(struct my_mirror_tx *tx, const void *p, uint32_t n)
{
	if (!tx->over && n && iobuf_append(&tx->req, p, n) < 0)
		tx->over = true;
}

/* A command item's header, its text noted; false when it does not fit. */
static bool add_cmd(struct my_mirror_tx *tx, uint8_t kind, uint32_t len, const void *text, size_t text_len)
{
	if (tx->n_cmds == MX_CMDS_MAX || iobuf_len(&tx->req) + 5 + len > MX_REQ_MAX) {
		tx->over = true;
		return false;
	}
	uint8_t h[5] = { kind };
	my_le32_put(h + 1, len);
	put(tx, h, 5);
	tx->cmd_text[tx->n_cmds++] = text ? add_text(tx, text, text_len) : UINT32_MAX;
	tx->summarise = !tx->over;
	return !tx->over;
}

/* COM_STMT_EXECUTE or COM_STMT_RESET on the client's statement. */
static void capture_stmt(struct my_mirror_tx *tx, struct my_client *c, const struct my_packet *pk)
{
	const char *text;
	uint32_t tlen;
	uint16_t params;
	const uint8_t *types;
	if (pk->len < 5 || !my_stmt_describe(c, my_le32_get(pk->payload + 1), &text, &tlen, &params, &types)) {
		tx->over = true; /* not a statement sluice knows (max_prepared_statements = 0) */
		return;
	}
	const uint8_t *p = pk->payload;
	uint32_t flag_at = 10 + (params + 7u) / 8u, types_len = 2u * params;
	bool add_types = false;
	if (p[0] == MY_COM_STMT_EXECUTE) {
		if (pk->len > 5 && (p[5] & 0x07)) {
			tx->over = true; /* a cursor: its rows come with COM_STMT_FETCH */
			return;
		}
		if (params && pk->len <= flag_at) {
			tx->over = true;
			return;
		}
		/* The mirror may never have had this statement's types bound:
		 * they always go with it. */
		if (params && p[flag_at] != 1) {
			if (!types) {
				tx->over = true;
				return;
			}
			add_types = true;
		}
	}
	uint32_t clen = pk->len + (add_types ? types_len : 0);
	uint64_t h = mirror_hash(0, text, tlen);
	if (!add_cmd(tx, 'S', 12 + tlen + clen, text, tlen))
		return;
	uint8_t head[12];
	my_le32_put(head, (uint32_t)h);
	my_le32_put(head + 4, (uint32_t)(h >> 32));
	my_le32_put(head + 8, tlen);
	put(tx, head, sizeof(head));
	put(tx, text, tlen);
	if (!add_types) {
		put(tx, p, pk->len);
		return;
	}
	uint8_t one = 1;
	put(tx, p, flag_at);
	put(tx, &one, 1);
	put(tx, types, types_len);
	put(tx, p + flag_at + 1, pk->len - flag_at - 1);
}

/* A move to schema name (n bytes): a COM_INIT_DB, the primary entry's
 * schema named as the mirror entry's. */
static void capture_schema(struct my_mirror_tx *tx, struct my_client *c, const char *name, size_t n)
{
	const char *primary = c->pool->server_db;
	if (n == strlen(primary) && memcmp(name, primary, n) == 0) {
		name = tx->chan->pool->server_db;
		n = strlen(name);
	}
	uint8_t cmd = MY_COM_INIT_DB;
	char text[80];
	snprintf(text, sizeof(text), "USE %.*s", (int)(n > 64 ? 64 : n), name);
	if (add_cmd(tx, 'C', (uint32_t)n + 1, text, strlen(text))) {
		put(tx, &cmd, 1);
		put(tx, name, (uint32_t)n);
	}
}

static void capture(struct my_mirror_tx *tx, struct my_client *c, const struct my_packet *pk, bool partial)
{
	const uint8_t *p = pk->payload;
	switch (p[0]) {
	case MY_COM_QUERY:
		if (partial) {
			tx->over = true; /* longer than the receive buffer */
			return;
		}
		if (c->want_schema[0]) {
			/* "USE name", which sluice follows (my_screen.c). */
			capture_schema(tx, c, c->want_schema, strlen(c->want_schema));
			return;
		}
		if (c->pinned && c->pin_why && strncmp(c->pin_why, "USE ", 4) == 0) {
			/* A USE among other statements: the mirror would follow
			 * it to the schema named, maybe the primary's. */
			tx->over = true;
			return;
		}
		if (add_cmd(tx, 'C', pk->len, p + 1, pk->len - 1))
			put(tx, p, pk->len);
		return;
	case MY_COM_INIT_DB:
		capture_schema(tx, c, (const char *)p + 1, pk->len - 1);
		return;
	case MY_COM_STMT_EXECUTE:
	case MY_COM_STMT_RESET:
		if (partial) {
			tx->over = true;
			return;
		}
		capture_stmt(tx, c, pk);
		return;
	case MY_COM_STMT_PREPARE: /* the mirror prepares at first use */
	case MY_COM_PING:
	case MY_COM_STATISTICS:
	case MY_COM_FIELD_LIST:
		return;
	default: /* long data, fetch, options, reset connection, ...: not replayable */
		tx->over = true;
		return;
	}
}

void my_mirror_client_command(struct my_client *c, const struct my_packet *pk, bool partial)
{
	if (c->mirror_cfg != runtime_config() || (c->mirror_chan && c->mirror_chan->worker != c->worker))
		judge(c);
	struct my_mirror_chan *ch = c->mirror_chan;
	struct my_mirror_tx *tx = c->mirror_tx;
	if (!tx) {
		struct my_server *s = c->server;
		if (!ch || !s || s->in_trans || s->answering)
			return;
		if (!mirror_chan_take(CORE(ch)))
			return;
		if (!(tx = tx_new(ch, c)))
			return;
		c->mirror_tx = tx;
	}
	tx->summarise = false;
	if (tx->over)
		return;
	tx->mark = (struct mx_mark){ iobuf_len(&tx->req), iobuf_len(&tx->texts), tx->n_cmds };
	capture(tx, c, pk, partial);
}

void my_mirror_client_unsee(struct my_client *c)
{
	struct my_mirror_tx *tx = c->mirror_tx;
	if (!tx)
		return;
	tx->summarise = false;
	if (tx->over)
		return;
	tx->req.end = tx->req.start + tx->mark.req_len;
	tx->texts.end = tx->texts.start + tx->mark.texts_len;
	tx->n_cmds = tx->mark.n_cmds;
}

/* The client's transaction ended: hand it to its channel. */
static void tx_end(struct my_client *c)
{
	struct my_mirror_tx *tx = c->mirror_tx;
	struct my_mirror_chan *ch = tx->chan;
	c->mirror_tx = NULL;
	tx->primary_us = loop_now_us() - tx->start_us;
	if (!tx->over && !tx->n_cmds) {
		tx_free(tx); /* nothing compared (COM_STMT_PREPARE, COM_PING) */
		return;
	}
	if (tx->over || tx->primary.over) {
		mirror_count(ch->stats, MIRROR_DROPPED);
		tx_free(tx);
		return;
	}
	mirror_chan_push(CORE(ch), &tx->qn);
}

void my_mirror_primary_packet(struct my_server *s, const struct my_packet *pk, bool rows, int rc)
{
	struct my_client *c = s->client;
	struct my_mirror_tx *tx = c->mirror_tx;
	if (rc == MY_ANSWER_INFILE)
		tx->over = true; /* the file is not kept */
	if (tx->summarise && !tx->over) {
		tx->primary.cur = tx->n_cmds - 1;
		bool row = rows && rc == MY_ANSWER_MORE && my_answer_in_rows(&s->answer);
		sum_packet(&tx->primary, pk->payload, pk->len, rows, row);
	}
	if (rc != MY_ANSWER_DONE)
		return;
	tx->summarise = false;
	bool in_trans = s->answer.status_known ? (s->answer.status & MY_STATUS_IN_TRANS) != 0 : s->in_trans;
	if (!in_trans)
		tx_end(c);
}

void my_mirror_primary_unseen(struct my_client *c)
{
	if (c->mirror_tx)
		c->mirror_tx->over = true;
}

void my_mirror_client_free(struct my_client *c)
{
	if (c->mirror_tx) {
		if (c->mirror_tx->n_cmds || c->mirror_tx->over)
			mirror_count(c->mirror_tx->chan->stats, MIRROR_DROPPED);
		tx_free(c->mirror_tx);
		c->mirror_tx = NULL;
	}
}

void my_mirror_tick(struct worker *w, int64_t now_us, bool all)
{
	(void)w;
	mirror_chans_tick(LIST, now_us, all);
}
