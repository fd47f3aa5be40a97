/*
 * expect.c - see expect.h.
 */
#include "expect.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int expect_push(struct expect_queue *q, struct expect e)
{
	if (q->len == q->cap) {
		uint32_t ncap = q->cap ? q->cap * 2 : 16;
		struct expect *n = malloc(ncap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		for (uint32_t i = 0; i < q->len; i++)
			n[i] = q->ring[(q->head + i) % q->cap];
		free(q->ring);
		q->ring = n;
		q->cap = ncap;
		q->head = 0;
	}
	q->ring[(q->head + q->len) % q->cap] = e;
	q->len++;
	return 0;
}

void expect_pop(struct expect_queue *q)
{
	if (!q->len)
		return;
	q->head = (q->head + 1) % q->cap;
	q->len--;
	if (!q->len)
		q->head = 0;
}

void expect_remove(struct expect_queue *q, uint32_t i)
{
	if (i >= q->len)
		return;
	for (uint32_t k = i; k + 1 < q->len; k++)
		q->ring[(q->head + k) % q->cap] = q->ring[(q->head + k + 1) % q->cap];
	q->len--;
	if (!q->len)
		q->head = 0;
}

void expect_free(struct expect_queue *q)
{
	free(q->ring);
	memset(q, 0, sizeof(*q));
}
