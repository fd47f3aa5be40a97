/*
 * replication.c - replication connections passed through; see replication.h.
 */
#include "replication.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pg_proto.h"

/* PostgreSQL's parse_bool: any unique prefix of true/false/yes/no, on/off
 * (at least two letters), 1/0. Returns 1, 0 or -1. */
static int parse_bool(const char *v)
{
	size_t n = strlen(v);
	if (n == 0)
		return -1;
	static const struct { const char *word; int value; size_t min; } words[] = {
		{ "true", 1, 1 }, { "false", 0, 1 }, { "yes", 1, 1 }, { "no", 0, 1 },
		{ "on", 1, 2 }, { "off", 0, 2 }, { "1", 1, 1 }, { "0", 0, 1 },
	};
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (n >= words[i].min && n <= strlen(words[i].word) && strncasecmp(v, words[i].word, n) == 0)
			return words[i].value;
	return -1;
}

int repl_kind_of(const struct pg_startup *st, char *err, size_t errlen)
{
	const char *v = pg_startup_get(st, "replication");
	if (!v)
		return REPL_NONE;
	if (strcasecmp(v, "database") == 0)
		return REPL_LOGICAL;
	int b = parse_bool(v);
	if (b < 0) {
		snprintf(err, errlen, "invalid value for parameter \"replication\": \"%.64s\"", v);
		return -1;
	}
	return b ? REPL_PHYSICAL : REPL_NONE;
}

const char *repl_kind_name(int kind)
{
	return kind == REPL_PHYSICAL ? "physical" : kind == REPL_LOGICAL ? "logical" : "none";
}

static bool is_identity(const char *name)
{
	return strcmp(name, "user") == 0 || strcmp(name, "database") == 0;
}

char *repl_startup_pack(const struct pg_startup *st, uint32_t *len)
{
	size_t n = 0;
	for (int i = 0; i < st->n_params; i++)
		if (!is_identity(st->names[i]))
			n += strlen(st->names[i]) + strlen(st->values[i]) + 2;
	char *out = malloc(n ? n : 1);
	if (!out)
		return NULL;
	size_t at = 0;
	for (int i = 0; i < st->n_params; i++) {
		if (is_identity(st->names[i]))
			continue;
		size_t a = strlen(st->names[i]) + 1, b = strlen(st->values[i]) + 1;
		memcpy(out + at, st->names[i], a);
		memcpy(out + at + a, st->values[i], b);
		at += a + b;
	}
	*len = (uint32_t)n;
	return out;
}

int repl_startup_unpack(const char *packed, uint32_t len, const char **names, const char **values, int max)
{
	int n = 0;
	for (uint32_t at = 0; at < len && n < max; n++) {
		names[n] = packed + at;
		at += (uint32_t)strlen(packed + at) + 1;
		values[n] = packed + at;
		at += (uint32_t)strlen(packed + at) + 1;
	}
	return n;
}
