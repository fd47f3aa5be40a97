/*
 * session_vars.c - see session_vars.h. A session rarely sets more than a
 * handful of settings: a small array searched linearly.
 */
#include "session_vars.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sqlinfo.h"

static struct session_var *find(const struct session_vars *vs, const char *name)
{
	for (uint16_t i = 0; i < vs->n; i++)
		if (strcmp(vs->v[i].name, name) == 0)
			return &vs->v[i];
	return NULL;
}

const char *session_vars_get(const struct session_vars *vs, const char *name)
{
	const struct session_var *e = find(vs, name);
	return e ? e->sql : NULL;
}

int session_vars_set(struct session_vars *vs, const char *name, const char *sql)
{
	char *s = strdup(sql);
	if (!s)
		return -ENOMEM;
	struct session_var *e = find(vs, name);
	if (e) {
		free(e->sql);
		e->sql = s;
		return 0;
	}
	if (vs->n == vs->cap) {
		if (vs->cap == UINT16_MAX) {
			free(s);
			return -ENOMEM;
		}
		uint16_t ncap = vs->cap ? (vs->cap > UINT16_MAX / 2 ? UINT16_MAX : vs->cap * 2) : 4;
		struct session_var *v = realloc(vs->v, ncap * sizeof(*v));
		if (!v) {
			free(s);
			return -ENOMEM;
		}
		vs->v = v;
		vs->cap = ncap;
	}
	char *n = strdup(name);
	if (!n) {
		free(s);
		return -ENOMEM;
	}
	vs->v[vs->n++] = (struct session_var){ .name = n, .sql = s };
	return 0;
}

static void remove_at(struct session_vars *vs, uint16_t i)
{
	free(vs->v[i].name);
	free(vs->v[i].sql);
	vs->v[i] = vs->v[--vs->n];
}

void session_vars_unset(struct session_vars *vs, const char *name)
{
	struct session_var *e = find(vs, name);
	if (e)
		remove_at(vs, (uint16_t)(e - vs->v));
}

void session_vars_reset_all(struct session_vars *vs)
{
	for (uint16_t i = vs->n; i-- > 0;)
		if (strcmp(vs->v[i].name, "role") != 0 && strcmp(vs->v[i].name, "session_authorization") != 0)
			remove_at(vs, i);
}

void session_vars_clear(struct session_vars *vs)
{
	while (vs->n)
		remove_at(vs, vs->n - 1);
	free(vs->v);
	memset(vs, 0, sizeof(*vs));
}

int session_vars_copy(struct session_vars *dst, const struct session_vars *src)
{
	session_vars_clear(dst);
	for (uint16_t i = 0; i < src->n; i++)
		if (session_vars_set(dst, src->v[i].name, src->v[i].sql) < 0)
			return -ENOMEM;
	return 0;
}

size_t session_vars_bytes(const struct session_vars *vs)
{
	size_t b = (size_t)vs->cap * sizeof(*vs->v);
	for (uint16_t i = 0; i < vs->n; i++)
		b += strlen(vs->v[i].name) + strlen(vs->v[i].sql) + 2;
	return b;
}

int session_vars_apply(struct session_vars *vs, const struct sql_info *si, uint16_t k)
{
	const struct sql_change *c = &si->changes[k];
	switch (c->op) {
	case SQL_CHANGE_SET:
		return session_vars_set(vs, c->name, c->sql);
	case SQL_CHANGE_RESET:
		session_vars_unset(vs, c->name);
		return 0;
	case SQL_CHANGE_RESET_ALL:
		session_vars_reset_all(vs);
		return 0;
	default:
		session_vars_clear(vs);
		return 0;
	}
}

static int append(char **sql, size_t *len, size_t *cap, const char *a, const char *b, const char *c)
{
	size_t need = strlen(a) + strlen(b) + strlen(c);
	if (*len + need + 1 > *cap) {
		size_t ncap = (*cap ? *cap : 64);
		while (ncap < *len + need + 1)
			ncap *= 2;
		char *n = realloc(*sql, ncap);
		if (!n)
			return -ENOMEM;
		*sql = n;
		*cap = ncap;
	}
	char *o = *sql + *len;
	o = stpcpy(stpcpy(stpcpy(o, a), b), c);
	*len = (size_t)(o - *sql);
	return 0;
}

int session_vars_diff_sql(const struct session_vars *have, const struct session_vars *want,
			  char **sql, size_t *len, size_t *cap)
{
	for (uint16_t i = 0; i < have->n; i++) {
		if (find(want, have->v[i].name))
			continue;
		/* The name as PostgreSQL's grammar produced it, double-quoted
		 * (quotes doubled) so it reads back as one name. */
		const char *name = have->v[i].name;
		char *quoted = malloc(2 * strlen(name) + 3), *q = quoted;
		if (!quoted)
			return -ENOMEM;
		*q++ = '"';
		for (const char *p = name; *p; p++) {
			if (*p == '"')
				*q++ = '"';
			*q++ = *p;
		}
		*q++ = '"';
		*q = '\0';
		int rc = append(sql, len, cap, "RESET ", quoted, ";");
		free(quoted);
		if (rc < 0)
			return rc;
	}
	for (uint16_t i = 0; i < want->n; i++) {
		const struct session_var *h = find(have, want->v[i].name);
		if ((!h || strcmp(h->sql, want->v[i].sql) != 0) && append(sql, len, cap, want->v[i].sql, ";", "") < 0)
			return -ENOMEM;
	}
	return 0;
}
