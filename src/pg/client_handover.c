/*
 * client_handover.c - see client_handover.h.
 */
#include "client_handover.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "pg_client.h"
#include "pool.h"
#include "sqlinfo.h"
#include "takeover.h"
#include "track.h"

bool client_handover_ok(const struct pg_client *c)
{
	/* A socket in the kernel's sockhash stays with this process. */
	return !c->hold_for_sync && !c->skip_until_sync && !c->bp_slot && !c->shard_begin && !c->shard_fanout &&
	       !c->shard_tx;
}

/*
 * A client, as: user, db, peer, cancel pid, cancel key, the tracked
 * parameters (absent = server default), the prepared statements (name,
 * query, parameter types), the pool's SCRAM pass-through keys (flag + 64
 * bytes), the bytes the client already sent that were not examined, then
 * the unnamed statement, the session settings and when it last wrote.
 */
int client_encode(struct pg_client *c, struct takeover_enc *e)
{
	takeover_enc_str(e, c->user);
	takeover_enc_str(e, c->db);
	takeover_enc_str(e, c->peer);
	takeover_enc_u32(e, c->cancel_pid);
	takeover_enc_u32(e, c->cancel_key);
	takeover_enc_u32(e, TRACKED_PARAMS);
	for (int k = 0; k < TRACKED_PARAMS; k++)
		takeover_enc_str(e, c->params[k]);
	takeover_enc_u32(e, c->stmts.n);
	for (uint32_t i = 0; i < c->stmts.n; i++) {
		const struct client_stmt *st = &c->stmts.v[i];
		takeover_enc_str(e, st->name);
		takeover_enc_str(e, st->def.query);
		takeover_enc_u32(e, st->def.n_types);
		for (uint16_t t = 0; t < st->def.n_types; t++)
			takeover_enc_u32(e, st->def.types[t]);
	}
	uint8_t keys[64];
	bool have = pool_get_scram_keys(c->pool, keys, keys + 32);
	takeover_enc_u32(e, have);
	if (have)
		takeover_enc_bytes(e, keys, 64);
	OPENSSL_cleanse(keys, sizeof(keys));
	takeover_enc_u32(e, iobuf_len(&c->sock.rbuf));
	takeover_enc_bytes(e, iobuf_head(&c->sock.rbuf), iobuf_len(&c->sock.rbuf));
	/* Added later, so a process that does not know them ignores them:
	 * the unnamed statement (flag, query, types) and the settings. */
	takeover_enc_u32(e, c->unnamed != NULL);
	if (c->unnamed) {
		takeover_enc_str(e, c->unnamed->def.query);
		takeover_enc_u32(e, c->unnamed->def.n_types);
		for (uint16_t t = 0; t < c->unnamed->def.n_types; t++)
			takeover_enc_u32(e, c->unnamed->def.types[t]);
	}
	takeover_enc_u32(e, c->vars.n);
	for (uint16_t i = 0; i < c->vars.n; i++) {
		takeover_enc_str(e, c->vars.v[i].name);
		takeover_enc_str(e, c->vars.v[i].sql);
	}
	/* Added later still: when it last wrote (read-your-writes, route.h;
	 * CLOCK_MONOTONIC, the same in both processes). */
	takeover_enc_u32(e, (uint32_t)((uint64_t)c->last_write_us >> 32));
	takeover_enc_u32(e, (uint32_t)c->last_write_us);
	return e->oom ? -ENOMEM : 0;
}

/* A statement definition: query, type count, types. */
static int dec_def(struct takeover_dec *d, struct pstmt_def *def)
{
	bool absent;
	memset(def, 0, sizeof(*def));
	def->query = takeover_dec_str(d, &absent);
	uint32_t nt = takeover_dec_u32(d);
	if (nt > 65535 || (size_t)(d->end - d->p) < (size_t)nt * 4)
		d->err = true;
	if (!d->err && nt) {
		def->types = malloc(nt * sizeof(uint32_t));
		if (!def->types)
			d->err = true;
		for (uint32_t t = 0; t < nt && !d->err; t++)
			def->types[t] = takeover_dec_u32(d);
		def->n_types = (uint16_t)nt;
	}
	if (d->err || !def->query) {
		pstmt_def_free(def);
		d->err = true;
		return -EPROTO;
	}
	/* pstmt_parse_msg computes the hash; recompute it the same way. */
	pstmt_def_rehash(def);
	return 0;
}

/* Fills c from an encoded client; the pool's SCRAM keys, when sent, go to
 * keys (*have_keys) for the caller to apply once the pool is known. */
static int client_decode(struct pg_client *c, const uint8_t *p, uint32_t len, uint8_t keys[64], bool *have_keys)
{
	struct takeover_dec d = { p, p + len, false };
	bool absent;
	char *s;
	s = takeover_dec_str(&d, &absent);
	snprintf(c->user, sizeof(c->user), "%s", s ? s : "");
	free(s);
	s = takeover_dec_str(&d, &absent);
	snprintf(c->db, sizeof(c->db), "%s", s ? s : "");
	free(s);
	s = takeover_dec_str(&d, &absent);
	if (s)
		snprintf(c->peer, sizeof(c->peer), "%s", s);
	free(s);
	c->cancel_pid = takeover_dec_u32(&d);
	c->cancel_key = takeover_dec_u32(&d);
	uint32_t np = takeover_dec_u32(&d);
	for (uint32_t k = 0; k < np && !d.err; k++) {
		s = takeover_dec_str(&d, &absent);
		if (k < TRACKED_PARAMS)
			c->params[k] = s;
		else
			free(s);
	}
	uint32_t ns = takeover_dec_u32(&d);
	for (uint32_t i = 0; i < ns && !d.err; i++) {
		char *name = takeover_dec_str(&d, &absent);
		struct pstmt_def def;
		struct sql_info *si = NULL;
		if (dec_def(&d, &def) == 0) {
			if (!name || sql_inspect_if_needed(def.query, strlen(def.query), &si) < 0 ||
			    client_stmts_add(&c->stmts, name, &def, si) < 0) {
				d.err = true;
				sql_info_put(si);
				pstmt_def_free(&def);
			}
		}
		free(name);
	}
	*have_keys = false;
	uint32_t have = takeover_dec_u32(&d);
	if (have && !d.err) {
		if (d.end - d.p < 64) {
			d.err = true;
		} else {
			memcpy(keys, d.p, 64);
			*have_keys = true;
			d.p += 64;
		}
	}
	uint32_t pending = takeover_dec_u32(&d);
	if (!d.err && (size_t)(d.end - d.p) >= pending && pending) {
		if (iobuf_append(&c->sock.rbuf, d.p, pending) < 0)
			d.err = true;
		d.p += pending;
	} else if (pending) {
		d.err = true;
	}
	if (d.err || d.p == d.end)
		return d.err ? -EPROTO : 0; /* from a process without the parts below */
	if (takeover_dec_u32(&d)) {
		struct unnamed_stmt *u = calloc(1, sizeof(*u));
		if (!u || dec_def(&d, &u->def) < 0 ||
		    sql_inspect_if_needed(u->def.query, strlen(u->def.query), &u->info) < 0) {
			d.err = true;
			if (u)
				pstmt_def_free(&u->def);
			free(u);
		} else {
			c->unnamed = u;
		}
	}
	uint32_t nv = takeover_dec_u32(&d);
	for (uint32_t i = 0; i < nv && !d.err; i++) {
		char *name = takeover_dec_str(&d, &absent), *sql = takeover_dec_str(&d, &absent);
		if (!name || !sql || session_vars_set(&c->vars, name, sql) < 0)
			d.err = true;
		free(name);
		free(sql);
	}
	if (!d.err && d.p != d.end) {
		uint64_t hi = takeover_dec_u32(&d), lo = takeover_dec_u32(&d);
		c->last_write_us = (int64_t)(hi << 32 | lo);
	}
	return d.err ? -EPROTO : 0;
}

void client_adopt_state(struct worker *w, int fd, const uint8_t *state, uint32_t len)
{
	struct pg_client *c = client_adopt(w, fd, "?");
	if (!c)
		return;
	uint8_t keys[64], known[64];
	bool have = false;
	if (client_decode(c, state, len, keys, &have) < 0) {
		client_close(c, "online restart: could not read the client's state");
	} else {
		client_adopt_finish(c);
		/* The pool may need the keys to log in (SCRAM pass-through). */
		if (have && !c->closing && c->pool && !pool_get_scram_keys(c->pool, known, known + 32))
			pool_set_scram_keys(c->pool, keys, keys + 32);
		OPENSSL_cleanse(known, sizeof(known));
	}
	OPENSSL_cleanse(keys, sizeof(keys));
}
