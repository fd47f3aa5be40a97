/*
 * shard_merge.c - see shard_merge.h.
 */
#include "shard_merge.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iobuf.h"
#include "pg_proto.h"
#include "shardroute.h"

enum { OID_INT8 = 20, OID_INT2 = 21, OID_INT4 = 23, OID_NUMERIC = 1700 };

struct column {
	uint8_t agg;      /* enum shard_agg */
	uint32_t type;    /* its type's OID, from the first RowDescription */
	bool seen;        /* a shard gave a value (not NULL) */
	__int128 i;       /* integer types */
	char *dec;        /* numeric: the value so far (heap) */
};

struct shard_merge {
	uint8_t *rowdesc;   /* the first RowDescription's body (heap) */
	uint32_t rowdesc_len;
	int n;
	bool bad;           /* cannot be combined: why says */
	char why[160];
	struct column col[SHARD_MAX_AGGS];
};

struct shard_merge *shard_merge_new(const uint8_t *aggs, int n)
{
	if (n < 1 || n > SHARD_MAX_AGGS)
		return NULL;
	struct shard_merge *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->n = n;
	for (int i = 0; i < n; i++)
		m->col[i].agg = aggs[i];
	return m;
}

void shard_merge_free(struct shard_merge *m)
{
	if (!m)
		return;
	for (int i = 0; i < m->n; i++)
		free(m->col[i].dec);
	free(m->rowdesc);
	free(m);
}

static void refuse(struct shard_merge *m, const char *why)
{
	if (!m->bad)
		snprintf(m->why, sizeof(m->why), "%s", why);
	m->bad = true;
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
		(void)pg_read_str(&r);
		(void)pg_read_u32(&r); /* table */
		(void)pg_read_u16(&r); /* column */
		uint32_t type = pg_read_u32(&r);
		(void)pg_read_u16(&r);
		(void)pg_read_u32(&r);
		(void)pg_read_u16(&r);
		if (r.err) {
			refuse(m, "a shard described the answer otherwise");
			return;
		}
		struct column *c = &m->col[i];
		if (m->rowdesc && c->type != type)
			refuse(m, "the shards' answers have different column types");
		c->type = type;
		if (c->agg != SHARD_AGG_COUNT && type != OID_INT2 && type != OID_INT4 && type != OID_INT8 &&
		    type != OID_NUMERIC)
			refuse(m, "sum, min and max over several shards are combined for integer and numeric values "
			       "only");
	}
	if (!m->rowdesc) {
		if (!(m->rowdesc = malloc(len ? len : 1))) {
			refuse(m, "out of memory");
			return;
		}
		memcpy(m->rowdesc, body, len);
		m->rowdesc_len = len;
	}
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

static void combine(struct shard_merge *m, struct column *c, const uint8_t *v, uint32_t len)
{
	if (c->type == OID_NUMERIC) {
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
		else if (c->agg == SHARD_AGG_SUM)
			next = shard_decimal_add(c->dec, text);
		else if ((c->agg == SHARD_AGG_MIN) == (shard_decimal_cmp(text, c->dec) < 0))
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
	if (!c->seen || c->agg == SHARD_AGG_COUNT || c->agg == SHARD_AGG_SUM)
		c->i = c->seen ? c->i + x : x;
	else if ((c->agg == SHARD_AGG_MIN) == (x < c->i))
		c->i = x;
	c->seen = true;
}

void shard_merge_row(struct shard_merge *m, const uint8_t *body, uint32_t len)
{
	if (m->bad)
		return;
	for (int i = 0; i < m->n; i++) {
		const uint8_t *v;
		uint32_t n;
		if (pg_datarow_column(body, len, i, &v, &n) < 0) {
			refuse(m, "a shard's row does not match its description");
			return;
		}
		if (v) /* NULL: that shard had no value */
			combine(m, &m->col[i], v, n);
	}
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

int shard_merge_finish(struct shard_merge *m, struct iobuf *out, bool with_rowdesc)
{
	if (!m->rowdesc && !m->bad)
		refuse(m, "no shard answered");
	if (m->bad) {
		char msg[240];
		snprintf(msg, sizeof(msg), "aggregate over several shards: %s", m->why);
		return pg_be_error(out, "ERROR", "0A000", msg);
	}
	struct pg_builder b;
	pg_build_init(&b, out);
	if (with_rowdesc) {
		pg_build_begin(&b, 'T');
		pg_build_bytes(&b, m->rowdesc, m->rowdesc_len);
		pg_build_end(&b);
	}
	pg_build_begin(&b, 'D');
	pg_build_u16(&b, (uint16_t)m->n);
	for (int i = 0; i < m->n; i++) {
		const struct column *c = &m->col[i];
		char num[64];
		const char *text = NULL;
		if (c->agg == SHARD_AGG_COUNT) {
			print_int(num, sizeof(num), c->seen ? c->i : 0);
			text = num;
		} else if (c->seen) {
			if (c->type == OID_NUMERIC)
				text = c->dec;
			else {
				print_int(num, sizeof(num), c->i);
				text = num;
			}
		}
		if (!text) {
			pg_build_u32(&b, 0xffffffffu);
			continue;
		}
		pg_build_u32(&b, (uint32_t)strlen(text));
		pg_build_bytes(&b, text, strlen(text));
	}
	pg_build_end(&b);
	int rc = pg_build_done(&b);
	return rc < 0 ? rc : pg_be_complete(out, "SELECT 1");
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
