/*
 * shard_merge.c - see shard_merge.h.
 */
#include "shard_merge.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fnv.h"
#include "iobuf.h"
#include "pg_proto.h"
#include "shard_sort.h"
#include "shardroute.h"

enum { OID_INT8 = 20, OID_INT2 = 21, OID_INT4 = 23, OID_NUMERIC = 1700 };

/* One aggregate's value so far, in one group. */
struct column {
	bool seen;        /* a shard gave a value (not NULL) */
	__int128 i;       /* integer types */
	char *dec;        /* numeric: the value so far (heap) */
};

/* One group: the rows of its key (the key columns' values, each as a
 * 4-byte length, -1 for NULL, and the bytes), combined. */
struct group {
	struct group *chain; /* the next in its hash bucket */
	struct group *next;  /* the next in the order groups were met */
	uint64_t hash;
	uint32_t key_len;
	uint8_t *key;        /* in the same allocation, after col[] */
	struct column col[];
};

struct shard_merge {
	uint8_t *rowdesc;   /* the first RowDescription's body (heap) */
	uint32_t rowdesc_len;
	int n;
	uint8_t agg[SHARD_MAX_AGGS];  /* enum shard_agg per output column */
	uint32_t type[SHARD_MAX_AGGS]; /* its type, from the first RowDescription */
	bool grouped;       /* some columns are keys: a row per group */
	int n_avg;          /* avg columns (each two of the shards': sum, count) */
	int64_t limit, offset;
	size_t budget, used;
	struct group **bucket; /* heap, n_buckets of them */
	size_t n_buckets, n_groups;
	struct group *first, **last;
	bool bad;           /* cannot be combined: why says */
	char sqlstate[6];
	char why[200];
};

struct shard_merge *shard_merge_new(const uint8_t *aggs, int n, int64_t limit, int64_t offset, size_t budget)
{
	if (n < 1 || n > SHARD_MAX_AGGS)
		return NULL;
	struct shard_merge *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->n = n;
	memcpy(m->agg, aggs, (size_t)n);
	for (int i = 0; i < n; i++) {
		m->grouped |= aggs[i] == SHARD_AGG_KEY;
		m->n_avg += aggs[i] == SHARD_AGG_AVG_SUM;
	}
	m->limit = limit;
	m->offset = offset > 0 ? offset : 0;
	m->budget = budget;
	m->last = &m->first;
	return m;
}

static void free_group(const struct shard_merge *m, struct group *g)
{
	for (int i = 0; i < m->n; i++)
		free(g->col[i].dec);
	free(g);
}

void shard_merge_free(struct shard_merge *m)
{
	if (!m)
		return;
	for (struct group *g = m->first, *next; g; g = next) {
		next = g->next;
		free_group(m, g);
	}
	free(m->bucket);
	free(m->rowdesc);
	free(m);
}

static void refuse_code(struct shard_merge *m, const char *sqlstate, const char *why)
{
	if (m->bad)
		return;
	snprintf(m->sqlstate, sizeof(m->sqlstate), "%s", sqlstate);
	snprintf(m->why, sizeof(m->why), "%s", why);
	m->bad = true;
}

static void refuse(struct shard_merge *m, const char *why)
{
	refuse_code(m, "0A000", why);
}

/* Can values of a key column of this type be grouped by their text (equal
 * values, equal text)? Not numeric (1.0 = 1.00) nor floats (0 = -0). */
static bool groupable(uint32_t type)
{
	switch (type) {
	case 16: case 20: case 21: case 23:         /* bool, integers */
	case 25: case 1042: case 1043: case 19:     /* text, char(n), varchar, name */
	case 1082: case 1114: case 1184: case 2950: /* date, timestamps, uuid */
		return true;
	default:
		return false;
	}
}

/* What an output column of the shards is combined as (an avg's halves
 * as a sum and a count). */
static int kind_of(int agg)
{
	return agg == SHARD_AGG_AVG_SUM ? SHARD_AGG_SUM
	       : agg == SHARD_AGG_AVG_COUNT || agg == SHARD_AGG_AVG_COUNT_NAMED ? SHARD_AGG_COUNT : agg;
}

/* The client's RowDescription from the first shard's (body): the same,
 * but an avg's sum and count are one numeric column, named "avg" or as
 * the target's alias (which the count carries). */
static int client_rowdesc(struct shard_merge *m, const uint8_t *body, uint32_t len)
{
	struct iobuf out = { 0 };
	struct pg_builder b;
	struct pg_reader r;
	pg_reader_init(&r, body, len);
	int n = pg_read_u16(&r);
	pg_build_init(&b, &out);
	pg_build_begin(&b, 'T');
	pg_build_u16(&b, (uint16_t)(n - m->n_avg));
	const char *avg_name = NULL;
	struct pg_field f;
	for (int i = 0; i < n && pg_read_field(&r, &f) == 0; i++) {
		if (m->agg[i] == SHARD_AGG_AVG_SUM)
			continue; /* written with its count, next */
		if (m->agg[i] == SHARD_AGG_AVG_COUNT || m->agg[i] == SHARD_AGG_AVG_COUNT_NAMED) {
			avg_name = m->agg[i] == SHARD_AGG_AVG_COUNT_NAMED ? f.name : "avg";
			pg_build_str(&b, avg_name);
			pg_build_u32(&b, 0);
			pg_build_u16(&b, 0);
			pg_build_u32(&b, OID_NUMERIC);
			pg_build_u16(&b, 0xffff); /* typlen -1 */
			pg_build_u32(&b, 0xffffffffu); /* typmod -1 */
			pg_build_u16(&b, 0);
			continue;
		}
		pg_build_bytes(&b, f.at, f.len);
	}
	pg_build_end(&b);
	int rc = pg_build_done(&b);
	if (rc == 0 && (m->rowdesc = malloc(iobuf_len(&out)))) {
		m->rowdesc_len = iobuf_len(&out) - 5;
		memcpy(m->rowdesc, iobuf_head(&out) + 5, m->rowdesc_len);
	} else {
		rc = -1;
	}
	iobuf_release(&out);
	return rc;
}

void shard_merge_describe(struct shard_merge *m, const uint8_t *body, uint32_t len)
{
	struct pg_reader r;
	pg_reader_init(&r, body, len);
	int n = pg_read_u16(&r);
	if (r.err || n != m->n) {
		refuse(m, "a shard described the answer otherwise");
		return;
	}
	for (int i = 0; i < n; i++) {
		struct pg_field f;
		if (pg_read_field(&r, &f) < 0) {
			refuse(m, "a shard described the answer otherwise");
			return;
		}
		uint32_t type = f.type;
		if (m->rowdesc && m->type[i] != type)
			refuse(m, "the shards' answers have different column types");
		m->type[i] = type;
		if (m->agg[i] == SHARD_AGG_KEY) {
			if (!groupable(type))
				refuse(m, "GROUP BY and DISTINCT over several shards compare keys as written: numeric and "
				       "floating-point keys are refused (1.0 and 1.00 are one value)");
		} else if (kind_of(m->agg[i]) != SHARD_AGG_COUNT && type != OID_INT2 && type != OID_INT4 &&
			   type != OID_INT8 && type != OID_NUMERIC) {
			refuse(m, "sum, min and max over several shards are combined for integer and numeric values "
			       "only");
		}
	}
	if (!m->rowdesc && client_rowdesc(m, body, len) < 0)
		refuse(m, "out of memory");
}

/* A decimal integer (what PostgreSQL prints for the integer types). */
static bool parse_int(const uint8_t *v, uint32_t len, __int128 *out)
{
	uint32_t k = 0;
	bool neg = len > 0 && v[0] == '-';
	k = neg ? 1 : 0;
	if (k == len || len - k > 30)
		return false;
	__int128 x = 0;
	for (; k < len; k++) {
		if (v[k] < '0' || v[k] > '9')
			return false;
		x = x * 10 + (v[k] - '0');
	}
	*out = neg ? -x : x;
	return true;
}

static void combine(struct shard_merge *m, int agg, uint32_t type, struct column *c, const uint8_t *v, uint32_t len)
{
	agg = kind_of(agg);
	if (type == OID_NUMERIC) {
		char text[1100];
		if (len >= sizeof(text)) {
			refuse(m, "a numeric value too long to combine");
			return;
		}
		memcpy(text, v, len);
		text[len] = '\0';
		if (!shard_decimal_valid(text)) {
			refuse(m, "a numeric NaN or infinity cannot be combined over shards");
			return;
		}
		char *next = NULL;
		if (!c->seen)
			next = strdup(text);
		else if (agg == SHARD_AGG_SUM)
			next = shard_decimal_add(c->dec, text);
		else if ((agg == SHARD_AGG_MIN) == (shard_decimal_cmp(text, c->dec) < 0))
			next = strdup(text);
		else
			return; /* the value so far stays */
		if (!next) {
			refuse(m, "out of memory");
			return;
		}
		free(c->dec);
		c->dec = next;
		c->seen = true;
		return;
	}
	__int128 x;
	if (!parse_int(v, len, &x)) {
		refuse(m, "a shard's value is not an integer");
		return;
	}
	if (!c->seen || agg == SHARD_AGG_COUNT || agg == SHARD_AGG_SUM)
		c->i = c->seen ? c->i + x : x;
	else if ((agg == SHARD_AGG_MIN) == (x < c->i))
		c->i = x;
	c->seen = true;
}

/* The group of key (len bytes), made when new; NULL when refused. */
static struct group *group_of(struct shard_merge *m, const uint8_t *key, uint32_t len)
{
	uint64_t h = fnv1a(FNV1A_START, key, len);
	if (m->n_buckets) {
		for (struct group *g = m->bucket[h % m->n_buckets]; g; g = g->chain)
			if (g->hash == h && g->key_len == len && memcmp(g->key, key, len) == 0)
				return g;
	}
	size_t bytes = sizeof(struct group) + (size_t)m->n * sizeof(struct column) + len;
	if (m->used + bytes + sizeof(struct group *) > m->budget) {
		refuse_code(m, "54000", "GROUP BY or DISTINCT over several shards needs more than shard_buffer_size to "
			    "combine its groups: raise shard_buffer_size");
		return NULL;
	}
	if (m->n_groups >= m->n_buckets) {
		size_t nb = m->n_buckets ? 2 * m->n_buckets : 64;
		struct group **b = calloc(nb, sizeof(*b));
		if (!b) {
			refuse(m, "out of memory");
			return NULL;
		}
		for (struct group *g = m->first; g; g = g->next) {
			g->chain = b[g->hash % nb];
			b[g->hash % nb] = g;
		}
		m->used += (nb - m->n_buckets) * sizeof(*b);
		free(m->bucket);
		m->bucket = b;
		m->n_buckets = nb;
	}
	struct group *g = calloc(1, bytes);
	if (!g) {
		refuse(m, "out of memory");
		return NULL;
	}
	g->hash = h;
	g->key_len = len;
	g->key = (uint8_t *)&g->col[m->n];
	memcpy(g->key, key, len);
	g->chain = m->bucket[h % m->n_buckets];
	m->bucket[h % m->n_buckets] = g;
	*m->last = g;
	m->last = &g->next;
	m->n_groups++;
	m->used += bytes;
	return g;
}

void shard_merge_row(struct shard_merge *m, const uint8_t *body, uint32_t len)
{
	if (m->bad)
		return;
	const uint8_t *v[SHARD_MAX_AGGS];
	uint32_t vn[SHARD_MAX_AGGS];
	uint8_t key[8192];
	uint32_t key_len = 0;
	for (int i = 0; i < m->n; i++) {
		if (pg_datarow_column(body, len, i, &v[i], &vn[i]) < 0) {
			refuse(m, "a shard's row does not match its description");
			return;
		}
		if (m->agg[i] != SHARD_AGG_KEY)
			continue;
		uint32_t n = v[i] ? vn[i] : 0;
		if (key_len + 4 + n > sizeof(key)) {
			refuse(m, "a group's key is too long to combine");
			return;
		}
		pg_put_u32(key + key_len, v[i] ? vn[i] : 0xffffffffu); /* NULLs group together */
		if (n)
			memcpy(key + key_len + 4, v[i], n);
		key_len += 4 + n;
	}
	struct group *g = group_of(m, key, key_len);
	for (int i = 0; g && i < m->n && !m->bad; i++)
		if (m->agg[i] != SHARD_AGG_KEY && v[i]) /* NULL: that shard had no value */
			combine(m, m->agg[i], m->type[i], &g->col[i], v[i], vn[i]);
}

static void print_int(char *buf, size_t cap, __int128 x)
{
	char tmp[48];
	int k = 0;
	bool neg = x < 0;
	unsigned __int128 u = neg ? -(unsigned __int128)x : (unsigned __int128)x;
	do {
		tmp[k++] = (char)('0' + (int)(u % 10));
		u /= 10;
	} while (u);
	size_t o = 0;
	if (neg && o + 1 < cap)
		buf[o++] = '-';
	while (k && o + 1 < cap)
		buf[o++] = tmp[--k];
	buf[o] = '\0';
}

/* Group g's row, as a DataRow body into b (begun and ended by the caller). */
static int build_row(const struct shard_merge *m, const struct group *g, struct pg_builder *b)
{
	pg_build_u16(b, (uint16_t)(m->n - m->n_avg));
	const uint8_t *key = g ? g->key : NULL;
	for (int i = 0; i < m->n; i++) {
		if (m->agg[i] == SHARD_AGG_KEY) {
			uint32_t n = pg_get_u32(key);
			pg_build_bytes(b, key, 4 + (n == 0xffffffffu ? 0 : n));
			key += 4 + (n == 0xffffffffu ? 0 : n);
			continue;
		}
		if (m->agg[i] == SHARD_AGG_AVG_COUNT || m->agg[i] == SHARD_AGG_AVG_COUNT_NAMED)
			continue; /* written with its sum */
		const struct column *c = g ? &g->col[i] : NULL;
		char num[64];
		const char *text = NULL;
		char *avg = NULL;
		if (m->agg[i] == SHARD_AGG_COUNT) {
			print_int(num, sizeof(num), c && c->seen ? c->i : 0);
			text = num;
		} else if (m->agg[i] == SHARD_AGG_AVG_SUM) {
			const struct column *n = g ? &g->col[i + 1] : NULL;
			if (c && c->seen && n && n->seen && n->i > 0) {
				if (m->type[i] != OID_NUMERIC)
					print_int(num, sizeof(num), c->i);
				if (!(avg = shard_decimal_avg(m->type[i] == OID_NUMERIC ? c->dec : num, (int64_t)n->i)))
					return -1;
				text = avg;
			}
		} else if (c && c->seen) {
			if (m->type[i] == OID_NUMERIC)
				text = c->dec;
			else {
				print_int(num, sizeof(num), c->i);
				text = num;
			}
		}
		if (!text) {
			pg_build_u32(b, 0xffffffffu);
			continue;
		}
		pg_build_u32(b, (uint32_t)strlen(text));
		pg_build_bytes(b, text, strlen(text));
		free(avg);
	}
	return 0;
}

int shard_merge_finish(struct shard_merge *m, struct iobuf *out, bool with_rowdesc, struct shard_sort *sort)
{
	if (!m->rowdesc && !m->bad)
		refuse(m, "no shard answered");
	if (m->bad) {
		char msg[240];
		snprintf(msg, sizeof(msg), "aggregate over several shards: %s", m->why);
		return pg_be_error(out, "ERROR", m->sqlstate, msg);
	}
	/* Without keys, one row even when no shard had any (count 0). */
	bool one = !m->grouped && !m->first;
	struct iobuf rows = { 0 };
	struct pg_builder b;
	pg_build_init(&b, sort ? &rows : out);
	if (with_rowdesc && !sort) {
		pg_build_begin(&b, 'T');
		pg_build_bytes(&b, m->rowdesc, m->rowdesc_len);
		pg_build_end(&b);
	}
	uint64_t sent = 0;
	int64_t skip = sort ? 0 : m->offset;
	for (const struct group *g = m->first; one || g; g = g ? g->next : NULL) {
		one = false;
		if (skip > 0) {
			skip--;
			continue;
		}
		if (!sort && m->limit >= 0 && sent >= (uint64_t)m->limit)
			break;
		pg_build_begin(&b, 'D');
		if (build_row(m, g, &b) < 0) {
			iobuf_release(&rows);
			return -ENOMEM;
		}
		pg_build_end(&b);
		sent++;
	}
	int rc = pg_build_done(&b);
	if (rc < 0 || !sort) {
		iobuf_release(&rows);
		if (rc < 0)
			return rc;
		char tag[32];
		snprintf(tag, sizeof(tag), "SELECT %llu", (unsigned long long)sent);
		return pg_be_complete(out, tag);
	}
	/* Ordered: the rows go through the sort (ORDER BY, LIMIT, OFFSET). */
	shard_sort_describe(sort, m->rowdesc, m->rowdesc_len);
	struct pg_msg msg;
	for (uint32_t off = 0; off < iobuf_len(&rows) && pg_msg_peek(iobuf_head(&rows) + off, iobuf_len(&rows) - off, &msg) == 1;
	     off += msg.len)
		shard_sort_row(sort, msg.body, msg.body_len);
	iobuf_release(&rows);
	return shard_sort_finish(sort, out, with_rowdesc);
}

/* ---- decimals ---- */

bool shard_decimal_valid(const char *s)
{
	if (*s == '-')
		s++;
	int digits = 0, dots = 0;
	for (; *s; s++) {
		if (*s == '.')
			dots++;
		else if (*s >= '0' && *s <= '9')
			digits++;
		else
			return false;
	}
	return digits > 0 && dots <= 1;
}

/* Split a valid decimal: its sign, integer digits and fraction digits. */
struct dec {
	bool neg;
	const char *ip, *fp;
	size_t il, fl;
};

static struct dec split(const char *s)
{
	struct dec d = { .neg = *s == '-' };
	if (d.neg)
		s++;
	d.ip = s;
	const char *dot = strchr(s, '.');
	d.il = dot ? (size_t)(dot - s) : strlen(s);
	d.fp = dot ? dot + 1 : "";
	d.fl = strlen(d.fp);
	while (d.il > 1 && *d.ip == '0') { /* leading zeros do not count */
		d.ip++;
		d.il--;
	}
	return d;
}

/* Digit k of d counted from the last fraction digit of a number with fl
 * fraction digits (k = 0 is that digit). */
static int digit(const struct dec *d, size_t fl, size_t k)
{
	if (k < fl) {
		size_t f = fl - 1 - k; /* index in the fraction */
		return f < d->fl ? d->fp[f] - '0' : 0;
	}
	size_t i = k - fl; /* index from the end of the integer part */
	return i < d->il ? d->ip[d->il - 1 - i] - '0' : 0;
}

/* |a| compared with |b|. */
static int mag_cmp(const struct dec *a, const struct dec *b)
{
	size_t fl = a->fl > b->fl ? a->fl : b->fl, il = a->il > b->il ? a->il : b->il;
	for (size_t k = fl + il; k-- > 0;) {
		int x = digit(a, fl, k), y = digit(b, fl, k);
		if (x != y)
			return x < y ? -1 : 1;
	}
	return 0;
}

static bool is_zero(const struct dec *d)
{
	for (size_t i = 0; i < d->il; i++)
		if (d->ip[i] != '0')
			return false;
	for (size_t i = 0; i < d->fl; i++)
		if (d->fp[i] != '0')
			return false;
	return true;
}

int shard_decimal_cmp(const char *a, const char *b)
{
	struct dec x = split(a), y = split(b);
	bool xn = x.neg && !is_zero(&x), yn = y.neg && !is_zero(&y);
	if (xn != yn)
		return xn ? -1 : 1;
	int c = mag_cmp(&x, &y);
	return xn ? -c : c;
}

char *shard_decimal_add(const char *a, const char *b)
{
	if (!shard_decimal_valid(a) || !shard_decimal_valid(b))
		return NULL;
	struct dec x = split(a), y = split(b);
	size_t fl = x.fl > y.fl ? x.fl : y.fl, il = (x.il > y.il ? x.il : y.il) + 1, n = fl + il;
	char *digits = malloc(n + 1);
	if (!digits)
		return NULL;
	bool neg;
	if (x.neg == y.neg) {
		int carry = 0;
		for (size_t k = 0; k < n; k++) {
			int s = digit(&x, fl, k) + digit(&y, fl, k) + carry;
			digits[k] = (char)('0' + s % 10);
			carry = s / 10;
		}
		neg = x.neg;
	} else {
		/* The larger magnitude less the smaller, with the larger's sign. */
		const struct dec *big = &x, *small = &y;
		if (mag_cmp(&x, &y) < 0) {
			big = &y;
			small = &x;
		}
		int borrow = 0;
		for (size_t k = 0; k < n; k++) {
			int s = digit(big, fl, k) - digit(small, fl, k) - borrow;
			borrow = s < 0;
			digits[k] = (char)('0' + (s + 10) % 10);
		}
		neg = big->neg;
	}
	/* digits holds the result from its last fraction digit up. */
	size_t top = n;
	while (top > fl + 1 && digits[top - 1] == '0')
		top--;
	char *out = malloc(top + 3);
	if (!out) {
		free(digits);
		return NULL;
	}
	size_t o = 0;
	bool zero = true;
	for (size_t k = 0; k < top; k++)
		zero &= digits[k] == '0';
	if (neg && !zero)
		out[o++] = '-';
	for (size_t k = top; k-- > fl;)
		out[o++] = digits[k];
	if (fl) {
		out[o++] = '.';
		for (size_t k = fl; k-- > 0;)
			out[o++] = digits[k];
	}
	out[o] = '\0';
	free(digits);
	return out;
}

/* avg as PostgreSQL computes it: numeric_div(sum, count), with the scale
 * select_div_scale gives (at least 16 significant digits, at least the
 * sum's scale) and the last digit rounded half away from zero. */
char *shard_decimal_avg(const char *sum, int64_t count)
{
	if (count <= 0 || !shard_decimal_valid(sum))
		return NULL;
	bool neg = sum[0] == '-';
	const char *p = sum + (neg || sum[0] == '+');
	const char *dot = strchr(p, '.');
	size_t ilen = dot ? (size_t)(dot - p) : strlen(p), flen = dot ? strlen(dot + 1) : 0;
	const char *frac = dot ? dot + 1 : "";
	while (ilen > 0 && *p == '0') { /* the integer part without leading zeros */
		p++;
		ilen--;
	}
	/* Weight (in base-10000 digits) and first base-10000 digit of each. */
	int w1 = 0, f1 = 0;
	if (ilen) {
		w1 = (int)((ilen - 1) / 4);
		for (size_t k = 0; k < (ilen - 1) % 4 + 1; k++)
			f1 = f1 * 10 + (p[k] - '0');
	} else {
		size_t z = 0;
		while (z < flen && frac[z] == '0')
			z++;
		if (z < flen) {
			size_t g = z / 4;
			w1 = -(int)g - 1;
			for (size_t k = 4 * g; k < 4 * g + 4; k++)
				f1 = f1 * 10 + (k < flen ? frac[k] - '0' : 0);
		}
	}
	char cnt[24];
	snprintf(cnt, sizeof(cnt), "%lld", (long long)count);
	size_t clen = strlen(cnt);
	int w2 = (int)((clen - 1) / 4), f2 = 0;
	for (size_t k = 0; k < (clen - 1) % 4 + 1; k++)
		f2 = f2 * 10 + (cnt[k] - '0');
	int qweight = w1 - w2 - (f1 <= f2 ? 1 : 0);
	int rscale = 16 - qweight * 4;
	if (rscale < (int)flen)
		rscale = (int)flen;
	if (rscale < 0)
		rscale = 0;
	if (rscale > 1000)
		rscale = 1000;
	/* |sum| * 10^(rscale + 1) / count, digit by digit, then rounded. */
	size_t nd = ilen + (size_t)rscale + 1;
	char *q = malloc(nd + 1), *out = malloc(nd + 4);
	if (!q || !out) {
		free(q);
		free(out);
		return NULL;
	}
	unsigned __int128 rem = 0;
	for (size_t k = 0; k < nd; k++) {
		int d = k < ilen ? p[k] - '0' : (k - ilen < flen ? frac[k - ilen] - '0' : 0);
		rem = rem * 10 + (unsigned)d;
		q[k] = (char)('0' + (int)(rem / (unsigned __int128)count));
		rem %= (unsigned __int128)count;
	}
	bool up = q[nd - 1] >= '5';
	nd--; /* drop the extra digit, carrying its rounding */
	for (size_t k = nd; up && k > 0; k--) {
		if (q[k - 1] == '9') {
			q[k - 1] = '0';
		} else {
			q[k - 1]++;
			up = false;
		}
	}
	/* q[0, nd) are the digits of |avg| * 10^rscale, rounded; up: a carry
	 * out of the top, a leading 1. The integer part without leading
	 * zeros (at least one digit), then the fraction. */
	size_t int_digits = nd - (size_t)rscale, o = 0, from = 0;
	bool zero = !up;
	for (size_t k = 0; k < nd; k++)
		zero &= q[k] == '0';
	if (neg && !zero)
		out[o++] = '-';
	if (up)
		out[o++] = '1';
	else
		while (from + 1 < int_digits && q[from] == '0')
			from++;
	if (!int_digits && !up)
		out[o++] = '0';
	for (size_t k = from; k < int_digits; k++)
		out[o++] = q[k];
	if (rscale) {
		out[o++] = '.';
		memcpy(out + o, q + int_digits, (size_t)rscale);
		o += (size_t)rscale;
	}
	out[o] = '\0';
	free(q);
	return out;
}
