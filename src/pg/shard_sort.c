/*
 * shard_sort.c - see shard_sort.h.
 */
#include "shard_sort.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iobuf.h"
#include "pg_proto.h"
#include "shard_merge.h"

/* How a key's values compare. */
enum key_class { KEY_INT, KEY_NUMERIC, KEY_FLOAT, KEY_BOOL, KEY_TIME, KEY_BYTES, KEY_CHAR };

/* One key's value in a row kept. */
struct key_value {
	bool null;
	int8_t rank;      /* NUMERIC, FLOAT: -1 -infinity, 0 finite, 1 infinity, 2 NaN */
	int64_t i;        /* INT, BOOL, TIME */
	double d;         /* FLOAT */
	const char *p;    /* NUMERIC (NUL-terminated), BYTES, CHAR: the text */
	uint32_t n;
};

struct row {
	uint8_t *body;    /* the DataRow's body */
	uint32_t len;
	size_t bytes;     /* its allocation, for the budget */
	struct key_value k[];
};

struct shard_sort {
	struct shard_sort_key keys[SHARD_SORT_MAX_KEYS];
	int n_keys;
	int column[SHARD_SORT_MAX_KEYS]; /* each key's output column (from 0) */
	uint8_t class[SHARD_SORT_MAX_KEYS]; /* enum key_class */
	int64_t limit, offset;
	size_t budget, used;
	uint8_t *rowdesc;                 /* the first shard's RowDescription body (heap) */
	uint32_t rowdesc_len;
	struct row **rows;
	size_t n_rows, cap_rows;
	char sqlstate[6];                 /* failed: the error finish gives */
	char why[300];
};

static void fail(struct shard_sort *s, const char *sqlstate, const char *fmt, ...)
{
	if (s->why[0])
		return; /* the first reason stands */
	snprintf(s->sqlstate, sizeof(s->sqlstate), "%s", sqlstate);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
}

bool shard_sort_failed(const struct shard_sort *s)
{
	return s->why[0] != '\0';
}

struct shard_sort *shard_sort_new(const struct shard_sort_key *keys, int n, int64_t limit, int64_t offset,
				  size_t budget)
{
	if (n < 1 || n > SHARD_SORT_MAX_KEYS)
		return NULL;
	struct shard_sort *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	memcpy(s->keys, keys, (size_t)n * sizeof(*keys));
	s->n_keys = n;
	s->limit = limit;
	s->offset = offset > 0 ? offset : 0;
	s->budget = budget;
	return s;
}

static void free_rows(struct shard_sort *s, size_t from)
{
	for (size_t i = from; i < s->n_rows; i++) {
		s->used -= s->rows[i]->bytes;
		free(s->rows[i]);
	}
	s->n_rows = from;
}

void shard_sort_free(struct shard_sort *s)
{
	if (!s)
		return;
	free_rows(s, 0);
	free(s->rows);
	free(s->rowdesc);
	free(s);
}

/* ---- the columns ---- */

static int class_of(uint32_t type, bool collate_c)
{
	switch (type) {
	case 20: case 21: case 23: /* int8, int2, int4 */
		return KEY_INT;
	case 1700:
		return KEY_NUMERIC;
	case 700: case 701:
		return KEY_FLOAT;
	case 16:
		return KEY_BOOL;
	case 1082: case 1114: case 1184: /* date, timestamp, timestamptz */
		return KEY_TIME;
	case 2950: /* uuid: its canonical text orders as its bytes */
		return KEY_BYTES;
	case 25: case 1043: case 19: /* text, varchar, name */
		return collate_c ? KEY_BYTES : -2;
	case 1042: /* char(n): trailing blanks do not count */
		return collate_c ? KEY_CHAR : -2;
	default:
		return -1;
	}
}

void shard_sort_describe(struct shard_sort *s, const uint8_t *body, uint32_t len)
{
	if (s->rowdesc || shard_sort_failed(s))
		return; /* the first shard's says it all */
	/* One walk over the columns: each key's by position, or by name (one
	 * column of that name, as PostgreSQL resolves it). */
	struct pg_reader r;
	pg_reader_init(&r, body, len);
	uint16_t n = pg_read_u16(&r);
	uint32_t types[SHARD_SORT_MAX_KEYS];
	uint16_t formats[SHARD_SORT_MAX_KEYS];
	for (int k = 0; k < s->n_keys; k++)
		s->column[k] = -1;
	for (uint16_t i = 0; i < n; i++) {
		struct pg_field f;
		if (pg_read_field(&r, &f) < 0) {
			fail(s, "08P01", "malformed RowDescription from a shard");
			return;
		}
		for (int k = 0; k < s->n_keys; k++) {
			const struct shard_sort_key *key = &s->keys[k];
			if (key->position ? key->position != i + 1 : strcmp(f.name, key->name) != 0)
				continue;
			if (s->column[k] >= 0) {
				fail(s, "0A000", "ORDER BY \"%s\" names several output columns", key->name);
				return;
			}
			s->column[k] = i;
			types[k] = f.type;
			formats[k] = f.format;
		}
	}
	if (r.err) {
		fail(s, "08P01", "malformed RowDescription from a shard");
		return;
	}
	for (int k = 0; k < s->n_keys; k++) {
		const struct shard_sort_key *key = &s->keys[k];
		int col = s->column[k];
		if (col < 0 && !key->position) {
			fail(s, "0A000", "ORDER BY \"%s\" over several shards: sluice sorts by output columns only "
			     "(put it in the SELECT list)", key->name);
			return;
		}
		if (col < 0) {
			fail(s, "42P10", "ORDER BY position %d is not in select list", key->position);
			return;
		}
		int cls = class_of(types[k], key->collate_c);
		if (cls == -2) {
			fail(s, "0A000", "ORDER BY a text column over several shards needs COLLATE \"C\" (sluice compares "
			     "bytes, not the database's collation)");
			return;
		}
		if (cls < 0) {
			fail(s, "0A000", "ORDER BY over several shards sorts integers, numeric, floats, booleans, dates, "
			     "timestamps, uuids and text with COLLATE \"C\" only (column %d has type %u)", col + 1,
			     types[k]);
			return;
		}
		if (formats[k] != 0) {
			fail(s, "0A000", "ORDER BY over several shards needs its key columns in text format");
			return;
		}
		s->class[k] = (uint8_t)cls;
	}
	if (!(s->rowdesc = malloc(len ? len : 1))) {
		fail(s, "53200", "out of memory");
		return;
	}
	memcpy(s->rowdesc, body, len);
	s->rowdesc_len = len;
}

/* ---- values ---- */

static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 730425; /* days since 2000-01-01 */
}

/* Digits at *p (at least min, at most max) as a number; *p moves on. */
static bool digits(const char **p, const char *end, int min, int max, int64_t *out)
{
	int64_t v = 0;
	int n = 0;
	while (*p < end && **p >= '0' && **p <= '9' && n < max) {
		v = v * 10 + (**p - '0');
		(*p)++;
		n++;
	}
	*out = v;
	return n >= min;
}

bool shard_sort_time(const char *s, size_t n, int64_t *out)
{
	const char *p = s, *end = s + n;
	if (n == 8 && memcmp(s, "infinity", 8) == 0) {
		*out = INT64_MAX;
		return true;
	}
	if (n == 9 && memcmp(s, "-infinity", 9) == 0) {
		*out = INT64_MIN;
		return true;
	}
	bool bc = n > 3 && memcmp(end - 3, " BC", 3) == 0;
	if (bc)
		end -= 3;
	int64_t y, mo, d, h = 0, mi = 0, sec = 0, frac = 0, off = 0;
	if (!digits(&p, end, 4, 9, &y) || p >= end || *p++ != '-' || !digits(&p, end, 2, 2, &mo) || p >= end ||
	    *p++ != '-' || !digits(&p, end, 2, 2, &d) || mo < 1 || mo > 12 || d < 1 || d > 31)
		return false;
	if (p < end) {
		if (*p++ != ' ' || !digits(&p, end, 2, 2, &h) || p >= end || *p++ != ':' || !digits(&p, end, 2, 2, &mi) ||
		    p >= end || *p++ != ':' || !digits(&p, end, 2, 2, &sec))
			return false;
		if (p < end && *p == '.') {
			p++;
			int k = 0;
			int64_t f = 0;
			while (p < end && *p >= '0' && *p <= '9' && k < 6) {
				f = f * 10 + (*p++ - '0');
				k++;
			}
			if (!k)
				return false;
			for (; k < 6; k++)
				f *= 10;
			frac = f;
		}
		if (p < end && (*p == '+' || *p == '-')) {
			int sign = *p++ == '-' ? -1 : 1;
			int64_t oh, om = 0, os = 0;
			if (!digits(&p, end, 2, 2, &oh))
				return false;
			if (p < end && *p == ':') {
				p++;
				if (!digits(&p, end, 2, 2, &om))
					return false;
				if (p < end && *p == ':') {
					p++;
					if (!digits(&p, end, 2, 2, &os))
						return false;
				}
			}
			off = sign * (oh * 3600 + om * 60 + os);
		}
	}
	if (p != end)
		return false;
	if (bc)
		y = 1 - y; /* 1 BC is year 0 */
	int64_t days = days_from_civil(y, (int)mo, (int)d);
	*out = ((days * 86400 + h * 3600 + mi * 60 + sec - off) * 1000000) + frac;
	return true;
}

/* Read the value v (n bytes; NULL: null) of key k into *out; text that
 * must stay (numeric) is copied to *spare. False: not a value of its type. */
static bool read_value(int cls, const uint8_t *v, uint32_t n, struct key_value *out, char **spare)
{
	memset(out, 0, sizeof(*out));
	if (!v) {
		out->null = true;
		return true;
	}
	char buf[64];
	switch (cls) {
	case KEY_INT: {
		if (n == 0 || n >= sizeof(buf))
			return false;
		memcpy(buf, v, n);
		buf[n] = '\0';
		char *e;
		errno = 0;
		out->i = strtoll(buf, &e, 10);
		return !errno && *e == '\0';
	}
	case KEY_FLOAT: {
		if (n == 0 || n >= sizeof(buf))
			return false;
		memcpy(buf, v, n);
		buf[n] = '\0';
		if (strcmp(buf, "NaN") == 0) {
			out->rank = 2;
			return true;
		}
		char *e;
		out->d = strtod(buf, &e);
		out->rank = isinf(out->d) ? (out->d < 0 ? -1 : 1) : 0;
		return *e == '\0';
	}
	case KEY_NUMERIC:
		if (n == 3 && memcmp(v, "NaN", 3) == 0) {
			out->rank = 2;
			return true;
		}
		if (n == 8 && memcmp(v, "Infinity", 8) == 0) {
			out->rank = 1;
			return true;
		}
		if (n == 9 && memcmp(v, "-Infinity", 9) == 0) {
			out->rank = -1;
			return true;
		}
		memcpy(*spare, v, n);
		(*spare)[n] = '\0';
		out->p = *spare;
		out->n = n;
		*spare += n + 1;
		return shard_decimal_valid(out->p);
	case KEY_BOOL:
		if (n != 1 || (v[0] != 't' && v[0] != 'f'))
			return false;
		out->i = v[0] == 't';
		return true;
	case KEY_TIME:
		return shard_sort_time((const char *)v, n, &out->i);
	case KEY_CHAR:
		while (n && v[n - 1] == ' ')
			n--;
		/* fall through */
	default:
		out->p = (const char *)v;
		out->n = n;
		return true;
	}
}

static int cmp_value(int cls, const struct key_value *a, const struct key_value *b)
{
	switch (cls) {
	case KEY_INT:
	case KEY_BOOL:
	case KEY_TIME:
		return (a->i > b->i) - (a->i < b->i);
	case KEY_FLOAT:
		if (a->rank || b->rank)
			return (a->rank > b->rank) - (a->rank < b->rank);
		return (a->d > b->d) - (a->d < b->d);
	case KEY_NUMERIC:
		if (a->rank || b->rank)
			return (a->rank > b->rank) - (a->rank < b->rank);
		return shard_decimal_cmp(a->p, b->p);
	default: {
		int c = memcmp(a->p, b->p, a->n < b->n ? a->n : b->n);
		return c ? (c > 0) - (c < 0) : (a->n > b->n) - (a->n < b->n);
	}
	}
}

static int cmp_rows(const void *pa, const void *pb, void *arg)
{
	const struct shard_sort *s = arg;
	const struct row *a = *(struct row *const *)pa, *b = *(struct row *const *)pb;
	for (int k = 0; k < s->n_keys; k++) {
		const struct key_value *x = &a->k[k], *y = &b->k[k];
		int c;
		if (x->null || y->null)
			c = x->null == y->null ? 0 : (x->null ? 1 : -1) * (s->keys[k].nulls_first ? -1 : 1);
		else
			c = cmp_value(s->class[k], x, y) * (s->keys[k].desc ? -1 : 1);
		if (c)
			return c;
	}
	return 0;
}

/* Sort what is kept and drop what is past the limit. */
static void sort_and_cut(struct shard_sort *s)
{
	if (s->n_rows > 1)
		qsort_r(s->rows, s->n_rows, sizeof(*s->rows), cmp_rows, s);
	if (s->limit >= 0 && s->n_rows > (size_t)(s->limit + s->offset))
		free_rows(s, (size_t)(s->limit + s->offset));
}

void shard_sort_row(struct shard_sort *s, const uint8_t *body, uint32_t len)
{
	if (shard_sort_failed(s))
		return;
	if (!s->rowdesc) {
		fail(s, "08P01", "a shard sent rows without describing them");
		return;
	}
	if (s->limit >= 0 && s->limit + s->offset == 0)
		return; /* LIMIT 0: no row is wanted */
	const uint8_t *v[SHARD_SORT_MAX_KEYS];
	uint32_t vn[SHARD_SORT_MAX_KEYS];
	size_t text = 0;
	for (int k = 0; k < s->n_keys; k++) {
		if (pg_datarow_column(body, len, s->column[k], &v[k], &vn[k]) < 0) {
			fail(s, "08P01", "malformed DataRow from a shard");
			return;
		}
		if (v[k])
			text += vn[k] + 1;
	}
	size_t bytes = sizeof(struct row) + (size_t)s->n_keys * sizeof(struct key_value) + len + text;
	if (s->used + bytes > s->budget) {
		fail(s, "54000", "ORDER BY over several shards needs more than shard_buffer_size (%zu bytes) to sort "
		     "its rows: add a LIMIT, or raise shard_buffer_size", s->budget);
		free_rows(s, 0);
		return;
	}
	if (s->n_rows == s->cap_rows) {
		size_t cap = s->cap_rows ? 2 * s->cap_rows : 64;
		struct row **grown = reallocarray(s->rows, cap, sizeof(*grown));
		if (!grown) {
			fail(s, "53200", "out of memory");
			return;
		}
		s->rows = grown;
		s->cap_rows = cap;
	}
	struct row *r = malloc(bytes);
	if (!r) {
		fail(s, "53200", "out of memory");
		return;
	}
	r->body = (uint8_t *)&r->k[s->n_keys];
	memcpy(r->body, body, len);
	r->len = len;
	r->bytes = bytes;
	char *spare = (char *)r->body + len;
	for (int k = 0; k < s->n_keys; k++) {
		/* The key's text, in the row's own copy. */
		const uint8_t *own = v[k] ? r->body + (v[k] - body) : NULL;
		if (!read_value(s->class[k], own, vn[k], &r->k[k], &spare)) {
			free(r);
			fail(s, "22P02", "ORDER BY over several shards: a value of column %d sluice cannot read (%.*s); "
			     "dates and timestamps need DateStyle ISO", s->column[k] + 1, vn[k] > 40 ? 40 : (int)vn[k],
			     (const char *)v[k]);
			return;
		}
	}
	s->rows[s->n_rows++] = r;
	s->used += bytes;
	/* With a LIMIT, no more than twice the rows it keeps wait. */
	if (s->limit >= 0 && s->n_rows >= 2 * (size_t)(s->limit + s->offset))
		sort_and_cut(s);
}

int shard_sort_finish(struct shard_sort *s, struct iobuf *out, bool with_rowdesc)
{
	if (!s->rowdesc && !shard_sort_failed(s))
		fail(s, "0A000", "no shard described its rows");
	if (shard_sort_failed(s)) {
		char msg[340];
		snprintf(msg, sizeof(msg), "%s", s->why);
		return pg_be_error(out, "ERROR", s->sqlstate, msg);
	}
	sort_and_cut(s);
	struct pg_builder b;
	pg_build_init(&b, out);
	if (with_rowdesc) {
		pg_build_begin(&b, 'T');
		pg_build_bytes(&b, s->rowdesc, s->rowdesc_len);
		pg_build_end(&b);
	}
	uint64_t sent = 0;
	for (size_t i = (size_t)s->offset; i < s->n_rows; i++, sent++) {
		pg_build_begin(&b, 'D');
		pg_build_bytes(&b, s->rows[i]->body, s->rows[i]->len);
		pg_build_end(&b);
	}
	if (pg_build_done(&b) < 0)
		return -ENOMEM;
	char tag[32];
	snprintf(tag, sizeof(tag), "SELECT %llu", (unsigned long long)sent);
	return pg_be_complete(out, tag);
}
