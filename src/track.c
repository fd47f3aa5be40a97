/*
 * track.c - see track.h. The rules follow PostgreSQL's extended query
 * protocol (docs 55.2.3): each Parse/Bind/Close/Describe/Execute/Sync has
 * one answer (or none, for Flush and COPY data); after an ErrorResponse the
 * server discards messages up to Sync, so their answers never come and
 * sluice undoes its bookkeeping for them.
 */
#include "track.h"
#include "log.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client.h"
#include "config.h"
#include "expect.h"
#include "pool.h"
#include "prepared.h"
#include "runtime.h"
#include "server.h"

#define QUERY_INSPECT_MAX 65536 /* larger simple queries pass unexamined */

bool track_enabled(const struct pool *p)
{
	return p->mode != POOL_MODE_SESSION && runtime_config()->max_prepared_statements > 0;
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

bool track_wants_whole(const struct client *c, const struct pg_msg *m, uint32_t avail)
{
	if (c->skip_until_sync && m->type != 'S')
		return m->len <= QUERY_INSPECT_MAX;
	switch (m->type) {
	case 'B':
		return !bind_of_unnamed(m, avail);
	case 'P': case 'D': case 'C':
		return true;
	case 'Q':
		return m->len <= QUERY_INSPECT_MAX;
	default:
		return false;
	}
}

static bool push(struct server *s, int kind, uint32_t id, void *arg, uint8_t flags)
{
	struct expect e = { .kind = (uint8_t)kind, .flags = flags, .id = id, .arg = arg };
	if (expect_push(&s->expect, e) < 0) {
		free(arg);
		return false;
	}
	return true;
}

/* sluice answers an error here; the client's messages up to Sync are
 * dropped, as PostgreSQL would discard them. */
static int synth_error(struct client *c, struct server *s, const char *code, const char *fmt, const char *name)
{
	char *arg = malloc(8 + 200);
	if (!arg)
		return TRACK_ERROR;
	snprintf(arg, 8, "%s", code);
	snprintf(arg + 8, 200, fmt, name);
	c->skip_until_sync = true;
	return push(s, SYNTH_ERROR, 0, arg, 0) ? TRACK_DROP : TRACK_ERROR;
}

/* Make room in the server cache, evicting the least recently used. */
static bool make_room(struct server *s)
{
	int max = runtime_config()->max_prepared_statements;
	while (s->stmts.n >= (uint32_t)max) {
		struct server_stmt *lru = server_stmts_lru(&s->stmts);
		if (pstmt_build_close(&s->sock.wbuf, lru->id) < 0 || !push(s, EXPECT_CLOSE_OWN, lru->id, NULL, 0))
			return false;
		server_stmts_remove_id(&s->stmts, lru->id);
	}
	return true;
}

/* The server's id for def, preparing it there first when it lacks it
 * (the answer to that Parse is swallowed). 0 on failure. */
static uint32_t ensure_on_server(struct server *s, const struct pstmt_def *def)
{
	struct server_stmt *ss = server_stmts_find(&s->stmts, def);
	if (ss)
		return ss->id;
	if (!make_room(s) || !(ss = server_stmts_add(&s->stmts, def)))
		return 0;
	uint32_t id = ss->id;
	if (pstmt_build_parse(&s->sock.wbuf, id, def) < 0 || !push(s, EXPECT_PARSE_OWN, id, NULL, 0))
		return 0;
	return id;
}

static int classify_sql(struct client *c, const char *sql, size_t len, char *name, size_t namelen);
enum { SQL_OTHER, SQL_CLEARS_ALL, SQL_DEALLOCATE_OWN };

/* An unnamed Parse: forwarded, except DEALLOCATE of one of the client's
 * statements (rewritten to sluice's name on this server) and DISCARD ALL /
 * DEALLOCATE ALL (forwarded; the caches are dropped at the Sync). */
static int unnamed_parse(struct client *c, struct server *s, const struct pg_msg *m, struct pstmt_def *def)
{
	char name[128];
	int kind = classify_sql(c, def->query, strlen(def->query), name, sizeof(name));
	if (kind == SQL_CLEARS_ALL) {
		client_stmts_clear(&c->stmts);
		c->batch_clears_cache = c->batch_changed_names = true;
	} else if (kind == SQL_DEALLOCATE_OWN) {
		if (c->sock.fwd)
			return TRACK_FLUSH_FIRST;
		struct client_stmt *cs = client_stmts_find(&c->stmts, name);
		uint32_t id = ensure_on_server(s, &cs->def);
		if (!id)
			return TRACK_ERROR;
		char sql[40];
		snprintf(sql, sizeof(sql), "DEALLOCATE sluice_%u", id);
		if (pstmt_build_parse_as(&s->sock.wbuf, "", sql, def) < 0)
			return TRACK_ERROR;
		server_stmts_remove_id(&s->stmts, id);
		client_stmts_remove(&c->stmts, name, NULL);
		c->batch_changed_names = true;
		return push(s, EXPECT_PARSE, 0, NULL, 0) ? TRACK_DROP : TRACK_ERROR;
	}
	(void)m;
	return push(s, EXPECT_PARSE, 0, NULL, 0) ? TRACK_FORWARD : TRACK_ERROR;
}

static int on_parse(struct client *c, struct server *s, const struct pg_msg *m)
{
	const char *name;
	struct pstmt_def def;
	if (pstmt_parse_msg(m->body, m->body_len, &name, &def) < 0)
		return TRACK_ERROR;
	if (track_sql_pins(def.query, strlen(def.query)))
		c->pinned = s->pinned = true;
	if (!*name) {
		int rc = unnamed_parse(c, s, m, &def);
		pstmt_def_free(&def);
		return rc;
	}
	if (c->sock.fwd) {
		pstmt_def_free(&def);
		return TRACK_FLUSH_FIRST;
	}
	/* In an aborted transaction PostgreSQL refuses any Parse first. */
	bool aborted = s->tx_status == 'E';
	if (client_stmts_find(&c->stmts, name)) {
		pstmt_def_free(&def);
		if (aborted)
			return synth_error(c, s, "25P02", "%scurrent transaction is aborted, commands ignored until end of transaction block", "");
		return synth_error(c, s, "42P05", "prepared statement \"%.120s\" already exists", name);
	}
	char *undo = strdup(name);
	c->batch_changed_names = true;
	/* Answer ParseComplete ourselves only when PostgreSQL surely would;
	 * in an aborted transaction a real Parse gets the server's own error. */
	struct server_stmt *known = aborted ? NULL : server_stmts_find(&s->stmts, &def);
	uint32_t id = known ? known->id : 0;
	if (!undo || client_stmts_add(&c->stmts, name, &def) < 0) {
		free(undo);
		pstmt_def_free(&def);
		return TRACK_ERROR;
	}
	const struct pstmt_def *d = &client_stmts_find(&c->stmts, name)->def;
	if (id) /* the server has it: answer ParseComplete ourselves */
		return push(s, SYNTH_PARSE_DONE, 0, undo, 0) ? TRACK_DROP : TRACK_ERROR;
	struct server_stmt *ss;
	if (!make_room(s) || !(ss = server_stmts_add(&s->stmts, d))) {
		free(undo);
		return TRACK_ERROR;
	}
	id = ss->id;
	if (pstmt_build_parse(&s->sock.wbuf, id, d) < 0) {
		free(undo);
		return TRACK_ERROR;
	}
	return push(s, EXPECT_PARSE, id, undo, 0) ? TRACK_DROP : TRACK_ERROR;
}

static int on_bind_or_describe(struct client *c, struct server *s, const struct pg_msg *m)
{
	const char *stmt;
	if (m->type == 'B') {
		stmt = pstmt_bind_stmt_name(m->body, m->body_len);
	} else {
		if (m->body_len < 2 || m->body[m->body_len - 1] != '\0')
			return TRACK_ERROR;
		stmt = m->body[0] == 'S' ? (const char *)m->body + 1 : "";
	}
	if (!stmt)
		return TRACK_ERROR;
	int kind = m->type == 'B' ? EXPECT_BIND : EXPECT_DESCRIBE;
	if (!*stmt)
		return push(s, kind, 0, NULL, 0) ? TRACK_FORWARD : TRACK_ERROR;
	if (c->sock.fwd)
		return TRACK_FLUSH_FIRST;
	struct client_stmt *cs = client_stmts_find(&c->stmts, stmt);
	if (!cs)
		return synth_error(c, s, "26000", "prepared statement \"%.120s\" does not exist", stmt);
	uint32_t id = ensure_on_server(s, &cs->def);
	if (!id)
		return TRACK_ERROR;
	int rc = m->type == 'B' ? pstmt_build_bind(&s->sock.wbuf, id, m->body, m->body_len)
				: pstmt_build_describe(&s->sock.wbuf, id);
	if (rc < 0)
		return TRACK_ERROR;
	return push(s, kind, 0, NULL, 0) ? TRACK_DROP : TRACK_ERROR;
}

static int on_close(struct client *c, struct server *s, const struct pg_msg *m)
{
	if (m->body_len < 2 || m->body[m->body_len - 1] != '\0')
		return TRACK_ERROR;
	const char *name = (const char *)m->body + 1;
	if (m->body[0] != 'S' || !*name)
		return push(s, EXPECT_CLOSE, 0, NULL, 0) ? TRACK_FORWARD : TRACK_ERROR;
	if (c->sock.fwd)
		return TRACK_FLUSH_FIRST;
	/* Only the client's view changes; the server keeps its copy cached.
	 * The server still gets a Close, of a name that never exists: it
	 * answers CloseComplete, or 25P02 in an aborted transaction, exactly
	 * as it would have for the client's own name. */
	struct client_stmt *old = calloc(1, sizeof(*old));
	if (!old)
		return TRACK_ERROR;
	if (!client_stmts_remove(&c->stmts, name, old)) {
		free(old);
		old = NULL;
	}
	c->batch_changed_names = true;
	if (pstmt_build_close(&s->sock.wbuf, 0) < 0) {
		if (old) {
			free(old->name);
			pstmt_def_free(&old->def);
			free(old);
		}
		return TRACK_ERROR;
	}
	return push(s, EXPECT_CLOSE, 0, old, 0) ? TRACK_DROP : TRACK_ERROR;
}

/* Next word of SQL (letters, digits, underscore), skipping the rest. */
static const char *next_word(const char *p, const char *end, size_t *len)
{
	while (p < end && !(isalnum((unsigned char)*p) || *p == '_'))
		p++;
	const char *w = p;
	while (p < end && (isalnum((unsigned char)*p) || *p == '_'))
		p++;
	*len = (size_t)(p - w);
	return *len ? w : NULL;
}

static bool word_is(const char *w, size_t len, const char *kw)
{
	return strlen(kw) == len && strncasecmp(w, kw, len) == 0;
}

bool track_sql_pins(const char *sql, size_t len)
{
	const char *p = sql, *end = sql + len;
	size_t wl;
	const char *w;
	bool after_deallocate = false;
	while ((w = next_word(p, end, &wl)) != NULL) {
		p = w + wl;
		/* "DEALLOCATE PREPARE name" ends a statement, it does not make one. */
		bool prepare = word_is(w, wl, "prepare") && !after_deallocate;
		after_deallocate = word_is(w, wl, "deallocate");
		if (word_is(w, wl, "listen") || word_is(w, wl, "temp") || word_is(w, wl, "temporary") ||
		    word_is(w, wl, "hold") || prepare)
			return true;
		if ((wl >= 16 && strncasecmp(w, "pg_advisory_lock", 16) == 0) ||
		    (wl >= 20 && strncasecmp(w, "pg_try_advisory_lock", 20) == 0))
			return true;
	}
	return false;
}

/* Identifier as PostgreSQL reads it: "quoted" kept, otherwise lower case. */
static void sql_ident(const char *w, size_t len, bool quoted, char *out, size_t outlen)
{
	size_t n = len < outlen - 1 ? len : outlen - 1;
	for (size_t i = 0; i < n; i++)
		out[i] = quoted ? w[i] : (char)tolower((unsigned char)w[i]);
	out[n] = '\0';
}

/* What a SQL text does to prepared statements: DISCARD ALL / DEALLOCATE
 * ALL, DEALLOCATE of one of the client's own statements (name filled in),
 * or something else. Only a lone statement is recognised. */
static int classify_sql(struct client *c, const char *sql, size_t len, char *name, size_t namelen)
{
	const char *end = sql + len;
	size_t l1, l2, l3;
	const char *w1 = next_word(sql, end, &l1);
	const char *w2 = w1 ? next_word(w1 + l1, end, &l2) : NULL;
	if (!w2)
		return SQL_OTHER;
	if (word_is(w1, l1, "discard") && word_is(w2, l2, "all"))
		return SQL_CLEARS_ALL;
	if (!word_is(w1, l1, "deallocate"))
		return SQL_OTHER;
	if (word_is(w2, l2, "prepare") && !(w2 = next_word(w2 + l2, end, &l2)))
		return SQL_OTHER;
	if (word_is(w2, l2, "all"))
		return SQL_CLEARS_ALL;
	bool quoted = w2 > sql && w2[-1] == '"';
	sql_ident(w2, l2, quoted, name, namelen);
	const char *rest = w2 + l2 + (quoted ? 1 : 0);
	if (next_word(rest, end, &l3) || strpbrk(rest, "\"'") || !client_stmts_find(&c->stmts, name))
		return SQL_OTHER;
	return SQL_DEALLOCATE_OWN;
}

static int on_query(struct client *c, struct server *s, const struct pg_msg *m)
{
	if (m->len > QUERY_INSPECT_MAX || m->body_len == 0 || m->body[m->body_len - 1] != '\0')
		return push(s, EXPECT_QUERY, 0, NULL, 0) ? TRACK_FORWARD : TRACK_ERROR;
	const char *sql = (const char *)m->body;
	size_t len = m->body_len - 1;
	if (track_sql_pins(sql, len))
		c->pinned = s->pinned = true;
	char name[128];
	switch (classify_sql(c, sql, len, name, sizeof(name))) {
	case SQL_CLEARS_ALL:
		client_stmts_clear(&c->stmts);
		return push(s, EXPECT_QUERY, 0, NULL, EXPECT_F_CLEAR_CACHE) ? TRACK_FORWARD : TRACK_ERROR;
	case SQL_DEALLOCATE_OWN: {
		/* The statement exists only in sluice's view: sluice answers. */
		if (c->sock.fwd)
			return TRACK_FLUSH_FIRST;
		client_stmts_remove(&c->stmts, name, NULL);
		char *tag = strdup("DEALLOCATE");
		return tag && push(s, SYNTH_QUERY_DONE, 0, tag, 0) ? TRACK_DROP_QUERY : TRACK_ERROR;
	}
	default:
		return push(s, EXPECT_QUERY, 0, NULL, 0) ? TRACK_FORWARD : TRACK_ERROR;
	}
}

int track_client_msg(struct client *c, struct server *s, const struct pg_msg *m)
{
	log_noise("track C-%llu -> S-%llu msg %c len %u qlen %u", (unsigned long long)c->id,
		  (unsigned long long)s->id, m->type, m->len, s->expect.len);
	if (c->skip_until_sync && m->type != 'S')
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
		return push(s, EXPECT_EXECUTE, 0, NULL, 0) ? TRACK_FORWARD : TRACK_ERROR;
	case 'S': {
		/* Later batches depend on whether this one's Parse/Close really
		 * happened (an error skips them): when it changed names, read on
		 * only after its ReadyForQuery. */
		uint8_t flags = (c->batch_changed_names ? EXPECT_F_RESUME : 0) |
				(c->batch_clears_cache ? EXPECT_F_CLEAR_CACHE : 0);
		c->hold_for_sync = c->batch_changed_names;
		c->skip_until_sync = c->batch_changed_names = c->batch_clears_cache = false;
		return push(s, EXPECT_SYNC, 0, NULL, flags) ? TRACK_FORWARD : TRACK_ERROR;
	}
	case 'Q':
		return on_query(c, s, m);
	case 'F':
		return push(s, EXPECT_QUERY, 0, NULL, 0) ? TRACK_FORWARD : TRACK_ERROR;
	default:
		return TRACK_FORWARD; /* Flush, COPY data: no answer of their own */
	}
}

/* ---- server direction ---- */

/* An entry PostgreSQL will never answer (skipped after an error), or the
 * queue being dropped: undo what sluice assumed and free its data. */
static void discard_entry(struct server *s, struct expect *e, bool undo)
{
	struct client *c = s->client;
	switch (e->kind) {
	case EXPECT_PARSE:
		if (undo && e->id)
			server_stmts_remove_id(&s->stmts, e->id);
		if (undo && c && e->arg)
			client_stmts_remove(&c->stmts, e->arg, NULL);
		break;
	case EXPECT_PARSE_OWN:
		if (undo)
			server_stmts_remove_id(&s->stmts, e->id);
		break;
	case SYNTH_PARSE_DONE:
		if (undo && c && e->arg)
			client_stmts_remove(&c->stmts, e->arg, NULL);
		break;
	case EXPECT_CLOSE:
	case SYNTH_CLOSE_DONE:
		if (e->arg) {
			struct client_stmt *old = e->arg;
			if (undo && c && !client_stmts_find(&c->stmts, old->name))
				client_stmts_add(&c->stmts, old->name, &old->def);
			free(old->name);
			pstmt_def_free(&old->def);
		}
		break;
	case SYNTH_QUERY_DONE:
		if (undo && s->outstanding > 0)
			s->outstanding--;
		break;
	default:
		break;
	}
	free(e->arg);
	e->arg = NULL;
}

int track_emit(struct server *s)
{
	struct client *c = s->client;
	while (!expect_empty(&s->expect)) {
		struct expect *e = expect_head(&s->expect);
		if (e->kind < SYNTH_PARSE_DONE)
			break;
		if (s->sock.fwd)
			return TRACK_FLUSH_FIRST; /* earlier answers go first */
		struct iobuf *out = &c->sock.wbuf;
		switch (e->kind) {
		case SYNTH_PARSE_DONE:
			iobuf_append(out, "1\0\0\0\4", 5);
			break;
		case SYNTH_CLOSE_DONE:
			iobuf_append(out, "3\0\0\0\4", 5);
			break;
		case SYNTH_ERROR:
			pg_be_error(out, "ERROR", (const char *)e->arg, (const char *)e->arg + 8);
			break;
		case SYNTH_QUERY_DONE: {
			struct pg_builder b;
			pg_build_init(&b, out);
			pg_build_begin(&b, 'C');
			pg_build_str(&b, (const char *)e->arg);
			pg_build_end(&b);
			pg_be_ready(out, s->tx_status);
			if (s->outstanding > 0)
				s->outstanding--;
			s->last_was_ready = true;
			break;
		}
		}
		discard_entry(s, e, false);
		expect_pop(&s->expect);
	}
	return TRACK_FORWARD;
}

int track_server_msg(struct server *s, const struct pg_msg *m)
{
	log_noise("track S-%llu msg %c len %u qlen %u head %d", (unsigned long long)s->id, m->type, m->len,
		  s->expect.len, s->expect.len ? expect_head(&s->expect)->kind : -1);
	if (m->type == 'N' || m->type == 'S' || m->type == 'A')
		return TRACK_FORWARD; /* asynchronous: belong to no request */
	if (track_emit(s) == TRACK_FLUSH_FIRST)
		return TRACK_FLUSH_FIRST;
	if (expect_empty(&s->expect))
		return TRACK_FORWARD;
	struct expect *e = expect_head(&s->expect);
	int action = TRACK_FORWARD;
	bool done = false;
	switch (m->type) {
	case '1':
		done = e->kind == EXPECT_PARSE || e->kind == EXPECT_PARSE_OWN;
		if (e->kind == EXPECT_PARSE_OWN)
			action = TRACK_DROP;
		break;
	case '2':
		done = e->kind == EXPECT_BIND;
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
	case 'I':
	case 's':
		done = e->kind == EXPECT_EXECUTE;
		break;
	case 'Z':
		done = e->kind == EXPECT_SYNC || e->kind == EXPECT_QUERY;
		if (done && (e->flags & EXPECT_F_CLEAR_CACHE))
			track_server_forget(s);
		if (done && (e->flags & EXPECT_F_RESUME))
			s->resume_client = true;
		break;
	case 'E':
		if (e->kind == EXPECT_QUERY || e->kind == EXPECT_SYNC)
			break; /* ReadyForQuery follows */
		/* PostgreSQL now skips everything up to Sync. */
		while (!expect_empty(&s->expect)) {
			e = expect_head(&s->expect);
			if (e->kind == EXPECT_SYNC || e->kind == EXPECT_QUERY)
				break;
			discard_entry(s, e, true);
			expect_pop(&s->expect);
		}
		return TRACK_FORWARD;
	default:
		break;
	}
	if (action == TRACK_DROP && s->sock.fwd)
		return TRACK_FLUSH_FIRST;
	if (done) {
		discard_entry(s, e, false);
		expect_pop(&s->expect);
	}
	return action;
}

bool track_answer_due(struct server *s)
{
	return s->tracking && !expect_empty(&s->expect) &&
	       expect_head(&s->expect)->kind >= SYNTH_PARSE_DONE;
}

void track_server_forget(struct server *s)
{
	server_stmts_clear(&s->stmts);
}

void track_server_free(struct server *s)
{
	while (!expect_empty(&s->expect)) {
		discard_entry(s, expect_head(&s->expect), false);
		expect_pop(&s->expect);
	}
	expect_free(&s->expect);
	server_stmts_clear(&s->stmts);
}
