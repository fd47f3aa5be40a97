/*
 * track.c - see track.h. The rules follow PostgreSQL's extended query
 * protocol (docs 55.2.3, and postgres.c): each Parse/Bind/Close/Describe/
 * Execute/Sync has one answer (or none, for Flush and COPY data); after an
 * ErrorResponse to an extended-protocol message the server discards every
 * message, simple Queries included, up to the next Sync, so their answers
 * never come. sluice undoes its bookkeeping for them (newest first), and
 * drops the client's messages itself while it knows the server would
 * discard them.
 */
#include "track.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pg_client.h"
#include "config.h"
#include "expect.h"
#include "pool.h"
#include "runtime.h"
#include "pg_server.h"
#include "sqlinfo.h"

#define QUERY_INSPECT_MAX 65536 /* larger simple queries pass unexamined */

/* What an entry must restore when PostgreSQL skipped its message, or
 * give up when it was answered. Allocated only for entries that change
 * the client's statements, its unnamed statement or its settings. */
struct track_undo {
	char *name;                     /* PARSE, SYNTH_PARSE_DONE: the named statement added */
	struct unnamed_stmt *unnamed;   /* the client's unnamed statement before the message */
	bool unnamed_saved;             /* unnamed above holds the old value (even NULL) */
	char *error;                    /* F_FAIL: SQLSTATE (8 bytes) and text of sluice's error */
	struct client_stmt removed;     /* a named statement the message removed */
	bool removed_saved;
	struct client_stmts all;        /* DEALLOCATE ALL / DISCARD ALL: the statements before */
	bool all_saved;
	bool forget_server;             /* and sluice's statements on the server go only if it
					 * ran (a Query: nothing else is read before its answer) */
	struct sql_info *info;          /* QUERY/EXECUTE: what the statements do */
};

/* Setting changes whose statements succeeded, waiting for their
 * transaction to end (docs: SET is undone by ROLLBACK). */
struct track_pending {
	struct {
		struct sql_info *info;
		uint16_t k;              /* change index in info */
	} *v;
	uint16_t n, cap;
	bool failed;                    /* an ErrorResponse came in this transaction */
	bool rolled_back;               /* the last CommandComplete was ROLLBACK (TO) */
};

/* The current batch's bytes as sent to the server, from its first Bind or
 * Describe of one of sluice's statements, while nothing of the batch has
 * run: if PostgreSQL says that statement does not exist (someone
 * deallocated it behind sluice's back), sluice prepares it again and sends
 * the batch once more, and the client never knows. */
struct track_journal {
	uint8_t *b;
	uint32_t len, cap;
	bool open;       /* the batch goes on: messages are still added */
	uint8_t retries; /* times this batch was sent again */
};
#define JOURNAL_MAX 65536 /* larger batches are not kept (then not healed) */
#define JOURNAL_RETRIES 8 /* lost statements healed per batch */

enum { ENTRY_DONE, ENTRY_FAILED, ENTRY_SKIPPED };

static void journal_drop(struct pg_server *s);

bool track_enabled(const struct pool *p)
{
	return p->mode != POOL_MODE_SESSION;
}

bool track_renames(const struct pool *p)
{
	return track_enabled(p) && runtime_config()->max_prepared_statements > 0;
}

static bool skipping(const struct pg_client *c)
{
	return c->skip_until_sync || (c->server && c->server->skipping);
}

/* A Bind of the unnamed statement needs no rewriting: once its portal and
 * statement names are in, the rest (parameters, possibly megabytes) may
 * stream through like any other message. */
static bool bind_of_unnamed(const struct pg_msg *m, uint32_t avail)
{
	uint32_t have = avail > 5 ? avail - 5 : 0;
	if (have > m->body_len)
		have = m->body_len;
	const uint8_t *nul = memchr(m->body, '\0', have);
	if (!nul)
		return false;
	uint32_t at = (uint32_t)(nul - m->body) + 1;
	return at < have && m->body[at] == '\0';
}

bool track_wants_whole(const struct pg_client *c, const struct pg_msg *m, uint32_t avail)
{
	if (skipping(c) && m->type != 'S')
		return false; /* dropped as it arrives */
	switch (m->type) {
	case 'B':
		return !bind_of_unnamed(m, avail);
	case 'P': case 'D': case 'C': case 'E':
		return true;
	case 'Q':
		return m->len <= QUERY_INSPECT_MAX;
	default:
		return false;
	}
}

/* ---- entries and their undo records ---- */

static bool prepares(const struct expect *e)
{
	return (e->kind == EXPECT_PARSE || e->kind == EXPECT_PARSE_OWN) && e->id;
}

static bool push_gen(struct pg_server *s, int kind, uint8_t flags, uint32_t id, void *arg, uint32_t gen)
{
	struct expect e = { .kind = (uint8_t)kind, .flags = flags, .id = id, .gen = gen, .arg = arg };
	if (expect_push(&s->expect, e) < 0)
		return false;
	if (prepares(&e))
		s->parses_in_flight++;
	/* Does this batch now run something (an error would undo it)? */
	if (kind == EXPECT_SYNC)
		s->batch_ran = false;
	else if (kind != EXPECT_PARSE && kind != EXPECT_PARSE_OWN && kind != EXPECT_CLOSE_OWN && kind != SYNTH_PARSE_DONE)
		s->batch_ran = true;
	return true;
}

static bool push(struct pg_server *s, int kind, uint8_t flags, uint32_t id, void *arg)
{
	return push_gen(s, kind, flags, id, arg, 0);
}

static void unnamed_free(struct unnamed_stmt *u)
{
	if (!u)
		return;
	pstmt_def_free(&u->def);
	sql_info_put(u->info);
	free(u);
}

static void undo_free(struct track_undo *u)
{
	if (!u)
		return;
	free(u->name);
	free(u->error);
	if (u->unnamed_saved)
		unnamed_free(u->unnamed);
	if (u->removed_saved)
		client_stmt_free(&u->removed);
	if (u->all_saved)
		client_stmts_clear(&u->all);
	sql_info_put(u->info);
	free(u);
}

/* Put statements back that a skipped message removed, unless the client
 * has used the name again since. */
static void restore_stmt(struct pg_client *c, struct client_stmt *e)
{
	if (c && !client_stmts_find(&c->stmts, e->name) &&
	    client_stmts_add(&c->stmts, e->name, &e->def, e->info) == 0) {
		free(e->name);
		memset(e, 0, sizeof(*e));
		return;
	}
	client_stmt_free(e);
}

static void restore_all(struct pg_client *c, struct client_stmts *all)
{
	for (uint32_t i = 0; i < all->n; i++)
		restore_stmt(c, &all->v[i]);
	free(all->v);
	memset(all, 0, sizeof(*all));
}

/* The message replaces the client's unnamed statement by n (NULL: drops
 * it); the old one is kept in u until the message is answered. Returns
 * the statement's new version, for the entry (expect.gen). */
static uint32_t take_unnamed(struct pg_client *c, struct track_undo *u, struct unnamed_stmt *n)
{
	u->unnamed = c->unnamed;
	u->unnamed_saved = true;
	c->unnamed = n;
	return ++c->unnamed_gen;
}

/* The message (entry e) never ran: the client's unnamed statement is what
 * it was, unless a later message (already read) changed it again. */
static void restore_unnamed(struct pg_client *c, const struct expect *e, struct track_undo *u)
{
	struct unnamed_stmt *old = u && u->unnamed_saved ? u->unnamed : NULL;
	if (c && e->gen && c->unnamed_gen == e->gen) {
		unnamed_free(c->unnamed);
		c->unnamed = old;
		c->unnamed_gen = e->gen - 1;
	} else {
		unnamed_free(old);
	}
	if (u) {
		u->unnamed = NULL;
		u->unnamed_saved = false;
	}
}

static void pending_add(struct pg_server *s, struct sql_info *si, uint16_t stmt);

static void portal_forget(struct pg_client *c, const char *name)
{
	for (uint8_t i = 0; i < c->portals.n; i++) {
		struct portal_info *p = &c->portals.v[i];
		if (strcmp(p->name, name) == 0) {
			free(p->name);
			sql_info_put(p->info);
			*p = c->portals.v[--c->portals.n];
			return;
		}
	}
}

/* A transaction ended (or failed) at the end of batch k: the portals bound
 * up to there are gone. */
static void portals_end(struct pg_client *c, uint32_t k)
{
	for (uint8_t i = c->portals.n; i-- > 0;)
		if ((int32_t)(c->portals.v[i].batch - k) <= 0)
			portal_forget(c, c->portals.v[i].name);
}

/* Settle an entry: its message was answered (DONE), answered with the
 * error (FAILED), or never run (SKIPPED). */
static void finish_entry(struct pg_server *s, struct expect *e, int how)
{
	struct pg_client *c = s->client;
	struct track_undo *u = e->arg;
	bool undo = how != ENTRY_DONE;
	if (prepares(e) && s->parses_in_flight > 0)
		s->parses_in_flight--;
	switch (e->kind) {
	case EXPECT_PARSE:
		if (e->flags & EXPECT_F_UNNAMED) {
			if (how == ENTRY_FAILED && c && c->unnamed_gen == e->gen) {
				/* PostgreSQL drops the old unnamed statement before
				 * it parses the new one. */
				unnamed_free(c->unnamed);
				c->unnamed = NULL;
			} else if (how == ENTRY_SKIPPED) {
				restore_unnamed(c, e, u);
			}
			if (undo)
				s->unnamed_owner = 0;
		} else if (undo && (e->flags & EXPECT_F_PROBE)) {
			server_stmts_remove_id(&s->stmts, e->id);
		} else if (undo) {
			if (e->id)
				server_stmts_remove_id(&s->stmts, e->id);
			if (c && u && u->name)
				client_stmts_remove(&c->stmts, u->name, NULL);
		}
		if (undo && u && u->removed_saved) {
			restore_stmt(c, &u->removed);
			u->removed_saved = false;
		}
		break;
	case EXPECT_PARSE_OWN:
		if (undo && e->id)
			server_stmts_remove_id(&s->stmts, e->id);
		if (undo && (e->flags & EXPECT_F_UNNAMED))
			s->unnamed_owner = 0;
		break;
	case SYNTH_PARSE_DONE:
		if (undo && c && u && u->name)
			client_stmts_remove(&c->stmts, u->name, NULL);
		break;
	case EXPECT_CLOSE:
	case SYNTH_COMPLETE:
		if (undo && u && u->removed_saved) {
			restore_stmt(c, &u->removed);
			u->removed_saved = false;
		}
		if (how == ENTRY_SKIPPED && e->gen)
			restore_unnamed(c, e, u);
		if (e->kind == SYNTH_COMPLETE && (e->flags & EXPECT_F_READY) && undo && s->outstanding > 0)
			s->outstanding--;
		break;
	case EXPECT_EXECUTE:
		if (undo && u && u->removed_saved) {
			restore_stmt(c, &u->removed);
			u->removed_saved = false;
		}
		if (undo && u && u->all_saved) {
			restore_all(c, &u->all);
			u->all_saved = false;
		}
		if (how == ENTRY_DONE && u && u->info)
			pending_add(s, u->info, 0);
		break;
	case EXPECT_QUERY:
		if (how == ENTRY_SKIPPED && e->gen)
			restore_unnamed(c, e, u);
		if ((how == ENTRY_SKIPPED || (e->flags & EXPECT_F_GOT_ERROR)) && u && u->removed_saved) {
			restore_stmt(c, &u->removed); /* its DEALLOCATE did not run */
			u->removed_saved = false;
		}
		/* DEALLOCATE ALL / DISCARD ALL are not transactional: they
		 * happened when PostgreSQL answered their statement. */
		if (u && u->all_saved && (how == ENTRY_SKIPPED || !u->info || u->info->dealloc_stmt >= e->done)) {
			restore_all(c, &u->all);
			u->all_saved = false;
		} else if (u && u->forget_server) {
			track_server_forget(s); /* it ran */
		}
		if (how == ENTRY_SKIPPED && s->outstanding > 0)
			s->outstanding--; /* its ReadyForQuery never comes */
		break;
	default:
		break;
	}
	undo_free(u);
	e->arg = NULL;
}

/* An ErrorResponse to the head entry: PostgreSQL now discards everything
 * up to the next Sync. Settle the head as FAILED and the rest up to that
 * Sync as SKIPPED, newest first, so each undo sees the state its message
 * found. */
static void fail_batch(struct pg_server *s)
{
	uint32_t n = 1;
	while (n < s->expect.len && expect_at(&s->expect, n)->kind != EXPECT_SYNC)
		n++;
	bool sync_queued = n < s->expect.len;
	journal_drop(s);
	/* The error rolls back the implicit transaction, or aborts the
	 * explicit one: the portals bound up to here cannot run again. */
	if (s->client)
		portals_end(s->client, sync_queued ? expect_at(&s->expect, n)->id : s->client->batch);
	bool resume = false;
	for (uint32_t i = n; i-- > 0;) {
		struct expect *e = expect_at(&s->expect, i);
		resume = resume || (e->flags & EXPECT_F_RESUME);
		finish_entry(s, e, i == 0 ? ENTRY_FAILED : ENTRY_SKIPPED);
	}
	for (uint32_t i = 0; i < n; i++)
		expect_pop(&s->expect);
	if (sync_queued) {
		if (resume)
			expect_head(&s->expect)->flags |= EXPECT_F_RESUME;
	} else {
		/* The client's Sync is still to come: drop what it sends
		 * until then, as PostgreSQL would ignore it. A client held
		 * for one of the skipped answers reads on now. */
		s->skipping = true;
		if (resume)
			s->resume_client = true;
	}
}

/* ---- settings: committed when their transaction ends ---- */

static void pending_add(struct pg_server *s, struct sql_info *si, uint16_t stmt)
{
	for (uint16_t k = 0; k < si->n_changes; k++) {
		if (si->changes[k].stmt != stmt)
			continue;
		struct track_pending *p = s->pending;
		if (!p && !(p = s->pending = calloc(1, sizeof(*p))))
			goto unsure;
		if (p->n == p->cap) {
			uint16_t ncap = p->cap ? p->cap * 2 : 4;
			void *v = p->cap < 1024 ? realloc(p->v, ncap * sizeof(*p->v)) : NULL;
			if (!v)
				goto unsure;
			p->v = v;
			p->cap = ncap;
		}
		p->v[p->n].info = sql_info_get(si);
		p->v[p->n].k = k;
		p->n++;
	}
	return;
unsure:
	/* Cannot follow the client's settings: keep its server. */
	s->pinned = true;
	if (s->client)
		s->client->pinned = true;
}

static void pending_clear(struct pg_server *s)
{
	struct track_pending *p = s->pending;
	if (!p)
		return;
	for (uint16_t i = 0; i < p->n; i++)
		sql_info_put(p->v[i].info);
	p->n = 0;
	p->failed = p->rolled_back = false;
}

static void pending_commit(struct pg_server *s)
{
	struct track_pending *p = s->pending;
	struct pg_client *c = s->client;
	for (uint16_t i = 0; i < p->n; i++) {
		if ((c && session_vars_apply(&c->vars, p->v[i].info, p->v[i].k) < 0) ||
		    session_vars_apply(&s->vars, p->v[i].info, p->v[i].k) < 0) {
			s->pinned = true;
			if (c)
				c->pinned = true;
		}
	}
	pending_clear(s);
}

/* A ReadyForQuery: the transaction went on, or ended (status 'I'). */
static void pending_on_ready(struct pg_server *s, char status)
{
	struct track_pending *p = s->pending;
	if (!p)
		return;
	if (status == 'I') {
		if (p->n && !p->failed && !p->rolled_back)
			pending_commit(s);
		pending_clear(s);
	} else if (status == 'T' && (p->rolled_back || s->tx_status == 'E')) {
		/* Back from ROLLBACK TO SAVEPOINT: which SETs survive depends
		 * on where the savepoint was. sluice cannot tell: the client
		 * keeps this server. */
		if (p->n) {
			s->pinned = true;
			if (s->client)
				s->client->pinned = true;
			log_debug("S-%llu: settings changed around a savepoint: pinned", (unsigned long long)s->id);
		}
		pending_clear(s);
	}
}

static void pending_on_complete(struct pg_server *s, const struct pg_msg *m)
{
	if (!s->pending || m->body_len == 0)
		return;
	s->pending->rolled_back = strncmp((const char *)m->body, "ROLLBACK", 8) == 0;
	if (strncmp((const char *)m->body, "PREPARE TRANSACTION", 19) == 0 && s->pending->n) {
		/* What happens to SETs of a prepared transaction is not worth
		 * guessing: keep the server. */
		s->pinned = true;
		if (s->client)
			s->client->pinned = true;
	}
}

int track_restore_sql(struct pg_server *s, struct pg_client *c, char **sql, size_t *len, size_t *cap)
{
	if (!s->vars.n && !c->vars.n)
		return 0;
	int rc = session_vars_diff_sql(&s->vars, &c->vars, sql, len, cap);
	if (rc == 0)
		rc = session_vars_copy(&s->vars, &c->vars);
	return rc;
}

/* ---- the batch journal ---- */

static void journal_drop(struct pg_server *s)
{
	if (s->journal) {
		free(s->journal->b);
		free(s->journal);
		s->journal = NULL;
	}
}

static bool journal_add(struct pg_server *s, const uint8_t *p, uint32_t n)
{
	struct track_journal *j = s->journal;
	if (j->len + n > JOURNAL_MAX) {
		journal_drop(s);
		return false;
	}
	if (j->len + n > j->cap) {
		uint32_t ncap = j->cap ? j->cap : 512;
		while (ncap < j->len + n)
			ncap *= 2;
		uint8_t *b = realloc(j->b, ncap);
		if (!b) {
			journal_drop(s);
			return false;
		}
		j->b = b;
		j->cap = ncap;
	}
	memcpy(j->b + j->len, p, n);
	j->len += n;
	return true;
}

/* Has nothing of the client's current batch (since its last Sync) run on
 * the server, outside an explicit transaction (which an error aborts)?
 * Parses are harmless to repeat. */
static bool batch_untouched(struct pg_server *s)
{
	bool fresh = !s->client_mid_batch || !s->batch_ran; /* the batch begins here, or has only parsed */
	return fresh && s->tx_status == 'I' && !s->outstanding && !s->internal && !s->skipping;
}


/* A Parse of one of sluice's statements to s (SHOW STATS server_parse_count). */
static int send_parse(struct pg_server *s, uint32_t id, const struct pstmt_def *def)
{
	stats_add(&pool_stats(s->pool, s->worker)->server_parses, 1);
	return pstmt_build_parse(&s->sock.wbuf, id, def);
}

/* PostgreSQL says the statement of entry e (the first of the journaled
 * batch) does not exist: prepare it again and send the batch once more.
 * Returns 1 when done (the error is then swallowed), 0 when it cannot be
 * (nothing changed), -1 without memory halfway (the server must go). */
static int heal_lost_statement(struct pg_server *s, const struct pg_msg *m)
{
	struct track_journal *j = s->journal;
	struct expect *e = expect_head(&s->expect);
	struct pg_client *c = s->client;
	struct server_stmt *ss = server_stmts_find_id(&s->stmts, e->id);
	if (!j || !c || !ss || j->retries >= JOURNAL_RETRIES || m->len - 5 != m->body_len ||
	    iobuf_len(&s->sock.wbuf) || c->sock.fwd || c->sock.skip)
		return 0; /* what was journaled is not all out yet */
	struct pg_error_fields f;
	char ours[32];
	snprintf(ours, sizeof(ours), "\"sluice_%u\"", e->id);
	pg_be_error_parse(m->body, m->body_len, &f);
	if (strcmp(f.code, "26000") != 0 || !strstr(f.message, ours))
		return 0;
	/* The batch must be all that is in flight (nothing after its Sync). */
	uint32_t n = 0;
	while (n < s->expect.len && expect_at(&s->expect, n)->kind != EXPECT_SYNC)
		n++;
	bool synced = n < s->expect.len;
	if (synced && n + 1 != s->expect.len)
		return 0;
	if (synced)
		n++;
	uint32_t lost = ss->id; /* ss moves when the cache shrinks below */
	struct expect *saved = malloc(n * sizeof(*saved));
	if (!saved)
		return 0;
	struct pg_builder b;
	pg_build_init(&b, &s->sock.wbuf);
	if (!synced) { /* the server skips to a Sync: give it one */
		pg_build_begin(&b, 'S');
		pg_build_end(&b);
	}
	if (pg_build_done(&b) < 0 || send_parse(s, ss->id, &ss->def) < 0) {
		free(saved);
		return -1;
	}
	for (uint32_t i = 0; i < n; i++) {
		saved[i] = *expect_head(&s->expect);
		if (prepares(&saved[i]) && s->parses_in_flight > 0)
			s->parses_in_flight--;
		expect_pop(&s->expect);
	}
	bool ok = push(s, EXPECT_SYNC, EXPECT_F_OWN, 0, NULL) && push(s, EXPECT_PARSE_OWN, 0, ss->id, NULL);
	/* Whatever took this statement may have taken the batch's others
	 * too: prepare them again as well, Close first (a Close of a name
	 * that exists or not is no error), except those the batch prepares
	 * itself. */
	for (uint32_t i = 1; ok && i < n; i++) {
		uint32_t id = saved[i].id;
		if (!id || (saved[i].kind != EXPECT_BIND && saved[i].kind != EXPECT_DESCRIBE) || id == lost)
			continue;
		bool dup = false;
		for (uint32_t k = 0; k < i && !dup; k++)
			dup = saved[k].id == id;
		struct server_stmt *other = server_stmts_find_id(&s->stmts, id);
		if (dup || !other)
			continue;
		ok = pstmt_build_close(&s->sock.wbuf, id) == 0 && push(s, EXPECT_CLOSE_OWN, 0, id, NULL) &&
		     send_parse(s, id, &other->def) == 0 && push(s, EXPECT_PARSE_OWN, 0, id, NULL);
	}
	if (ok && iobuf_append(&s->sock.wbuf, j->b, j->len) < 0)
		ok = false;
	/* The others may be gone too: forget them (their names are never
	 * used again), so the next use prepares them afresh. */
	for (uint32_t i = s->stmts.n; ok && i-- > 0;) {
		uint32_t id = s->stmts.v[i].id;
		bool kept = id == lost;
		for (uint32_t k = 0; k < n && !kept; k++)
			kept = saved[k].id == id && (saved[k].kind == EXPECT_BIND || saved[k].kind == EXPECT_DESCRIBE ||
						     prepares(&saved[k]));
		if (!kept)
			server_stmts_remove_id(&s->stmts, id);
	}
	for (uint32_t i = 0; i < n; i++) {
		if (ok)
			ok = push_gen(s, saved[i].kind, saved[i].flags, saved[i].id, saved[i].arg, saved[i].gen);
		if (ok)
			expect_at(&s->expect, s->expect.len - 1)->done = saved[i].done;
		else
			undo_free(saved[i].arg);
	}
	free(saved);
	if (!ok)
		return -1;
	j->retries++;
	log_debug("S-%llu: sluice_%u was gone from the server: prepared again, batch sent again",
		  (unsigned long long)s->id, lost);
	return 1;
}

void track_journal_note(struct pg_server *s, const struct pg_msg *m, int act, uint32_t avail, uint32_t wbuf_before)
{
	struct track_journal *j = s->journal;
	if (!j || !j->open || act == TRACK_FLUSH_FIRST || act == TRACK_ERROR)
		return;
	uint32_t wlen = iobuf_len(&s->sock.wbuf);
	if (wlen > wbuf_before && !journal_add(s, iobuf_head(&s->sock.wbuf) + wbuf_before, wlen - wbuf_before))
		return;
	if (act == TRACK_FORWARD) {
		if (m->len > avail) { /* streams through: cannot be kept */
			journal_drop(s);
			return;
		}
		if (!journal_add(s, m->body - 5, m->len))
			return;
	}
	if (m->type == 'S' || m->type == 'Q')
		s->journal->open = false; /* the batch is whole */
}

/* ---- client direction ---- */

static struct track_undo *undo_new(void)
{
	return calloc(1, sizeof(struct track_undo));
}

/* Push the entry for a simple Query that goes in the client's place
 * (kind QUERY or SYNTH_COMPLETE): it ends a batch, and it drops the
 * client's unnamed statement (postgres.c, exec_simple_query), kept in
 * *up for when it turns out never to have run. */
static bool push_query(struct pg_client *c, struct pg_server *s, int kind, uint8_t flags, struct track_undo **up)
{
	if (c->unnamed && !*up && !(*up = undo_new()))
		return false;
	uint32_t gen = *up ? take_unnamed(c, *up, NULL) : ++c->unnamed_gen;
	s->unnamed_owner = 0;
	if (push_gen(s, kind, flags, c->batch, *up, gen)) {
		c->batch++;
		*up = NULL; /* the entry owns it */
		return true;
	}
	restore_unnamed(c, &(struct expect){ .gen = gen }, *up);
	return false;
}

/* Answer the client's message with an error of sluice's: the server is
 * made to fail in its place (a statement sluice_0, which never exists),
 * so it aborts the transaction or skips to Sync exactly as PostgreSQL
 * would have for the client's own message; its 26000 is then replaced by
 * this error. A Query fails as a Query (its ReadyForQuery follows). */
static int fail_with(struct pg_client *c, struct pg_server *s, bool query, const char *code, const char *fmt,
		     const char *name)
{
	if (c->sock.fwd)
		return TRACK_FLUSH_FIRST; /* the message is dropped: what precedes it goes first */
	struct track_undo *u = undo_new();
	if (!u || !(u->error = malloc(8 + 240))) {
		undo_free(u);
		return TRACK_ERROR;
	}
	snprintf(u->error, 8, "%s", code);
	snprintf(u->error + 8, 240, fmt, name);
	int rc = query ? pg_fe_query(&s->sock.wbuf, "DEALLOCATE sluice_0") : pstmt_build_describe(&s->sock.wbuf, 0);
	bool pushed = rc == 0 && (query ? push_query(c, s, EXPECT_QUERY, EXPECT_F_FAIL, &u)
					: push(s, EXPECT_DESCRIBE, EXPECT_F_FAIL, 0, u));
	if (!pushed) {
		undo_free(u);
		return TRACK_ERROR;
	}
	return query ? TRACK_DROP_QUERY : TRACK_DROP;
}

/* Make room in the server cache, evicting the least recently used. */
static bool make_room(struct pg_server *s)
{
	int max = runtime_config()->max_prepared_statements;
	while (s->stmts.n >= (uint32_t)max) {
		struct server_stmt *lru = server_stmts_lru(&s->stmts);
		if (pstmt_build_close(&s->sock.wbuf, lru->id) < 0 || !push(s, EXPECT_CLOSE_OWN, 0, lru->id, NULL))
			return false;
		server_stmts_remove_id(&s->stmts, lru->id);
	}
	return true;
}

/* Is the Parse of server statement id still unanswered, in a batch before
 * the client's current one? An error there would skip it, and the
 * statement would not exist when the current batch names it. */
static bool prepared_in_doubt(struct pg_server *s, uint32_t id)
{
	if (!s->parses_in_flight)
		return false;
	bool seen = false;
	for (uint32_t i = 0; i < s->expect.len; i++) {
		const struct expect *e = expect_at(&s->expect, i);
		if (prepares(e) && e->id == id)
			seen = true;
		else if (seen && e->kind == EXPECT_SYNC)
			return true;
	}
	return false;
}

/* The server's id for def, preparing it there first when it lacks it
 * (the answer to that Parse is swallowed). 0 on failure, UINT32_MAX when
 * its Parse is in doubt (the caller waits for the answers in flight). */
static uint32_t ensure_on_server(struct pg_server *s, const struct pstmt_def *def)
{
	struct server_stmt *ss = server_stmts_find(&s->stmts, def);
	if (ss)
		return prepared_in_doubt(s, ss->id) ? UINT32_MAX : ss->id;
	if (!make_room(s) || !(ss = server_stmts_add(&s->stmts, def)))
		return 0;
	uint32_t id = ss->id;
	if (send_parse(s, id, def) < 0 || !push(s, EXPECT_PARSE_OWN, 0, id, NULL))
		return 0;
	return id;
}

/* Will the server surely be in a transaction that is not aborted when it
 * reads the client's next message? (No request unanswered, none failed.) */
static bool status_known(const struct pg_server *s)
{
	return !s->skipping && s->outstanding == 0 && s->internal == 0 && s->tx_status != 'E';
}

/* Hold the client's reading until every answer in flight is in: its next
 * message must be judged against the server's real state. */
static int wait_for_answers(struct pg_client *c, struct pg_server *s)
{
	for (uint32_t i = s->expect.len; i-- > 0;) {
		struct expect *e = expect_at(&s->expect, i);
		if (e->kind == EXPECT_SYNC || e->kind == EXPECT_QUERY ||
		    (e->kind == SYNTH_COMPLETE && (e->flags & EXPECT_F_READY))) {
			e->flags |= EXPECT_F_RESUME;
			c->hold_for_sync = true;
			return TRACK_FLUSH_FIRST;
		}
	}
	return TRACK_FLUSH_FIRST; /* only sluice's own bytes in flight: they go first */
}

static void note_effects(struct pg_client *c, struct pg_server *s, const struct sql_info *si)
{
	if (!si)
		return;
	if (si->pin) {
		if (!c->pinned)
			log_debug("C-%llu: %s: pinned to S-%llu", (unsigned long long)c->id, sql_pin_name(si->pin),
				  (unsigned long long)s->id);
		c->pinned = s->pinned = true;
	}
	if ((si->flags & SQL_F_DYNAMIC) && runtime_config()->dynamic_sql_check)
		s->check_due = true;
}

/* Is name one of sluice's own statement names? */
static bool is_internal_name(const char *name)
{
	if (strncmp(name, "sluice_", 7) != 0 || !name[7])
		return false;
	for (const char *p = name + 7; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

/* A named statement the client's messages name: rewritten to sluice's. */
static int parse_named(struct pg_client *c, struct pg_server *s, const char *name, struct pstmt_def *def,
		       struct sql_info *info)
{
	if (c->sock.fwd) {
		pstmt_def_free(def);
		sql_info_put(info);
		return TRACK_FLUSH_FIRST;
	}
	if (client_stmts_find(&c->stmts, name)) {
		/* The name is taken. PostgreSQL says so only after it has
		 * parsed the text (a syntax error, an aborted transaction or an
		 * unknown table come first): let it parse the text under a new
		 * name of sluice's, and fail right after if that worked. */
		struct server_stmt *ss;
		int rc = TRACK_ERROR;
		if (make_room(s) && (ss = server_stmts_add(&s->stmts, def)) != NULL &&
		    send_parse(s, ss->id, def) == 0 && push(s, EXPECT_PARSE, EXPECT_F_PROBE, ss->id, NULL))
			rc = fail_with(c, s, false, "42P05", "prepared statement \"%.120s\" already exists", name);
		pstmt_def_free(def);
		sql_info_put(info);
		return rc;
	}
	const struct config *cfg = runtime_config();
	size_t cost = pstmt_cost(name, def);
	if ((cfg->max_client_prepared_statements && c->stmts.n >= (uint32_t)cfg->max_client_prepared_statements) ||
	    (cfg->max_client_prepared_bytes && c->stmts.bytes + cost > (size_t)cfg->max_client_prepared_bytes)) {
		pstmt_def_free(def);
		sql_info_put(info);
		return fail_with(c, s, false, "53400", "%s", "too many prepared statements for this connection "
				   "(max_client_prepared_statements, max_client_prepared_bytes): close statements it no longer uses");
	}
	struct track_undo *u = undo_new();
	if (!u || !(u->name = strdup(name)) || client_stmts_add(&c->stmts, name, def, info) < 0) {
		undo_free(u);
		pstmt_def_free(def);
		sql_info_put(info);
		return TRACK_ERROR;
	}
	c->batch_changed_names = true;
	const struct pstmt_def *d = &client_stmts_find(&c->stmts, name)->def;
	/* Answer ParseComplete ourselves only when PostgreSQL surely would:
	 * a text it has, in a transaction that is not aborted. */
	if (status_known(s) && server_stmts_find(&s->stmts, d)) {
		if (push(s, SYNTH_PARSE_DONE, 0, 0, u))
			return TRACK_DROP;
		undo_free(u);
		return TRACK_ERROR;
	}
	struct server_stmt *ss;
	if (!make_room(s) || !(ss = server_stmts_add(&s->stmts, d)) || send_parse(s, ss->id, d) < 0 ||
	    !push(s, EXPECT_PARSE, 0, ss->id, u)) {
		undo_free(u);
		return TRACK_ERROR;
	}
	return TRACK_DROP;
}

/* DEALLOCATE of one name, run by a simple Query or by Execute: it acts on
 * the client's own statements, never on sluice's or another client's.
 * PostgreSQL runs the DEALLOCATE of sluice's copy in the client's place
 * (so an aborted transaction, an error earlier in the batch and the
 * pipeline's state are all its own); only a lone simple query for a
 * statement the server does not hold is answered by sluice. */
static int deallocate_own(struct pg_client *c, struct pg_server *s, const char *name, bool query)
{
	struct client_stmt *cs = client_stmts_find(&c->stmts, name);
	if (!cs && !is_internal_name(name))
		return TRACK_FORWARD; /* an SQL-level statement, or PostgreSQL's 26000 */
	if (c->sock.fwd)
		return TRACK_FLUSH_FIRST;
	if (!cs) /* sluice's name: not the client's to see */
		return fail_with(c, s, query, "26000", "prepared statement \"%.120s\" does not exist", name);
	struct server_stmt *ss = server_stmts_find(&s->stmts, &cs->def);
	if (ss && prepared_in_doubt(s, ss->id))
		return wait_for_answers(c, s);
	bool lone = query && !s->client_mid_batch;
	if (lone && !ss) {
		if (!status_known(s))
			return s->outstanding || s->internal ? wait_for_answers(c, s) : TRACK_FORWARD;
	}
	uint32_t id = ss || !lone ? ensure_on_server(s, &cs->def) : 0;
	if (id == UINT32_MAX)
		return wait_for_answers(c, s);
	struct track_undo *u = undo_new(), *rec = u; /* rec: the entry's, once pushed */
	if (!u)
		return TRACK_ERROR;
	char sql[48];
	snprintf(sql, sizeof(sql), "DEALLOCATE sluice_%u", id);
	int rc = 0;
	if (!id && !lone) {
		rc = -ENOMEM;
	} else if (query && id) {
		rc = pg_fe_query(&s->sock.wbuf, sql);
	} else if (id) {
		/* Execute: PostgreSQL runs a portal of its own for it. */
		uint32_t tmp = ++s->stmts.next_id;
		char tname[24];
		snprintf(tname, sizeof(tname), "sluice_%u", tmp);
		struct pg_builder b;
		if (pstmt_build_parse_as(&s->sock.wbuf, tname, sql, &(struct pstmt_def){ 0 }) < 0)
			rc = -ENOMEM;
		pg_build_init(&b, &s->sock.wbuf);
		pg_build_begin(&b, 'B');
		pg_build_str(&b, tname);
		pg_build_str(&b, tname);
		pg_build_u16(&b, 0);
		pg_build_u16(&b, 0);
		pg_build_u16(&b, 0);
		pg_build_end(&b);
		pg_build_begin(&b, 'E');
		pg_build_str(&b, tname);
		pg_build_u32(&b, 0);
		pg_build_end(&b);
		pg_build_begin(&b, 'C');
		pg_build_u8(&b, 'P');
		pg_build_str(&b, tname);
		pg_build_end(&b);
		if (rc < 0 || pg_build_done(&b) < 0 || pstmt_build_close(&s->sock.wbuf, tmp) < 0 ||
		    !push(s, EXPECT_PARSE_OWN, 0, 0, NULL) || !push(s, EXPECT_BIND, EXPECT_F_OWN, 0, NULL) ||
		    !push(s, EXPECT_EXECUTE, 0, 0, u) || !push(s, EXPECT_CLOSE_OWN, 0, 0, NULL) ||
		    !push(s, EXPECT_CLOSE_OWN, 0, 0, NULL))
			rc = -ENOMEM;
	}
	/* Nothing of it on the server, nothing else in flight: the answer
	 * to a lone query is sluice's to give. */
	if (rc == 0 && query && !push_query(c, s, id ? EXPECT_QUERY : SYNTH_COMPLETE, id ? 0 : EXPECT_F_READY, &u))
		rc = -ENOMEM;
	if (rc < 0) {
		undo_free(u);
		return TRACK_ERROR;
	}
	if (id)
		server_stmts_remove_id(&s->stmts, id);
	client_stmts_remove(&c->stmts, name, &rec->removed);
	rec->removed_saved = true;
	c->batch_changed_names = true;
	if (query && id) {
		/* Whether PostgreSQL ran it (not in an aborted transaction)
		 * decides what the client's next use of the name means. */
		expect_at(&s->expect, s->expect.len - 1)->flags |= EXPECT_F_RESUME;
		c->hold_for_sync = true;
	}
	return query ? TRACK_DROP_QUERY : TRACK_DROP;
}

/* DEALLOCATE ALL / DISCARD ALL takes the client's statements (kept in u,
 * so a statement that fails or is skipped gives them back) and all of
 * sluice's on the server. In an extended batch whatever comes after it
 * prepares again, under new names, whether or not it runs (forget_now).
 * A simple Query holds the client until its answer (hold_for_sync): the
 * server's statements are forgotten only if it ran, so that in the
 * transaction a failed DISCARD ALL aborts, the client's statements still
 * answer Describe as PostgreSQL's do, without a Parse that would fail. */
static void take_all_stmts(struct pg_client *c, struct pg_server *s, struct track_undo *u, bool forget_now)
{
	u->all = c->stmts;
	u->all_saved = true;
	memset(&c->stmts, 0, sizeof(c->stmts));
	c->batch_changed_names = true;
	if (forget_now)
		track_server_forget(s);
	else
		u->forget_server = true;
}

static int on_query(struct pg_client *c, struct pg_server *s, const struct pg_msg *m)
{
	struct sql_info *si = NULL;
	if (m->len <= QUERY_INSPECT_MAX && m->body_len && m->body[m->body_len - 1] == '\0' &&
	    sql_inspect_if_needed((const char *)m->body, m->body_len - 1, &si) < 0)
		return TRACK_ERROR;
	if (si && (si->flags & SQL_F_DEALLOCATE) && track_renames(c->pool)) {
		int rc = deallocate_own(c, s, si->name, true);
		if (rc != TRACK_FORWARD) {
			sql_info_put(si);
			return rc;
		}
	}
	if (si && (si->flags & SQL_F_EXECUTE) && is_internal_name(si->name) && !c->pinned) {
		/* sluice's statements are not the client's to run (a pinned
		 * client may have PREPAREd one of that name itself). */
		int rc = fail_with(c, s, true, "26000", "prepared statement \"%.120s\" does not exist", si->name);
		sql_info_put(si);
		return rc;
	}
	note_effects(c, s, si);
	struct track_undo *u = NULL;
	if (si) {
		if (!(u = undo_new())) {
			sql_info_put(si);
			return TRACK_ERROR;
		}
		u->info = si;
		if (si->flags & SQL_F_DEALLOCATE_ALL)
			take_all_stmts(c, s, u, false);
	}
	if (!push_query(c, s, EXPECT_QUERY, 0, &u)) {
		undo_free(u);
		return TRACK_ERROR;
	}
	if (si && (si->flags & SQL_F_DEALLOCATE_ALL)) {
		/* Whether it ran (it cannot in a transaction block or a
		 * pipeline) decides what the client's next Parse means. */
		expect_at(&s->expect, s->expect.len - 1)->flags |= EXPECT_F_RESUME;
		c->hold_for_sync = true;
	}
	return TRACK_FORWARD;
}

/* An unnamed Parse: forwarded; the client's unnamed statement changes. */
static int parse_unnamed(struct pg_client *c, struct pg_server *s, struct pstmt_def *def, struct sql_info *si)
{
	struct track_undo *u = undo_new();
	struct unnamed_stmt *n = u ? calloc(1, sizeof(*n)) : NULL;
	if (!n)
		goto fail;
	n->def = *def;
	n->info = si;
	memset(def, 0, sizeof(*def));
	si = NULL;
	uint32_t gen = take_unnamed(c, u, n);
	s->unnamed_owner = c->id;
	s->unnamed_gen = gen;
	if (!push_gen(s, EXPECT_PARSE, EXPECT_F_UNNAMED, 0, u, gen)) {
		undo_free(u);
		return TRACK_ERROR;
	}
	return TRACK_FORWARD;
fail:
	undo_free(u);
	pstmt_def_free(def);
	sql_info_put(si);
	return TRACK_ERROR;
}

static int on_parse(struct pg_client *c, struct pg_server *s, const struct pg_msg *m)
{
	const char *name;
	struct pstmt_def def;
	if (pstmt_parse_msg(m->body, m->body_len, &name, &def) < 0)
		return TRACK_ERROR;
	struct sql_info *si = NULL;
	if (sql_inspect_if_needed(def.query, strlen(def.query), &si) < 0) {
		pstmt_def_free(&def);
		return TRACK_ERROR;
	}
	note_effects(c, s, si);
	if (!*name)
		return parse_unnamed(c, s, &def, si);
	if (!track_renames(c->pool)) {
		pstmt_def_free(&def);
		sql_info_put(si);
		return push(s, EXPECT_PARSE, 0, 0, NULL) ? TRACK_FORWARD : TRACK_ERROR;
	}
	stats_add(&pool_stats(c->pool, c->worker)->client_parses, 1); /* SHOW STATS client_parse_count */
	return parse_named(c, s, name, &def, si);
}

/* Bind or Describe of the unnamed statement: it must be the client's own.
 * PostgreSQL keeps it across transactions, so the server may hold
 * another client's, or none. */
/* Is a change of the unnamed statement in a batch already closed by Sync
 * still unanswered? Whether it happened decides this client's next use of
 * the statement. */
static bool unnamed_change_in_flight(struct pg_server *s)
{
	uint32_t last_sync = 0;
	for (uint32_t i = s->expect.len; i-- > 0;) {
		if (expect_at(&s->expect, i)->kind == EXPECT_SYNC) {
			last_sync = i;
			break;
		}
	}
	for (uint32_t i = 0; i < last_sync; i++) {
		struct expect *e = expect_at(&s->expect, i);
		struct track_undo *u = e->arg;
		if (u && u->unnamed_saved)
			return true;
	}
	return false;
}

static int use_unnamed(struct pg_client *c, struct pg_server *s, int kind)
{
	if (unnamed_change_in_flight(s))
		return wait_for_answers(c, s);
	if (s->unnamed_owner == c->id && s->unnamed_gen == c->unnamed_gen)
		return push(s, kind, 0, 0, NULL) ? TRACK_FORWARD : TRACK_ERROR;
	if (!c->unnamed)
		return fail_with(c, s, false, "26000", "%sunnamed prepared statement does not exist", "");
	if (c->sock.fwd)
		return TRACK_FLUSH_FIRST;
	if (pstmt_build_parse_as(&s->sock.wbuf, "", c->unnamed->def.query, &c->unnamed->def) < 0 ||
	    !push(s, EXPECT_PARSE_OWN, EXPECT_F_UNNAMED, 0, NULL))
		return TRACK_ERROR;
	s->unnamed_owner = c->id;
	s->unnamed_gen = c->unnamed_gen;
	return push(s, kind, 0, 0, NULL) ? TRACK_FORWARD : TRACK_ERROR;
}

static struct portal_info *portal_find(struct pg_client *c, const char *name)
{
	for (uint8_t i = 0; i < c->portals.n; i++)
		if (strcmp(c->portals.v[i].name, name) == 0)
			return &c->portals.v[i];
	return NULL;
}



/* Remember what the statement behind a portal does (Bind). */
static void bind_portal(struct pg_client *c, struct pg_server *s, const uint8_t *body, struct sql_info *si)
{
	const char *portal = (const char *)body;
	portal_forget(c, portal);
	if (!si)
		return;
	if (!c->portals.v && !(c->portals.v = calloc(TRACK_MAX_PORTALS, sizeof(*c->portals.v))))
		goto unsure;
	if (c->portals.n == TRACK_MAX_PORTALS)
		goto unsure;
	char *name = strdup(portal);
	if (!name)
		goto unsure;
	c->portals.v[c->portals.n++] = (struct portal_info){ .name = name, .info = sql_info_get(si), .batch = c->batch };
	return;
unsure:
	/* Cannot follow what this portal will do: keep the server. */
	c->pinned = s->pinned = true;
}

static int on_bind_or_describe(struct pg_client *c, struct pg_server *s, const struct pg_msg *m)
{
	const char *stmt;
	if (m->type == 'B') {
		stmt = pstmt_bind_stmt_name(m->body, m->body_len);
	} else {
		if (m->body_len < 2 || m->body[m->body_len - 1] != '\0')
			return TRACK_ERROR;
		if (m->body[0] != 'S')
			return push(s, EXPECT_DESCRIBE, 0, 0, NULL) ? TRACK_FORWARD : TRACK_ERROR;
		stmt = (const char *)m->body + 1;
	}
	if (!stmt)
		return TRACK_ERROR;
	int kind = m->type == 'B' ? EXPECT_BIND : EXPECT_DESCRIBE;
	if (!*stmt) {
		int rc = use_unnamed(c, s, kind);
		if (m->type == 'B' && (rc == TRACK_FORWARD || rc == TRACK_DROP) && !c->skip_until_sync)
			bind_portal(c, s, m->body, c->unnamed ? c->unnamed->info : NULL);
		return rc;
	}
	if (!track_renames(c->pool))
		return push(s, kind, 0, 0, NULL) ? TRACK_FORWARD : TRACK_ERROR;
	if (c->sock.fwd)
		return TRACK_FLUSH_FIRST;
	struct client_stmt *cs = client_stmts_find(&c->stmts, stmt);
	if (!cs)
		return fail_with(c, s, false, "26000", "prepared statement \"%.120s\" does not exist", stmt);
	bool id_was_cached = server_stmts_find(&s->stmts, &cs->def) != NULL;
	uint32_t id = ensure_on_server(s, &cs->def);
	if (!id)
		return TRACK_ERROR;
	if (id == UINT32_MAX)
		return wait_for_answers(c, s);
	int rc = m->type == 'B' ? pstmt_build_bind(&s->sock.wbuf, id, m->body, m->body_len)
				: pstmt_build_describe(&s->sock.wbuf, id);
	if (rc < 0)
		return TRACK_ERROR;
	if (m->type == 'B') {
		bind_portal(c, s, m->body, cs->info);
		stats_add(&pool_stats(s->pool, s->worker)->binds, 1); /* SHOW STATS bind_count */
	}
	uint8_t flags = 0;
	if (!s->journal && id_was_cached && batch_untouched(s) && (s->journal = calloc(1, sizeof(*s->journal)))) {
		s->journal->open = true; /* this message is its first (track_journal_note) */
		flags = EXPECT_F_JOURNAL;
	}
	/* The client's name, for an error that names the statement. */
	struct track_undo *u = undo_new();
	if (!u || !(u->name = strdup(stmt)) || !push(s, kind, flags, id, u)) {
		undo_free(u);
		return TRACK_ERROR;
	}
	return TRACK_DROP;
}

static int on_close(struct pg_client *c, struct pg_server *s, const struct pg_msg *m)
{
	if (m->body_len < 2 || m->body[m->body_len - 1] != '\0')
		return TRACK_ERROR;
	const char *name = (const char *)m->body + 1;
	if (m->body[0] == 'S' && !*name) {
		/* Close of the unnamed statement drops whoever's it is. */
		struct track_undo *u = undo_new();
		if (!u)
			return TRACK_ERROR;
		uint32_t gen = take_unnamed(c, u, NULL);
		s->unnamed_owner = 0;
		if (!push_gen(s, EXPECT_CLOSE, 0, 0, u, gen)) {
			undo_free(u);
			return TRACK_ERROR;
		}
		return TRACK_FORWARD;
	}
	if (m->body[0] == 'P')
		portal_forget(c, name);
	if (m->body[0] != 'S' || !track_renames(c->pool))
		return push(s, EXPECT_CLOSE, 0, 0, NULL) ? TRACK_FORWARD : TRACK_ERROR;
	if (c->sock.fwd)
		return TRACK_FLUSH_FIRST;
	/* Only the client's view changes; the server keeps its copy cached.
	 * The server still gets a Close, of a name that never exists, so
	 * the answer comes from PostgreSQL in its place. */
	struct track_undo *u = undo_new();
	if (!u)
		return TRACK_ERROR;
	u->removed_saved = client_stmts_remove(&c->stmts, name, &u->removed);
	c->batch_changed_names = true;
	if (pstmt_build_close(&s->sock.wbuf, 0) < 0 || !push(s, EXPECT_CLOSE, 0, 0, u)) {
		undo_free(u);
		return TRACK_ERROR;
	}
	return TRACK_DROP;
}

static int on_execute(struct pg_client *c, struct pg_server *s, const struct pg_msg *m)
{
	/* A malformed Execute goes on: PostgreSQL answers it. */
	bool named = memchr(m->body, '\0', m->body_len) != NULL;
	struct portal_info *p = named ? portal_find(c, (const char *)m->body) : NULL;
	struct sql_info *si = p ? p->info : NULL;
	if (si && (si->flags & SQL_F_DEALLOCATE) && track_renames(c->pool)) {
		/* sluice answers in the portal's place: it must surely exist
		 * (bound in this batch, or its transaction surely still open). */
		if (p->batch != c->batch && (s->outstanding || s->internal))
			return c->sock.fwd ? TRACK_FLUSH_FIRST : wait_for_answers(c, s);
		if (p->ran) /* a utility statement's portal runs once */
			return fail_with(c, s, false, "55000", "portal \"%.120s\" cannot be run", p->name);
		int rc = deallocate_own(c, s, si->name, false);
		if (rc == TRACK_DROP)
			p->ran = true;
		if (rc != TRACK_FORWARD)
			return rc;
	}
	struct track_undo *u = NULL;
	if (si && (si->n_changes || (si->flags & SQL_F_DEALLOCATE_ALL))) {
		if (!(u = undo_new()))
			return TRACK_ERROR;
		u->info = sql_info_get(si);
		if (si->flags & SQL_F_DEALLOCATE_ALL)
			take_all_stmts(c, s, u, true);
	}
	if (!push(s, EXPECT_EXECUTE, 0, 0, u)) {
		undo_free(u);
		return TRACK_ERROR;
	}
	return TRACK_FORWARD;
}

int track_client_msg(struct pg_client *c, struct pg_server *s, const struct pg_msg *m)
{
	log_noise("track C-%llu -> S-%llu msg %c len %u qlen %u", (unsigned long long)c->id,
		  (unsigned long long)s->id, m->type, m->len, s->expect.len);
	if (skipping(c) && m->type != 'S')
		return c->sock.fwd ? TRACK_FLUSH_FIRST : TRACK_DROP;
	switch (m->type) {
	case 'P':
		return on_parse(c, s, m);
	case 'B':
	case 'D':
		return on_bind_or_describe(c, s, m);
	case 'C':
		return on_close(c, s, m);
	case 'E':
		return on_execute(c, s, m);
	case 'S': {
		/* Later batches depend on whether this one's Parse/Close really
		 * happened (an error skips them): when it changed names, read on
		 * only after its ReadyForQuery. */
		uint8_t flags = c->batch_changed_names ? EXPECT_F_RESUME : 0;
		c->hold_for_sync = c->batch_changed_names;
		c->skip_until_sync = c->batch_changed_names = false;
		s->skipping = false;
		return push(s, EXPECT_SYNC, flags, c->batch++, NULL) ? TRACK_FORWARD : TRACK_ERROR;
	}
	case 'Q':
		return on_query(c, s, m);
	case 'F':
		return push(s, EXPECT_QUERY, 0, c->batch++, NULL) ? TRACK_FORWARD : TRACK_ERROR;
	default:
		return TRACK_FORWARD; /* Flush, COPY data: no answer of their own */
	}
}

/* ---- server direction ---- */

int track_emit(struct pg_server *s)
{
	struct pg_client *c = s->client;
	while (!expect_empty(&s->expect)) {
		struct expect *e = expect_head(&s->expect);
		if (e->kind < SYNTH_PARSE_DONE)
			break;
		if (s->sock.fwd)
			return TRACK_FLUSH_FIRST; /* earlier answers go first */
		struct iobuf *out = &c->sock.wbuf;
		switch (e->kind) {
		case SYNTH_PARSE_DONE:
			pg_be_empty(out, '1');
			break;
		case SYNTH_COMPLETE: {
			pg_be_complete(out, "DEALLOCATE");
			if (!(e->flags & EXPECT_F_READY))
				break;
			pg_be_ready(out, s->tx_status);
			if (s->tx_status == 'I')
				portals_end(c, e->id);
			if (s->outstanding > 0)
				s->outstanding--;
			s->last_was_ready = true;
			if (e->flags & EXPECT_F_RESUME)
				s->resume_client = true;
			break;
		}
		}
		finish_entry(s, e, ENTRY_DONE);
		expect_pop(&s->expect);
	}
	return TRACK_FORWARD;
}

/* The client's name for the server statement e names (the client
 * statement with the same text), or NULL. */
static const char *client_name_of(struct pg_server *s, const struct expect *e)
{
	const struct track_undo *named = e->arg;
	if (named && named->name && (e->kind == EXPECT_BIND || e->kind == EXPECT_DESCRIBE))
		return named->name;
	if (!s->client || !e->id)
		return NULL;
	struct server_stmt *ss = server_stmts_find_id(&s->stmts, e->id);
	if (!ss)
		return NULL;
	const char *name = client_stmts_name_of(&s->client->stmts, &ss->def);
	/* A Close or DEALLOCATE read after it may have taken the name out
	 * already: it is in that message's undo record. */
	for (uint32_t i = 1; !name && i < s->expect.len; i++) {
		struct expect *later = expect_at(&s->expect, i);
		struct track_undo *u = later->arg;
		if (u && u->removed_saved && pstmt_def_equal(&u->removed.def, &ss->def))
			name = u->removed.name;
		else if (u && u->all_saved)
			name = client_stmts_name_of(&u->all, &ss->def);
	}
	return name;
}

/* Replace every "sluice_<id>" in the fields of ErrorResponse m by the
 * client's "name" and write the result to the client. */
static int rename_in_error(struct pg_server *s, const struct pg_msg *m, uint32_t id, const char *name)
{
	char ours[32];
	int ol = snprintf(ours, sizeof(ours), "\"sluice_%u\"", id);
	struct pg_builder b;
	pg_build_init(&b, &s->client->sock.wbuf);
	pg_build_begin(&b, 'E');
	const uint8_t *p = m->body, *end = m->body + m->body_len;
	while (p < end && *p) {
		const uint8_t *v = p + 1, *nul = memchr(v, '\0', (size_t)(end - v));
		if (!nul)
			break;
		pg_build_u8(&b, *p);
		const char *t = (const char *)v;
		for (const char *hit; (hit = strstr(t, ours)) != NULL; t = hit + ol) {
			pg_build_bytes(&b, t, (size_t)(hit - t));
			pg_build_u8(&b, '"');
			pg_build_bytes(&b, name, strlen(name));
			pg_build_u8(&b, '"');
		}
		pg_build_str(&b, t);
		p = nul + 1;
	}
	pg_build_u8(&b, 0);
	pg_build_end(&b);
	return pg_build_done(&b);
}

/* Does an ErrorResponse to e name one of sluice's statements in the
 * client's place (a Bind's parameter count, a lost statement)? Then it
 * must be read whole and renamed. */
static bool error_needs_rename(const struct expect *e)
{
	return e->id && (e->kind == EXPECT_BIND || e->kind == EXPECT_DESCRIBE || e->kind == EXPECT_PARSE_OWN);
}

bool track_server_wants_whole(struct pg_server *s, const struct pg_msg *m)
{
	if (m->len > QUERY_INSPECT_MAX)
		return false;
	switch (m->type) {
	case '1': case '3': case 'Z': case 'C':
		return true; /* small */
	case 'E':
		return !expect_empty(&s->expect) && (error_needs_rename(expect_head(&s->expect)) ||
						     (expect_head(&s->expect)->flags & EXPECT_F_FAIL));
	case 'D':
		return !expect_empty(&s->expect) && expect_head(&s->expect)->kind == EXPECT_CHECK;
	default:
		return false;
	}
}

static void check_answer(struct pg_server *s, const struct expect *e, const struct pg_msg *m);

/* sluice's own error for an entry sent to fail (F_FAIL), to the client. */
static int emit_failure(struct pg_server *s, const struct expect *e)
{
	const char *err = ((const struct track_undo *)e->arg)->error;
	return pg_be_error(&s->client->sock.wbuf, "ERROR", err, err + 8) < 0 ? TRACK_ERROR : TRACK_DROP;
}

/* An answer to a message sluice sent to fail on purpose. */
static int failure_answer(struct pg_server *s, struct expect *e, const struct pg_msg *m)
{
	if (s->sock.fwd)
		return TRACK_FLUSH_FIRST; /* what precedes it goes first */
	if (m->type == 'E') {
		struct pg_error_fields f;
		pg_be_error_parse(m->body, m->body_len, &f);
		/* Failed as planned: the client sees sluice's error. Any other
		 * error (25P02 in an aborted transaction) is PostgreSQL's
		 * answer to the client's message too, and stands. */
		int action = strcmp(f.code, "26000") == 0 ? emit_failure(s, e) : TRACK_FORWARD;
		if (s->pending)
			s->pending->failed = true;
		if (e->kind == EXPECT_QUERY)
			e->flags |= EXPECT_F_GOT_ERROR;
		else
			fail_batch(s);
		return action;
	}
	if (e->kind == EXPECT_QUERY && m->type == 'Z') {
		/* sluice_0 existed after all (someone prepared it): the answer
		 * is still sluice's error. */
		if (!(e->flags & EXPECT_F_GOT_ERROR) && emit_failure(s, e) == TRACK_ERROR)
			return TRACK_ERROR;
		return TRACK_FORWARD; /* the Z is matched by the caller */
	}
	if (e->kind == EXPECT_DESCRIBE && (m->type == 'T' || m->type == 'n')) {
		int rc = emit_failure(s, e);
		if (s->client)
			s->client->skip_until_sync = true;
		finish_entry(s, e, ENTRY_DONE);
		expect_pop(&s->expect);
		return rc;
	}
	return TRACK_DROP; /* the rest of an unexpected success */
}

int track_server_msg(struct pg_server *s, const struct pg_msg *m)
{
	log_noise("track S-%llu msg %c len %u qlen %u head %d", (unsigned long long)s->id, m->type, m->len,
		  s->expect.len, s->expect.len ? expect_head(&s->expect)->kind : -1);
	/* sluice's own answers at the head of the queue answer requests sent
	 * before anything the server is answering now: they go first, also
	 * before a Notice (a COMMIT's "no transaction in progress" after a
	 * Parse sluice answered itself). */
	if (track_emit(s) == TRACK_FLUSH_FIRST)
		return TRACK_FLUSH_FIRST;
	if (m->type == 'N' || m->type == 'S' || m->type == 'A')
		return TRACK_FORWARD; /* asynchronous: belong to no request */
	if (expect_empty(&s->expect))
		return TRACK_FORWARD;
	struct expect *e = expect_head(&s->expect);
	if (e->kind == EXPECT_CHECK) {
		check_answer(s, e, m);
		if (m->type == 'Z') {
			finish_entry(s, e, ENTRY_DONE);
			expect_pop(&s->expect);
		}
		return TRACK_DROP;
	}
	int action = TRACK_FORWARD;
	if (e->flags & EXPECT_F_FAIL) {
		action = failure_answer(s, e, m);
		if (action != TRACK_FORWARD || m->type != 'Z')
			return action;
	}
	bool done = false;
	switch (m->type) {
	case '1':
		done = e->kind == EXPECT_PARSE || e->kind == EXPECT_PARSE_OWN;
		if (e->kind == EXPECT_PARSE_OWN || (e->flags & EXPECT_F_PROBE))
			action = TRACK_DROP;
		break;
	case '2':
		done = e->kind == EXPECT_BIND;
		if (done && (e->flags & EXPECT_F_OWN))
			action = TRACK_DROP;
		break;
	case '3':
		done = e->kind == EXPECT_CLOSE || e->kind == EXPECT_CLOSE_OWN;
		if (e->kind == EXPECT_CLOSE_OWN)
			action = TRACK_DROP;
		break;
	case 'T':
	case 'n':
		done = e->kind == EXPECT_DESCRIBE;
		break;
	case 'C':
		pending_on_complete(s, m);
		if (e->kind == EXPECT_QUERY) {
			struct track_undo *u = e->arg;
			if (u && u->info)
				pending_add(s, u->info, e->done);
			if (e->done < UINT16_MAX)
				e->done++;
		}
		done = e->kind == EXPECT_EXECUTE;
		break;
	case 'I':
	case 's':
		done = e->kind == EXPECT_EXECUTE;
		break;
	case 'Z': {
		done = e->kind == EXPECT_SYNC || e->kind == EXPECT_QUERY;
		if (!done)
			break;
		if (e->flags & EXPECT_F_OWN) { /* the Sync of a batch sent again */
			finish_entry(s, e, ENTRY_DONE);
			expect_pop(&s->expect);
			return TRACK_DROP;
		}
		if (s->journal && !s->journal->open)
			journal_drop(s); /* its batch is over */
		if (e->flags & EXPECT_F_RESUME)
			s->resume_client = true;
		char status = m->body_len ? (char)m->body[0] : 'I';
		if (status == 'I' && s->client)
			portals_end(s->client, e->id);
		struct track_undo *u = e->arg;
		if (e->kind == EXPECT_QUERY && (e->flags & EXPECT_F_GOT_ERROR) && u && u->info &&
		    (u->info->flags & SQL_F_TX_CONTROL) && u->info->n_changes) {
			/* SETs and COMMITs in one failed query: which of them
			 * stuck is not worth guessing. */
			s->pinned = true;
			if (s->client)
				s->client->pinned = true;
		}
		pending_on_ready(s, status);
		break;
	}
	case 'E':
		if (s->pending)
			s->pending->failed = true;
		if (e->kind == EXPECT_QUERY || e->kind == EXPECT_SYNC) {
			e->flags |= EXPECT_F_GOT_ERROR;
			break; /* ReadyForQuery follows */
		}
		if (e->flags & EXPECT_F_JOURNAL) {
			int healed = heal_lost_statement(s, m);
			if (healed)
				return healed > 0 ? TRACK_DROP : TRACK_ERROR; /* the batch goes again */
		}
		if (error_needs_rename(e) && m->len - 5 == m->body_len) {
			const char *name = client_name_of(s, e);
			if (name) {
				if (s->sock.fwd)
					return TRACK_FLUSH_FIRST;
				if (rename_in_error(s, m, e->id, name) < 0)
					return TRACK_ERROR;
				action = TRACK_DROP;
			}
		}
		fail_batch(s);
		return action;
	default:
		break;
	}
	if (action == TRACK_DROP && s->sock.fwd)
		return TRACK_FLUSH_FIRST;
	if (done) {
		finish_entry(s, e, ENTRY_DONE);
		expect_pop(&s->expect);
	}
	return action;
}

/* ---- COPY FROM STDIN (copy_watch.c) ---- */

static bool is_region_sync(const struct expect *e)
{
	return e->kind == EXPECT_SYNC && !(e->flags & EXPECT_F_OWN);
}

bool track_copy_began(struct pg_server *s, uint32_t region)
{
	struct expect_queue *q = &s->expect;
	if (q->len < 1 + region)
		return false;
	uint8_t head = expect_head(q)->kind;
	if (head != EXPECT_EXECUTE && head != EXPECT_QUERY)
		return false;
	for (uint32_t i = 1; i <= region; i++)
		if (!is_region_sync(expect_at(q, i)))
			return false;
	if (s->client && s->client->hold_for_sync)
		s->resume_client = true;
	return true;
}

bool track_copy_drop_syncs(struct pg_server *s, uint32_t at, uint32_t n)
{
	struct expect_queue *q = &s->expect;
	if (q->len < at + n)
		return false;
	for (uint32_t i = 0; i < n; i++) {
		struct expect *e = expect_at(q, at);
		if (!is_region_sync(e))
			return false;
		if (e->flags & EXPECT_F_RESUME)
			s->resume_client = true;
		finish_entry(s, e, ENTRY_DONE);
		expect_remove(q, at);
	}
	return true;
}

bool track_answer_due(struct pg_server *s)
{
	return s->tracking && !expect_empty(&s->expect) &&
	       expect_head(&s->expect)->kind >= SYNTH_PARSE_DONE;
}

/* ---- the look at a session after dynamic SQL ---- */

/* What a DO block or procedure may have left in the session that the
 * next client must not find: temporary tables, LISTEN, SQL-level
 * prepared statements, advisory locks, holdable cursors; how many of
 * sluice's own statements are still there; and the settings changed in
 * the session, by name. */
static const char CHECK_SQL[] =
	"SELECT (SELECT count(*) FROM pg_catalog.pg_class WHERE relnamespace = pg_catalog.pg_my_temp_schema())"
	" + (SELECT count(*) FROM pg_catalog.pg_listening_channels())"
	" + (SELECT count(*) FROM pg_catalog.pg_prepared_statements WHERE from_sql)"
	" + (SELECT count(*) FROM pg_catalog.pg_locks WHERE locktype = 'advisory'"
	" AND pid = pg_catalog.pg_backend_pid())"
	" + (SELECT count(*) FROM pg_catalog.pg_cursors WHERE is_holdable),"
	" (SELECT count(*) FROM pg_catalog.pg_prepared_statements WHERE NOT from_sql),"
	" (SELECT pg_catalog.string_agg(name, ',') FROM pg_catalog.pg_settings WHERE source = 'session')";

/* bpf_bypass: whether the unnamed Parse the kernel carried worked is not
 * known (an error came in its batch): the server knows. Ask it, with a
 * Describe of the unnamed statement and a Sync of sluice's own. */
static bool probe_unnamed(struct pg_server *s)
{
	struct pg_client *c = s->client;
	if (!c || !c->unnamed_doubt)
		return false;
	c->unnamed_doubt = false;
	struct pg_builder b;
	pg_build_init(&b, &s->sock.wbuf);
	pg_build_begin(&b, 'D');
	pg_build_u8(&b, 'S');
	pg_build_str(&b, "");
	pg_build_end(&b);
	pg_build_begin(&b, 'S');
	pg_build_end(&b);
	if (pg_build_done(&b) < 0 || !push(s, EXPECT_CHECK, EXPECT_F_UNNAMED, 0, NULL)) {
		s->dirty = true; /* its bytes may be half written: the server goes */
		s->pinned = true;
		return false;
	}
	return true;
}

bool track_check_before_release(struct pg_server *s)
{
	if (probe_unnamed(s))
		return true;
	if (!s->check_due || s->pinned)
		return false;
	s->check_due = false;
	if (pg_fe_query(&s->sock.wbuf, CHECK_SQL) < 0 || !push(s, EXPECT_CHECK, 0, 0, NULL)) {
		s->pinned = true; /* cannot look: assume the worst */
		return false;
	}
	return true;
}

static bool setting_known(const struct pg_server *s, const char *name, size_t len)
{
	for (int k = 0; k < TRACKED_PARAMS; k++)
		if (strlen(tracked_param_names[k]) == len && strncasecmp(tracked_param_names[k], name, len) == 0)
			return true;
	for (uint16_t i = 0; i < s->vars.n; i++)
		if (strlen(s->vars.v[i].name) == len && strncasecmp(s->vars.v[i].name, name, len) == 0)
			return true;
	return false;
}

static void check_answer(struct pg_server *s, const struct expect *e, const struct pg_msg *m)
{
	if (e->flags & EXPECT_F_UNNAMED) { /* probe_unnamed: there or not */
		struct pg_client *c = s->client;
		if (m->type == 'E' && c) {
			unnamed_free(c->unnamed);
			c->unnamed = NULL;
			c->unnamed_gen++;
			s->unnamed_owner = 0;
		} else if ((m->type == 'T' || m->type == 'n') && c && c->unnamed) {
			s->unnamed_owner = c->id;
			s->unnamed_gen = c->unnamed_gen;
		}
		return;
	}
	if (m->type == 'E') {
		s->pinned = true;
		if (s->client)
			s->client->pinned = true;
		return;
	}
	if (m->type != 'D')
		return;
	struct pg_reader r;
	pg_reader_init(&r, m->body, m->body_len);
	char col[3][24];
	const char *settings = "";
	uint32_t settings_len = 0;
	uint16_t n = pg_read_u16(&r);
	for (int i = 0; i < 3 && i < n; i++) {
		uint32_t len = pg_read_u32(&r);
		const uint8_t *v = len == 0xffffffff ? NULL : pg_read_bytes(&r, len);
		if (r.err)
			break;
		if (i == 2) {
			settings = v ? (const char *)v : "";
			settings_len = v ? len : 0;
		} else {
			snprintf(col[i], sizeof(col[i]), "%.*s", v && len < 20 ? (int)len : 0, v ? (const char *)v : "");
		}
	}
	bool pin = r.err || n != 3 || atol(col[0]) != 0;
	for (uint32_t at = 0; !pin && at < settings_len;) {
		const char *name = settings + at;
		const char *comma = memchr(name, ',', settings_len - at);
		size_t len = comma ? (size_t)(comma - name) : settings_len - at;
		if (!setting_known(s, name, len))
			pin = true;
		at += (uint32_t)len + 1;
	}
	if (!r.err && n == 3 && (uint32_t)atol(col[1]) < s->stmts.n) {
		/* Some of sluice's statements were deallocated: forget them
		 * all (their names are never used again). */
		track_server_forget(s);
	}
	if (pin) {
		log_debug("S-%llu: dynamic SQL left session state behind: pinned", (unsigned long long)s->id);
		s->pinned = true;
		if (s->client)
			s->client->pinned = true;
	}
}

/* ---- lifetime ---- */

void track_server_forget(struct pg_server *s)
{
	server_stmts_clear(&s->stmts);
}

void track_server_free(struct pg_server *s)
{
	while (!expect_empty(&s->expect)) {
		struct expect *e = expect_head(&s->expect);
		undo_free(e->arg);
		expect_pop(&s->expect);
	}
	expect_free(&s->expect);
	s->parses_in_flight = 0;
	journal_drop(s);
	server_stmts_clear(&s->stmts);
	if (s->pending) {
		pending_clear(s);
		free(s->pending->v);
		free(s->pending);
		s->pending = NULL;
	}
	session_vars_clear(&s->vars);
}

void track_client_free(struct pg_client *c)
{
	client_stmts_clear(&c->stmts);
	unnamed_free(c->unnamed);
	c->unnamed = NULL;
	while (c->portals.n)
		portal_forget(c, c->portals.v[0].name);
	free(c->portals.v);
	c->portals.v = NULL;
	session_vars_clear(&c->vars);
}

int track_refuse(struct pg_client *c, struct pg_server *s, const struct pg_msg *m, const char *sqlstate,
		 const char *message)
{
	return fail_with(c, s, m->type == 'Q', sqlstate, "%s", message);
}

int track_local_parse(struct pg_client *c, const struct pg_msg *m)
{
	const char *name;
	struct pstmt_def def;
	if (pstmt_parse_msg(m->body, m->body_len, &name, &def) < 0)
		return -EINVAL;
	if (!*name) {
		pstmt_def_free(&def);
		track_unnamed_from_kernel(c, m->body, m->body_len);
		return c->unnamed ? 0 : -ENOMEM;
	}
	const struct config *cfg = runtime_config();
	struct sql_info *si = NULL;
	if (!track_renames(c->pool) || client_stmts_find(&c->stmts, name) ||
	    (cfg->max_client_prepared_statements && c->stmts.n >= (uint32_t)cfg->max_client_prepared_statements) ||
	    sql_inspect_if_needed(def.query, strlen(def.query), &si) < 0 ||
	    client_stmts_add(&c->stmts, name, &def, si) < 0) {
		pstmt_def_free(&def);
		sql_info_put(si);
		return -EEXIST;
	}
	return 0;
}

uint32_t track_unnamed_from_kernel(struct pg_client *c, const uint8_t *body, uint32_t len)
{
	struct unnamed_stmt *n = body ? calloc(1, sizeof(*n)) : NULL;
	const char *name;
	if (n && (pstmt_parse_msg(body, len, &name, &n->def) < 0 || *name ||
		  sql_inspect_if_needed(n->def.query, strlen(n->def.query), &n->info) < 0)) {
		unnamed_free(n);
		n = NULL; /* cannot happen: the kernel took it whole */
	}
	unnamed_free(c->unnamed);
	c->unnamed = n;
	return ++c->unnamed_gen;
}

void track_account(struct pg_client *c, bool gone)
{
	uint32_t n = gone ? 0 : c->stmts.n;
	size_t bytes = gone ? 0 : c->stmts.bytes;
	if (!c->pool || (n == c->acct_prepared && bytes == c->acct_bytes))
		return;
	__atomic_add_fetch(&c->pool->client_prepared, (int64_t)n - (int64_t)c->acct_prepared, __ATOMIC_RELAXED);
	__atomic_add_fetch(&c->pool->client_prepared_bytes, (int64_t)bytes - (int64_t)c->acct_bytes, __ATOMIC_RELAXED);
	c->acct_prepared = n;
	c->acct_bytes = bytes;
}

size_t track_client_bytes(const struct pg_client *c)
{
	size_t b = c->stmts.bytes + session_vars_bytes(&c->vars);
	if (c->unnamed)
		b += sizeof(*c->unnamed) + strlen(c->unnamed->def.query) + 1 + (size_t)c->unnamed->def.n_types * 4;
	return b;
}
