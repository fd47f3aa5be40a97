/*
 * pghash.c - see pghash.h. Written from PostgreSQL 15's definitions
 * (hashfn.c, int.c, int8.c, varlena.c, uuid.c, partbounds.c); the unit
 * test pins values PostgreSQL computed, and tests/e2e/test_pghash.py
 * compares hundreds of values per type with a running PostgreSQL.
 */
#include "pghash.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

static const char *const type_names[PGHASH_TYPES] = {
	[PGHASH_UNKNOWN] = "unknown",
	[PGHASH_INT2] = "int2",
	[PGHASH_INT4] = "int4",
	[PGHASH_INT8] = "int8",
	[PGHASH_TEXT] = "text",
	[PGHASH_UUID] = "uuid",
};

int pghash_type_from_name(const char *name)
{
	static const struct { const char *name; int type; } names[] = {
		{ "int2", PGHASH_INT2 }, { "smallint", PGHASH_INT2 },
		{ "int4", PGHASH_INT4 }, { "integer", PGHASH_INT4 }, { "int", PGHASH_INT4 },
		{ "int8", PGHASH_INT8 }, { "bigint", PGHASH_INT8 },
		{ "text", PGHASH_TEXT }, { "varchar", PGHASH_TEXT }, { "character varying", PGHASH_TEXT },
		{ "uuid", PGHASH_UUID },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(name, names[i].name) == 0)
			return names[i].type;
	return -1;
}

const char *pghash_type_name(int type)
{
	return type >= 0 && type < PGHASH_TYPES ? type_names[type] : "?";
}

/* ---- lookup3, as hashfn.c uses it ---- */

static inline uint32_t rot(uint32_t x, int k)
{
	return (x << k) | (x >> (32 - k));
}

#define MIX(a, b, c)                                     \
	do {                                             \
		a -= c; a ^= rot(c, 4);  c += b;         \
		b -= a; b ^= rot(a, 6);  a += c;         \
		c -= b; c ^= rot(b, 8);  b += a;         \
		a -= c; a ^= rot(c, 16); c += b;         \
		b -= a; b ^= rot(a, 19); a += c;         \
		c -= b; c ^= rot(b, 4);  b += a;         \
	} while (0)

#define FINAL(a, b, c)                                   \
	do {                                             \
		c ^= b; c -= rot(b, 14);                 \
		a ^= c; a -= rot(c, 11);                 \
		b ^= a; b -= rot(a, 25);                 \
		c ^= b; c -= rot(b, 16);                 \
		a ^= c; a -= rot(c, 4);                  \
		b ^= a; b -= rot(a, 14);                 \
		c ^= b; c -= rot(b, 24);                 \
	} while (0)

/* Little-endian load of n (0..4) bytes, as PostgreSQL does on the
 * machines it hashes on in practice. A big-endian PostgreSQL places rows
 * differently (its hashfn.c says so); sluice follows little-endian ones. */
static inline uint32_t load_le(const unsigned char *k, size_t n)
{
	uint32_t v = 0;
	for (size_t i = 0; i < n; i++)
		v |= (uint32_t)k[i] << (8 * i);
	return v;
}

uint64_t pghash_bytes(const void *key, size_t len, uint64_t seed)
{
	const unsigned char *k = key;
	uint32_t a, b, c;
	a = b = c = 0x9e3779b9u + (uint32_t)len + 3923095u;
	if (seed != 0) {
		a += (uint32_t)(seed >> 32);
		b += (uint32_t)seed;
		MIX(a, b, c);
	}
	while (len >= 12) {
		a += load_le(k, 4);
		b += load_le(k + 4, 4);
		c += load_le(k + 8, 4);
		MIX(a, b, c);
		k += 12;
		len -= 12;
	}
	/* The last 0..11 bytes; c's lowest byte stays for the length. */
	if (len > 8)
		c += load_le(k + 8, len - 8) << 8;
	if (len > 4)
		b += load_le(k + 4, len > 8 ? 4 : len - 4);
	if (len > 0)
		a += load_le(k, len > 4 ? 4 : len);
	FINAL(a, b, c);
	return ((uint64_t)b << 32) | c;
}

uint64_t pghash_uint32(uint32_t k, uint64_t seed)
{
	uint32_t a, b, c;
	a = b = c = 0x9e3779b9u + (uint32_t)sizeof(uint32_t) + 3923095u;
	if (seed != 0) {
		a += (uint32_t)(seed >> 32);
		b += (uint32_t)seed;
		MIX(a, b, c);
	}
	a += k;
	FINAL(a, b, c);
	return ((uint64_t)b << 32) | c;
}

uint64_t pghash_combine(uint64_t a, uint64_t b)
{
	a ^= b + UINT64_C(0x49a0f4dd15e5a8e3) + (a << 54) + (a >> 7);
	return a;
}

/* ---- the types' extended hashes ---- */

/* hashint8extended: the low half xor the high half (inverted when
 * negative), so a value in int4 range hashes as hashint4extended does. */
static uint64_t hash_int64(int64_t v, uint64_t seed)
{
	uint32_t lo = (uint32_t)(uint64_t)v, hi = (uint32_t)((uint64_t)v >> 32);
	lo ^= v >= 0 ? hi : ~hi;
	return pghash_uint32(lo, seed);
}

/* PostgreSQL 15's pg_strtoint16/32/64: blanks, an optional sign, at least
 * one decimal digit, blanks; the value within [min, max]. */
static int parse_int(const char *s, size_t len, int64_t min, int64_t max, int64_t *out)
{
	const char *p = s, *end = s + len;
	while (p < end && isspace((unsigned char)*p))
		p++;
	bool neg = false;
	if (p < end && (*p == '-' || *p == '+'))
		neg = *p++ == '-';
	if (p == end || !isdigit((unsigned char)*p))
		return -EINVAL;
	/* Accumulate the magnitude as unsigned; the limit is |min| or max. */
	uint64_t limit = neg ? (uint64_t)(-(min + 1)) + 1 : (uint64_t)max, v = 0;
	while (p < end && isdigit((unsigned char)*p)) {
		unsigned d = (unsigned)(*p++ - '0');
		if (v > (limit - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	while (p < end && isspace((unsigned char)*p))
		p++;
	if (p != end)
		return -EINVAL;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = tolower(ch);
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* uuid_in's string_to_uuid: optional braces around 32 hex digits, a '-'
 * allowed after every second byte but the last; nothing else. */
static int parse_uuid(const char *s, size_t len, unsigned char out[16])
{
	const char *p = s, *end = s + len;
	bool braces = p < end && *p == '{';
	if (braces)
		p++;
	for (int i = 0; i < 16; i++) {
		if (end - p < 2)
			return -EINVAL;
		int hi = hexval((unsigned char)p[0]), lo = hexval((unsigned char)p[1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (unsigned char)(hi << 4 | lo);
		p += 2;
		if (p < end && *p == '-' && i % 2 == 1 && i < 15)
			p++;
	}
	if (braces) {
		if (p == end || *p != '}')
			return -EINVAL;
		p++;
	}
	return p == end ? 0 : -EINVAL;
}

int pghash_hash_text(int type, const char *s, size_t len, uint64_t seed, uint64_t *out)
{
	int64_t v;
	unsigned char u[16];
	switch (type) {
	case PGHASH_INT2:
		if (parse_int(s, len, INT16_MIN, INT16_MAX, &v) < 0)
			return -EINVAL;
		break;
	case PGHASH_INT4:
		if (parse_int(s, len, INT32_MIN, INT32_MAX, &v) < 0)
			return -EINVAL;
		break;
	case PGHASH_INT8:
		if (parse_int(s, len, INT64_MIN, INT64_MAX, &v) < 0)
			return -EINVAL;
		break;
	case PGHASH_TEXT:
		if (memchr(s, '\0', len))
			return -EINVAL; /* a text cannot hold a NUL */
		*out = pghash_bytes(s, len, seed);
		return 0;
	case PGHASH_UUID:
		if (parse_uuid(s, len, u) < 0)
			return -EINVAL;
		*out = pghash_bytes(u, sizeof(u), seed);
		return 0;
	default:
		return -EINVAL;
	}
	*out = hash_int64(v, seed);
	return 0;
}

static int64_t load_be(const unsigned char *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	/* Sign-extend from n bytes. */
	unsigned shift = (unsigned)(64 - 8 * n);
	return shift ? (int64_t)(v << shift) >> shift : (int64_t)v;
}

int pghash_hash_binary(int type, const void *p, size_t len, uint64_t seed, uint64_t *out)
{
	switch (type) {
	case PGHASH_INT2:
	case PGHASH_INT4:
	case PGHASH_INT8: {
		size_t want = type == PGHASH_INT2 ? 2 : type == PGHASH_INT4 ? 4 : 8;
		if (len != want)
			return -EINVAL;
		*out = hash_int64(load_be(p, len), seed);
		return 0;
	}
	case PGHASH_TEXT:
		if (memchr(p, '\0', len))
			return -EINVAL;
		*out = pghash_bytes(p, len, seed);
		return 0;
	case PGHASH_UUID:
		if (len != 16)
			return -EINVAL;
		*out = pghash_bytes(p, len, seed);
		return 0;
	default:
		return -EINVAL;
	}
}

/* compute_partition_hash_value for one column, then the remainder. */
static int shard_of(uint64_t h, int modulus)
{
	return (int)(pghash_combine(0, h) % (uint64_t)modulus);
}

int pghash_shard_text(int type, const char *s, size_t len, int modulus)
{
	uint64_t h;
	if (modulus < 1 || modulus > PGHASH_MAX_MODULUS || pghash_hash_text(type, s, len, PGHASH_PARTITION_SEED, &h) < 0)
		return -EINVAL;
	return shard_of(h, modulus);
}

int pghash_shard_binary(int type, const void *p, size_t len, int modulus)
{
	uint64_t h;
	if (modulus < 1 || modulus > PGHASH_MAX_MODULUS || pghash_hash_binary(type, p, len, PGHASH_PARTITION_SEED, &h) < 0)
		return -EINVAL;
	return shard_of(h, modulus);
}
