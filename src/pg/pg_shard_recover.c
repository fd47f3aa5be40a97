/*
 * pg_shard_recover.c - see pg_shard_recover.h.
 */
#include "pg_shard_recover.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "pg_proto.h"
#include "pg_server.h"
#include "pool.h"
#include "server.h"
#include "shard_2pc.h"
#include "worker.h"

#define ROUND_MAX_FOUND 1024                 /* the rest waits for the next round */
#define ROUND_TIMEOUT_US (30 * 1000000LL)    /* a round that takes longer is given up */
#define PERIOD_US (60 * 1000000LL)           /* each sharded pool, at least this often */
#define SOON_US (1 * 1000000LL)              /* after something was left behind, or a failed round */

/* What is done with a prepared transaction found. */
enum verdict { LEAVE, COMMIT, ROLLBACK, ASK };

struct found {
	int shard;
	struct shard_gid g;
	char gid[SHARD_GID_MAX];
	uint8_t verdict;      /* enum verdict */
};

enum step { STEP_LIST, STEP_STATUS, STEP_RESOLVE };

static struct {
	struct pool *pool;    /* the logical pool of the round; NULL = no round */
	int n_shards;
	struct pg_server *srv[64];
	int due[64];          /* ReadyForQuery still due from each shard */
	int next[64];         /* RESOLVE: the shard's next answer's place in found */
	uint8_t step;         /* enum step */
	int64_t started_us;
	uint32_t host, db;
	char comm[32];        /* this process's name (comm_of) */
	struct found *found;  /* heap, up to ROUND_MAX_FOUND */
	size_t n_found;
} rnd;

/* When each sharded pool seen is due for a rnd. */
static struct due_pool {
	struct pool *pool;
	int64_t next_us;
} *pools_due;
static size_t n_pools_due, cap_pools_due;
static int soon; /* atomic: shard_recover_soon was called */

void shard_recover_soon(void)
{
	__atomic_store_n(&soon, 1, __ATOMIC_RELEASE);
}

static int shard_of(const struct pg_server *s)
{
	for (int i = 0; rnd.pool && i < rnd.n_shards; i++)
		if (rnd.srv[i] == s)
			return i;
	return -1;
}

/* Close the round's connections and forget it; retry_us: when its pool
 * is due again. */
static void end_round(int64_t retry_us)
{
	struct pool *p = rnd.pool;
	rnd.pool = NULL;
	for (size_t i = 0; i < n_pools_due; i++)
		if (pools_due[i].pool == p)
			pools_due[i].next_us = retry_us;
	for (int i = 0; i < rnd.n_shards; i++) {
		struct pg_server *s = rnd.srv[i];
		rnd.srv[i] = NULL;
		if (s)
			server_close(s, "shard recovery round over");
	}
	free(rnd.found);
	rnd.found = NULL;
	rnd.n_found = 0;
}

static void fail_round(const char *why)
{
	log_warning("shard recovery of database \"%s\": %s; trying again soon", rnd.pool->db_name, why);
	end_round(loop_now_us() + SOON_US);
}

static void ask_shard(int shard, const char *sql)
{
	struct pg_server *s = rnd.srv[shard];
	if (pg_fe_query(&s->sock.wbuf, sql) < 0) {
		fail_round("out of memory");
		return;
	}
	rnd.due[shard]++;
	server_core_set_state(&s->base, SERVER_CHECK);
	s->sock.want_read = true;
	server_send_pending(s);
}

/* The name the kernel gives process pid ("" when it has none to tell). */
static void comm_of(const char *pid, char *out, size_t n)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%s/comm", pid);
	out[0] = '\0';
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	if (!fgets(out, (int)n, f))
		out[0] = '\0';
	fclose(f);
	out[strcspn(out, "\n")] = '\0';
}

static void start_round(struct worker *w, struct pool *p, int64_t now_us)
{
	rnd.pool = p;
	rnd.n_shards = p->n_shards;
	rnd.step = STEP_LIST;
	rnd.started_us = now_us;
	rnd.host = shard_2pc_host();
	rnd.db = shard_2pc_db(p->db_name);
	comm_of("self", rnd.comm, sizeof(rnd.comm));
	rnd.n_found = 0;
	memset(rnd.srv, 0, sizeof(rnd.srv));
	memset(rnd.due, 0, sizeof(rnd.due));
	if (!(rnd.found = calloc(ROUND_MAX_FOUND, sizeof(*rnd.found)))) {
		fail_round("out of memory");
		return;
	}
	for (int i = 0; i < rnd.n_shards; i++) {
		char err[200];
		struct pool *sp = pool_shard(p, i, err, sizeof(err));
		struct pg_server *s = sp ? server_launch_aside(w, sp, pool_pick_host(sp), SERVER_RECOVER, err, sizeof(err))
					 : NULL;
		if (!s) {
			fail_round(err);
			return;
		}
		rnd.srv[i] = s;
		rnd.due[i] = 1; /* its list, once logged in */
	}
}

void shard_recover_ready(struct pg_server *s)
{
	int k = shard_of(s);
	if (k < 0) {
		server_close(s, "shard recovery round over");
		return;
	}
	rnd.due[k]--; /* counted at launch */
	ask_shard(k, "SELECT gid FROM pg_catalog.pg_prepared_xacts WHERE database = pg_catalog.current_database() "
		"AND owner = CURRENT_USER AND gid LIKE 'sluice:%' LIMIT 1024");
}

/* Is the commit that made g maybe still running? This process's when it
 * is in flight; another sluice's on this host while that process lives
 * (its pid taken by another program since: no longer). */
static bool maybe_running(const struct shard_gid *g)
{
	if (g->pid == (int)getpid())
		return shard_2pc_running(g->seq); /* one done since: its names are gone or orphans */
	if (kill(g->pid, 0) < 0 && errno != EPERM)
		return false;
	char pid[16], comm[32];
	snprintf(pid, sizeof(pid), "%d", g->pid);
	comm_of(pid, comm, sizeof(comm));
	return !comm[0] || strcmp(comm, rnd.comm) == 0 || strncmp(comm, "sluice", 6) == 0 ||
	       strncmp(comm, "pgbouncer", 9) == 0;
}

static void note_found(int shard, const struct pg_msg *m)
{
	const uint8_t *v;
	uint32_t n;
	struct found *f = &rnd.found[rnd.n_found];
	if (rnd.n_found >= ROUND_MAX_FOUND || pg_datarow_column(m->body, m->body_len, 0, &v, &n) < 0 || !v ||
	    n >= sizeof(f->gid))
		return;
	memcpy(f->gid, v, n);
	f->gid[n] = '\0';
	if (!shard_gid_parse(f->gid, &f->g) || f->g.host != rnd.host || f->g.db != rnd.db || f->g.shard != shard ||
	    maybe_running(&f->g))
		return; /* another's, or still running */
	f->shard = shard;
	f->verdict = LEAVE;
	rnd.n_found++;
}

static void resolve(void)
{
	rnd.step = STEP_RESOLVE;
	int sent = 0;
	for (size_t i = 0; i < rnd.n_found && rnd.pool; i++) {
		struct found *f = &rnd.found[i];
		if (f->verdict != COMMIT && f->verdict != ROLLBACK)
			continue;
		char sql[SHARD_GID_MAX + 40];
		/* The name was parsed: letters, digits and colons only. */
		snprintf(sql, sizeof(sql), "%s PREPARED '%s'", f->verdict == COMMIT ? "COMMIT" : "ROLLBACK", f->gid);
		ask_shard(f->shard, sql);
		sent++;
	}
	memset(rnd.next, 0, sizeof(rnd.next));
	if (!sent && rnd.pool)
		end_round(loop_now_us() + PERIOD_US);
}

/* Every shard listed: what each one found becomes. */
static void decide(void)
{
	uint64_t ask = 0; /* coordinators to ask (bit per shard) */
	for (size_t i = 0; i < rnd.n_found; i++) {
		struct found *f = &rnd.found[i];
		f->verdict = ROLLBACK; /* a coordinator still prepared: nothing was decided */
		if (!f->g.participant)
			continue;
		for (size_t j = 0; j < rnd.n_found; j++) {
			const struct shard_gid *o = &rnd.found[j].g;
			if (!o->participant && o->pid == f->g.pid && o->seq == f->g.seq && rnd.found[j].shard == f->g.coord)
				goto next; /* its coordinator is still prepared */
		}
		if (f->g.coord < 0 || f->g.coord >= rnd.n_shards) {
			log_warning("shard recovery of database \"%s\": %s names a coordinator shard it does not have: "
				    "left prepared", rnd.pool->db_name, f->gid);
			f->verdict = LEAVE;
			continue;
		}
		f->verdict = ASK;
		ask |= UINT64_C(1) << f->g.coord;
next:;
	}
	if (!ask) {
		resolve();
		return;
	}
	rnd.step = STEP_STATUS;
	for (int k = 0; k < rnd.n_shards && rnd.pool; k++) {
		if (!(ask & (UINT64_C(1) << k)))
			continue;
		size_t cap = 128 + 22 * rnd.n_found, n;
		char *q = malloc(cap);
		if (!q) {
			fail_round("out of memory");
			return;
		}
		n = (size_t)snprintf(q, cap, "SELECT x, pg_catalog.txid_status(x) FROM pg_catalog.unnest(ARRAY[");
		const char *sep = "";
		for (size_t i = 0; i < rnd.n_found; i++) {
			const struct found *f = &rnd.found[i];
			if (f->verdict == ASK && f->g.coord == k) {
				n += (size_t)snprintf(q + n, cap - n, "%s%" PRIu64, sep, f->g.xid);
				sep = ",";
			}
		}
		snprintf(q + n, cap - n, "]::bigint[]) AS x");
		ask_shard(k, q);
		free(q);
	}
}

/* A coordinator's answer: transaction xid is committed, aborted, ... */
static void note_status(int shard, const struct pg_msg *m)
{
	const uint8_t *v, *st;
	uint32_t n, sn;
	char num[24];
	if (pg_datarow_column(m->body, m->body_len, 0, &v, &n) < 0 || !v || n >= sizeof(num) ||
	    pg_datarow_column(m->body, m->body_len, 1, &st, &sn) < 0)
		return;
	memcpy(num, v, n);
	num[n] = '\0';
	uint64_t xid = strtoull(num, NULL, 10);
	int verdict = !st ? LEAVE : sn == 9 && memcmp(st, "committed", 9) == 0 ? COMMIT
		      : sn == 7 && memcmp(st, "aborted", 7) == 0 ? ROLLBACK : LEAVE;
	for (size_t i = 0; i < rnd.n_found; i++) {
		struct found *f = &rnd.found[i];
		if (f->verdict == ASK && f->g.coord == shard && f->g.xid == xid) {
			f->verdict = (uint8_t)verdict;
			if (verdict == LEAVE)
				log_warning("shard recovery of database \"%s\": the coordinator of %s no longer tells what it "
					    "decided (txid_status: %.*s): left prepared", rnd.pool->db_name, f->gid,
					    st ? (int)sn : 4, st ? (const char *)st : "null");
		}
	}
}

/* RESOLVE: the found transaction shard's next answer is about. */
static struct found *answered(int shard)
{
	for (size_t i = (size_t)rnd.next[shard]; i < rnd.n_found; i++) {
		struct found *f = &rnd.found[i];
		if (f->shard == shard && (f->verdict == COMMIT || f->verdict == ROLLBACK)) {
			rnd.next[shard] = (int)i + 1;
			return f;
		}
	}
	return NULL;
}

static bool all_in(void)
{
	for (int i = 0; i < rnd.n_shards; i++)
		if (rnd.due[i])
			return false;
	return true;
}

bool shard_recover_message(struct pg_server *s, const struct pg_msg *m)
{
	int k = shard_of(s);
	if (k < 0) {
		server_close(s, "shard recovery round over");
		return false;
	}
	switch (m->type) {
	case 'D':
		if (rnd.step == STEP_LIST)
			note_found(k, m);
		else if (rnd.step == STEP_STATUS)
			note_status(k, m);
		return true;
	case 'C':
		if (rnd.step == STEP_RESOLVE) {
			const struct found *f = answered(k);
			if (f)
				log_info("shard recovery of database \"%s\": %s %s on shard %s", rnd.pool->db_name,
					 f->verdict == COMMIT ? "committed" : "rolled back", f->gid, s->pool->db_name);
		}
		return true;
	case 'E': {
		struct pg_error_fields ef;
		pg_be_error_parse(m->body, m->body_len, &ef);
		if (rnd.step != STEP_RESOLVE) {
			char why[240];
			snprintf(why, sizeof(why), "shard %s: %s", s->pool->db_name, ef.message);
			fail_round(why);
			return false;
		}
		const struct found *f = answered(k);
		log_warning("shard recovery of database \"%s\": %s on shard %s: %s", rnd.pool->db_name,
			    f ? f->gid : "?", s->pool->db_name, ef.message);
		return true;
	}
	case 'Z':
		rnd.due[k]--;
		server_core_set_state(&s->base, SERVER_IDLE);
		if (!all_in())
			return true;
		if (rnd.step == STEP_LIST)
			decide();
		else if (rnd.step == STEP_STATUS)
			resolve();
		else
			end_round(loop_now_us() + PERIOD_US);
		return !s->closed;
	default: /* T, S, N */
		return true;
	}
}

void shard_recover_closed(struct pg_server *s, const char *reason)
{
	int k = shard_of(s);
	if (k < 0)
		return;
	rnd.srv[k] = NULL;
	char why[240];
	snprintf(why, sizeof(why), "shard %s: %s", s->pool->db_name, reason);
	fail_round(why);
}

/* ---- which pool, when ---- */

struct pick {
	int64_t now_us;
	bool soon;
	struct pool *due;
};

static void consider(struct pool *p, void *arg)
{
	struct pick *pk = arg;
	if (!p->n_shards || __atomic_load_n(&p->stale, __ATOMIC_RELAXED))
		return;
	struct due_pool *d = NULL;
	for (size_t i = 0; i < n_pools_due && !d; i++)
		if (pools_due[i].pool == p)
			d = &pools_due[i];
	if (!d) {
		if (n_pools_due == cap_pools_due) {
			size_t cap = cap_pools_due ? 2 * cap_pools_due : 8;
			struct due_pool *v = realloc(pools_due, cap * sizeof(*v));
			if (!v)
				return;
			pools_due = v;
			cap_pools_due = cap;
		}
		d = &pools_due[n_pools_due++];
		*d = (struct due_pool){ .pool = p, .next_us = 0 }; /* first seen: now */
	}
	if (pk->soon && d->next_us > pk->now_us + SOON_US)
		d->next_us = pk->now_us + SOON_US;
	if (!pk->due && d->next_us <= pk->now_us && p->shard_pools[0])
		pk->due = p;
}

void shard_recover_tick(struct worker *w, int64_t now_us)
{
	if (w->id != 0)
		return;
	if (rnd.pool) {
		if (now_us - rnd.started_us > ROUND_TIMEOUT_US)
			fail_round("no answer in time");
		return;
	}
	struct pick pk = { .now_us = now_us, .soon = __atomic_exchange_n(&soon, 0, __ATOMIC_ACQ_REL) != 0 };
	pool_foreach(consider, &pk);
	if (pk.due) {
		for (size_t i = 0; i < n_pools_due; i++)
			if (pools_due[i].pool == pk.due)
				pools_due[i].next_us = now_us + PERIOD_US;
		start_round(w, pk.due, now_us);
	}
}
