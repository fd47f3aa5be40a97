/*
 * pgframe.h - PostgreSQL message framing and request counting for the
 * kernel fast path. Compiled twice: into the eBPF verdict programs
 * (bypass.bpf.c) and into sluice itself (unit tests, fuzzing, and the
 * hand-back of a pair from the kernel). Pure functions on small inputs:
 * no loops over unbounded data, no libc, so the verifier accepts them.
 *
 * A byte stream is cut into messages of 1 type byte + 4 length bytes
 * (the length counts itself) + body (protocol docs 55.7). The kernel sees
 * the stream in socket buffers (skbs) of any size, so a header, or the
 * status byte of a ReadyForQuery, may be split across two of them: the
 * state below survives from one skb to the next.
 */
#ifndef SLUICE_PGFRAME_H
#define SLUICE_PGFRAME_H

#ifdef __BPF__
#include <linux/types.h>
typedef __u8 pgf_u8;
typedef __u32 pgf_u32;
typedef __s32 pgf_s32;
#else
#include <stdint.h>
typedef uint8_t pgf_u8;
typedef uint32_t pgf_u32;
typedef int32_t pgf_s32;
#endif

/* Messages longer than this are a framing error (PostgreSQL's own limit
 * for most messages is 1 GB). */
#define PGF_MAX_LEN 0x40000000u

/* Framing state of one direction (the bytes one socket receives). */
struct pgframe {
	pgf_u32 left;     /* body bytes of the current message still to come */
	pgf_u8 hdr[5];    /* header of the current message, hdr_len bytes known */
	pgf_u8 hdr_len;   /* 0 = at a message boundary (when left == 0) */
	pgf_u8 type;      /* type of the current message once hdr_len == 5 */
	pgf_u8 bad;       /* framing error seen: the stream cannot be followed */
};

enum pgf_feed {
	PGF_MORE = 0,   /* header still incomplete */
	PGF_HEADER = 1, /* a header just completed: type and left are set */
	PGF_BAD = -1,   /* impossible length */
};

static inline int pgf_at_boundary(const struct pgframe *f)
{
	return f->hdr_len == 0 && f->left == 0;
}

/* Bytes of header still needed (0 when inside a body or at rest). */
static inline pgf_u32 pgf_hdr_need(const struct pgframe *f)
{
	if (f->hdr_len == 5)
		return 0;
	return 5u - f->hdr_len;
}

/* Feed one header byte. */
static inline int pgf_hdr_byte(struct pgframe *f, pgf_u8 b)
{
	/* Constant indexes only: the verifier refuses variable-offset stack writes. */
	switch (f->hdr_len) {
	case 0: f->hdr[0] = b; f->hdr_len = 1; return PGF_MORE;
	case 1: f->hdr[1] = b; f->hdr_len = 2; return PGF_MORE;
	case 2: f->hdr[2] = b; f->hdr_len = 3; return PGF_MORE;
	case 3: f->hdr[3] = b; f->hdr_len = 4; return PGF_MORE;
	case 4: f->hdr[4] = b; f->hdr_len = 5; break;
	default: return PGF_BAD;
	}
	pgf_u32 len = ((pgf_u32)f->hdr[1] << 24) | ((pgf_u32)f->hdr[2] << 16) |
		      ((pgf_u32)f->hdr[3] << 8) | (pgf_u32)f->hdr[4];
	if (len < 4 || len > PGF_MAX_LEN) {
		f->bad = 1;
		return PGF_BAD;
	}
	f->type = f->hdr[0];
	f->left = len - 4;
	return PGF_HEADER;
}

/* Consume up to avail body bytes of the current message; returns how many.
 * When the body ends the state returns to the boundary. */
static inline pgf_u32 pgf_body(struct pgframe *f, pgf_u32 avail)
{
	pgf_u32 take = avail < f->left ? avail : f->left;
	f->left -= take;
	if (f->left == 0 && f->hdr_len == 5)
		f->hdr_len = 0;
	return take;
}

/* A header completed with an empty body: the message is over. */
static inline void pgf_finish_empty(struct pgframe *f)
{
	if (f->hdr_len == 5 && f->left == 0)
		f->hdr_len = 0;
}

/* ---- what a message means for the pair ---- */

enum pgf_verdict {
	PGF_OK = 0,      /* the kernel may carry it */
	PGF_USER = 1,    /* sluice must see it: hand the pair to user space */
};

/* Effect of one client message on the pair's request count. */
enum pgf_effect {
	PGF_NONE = 0,   /* no answer of its own counted (Flush, COPY data) */
	PGF_REQUEST = 1, /* Query, Sync, FunctionCall: answered by one ReadyForQuery */
	PGF_BATCH = 2,   /* extended-protocol message: part of a batch up to Sync */
};

static inline int pgf_client_effect(pgf_u8 type)
{
	switch (type) {
	case 'Q': case 'S': case 'F':
		return PGF_REQUEST;
	case 'P': case 'B': case 'D': case 'C': case 'E':
		return PGF_BATCH;
	default:
		return PGF_NONE;
	}
}

/* Options that change what the kernel may carry for a client. */
#define PGF_OPT_TRACKING 1u  /* prepared-statement tracking: named statements need sluice */
#define PGF_OPT_SESSION  2u  /* session mode: the server stays until Terminate */

/* Can the kernel carry this client message? first[0..n) are the first
 * body bytes available (n may be short when the body goes on in a later
 * skb: then anything that depends on them goes to user space). Query texts
 * are judged separately (pgf_sql_needs_user) when tracking is on. */
static inline int pgf_client_verdict(pgf_u8 type, const pgf_u8 *first, pgf_u32 n, pgf_u32 opts)
{
	switch (type) {
	case 'Q': case 'S': case 'F': case 'E': case 'H':
	case 'd': case 'c': case 'f':
		return PGF_OK;
	case 'P':
		/* Parse: statement name first; "" is the unnamed statement. */
		if (!(opts & PGF_OPT_TRACKING))
			return PGF_OK;
		return n >= 1 && first[0] == 0 ? PGF_OK : PGF_USER;
	case 'B':
		/* Bind: portal name, then statement name. */
		if (!(opts & PGF_OPT_TRACKING))
			return PGF_OK;
		return n >= 2 && first[0] == 0 && first[1] == 0 ? PGF_OK : PGF_USER;
	case 'D': case 'C':
		/* Describe / Close: 'S' or 'P', then a name. Portals are fine. */
		if (!(opts & PGF_OPT_TRACKING))
			return PGF_OK;
		if (n >= 1 && first[0] == 'P')
			return PGF_OK;
		return n >= 2 && first[0] == 'S' && first[1] == 0 ? PGF_OK : PGF_USER;
	default:
		/* Terminate, and anything sluice does not know. */
		return PGF_USER;
	}
}

/* Can the kernel carry this server message to the client? */
static inline int pgf_server_verdict(pgf_u8 type)
{
	switch (type) {
	case '1': case '2': case '3': case 'A': case 'C': case 'D':
	case 'I': case 'N': case 'T': case 'V': case 'Z': case 'n': case 's':
	case 't': case 'G': case 'H': case 'W': case 'd': case 'c':
		return PGF_OK;
	default:
		/* ParameterStatus ('S') changes what sluice must keep in step;
		 * an ErrorResponse ('E') is counted by SQLSTATE class (SHOW STATS,
		 * /metrics) and may end a pin; authentication or unknown messages
		 * are not for the fast path. */
		return PGF_USER;
	}
}

/* Longest Query text the kernel inspects when tracking is on; a longer
 * one goes to user space, which inspects up to 64 KiB. A power of two. */
#define PGF_SQL_MAX 1024u

/* 1 when y == 0, without a branch: the verifier follows every branch of
 * a loop separately, so the text scan below must have none but its exit.
 * The empty asm keeps the compiler from turning it back into a compare. */
static inline unsigned long long pgf_is_zero(unsigned long long y)
{
	unsigned long long z = y | (0ull - y);
	__asm__ volatile("" : "+r"(z));
	return (~z) >> 63;
}

/* The last 4, 6, 7 or 8 bytes of the rolling window w (newest byte lowest)
 * spell kw. */
#define PGF_W4(a, b, c, d) \
	(((unsigned long long)(a) << 24) | ((unsigned long long)(b) << 16) | ((unsigned long long)(c) << 8) | (d))
#define PGF_W6(a, b, c, d, e, f) (((unsigned long long)PGF_W4(a, b, c, d) << 16) | ((unsigned long long)(e) << 8) | (f))
#define PGF_W7(a, b, c, d, e, f, g) (((unsigned long long)PGF_W6(a, b, c, d, e, f) << 8) | (g))
#define PGF_W8(a, b, c, d, e, f, g, h) (((unsigned long long)PGF_W7(a, b, c, d, e, f, g) << 8) | (h))

/* Does the rolling window (last 8 bytes of the text, each OR 0x20, newest
 * lowest) end with a word sluice reacts to? c | 0x20 equals a lower-case
 * letter only for that letter in either case, which is all the keywords
 * need. */
static inline unsigned long long pgf_sql_window_hit(unsigned long long w)
{
	unsigned long long hit = 0;
	hit |= pgf_is_zero((w & 0xffffffffull) ^ PGF_W4('t', 'e', 'm', 'p'));
	hit |= pgf_is_zero((w & 0xffffffffull) ^ PGF_W4('h', 'o', 'l', 'd'));
	hit |= pgf_is_zero((w & 0xffffffffffffull) ^ PGF_W6('l', 'i', 's', 't', 'e', 'n'));
	hit |= pgf_is_zero((w & 0xffffffffffffffull) ^ PGF_W7('p', 'r', 'e', 'p', 'a', 'r', 'e'));
	hit |= pgf_is_zero((w & 0xffffffffffffffull) ^ PGF_W7('d', 'i', 's', 'c', 'a', 'r', 'd'));
	hit |= pgf_is_zero(w ^ PGF_W8('a', 'd', 'v', 'i', 's', 'o', 'r', 'y'));
	hit |= pgf_is_zero(w ^ PGF_W8('d', 'e', 'a', 'l', 'l', 'o', 'c', 'a'));
	return hit;
}

/* Must sluice see this Query text (tracking on)? Conservative: a text that
 * contains any word sluice reacts to (session-bound things: LISTEN,
 * temporary tables, WITH HOLD cursors, PREPARE, advisory locks; statement
 * cache changes: DISCARD, DEALLOCATE) goes to user space, even inside a
 * longer word or a string. The kernel runs the same window one byte per
 * bpf_loop turn. */
static inline int pgf_sql_needs_user(const pgf_u8 *s, pgf_u32 n)
{
	unsigned long long w = 0, hit = 0;
	if (n > PGF_SQL_MAX)
		return 1;
	for (pgf_u32 i = 0; i < n; i++) {
		w = (w << 8) | (pgf_u8)(s[i] | 0x20);
		hit |= pgf_sql_window_hit(w);
	}
	return hit != 0;
}

#endif
