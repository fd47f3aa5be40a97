/*
 * pghash.h - PostgreSQL 15's hash partitioning, bit for bit: the remainder
 * that PARTITION BY HASH (key) with MODULUS n gives a key value, so a row
 * sluice places on shard r is the row PostgreSQL would put in the
 * partition WITH (MODULUS n, REMAINDER r) (docs/sharding.md).
 *
 * PostgreSQL (src/backend/partitioning/partbounds.c) hashes each key
 * column with its type's extended hash function and the seed
 * HASH_PARTITION_SEED, folds the column hashes with hash_combine64 from 0,
 * and takes the unsigned remainder. The extended hashes are Bob Jenkins'
 * lookup3 with a 64-bit result (src/common/hashfn.c): over the 4 bytes of
 * a 32-bit integer for int2/int4/int8 (int8 folded so that equal numbers
 * of the three types hash alike, sign-extended int2/int4 the same), over
 * the bytes of a text or varchar under a deterministic collation, over
 * the 16 bytes of a uuid.
 *
 * Values come as the text of a literal or of a Bind parameter in text
 * format (the caller has removed quotes), or as a Bind parameter in binary
 * format. A value that does not parse for its type is an error, never a
 * guess: PostgreSQL would refuse it too.
 *
 * Owns: nothing. Must not: allocate, do I/O, or know about SQL.
 */
#ifndef SLUICE_PGHASH_H
#define SLUICE_PGHASH_H

#include <stddef.h>
#include <stdint.h>

/* Shard key types. */
enum pghash_type {
	PGHASH_UNKNOWN = 0, /* not said in the configuration: learned later */
	PGHASH_INT2,
	PGHASH_INT4,
	PGHASH_INT8,
	PGHASH_TEXT,        /* text and varchar (the same hash opclass) */
	PGHASH_UUID,
	PGHASH_TYPES
};

/* partbounds.c's HASH_PARTITION_SEED. */
#define PGHASH_PARTITION_SEED UINT64_C(0x7A5B22367996DCFD)

/* The most shards (moduli) sluice accepts. */
#define PGHASH_MAX_MODULUS 64

/* The type a SQL name means (int2, smallint, int4, integer, int, int8,
 * bigint, text, varchar, character varying, uuid; any case), or -1. */
int pghash_type_from_name(const char *name);
/* The canonical name ("int4", "text", ...; "unknown"). */
const char *pghash_type_name(int type);

/* hashfn.c's hash_bytes_extended and hash_bytes_uint32_extended. */
uint64_t pghash_bytes(const void *k, size_t len, uint64_t seed);
uint64_t pghash_uint32(uint32_t k, uint64_t seed);
/* hashfn.h's hash_combine64. */
uint64_t pghash_combine(uint64_t a, uint64_t b);

/* The type's extended hash of one value with seed, into *out. Text form:
 * int2/int4/int8 as PostgreSQL 15's integer input (blanks around, a sign,
 * decimal digits, in range), text as its bytes, uuid as uuid_in (32 hex
 * digits, a '-' allowed after any group of four, optional braces).
 * Binary form: 2, 4 or 8 bytes big-endian, the bytes of a text, the 16
 * bytes of a uuid. Return 0, or -EINVAL when the value does not parse
 * for type (PGHASH_UNKNOWN never does). */
int pghash_hash_text(int type, const char *s, size_t len, uint64_t seed, uint64_t *out);
int pghash_hash_binary(int type, const void *p, size_t len, uint64_t seed, uint64_t *out);

/* The remainder of a single-column key value under modulus (1..
 * PGHASH_MAX_MODULUS): the shard. Return it, or -EINVAL (a value that
 * does not parse, a bad modulus). */
int pghash_shard_text(int type, const char *s, size_t len, int modulus);
int pghash_shard_binary(int type, const void *p, size_t len, int modulus);

#endif
