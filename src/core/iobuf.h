/*
 * iobuf.h - a bounded byte buffer: bytes live in data[start, end).
 *
 * Owns: the storage block. Blocks of the standard size come from a
 * per-thread free list, so a connection holds no buffer while it has no
 * bytes in flight (an idle client costs no buffer memory).
 * Must not: do I/O.
 */
#ifndef SLUICE_IOBUF_H
#define SLUICE_IOBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct iobuf {
	uint8_t *data;  /* storage, NULL while empty and released */
	uint32_t cap;   /* size of data */
	uint32_t start; /* first unconsumed byte */
	uint32_t end;   /* one past the last valid byte */
};

/* Standard block size and the hard cap for one buffer (a single message
 * that must be inspected whole may grow a buffer up to IOBUF_MAX). */
void iobuf_set_block_size(uint32_t size);
uint32_t iobuf_block_size(void);
#define IOBUF_MAX (1u << 20)

static inline uint32_t iobuf_len(const struct iobuf *b) { return b->end - b->start; }
static inline uint8_t *iobuf_head(const struct iobuf *b) { return b->data + b->start; }
static inline uint32_t iobuf_space(const struct iobuf *b) { return b->cap - b->end; }

/* Make room for at least n more bytes at the end (allocating, compacting
 * or growing up to IOBUF_MAX). Returns 0 or -ENOMEM / -EMSGSIZE. */
int iobuf_reserve(struct iobuf *b, uint32_t n);
/* Consume n bytes from the front; releases the block when it empties. */
void iobuf_consume(struct iobuf *b, uint32_t n);
/* Append bytes (reserving as needed). Returns 0 or negative errno. */
int iobuf_append(struct iobuf *b, const void *p, uint32_t n);
/* Move the live bytes to the front of the block. */
void iobuf_compact(struct iobuf *b);
/* Give the block back (contents dropped). */
void iobuf_release(struct iobuf *b);
/* Drop the calling thread's cached free blocks. */
void iobuf_thread_cleanup(void);

#endif
