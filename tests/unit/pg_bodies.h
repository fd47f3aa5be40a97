/*
 * pg_bodies.h - message bodies the unit tests hand to code that reads a
 * server's answers: a RowDescription of text-format columns and a DataRow
 * of text values.
 */
#ifndef SLUICE_TEST_PG_BODIES_H
#define SLUICE_TEST_PG_BODIES_H

#include <stdint.h>
#include <string.h>

#include "pg_proto.h"

/* A RowDescription body of n text-format columns of these types, named
 * names[i] (NULL: all "c"); its length. */
static inline uint32_t unit_rowdesc(uint8_t *buf, int n, const uint32_t *types, const char *const *names)
{
	uint32_t o = 0;
	buf[o++] = 0;
	buf[o++] = (uint8_t)n;
	for (int i = 0; i < n; i++) {
		const char *name = names ? names[i] : "c";
		memcpy(buf + o, name, strlen(name) + 1);
		o += (uint32_t)strlen(name) + 1;
		memset(buf + o, 0, 6);
		o += 6;
		pg_put_u32(buf + o, types[i]);
		o += 4;
		memset(buf + o, 0, 8);
		o += 8;
	}
	return o;
}

/* A DataRow body of n text values (NULL: SQL NULL); its length. */
static inline uint32_t unit_datarow(uint8_t *buf, int n, const char *const *v)
{
	uint32_t o = 0;
	buf[o++] = 0;
	buf[o++] = (uint8_t)n;
	for (int i = 0; i < n; i++) {
		pg_put_u32(buf + o, v[i] ? (uint32_t)strlen(v[i]) : 0xffffffffu);
		o += 4;
		if (v[i]) {
			memcpy(buf + o, v[i], strlen(v[i]));
			o += (uint32_t)strlen(v[i]);
		}
	}
	return o;
}

#endif
