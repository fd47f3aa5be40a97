/*
 * sqlinfo.c - see sqlinfo.h. The parse tree and its generic walk come from
 * sqlparse.c (shared with sqlread.c).
 */
#include "sqlinfo.h"
#include "sqlparse.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the lexical screen ---- */

static bool word_eq(const char *w, size_t n, const char *kw)
{
	return strlen(kw) == n && strncasecmp(w, kw, n) == 0;
}

static bool word_has(const char *w, size_t n, const char *part)
{
	size_t m = strlen(part);
	for (size_t i = 0; i + m <= n; i++)
		if (strncasecmp(w + i, part, m) == 0)
			return true;
	return false;
}

/* Words that matter wherever they stand (also inside "quoted" names). */
static bool word_matters_anywhere(const char *w, size_t n)
{
	return word_eq(w, n, "temp") || word_eq(w, n, "temporary") ||
	       (n >= 7 && strncasecmp(w, "pg_temp", 7) == 0) ||
	       word_has(w, n, "advisory") || word_eq(w, n, "set_config");
}

/* Words that matter when they begin a statement. */
static bool word_matters_first(const char *w, size_t n)
{
	static const char *const kw[] = {
		"set", "reset", "discard", "deallocate", "prepare", "listen", "declare",
		"do", "call", "load", "execute", NULL,
	};
	for (const char *const *k = kw; *k; k++)
		if (word_eq(w, n, *k))
			return true;
	return false;
}

static bool ident_start(unsigned char c)
{
	return isalpha(c) || c == '_' || c >= 0x80;
}

static bool ident_char(unsigned char c)
{
	return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

/* Past a quoted run starting at p (p points at the opening quote q);
 * backslash escapes when esc. Returns end (unterminated: end of text). */
static const char *skip_quoted(const char *p, const char *end, char q, bool esc)
{
	for (p++; p < end; p++) {
		if (esc && *p == '\\' && p + 1 < end) {
			p++;
		} else if (*p == q) {
			if (p + 1 < end && p[1] == q)
				p++; /* doubled quote */
			else
				return p + 1;
		}
	}
	return end;
}

/* $tag$...$tag$ starting at p; NULL when p does not open one ($1 etc.). */
static const char *skip_dollar_quoted(const char *p, const char *end)
{
	const char *t = p + 1;
	if (t < end && *t != '$') {
		if (!ident_start((unsigned char)*t) || *t == '$')
			return NULL;
		while (t < end && ident_char((unsigned char)*t) && *t != '$')
			t++;
	}
	if (t >= end || *t != '$')
		return NULL;
	size_t tag = (size_t)(t - p) + 1;
	for (const char *q = t + 1; q + tag <= end; q++)
		if (*q == '$' && memcmp(q, p, tag) == 0)
			return q + tag;
	return end;
}

bool sql_worth_parsing(const char *sql, size_t len)
{
	const char *p = sql, *end = sql + len;
	bool first = true; /* the next word begins a statement */
	while (p < end) {
		unsigned char c = (unsigned char)*p;
		if (isspace(c) || (c == '-' && p + 1 < end && p[1] == '-') || (c == '/' && p + 1 < end && p[1] == '*')) {
			p = sql_skip_space(p, end);
		} else if (c == '\'') {
			p = skip_quoted(p, end, '\'', false);
			first = false;
		} else if (c == '"') {
			const char *q = skip_quoted(p, end, '"', false);
			bool closed = q - p >= 2 && q[-1] == '"';
			if (word_matters_anywhere(p + 1, (size_t)(q - p) - (closed ? 2 : 1)))
				return true;
			p = q;
			first = false;
		} else if (c == '$') {
			const char *q = skip_dollar_quoted(p, end);
			p = q ? q : p + 1;
			first = false;
		} else if (ident_start(c)) {
			const char *w = p;
			while (p < end && ident_char((unsigned char)*p))
				p++;
			size_t n = (size_t)(p - w);
			if (n == 1 && (*w == 'e' || *w == 'E') && p < end && *p == '\'') {
				p = skip_quoted(p, end, '\'', true); /* E'...' */
			} else if (word_matters_anywhere(w, n) || (first && word_matters_first(w, n))) {
				return true;
			}
			first = false;
		} else {
			if (c == ';')
				first = true;
			else if (c != '(')
				first = false;
			p++;
		}
	}
	return false;
}

/* ---- the parse tree ---- */

struct walk {
	struct sql_walker w;              /* first: sql_walk hands it back to visit */
	struct sql_info *si;
	int err;                          /* -ENOMEM */
	const void *ignore_rel;           /* a temporary relation dropped at commit */
	uint16_t stmt;                    /* index of the statement walked */
};

static void set_pin(struct sql_info *si, int why)
{
	if (!si->pin)
		si->pin = (uint8_t)why;
}

static bool is_temp_schema(const char *s)
{
	return s && (strcmp(s, "pg_temp") == 0 || strncmp(s, "pg_temp_", 8) == 0);
}

/* Last name of a qualified name list (String nodes); schema in *schema. */
static const char *qualified_last(size_t n, PgQuery__Node **names, const char **schema)
{
	*schema = NULL;
	if (n == 0 || names[n - 1]->node_case != PG_QUERY__NODE__NODE_STRING)
		return NULL;
	if (n >= 2 && names[n - 2]->node_case == PG_QUERY__NODE__NODE_STRING)
		*schema = names[n - 2]->string->sval;
	return names[n - 1]->string->sval;
}

static const char *const_string(const PgQuery__Node *n)
{
	if (n && n->node_case == PG_QUERY__NODE__NODE_A_CONST && n->a_const->val_case == PG_QUERY__A__CONST__VAL_SVAL)
		return n->a_const->sval->sval;
	return NULL;
}

/* 1 for the constant false, 0 for true, -1 when not a boolean constant. */
static int const_false(const PgQuery__Node *n)
{
	if (n && n->node_case == PG_QUERY__NODE__NODE_A_CONST &&
	    n->a_const->val_case == PG_QUERY__A__CONST__VAL_BOOLVAL)
		return n->a_const->boolval->boolval ? 0 : 1;
	const char *s = const_string(n);
	if (s && (strcasecmp(s, "false") == 0 || strcasecmp(s, "f") == 0 || strcmp(s, "0") == 0 ||
		  strcasecmp(s, "off") == 0 || strcasecmp(s, "no") == 0))
		return 1;
	if (s && (strcasecmp(s, "true") == 0 || strcasecmp(s, "t") == 0 || strcmp(s, "1") == 0 ||
		  strcasecmp(s, "on") == 0 || strcasecmp(s, "yes") == 0))
		return 0;
	return -1;
}

static int add_change(struct sql_info *si, int op, uint16_t stmt, const char *name, const char *sql, size_t sql_len)
{
	struct sql_change *v = realloc(si->changes, (si->n_changes + 1u) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	si->changes = v;
	struct sql_change *c = &v[si->n_changes];
	memset(c, 0, sizeof(*c));
	c->op = (uint8_t)op;
	c->stmt = stmt;
	if (name) {
		c->name = strdup(name);
		if (!c->name)
			return -ENOMEM;
		for (char *p = c->name; *p; p++)
			*p = (char)tolower((unsigned char)*p);
	}
	if (sql) {
		c->sql = strndup(sql, sql_len);
		if (!c->sql) {
			free(c->name);
			return -ENOMEM;
		}
	}
	si->n_changes++;
	return 0;
}

/* SQL literal of s ('...' with quotes doubled; E'' when backslashes). */
static char *sql_literal(const char *s)
{
	size_t n = strlen(s);
	char *out = malloc(2 * n + 4);
	if (!out)
		return NULL;
	char *o = out;
	if (strchr(s, '\\'))
		*o++ = 'E';
	*o++ = '\'';
	for (const char *p = s; *p; p++) {
		if (*p == '\'' || *p == '\\')
			*o++ = *p;
		*o++ = *p;
	}
	*o++ = '\'';
	*o = '\0';
	return out;
}

/* set_config(name, value, is_local): a session change when is_local is
 * the constant false and both texts are constants; any other form that
 * may be session-wide cannot be replayed. */
static void on_set_config(struct walk *wk, const PgQuery__FuncCall *fc, uint16_t stmt)
{
	if (fc->n_args != 3) {
		set_pin(wk->si, SQL_PIN_SETTING);
		return;
	}
	int is_false = const_false(fc->args[2]);
	if (is_false == 0)
		return; /* local to the transaction */
	const char *name = const_string(fc->args[0]), *value = const_string(fc->args[1]);
	if (is_false < 0 || !name || !value) {
		set_pin(wk->si, SQL_PIN_SETTING);
		return;
	}
	char *sql = sql_set_config_statement(name, value);
	if (!sql || add_change(wk->si, SQL_CHANGE_SET, stmt, name, sql, strlen(sql)) < 0)
		wk->err = -ENOMEM;
	free(sql);
}

char *sql_set_config_statement(const char *name, const char *value)
{
	char *ln = sql_literal(name), *lv = sql_literal(value);
	char *sql = ln && lv ? malloc(strlen(ln) + strlen(lv) + 48) : NULL;
	if (sql)
		sprintf(sql, "SELECT pg_catalog.set_config(%s, %s, false)", ln, lv);
	free(ln);
	free(lv);
	return sql;
}

static int visit(struct sql_walker *w, const ProtobufCMessage *m, const ProtobufCMessageDescriptor *parent)
{
	struct walk *wk = (struct walk *)w;
	const ProtobufCMessageDescriptor *d = m->descriptor;
	if (d == &pg_query__func_call__descriptor) {
		const PgQuery__FuncCall *fc = (const PgQuery__FuncCall *)m;
		const char *schema, *fn = qualified_last(fc->n_funcname, fc->funcname, &schema);
		if (!fn || (schema && strcmp(schema, "pg_catalog") != 0))
			return SQL_WALK_ON;
		if (strcmp(fn, "pg_advisory_lock") == 0 || strcmp(fn, "pg_advisory_lock_shared") == 0 ||
		    strcmp(fn, "pg_try_advisory_lock") == 0 || strcmp(fn, "pg_try_advisory_lock_shared") == 0)
			set_pin(wk->si, SQL_PIN_ADVISORY);
		else if (strcmp(fn, "set_config") == 0)
			on_set_config(wk, fc, wk->stmt);
	} else if (d == &pg_query__range_var__descriptor) {
		const PgQuery__RangeVar *rv = (const PgQuery__RangeVar *)m;
		if (m != wk->ignore_rel && ((rv->relpersistence && strcmp(rv->relpersistence, "t") == 0) ||
					    is_temp_schema(rv->schemaname)))
			set_pin(wk->si, SQL_PIN_TEMP);
	} else if (d == &pg_query__string__descriptor && parent != &pg_query__a__const__descriptor) {
		/* A name qualified by pg_temp (functions, types, operators). */
		if (is_temp_schema(((const PgQuery__String *)m)->sval))
			set_pin(wk->si, SQL_PIN_TEMP);
	} else if (d == &pg_query__create_stmt__descriptor) {
		const PgQuery__CreateStmt *cs = (const PgQuery__CreateStmt *)m;
		if (cs->oncommit == PG_QUERY__ON_COMMIT_ACTION__ONCOMMIT_DROP)
			wk->ignore_rel = cs->relation; /* gone when its transaction ends */
	} else if (d == &pg_query__into_clause__descriptor) {
		const PgQuery__IntoClause *ic = (const PgQuery__IntoClause *)m;
		if (ic->on_commit == PG_QUERY__ON_COMMIT_ACTION__ONCOMMIT_DROP)
			wk->ignore_rel = ic->rel;
	}
	return SQL_WALK_ON;
}

/* A subtree too deep to read through: assume the worst of it. */
static int too_deep(struct sql_walker *w)
{
	set_pin(((struct walk *)w)->si, SQL_PIN_UNREADABLE);
	return SQL_WALK_SKIP;
}

/* Settings a session SET must not be tracked for: the transaction's own,
 * and those PostgreSQL reports itself (ParameterStatus; client.c keeps
 * them in step). */
static bool setting_untracked(const char *name)
{
	static const char *const names[] = {
		"transaction_isolation", "transaction_read_only", "transaction_deferrable",
		"client_encoding", "datestyle", "timezone", "intervalstyle",
		"standard_conforming_strings", "application_name", NULL,
	};
	for (const char *const *n = names; *n; n++)
		if (strcasecmp(name, *n) == 0)
			return true;
	return false;
}

/* The text of statement k, without the trailing semicolon and blanks. */
static void stmt_text(const char *sql, const PgQuery__RawStmt *rs, const char **p, size_t *len)
{
	size_t total = strlen(sql);
	size_t at = rs->stmt_location > 0 ? (size_t)rs->stmt_location : 0;
	if (at > total)
		at = total;
	size_t n = rs->stmt_len > 0 ? (size_t)rs->stmt_len : total - at;
	if (n > total - at)
		n = total - at;
	while (n && (isspace((unsigned char)sql[at + n - 1]) || sql[at + n - 1] == ';'))
		n--;
	while (n && isspace((unsigned char)sql[at])) {
		at++;
		n--;
	}
	*p = sql + at;
	*len = n;
}

static int on_variable_set(struct sql_info *si, const PgQuery__VariableSetStmt *vs, uint16_t stmt,
			   const char *text, size_t text_len)
{
	if (vs->is_local)
		return 0; /* undone when the transaction ends */
	switch (vs->kind) {
	case PG_QUERY__VARIABLE_SET_KIND__VAR_SET_VALUE:
		if (setting_untracked(vs->name))
			return 0;
		return add_change(si, SQL_CHANGE_SET, stmt, vs->name, text, text_len);
	case PG_QUERY__VARIABLE_SET_KIND__VAR_SET_DEFAULT:
	case PG_QUERY__VARIABLE_SET_KIND__VAR_RESET:
		if (setting_untracked(vs->name))
			return 0;
		return add_change(si, SQL_CHANGE_RESET, stmt, vs->name, NULL, 0);
	case PG_QUERY__VARIABLE_SET_KIND__VAR_RESET_ALL:
		return add_change(si, SQL_CHANGE_RESET_ALL, stmt, NULL, NULL, 0);
	case PG_QUERY__VARIABLE_SET_KIND__VAR_SET_MULTI:
		/* SET TRANSACTION ... is the transaction's own; SET SESSION
		 * CHARACTERISTICS changes three defaults at once. */
		if (strcasecmp(vs->name, "TRANSACTION") != 0 && strcasecmp(vs->name, "TRANSACTION SNAPSHOT") != 0)
			set_pin(si, SQL_PIN_SETTING);
		return 0;
	default: /* SET ... FROM CURRENT: the value in force where it runs */
		set_pin(si, SQL_PIN_SETTING);
		return 0;
	}
}

/* One top-level statement. */
static int on_statement(struct walk *wk, const char *sql, const PgQuery__RawStmt *rs, uint16_t k)
{
	struct sql_info *si = wk->si;
	const PgQuery__Node *n = rs->stmt;
	if (!n)
		return 0;
	const char *text;
	size_t text_len;
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_VARIABLE_SET_STMT:
		stmt_text(sql, rs, &text, &text_len);
		return on_variable_set(si, n->variable_set_stmt, k, text, text_len);
	case PG_QUERY__NODE__NODE_DISCARD_STMT:
		if (n->discard_stmt->target == PG_QUERY__DISCARD_MODE__DISCARD_ALL) {
			if (!(si->flags & SQL_F_DEALLOCATE_ALL))
				si->dealloc_stmt = k;
			si->flags |= SQL_F_DEALLOCATE_ALL;
			return add_change(si, SQL_CHANGE_DISCARD_ALL, k, NULL, NULL, 0);
		}
		return 0;
	case PG_QUERY__NODE__NODE_DEALLOCATE_STMT:
		if (!n->deallocate_stmt->name || !*n->deallocate_stmt->name) {
			if (!(si->flags & SQL_F_DEALLOCATE_ALL))
				si->dealloc_stmt = k;
			si->flags |= SQL_F_DEALLOCATE_ALL;
		} else if (!si->name) {
			si->flags |= SQL_F_DEALLOCATE;
			si->name = strdup(n->deallocate_stmt->name);
			if (!si->name)
				return -ENOMEM;
		}
		return 0;
	case PG_QUERY__NODE__NODE_EXECUTE_STMT:
		if (!si->name && n->execute_stmt->name) {
			si->flags |= SQL_F_EXECUTE;
			si->name = strdup(n->execute_stmt->name);
			if (!si->name)
				return -ENOMEM;
		}
		break;
	case PG_QUERY__NODE__NODE_LISTEN_STMT:
		set_pin(si, SQL_PIN_LISTEN);
		return 0;
	case PG_QUERY__NODE__NODE_PREPARE_STMT:
		set_pin(si, SQL_PIN_PREPARE);
		break;
	case PG_QUERY__NODE__NODE_LOAD_STMT:
		set_pin(si, SQL_PIN_LOAD);
		return 0;
	case PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT:
		if (n->declare_cursor_stmt->options & 0x0020) /* CURSOR_OPT_HOLD */
			set_pin(si, SQL_PIN_HOLD_CURSOR);
		break;
	case PG_QUERY__NODE__NODE_DO_STMT:
	case PG_QUERY__NODE__NODE_CALL_STMT:
		si->flags |= SQL_F_DYNAMIC;
		break;
	case PG_QUERY__NODE__NODE_TRANSACTION_STMT:
		si->flags |= SQL_F_TX_CONTROL;
		return 0;
	default:
		break;
	}
	wk->ignore_rel = NULL;
	wk->stmt = k;
	sql_walk(&wk->w, &n->base);
	return wk->err;
}

void sql_info_put(struct sql_info *si)
{
	if (!si || --si->refs > 0)
		return;
	for (uint16_t i = 0; i < si->n_changes; i++) {
		free(si->changes[i].name);
		free(si->changes[i].sql);
	}
	free(si->changes);
	free(si->name);
	free(si);
}

int sql_inspect(const char *sql, struct sql_info **out)
{
	*out = NULL;
	struct sql_tree tree;
	int rc = sql_parse(&tree, sql);
	const PgQuery__ParseResult *pr = tree.pr;
	if (rc < 0 || !pr) {
		sql_tree_deinit(&tree);
		return rc;
	}
	struct sql_info *si = calloc(1, sizeof(*si));
	rc = si ? 0 : -ENOMEM;
	struct walk wk = { .w = { .visit = visit, .too_deep = too_deep }, .si = si };
	for (size_t k = 0; rc == 0 && k < pr->n_stmts && k < UINT16_MAX; k++)
		rc = on_statement(&wk, sql, pr->stmts[k], (uint16_t)k);
	if (si) {
		si->n_stmts = (uint16_t)(pr->n_stmts < UINT16_MAX ? pr->n_stmts : UINT16_MAX);
		si->refs = 1;
		/* DEALLOCATE / EXECUTE of a name are handled only when alone. */
		if (si->n_stmts != 1 && (si->flags & (SQL_F_DEALLOCATE | SQL_F_EXECUTE))) {
			si->flags &= (uint16_t)~(SQL_F_DEALLOCATE | SQL_F_EXECUTE);
			free(si->name);
			si->name = NULL;
		}
	}
	sql_tree_deinit(&tree);
	if (rc < 0) {
		sql_info_put(si);
		return rc;
	}
	if (!sql_info_changes_session(si) && !(si->flags & (SQL_F_DEALLOCATE | SQL_F_EXECUTE))) {
		sql_info_put(si);
		si = NULL;
	}
	*out = si;
	return 0;
}

int sql_inspect_if_needed(const char *sql, size_t len, struct sql_info **out)
{
	*out = NULL;
	if (!sql_worth_parsing(sql, len))
		return 0;
	return sql_inspect(sql, out);
}

const char *sql_pin_name(int pin)
{
	switch (pin) {
	case SQL_PIN_TEMP: return "temporary object";
	case SQL_PIN_LISTEN: return "LISTEN";
	case SQL_PIN_ADVISORY: return "session advisory lock";
	case SQL_PIN_HOLD_CURSOR: return "WITH HOLD cursor";
	case SQL_PIN_PREPARE: return "SQL PREPARE";
	case SQL_PIN_LOAD: return "LOAD";
	case SQL_PIN_SETTING: return "setting sluice cannot replay";
	case SQL_PIN_UNREADABLE: return "statement too deep to read";
	default: return "none";
	}
}
