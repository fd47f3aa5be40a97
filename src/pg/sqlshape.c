/*
 * sqlshape.c - see sqlshape.h.
 */
#include "sqlshape.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* A byte that may continue a name or a number (PostgreSQL takes bytes
 * above 127 as letters). */
static bool word_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c >= 0x80;
}

static bool blank(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

int sql_shape(const char *sql, size_t len, char *out, size_t cap, struct sql_literal *lits)
{
	size_t o = 0;
	int n = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)sql[i];
		if (c == '\'' || c == '"' || c == '$' || c == '\\' || c == '\0' ||
		    (c == '-' && i + 1 < len && sql[i + 1] == '-') || (c == '/' && i + 1 < len && sql[i + 1] == '*'))
			return -1;
	}
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)sql[i];
		bool literal = false;
		size_t end = i;
		if (c >= '0' && c <= '9' && (i == 0 || (!word_byte((unsigned char)sql[i - 1]) && sql[i - 1] != '.'))) {
			while (end < len && sql[end] >= '0' && sql[end] <= '9')
				end++;
			size_t before = i;
			while (before > 0 && blank((unsigned char)sql[before - 1]))
				before--;
			literal = (end == len || (!word_byte((unsigned char)sql[end]) && sql[end] != '.' && sql[end] != ':')) &&
				  !(before > 0 && (sql[before - 1] == '-' || sql[before - 1] == '+'));
		}
		if (!literal) {
			if (o + 1 >= cap)
				return -1;
			/* A run of digits inside a name or number is copied whole. */
			do
				out[o++] = sql[i++];
			while (i < len && i < end && o + 1 < cap);
			if (i < end)
				return -1;
			continue;
		}
		if (n == SQL_SHAPE_MAX_LITERALS)
			return -1;
		int w = snprintf(out + o, cap - o, "$%d", n + 1);
		if (w < 0 || (size_t)w >= cap - o)
			return -1;
		o += (size_t)w;
		lits[n].off = (uint32_t)i;
		lits[n].len = (uint32_t)(end - i);
		n++;
		i = end;
	}
	if (o >= cap)
		return -1;
	out[o] = '\0';
	return n;
}
