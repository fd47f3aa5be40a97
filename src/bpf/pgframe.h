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

/* What the client stream says about a COPY FROM STDIN its latest
 * Execute/Query may start (copy_watch.h): how many Syncs went since it,
 * and how many of those before its CopyDone/CopyFail. PostgreSQL ignores
 * a Sync it reads inside a running copy, so sluice needs these to count
 * answers when it takes the pair back on the CopyInResponse. */
struct pgf_copy {
	pgf_u32 syncs;     /* Syncs since the latest Execute/Query */
	pgf_u32 end_syncs; /* syncs at the first CopyDone/CopyFail after it */
	pgf_u32 flags;     /* PGF_CP_* */
};
#define PGF_CP_STARTED 1u  /* an Execute/Query went (on this or an earlier link) */
#define PGF_CP_QUERY   2u  /* it was a simple Query */
#define PGF_CP_ENDED   4u  /* end_syncs is set */
#define PGF_CP_MIXED   8u  /* another request went after it, before its end */

/* Note one client message the kernel is about to carry. PGF_USER for a
 * request behind a CopyDone/CopyFail: which Syncs that copy's answers
 * skip is then sluice's to count, with the whole stream in view (sluice
 * clears the note when it gives the pair back). */
static inline int pgf_copy_note(struct pgf_copy *cp, pgf_u8 type)
{
	switch (type) {
	case 'd': case 'H':
		return PGF_OK;
	case 'S':
		if (cp->syncs < 0xffffu)
			cp->syncs++;
		return PGF_OK;
	case 'c': case 'f':
		if (!(cp->flags & PGF_CP_ENDED)) {
			cp->flags |= PGF_CP_ENDED;
			cp->end_syncs = cp->syncs;
		}
		return PGF_OK;
	default:
		if (cp->flags & PGF_CP_ENDED)
			return PGF_USER;
		if (type == 'E' || type == 'Q') {
			cp->flags = PGF_CP_STARTED | (type == 'Q' ? PGF_CP_QUERY : 0);
			cp->syncs = 0;
			cp->end_syncs = 0;
		} else {
			cp->flags |= PGF_CP_MIXED;
		}
		return PGF_OK;
	}
}

/* Options that change what the kernel may carry for a client. */
#define PGF_OPT_TRACKING 1u  /* prepared-statement tracking: named statements need sluice */
#define PGF_OPT_SESSION  2u  /* session mode: the server stays until Terminate */
#define PGF_OPT_SQL      4u  /* sluice follows Query/Parse texts and the unnamed statement
			      * (transaction and statement mode) */
#define PGF_OPT_OWN_UNNAMED 8u /* the linked server holds this client's unnamed statement:
			      * the kernel saw its unnamed Parse on this link */

/* Can the kernel carry this client message? first[0..n) are the first
 * body bytes available (n may be short when the body goes on in a later
 * skb: then anything that depends on them goes to user space). Query texts
 * are judged separately (pgf_sql_needs_user) when PGF_OPT_SQL is set. The
 * unnamed statement outlives transactions, so a server may hold another
 * client's: a Bind or Describe of it goes to user space unless the kernel
 * saw this client parse it on this link (PGF_OPT_OWN_UNNAMED). */
static inline int pgf_client_verdict(pgf_u8 type, const pgf_u8 *first, pgf_u32 n, pgf_u32 opts)
{
	int named = !(opts & PGF_OPT_TRACKING);  /* named statements may pass */
	int unnamed = !(opts & PGF_OPT_SQL) || (opts & PGF_OPT_OWN_UNNAMED);
	switch (type) {
	case 'Q': case 'S': case 'F': case 'E': case 'H':
	case 'd': case 'c': case 'f':
		return PGF_OK;
	case 'P':
		/* Parse: statement name first; "" is the unnamed statement. */
		return named || (n >= 1 && first[0] == 0) ? PGF_OK : PGF_USER;
	case 'B':
		/* Bind: portal name, then statement name. */
		if (n >= 2 && first[0] == 0 && first[1] == 0)
			return unnamed ? PGF_OK : PGF_USER;
		if (n >= 2 && first[0] == 0)
			return named ? PGF_OK : PGF_USER;
		return named && unnamed ? PGF_OK : PGF_USER; /* its statement is further on */
	case 'D': case 'C':
		/* Describe / Close: 'S' or 'P', then a name. Portals are fine,
		 * and so is closing the unnamed statement (it drops it). */
		if (named && unnamed)
			return PGF_OK;
		if (n >= 1 && first[0] == 'P')
			return PGF_OK;
		if (n >= 2 && first[0] == 'S' && first[1] == 0)
			return type == 'C' || unnamed ? PGF_OK : PGF_USER;
		return n >= 2 && first[0] == 'S' && named ? PGF_OK : PGF_USER;
	default:
		/* Terminate, and anything sluice does not know. */
		return PGF_USER;
	}
}

/* What a client message the kernel carries does to the client's unnamed
 * statement on the linked server: 1 parses it, 0 drops it (a simple Query,
 * or Close of it), -1 nothing. */
static inline int pgf_client_unnamed_effect(pgf_u8 type, const pgf_u8 *first, pgf_u32 n)
{
	if (type == 'P' && n >= 1 && first[0] == 0)
		return 1;
	if (type == 'Q' || (type == 'C' && n >= 2 && first[0] == 'S' && first[1] == 0))
		return 0;
	return -1;
}

/* Can the kernel carry this server message to the client? */
static inline int pgf_server_verdict(pgf_u8 type)
{
	switch (type) {
	case '1': case '2': case '3': case 'A': case 'C': case 'D':
	case 'I': case 'N': case 'T': case 'V': case 'Z': case 'n': case 's':
	case 't': case 'H': case 'W': case 'd': case 'c':
		return PGF_OK;
	default:
		/* CopyInResponse ('G'): sluice counts the Syncs the client sent
		 * into the copy (copy_watch.h), PostgreSQL answers none of them
		 * if it runs. ParameterStatus ('S') changes what sluice must keep in step;
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
 * lowest) end with a word sluice reacts to wherever it stands? c | 0x20
 * equals a lower-case letter only for that letter in either case, which
 * is all the keywords need. */
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
	hit |= pgf_is_zero(w ^ PGF_W8('s', 'e', 't', '_' | 0x20, 'c', 'o', 'n', 'f'));
	return hit;
}

/* The window over the last bytes of the text: whitespace (1) or not (0),
 * without a branch. */
static inline unsigned long long pgf_is_space(pgf_u8 c)
{
	return pgf_is_zero(c ^ ' ') | pgf_is_zero(c ^ '\t') | pgf_is_zero(c ^ '\n') | pgf_is_zero(c ^ '\r');
}

/* State of a Query text scan, one byte at a time (no branch: the kernel
 * runs it in a bpf_loop callback, which the verifier must see converge). */
struct pgf_sqlscan {
	unsigned long long w;    /* last 8 bytes, each OR 0x20, newest lowest */
	unsigned long long hit;  /* non-zero: sluice must see the text */
	unsigned long long semi; /* a ';' was seen: another statement may follow */
};

static inline void pgf_sql_begin(struct pgf_sqlscan *x)
{
	x->w = 0;
	x->hit = 0;
	x->semi = 0;
}

static inline void pgf_sql_byte(struct pgf_sqlscan *x, pgf_u8 c)
{
	unsigned long long is_semi = pgf_is_zero(c ^ ';');
	/* Anything but blanks after a ';': a second statement. */
	x->hit |= x->semi & (1ull ^ (pgf_is_space(c) | is_semi));
	x->semi |= is_semi;
	x->w = (x->w << 8) | (pgf_u8)(c | 0x20);
	x->hit |= pgf_sql_window_hit(x->w);
}

/* Is kw (lower case, len letters) the word at s[0..n)? c | 0x20 matches
 * a letter in either case. */
static inline int pgf_sql_word_is(const pgf_u8 *s, pgf_u32 n, const char *kw, pgf_u32 len)
{
	if (n < len)
		return 0;
	for (pgf_u32 i = 0; i < len; i++)
		if ((pgf_u8)(s[i] | 0x20) != (pgf_u8)kw[i])
			return 0;
	if (n == len)
		return 1;
	pgf_u8 after = (pgf_u8)(s[len] | 0x20);
	return !((after >= 'a' && after <= 'z') || (s[len] >= '0' && s[len] <= '9') || s[len] == '_' ||
		 s[len] >= 0x80);
}

/* Does the text begin with a statement sluice follows only where it
 * begins one (SET, RESET, DO, CALL, LOAD, EXECUTE), or with anything
 * that could hide one (blanks, a comment, a parenthesis)? A second
 * statement, after ';', goes to user space whatever it is. Only the first
 * PGF_SQL_FIRST bytes are read, at fixed offsets (no loop for the
 * verifier to unroll). */
#define PGF_SQL_FIRST 8u
static inline int pgf_sql_first_word_needs_user(const pgf_u8 *s, pgf_u32 n)
{
	if (n == 0)
		return 0;
	pgf_u8 c = s[0];
	if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '(' || c == '-' || c == '/')
		return 1;
	return pgf_sql_word_is(s, n, "set", 3) || pgf_sql_word_is(s, n, "reset", 5) ||
	       pgf_sql_word_is(s, n, "do", 2) || pgf_sql_word_is(s, n, "call", 4) ||
	       pgf_sql_word_is(s, n, "load", 4) || pgf_sql_word_is(s, n, "execute", 7);
}

static inline int pgf_sql_end(struct pgf_sqlscan *x)
{
	return x->hit != 0;
}

/* Must sluice see this Query text? Conservative: a text that contains a
 * word sluice reacts to anywhere (session-bound things: LISTEN, temporary
 * tables, WITH HOLD cursors, PREPARE, advisory locks, set_config;
 * statement cache changes: DISCARD, DEALLOCATE), even inside a longer word
 * or a string, or begins with SET, RESET, DO, CALL, LOAD or EXECUTE, or
 * holds more than one statement, goes to user space. The kernel runs the
 * same byte steps one per bpf_loop turn. */
static inline int pgf_sql_needs_user(const pgf_u8 *s, pgf_u32 n)
{
	struct pgf_sqlscan x;
	if (n > PGF_SQL_MAX)
		return 1;
	if (pgf_sql_first_word_needs_user(s, n))
		return 1;
	pgf_sql_begin(&x);
	for (pgf_u32 i = 0; i < n; i++)
		pgf_sql_byte(&x, s[i]);
	return pgf_sql_end(&x);
}

#endif
