/*
 * iobuf.c - see iobuf.h. The free list is per thread (no locking); a
 * block freed on another thread than it was allocated on simply joins
 * that thread's list.
 */
#include "iobuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint32_t block_size = 16384;

/* Cached free blocks of block_size bytes, linked through their first bytes. */
struct free_block { struct free_block *next; };
static __thread struct free_block *free_blocks;
static __thread unsigned n_free_blocks;
#define MAX_CACHED_BLOCKS 256

void iobuf_set_block_size(uint32_t size)
{
	if (size < 1024)
		size = 1024;
	if (size > IOBUF_MAX)
		size = IOBUF_MAX;
	block_size = size;
}

uint32_t iobuf_block_size(void) { return block_size; }

static uint8_t *block_get(void)
{
	struct free_block *f = free_blocks;
	if (f) {
		free_blocks = f->next;
		n_free_blocks--;
		return (uint8_t *)f;
	}
	return malloc(block_size);
}

static void block_put(uint8_t *p, uint32_t cap)
{
	if (cap != block_size || n_free_blocks >= MAX_CACHED_BLOCKS) {
		free(p);
		return;
	}
	struct free_block *f = (struct free_block *)p;
	f->next = free_blocks;
	free_blocks = f;
	n_free_blocks++;
}

void iobuf_compact(struct iobuf *b)
{
	if (b->start == 0)
		return;
	uint32_t len = iobuf_len(b);
	if (len)
		memmove(b->data, b->data + b->start, len);
	b->start = 0;
	b->end = len;
}

int iobuf_reserve(struct iobuf *b, uint32_t n)
{
	if (!b->data) {
		uint32_t want = n > block_size ? n : block_size;
		if (want > IOBUF_MAX)
			return -EMSGSIZE;
		b->data = want == block_size ? block_get() : malloc(want);
		if (!b->data)
			return -ENOMEM;
		b->cap = want;
		b->start = b->end = 0;
		return 0;
	}
	if (iobuf_space(b) >= n)
		return 0;
	uint32_t len = iobuf_len(b);
	if (b->cap - len >= n) {
		iobuf_compact(b);
		return 0;
	}
	if ((uint64_t)len + n > IOBUF_MAX)
		return -EMSGSIZE;
	uint32_t want = b->cap;
	while (want < len + n)
		want *= 2;
	if (want > IOBUF_MAX)
		want = IOBUF_MAX;
	uint8_t *p = malloc(want);
	if (!p)
		return -ENOMEM;
	memcpy(p, b->data + b->start, len);
	block_put(b->data, b->cap);
	b->data = p;
	b->cap = want;
	b->start = 0;
	b->end = len;
	return 0;
}

void iobuf_release(struct iobuf *b)
{
	if (b->data)
		block_put(b->data, b->cap);
	b->data = NULL;
	b->cap = b->start = b->end = 0;
}

void iobuf_consume(struct iobuf *b, uint32_t n)
{
	b->start += n;
	if (b->start >= b->end)
		iobuf_release(b);
}

int iobuf_append(struct iobuf *b, const void *p, uint32_t n)
{
	int rc = iobuf_reserve(b, n);
	if (rc)
		return rc;
	memcpy(b->data + b->end, p, n);
	b->end += n;
	return 0;
}

void iobuf_thread_cleanup(void)
{
	while (free_blocks) {
		struct free_block *f = free_blocks;
		free_blocks = f->next;
		free(f);
	}
	n_free_blocks = 0;
}
