/*
 * test_mirror_core.c - mirror.c: the bounded queue, the counters and
 * their /metrics text.
 */
#include <stdlib.h>
#include <string.h>

#include "mirror.h"
#include "unit.h"

struct rec {
	struct mirror_qnode qn;
	int v;
};

static void test_queue(void)
{
	struct mirror_queue q = { 0 };
	struct rec r[5];
	for (int i = 0; i < 5; i++)
		r[i].v = i;
	CHECK(mirror_queue_pop(&q) == NULL);
	CHECK(!mirror_queue_push(&q, &r[0].qn, 0)); /* limit 0: nothing waits */
	for (int i = 0; i < 3; i++)
		CHECK(mirror_queue_push(&q, &r[i].qn, 3));
	CHECK(!mirror_queue_push(&q, &r[3].qn, 3)); /* full */
	CHECK(q.n == 3);
	CHECK(mirror_queue_push(&q, &r[3].qn, 4)); /* a larger limit (RELOAD) applies at once */
	for (int i = 0; i < 4; i++) {
		struct rec *got = (struct rec *)mirror_queue_pop(&q);
		CHECK(got && got->v == i); /* FIFO */
	}
	CHECK(mirror_queue_pop(&q) == NULL && q.n == 0 && q.tail == NULL);
	CHECK(mirror_queue_push(&q, &r[4].qn, 1));
	CHECK((struct rec *)mirror_queue_pop(&q) == &r[4]);
}

static void test_stats_and_metrics(void)
{
	char *text = mirror_metrics_text();
	CHECK(text && *text == '\0'); /* nothing mirrored: no families */
	free(text);
	struct mirror_stats *a = mirror_stats_get("app", "shadow");
	CHECK(a != NULL);
	CHECK(mirror_stats_get("app", "shadow") == a);
	CHECK(mirror_stats_get("app", "other") != a);
	mirror_count(a, MIRROR_SENT);
	mirror_count(a, MIRROR_SENT);
	mirror_count(a, MIRROR_DIFFERED);
	mirror_note_times(a, 1500000, 250);
	char longq[400];
	memset(longq, 'x', sizeof(longq) - 1);
	longq[sizeof(longq) - 1] = '\0';
	mirror_note_differed(a, longq);
	CHECK(strlen(a->last_query) == MIRROR_QUERY_MAX);
	text = mirror_metrics_text();
	CHECK(text != NULL);
	if (text) {
		CHECK(strstr(text, "sluice_mirror_transactions_total{database=\"app\",mirror=\"shadow\",result=\"sent\"} 2\n"));
		CHECK(strstr(text, "sluice_mirror_transactions_total{database=\"app\",mirror=\"shadow\",result=\"differed\"} 1\n"));
		CHECK(strstr(text, "sluice_mirror_transactions_total{database=\"app\",mirror=\"other\",result=\"dropped\"} 0\n"));
		CHECK(strstr(text, "sluice_mirror_primary_seconds_sum{database=\"app\",mirror=\"shadow\"} 1.500000\n"));
		CHECK(strstr(text, "sluice_mirror_mirror_seconds_sum{database=\"app\",mirror=\"shadow\"} 0.000250\n"));
		CHECK(strstr(text, "sluice_mirror_mirror_seconds_count{database=\"app\",mirror=\"shadow\"} 1\n"));
		CHECK(strstr(text, "# TYPE sluice_mirror_transactions_total counter\n"));
	}
	free(text);
	mirror_free_all();
}

UNIT_MAIN({
	test_queue();
	test_stats_and_metrics();
})
