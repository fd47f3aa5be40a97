/*
 * fnv.h - FNV-1a, the 64-bit hash sluice uses wherever a cheap,
 * deterministic hash of bytes will do (statement texts, mirrored answers,
 * a sharded pool's configuration, query shapes). Not for anything an
 * attacker may aim at a table with.
 */
#ifndef SLUICE_FNV_H
#define SLUICE_FNV_H

#include <stddef.h>
#include <stdint.h>

#define FNV1A_START UINT64_C(0xcbf29ce484222325) /* the offset basis */

/* n bytes of p hashed on from h (FNV1A_START for a new hash). */
static inline uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * UINT64_C(0x100000001b3);
	return h;
}

#endif
