/*
 * shard_2pc.c - see shard_2pc.h.
 */
#include "shard_2pc.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fnv.h"

static uint32_t fold(uint64_t h)
{
	return (uint32_t)(h ^ (h >> 32));
}

uint32_t shard_2pc_host(void)
{
	static uint32_t host; /* the same for every thread: a race only repeats the work */
	uint32_t h = __atomic_load_n(&host, __ATOMIC_RELAXED);
	if (h)
		return h;
	char name[256] = "";
	if (gethostname(name, sizeof(name) - 1) < 0)
		name[0] = '\0';
	h = fold(fnv1a(FNV1A_START, name, strlen(name))) | 1;
	__atomic_store_n(&host, h, __ATOMIC_RELAXED);
	return h;
}

uint32_t shard_2pc_db(const char *db)
{
	return fold(fnv1a(FNV1A_START, db, strlen(db)));
}

void shard_gid_format(const struct shard_gid *g, char *out)
{
	int n = snprintf(out, SHARD_GID_MAX, "sluice:%08" PRIx32 ":%08" PRIx32 ":%d:%" PRIu64 ":%d", g->host, g->db,
			 g->pid, g->seq, g->shard);
	if (g->participant && n > 0 && n < SHARD_GID_MAX)
		snprintf(out + n, (size_t)(SHARD_GID_MAX - n), ":%d:%" PRIu64, g->coord, g->xid);
}

void shard_tpc_gid(const struct shard_tpc *t, const char *db, int shard, char *out)
{
	struct shard_gid g = { .host = shard_2pc_host(), .db = shard_2pc_db(db), .pid = (int)getpid(), .seq = t->seq,
			       .shard = shard, .coord = t->coord, .participant = shard != t->coord, .xid = t->xid };
	shard_gid_format(&g, out);
}

/* A decimal or hex number of up to max digits, up to the next ':' or the
 * end; *p moves past it (and its ':'). */
static bool number(const char **p, int base, int max, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	int n = 0;
	for (; *s && *s != ':'; s++, n++) {
		int d = *s >= '0' && *s <= '9' ? *s - '0'
			: base == 16 && *s >= 'a' && *s <= 'f' ? *s - 'a' + 10 : -1;
		if (d < 0 || n >= max || v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
			return false;
		v = v * (uint64_t)base + (uint64_t)d;
	}
	if (n == 0)
		return false;
	if (*s && !s[1])
		return false; /* a name does not end with a colon */
	*p = *s ? s + 1 : s;
	*out = v;
	return true;
}

bool shard_gid_parse(const char *text, struct shard_gid *g)
{
	if (strncmp(text, "sluice:", 7) != 0)
		return false;
	const char *p = text + 7;
	uint64_t host, db, pid, seq, shard, coord, xid = 0;
	if (!number(&p, 16, 8, &host) || !number(&p, 16, 8, &db) || !number(&p, 10, 9, &pid) ||
	    !number(&p, 10, 20, &seq) || !number(&p, 10, 4, &shard))
		return false;
	coord = shard;
	bool participant = *p != '\0';
	if (participant && (p[-1] != ':' || !number(&p, 10, 4, &coord) || !number(&p, 10, 20, &xid) || *p ||
			    coord == shard))
		return false;
	*g = (struct shard_gid){ .host = (uint32_t)host, .db = (uint32_t)db, .pid = (int)pid, .seq = seq,
				 .shard = (int)shard, .coord = (int)coord, .participant = participant, .xid = xid };
	return true;
}

/* ---- the commits in flight ---- */

static pthread_mutex_t running_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t *running;        /* numbers in flight, unordered (heap) */
static size_t n_running, cap_running;
static uint64_t next_seq = 1;

uint64_t shard_2pc_start(void)
{
	pthread_mutex_lock(&running_lock);
	uint64_t seq = 0;
	if (n_running == cap_running) {
		size_t cap = cap_running ? 2 * cap_running : 16;
		uint64_t *v = realloc(running, cap * sizeof(*v));
		if (v) {
			running = v;
			cap_running = cap;
		}
	}
	if (n_running < cap_running) {
		seq = next_seq++;
		running[n_running++] = seq;
	}
	pthread_mutex_unlock(&running_lock);
	return seq;
}

void shard_2pc_done(uint64_t seq)
{
	pthread_mutex_lock(&running_lock);
	for (size_t i = 0; i < n_running; i++) {
		if (running[i] == seq) {
			running[i] = running[--n_running];
			break;
		}
	}
	pthread_mutex_unlock(&running_lock);
}

bool shard_2pc_running(uint64_t seq)
{
	pthread_mutex_lock(&running_lock);
	bool found = false;
	for (size_t i = 0; i < n_running && !found; i++)
		found = running[i] == seq;
	pthread_mutex_unlock(&running_lock);
	return found;
}

void shard_2pc_crash_point(const char *point)
{
	const char *want = getenv("SLUICE_TEST_2PC_CRASH");
	if (want && strcmp(want, point) == 0)
		raise(SIGKILL);
}
