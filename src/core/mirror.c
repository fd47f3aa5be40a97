/*
 * mirror.c - see mirror.h.
 */
#include "mirror.h"

#include <inttypes.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"

static pthread_mutex_t mirrors_lock = PTHREAD_MUTEX_INITIALIZER; /* the list and last_query */
static struct mirror_stats *mirrors;                             /* newest first */

struct mirror_stats *mirror_stats_get(const char *db, const char *mirror)
{
	pthread_mutex_lock(&mirrors_lock);
	struct mirror_stats *m;
	for (m = mirrors; m; m = m->next)
		if (strcmp(m->db, db) == 0 && strcmp(m->mirror, mirror) == 0)
			break;
	if (!m && (m = calloc(1, sizeof(*m)))) {
		snprintf(m->db, sizeof(m->db), "%s", db);
		snprintf(m->mirror, sizeof(m->mirror), "%s", mirror);
		m->next = mirrors;
		mirrors = m;
	}
	pthread_mutex_unlock(&mirrors_lock);
	return m;
}

void mirror_count(struct mirror_stats *m, enum mirror_result r)
{
	__atomic_add_fetch(&m->n[r], 1, __ATOMIC_RELAXED);
}

void mirror_note_times(struct mirror_stats *m, int64_t primary_us, int64_t mirror_us)
{
	__atomic_add_fetch(&m->primary_us, (uint64_t)(primary_us > 0 ? primary_us : 0), __ATOMIC_RELAXED);
	__atomic_add_fetch(&m->mirror_us, (uint64_t)(mirror_us > 0 ? mirror_us : 0), __ATOMIC_RELAXED);
	__atomic_add_fetch(&m->timed, 1, __ATOMIC_RELAXED);
}

void mirror_note_differed(struct mirror_stats *m, const char *query)
{
	pthread_mutex_lock(&mirrors_lock);
	snprintf(m->last_query, sizeof(m->last_query), "%s", query ? query : "");
	pthread_mutex_unlock(&mirrors_lock);
}

/* A consistent enough copy of m's figures (the lock keeps the list and
 * the text; the counters are read one by one). */
static void snapshot(const struct mirror_stats *m, struct mirror_stats *out)
{
	*out = *m;
	for (int i = 0; i < MIRROR_RESULTS; i++)
		out->n[i] = __atomic_load_n(&m->n[i], __ATOMIC_RELAXED);
	out->timed = __atomic_load_n(&m->timed, __ATOMIC_RELAXED);
	out->primary_us = __atomic_load_n(&m->primary_us, __ATOMIC_RELAXED);
	out->mirror_us = __atomic_load_n(&m->mirror_us, __ATOMIC_RELAXED);
}

static const struct admin_col mirrors_cols[] = {
	{ "database", 's' }, { "mirror", 's' }, { "sent", 'i' }, { "dropped", 'i' }, { "errors", 'i' },
	{ "differed", 'i' }, { "last_differing_query", 's' }, { "avg_primary_us", 'i' }, { "avg_mirror_us", 'i' },
};

void mirror_show(struct admin_reply *r)
{
	int ncols = (int)(sizeof(mirrors_cols) / sizeof(mirrors_cols[0]));
	reply_columns(r, mirrors_cols, ncols);
	pthread_mutex_lock(&mirrors_lock);
	for (const struct mirror_stats *m = mirrors; m; m = m->next) {
		struct mirror_stats k;
		snapshot(m, &k);
		reply_row_begin(r, ncols);
		reply_cell(r, k.db);
		reply_cell(r, k.mirror);
		reply_cell_int(r, (int64_t)k.n[MIRROR_SENT]);
		reply_cell_int(r, (int64_t)k.n[MIRROR_DROPPED]);
		reply_cell_int(r, (int64_t)k.n[MIRROR_ERROR]);
		reply_cell_int(r, (int64_t)k.n[MIRROR_DIFFERED]);
		reply_cell(r, *k.last_query ? k.last_query : NULL);
		reply_cell_int(r, k.timed ? (int64_t)(k.primary_us / k.timed) : 0);
		reply_cell_int(r, k.timed ? (int64_t)(k.mirror_us / k.timed) : 0);
		reply_row_end(r);
	}
	pthread_mutex_unlock(&mirrors_lock);
	reply_complete(r, "SHOW");
}

/* Text with a sticky failure: NULL once an allocation failed. */
struct text {
	char *p;
	size_t len, cap;
	bool failed;
};

static void text_printf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_printf(struct text *t, const char *fmt, ...)
{
	for (int tries = 0; tries < 2 && !t->failed; tries++) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->failed = true;
			return;
		}
		if (t->p && (size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = t->cap ? t->cap : 1024;
		while (cap < t->len + (size_t)n + 1)
			cap *= 2;
		char *p = realloc(t->p, cap);
		if (!p) {
			t->failed = true;
			return;
		}
		if (!t->p)
			p[0] = '\0';
		t->p = p;
		t->cap = cap;
	}
}

/* A label value: database names are plain in practice, but escape the
 * text format's three characters anyway. */
static void text_label(struct text *t, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			text_printf(t, "\\%c", *v);
		else if (*v == '\n')
			text_printf(t, "\\n");
		else
			text_printf(t, "%c", *v);
	}
}

static void text_labels(struct text *t, const char *family, const struct mirror_stats *m)
{
	text_printf(t, "%s{database=\"", family);
	text_label(t, m->db);
	text_printf(t, "\",mirror=\"");
	text_label(t, m->mirror);
	text_printf(t, "\"");
}

char *mirror_metrics_text(void)
{
	static const char *const result_names[MIRROR_RESULTS] = { "sent", "dropped", "error", "differed" };
	struct text t = { 0 };
	text_printf(&t, "%s", "");
	pthread_mutex_lock(&mirrors_lock);
	if (mirrors) {
		text_printf(&t, "# HELP sluice_mirror_transactions_total Transactions chosen for mirroring, by what became of them.\n"
				"# TYPE sluice_mirror_transactions_total counter\n");
		for (const struct mirror_stats *m = mirrors; m; m = m->next) {
			struct mirror_stats k;
			snapshot(m, &k);
			for (int i = 0; i < MIRROR_RESULTS; i++) {
				text_labels(&t, "sluice_mirror_transactions_total", &k);
				text_printf(&t, ",result=\"%s\"} %" PRIu64 "\n", result_names[i], k.n[i]);
			}
		}
		static const struct {
			const char *name, *help;
		} times[] = {
			{ "sluice_mirror_primary_seconds", "Time replayed transactions took on the primary." },
			{ "sluice_mirror_mirror_seconds", "Time replayed transactions took on the mirror." },
		};
		for (int f = 0; f < 2; f++) {
			text_printf(&t, "# HELP %s %s\n# TYPE %s summary\n", times[f].name, times[f].help, times[f].name);
			for (const struct mirror_stats *m = mirrors; m; m = m->next) {
				struct mirror_stats k;
				snapshot(m, &k);
				uint64_t us = f == 0 ? k.primary_us : k.mirror_us;
				char fam[80];
				snprintf(fam, sizeof(fam), "%s_sum", times[f].name);
				text_labels(&t, fam, &k);
				text_printf(&t, "} %" PRIu64 ".%06" PRIu64 "\n", us / 1000000, us % 1000000);
				snprintf(fam, sizeof(fam), "%s_count", times[f].name);
				text_labels(&t, fam, &k);
				text_printf(&t, "} %" PRIu64 "\n", k.timed);
			}
		}
	}
	pthread_mutex_unlock(&mirrors_lock);
	if (t.failed) {
		free(t.p);
		return NULL;
	}
	return t.p;
}

void mirror_free_all(void)
{
	pthread_mutex_lock(&mirrors_lock);
	while (mirrors) {
		struct mirror_stats *m = mirrors;
		mirrors = m->next;
		free(m);
	}
	pthread_mutex_unlock(&mirrors_lock);
}

bool mirror_queue_push(struct mirror_queue *q, struct mirror_qnode *rec, int limit)
{
	if (limit < 0 || q->n >= (uint32_t)limit)
		return false;
	rec->next = NULL;
	if (q->tail)
		q->tail->next = rec;
	else
		q->head = rec;
	q->tail = rec;
	q->n++;
	return true;
}

struct mirror_qnode *mirror_queue_pop(struct mirror_queue *q)
{
	struct mirror_qnode *rec = q->head;
	if (!rec)
		return NULL;
	q->head = rec->next;
	if (!q->head)
		q->tail = NULL;
	q->n--;
	rec->next = NULL;
	return rec;
}
