/*
 * shard_copy.c - see shard_copy.h.
 */
#include "shard_copy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pghash.h"

/* A growing block of bytes. */
struct bytes {
	uint8_t *p;
	size_t len, cap;
};

struct shard_copy {
	struct shard_copy_format fmt;
	int n_shards;
	size_t budget, used;
	struct bytes *out;   /* per shard (a replicated table: out[0] only) */
	struct bytes line;   /* the row being read, across pieces */
	struct bytes header; /* HEADER: the first line, for every shard */
	bool in_quotes;      /* CSV: inside a quoted field of the row being read */
	bool escaped;        /* CSV: the last byte was an escape inside quotes */
	bool header_seen;
	bool ended;          /* the \. end marker: the rest is ignored */
	bool failed;
	char sqlstate[6];
	char msg[240];
};

static void fail(struct shard_copy *s, const char *sqlstate, const char *fmt, ...)
{
	if (s->failed)
		return;
	s->failed = true;
	snprintf(s->sqlstate, sizeof(s->sqlstate), "%s", sqlstate);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->msg, sizeof(s->msg), fmt, ap);
	va_end(ap);
}

const char *shard_copy_error(const struct shard_copy *s, const char **message)
{
	*message = s->msg;
	return s->sqlstate;
}

static bool put(struct shard_copy *s, struct bytes *b, const uint8_t *p, size_t n)
{
	if (s->used + n > s->budget) {
		fail(s, "54000", "COPY into a sharded database needs more than shard_buffer_size (%zu bytes) to hold "
		     "its rows until the end: send them in several COPY statements, or raise shard_buffer_size",
		     s->budget);
		return false;
	}
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *q = realloc(b->p, cap);
		if (!q) {
			fail(s, "53200", "out of memory");
			return false;
		}
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	s->used += n;
	return true;
}

struct shard_copy *shard_copy_new(const struct shard_copy_format *fmt, int n_shards, size_t budget)
{
	struct shard_copy *s = calloc(1, sizeof(*s));
	if (!s || !(s->out = calloc((size_t)n_shards, sizeof(*s->out)))) {
		free(s);
		return NULL;
	}
	s->fmt = *fmt;
	s->n_shards = n_shards;
	s->budget = budget;
	return s;
}

void shard_copy_free(struct shard_copy *s)
{
	if (!s)
		return;
	for (int i = 0; i < s->n_shards; i++)
		free(s->out[i].p);
	free(s->out);
	free(s->line.p);
	free(s->header.p);
	free(s);
}

/* Text format: the key field's value (backslash escapes undone) into
 * out; *is_null when it is the NULL string. False when the row has too
 * few fields. */
static bool text_key(const struct shard_copy *s, const uint8_t *row, size_t n, char *out, size_t cap, size_t *len,
		     bool *is_null)
{
	size_t i = 0;
	for (int f = 0; f < s->fmt.key; f++) {
		while (i < n && row[i] != (uint8_t)s->fmt.delim)
			i += row[i] == '\\' && i + 1 < n ? 2 : 1;
		if (i >= n)
			return false;
		i++;
	}
	size_t start = i;
	while (i < n && row[i] != (uint8_t)s->fmt.delim)
		i += row[i] == '\\' && i + 1 < n ? 2 : 1;
	size_t raw = i - start;
	*is_null = raw == strlen(s->fmt.null) && memcmp(row + start, s->fmt.null, raw) == 0;
	size_t o = 0;
	for (size_t k = start; k < i && o + 1 < cap; k++) {
		uint8_t c = row[k];
		if (c == '\\' && k + 1 < i) {
			c = row[++k];
			switch (c) {
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 't': c = '\t'; break;
			case 'v': c = '\v'; break;
			default:
				if (c >= '0' && c <= '7') { /* up to three octal digits */
					int v = c - '0';
					for (int d = 0; d < 2 && k + 1 < i && row[k + 1] >= '0' && row[k + 1] <= '7'; d++)
						v = v * 8 + (row[++k] - '0');
					c = (uint8_t)v;
				}
				break;
			}
		}
		out[o++] = (char)c;
	}
	*len = o;
	return true;
}

/* CSV: the key field's value (quotes undone); NULL is the NULL string
 * unquoted. */
static bool csv_key(const struct shard_copy *s, const uint8_t *row, size_t n, char *out, size_t cap, size_t *len,
		    bool *is_null)
{
	size_t i = 0, o = 0;
	for (int f = 0;; f++) {
		bool quoted = false, in_q = false;
		size_t start = i;
		o = 0;
		while (i < n) {
			uint8_t c = row[i];
			if (in_q) {
				if (c == (uint8_t)s->fmt.escape && i + 1 < n && row[i + 1] == (uint8_t)s->fmt.quote) {
					if (f == s->fmt.key && o + 1 < cap)
						out[o++] = (char)row[i + 1];
					i += 2;
					continue;
				}
				if (c == (uint8_t)s->fmt.quote) {
					in_q = false;
					i++;
					continue;
				}
			} else if (c == (uint8_t)s->fmt.quote) {
				in_q = quoted = true;
				i++;
				continue;
			} else if (c == (uint8_t)s->fmt.delim) {
				break;
			}
			if (f == s->fmt.key && o + 1 < cap)
				out[o++] = (char)c;
			i++;
		}
		if (f == s->fmt.key) {
			size_t raw = i - start;
			*is_null = !quoted && raw == strlen(s->fmt.null) && memcmp(row + start, s->fmt.null, raw) == 0;
			*len = o;
			return true;
		}
		if (i >= n)
			return false;
		i++; /* the delimiter */
	}
}

/* One whole row (its newline included) to its shard. */
static bool route_row(struct shard_copy *s, const uint8_t *row, size_t n)
{
	if (!s->fmt.csv && n >= 2 && row[0] == '\\' && row[1] == '.' && (n == 2 || row[2] == '\n' || row[2] == '\r')) {
		s->ended = true; /* the end marker: PostgreSQL reads no further */
		return true;
	}
	if (s->fmt.header && !s->header_seen) {
		s->header_seen = true;
		return put(s, &s->header, row, n);
	}
	if (s->fmt.key < 0)
		return put(s, &s->out[0], row, n);
	size_t body = n;
	while (body && (row[body - 1] == '\n' || row[body - 1] == '\r'))
		body--;
	/* The key is never longer than its row: no value is cut short. */
	char small[256], *key = body < sizeof(small) ? small : malloc(body + 1);
	if (!key) {
		fail(s, "53200", "out of memory");
		return false;
	}
	size_t klen = 0;
	bool is_null = false;
	bool ok = s->fmt.csv ? csv_key(s, row, body, key, body + 1, &klen, &is_null)
			     : text_key(s, row, body, key, body + 1, &klen, &is_null);
	int shard = !ok ? -1 : is_null ? 0 : pghash_shard_text(s->fmt.key_type, key, klen, s->n_shards);
	if (!ok) {
		fail(s, "22P04", "missing data for the shard key's column in a row of the COPY data");
	} else if (shard < 0) {
		fail(s, "22P02", "invalid input syntax for type %s: \"%.*s\"", pghash_type_name(s->fmt.key_type),
		     klen > 60 ? 60 : (int)klen, key);
	}
	if (key != small)
		free(key);
	if (!ok || shard < 0)
		return false;
	return put(s, &s->out[shard], row, n);
}

/* A row ends: route it, from line (what earlier pieces held of it) and
 * the piece's p[0, n). */
static bool row_done(struct shard_copy *s, const uint8_t *p, size_t n)
{
	if (!s->line.len)
		return route_row(s, p, n);
	if (!put(s, &s->line, p, n))
		return false;
	bool ok = route_row(s, s->line.p, s->line.len);
	s->used -= s->line.len; /* counted again where it went */
	s->line.len = 0;
	return ok;
}

int shard_copy_feed(struct shard_copy *s, const uint8_t *data, size_t len)
{
	size_t from = 0;
	for (size_t i = 0; i < len && !s->ended && !s->failed; i++) {
		uint8_t c = data[i];
		if (s->escaped) { /* CSV: the byte after an escape inside quotes */
			s->escaped = false;
			continue;
		}
		if (s->fmt.csv && s->in_quotes && c == (uint8_t)s->fmt.escape && s->fmt.escape != s->fmt.quote) {
			s->escaped = true;
			continue;
		}
		if (s->fmt.csv && c == (uint8_t)s->fmt.quote) {
			s->in_quotes = !s->in_quotes; /* a doubled quote toggles twice */
			continue;
		}
		if (c != '\n' || s->in_quotes)
			continue;
		if (!row_done(s, data + from, i + 1 - from))
			return -1;
		from = i + 1;
	}
	if (!s->ended && !s->failed && from < len)
		(void)put(s, &s->line, data + from, len - from);
	return s->failed ? -1 : 0;
}

int shard_copy_end(struct shard_copy *s)
{
	if (s->failed)
		return -1;
	if (s->in_quotes) {
		fail(s, "22P04", "unterminated CSV quoted field");
		return -1;
	}
	if (s->line.len && !s->ended && !row_done(s, (const uint8_t *)"\n", 1))
		return -1;
	return 0;
}

uint64_t shard_copy_shards(const struct shard_copy *s)
{
	uint64_t all = s->n_shards >= 64 ? ~UINT64_C(0) : (UINT64_C(1) << s->n_shards) - 1, got = 0;
	if (s->fmt.key < 0)
		return s->out[0].len ? all : 0;
	for (int i = 0; i < s->n_shards; i++)
		if (s->out[i].len)
			got |= UINT64_C(1) << i;
	return got;
}

const uint8_t *shard_copy_data(const struct shard_copy *s, int shard, size_t *len)
{
	const struct bytes *b = &s->out[s->fmt.key < 0 ? 0 : shard];
	*len = b->len;
	return b->p;
}

const uint8_t *shard_copy_header(const struct shard_copy *s, size_t *len)
{
	*len = s->header.len;
	return s->header.p;
}
