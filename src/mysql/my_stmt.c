/*
 * my_stmt.c - prepared statements that follow the client from server to
 * server (see my_stmt.h; docs/behaviour.md, "MySQL").
 *
 * A statement is known by its key: the schema it was prepared in, a NUL,
 * and its text (the same text in another schema may name other tables).
 * The client holds its statements under sluice's ids; a server holds the
 * statements its session has, under the server's ids. COM_STMT_EXECUTE,
 * SEND_LONG_DATA, RESET and FETCH have the client's id replaced in place
 * by the server's (both are 4 bytes at the same offset).
 */
#include "my_stmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "my_conn.h"
#include "my_sqlread.h"
#include "runtime.h"
#include "stats.h"
#include "takeover.h"

/* Offsets in COM_STMT_EXECUTE: 0x17, 4 id, 1 flags, 4 iteration count,
 * then (with parameters) the NULL bitmap, new-params-bound flag, types. */
#define EXEC_FLAGS 5
#define EXEC_PARAMS 10

struct my_stmt {
	uint32_t id;               /* sluice's id */
	uint32_t hash;             /* of key */
	uint32_t key_len;
	uint16_t params;
	bool pending;              /* its COM_STMT_PREPARE is not answered yet */
	bool reads_insert_id;      /* its text reads LAST_INSERT_ID() */
	bool reads_only;           /* its text only reads (my_sqlread.h): read_routing */
	uint8_t *types;            /* 2 bytes per parameter, as last bound; NULL = never */
	char key[];                /* schema NUL text */
};

struct my_server_stmt {
	uint32_t server_id;        /* the server's id (0 while pending) */
	uint32_t hash;
	uint32_t key_len;
	uint16_t params;
	bool pending;              /* being prepared: by a client's command or sluice's */
	uint64_t used;             /* my_server_stmts.clock at its last use */
	uint8_t *types;            /* the types the server last got bound; NULL = none */
	char *key;
};

bool my_stmt_enabled(void)
{
	return runtime_config()->max_prepared_statements > 0;
}

static uint32_t key_hash(const char *key, uint32_t len)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (uint32_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)key[i]) * 16777619u;
	return h;
}

/* The text of a key (after the schema and its NUL). */
static const char *key_text(const char *key, uint32_t key_len, uint32_t *text_len)
{
	size_t schema_len = strlen(key);
	*text_len = key_len - (uint32_t)schema_len - 1;
	return key + schema_len + 1;
}

/* ---- a client's table ---- */

static struct my_stmt *client_find(const struct my_stmts *t, uint32_t id)
{
	for (uint32_t i = t->n; i-- > 0;)
		if (t->v[i]->id == id)
			return t->v[i];
	return NULL;
}

static void client_remove(struct my_stmts *t, uint32_t id)
{
	for (uint32_t i = 0; i < t->n; i++) {
		if (t->v[i]->id != id)
			continue;
		t->bytes -= t->v[i]->key_len;
		free(t->v[i]->types);
		free(t->v[i]);
		t->v[i] = t->v[--t->n];
		return;
	}
}

static struct my_stmt *client_add(struct my_stmts *t, const char *schema, const uint8_t *text, uint32_t text_len)
{
	if (t->n == t->cap) {
		uint32_t cap = t->cap ? t->cap * 2 : 4;
		struct my_stmt **v = realloc(t->v, cap * sizeof(*v));
		if (!v)
			return NULL;
		t->v = v;
		t->cap = cap;
	}
	size_t schema_len = strlen(schema);
	uint32_t key_len = (uint32_t)(schema_len + 1 + text_len);
	struct my_stmt *st = calloc(1, sizeof(*st) + key_len);
	if (!st)
		return NULL;
	memcpy(st->key, schema, schema_len + 1);
	memcpy(st->key + schema_len + 1, text, text_len);
	st->key_len = key_len;
	st->hash = key_hash(st->key, key_len);
	st->reads_insert_id = my_screen_insert_id_use((const char *)text, text_len) == 1;
	st->reads_only = my_sql_read_class((const char *)text, text_len) == MY_READ_YES;
	st->id = ++t->next_id ? t->next_id : ++t->next_id; /* never 0 */
	st->pending = true;
	t->v[t->n++] = st;
	t->bytes += key_len;
	return st;
}

void my_stmts_clear(struct my_stmts *t)
{
	for (uint32_t i = 0; i < t->n; i++) {
		free(t->v[i]->types);
		free(t->v[i]);
	}
	free(t->v);
	t->v = NULL;
	t->n = t->cap = 0;
	t->bytes = 0;
}

/* ---- a server's table ---- */

static struct my_server_stmt *server_find(struct my_server_stmts *t, uint32_t hash, const char *key, uint32_t key_len)
{
	for (uint32_t i = 0; i < t->n; i++) {
		struct my_server_stmt *ss = &t->v[i];
		if (ss->hash == hash && ss->key_len == key_len && !ss->pending && memcmp(ss->key, key, key_len) == 0)
			return ss;
	}
	return NULL;
}

static struct my_server_stmt *server_pending(struct my_server_stmts *t)
{
	for (uint32_t i = 0; i < t->n; i++)
		if (t->v[i].pending)
			return &t->v[i];
	return NULL;
}

static void server_drop_at(struct my_server_stmts *t, uint32_t i)
{
	free(t->v[i].key);
	free(t->v[i].types);
	t->v[i] = t->v[--t->n];
}

/* COM_STMT_CLOSE (no answer): sent before whatever follows in wbuf. */
static bool send_close(struct my_server *s, uint32_t server_id)
{
	uint8_t cmd[5] = { MY_COM_STMT_CLOSE };
	my_le32_put(cmd + 1, server_id);
	return my_packet_put(&s->sock.wbuf, 0, cmd, sizeof(cmd)) == 0;
}

/* A pending entry for key, making room by closing the least recently
 * used statement when the session holds max_prepared_statements. */
static struct my_server_stmt *server_add(struct my_server *s, const char *key, uint32_t key_len, uint32_t hash,
					 uint16_t params)
{
	struct my_server_stmts *t = &s->stmts;
	uint32_t max = (uint32_t)runtime_config()->max_prepared_statements;
	while (t->n >= max) {
		uint32_t lru = UINT32_MAX;
		for (uint32_t i = 0; i < t->n; i++)
			if (!t->v[i].pending && (lru == UINT32_MAX || t->v[i].used < t->v[lru].used))
				lru = i;
		if (lru == UINT32_MAX || !send_close(s, t->v[lru].server_id))
			return NULL;
		server_drop_at(t, lru);
	}
	if (t->n == t->cap) {
		uint32_t cap = t->cap ? t->cap * 2 : 4;
		struct my_server_stmt *v = realloc(t->v, cap * sizeof(*v));
		if (!v)
			return NULL;
		t->v = v;
		t->cap = cap;
	}
	char *copy = malloc(key_len);
	if (!copy)
		return NULL;
	memcpy(copy, key, key_len);
	struct my_server_stmt *ss = &t->v[t->n++];
	*ss = (struct my_server_stmt){
		.hash = hash, .key_len = key_len, .params = params, .pending = true, .used = ++t->clock, .key = copy,
	};
	return ss;
}

void my_server_stmts_clear(struct my_server_stmts *t)
{
	for (uint32_t i = 0; i < t->n; i++) {
		free(t->v[i].key);
		free(t->v[i].types);
	}
	free(t->v);
	t->v = NULL;
	t->n = t->cap = 0;
}

/* ---- the client's commands ---- */

/* An ERR as the answer to the command at the cursor (whole), which goes. */
static bool answer_err(struct my_client *c, const struct my_packet *pk, uint16_t code, const char *sqlstate,
		       const char *msg)
{
	pgsock_drop(&c->sock, MY_HEADER_LEN + pk->len);
	my_err_build(&c->sock.wbuf, 1, code, sqlstate, msg);
	return my_client_flush_own(c);
}

static bool unknown_stmt(struct my_client *c, const struct my_packet *pk, uint32_t id, const char *where)
{
	char msg[160];
	snprintf(msg, sizeof(msg), "Unknown prepared statement handler (%u) given to %s", id, where);
	return answer_err(c, pk, 1243, "HY000", msg);
}

static const char *command_name(uint8_t cmd)
{
	switch (cmd) {
	case MY_COM_STMT_EXECUTE: return "mysqld_stmt_execute";
	case MY_COM_STMT_FETCH: return "mysqld_stmt_fetch";
	case MY_COM_STMT_RESET: return "mysqld_stmt_reset";
	default: return "mysqld_stmt_send_long_data";
	}
}

bool my_stmt_command_here(struct my_client *c, const struct my_packet *pk)
{
	uint8_t cmd = pk->payload[0];
	if (cmd == MY_COM_STMT_EXECUTE) {
		/* Its own LAST_INSERT_ID() first, as for a query (my_client.c). */
		struct my_stmt *st = pk->len >= 5 ? client_find(&c->stmts, my_le32_get(pk->payload + 1)) : NULL;
		if (st && st->reads_insert_id)
			c->reads_insert_id = true;
		return false;
	}
	if (cmd == MY_COM_STMT_CLOSE) {
		/* No answer; the servers keep their statement for whoever
		 * prepares the same text next. */
		if (pk->len >= 5)
			client_remove(&c->stmts, my_le32_get(pk->payload + 1));
		pgsock_drop(&c->sock, MY_HEADER_LEN + pk->len);
		return true;
	}
	if (c->server || (cmd != MY_COM_STMT_RESET && cmd != MY_COM_STMT_FETCH))
		return false;
	uint32_t id = pk->len >= 5 ? my_le32_get(pk->payload + 1) : 0;
	if (!client_find(&c->stmts, id)) {
		unknown_stmt(c, pk, id, command_name(cmd));
		return true;
	}
	if (cmd == MY_COM_STMT_FETCH) {
		/* A cursor pins its client: without a server there is none. */
		answer_err(c, pk, 1421, "HY000", "The statement has no open cursor.");
		return true;
	}
	/* Nothing of it lives on any server now: reset is a no-op. */
	pgsock_drop(&c->sock, MY_HEADER_LEN + pk->len);
	my_ok_build(&c->sock.wbuf, 1, 0, 0, c->autocommit_off ? 0 : MY_STATUS_AUTOCOMMIT, 0);
	my_client_flush_own(c);
	return true;
}

/* sluice's own COM_STMT_PREPARE of st on s, in st's schema (the session
 * goes there and back when the client has moved on since). */
static bool prepare_on_server(struct my_client *c, struct my_server *s, const struct my_stmt *st)
{
	uint32_t text_len;
	const char *text = key_text(st->key, st->key_len, &text_len);
	bool elsewhere = strcmp(st->key, s->schema) != 0;
	if (elsewhere && !my_server_send_internal(s, MY_INTERNAL_STMT_SCHEMA, MY_COM_INIT_DB, st->key, strlen(st->key)))
		return false;
	if (!server_add(s, st->key, st->key_len, st->hash, st->params))
		return false;
	if (!my_server_send_internal(s, MY_INTERNAL_PREPARE, MY_COM_STMT_PREPARE, text, text_len))
		return false;
	if (elsewhere) {
		snprintf(s->want_schema, sizeof(s->want_schema), "%s", c->schema);
		if (!my_server_send_internal(s, MY_INTERNAL_INIT_DB, MY_COM_INIT_DB, c->schema, strlen(c->schema)))
			return false;
	}
	my_server_send_pending(s);
	return true;
}

/* COM_STMT_EXECUTE without the parameter types, to a server statement
 * that has other ones: send it with st's types added (flag set to 1).
 * prefix is where the flag is. */
static enum my_stmt_verdict execute_with_types(struct my_client *c, struct my_server *s, const struct my_packet *pk,
					       uint32_t full, uint32_t flag_at, const struct my_stmt *st)
{
	uint32_t types_len = 2u * st->params;
	if (full + types_len >= MY_MAX_PAYLOAD) {
		my_client_fail(c, "08S01", "prepared statement execute too long to add its parameter types to");
		return MY_STMT_GONE;
	}
	struct iobuf *out = &s->sock.wbuf;
	int off = my_begin(out, pk->seq);
	bool whole = pk->len == full;
	uint32_t head = flag_at + 1; /* bytes of the client's packet up to the flag */
	uint32_t tail = whole ? full - head : 0;
	if (off < 0 || iobuf_append(out, pk->payload, flag_at) < 0 || my_put_u8(out, 1) < 0 ||
	    iobuf_append(out, st->types, types_len) < 0 || iobuf_append(out, pk->payload + head, tail) < 0) {
		my_client_fail(c, "53200", "out of memory");
		return MY_STMT_GONE;
	}
	/* my_end computes the length from what was appended; for a packet
	 * whose rest follows from the client it must say the full one. */
	if (my_end(out, off) < 0) {
		my_client_fail(c, "53200", "out of memory");
		return MY_STMT_GONE;
	}
	if (!whole) {
		uint32_t len = full + types_len;
		uint8_t *h = iobuf_head(out) + off;
		h[0] = (uint8_t)len;
		h[1] = (uint8_t)(len >> 8);
		h[2] = (uint8_t)(len >> 16);
	}
	uint8_t cmd[EXEC_PARAMS]; /* what the answer's tracker reads, before it leaves the buffer */
	memcpy(cmd, pk->payload, sizeof(cmd));
	pgsock_drop(&c->sock, MY_HEADER_LEN + (whole ? full : head));
	c->skip_cmd = whole ? 0 : full - head;
	my_client_set_state(c, CLIENT_ACTIVE);
	my_server_forward(s, cmd, sizeof(cmd));
	return MY_STMT_SENT;
}

/* COM_STMT_EXECUTE of st on s (whose statement is ss): note its types, or
 * add them when ss has other ones. */
static enum my_stmt_verdict execute(struct my_client *c, struct my_server *s, const struct my_packet *pk,
				    uint32_t full, struct my_stmt *st, struct my_server_stmt *ss)
{
	if (pk->len > EXEC_FLAGS && (pk->payload[EXEC_FLAGS] & 0x07)) {
		c->pinned = true; /* a cursor lives in the server's session */
		c->pin_why = "a cursor (COM_STMT_EXECUTE asked for one)";
	}
	if (!st->params)
		return MY_STMT_FORWARD;
	uint32_t flag_at = EXEC_PARAMS + (st->params + 7u) / 8u;
	uint32_t types_len = 2u * st->params;
	if (pk->len <= flag_at)
		return MY_STMT_FORWARD; /* malformed or cut: the server judges */
	if (pk->payload[flag_at] == 1) {
		if (pk->len < flag_at + 1 + types_len) {
			/* Types beyond the receive buffer: the server gets them, sluice
			 * cannot read them, so the next execute says them again. */
			free(ss->types);
			ss->types = NULL;
			return MY_STMT_FORWARD;
		}
		const uint8_t *types = pk->payload + flag_at + 1;
		if (!st->types)
			st->types = malloc(types_len);
		if (!ss->types)
			ss->types = malloc(types_len);
		if (st->types)
			memcpy(st->types, types, types_len);
		if (ss->types)
			memcpy(ss->types, types, types_len);
		return MY_STMT_FORWARD;
	}
	if (!st->types || (ss->types && memcmp(ss->types, st->types, types_len) == 0))
		return MY_STMT_FORWARD;
	if (!ss->types)
		ss->types = malloc(types_len);
	if (!ss->types) {
		my_client_fail(c, "53200", "out of memory");
		return MY_STMT_GONE;
	}
	memcpy(ss->types, st->types, types_len);
	return execute_with_types(c, s, pk, full, flag_at, st);
}

enum my_stmt_verdict my_stmt_command(struct my_client *c, const struct my_packet *pk, uint32_t full)
{
	struct my_server *s = c->server;
	uint8_t cmd = pk->payload[0];
	if (cmd == MY_COM_STMT_PREPARE) {
		const struct config *cfg = runtime_config();
		if ((cfg->max_client_prepared_statements && c->stmts.n >= (uint32_t)cfg->max_client_prepared_statements) ||
		    (cfg->max_client_prepared_bytes && c->stmts.bytes + pk->len > (uint64_t)cfg->max_client_prepared_bytes)) {
			char msg[200];
			snprintf(msg, sizeof(msg),
				 "Can't create more than max_prepared_stmt_count statements (sluice: %u statements or "
				 "%llu bytes per client, max_client_prepared_statements / max_client_prepared_bytes)",
				 c->stmts.n, (unsigned long long)c->stmts.bytes);
			return answer_err(c, pk, 1461, "42000", msg) ? MY_STMT_ANSWERED : MY_STMT_GONE;
		}
		if (my_screen_insert_id_use((const char *)pk->payload + 1, pk->len - 1) == 2) {
			c->pinned = true; /* it sets the session's LAST_INSERT_ID() when run */
			c->pin_why = "LAST_INSERT_ID(expr) (sets the session's value)";
		}
		struct my_stmt *st = client_add(&c->stmts, c->schema, pk->payload + 1, pk->len - 1);
		if (!st || !server_add(s, st->key, st->key_len, st->hash, 0)) {
			if (st)
				client_remove(&c->stmts, st->id);
			my_client_fail(c, "53200", "out of memory");
			return MY_STMT_GONE;
		}
		c->stmts.preparing = st->id;
		return MY_STMT_FORWARD;
	}
	uint32_t id = pk->len >= 5 ? my_le32_get(pk->payload + 1) : 0;
	struct my_stmt *st = client_find(&c->stmts, id);
	if (!st || st->pending) {
		if (pk->len < full) {
			my_client_fail(c, "HY000", "Unknown prepared statement handler given to a long command");
			return MY_STMT_GONE;
		}
		return unknown_stmt(c, pk, id, command_name(cmd)) ? MY_STMT_ANSWERED : MY_STMT_GONE;
	}
	struct my_server_stmt *ss = server_find(&s->stmts, st->hash, st->key, st->key_len);
	if (!ss) {
		if (cmd == MY_COM_STMT_RESET) {
			/* This server never had it: nothing to reset. */
			pgsock_drop(&c->sock, MY_HEADER_LEN + pk->len);
			my_ok_build(&c->sock.wbuf, 1, 0, 0, s->autocommit_off ? 0 : MY_STATUS_AUTOCOMMIT, 0);
			return my_client_flush_own(c) ? MY_STMT_ANSWERED : MY_STMT_GONE;
		}
		if (cmd == MY_COM_STMT_FETCH) {
			if (pk->len < full)
				return MY_STMT_FORWARD;
			return answer_err(c, pk, 1421, "HY000", "The statement has no open cursor.") ? MY_STMT_ANSWERED
												      : MY_STMT_GONE;
		}
		if (!prepare_on_server(c, s, st)) {
			my_client_fail(c, "53200", "out of memory");
			return MY_STMT_GONE;
		}
		return MY_STMT_WAIT;
	}
	ss->used = ++s->stmts.clock;
	my_le32_put(pgsock_cursor(&c->sock) + MY_HEADER_LEN + 1, ss->server_id);
	if (cmd == MY_COM_STMT_SEND_LONG_DATA) {
		c->pinned = true; /* the data waits in the server's session */
		c->pin_why = "a long-data upload (COM_STMT_SEND_LONG_DATA)";
	}
	if (cmd == MY_COM_STMT_EXECUTE)
		return execute(c, s, pk, full, st, ss);
	return MY_STMT_FORWARD;
}

/* ---- answers ---- */

void my_stmt_prepare_answer(struct my_server *s, uint8_t *payload, uint32_t len)
{
	struct my_client *c = s->client;
	struct my_server_stmt *ss = server_pending(&s->stmts);
	struct my_stmt *st = c ? client_find(&c->stmts, c->stmts.preparing) : NULL;
	if (c)
		c->stmts.preparing = 0;
	bool ok = len >= 9 && payload[0] == 0x00;
	if (!ok || !st || !ss) {
		if (st)
			client_remove(&c->stmts, st->id);
		if (ss)
			server_drop_at(&s->stmts, (uint32_t)(ss - s->stmts.v));
		return;
	}
	uint32_t server_id = my_le32_get(payload + 1);
	uint16_t params = (uint16_t)(payload[7] | payload[8] << 8);
	my_le32_put(payload + 1, st->id);
	st->params = params;
	st->pending = false;
	/* A statement this session already had under the same key goes. */
	struct my_server_stmt *old = server_find(&s->stmts, ss->hash, ss->key, ss->key_len);
	if (old) {
		send_close(s, old->server_id);
		uint32_t at = (uint32_t)(old - s->stmts.v);
		server_drop_at(&s->stmts, at);
		ss = server_pending(&s->stmts); /* moved when old was not last */
	}
	ss->server_id = server_id;
	ss->params = params;
	ss->pending = false;
}

bool my_stmt_internal_prepared(struct my_server *s, const uint8_t *payload, uint32_t len)
{
	struct my_server_stmt *ss = server_pending(&s->stmts);
	if (len >= 9 && payload[0] == 0x00 && ss) {
		ss->server_id = my_le32_get(payload + 1);
		ss->pending = false;
		return true;
	}
	if (ss)
		server_drop_at(&s->stmts, (uint32_t)(ss - s->stmts.v));
	return false;
}

/* ---- online restart ---- */

/* next_id, count, then each statement: id, parameters, key, types (their
 * length 0 when never bound). */
void my_stmts_encode(const struct my_stmts *t, struct takeover_enc *e)
{
	takeover_enc_u32(e, t->next_id);
	takeover_enc_u32(e, t->n);
	for (uint32_t i = 0; i < t->n; i++) {
		const struct my_stmt *st = t->v[i];
		takeover_enc_u32(e, st->id);
		takeover_enc_u32(e, st->params);
		takeover_enc_u32(e, st->key_len);
		takeover_enc_bytes(e, st->key, st->key_len);
		uint32_t types = st->types ? 2u * st->params : 0;
		takeover_enc_u32(e, types);
		takeover_enc_bytes(e, st->types, types);
	}
}

void my_stmts_decode(struct my_stmts *t, struct takeover_dec *d)
{
	uint32_t next_id = takeover_dec_u32(d);
	uint32_t n = takeover_dec_u32(d);
	for (uint32_t i = 0; i < n && !d->err; i++) {
		uint32_t id = takeover_dec_u32(d);
		uint32_t params = takeover_dec_u32(d);
		uint32_t key_len = takeover_dec_u32(d);
		const char *key = (const char *)d->p;
		if (d->err || params > 0xffff || key_len == 0 || (size_t)(d->end - d->p) < key_len ||
		    !memchr(key, '\0', key_len)) {
			d->err = true;
			return;
		}
		d->p += key_len;
		uint32_t types = takeover_dec_u32(d);
		if (d->err || (types && types != 2 * params) || (size_t)(d->end - d->p) < types) {
			d->err = true;
			return;
		}
		uint32_t schema_len = (uint32_t)strlen(key);
		struct my_stmt *st = client_add(t, key, (const uint8_t *)key + schema_len + 1, key_len - schema_len - 1);
		if (!st || (types && !(st->types = malloc(types)))) {
			d->err = true;
			return;
		}
		if (types)
			memcpy(st->types, d->p, types);
		d->p += types;
		st->id = id;
		st->params = (uint16_t)params;
		st->pending = false;
	}
	t->next_id = next_id;
}

bool my_stmt_reads_only(const struct my_client *c, uint32_t id)
{
	const struct my_stmt *st = client_find(&c->stmts, id);
	return st && !st->pending && st->reads_only;
}

bool my_stmt_describe(const struct my_client *c, uint32_t id, const char **text, uint32_t *text_len,
		      uint16_t *params, const uint8_t **types)
{
	const struct my_stmt *st = client_find(&c->stmts, id);
	if (!st || st->pending)
		return false;
	*text = key_text(st->key, st->key_len, text_len);
	*params = st->params;
	*types = st->types;
	return true;
}
