/*
 * stats.c - see stats.h.
 */
#include "stats.h"

#include <string.h>

const int64_t stats_bucket_us[STATS_BUCKETS - 1] = { STATS_BUCKET_BOUNDS_US };

static int bucket_of(int64_t us)
{
	int i = 0;
	while (i < STATS_BUCKETS - 1 && us > stats_bucket_us[i])
		i++;
	return i;
}

void stats_query_done(struct stats_slot *s, int64_t us)
{
	if (us < 0)
		us = 0;
	stats_add(&s->queries, 1);
	stats_add(&s->query_us, (uint64_t)us);
	stats_add(&s->query_hist[bucket_of(us)], 1);
}

void stats_xact_done(struct stats_slot *s, int64_t us)
{
	if (us < 0)
		us = 0;
	stats_add(&s->xacts, 1);
	stats_add(&s->xact_us, (uint64_t)us);
	stats_add(&s->xact_hist[bucket_of(us)], 1);
}

void stats_error(struct stats_slot *s, const char *sqlstate)
{
	char cls[3] = "??";
	if (sqlstate && sqlstate[0] && sqlstate[1]) {
		cls[0] = sqlstate[0];
		cls[1] = sqlstate[1];
	}
	uint32_t n = __atomic_load_n(&s->n_errors, __ATOMIC_RELAXED);
	for (uint32_t i = 0; i < n; i++) {
		if (memcmp(s->errors[i].cls, cls, 3) == 0) {
			stats_add(&s->errors[i].n, 1);
			return;
		}
	}
	if (n < STATS_ERROR_CLASSES) {
		memcpy(s->errors[n].cls, cls, 3);
		__atomic_store_n(&s->errors[n].n, 1, __ATOMIC_RELAXED);
		/* Publish the entry only once it is filled in. */
		__atomic_store_n(&s->n_errors, n + 1, __ATOMIC_RELEASE);
		return;
	}
	memcpy(s->errors[STATS_ERROR_CLASSES].cls, "??", 3);
	stats_add(&s->errors[STATS_ERROR_CLASSES].n, 1);
}

static void add_error(struct stats_totals *t, const char *cls, uint64_t n)
{
	for (uint32_t i = 0; i < t->n_errors; i++) {
		if (strcmp(t->errors[i].cls, cls) == 0) {
			t->errors[i].n += n;
			return;
		}
	}
	uint32_t i = t->n_errors < STATS_ERROR_CLASSES + 1 ? t->n_errors++ : STATS_ERROR_CLASSES;
	if (t->errors[i].n == 0)
		memcpy(t->errors[i].cls, cls, 3);
	t->errors[i].n += n;
}

#define LOAD(f) __atomic_load_n(&(f), __ATOMIC_RELAXED)

void stats_accumulate(struct stats_totals *t, const struct stats_slot *s)
{
	t->xacts += LOAD(s->xacts);
	t->queries += LOAD(s->queries);
	t->bytes_in += LOAD(s->bytes_in);
	t->bytes_out += LOAD(s->bytes_out);
	t->xact_us += LOAD(s->xact_us);
	t->query_us += LOAD(s->query_us);
	t->wait_us += LOAD(s->wait_us);
	t->assigns += LOAD(s->assigns);
	t->client_parses += LOAD(s->client_parses);
	t->server_parses += LOAD(s->server_parses);
	t->binds += LOAD(s->binds);
	for (int i = 0; i < STATS_BUCKETS; i++) {
		t->query_hist[i] += LOAD(s->query_hist[i]);
		t->xact_hist[i] += LOAD(s->xact_hist[i]);
	}
	uint32_t n = __atomic_load_n(&s->n_errors, __ATOMIC_ACQUIRE);
	for (uint32_t i = 0; i < n; i++)
		add_error(t, s->errors[i].cls, LOAD(s->errors[i].n));
	uint64_t other = LOAD(s->errors[STATS_ERROR_CLASSES].n);
	if (other)
		add_error(t, "??", other);
}

void stats_merge(struct stats_totals *a, const struct stats_totals *b)
{
	a->xacts += b->xacts;
	a->queries += b->queries;
	a->bytes_in += b->bytes_in;
	a->bytes_out += b->bytes_out;
	a->xact_us += b->xact_us;
	a->query_us += b->query_us;
	a->wait_us += b->wait_us;
	a->assigns += b->assigns;
	a->client_parses += b->client_parses;
	a->server_parses += b->server_parses;
	a->binds += b->binds;
	for (int i = 0; i < STATS_BUCKETS; i++) {
		a->query_hist[i] += b->query_hist[i];
		a->xact_hist[i] += b->xact_hist[i];
	}
	for (uint32_t i = 0; i < b->n_errors; i++)
		add_error(a, b->errors[i].cls, b->errors[i].n);
}
