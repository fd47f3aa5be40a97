/*
 * pg_shard.c - see pg_shard.h.
 */
#include "pg_shard.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fnv.h"
#include "iobuf.h"
#include "pg_client.h"
#include "pg_proto.h"
#include "pg_server.h"
#include "pghash.h"
#include "pool.h"
#include "prepared.h"
#include "runtime.h"
#include "pg_fanout.h"
#include "shardroute.h"
#include "sqlshape.h"
#include "track.h"

/* The most bytes of a batch looked at to find the Bind that fixes its
 * shard; past that, the batch goes where the client's last one went. */
#define SCAN_LIMIT (256u * 1024u)

/* Where a statement goes: a shard (>= 0), or one of these. */
enum {
	DEST_ANY = -1,     /* wherever the client is (session statements, a Bind PostgreSQL refuses) */
	DEST_SPREAD = -2,  /* any one shard: replicated tables, read */
	DEST_REFUSED = -3, /* refused (the reason is written) */
};

/* ---- the sharded pool's map ---- */

/* The router's view of the pool's [sharded_tables] lines, in one block
 * (the map, its tables, then their names), so that pool_destroy frees it
 * with one free(). */
static const struct shard_map *map_of(struct pool *p)
{
	struct shard_map *m = __atomic_load_n((struct shard_map **)&p->shard_map, __ATOMIC_ACQUIRE);
	if (m)
		return m;
	const struct config_database *d = config_find_database_for(runtime_config(), p->db_name, CONFIG_PROTO_PG);
	size_t n = d ? d->n_tables : 0, bytes = sizeof(*m) + n * sizeof(struct shard_table);
	for (size_t i = 0; i < n; i++)
		bytes += (d->tables[i].schema ? strlen(d->tables[i].schema) + 1 : 0) + strlen(d->tables[i].table) + 1 +
			 strlen(d->tables[i].column) + 1;
	m = calloc(1, bytes);
	if (!m)
		return NULL;
	struct shard_table *t = (struct shard_table *)(m + 1);
	char *names = (char *)(t + n);
	for (size_t i = 0; i < n; i++) {
		const struct config_sharded_table *ct = &d->tables[i];
		if (ct->schema) {
			t[i].schema = strcpy(names, ct->schema);
			names += strlen(names) + 1;
		}
		t[i].table = strcpy(names, ct->table);
		names += strlen(names) + 1;
		t[i].column = strcpy(names, ct->column);
		names += strlen(names) + 1;
		t[i].key_type = ct->key_type; /* the same values as enum pghash_type */
	}
	m->tables = t;
	m->n_tables = n;
	m->n_shards = p->n_shards;
	void *none = NULL;
	if (!__atomic_compare_exchange_n(&p->shard_map, &none, m, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		free(m); /* another worker made it first */
		return none;
	}
	return m;
}

static const char *shard_name(const struct pg_client *c, int i)
{
	return c->pool->shard_pools[i]->db_name;
}

static void refuse(struct pg_shard_refusal *why, const char *sqlstate, const char *fmt, ...)
{
	snprintf(why->sqlstate, sizeof(why->sqlstate), "%s", sqlstate);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why->message, sizeof(why->message), fmt, ap);
	va_end(ap);
}

/* ---- where one statement goes ---- */

/* The route of a prepared statement, kept in *cache (NULL: none). */
static struct shard_plan plan_of(const struct shard_map *map, const char *sql, const uint32_t *types, int n_types,
				 struct shard_plan *cache)
{
	if (cache && cache->kind)
		return *cache;
	struct shard_route r;
	int rc = shard_route(sql, types, n_types, map, &r);
	struct shard_plan pl = shard_plan_of(&r);
	shard_route_deinit(&r);
	if (cache && rc == 0)
		*cache = pl; /* not a refusal for want of memory */
	return pl;
}

/* The reason a plan cannot run on one shard. known: the route it came
 * from, if at hand (else sql is routed again for the message). */
static int refuse_plan(const struct shard_plan *pl, const struct shard_route *known, const char *sql,
		       const uint32_t *types, int n_types, const struct shard_map *map, bool extended,
		       struct pg_shard_refusal *why)
{
	if (pg_fanout_runs(pl) && !pl->concat && !pl->aggregate) {
		/* A write over several shards, which sluice runs, but not here. */
		struct shard_route r;
		if (!known && pl->kind - 1 == SHARD_ROUTE_SEVERAL) {
			shard_route(sql, types, n_types, map, &r);
			known = &r;
		}
		if (known && known->n_items)
			refuse(why, "0A000", "the rows of this INSERT go to several shards: send each shard's rows in an "
			       "INSERT of their own (splitting one INSERT over shards is not built yet, docs/sharding.md)");
		else
			refuse(why, "0A000", "a write over several shards runs outside a transaction, as a simple Query or a "
			       "batch of that one statement alone ([Parse] Bind [Describe] Execute Sync): sluice commits "
			       "it on every shard with two-phase commit. Inside a transaction every statement stays on "
			       "the transaction's shard (docs/sharding.md)");
		if (known == &r)
			shard_route_deinit(&r);
		return DEST_REFUSED;
	}
	if (pg_fanout_runs(pl)) {
		/* sluice runs such a read, but not here. */
		if (extended)
			refuse(why, "0A000", "a read over several shards is run for a simple Query, or for a batch of that "
			       "one statement alone ([Parse] Bind [Describe] Execute Sync) outside a transaction, "
			       "aggregates with results in text format (docs/sharding.md)");
		else
			refuse(why, "0A000", "a read over several shards is run outside a transaction only (it reads the "
			       "shards one after the other): fix its shard key, or run it outside the transaction "
			       "(docs/sharding.md)");
		return DEST_REFUSED;
	}
	switch (pl->kind - 1) {
	case SHARD_ROUTE_MULTI:
		refuse(why, "0A000", "merging the answers of several shards is not built yet for functions but count, sum, "
		       "min, max and avg, HAVING, DISTINCT ON, GROUP BY keys not in the output, ORDER BY not over output "
		       "columns, or a LIMIT/OFFSET not a constant");
		break;
	case SHARD_ROUTE_SEVERAL:
		refuse(why, "0A000", "its keys are on several shards (an IN list); merging is not built yet for "
		       "functions but count, sum, min, max, avg, HAVING, DISTINCT ON, GROUP BY keys not in the output, "
		       "ORDER BY not over output columns, LIMIT/OFFSET not constant");
		break;
	default: {
		struct shard_route r;
		if (!known) {
			shard_route(sql, types, n_types, map, &r);
			known = &r;
		}
		refuse(why, known->sqlstate[0] ? known->sqlstate : "0A000", "%s", known->message);
		if (known == &r)
			shard_route_deinit(&r);
		break;
	}
	}
	return DEST_REFUSED;
}

/* The shard of a BIND plan's key value in Bind message bind. */
static int bound_shard(const struct shard_map *map, const struct shard_plan *pl, const struct pg_msg *bind,
		       struct pg_shard_refusal *why)
{
	int fmt = 0;
	const uint8_t *v = NULL;
	int32_t len = -1;
	struct pg_bind bd;
	if (!bind || pg_bind_read(bind->body, bind->body_len, &bd) < 0 || pg_bind_param(&bd, pl->param, &fmt, &v, &len) < 0)
		return DEST_ANY; /* PostgreSQL refuses such a Bind itself */
	if (len < 0)
		return 0; /* NULL: PostgreSQL's hash partitioning hashes nothing, remainder 0 */
	if (pl->param_type == PGHASH_UNKNOWN) {
		refuse(why, "0A000", "the type of the shard key compared with $%d is not known: give the key column's "
		       "type in [sharded_tables] (column:TYPE), or the parameter's type in the Parse", pl->param);
		return DEST_REFUSED;
	}
	int type = pl->param_type;
	if (fmt && (type == PGHASH_INT2 || type == PGHASH_INT4 || type == PGHASH_INT8))
		/* The parameter's own type says how wide it is (a smallint bound
		 * to a bigint key); equal integers hash alike across the three. */
		type = len == 2 ? PGHASH_INT2 : len == 4 ? PGHASH_INT4 : PGHASH_INT8;
	int shard = fmt ? pghash_shard_binary(type, v, (size_t)len, map->n_shards)
			: pghash_shard_text(pl->param_type, (const char *)v, (size_t)len, map->n_shards);
	if (shard >= 0)
		return shard;
	if (fmt)
		refuse(why, "22P03", "incorrect binary data format in bind parameter %d", pl->param);
	else
		refuse(why, "22P02", "invalid input syntax for type %s: \"%.*s\"",
		       pl->param_type == PGHASH_TEXT ? "text" : pghash_type_name(pl->param_type), len > 80 ? 80 : (int)len,
		       (const char *)v);
	return DEST_REFUSED;
}

/* Where a statement with plan pl goes (bind: its Bind, for a BIND plan). */
static int dest_of(const struct shard_map *map, const struct shard_plan *pl, const struct shard_route *known,
		   const char *sql, const uint32_t *types, int n_types, const struct pg_msg *bind,
		   struct pg_shard_refusal *why)
{
	switch (pl->kind - 1) {
	case SHARD_ROUTE_ONE:
		return pl->shard;
	case SHARD_ROUTE_BIND:
		return bound_shard(map, pl, bind, why);
	case SHARD_ROUTE_REPLICATED_READ:
		return DEST_SPREAD;
	case SHARD_ROUTE_REPLICATED_WRITE:
		if (map->n_shards == 1)
			return 0;
		return refuse_plan(pl, known, sql, types, n_types, map, bind != NULL, why);
	case SHARD_ROUTE_SESSION:
		return DEST_ANY;
	default:
		return refuse_plan(pl, known, sql, types, n_types, map, bind != NULL, why);
	}
}

/* A statement named in a Bind or Describe: its text, types and plan cache. */
struct stmt_ref {
	const char *sql;
	const uint32_t *types;
	int n_types;
	struct shard_plan *cache; /* NULL: a Parse of this batch, not kept yet */
	bool found;
};

static struct stmt_ref known_stmt(struct pg_client *c, const char *name)
{
	struct stmt_ref ref = { 0 };
	if (!*name) {
		if (c->unnamed && c->unnamed->def.query)
			ref = (struct stmt_ref){ c->unnamed->def.query, c->unnamed->def.types, c->unnamed->def.n_types,
						 &c->unnamed->shard, true };
		return ref;
	}
	struct client_stmt *st = track_renames(c->pool) ? client_stmts_find(&c->stmts, name) : NULL;
	if (st)
		ref = (struct stmt_ref){ st->def.query, st->def.types, st->def.n_types, &st->shard, true };
	return ref;
}

/* ---- simple queries: routes kept by shape ---- */

/* A client's simple queries repeat a few shapes (the same text but for
 * its integer literals, sqlshape.h): the route of a shape is kept in a few
 * slots per client, so such a query is routed without a parse. */
enum { SHAPE_SLOTS = 4, SHAPE_MAX = 1024 };

struct shape_slot {
	char *shape;            /* heap, NULL = free */
	uint64_t hash;
	struct shard_plan plan;
	uint32_t used;          /* the clock when last used */
};

struct pg_shard_shapes {
	struct shape_slot slot[SHAPE_SLOTS];
	uint32_t clock;
};

/* The kept plan of shape (routed and kept when new: sql with its
 * literals is the text it came from); NULL without memory. */
static const struct shard_plan *shape_plan(struct pg_client *c, const struct shard_map *map, const char *shape,
					   const char *sql, const struct sql_literal *lits, int n_lits)
{
	if (!c->shard_shapes && !(c->shard_shapes = calloc(1, sizeof(*c->shard_shapes))))
		return NULL;
	struct pg_shard_shapes *sh = c->shard_shapes;
	uint64_t h = fnv1a(FNV1A_START, shape, strlen(shape));
	struct shape_slot *victim = &sh->slot[0];
	for (int i = 0; i < SHAPE_SLOTS; i++) {
		struct shape_slot *s = &sh->slot[i];
		if (s->shape && s->hash == h && strcmp(s->shape, shape) == 0) {
			s->used = ++sh->clock;
			return &s->plan;
		}
		if (!s->shape || (victim->shape && s->used < victim->used))
			victim = s;
	}
	char *copy = strdup(shape);
	if (!copy)
		return NULL;
	struct shard_plan pl;
	if (shard_plan_of_shape(shape, sql, lits, n_lits, map, &pl) < 0) {
		free(copy);
		return NULL;
	}
	free(victim->shape);
	*victim = (struct shape_slot){ .shape = copy, .hash = h, .plan = pl, .used = ++sh->clock };
	return &victim->plan;
}

/* The plan of a simple Query's text (NUL-terminated, len bytes): from the
 * plan of its shape when that says all (a shard fixed by one of its
 * literals is a plan for that shard), else from a parse of the text.
 * *known: the route parsed, when *parsed (deinit it). */
static struct shard_plan query_plan(struct pg_client *c, const struct shard_map *map, const char *sql, size_t len,
				    struct shard_route *known, bool *parsed)
{
	char shape[SHAPE_MAX];
	struct sql_literal lits[SQL_SHAPE_MAX_LITERALS];
	int n = len < SHAPE_MAX ? sql_shape(sql, len, shape, sizeof(shape), lits) : -1;
	const struct shard_plan *pl = n >= 0 ? shape_plan(c, map, shape, sql, lits, n) : NULL;
	*parsed = false;
	if (pl && n == 0)
		return *pl; /* the shape is the text */
	if (pl && n > 0) {
		int shard = shard_plan_literal_shard(pl, sql, lits, n, map->n_shards);
		if (shard >= 0) /* the key is one of the literals */
			return (struct shard_plan){ .kind = SHARD_ROUTE_ONE + 1, .shard = (int8_t)shard,
						    .write = pl->write, .tx = pl->tx };
	}
	shard_route(sql, NULL, 0, map, known);
	*parsed = true;
	return shard_plan_of(known);
}

void pg_shard_client_free(struct pg_client *c)
{
	if (!c->shard_shapes)
		return;
	for (int i = 0; i < SHAPE_SLOTS; i++)
		free(c->shard_shapes->slot[i].shape);
	free(c->shard_shapes);
	c->shard_shapes = NULL;
}

/* ---- a batch of the extended protocol, from an idle client ---- */

/* A Parse of the batch being looked at (texts point into the message). */
struct batch_parse {
	const char *name, *sql;
	uint32_t *types; /* heap */
	int n_types;
};

struct batch {
	struct batch_parse parses[4]; /* the batch's first Parses */
	int n_parses;                 /* all of them, also past the four kept */
	int dest;                     /* where it goes */
	uint16_t judged;              /* its messages up to the Bind that fixed dest */
	uint32_t len;                 /* bytes up to its end (Sync), when synced */
	bool synced;                  /* ends with a Sync, all of it in */
	bool tx_only;                 /* every statement it binds is one transaction control... */
	uint8_t tx;                   /* ...of this kind (enum shard_tx); 0 = none bound yet */
	int n_executes, n_describes;
	bool fan;                     /* its deciding Bind is a read sluice runs over several
				       * shards (when the batch is one statement: pg_fanout_batch) */
	struct stmt_ref fan_stmt;     /* that Bind's statement */
	bool fan_stmt_aggregate;      /* ...whose rows are combined (count/sum/min/max) */
};

static void batch_free(struct batch *b)
{
	for (int i = 0; i < b->n_parses && i < 4; i++)
		free(b->parses[i].types);
}

static struct stmt_ref batch_stmt(struct pg_client *c, struct batch *b, const char *name)
{
	for (int i = (b->n_parses < 4 ? b->n_parses : 4) - 1; i >= 0; i--)
		if (strcmp(b->parses[i].name, name) == 0)
			return (struct stmt_ref){ b->parses[i].sql, b->parses[i].types, b->parses[i].n_types, NULL, true };
	return known_stmt(c, name);
}

static bool note_parse(struct batch *b, const struct pg_msg *m)
{
	if (b->n_parses++ >= 4)
		return true;
	struct batch_parse *p = &b->parses[b->n_parses - 1];
	struct pg_reader r;
	pg_reader_init(&r, m->body, m->body_len);
	p->name = pg_read_str(&r);
	p->sql = pg_read_str(&r);
	uint16_t n = pg_read_u16(&r);
	const uint8_t *t = pg_read_bytes(&r, (size_t)n * 4);
	p->types = NULL;
	p->n_types = 0;
	if (r.err) {
		p->name = p->sql = "";
		return true; /* PostgreSQL refuses it */
	}
	if (n && !(p->types = malloc((size_t)n * 4)))
		return false;
	for (uint16_t i = 0; i < n; i++)
		p->types[i] = pg_get_u32(t + 4 * i);
	p->n_types = n;
	return true;
}

enum { SCAN_DONE, SCAN_MORE, SCAN_NOMEM };

/* Look at the batch from first on: where it goes (the first Bind that
 * fixes a shard), and whether sluice can answer it itself. *missing: the
 * bytes to wait for (SCAN_MORE). */
static int scan_batch(struct pg_client *c, const struct shard_map *map, const struct pg_msg *first, uint32_t avail,
		      struct batch *b, uint32_t *missing, struct pg_shard_refusal *why)
{
	const uint8_t *p = first->body - 5;
	uint32_t left = avail, seen = 0;
	uint16_t count = 0;
	b->dest = DEST_ANY;
	b->tx_only = true;
	for (;;) {
		struct pg_msg m;
		int rc = seen > SCAN_LIMIT ? -1 : pg_msg_peek(p, left, &m);
		if (rc < 0)
			break; /* decide on what is seen; PostgreSQL judges the rest */
		if (rc == 0 || m.len > left) {
			*missing = rc == 0 ? 5 - left : m.len - left;
			return SCAN_MORE;
		}
		count++;
		bool end = false;
		switch (m.type) {
		case 'P':
			if (!note_parse(b, &m))
				return SCAN_NOMEM;
			break;
		case 'B': {
			struct pg_reader r;
			pg_reader_init(&r, m.body, m.body_len);
			(void)pg_read_str(&r);
			const char *name = pg_read_str(&r);
			struct stmt_ref st = r.err ? (struct stmt_ref){ 0 } : batch_stmt(c, b, name);
			if (!st.found) {
				b->tx_only = false;
				break; /* PostgreSQL refuses the Bind */
			}
			struct shard_plan pl = plan_of(map, st.sql, st.types, st.n_types, st.cache);
			if (pl.kind - 1 == SHARD_ROUTE_SESSION && pl.tx && (!b->tx || b->tx == pl.tx)) {
				b->tx = pl.tx;
				break;
			}
			b->tx_only = false;
			if (b->fan)
				break; /* a second Bind: pg_fanout_batch sees it is not one statement */
			int d = dest_of(map, &pl, NULL, st.sql, st.types, st.n_types, &m, why);
			if (pg_fanout_runs(&pl)) {
				/* Refused in place unless the whole batch turns out to be
				 * this one statement (seen to its end). */
				b->fan = true;
				b->fan_stmt = st;
				b->fan_stmt_aggregate = pl.aggregate;
				b->dest = d;
				b->judged = count - 1;
				break;
			}
			if (d == DEST_ANY)
				break;
			b->dest = d;
			b->judged = d == DEST_REFUSED ? count - 1 : count; /* a refusal is made in place */
			return SCAN_DONE;
		}
		case 'E':
			b->n_executes++;
			break;
		case 'D':
			b->n_describes++;
			break;
		case 'C':
			b->tx_only = false;
			break;
		case 'S':
			b->synced = true;
			b->len = seen + m.len;
			end = true;
			break;
		default: /* Flush (the client waits for answers), Close, Query, ... */
			b->tx_only = false;
			end = true;
			break;
		}
		if (end)
			break;
		p += m.len;
		left -= m.len;
		seen += m.len;
	}
	return SCAN_DONE;
}

/* ---- what sluice answers itself: a BEGIN before the shard is known ---- */

/* Run transaction control tx (text sql, for a BEGIN) as PostgreSQL would
 * have with no statement run yet, writing its CommandComplete. */
static bool run_tx(struct pg_client *c, uint8_t tx, const char *sql)
{
	struct iobuf *w = &c->sock.wbuf;
	if (tx == SHARD_TX_BEGIN) {
		if (c->shard_begin)
			pg_be_warning(w, "25001", "there is already a transaction in progress");
		else if (!(c->shard_begin = strdup(sql)))
			return false;
		pg_be_complete(w, "BEGIN");
		return true;
	}
	free(c->shard_begin);
	c->shard_begin = NULL;
	pg_be_complete(w, tx == SHARD_TX_COMMIT ? "COMMIT" : "ROLLBACK");
	return true;
}

/* Can sluice answer a text (or batch) of transaction control tx itself?
 * A BEGIN always; its COMMIT or ROLLBACK when the BEGIN is still its own. */
static bool tx_answerable(const struct pg_client *c, uint8_t tx)
{
	return tx == SHARD_TX_BEGIN || ((tx == SHARD_TX_COMMIT || tx == SHARD_TX_ROLLBACK) && c->shard_begin);
}

/* Can sluice answer batch b itself? Transaction control it can answer
 * (tx_answerable), or, while its BEGIN waits for a shard, one Parse alone
 * (pgbench -M prepared prepares each statement so, before binding it):
 * it is kept for the Bind that will fix the shard. A text PostgreSQL's
 * parser refuses goes to a server, which refuses it in the transaction as
 * PostgreSQL would. */
static bool batch_answerable(const struct pg_client *c, const struct shard_map *map, const struct batch *b)
{
	if (!b->synced || !b->tx_only)
		return false;
	if (b->tx)
		return tx_answerable(c, b->tx);
	if (!c->shard_begin || b->n_parses != 1 || b->n_executes || b->n_describes)
		return false;
	struct shard_route r;
	shard_route(b->parses[0].sql, b->parses[0].types, b->parses[0].n_types, map, &r);
	shard_route_deinit(&r);
	return !(r.kind == SHARD_ROUTE_REFUSE && strcmp(r.sqlstate, "42601") == 0);
}

/* Answer the batch b (all in, from first) itself. False when it cannot
 * after all (a Parse sluice cannot keep): then a server sees it. later:
 * its Execute's CommandComplete and its ReadyForQuery are left to the end
 * of a transaction over shards (pg_fanout_end), and nothing is dropped. */
static bool answer_batch(struct pg_client *c, const struct pg_msg *first, const struct batch *b, bool later)
{
	if (b->n_parses > 1 || b->n_executes > 1)
		return false;
	const uint8_t *p = first->body - 5;
	if (b->n_parses) {
		/* Kept first: nothing is answered unless the statement is the client's. */
		struct pg_msg m;
		for (uint32_t off = 0; pg_msg_peek(p + off, b->len - off, &m) == 1; off += m.len) {
			if (m.type == 'P') {
				if (track_local_parse(c, &m) < 0)
					return false;
				break;
			}
		}
	}
	struct iobuf *w = &c->sock.wbuf;
	struct pg_msg m;
	const char *sql = NULL;
	for (uint32_t off = 0; off < b->len && pg_msg_peek(p + off, b->len - off, &m) == 1; off += m.len) {
		struct pg_reader r;
		pg_reader_init(&r, m.body, m.body_len);
		switch (m.type) {
		case 'P':
			pg_be_empty(w, '1');
			break;
		case 'B': {
			(void)pg_read_str(&r);
			struct stmt_ref st = known_stmt(c, pg_read_str(&r));
			sql = st.sql;
			pg_be_empty(w, '2');
			break;
		}
		case 'D': {
			uint8_t what = pg_read_u8(&r);
			if (what == 'S') {
				struct stmt_ref st = known_stmt(c, pg_read_str(&r));
				struct pg_builder pb;
				pg_build_init(&pb, w);
				pg_build_begin(&pb, 't');
				pg_build_u16(&pb, (uint16_t)st.n_types);
				for (int i = 0; i < st.n_types; i++)
					pg_build_u32(&pb, st.types[i]);
				pg_build_end(&pb);
				(void)pg_build_done(&pb);
			}
			pg_be_empty(w, 'n'); /* transaction control returns no rows */
			break;
		}
		case 'E':
			if (!later && !run_tx(c, b->tx, sql ? sql : "BEGIN"))
				return false;
			break;
		case 'S':
			if (!later)
				pg_be_ready(w, c->shard_begin ? 'T' : 'I');
			break;
		default:
			break;
		}
	}
	if (!later)
		pgsock_drop(&c->sock, b->len);
	return true;
}

int pg_shard_go(struct pg_client *c, int shard, struct pool **out)
{
	char err[200];
	struct pool *sp = pool_shard(c->pool, shard, err, sizeof(err));
	if (!sp) {
		client_fail(c, "08P01", err);
		return PG_SHARD_FAILED;
	}
	c->shard = (int8_t)shard;
	*out = sp;
	return PG_SHARD_GO;
}

/* ---- the client side ---- */

static int await(struct pg_client *c, uint32_t missing)
{
	if (iobuf_reserve(&c->sock.rbuf, missing) == 0)
		return 0;
	client_fail(c, "54000", "a message or batch too big to route over shards");
	return -1;
}

int pg_shard_pick(struct pg_client *c, const struct pg_msg *m, uint32_t avail, struct pool **out)
{
	const struct shard_map *map = map_of(c->pool);
	if (!map) {
		client_fail(c, "53200", "out of memory");
		return PG_SHARD_FAILED;
	}
	struct pg_shard_refusal why;
	int dest = DEST_ANY;
	c->shard_judged = 0;
	if (pg_fanout_copying(c))
		return pg_fanout_copy(c, m, avail, out);
	if (c->shard_fanout) {
		int act = pg_fanout_next(c, out);
		if (act != PG_SHARD_AGAIN)
			return act;
		/* A transaction left its shard: its statement goes on below. */
	}
	if (m->type == 'Q') {
		if (m->len > avail)
			return await(c, m->len - avail) < 0 ? PG_SHARD_FAILED : PG_SHARD_WAIT;
		if (m->body_len && !m->body[m->body_len - 1]) {
			struct shard_route r;
			bool parsed;
			struct shard_plan pl = query_plan(c, map, (const char *)m->body, m->body_len - 1, &r, &parsed);
			if (pl.kind - 1 == SHARD_ROUTE_SESSION && tx_answerable(c, pl.tx)) {
				if (parsed)
					shard_route_deinit(&r);
				if (!run_tx(c, pl.tx, (const char *)m->body)) {
					client_fail(c, "53200", "out of memory");
					return PG_SHARD_FAILED;
				}
				pg_be_ready(&c->sock.wbuf, c->shard_begin ? 'T' : 'I');
				pgsock_drop(&c->sock, m->len);
				return PG_SHARD_ANSWERED;
			}
			bool failed;
			bool fan = pg_fanout_start(c, map, &pl, parsed ? &r : NULL, (const char *)m->body, m->len, true,
						   &failed);
			if (fan || failed) {
				if (parsed)
					shard_route_deinit(&r);
				return failed ? PG_SHARD_FAILED : pg_fanout_next(c, out);
			}
			dest = dest_of(map, &pl, parsed ? &r : NULL, (const char *)m->body, NULL, 0, NULL, &why);
			if (parsed)
				shard_route_deinit(&r);
			if (dest != DEST_REFUSED)
				c->shard_judged = 1;
		}
	} else if (m->type && strchr("PBDECSH", m->type)) {
		struct batch b = { 0 };
		uint32_t missing = 0;
		int rc = scan_batch(c, map, m, avail, &b, &missing, &why);
		bool answered = rc == SCAN_DONE && batch_answerable(c, map, &b) && answer_batch(c, m, &b, false);
		/* A batch of one read over several shards fans out. */
		bool fan = rc == SCAN_DONE && !answered && b.fan && b.synced &&
			   pg_fanout_batch(c, map, m, b.len, b.fan_stmt.sql, b.fan_stmt.types, b.fan_stmt.n_types,
					   b.fan_stmt_aggregate);
		batch_free(&b);
		if (c->closing)
			return PG_SHARD_FAILED;
		if (fan)
			return pg_fanout_next(c, out);
		if (rc == SCAN_NOMEM) {
			client_fail(c, "53200", "out of memory");
			return PG_SHARD_FAILED;
		}
		if (rc == SCAN_MORE)
			return await(c, missing) < 0 ? PG_SHARD_FAILED : PG_SHARD_WAIT;
		if (answered)
			return PG_SHARD_ANSWERED;
		dest = b.dest;
		c->shard_judged = b.judged;
	}
	int n = c->pool->n_shards, last = c->shard < n ? c->shard : 0;
	int shard = dest >= 0 ? dest : dest == DEST_SPREAD ? (last + 1) % n : last;
	return pg_shard_go(c, shard, out);
}

void pg_shard_forget_routes(struct pg_client *c)
{
	for (uint32_t i = 0; i < c->stmts.n; i++)
		c->stmts.v[i].shard = (struct shard_plan){ 0 };
	if (c->unnamed)
		c->unnamed->shard = (struct shard_plan){ 0 };
	c->shard = 0;
	c->shard_judged = 0;
	pg_shard_client_free(c); /* routes by shape */
}

/* The linked client's statement needs shard dest, not its own: wait for
 * the answers in flight when the server may be free after them, else
 * refuse it (a transaction, a batch or a pinned session stays on its
 * shard). */
static bool may_be_free_soon(const struct pg_client *c)
{
	const struct pg_server *s = c->server;
	return !s->client_mid_batch && (s->outstanding || s->internal);
}

static int elsewhere(struct pg_client *c, int dest, struct pg_shard_refusal *why)
{
	const struct pg_server *s = c->server;
	if (may_be_free_soon(c))
		return PG_SHARD_HOLD;
	if (s->tx_status == 'E')
		return PG_SHARD_FOLLOW; /* PostgreSQL refuses it: the transaction failed */
	if (pg_fanout_tx_visited(c, dest))
		refuse(why, "0A000", "this transaction left shard %s, where its part is prepared, and this statement "
		       "needs it again: a transaction over several shards runs on each shard in one stretch "
		       "(docs/sharding.md)", shard_name(c, dest));
	else if (s->client_mid_batch)
		refuse(why, "0A000", "this batch runs on shard %s and this statement needs shard %s: a batch up to its "
		       "Sync is one transaction, which moves to another shard only between batches (docs/sharding.md)",
		       shard_name(c, c->shard), shard_name(c, dest));
	else if (s->pinned)
		refuse(why, "0A000", "this session keeps its server on shard %s (a temporary object, LISTEN, a session "
		       "lock ...) and this statement needs shard %s", shard_name(c, c->shard), shard_name(c, dest));
	else if (s->tx_status == 'T')
		return pg_fanout_leave(c) ? PG_SHARD_FANOUT : PG_SHARD_FAIL; /* its part here is prepared first */
	else
		refuse(why, "0A000", "this session keeps its server on shard %s and this statement needs shard %s",
		       shard_name(c, c->shard), shard_name(c, dest));
	return PG_SHARD_REFUSE;
}

/* The linked client's COMMIT or ROLLBACK (tx) of a transaction that has
 * left shards (consumed: its bytes, answered at the end): the last part
 * is prepared (or rolled back), then every part committed (or rolled
 * back) by pg_fanout. */
static int end_tx(struct pg_client *c, uint8_t tx, uint32_t consumed)
{
	if (may_be_free_soon(c))
		return PG_SHARD_HOLD;
	return pg_fanout_end(c, tx == SHARD_TX_COMMIT, consumed) ? PG_SHARD_FANOUT : PG_SHARD_FAIL;
}

static int refuse_ends(struct pg_shard_refusal *why)
{
	refuse(why, "0A000", "a transaction over several shards ends with COMMIT or ROLLBACK alone (not AND CHAIN, "
	       "PREPARE TRANSACTION, or among other statements): sluice commits its parts with two-phase commit "
	       "(docs/sharding.md)");
	return PG_SHARD_REFUSE;
}

/* A linked client begins a batch (m, its first message): where the batch
 * goes is known from its first Bind that fixes a shard. */
static int follow_batch(struct pg_client *c, const struct shard_map *map, const struct pg_msg *m, uint32_t avail,
			struct pg_shard_refusal *why)
{
	struct batch b = { 0 };
	uint32_t missing = 0;
	int rc = scan_batch(c, map, m, avail, &b, &missing, why);
	batch_free(&b);
	if (rc == SCAN_NOMEM) {
		client_fail(c, "53200", "out of memory");
		return PG_SHARD_FAIL;
	}
	if (rc == SCAN_MORE)
		return await(c, missing) < 0 ? PG_SHARD_FAIL : PG_SHARD_AWAIT;
	if (b.fan && may_be_free_soon(c))
		return PG_SHARD_HOLD; /* sluice may run it over the shards once idle */
	if (c->shard_tx && b.tx && b.tx != SHARD_TX_BEGIN) {
		/* A transaction over shards ends: by a batch of its COMMIT or
		 * ROLLBACK alone, or refused at the batch's start (PostgreSQL
		 * then aborts the transaction). */
		if (!b.synced || !b.tx_only || b.tx == SHARD_TX_ENDS || b.n_parses > 1 || b.n_executes != 1)
			return refuse_ends(why);
		int act = end_tx(c, b.tx, b.len);
		if (act == PG_SHARD_FANOUT && !answer_batch(c, m, &b, true)) {
			client_fail(c, "53200", "out of memory");
			return PG_SHARD_FAIL;
		}
		return act;
	}
	if (b.dest == DEST_REFUSED && b.judged == 0)
		return PG_SHARD_REFUSE; /* m is the Bind refused */
	if (b.dest == DEST_REFUSED || b.dest < 0 || b.dest == c->shard) {
		/* The Bind refused is judged again when it comes. */
		c->shard_judged = b.judged ? (uint16_t)(b.judged - 1) : 0;
		return PG_SHARD_FOLLOW;
	}
	int act = elsewhere(c, b.dest, why);
	if (act == PG_SHARD_FOLLOW) { /* a failed transaction: PostgreSQL refuses it */
		c->shard_judged = b.judged ? (uint16_t)(b.judged - 1) : 0;
		return act;
	}
	if (act != PG_SHARD_REFUSE || b.judged == 1)
		return act; /* the whole batch waits or moves, or m is the Bind refused */
	/* Refused at the Bind, in its place: what precedes it goes on. */
	c->shard_judged = (uint16_t)(b.judged - 2);
	return PG_SHARD_FOLLOW;
}

int pg_shard_follow(struct pg_client *c, const struct pg_msg *m, uint32_t avail, struct pg_shard_refusal *why)
{
	if (c->shard_judged) {
		c->shard_judged--;
		return PG_SHARD_FOLLOW;
	}
	bool batch_start = m->type && m->type != 'Q' && strchr("PBDECSH", m->type) && !c->server->client_mid_batch;
	if (m->type != 'Q' && m->type != 'B' && !batch_start)
		return PG_SHARD_FOLLOW; /* a Parse is judged when it is bound */
	if (m->len > avail)
		return await(c, m->len - avail) < 0 ? PG_SHARD_FAIL : PG_SHARD_AWAIT;
	const struct shard_map *map = map_of(c->pool);
	if (!map) {
		client_fail(c, "53200", "out of memory");
		return PG_SHARD_FAIL;
	}
	if (batch_start)
		return follow_batch(c, map, m, avail, why);
	int dest = DEST_ANY;
	if (m->type == 'Q') {
		if (!m->body_len || m->body[m->body_len - 1])
			return PG_SHARD_FOLLOW; /* PostgreSQL refuses it */
		struct shard_route r;
		bool parsed;
		struct shard_plan pl = query_plan(c, map, (const char *)m->body, m->body_len - 1, &r, &parsed);
		if (c->shard_tx && (pl.tx == SHARD_TX_ENDS || ((pl.tx == SHARD_TX_COMMIT || pl.tx == SHARD_TX_ROLLBACK) &&
							       pl.kind - 1 == SHARD_ROUTE_SESSION))) {
			if (parsed)
				shard_route_deinit(&r);
			return pl.tx == SHARD_TX_ENDS ? refuse_ends(why) : end_tx(c, pl.tx, m->len);
		}
		if (pg_fanout_runs(&pl) && may_be_free_soon(c)) {
			if (parsed)
				shard_route_deinit(&r);
			return PG_SHARD_HOLD; /* sluice may run it over the shards once idle */
		}
		dest = dest_of(map, &pl, parsed ? &r : NULL, (const char *)m->body, NULL, 0, NULL, why);
		if (parsed)
			shard_route_deinit(&r);
	} else {
		struct pg_reader r;
		pg_reader_init(&r, m->body, m->body_len);
		(void)pg_read_str(&r);
		const char *name = pg_read_str(&r);
		struct stmt_ref st = r.err ? (struct stmt_ref){ 0 } : known_stmt(c, name);
		if (!st.found) {
			if (*name && !track_renames(c->pool)) {
				refuse(why, "0A000", "a sharded database needs max_prepared_statements > 0 to route named "
				       "prepared statements");
				return PG_SHARD_REFUSE;
			}
			return PG_SHARD_FOLLOW; /* PostgreSQL (or sluice's tracking) refuses it */
		}
		struct shard_plan pl = plan_of(map, st.sql, st.types, st.n_types, st.cache);
		if (c->shard_tx && pl.tx && pl.tx != SHARD_TX_BEGIN)
			return refuse_ends(why); /* not a batch of its own */
		dest = dest_of(map, &pl, NULL, st.sql, st.types, st.n_types, m, why);
	}
	if (dest == DEST_REFUSED)
		return PG_SHARD_REFUSE;
	if (dest < 0 || dest == c->shard)
		return PG_SHARD_FOLLOW;
	return elsewhere(c, dest, why);
}
