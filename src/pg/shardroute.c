/*
 * shardroute.c - see shardroute.h. The statement's own FROM list, joins
 * and WHERE are read here by hand; everything else (subqueries, WITH,
 * window functions, locking clauses, function calls) is found by
 * sqlparse.c's generic walk, so no node type can hide a sharded table.
 */
#include "shardroute.h"
#include "pghash.h"
#include "sqlparse.h"
#include "sqlread.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Tables (with their repeats) one statement may name at its top level. */
#define ROUTE_MAX_REFS 32

/* One table of the statement's own FROM (or UPDATE/DELETE/INSERT target). */
struct ref {
	const char *schema;  /* as written; NULL when unqualified */
	const char *name;
	const char *alias;   /* NULL when none */
	int table;           /* index in map->tables; -1: replicated (or a WITH query) */
	int parent;          /* union-find over co-located refs */
};

/* What the AND-ed conditions fix of one ref's key. */
struct fix {
	bool has_set;        /* mask holds: the key is one of these shards' */
	uint64_t mask;
	int param;           /* first `key = $n`; 0 = none */
	int param_type;      /* its enum pghash_type */
	int n_params;        /* `key = $n` conditions, all of them */
};

/* A join's ON (or WHERE): read once every ref is known. */
struct qual {
	const PgQuery__Node *expr;
	bool fixes;          /* its conditions fix keys (WHERE, inner joins not under an outer one) */
};

/* JOIN ... USING (cols): the refs of each side. */
struct using {
	const PgQuery__JoinExpr *j;
	int l0, l1, r0, r1;  /* refs [l0, l1) left, [r0, r1) right */
};

struct route_ctx {
	const char *sql;           /* the text routed (locations point into it) */
	const struct shard_map *map;
	const uint32_t *ptypes;    /* the Parse's parameter type OIDs, or NULL */
	int n_ptypes;
	struct shard_route *out;
	const PgQuery__WithClause *with; /* the statement's WITH: its names are not tables */
	struct ref refs[ROUTE_MAX_REFS];
	struct fix fix[ROUTE_MAX_REFS];
	int n_refs;
	struct qual quals[ROUTE_MAX_REFS + 1];
	int n_quals;
	struct using usings[ROUTE_MAX_REFS];
	int n_usings;
	bool refused;              /* out holds a REFUSE (the first reason wins) */
	int n_avg;                 /* avg calls each shard runs as sum and count: */
	int avg_open[SHARD_MAX_AGGS], avg_end[SHARD_MAX_AGGS]; /* their "(...)" in sql */
	int avg_at[SHARD_MAX_AGGS]; /* where "avg" starts */
};

enum { ROUTE_FAIL = -1 };

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int refuse(struct route_ctx *c, const char *sqlstate, const char *fmt, ...)
{
	if (c->refused)
		return ROUTE_FAIL;
	c->refused = true;
	shard_route_deinit(c->out); /* rows of an INSERT met before the reason */
	c->out->kind = SHARD_ROUTE_REFUSE;
	snprintf(c->out->sqlstate, sizeof(c->out->sqlstate), "%s", sqlstate);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->out->message, sizeof(c->out->message), fmt, ap);
	va_end(ap);
	return ROUTE_FAIL;
}

static uint64_t all_shards(const struct route_ctx *c)
{
	return c->map->n_shards >= 64 ? ~UINT64_C(0) : (UINT64_C(1) << c->map->n_shards) - 1;
}

/* ---- names ---- */

static const char *str_node(const PgQuery__Node *n)
{
	return n && n->node_case == PG_QUERY__NODE__NODE_STRING ? n->string->sval : NULL;
}

static bool is_cte_name(const struct route_ctx *c, const char *name)
{
	if (!c->with)
		return false;
	for (size_t i = 0; i < c->with->n_ctes; i++) {
		const PgQuery__Node *n = c->with->ctes[i];
		if (n->node_case == PG_QUERY__NODE__NODE_COMMON_TABLE_EXPR && n->common_table_expr->ctename &&
		    strcmp(n->common_table_expr->ctename, name) == 0)
			return true;
	}
	return false;
}

/* The sharded table a (schema, name) means, or -1. */
static int map_find(const struct shard_map *map, const char *schema, const char *name)
{
	if (!name)
		return -1;
	for (size_t i = 0; i < map->n_tables; i++) {
		const struct shard_table *t = &map->tables[i];
		if (strcmp(t->table, name) == 0 && (!t->schema || !schema || strcmp(t->schema, schema) == 0))
			return (int)i;
	}
	return -1;
}

static const char *ref_name(const struct route_ctx *c, int r)
{
	return c->refs[r].name;
}

/* ---- union-find over refs ---- */

static int find(struct route_ctx *c, int r)
{
	while (c->refs[r].parent != r)
		r = c->refs[r].parent = c->refs[c->refs[r].parent].parent;
	return r;
}

static int family(int type)
{
	return type == PGHASH_INT2 || type == PGHASH_INT4 ? PGHASH_INT8 : type;
}

static void unite(struct route_ctx *c, int a, int b)
{
	int ta = c->map->tables[c->refs[a].table].key_type, tb = c->map->tables[c->refs[b].table].key_type;
	if (ta != PGHASH_UNKNOWN && tb != PGHASH_UNKNOWN && family(ta) != family(tb))
		return; /* PostgreSQL refuses the comparison anyway */
	a = find(c, a);
	b = find(c, b);
	if (a != b)
		c->refs[a > b ? a : b].parent = a < b ? a : b;
}

/* ---- the statement's tables ---- */

static int add_ref(struct route_ctx *c, const PgQuery__RangeVar *rv)
{
	if (c->n_refs == ROUTE_MAX_REFS)
		return refuse(c, "0A000", "more than %d tables in one statement of a sharded database", ROUTE_MAX_REFS);
	struct ref *r = &c->refs[c->n_refs];
	r->schema = rv->schemaname && *rv->schemaname ? rv->schemaname : NULL;
	r->name = rv->relname;
	r->alias = rv->alias && rv->alias->aliasname ? rv->alias->aliasname : NULL;
	r->table = !r->schema && r->name && is_cte_name(c, r->name) ? -1 : map_find(c->map, r->schema, r->name);
	r->parent = c->n_refs;
	c->fix[c->n_refs] = (struct fix){ 0 };
	return c->n_refs++;
}

static int add_qual(struct route_ctx *c, const PgQuery__Node *expr, bool fixes)
{
	if (!expr)
		return 0;
	if (c->n_quals == (int)(sizeof(c->quals) / sizeof(c->quals[0])))
		return refuse(c, "0A000", "too many joins in one statement of a sharded database");
	c->quals[c->n_quals++] = (struct qual){ expr, fixes };
	return 0;
}

/* One item of a FROM list. inner: its rows reach the result only through
 * inner joins (so a condition in its ON restricts the result). */
static int from_item(struct route_ctx *c, const PgQuery__Node *n, bool inner)
{
	if (!n)
		return 0;
	if (n->node_case == PG_QUERY__NODE__NODE_RANGE_VAR)
		return add_ref(c, n->range_var) < 0 ? ROUTE_FAIL : 0;
	if (n->node_case != PG_QUERY__NODE__NODE_JOIN_EXPR)
		return 0; /* subqueries and functions: the scan looks into them */
	const PgQuery__JoinExpr *j = n->join_expr;
	bool l_inner = inner, r_inner = inner;
	switch (j->jointype) {
	case PG_QUERY__JOIN_TYPE__JOIN_INNER:
		break;
	case PG_QUERY__JOIN_TYPE__JOIN_LEFT:
		r_inner = false;
		break;
	case PG_QUERY__JOIN_TYPE__JOIN_RIGHT:
		l_inner = false;
		break;
	default:
		l_inner = r_inner = false;
		break;
	}
	int l0 = c->n_refs;
	if (from_item(c, j->larg, l_inner) < 0)
		return ROUTE_FAIL;
	int l1 = c->n_refs;
	if (from_item(c, j->rarg, r_inner) < 0)
		return ROUTE_FAIL;
	if (j->n_using_clause && c->n_usings < ROUTE_MAX_REFS)
		c->usings[c->n_usings++] = (struct using){ j, l0, l1, l1, c->n_refs };
	return add_qual(c, j->quals, inner && j->jointype == PG_QUERY__JOIN_TYPE__JOIN_INNER);
}

/* ---- what the tree holds beyond the top level ---- */

struct scan {
	struct sql_walker w;       /* first member */
	struct route_ctx *c;
	const ProtobufCMessage *root;
	bool nested;               /* inside a sub-statement: every table counts */
	const char *sharded;       /* first sharded table inside a sub-statement */
	const char *what;          /* that sub-statement: "a subquery", ... */
	bool window;               /* a window function at the top level */
	bool lock;                 /* FOR UPDATE/SHARE */
	bool into;                 /* SELECT INTO */
	bool modifying;            /* INSERT/UPDATE/DELETE/MERGE inside (WITH) */
	bool unknown_func;         /* a call of a function not known to only read */
	bool too_deep;
};

static int scan_visit(struct sql_walker *w, const ProtobufCMessage *m, const ProtobufCMessageDescriptor *parent);

static int scan_too_deep(struct sql_walker *w)
{
	((struct scan *)w)->too_deep = true;
	return SQL_WALK_SKIP;
}

/* A sub-statement: every table in it counts. */
static void scan_sub(struct scan *s, const ProtobufCMessage *m, const char *what, bool modifying)
{
	struct scan sub = { .w = { scan_visit, scan_too_deep }, .c = s->c, .root = m, .nested = true };
	sql_walk(&sub.w, m);
	if (sub.sharded && !s->sharded) {
		s->sharded = sub.sharded;
		s->what = what;
	}
	s->lock |= sub.lock;
	s->modifying |= sub.modifying || modifying;
	s->unknown_func |= sub.unknown_func;
	s->too_deep |= sub.too_deep;
}

static bool is_modifying(const ProtobufCMessageDescriptor *d)
{
	return d == &pg_query__insert_stmt__descriptor || d == &pg_query__update_stmt__descriptor ||
	       d == &pg_query__delete_stmt__descriptor || d == &pg_query__merge_stmt__descriptor;
}

/* A name list (String nodes) that is name or pg_catalog.name: name. */
static const char *catalog_name(size_t n, PgQuery__Node *const *names)
{
	if (n < 1 || n > 2 || !str_node(names[n - 1]))
		return NULL;
	if (n == 2 && (!str_node(names[0]) || strcmp(str_node(names[0]), "pg_catalog") != 0))
		return NULL;
	return str_node(names[n - 1]);
}

static int scan_visit(struct sql_walker *w, const ProtobufCMessage *m, const ProtobufCMessageDescriptor *parent)
{
	struct scan *s = (struct scan *)w;
	const ProtobufCMessageDescriptor *d = m->descriptor;
	if (d == &pg_query__func_call__descriptor) {
		const PgQuery__FuncCall *fc = (const PgQuery__FuncCall *)m;
		const char *fn = catalog_name(fc->n_funcname, fc->funcname);
		if (!fn || !sql_read_builtin(fn))
			s->unknown_func = true;
		if (fc->over && !s->nested)
			s->window = true;
		return SQL_WALK_ON;
	}
	if (d == &pg_query__locking_clause__descriptor) {
		s->lock = true;
		return SQL_WALK_SKIP; /* FOR UPDATE OF a: names, not tables */
	}
	if (d == &pg_query__into_clause__descriptor) {
		s->into = true;
		return SQL_WALK_SKIP;
	}
	if (s->nested) {
		if (d == &pg_query__range_var__descriptor && !s->sharded) {
			const PgQuery__RangeVar *rv = (const PgQuery__RangeVar *)m;
			if (map_find(s->c->map, rv->schemaname && *rv->schemaname ? rv->schemaname : NULL, rv->relname) >= 0)
				s->sharded = rv->relname;
		}
		if (is_modifying(d))
			s->modifying = true;
		return SQL_WALK_ON;
	}
	if (m == s->root)
		return SQL_WALK_ON;
	if (d == &pg_query__common_table_expr__descriptor) {
		scan_sub(s, m, "a WITH query", false);
		return SQL_WALK_SKIP;
	}
	if (d == &pg_query__range_subselect__descriptor) {
		scan_sub(s, m, "a subquery in FROM", false);
		return SQL_WALK_SKIP;
	}
	if (d == &pg_query__sub_link__descriptor) {
		scan_sub(s, m, "a subquery", false);
		return SQL_WALK_SKIP;
	}
	if (d == &pg_query__select_stmt__descriptor || is_modifying(d)) {
		scan_sub(s, m, d == &pg_query__select_stmt__descriptor ? "a query" : "a data-modifying statement",
			 is_modifying(d));
		return SQL_WALK_SKIP;
	}
	return SQL_WALK_ON;
}

static int scan_stmt(struct route_ctx *c, const ProtobufCMessage *root, bool nested, struct scan *s)
{
	*s = (struct scan){ .w = { scan_visit, scan_too_deep }, .c = c, .root = root, .nested = nested };
	sql_walk(&s->w, root);
	if (s->too_deep)
		return refuse(c, "54001", "statement too deeply nested for sluice to route over shards");
	return 0;
}

/* ---- conditions ---- */

static bool is_eq(size_t n, PgQuery__Node *const *name)
{
	const char *op = catalog_name(n, name);
	return op && strcmp(op, "=") == 0;
}

/* The ref whose shard key column n is, or -1. */
static int key_ref(struct route_ctx *c, const PgQuery__Node *n)
{
	if (!n || n->node_case != PG_QUERY__NODE__NODE_COLUMN_REF)
		return -1;
	const PgQuery__ColumnRef *cr = n->column_ref;
	size_t k = cr->n_fields;
	if (k < 1 || k > 3)
		return -1;
	for (size_t i = 0; i < k; i++)
		if (!str_node(cr->fields[i]))
			return -1; /* a.* */
	const char *col = str_node(cr->fields[k - 1]);
	int found = -1;
	for (int r = 0; r < c->n_refs; r++) {
		const struct ref *ref = &c->refs[r];
		if (k == 2) {
			const char *q = str_node(cr->fields[0]);
			if (strcmp(ref->alias ? ref->alias : ref->name, q) != 0)
				continue;
		} else if (k == 3) {
			if (ref->alias || strcmp(ref->name, str_node(cr->fields[1])) != 0 ||
			    (ref->schema && strcmp(ref->schema, str_node(cr->fields[0])) != 0))
				continue;
		}
		if (k > 1 && found >= 0)
			return -1; /* the same name twice: PostgreSQL refuses it */
		if (ref->table < 0 || strcmp(c->map->tables[ref->table].column, col) != 0) {
			if (k > 1)
				return -1; /* that table's other column */
			continue;
		}
		if (k == 1 && found >= 0 && find(c, found) != find(c, r))
			return -1; /* ambiguous between tables not joined on it */
		if (found < 0)
			found = r;
	}
	return found;
}

/* What a value fixes of a key of type type. */
enum { VAL_NONE = 0, VAL_SHARD, VAL_PARAM };

struct value {
	int shard;      /* VAL_SHARD */
	int param;      /* VAL_PARAM: $n */
	int param_type; /* VAL_PARAM: enum pghash_type */
};

static int oid_type(uint32_t oid)
{
	switch (oid) {
	case 21: return PGHASH_INT2;
	case 23: return PGHASH_INT4;
	case 20: return PGHASH_INT8;
	case 25: case 1043: return PGHASH_TEXT; /* text, varchar */
	case 2950: return PGHASH_UUID;
	default: return PGHASH_UNKNOWN;
	}
}

/* An integer literal as text (PostgreSQL makes one beyond int4 a Float
 * node), else NULL. */
static const char *int_literal(const PgQuery__AConst *ac, char *buf, size_t len)
{
	if (ac->val_case == PG_QUERY__A__CONST__VAL_IVAL) {
		snprintf(buf, len, "%d", ac->ival->ival);
		return buf;
	}
	if (ac->val_case != PG_QUERY__A__CONST__VAL_FVAL || !ac->fval->fval)
		return NULL;
	const char *p = ac->fval->fval;
	if (*p == '-')
		p++;
	if (!*p)
		return NULL;
	for (; *p; p++)
		if (*p < '0' || *p > '9')
			return NULL;
	return ac->fval->fval;
}

static int const_value(struct route_ctx *c, const struct shard_table *t, int type, const PgQuery__AConst *ac,
		       struct value *v)
{
	char buf[16];
	if (ac->isnull)
		return VAL_NONE;
	const char *num = int_literal(ac, buf, sizeof(buf));
	if (num) {
		/* int2, int4 and int8 hash alike; text of a number is its digits
		 * (only through a cast: text = integer is an error). */
		if (type == PGHASH_UNKNOWN || family(type) == PGHASH_INT8) {
			v->shard = pghash_shard_text(PGHASH_INT8, num, strlen(num), c->map->n_shards);
			return v->shard < 0 ? VAL_NONE : VAL_SHARD; /* beyond int8: numeric, matches nothing */
		}
		return VAL_NONE;
	}
	if (ac->val_case != PG_QUERY__A__CONST__VAL_SVAL || !ac->sval->sval)
		return VAL_NONE; /* a float, a boolean, a bit string: not a key of ours */
	const char *s = ac->sval->sval;
	if (type == PGHASH_UNKNOWN)
		return refuse(c, "0A000", "the type of shard key %s.%s is not known: give it in [sharded_tables] "
			      "as %s:TYPE", t->table, t->column, t->column);
	v->shard = pghash_shard_text(type, s, strlen(s), c->map->n_shards);
	if (v->shard < 0)
		return refuse(c, "22P02", "invalid input syntax for type %s: \"%.60s\" (shard key %s.%s)",
			      pghash_type_name(type), s, t->table, t->column);
	return VAL_SHARD;
}

static int param_value(struct route_ctx *c, int type, const PgQuery__ParamRef *p, struct value *v)
{
	if (p->number < 1)
		return VAL_NONE;
	v->param = p->number;
	v->param_type = type;
	if (type == PGHASH_UNKNOWN && c->ptypes && p->number <= c->n_ptypes)
		v->param_type = oid_type(c->ptypes[p->number - 1]);
	return VAL_PARAM;
}

static int value_of(struct route_ctx *c, const struct shard_table *t, const PgQuery__Node *n, struct value *v);

/* -8::smallint is -(8::smallint): the parser folds a minus into a number
 * only when nothing binds tighter. The shard of minus an integer constant
 * (or of its cast to an integer type). */
static int negated_value(struct route_ctx *c, const struct shard_table *t, const PgQuery__Node *n, struct value *v)
{
	int type = t->key_type;
	if (type != PGHASH_UNKNOWN && family(type) != PGHASH_INT8)
		return VAL_NONE;
	if (n && n->node_case == PG_QUERY__NODE__NODE_TYPE_CAST && n->type_cast->type_name &&
	    !n->type_cast->type_name->n_array_bounds) {
		const PgQuery__TypeName *tn = n->type_cast->type_name;
		const char *name = catalog_name(tn->n_names, tn->names);
		int cast = name ? pghash_type_from_name(name) : -1;
		if (cast < 0 || family(cast) != PGHASH_INT8)
			return VAL_NONE;
		n = n->type_cast->arg;
	}
	char buf[16], neg[48];
	const char *num = n && n->node_case == PG_QUERY__NODE__NODE_A_CONST && !n->a_const->isnull
				  ? int_literal(n->a_const, buf, sizeof(buf)) : NULL;
	if (!num)
		return VAL_NONE;
	if (strlen(num) > 40)
		return VAL_NONE; /* beyond int8 anyway: a numeric */
	snprintf(neg, sizeof(neg), "%s%s", num[0] == '-' ? "" : "-", num[0] == '-' ? num + 1 : num);
	v->shard = pghash_shard_text(PGHASH_INT8, neg, strlen(neg), c->map->n_shards);
	return v->shard < 0 ? VAL_NONE : VAL_SHARD;
}

/* What n, compared with table t's key, fixes: VAL_*, or ROUTE_FAIL. */
static int value_of(struct route_ctx *c, const struct shard_table *t, const PgQuery__Node *n, struct value *v)
{
	int type = t->key_type;
	if (!n)
		return VAL_NONE;
	if (n->node_case == PG_QUERY__NODE__NODE_A_EXPR && n->a_expr->kind == PG_QUERY__A__EXPR__KIND__AEXPR_OP &&
	    !n->a_expr->lexpr) {
		const char *op = catalog_name(n->a_expr->n_name, n->a_expr->name);
		return op && strcmp(op, "-") == 0 ? negated_value(c, t, n->a_expr->rexpr, v) : VAL_NONE;
	}
	if (n->node_case == PG_QUERY__NODE__NODE_A_CONST)
		return const_value(c, t, type, n->a_const, v);
	if (n->node_case == PG_QUERY__NODE__NODE_PARAM_REF)
		return param_value(c, type, n->param_ref, v);
	if (n->node_case != PG_QUERY__NODE__NODE_TYPE_CAST || !n->type_cast->type_name || !n->type_cast->arg)
		return VAL_NONE;
	const PgQuery__TypeName *tn = n->type_cast->type_name;
	const char *name = tn->n_array_bounds ? NULL : catalog_name(tn->n_names, tn->names);
	int cast = name ? pghash_type_from_name(name) : -1;
	if (cast < 0 || (type != PGHASH_UNKNOWN && family(cast) != family(type)))
		return VAL_NONE; /* another type: compared as that type, not hashed as the key */
	const PgQuery__Node *arg = n->type_cast->arg;
	if (arg->node_case == PG_QUERY__NODE__NODE_PARAM_REF)
		return param_value(c, type != PGHASH_UNKNOWN ? type : cast, arg->param_ref, v);
	if (arg->node_case != PG_QUERY__NODE__NODE_A_CONST)
		return VAL_NONE;
	const PgQuery__AConst *ac = arg->a_const;
	char buf[16];
	const char *num = int_literal(ac, buf, sizeof(buf));
	if (num && cast == PGHASH_TEXT) {
		/* 42::text is '42'. */
		v->shard = pghash_shard_text(PGHASH_TEXT, num, strlen(num), c->map->n_shards);
		return VAL_SHARD;
	}
	return const_value(c, t, cast, ac, v);
}

static void fix_mask(struct fix *f, uint64_t mask)
{
	f->mask = f->has_set ? f->mask & mask : mask;
	f->has_set = true;
}

/* The AND-ed conditions of e. Pass 0 joins refs (key = key), pass 1 fixes keys. */
static int conjuncts(struct route_ctx *c, const PgQuery__Node *e, int pass, bool fixes)
{
	if (!e)
		return 0;
	if (e->node_case == PG_QUERY__NODE__NODE_BOOL_EXPR &&
	    e->bool_expr->boolop == PG_QUERY__BOOL_EXPR_TYPE__AND_EXPR) {
		for (size_t i = 0; i < e->bool_expr->n_args; i++)
			if (conjuncts(c, e->bool_expr->args[i], pass, fixes) < 0)
				return ROUTE_FAIL;
		return 0;
	}
	if (e->node_case != PG_QUERY__NODE__NODE_A_EXPR)
		return 0; /* OR, NOT, anything else: fixes nothing */
	const PgQuery__AExpr *a = e->a_expr;
	if (!is_eq(a->n_name, a->name))
		return 0;
	int l = key_ref(c, a->lexpr);
	struct value v = { 0 };
	if (a->kind == PG_QUERY__A__EXPR__KIND__AEXPR_OP) {
		int r = key_ref(c, a->rexpr);
		if (pass == 0) {
			if (l >= 0 && r >= 0)
				unite(c, l, r);
			return 0;
		}
		if (!fixes || (l >= 0) == (r >= 0))
			return 0;
		int k = l >= 0 ? l : r;
		int got = value_of(c, &c->map->tables[c->refs[k].table], l >= 0 ? a->rexpr : a->lexpr, &v);
		if (got == VAL_SHARD)
			fix_mask(&c->fix[k], UINT64_C(1) << v.shard);
		else if (got == VAL_PARAM) {
			if (!c->fix[k].param) {
				c->fix[k].param = v.param;
				c->fix[k].param_type = v.param_type;
			}
			c->fix[k].n_params++;
		}
		return got < 0 ? ROUTE_FAIL : 0;
	}
	if (a->kind != PG_QUERY__A__EXPR__KIND__AEXPR_IN || pass == 0 || !fixes || l < 0 || !a->rexpr ||
	    a->rexpr->node_case != PG_QUERY__NODE__NODE_LIST)
		return 0;
	/* key IN (a, b, ...): the union of their shards, when all are constants. */
	uint64_t mask = 0;
	const PgQuery__List *list = a->rexpr->list;
	for (size_t i = 0; i < list->n_items; i++) {
		int got = value_of(c, &c->map->tables[c->refs[l].table], list->items[i], &v);
		if (got < 0)
			return ROUTE_FAIL;
		if (got != VAL_SHARD)
			return 0; /* a parameter or an expression: not fixed here */
		mask |= UINT64_C(1) << v.shard;
	}
	fix_mask(&c->fix[l], mask);
	return 0;
}

/* USING (col): co-locates the two sides when col is the key of one table
 * on each side. */
static void using_edges(struct route_ctx *c, const struct using *u)
{
	for (size_t i = 0; i < u->j->n_using_clause; i++) {
		const char *col = str_node(u->j->using_clause[i]);
		int l = -1, r = -1, nl = 0, nr = 0;
		for (int k = u->l0; col && k < u->r1; k++) {
			const struct ref *ref = &c->refs[k];
			if (ref->table < 0 || strcmp(c->map->tables[ref->table].column, col) != 0)
				continue;
			if (k < u->l1) {
				l = k;
				nl++;
			} else {
				r = k;
				nr++;
			}
		}
		if (nl == 1 && nr == 1)
			unite(c, l, r);
	}
}

static int read_conditions(struct route_ctx *c)
{
	for (int i = 0; i < c->n_usings; i++)
		using_edges(c, &c->usings[i]);
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < c->n_quals; i++)
			if (conjuncts(c, c->quals[i].expr, pass, c->quals[i].fixes) < 0)
				return ROUTE_FAIL;
	}
	return 0;
}

/* ---- decisions ---- */

/* What the conditions fix of the group of ref g: has_set/mask, else param. */
static struct fix group_fix(struct route_ctx *c, int g)
{
	struct fix f = { .mask = all_shards(c) };
	for (int r = 0; r < c->n_refs; r++) {
		if (c->refs[r].table < 0 || find(c, r) != g)
			continue;
		if (c->fix[r].has_set)
			fix_mask(&f, c->fix[r].mask);
		if (!f.param && c->fix[r].param) {
			f.param = c->fix[r].param;
			f.param_type = c->fix[r].param_type;
		}
		f.n_params += c->fix[r].n_params;
	}
	return f;
}

static int first_shard(uint64_t mask)
{
	return mask ? __builtin_ctzll(mask) : 0;
}

/* The route of one co-located group; window: a window function is there. */
static int decide_group(struct route_ctx *c, int g, bool window, bool write)
{
	struct fix f = group_fix(c, g);
	struct shard_route *out = c->out;
	out->write = write;
	if (f.has_set && __builtin_popcountll(f.mask) <= 1) {
		/* No shard at all: no row can match, any one shard answers. */
		out->kind = SHARD_ROUTE_ONE;
		out->shard = first_shard(f.mask);
		return 0;
	}
	if (!f.has_set && f.param) {
		out->kind = SHARD_ROUTE_BIND;
		out->param = f.param;
		out->param_type = f.param_type;
		out->bind_alone = f.n_params == 1;
		return 0;
	}
	if (window)
		return refuse(c, "0A000", "a window function over sharded table %s across shards: fix its shard key "
			      "(%s = value)", ref_name(c, g), c->map->tables[c->refs[g].table].column);
	if (f.has_set) {
		out->kind = SHARD_ROUTE_SEVERAL;
		out->mask = f.mask;
		return 0;
	}
	out->kind = SHARD_ROUTE_MULTI;
	return 0;
}

/* A statement whose tables are all refs (sharded or not): what co-location
 * and the conditions make of it. */
static int decide(struct route_ctx *c, bool window, bool write)
{
	int groups[ROUTE_MAX_REFS], n = 0;
	for (int r = 0; r < c->n_refs; r++) {
		if (c->refs[r].table < 0)
			continue;
		int g = find(c, r), k;
		for (k = 0; k < n && groups[k] != g; k++)
			;
		if (k == n)
			groups[n++] = g;
	}
	if (n == 1)
		return decide_group(c, groups[0], window, write);
	/* Tables not joined on their keys: only when every one is fixed to
	 * the same single shard does one shard hold all their rows. */
	int shard = -1;
	for (int k = 0; k < n; k++) {
		struct fix f = group_fix(c, groups[k]);
		if (!f.has_set || __builtin_popcountll(f.mask) > 1 || (shard >= 0 && first_shard(f.mask) != shard))
			return refuse(c, "0A000", "a join of sharded tables %s and %s not on their shard keys (%s.%s = %s.%s)",
				      ref_name(c, groups[0]), ref_name(c, groups[k ? k : 1]),
				      ref_name(c, groups[0]), c->map->tables[c->refs[groups[0]].table].column,
				      ref_name(c, groups[k ? k : 1]), c->map->tables[c->refs[groups[k ? k : 1]].table].column);
		shard = first_shard(f.mask);
	}
	c->out->kind = SHARD_ROUTE_ONE;
	c->out->shard = shard;
	c->out->write = write;
	return 0;
}

static int replicated(struct route_ctx *c, bool write)
{
	c->out->kind = write ? SHARD_ROUTE_REPLICATED_WRITE : SHARD_ROUTE_REPLICATED_READ;
	c->out->write = write;
	return 0;
}

static int first_sharded(const struct route_ctx *c)
{
	for (int r = 0; r < c->n_refs; r++)
		if (c->refs[r].table >= 0)
			return r;
	return -1;
}

static int refuse_sub(struct route_ctx *c, const struct scan *s)
{
	return refuse(c, "0A000", "%s over sharded table %s (only the statement's own FROM may name sharded tables)",
		      s->what, s->sharded);
}

/* ---- statements ---- */

static int find_call(struct sql_walker *w, const ProtobufCMessage *m, const ProtobufCMessageDescriptor *parent)
{
	(void)w;
	(void)parent;
	return m->descriptor == &pg_query__func_call__descriptor ? 2 : SQL_WALK_ON;
}

static int stop_deep(struct sql_walker *w)
{
	(void)w;
	return 2;
}

/* Does the output of sel call a function (an aggregate, maybe: which
 * function is one only the catalog knows)? */
static bool calls_function(const PgQuery__SelectStmt *sel)
{
	struct sql_walker w = { find_call, stop_deep };
	for (size_t i = 0; i < sel->n_target_list; i++)
		if (sql_walk(&w, &sel->target_list[i]->base) != SQL_WALK_ON)
			return true;
	return false;
}

/* sel's LIMIT into *limit (-1: none, or LIMIT ALL); false when it is not
 * a constant a concatenation can count (an expression, WITH TIES). */
static bool const_limit(const PgQuery__SelectStmt *sel, int64_t *limit)
{
	*limit = -1;
	const PgQuery__Node *n = sel->limit_count;
	if (!n)
		return true;
	if (sel->limit_option == PG_QUERY__LIMIT_OPTION__LIMIT_OPTION_WITH_TIES ||
	    n->node_case != PG_QUERY__NODE__NODE_A_CONST)
		return false;
	const PgQuery__AConst *ac = n->a_const;
	if (ac->isnull)
		return true; /* LIMIT ALL */
	if (ac->val_case != PG_QUERY__A__CONST__VAL_IVAL || ac->ival->ival < 0)
		return false;
	*limit = ac->ival->ival;
	return true;
}

/* The aggregate a target is, when the client side can combine it over
 * shards: a plain count/sum/min/max call (no DISTINCT, FILTER, ORDER BY or
 * OVER inside); else 0. */
static int agg_kind(const PgQuery__Node *t)
{
	const PgQuery__Node *v = t->node_case == PG_QUERY__NODE__NODE_RES_TARGET ? t->res_target->val : NULL;
	if (!v || v->node_case != PG_QUERY__NODE__NODE_FUNC_CALL)
		return 0;
	const PgQuery__FuncCall *fc = v->func_call;
	const char *fn = catalog_name(fc->n_funcname, fc->funcname);
	if (!fn || fc->n_agg_order || fc->agg_filter || fc->over || fc->agg_within_group || fc->agg_distinct ||
	    fc->func_variadic)
		return 0;
	if (strcmp(fn, "count") == 0 && (fc->agg_star ? fc->n_args == 0 : fc->n_args == 1))
		return SHARD_AGG_COUNT;
	if (fc->agg_star || fc->n_args != 1)
		return 0;
	return strcmp(fn, "sum") == 0 ? SHARD_AGG_SUM : strcmp(fn, "min") == 0 ? SHARD_AGG_MIN
	       : strcmp(fn, "max") == 0 ? SHARD_AGG_MAX : 0;
}

/* The "(...)" of the call at sql + at: *open at its "(", *end past its
 * ")". False where the scan cannot be sure (dollar quotes, comments,
 * backslashes in strings). */
static bool call_span(const char *sql, int at, int *open, int *end)
{
	const char *q = sql + at;
	while (*q && *q != '(' && *q != '\'' && *q != '$')
		q++;
	if (*q != '(')
		return false;
	*open = (int)(q - sql);
	int depth = 0;
	for (; *q; q++) {
		char ch = *q;
		if (ch == '\'' || ch == '"') {
			for (q++; *q && !(*q == ch && q[1] != ch); q++) {
				if (*q == '\\')
					return false;
				if (*q == ch)
					q++; /* a doubled quote */
			}
			if (!*q)
				return false;
		} else if ((ch == '$' && !(q[1] >= '0' && q[1] <= '9')) || (ch == '-' && q[1] == '-') ||
			   (ch == '/' && q[1] == '*')) {
			return false;
		} else if (ch == '(') {
			depth++;
		} else if (ch == ')' && --depth == 0) {
			*end = (int)(q - sql) + 1;
			return true;
		}
	}
	return false;
}

/* Target t's columns as the shards answer them, appended to kinds (*n so
 * far): one aggregate, or an avg as its sum and count (each shard runs
 * `sum(x), count(x)` in its place, c->avg_*). False when t is neither. */
static bool target_aggs(struct route_ctx *c, const PgQuery__Node *t, uint8_t *kinds, size_t *n)
{
	int kind = agg_kind(t);
	if (kind) {
		if (*n >= SHARD_MAX_AGGS)
			return false;
		kinds[(*n)++] = (uint8_t)kind;
		return true;
	}
	/* avg(x), plain (the checks agg_kind makes for the others). */
	const PgQuery__ResTarget *rt = t->node_case == PG_QUERY__NODE__NODE_RES_TARGET ? t->res_target : NULL;
	const PgQuery__Node *v = rt ? rt->val : NULL;
	if (!v || v->node_case != PG_QUERY__NODE__NODE_FUNC_CALL)
		return false;
	const PgQuery__FuncCall *fc = v->func_call;
	const char *fn = catalog_name(fc->n_funcname, fc->funcname);
	if (!fn || strcmp(fn, "avg") != 0 || fc->n_args != 1 || fc->agg_star || fc->n_agg_order || fc->agg_filter ||
	    fc->over || fc->agg_within_group || fc->agg_distinct || fc->func_variadic || *n + 2 > SHARD_MAX_AGGS ||
	    c->n_avg >= SHARD_MAX_AGGS || fc->location < 0)
		return false;
	int k = c->n_avg;
	if (!call_span(c->sql, fc->location, &c->avg_open[k], &c->avg_end[k]))
		return false;
	c->avg_at[k] = fc->location;
	c->n_avg++;
	kinds[(*n)++] = SHARD_AGG_AVG_SUM;
	kinds[(*n)++] = rt->name && *rt->name ? SHARD_AGG_AVG_COUNT_NAMED : SHARD_AGG_AVG_COUNT;
	return true;
}

static bool shard_text(struct route_ctx *c, const PgQuery__SelectStmt *sel, struct shard_route *out,
		       const char *limit);

/* The output of sel is only count/sum/min/max/avg calls: their kinds into
 * out->aggs (an avg's text rewritten for the shards). */
static void combinable_aggs(struct route_ctx *c, const PgQuery__SelectStmt *sel, struct shard_route *out)
{
	if (!sel->n_target_list || sel->n_target_list > SHARD_MAX_AGGS)
		return;
	uint8_t kinds[SHARD_MAX_AGGS];
	size_t n = 0;
	c->n_avg = 0;
	for (size_t i = 0; i < sel->n_target_list; i++)
		if (!target_aggs(c, sel->target_list[i], kinds, &n))
			return;
	if (c->n_avg && !shard_text(c, sel, out, NULL))
		return;
	memcpy(out->aggs, kinds, n);
	out->n_aggs = (uint8_t)n;
}

/* sel's OFFSET into *offset (0: none); false when it is not a constant. */
static bool const_offset(const PgQuery__SelectStmt *sel, int64_t *offset)
{
	*offset = 0;
	const PgQuery__Node *n = sel->limit_offset;
	if (!n)
		return true;
	if (n->node_case != PG_QUERY__NODE__NODE_A_CONST)
		return false;
	const PgQuery__AConst *ac = n->a_const;
	if (ac->isnull)
		return true; /* OFFSET NULL: none */
	if (ac->val_case != PG_QUERY__A__CONST__VAL_IVAL || ac->ival->ival < 0)
		return false;
	*offset = ac->ival->ival;
	return true;
}

/* The output position (from 1) of the target that is exactly column
 * reference cr, when no `*` comes before it; 0 when none is. */
static int16_t target_of(const PgQuery__SelectStmt *sel, const PgQuery__ColumnRef *cr)
{
	for (size_t i = 0; i < sel->n_target_list && i < INT16_MAX; i++) {
		const PgQuery__Node *t = sel->target_list[i];
		const PgQuery__Node *v = t->node_case == PG_QUERY__NODE__NODE_RES_TARGET ? t->res_target->val : NULL;
		if (!v || v->node_case != PG_QUERY__NODE__NODE_COLUMN_REF)
			continue;
		const PgQuery__ColumnRef *o = v->column_ref;
		bool same = o->n_fields == cr->n_fields;
		for (size_t f = 0; f < o->n_fields && same; f++) {
			const PgQuery__Node *a = o->fields[f], *b = cr->fields[f];
			if (a->node_case == PG_QUERY__NODE__NODE_A_STAR)
				return 0;
			same = a->node_case == PG_QUERY__NODE__NODE_STRING && b->node_case == PG_QUERY__NODE__NODE_STRING &&
			       strcmp(a->string->sval, b->string->sval) == 0;
		}
		if (same)
			return (int16_t)(i + 1);
		if (o->n_fields && o->fields[o->n_fields - 1]->node_case == PG_QUERY__NODE__NODE_A_STAR)
			return 0; /* a * before it: positions are the catalog's */
	}
	return 0;
}

/* sel's ORDER BY as keys over output columns (out->sort); false when an
 * item is not an output column by position or name, or sorts in a way
 * the client side does not (USING an operator, a collation other than "C"
 * named). */
static bool sort_keys(const PgQuery__SelectStmt *sel, struct shard_route *out)
{
	if (sel->n_sort_clause > SHARD_SORT_MAX_KEYS)
		return false;
	for (size_t i = 0; i < sel->n_sort_clause; i++) {
		const PgQuery__Node *n = sel->sort_clause[i];
		if (n->node_case != PG_QUERY__NODE__NODE_SORT_BY)
			return false;
		const PgQuery__SortBy *sb = n->sort_by;
		if (sb->sortby_dir == PG_QUERY__SORT_BY_DIR__SORTBY_USING || sb->n_use_op)
			return false;
		struct shard_sort_key *k = &out->sort[i];
		memset(k, 0, sizeof(*k));
		k->desc = sb->sortby_dir == PG_QUERY__SORT_BY_DIR__SORTBY_DESC;
		k->nulls_first = sb->sortby_nulls == PG_QUERY__SORT_BY_NULLS__SORTBY_NULLS_FIRST ||
				 (k->desc && sb->sortby_nulls != PG_QUERY__SORT_BY_NULLS__SORTBY_NULLS_LAST);
		const PgQuery__Node *e = sb->node;
		if (e && e->node_case == PG_QUERY__NODE__NODE_COLLATE_CLAUSE) {
			const PgQuery__CollateClause *cc = e->collate_clause;
			const char *coll = catalog_name(cc->n_collname, cc->collname);
			if (!coll || (strcmp(coll, "C") != 0 && strcmp(coll, "POSIX") != 0))
				return false;
			k->collate_c = true;
			e = cc->arg;
		}
		if (!e)
			return false;
		if (e->node_case == PG_QUERY__NODE__NODE_A_CONST) {
			const PgQuery__AConst *ac = e->a_const;
			if (ac->isnull || ac->val_case != PG_QUERY__A__CONST__VAL_IVAL || ac->ival->ival < 1 ||
			    ac->ival->ival > INT16_MAX)
				return false; /* PostgreSQL refuses it, or it sorts by a constant */
			k->position = (int16_t)ac->ival->ival;
		} else if (e->node_case == PG_QUERY__NODE__NODE_COLUMN_REF) {
			const PgQuery__ColumnRef *cr = e->column_ref;
			const PgQuery__Node *last = cr->n_fields ? cr->fields[cr->n_fields - 1] : NULL;
			if (!last || last->node_case != PG_QUERY__NODE__NODE_STRING)
				return false;
			if (cr->n_fields == 1 && e == sb->node) {
				/* PostgreSQL takes a plain name for the output column of that
				 * name: found in the shards' RowDescription. (Under COLLATE
				 * it is an expression over the input columns: below.) */
				if (strlen(last->string->sval) >= SHARD_SORT_NAME_MAX)
					return false;
				snprintf(k->name, sizeof(k->name), "%s", last->string->sval);
			} else if (!(k->position = target_of(sel, cr))) {
				return false;
			}
		} else {
			return false;
		}
	}
	out->n_sort = (uint8_t)sel->n_sort_clause;
	return true;
}

/* The end of the digits at sql + at (at must be one). */
static int digits_end(const char *sql, int at)
{
	if (at < 0 || sql[at] < '0' || sql[at] > '9')
		return -1;
	while (sql[at] >= '0' && sql[at] <= '9')
		at++;
	return at;
}

/* Is the word before sql + at (blanks skipped) `word` (lower case)? */
static bool word_before(const char *sql, int at, const char *word)
{
	size_t n = strlen(word);
	while (at > 0 && (sql[at - 1] == ' ' || sql[at - 1] == '\t' || sql[at - 1] == '\n' || sql[at - 1] == '\r'))
		at--;
	if ((size_t)at < n || strncasecmp(sql + at - n, word, n) != 0)
		return false;
	return at == (int)n || !((sql[at - n - 1] | 0x20) >= 'a' && (sql[at - n - 1] | 0x20) <= 'z');
}

/* The text each shard runs when the merge cuts or combines the rows
 * itself (out->shard_sql): its OFFSET's number replaced by 0, its LIMIT's
 * by limit (NULL: kept), and each avg(x) of c->avg_* by sum(x), count(x).
 * False when the text cannot be rewritten so. */
static bool shard_text(struct route_ctx *c, const PgQuery__SelectStmt *sel, struct shard_route *out, const char *limit)
{
	struct replace {
		int at, end;
		const char *with; /* NULL: an avg, its "(...)" from open */
		int open;
	} rep[2 + SHARD_MAX_AGGS];
	int n = 0;
	size_t extra = 48;
	if (out->offset > 0) {
		int at = sel->limit_offset->a_const->location;
		rep[n++] = (struct replace){ at, digits_end(c->sql, at), "0", 0 };
	}
	if (limit && out->limit >= 0) {
		int at = sel->limit_count->a_const->location;
		if (strcmp(limit, "ALL") == 0 && !word_before(c->sql, at, "limit"))
			return false; /* FETCH FIRST ALL ROWS is no SQL */
		rep[n++] = (struct replace){ at, digits_end(c->sql, at), limit, 0 };
	}
	for (int i = 0; i < c->n_avg; i++) {
		rep[n++] = (struct replace){ c->avg_at[i], c->avg_end[i], NULL, c->avg_open[i] };
		extra += (size_t)(c->avg_end[i] - c->avg_open[i]) * 2 + 16;
	}
	if (!n)
		return true;
	for (int i = 0; i < n; i++)
		if (rep[i].end < 0)
			return false;
	for (int i = 1; i < n; i++) /* in text order */
		for (int j = i; j > 0 && rep[j].at < rep[j - 1].at; j--) {
			struct replace t = rep[j];
			rep[j] = rep[j - 1];
			rep[j - 1] = t;
		}
	size_t len = strlen(c->sql);
	char *t = malloc(len + extra);
	if (!t)
		return false;
	size_t o = 0;
	int from = 0;
	for (int i = 0; i < n; i++) {
		if (rep[i].at < from) { /* overlapping: cannot be */
			free(t);
			return false;
		}
		memcpy(t + o, c->sql + from, (size_t)(rep[i].at - from));
		o += (size_t)(rep[i].at - from);
		if (rep[i].with) {
			o += (size_t)sprintf(t + o, "%s", rep[i].with);
		} else {
			int args = rep[i].end - rep[i].open;
			o += (size_t)sprintf(t + o, "pg_catalog.sum%.*s, pg_catalog.count%.*s", args, c->sql + rep[i].open,
					     args, c->sql + rep[i].open);
		}
		from = rep[i].end;
	}
	memcpy(t + o, c->sql + from, len - (size_t)from + 1);
	free(out->shard_sql);
	out->shard_sql = t;
	return true;
}

/* With OFFSET k, each shard runs LIMIT n+k OFFSET 0. */
static bool offset_text(struct route_ctx *c, const PgQuery__SelectStmt *sel, struct shard_route *out)
{
	char lim[24];
	if (!out->offset)
		return true;
	if (out->limit >= 0 && out->limit > INT64_MAX - out->offset)
		return false;
	snprintf(lim, sizeof(lim), "%lld", (long long)(out->limit + out->offset));
	return shard_text(c, sel, out, lim);
}

/* A GROUP BY whose keys are all output columns and whose other output
 * columns are count/sum/min/max calls, or a plain DISTINCT: each shard
 * answers a row per group, combined per key (out->aggs, SHARD_AGG_KEY for
 * keys), then ordered (out->sort) and cut (LIMIT, OFFSET: each shard runs
 * LIMIT ALL OFFSET 0). Left as it is when not so. */
static void grouped(struct route_ctx *c, const PgQuery__SelectStmt *sel, struct shard_route *out)
{
	size_t n = sel->n_target_list;
	if (!n || n > SHARD_MAX_AGGS)
		return;
	uint8_t kinds[SHARD_MAX_AGGS] = { 0 };
	bool key[SHARD_MAX_AGGS] = { false };
	if (sel->n_distinct_clause) {
		/* DISTINCT, not DISTINCT ON (...): every output column is a key. */
		if (sel->n_group_clause || sel->n_distinct_clause != 1 ||
		    (sel->distinct_clause[0] && sel->distinct_clause[0]->node_case != PG_QUERY__NODE__NODE__NOT_SET) ||
		    calls_function(sel))
			return;
		for (size_t i = 0; i < n; i++)
			key[i] = true;
	} else {
		for (size_t g = 0; g < sel->n_group_clause; g++) {
			const PgQuery__Node *e = sel->group_clause[g];
			int16_t pos = 0;
			if (e->node_case == PG_QUERY__NODE__NODE_A_CONST && e->a_const->val_case == PG_QUERY__A__CONST__VAL_IVAL &&
			    e->a_const->ival->ival >= 1 && (size_t)e->a_const->ival->ival <= n)
				pos = (int16_t)e->a_const->ival->ival;
			else if (e->node_case == PG_QUERY__NODE__NODE_COLUMN_REF)
				pos = target_of(sel, e->column_ref);
			if (!pos)
				return; /* a key not in the output: its groups cannot be told apart */
			key[pos - 1] = true;
		}
	}
	struct sql_walker w = { find_call, stop_deep };
	size_t k = 0;
	c->n_avg = 0;
	for (size_t i = 0; i < n; i++) {
		const PgQuery__Node *t = sel->target_list[i];
		const PgQuery__Node *v = t->node_case == PG_QUERY__NODE__NODE_RES_TARGET ? t->res_target->val : NULL;
		if (!v || (v->node_case == PG_QUERY__NODE__NODE_COLUMN_REF && v->column_ref->n_fields &&
			   v->column_ref->fields[v->column_ref->n_fields - 1]->node_case == PG_QUERY__NODE__NODE_A_STAR))
			return; /* `*`: its columns are the catalog's */
		if (key[i]) {
			if (sql_walk(&w, &t->base) != SQL_WALK_ON || k >= SHARD_MAX_AGGS)
				return; /* a key computed by a function: maybe an aggregate */
			kinds[k++] = SHARD_AGG_KEY;
		} else if (!target_aggs(c, t, kinds, &k)) {
			return;
		}
	}
	if (!const_limit(sel, &out->limit) || !const_offset(sel, &out->offset) || !sort_keys(sel, out) ||
	    !shard_text(c, sel, out, "ALL")) {
		out->limit = -1;
		out->offset = 0;
		out->n_sort = 0;
		return;
	}
	memcpy(out->aggs, kinds, k);
	out->n_aggs = (uint8_t)k;
}

static int route_select(struct route_ctx *c, const PgQuery__SelectStmt *sel)
{
	struct scan s;
	if (sel->op != PG_QUERY__SET_OPERATION__SETOP_NONE) {
		if (scan_stmt(c, &sel->base, true, &s) < 0)
			return ROUTE_FAIL;
		if (s.sharded)
			return refuse(c, "0A000", "UNION, INTERSECT or EXCEPT over sharded table %s", s.sharded);
		return replicated(c, s.lock || s.modifying || s.unknown_func || s.into);
	}
	c->with = sel->with_clause;
	for (size_t i = 0; i < sel->n_from_clause; i++)
		if (from_item(c, sel->from_clause[i], true) < 0)
			return ROUTE_FAIL;
	if (scan_stmt(c, &sel->base, false, &s) < 0)
		return ROUTE_FAIL;
	if (s.sharded)
		return refuse_sub(c, &s);
	int r = first_sharded(c);
	if (r < 0)
		return replicated(c, s.lock || s.modifying || s.unknown_func || s.into);
	if (s.into)
		return refuse(c, "0A000", "SELECT INTO from sharded table %s", ref_name(c, r));
	if (add_qual(c, sel->where_clause, true) < 0 || read_conditions(c) < 0)
		return ROUTE_FAIL;
	bool write = s.lock || s.modifying;
	int rc = decide(c, s.window, write);
	if (rc == 0 && (c->out->kind == SHARD_ROUTE_MULTI || c->out->kind == SHARD_ROUTE_SEVERAL) && !write &&
	    !s.unknown_func && !s.window && !sel->having_clause && !sel->n_window_clause) {
		if (sel->n_group_clause || sel->n_distinct_clause) {
			grouped(c, sel, c->out);
		} else {
			c->out->concat = const_limit(sel, &c->out->limit) && const_offset(sel, &c->out->offset) &&
					 !calls_function(sel) && sort_keys(sel, c->out) && offset_text(c, sel, c->out);
			if (!c->out->concat) {
				c->out->n_sort = 0;
				c->out->offset = 0;
			}
			if (!sel->limit_count && !sel->limit_offset && !sel->n_sort_clause)
				combinable_aggs(c, sel, c->out);
		}
	}
	return rc;
}

/* UPDATE target (ref 0) with FROM, DELETE with USING: every sharded table
 * in the target's group. */
static int route_write(struct route_ctx *c, const PgQuery__RangeVar *target, size_t n_from, PgQuery__Node *const *from,
		       const PgQuery__Node *where, const PgQuery__WithClause *with, const ProtobufCMessage *stmt,
		       const char *verb, const char *from_word)
{
	c->with = with;
	if (!target || add_ref(c, target) < 0)
		return target ? ROUTE_FAIL : refuse(c, "0A000", "%s without a table", verb);
	for (size_t i = 0; i < n_from; i++)
		if (from_item(c, from[i], true) < 0)
			return ROUTE_FAIL;
	struct scan s;
	if (scan_stmt(c, stmt, false, &s) < 0)
		return ROUTE_FAIL;
	int r = first_sharded(c);
	if (c->refs[0].table < 0) {
		if (r >= 0)
			return refuse(c, "0A000", "%s of replicated table %s from sharded table %s (each shard would "
				      "write differently)", verb, ref_name(c, 0), ref_name(c, r));
		if (s.sharded)
			return refuse(c, "0A000", "%s of replicated table %s from sharded table %s in %s (each shard "
				      "would write differently)", verb, ref_name(c, 0), s.sharded, s.what);
		return replicated(c, true);
	}
	if (s.sharded)
		return refuse_sub(c, &s);
	if (add_qual(c, where, true) < 0 || read_conditions(c) < 0)
		return ROUTE_FAIL;
	for (int k = 1; k < c->n_refs; k++)
		if (c->refs[k].table >= 0 && find(c, k) != find(c, 0))
			return refuse(c, "0A000", "%s ... %s across shards: %s is not joined to %s on their shard keys", verb,
				      from_word, ref_name(c, k), ref_name(c, 0));
	return decide_group(c, find(c, 0), false, true);
}

/* SET key = ...: the row would have to move to another shard. */
static int check_key_kept(struct route_ctx *c, const struct shard_table *t, size_t n, PgQuery__Node *const *targets,
			  const char *what)
{
	for (size_t i = 0; i < n; i++) {
		const PgQuery__Node *n_ = targets[i];
		if (n_->node_case == PG_QUERY__NODE__NODE_RES_TARGET && n_->res_target->name &&
		    strcmp(n_->res_target->name, t->column) == 0)
			return refuse(c, "0A000", "%s of shard key column %s.%s (the row would move to another shard)", what,
				      t->table, t->column);
	}
	return 0;
}

static int route_update(struct route_ctx *c, const PgQuery__UpdateStmt *u)
{
	int rc = route_write(c, u->relation, u->n_from_clause, u->from_clause, u->where_clause, u->with_clause, &u->base,
			     "UPDATE", "FROM");
	if (rc < 0 || c->refs[0].table < 0)
		return rc;
	return check_key_kept(c, &c->map->tables[c->refs[0].table], u->n_target_list, u->target_list, "UPDATE");
}

static int route_delete(struct route_ctx *c, const PgQuery__DeleteStmt *d)
{
	return route_write(c, d->relation, d->n_using_clause, d->using_clause, d->where_clause, d->with_clause, &d->base,
			   "DELETE", "USING");
}

static int route_insert(struct route_ctx *c, const PgQuery__InsertStmt *ins)
{
	c->with = ins->with_clause;
	if (!ins->relation || add_ref(c, ins->relation) < 0)
		return ins->relation ? ROUTE_FAIL : refuse(c, "0A000", "INSERT without a table");
	const PgQuery__SelectStmt *sel = ins->select_stmt && ins->select_stmt->node_case == PG_QUERY__NODE__NODE_SELECT_STMT
						 ? ins->select_stmt->select_stmt : NULL;
	bool values = sel && sel->n_values_lists > 0 && sel->op == PG_QUERY__SET_OPERATION__SETOP_NONE;
	struct scan s;
	if (scan_stmt(c, &ins->base, false, &s) < 0)
		return ROUTE_FAIL;
	if (c->refs[0].table < 0) {
		if (s.sharded)
			return refuse(c, "0A000", "INSERT into replicated table %s from sharded table %s (each shard would "
				      "write differently)", ref_name(c, 0), s.sharded);
		return replicated(c, true);
	}
	const struct shard_table *t = &c->map->tables[c->refs[0].table];
	if (!sel)
		return refuse(c, "0A000", "INSERT ... DEFAULT VALUES into sharded table %s: no shard key value", t->table);
	if (!values)
		return refuse(c, "0A000", "INSERT ... SELECT into sharded table %s (its rows would need splitting by "
			      "shard key)", t->table);
	if (s.sharded)
		return refuse_sub(c, &s);
	if (ins->on_conflict_clause && check_key_kept(c, t, ins->on_conflict_clause->n_target_list,
						      ins->on_conflict_clause->target_list, "ON CONFLICT DO UPDATE") < 0)
		return ROUTE_FAIL;
	int pos = -1;
	for (size_t i = 0; i < ins->n_cols; i++) {
		const PgQuery__Node *n = ins->cols[i];
		if (n->node_case != PG_QUERY__NODE__NODE_RES_TARGET || !n->res_target->name ||
		    strcmp(n->res_target->name, t->column) != 0)
			continue;
		if (n->res_target->n_indirection)
			return refuse(c, "0A000", "INSERT into a part of shard key column %s.%s", t->table, t->column);
		pos = (int)i;
	}
	if (!ins->n_cols)
		return refuse(c, "0A000", "INSERT into sharded table %s without a column list (sluice needs the "
			      "position of shard key %s)", t->table, t->column);
	if (pos < 0)
		return refuse(c, "0A000", "INSERT into sharded table %s without its shard key column %s", t->table,
			      t->column);
	c->out->items = calloc(sel->n_values_lists, sizeof(*c->out->items));
	if (!c->out->items)
		return -ENOMEM;
	c->out->n_items = sel->n_values_lists;
	uint64_t mask = 0;
	size_t params = 0;
	for (size_t i = 0; i < sel->n_values_lists; i++) {
		const PgQuery__Node *row = sel->values_lists[i];
		if (row->node_case != PG_QUERY__NODE__NODE_LIST || row->list->n_items <= (size_t)pos)
			return refuse(c, "0A000", "INSERT row %zu into %s without a shard key value", i + 1, t->table);
		struct value v = { 0 };
		int got = value_of(c, t, row->list->items[pos], &v);
		if (got < 0)
			return ROUTE_FAIL;
		struct shard_item *it = &c->out->items[i];
		if (got == VAL_SHARD) {
			*it = (struct shard_item){ .shard = v.shard };
			mask |= UINT64_C(1) << v.shard;
		} else if (got == VAL_PARAM) {
			*it = (struct shard_item){ .shard = -1, .param = v.param, .param_type = v.param_type };
			params++;
		} else {
			return refuse(c, "0A000", "INSERT into sharded table %s with a shard key sluice cannot compute "
				      "(row %zu: only constants and parameters, $n)", t->table, i + 1);
		}
	}
	c->out->write = true;
	if (sel->n_values_lists == 1 && params == 1) {
		c->out->kind = SHARD_ROUTE_BIND;
		c->out->param = c->out->items[0].param;
		c->out->param_type = c->out->items[0].param_type;
		c->out->bind_alone = true;
	} else if (!params && __builtin_popcountll(mask) == 1) {
		c->out->kind = SHARD_ROUTE_ONE;
		c->out->shard = first_shard(mask);
	} else {
		c->out->kind = SHARD_ROUTE_SEVERAL;
		c->out->mask = mask;
		return 0;
	}
	free(c->out->items);
	c->out->items = NULL;
	c->out->n_items = 0;
	return 0;
}

/* Any other statement (DDL, DO, CALL, ...): on every shard, unless a query
 * inside it reads sharded tables (CREATE VIEW, CREATE TABLE AS, ...). */
static int route_other(struct route_ctx *c, const PgQuery__Node *n, const char *what)
{
	struct scan s;
	const ProtobufCMessageDescriptor *d = NULL;
	const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(&pg_query__node__descriptor,
									     (unsigned)n->node_case);
	if (f && f->type == PROTOBUF_C_TYPE_MESSAGE)
		d = f->descriptor;
	const ProtobufCMessage *m = d ? *(ProtobufCMessage *const *)((const char *)n + f->offset) : NULL;
	if (!m)
		return replicated(c, true);
	if (scan_stmt(c, m, false, &s) < 0)
		return ROUTE_FAIL;
	if (s.sharded)
		return refuse(c, "0A000", "%s reading sharded table %s (each shard would get only its own rows)", what,
			      s.sharded);
	return replicated(c, true);
}

/* The value of COPY option o as a string ("" when it has none). */
static const char *copy_opt_str(const PgQuery__DefElem *o)
{
	const PgQuery__Node *a = o->arg;
	if (a && a->node_case == PG_QUERY__NODE__NODE_STRING)
		return a->string->sval;
	return "";
}

/* Is COPY option o (HEADER) on? */
static bool copy_opt_on(const PgQuery__DefElem *o)
{
	const PgQuery__Node *a = o->arg;
	if (!a)
		return true;
	if (a->node_case == PG_QUERY__NODE__NODE_BOOLEAN)
		return a->boolean->boolval;
	if (a->node_case == PG_QUERY__NODE__NODE_INTEGER)
		return a->integer->ival != 0;
	const char *v = copy_opt_str(o);
	return strcasecmp(v, "false") != 0 && strcasecmp(v, "off") != 0 && strcmp(v, "0") != 0;
}

/* COPY ... FROM STDIN into table t of the map (-1: a replicated one):
 * the data's format from its options, and for a sharded table the key's
 * field, into c->out->copy. */
static int copy_in(struct route_ctx *c, const PgQuery__CopyStmt *cp, int t)
{
	struct shard_copy_format *f = &c->out->copy;
	*f = (struct shard_copy_format){ .key = -1, .delim = '\t', .quote = '"', .escape = 0 };
	snprintf(f->null, sizeof(f->null), "\\N");
	bool delim_set = false, null_set = false;
	for (size_t i = 0; i < cp->n_options; i++) {
		if (cp->options[i]->node_case != PG_QUERY__NODE__NODE_DEF_ELEM)
			continue;
		const PgQuery__DefElem *o = cp->options[i]->def_elem;
		const char *v = copy_opt_str(o);
		if (strcmp(o->defname, "format") == 0) {
			if (strcasecmp(v, "binary") == 0)
				return refuse(c, "0A000", "COPY FROM STDIN in binary format into a sharded database (sluice "
					      "splits text and CSV)");
			f->csv = strcasecmp(v, "csv") == 0;
		} else if (strcmp(o->defname, "delimiter") == 0 && strlen(v) == 1) {
			f->delim = v[0];
			delim_set = true;
		} else if (strcmp(o->defname, "null") == 0 && strlen(v) < sizeof(f->null)) {
			snprintf(f->null, sizeof(f->null), "%s", v);
			null_set = true;
		} else if (strcmp(o->defname, "header") == 0) {
			f->header = copy_opt_on(o);
		} else if (strcmp(o->defname, "quote") == 0 && strlen(v) == 1) {
			f->quote = v[0];
		} else if (strcmp(o->defname, "escape") == 0 && strlen(v) == 1) {
			f->escape = v[0];
		}
	}
	if (f->csv && !delim_set)
		f->delim = ',';
	if (f->csv && !null_set)
		f->null[0] = '\0';
	if (!f->escape)
		f->escape = f->quote;
	f->n_fields = (int)cp->n_attlist;
	c->out->copy_in = true;
	if (t < 0)
		return 0;
	const struct shard_table *st = &c->map->tables[t];
	if (!cp->n_attlist)
		return refuse(c, "0A000", "COPY into sharded table %s needs its column list, naming the shard key %s",
			      st->table, st->column);
	for (size_t i = 0; i < cp->n_attlist; i++) {
		const PgQuery__Node *a = cp->attlist[i];
		if (a->node_case == PG_QUERY__NODE__NODE_STRING && strcmp(a->string->sval, st->column) == 0)
			f->key = (int)i;
	}
	if (f->key < 0)
		return refuse(c, "0A000", "COPY into sharded table %s without its shard key %s in the column list",
			      st->table, st->column);
	if (st->key_type == PGHASH_UNKNOWN)
		return refuse(c, "0A000", "COPY into sharded table %s needs the type of its shard key %s in "
			      "[sharded_tables] (column:TYPE)", st->table, st->column);
	f->key_type = st->key_type;
	c->out->kind = SHARD_ROUTE_MULTI;
	c->out->write = true;
	return 0;
}

static int route_stmt(struct route_ctx *c, const PgQuery__Node *n)
{
	c->n_refs = c->n_quals = c->n_usings = 0;
	c->with = NULL;
	switch (n ? n->node_case : PG_QUERY__NODE__NODE__NOT_SET) {
	case PG_QUERY__NODE__NODE_SELECT_STMT:
		return route_select(c, n->select_stmt);
	case PG_QUERY__NODE__NODE_INSERT_STMT:
		return route_insert(c, n->insert_stmt);
	case PG_QUERY__NODE__NODE_UPDATE_STMT:
		return route_update(c, n->update_stmt);
	case PG_QUERY__NODE__NODE_DELETE_STMT:
		return route_delete(c, n->delete_stmt);
	case PG_QUERY__NODE__NODE_EXPLAIN_STMT:
		return route_stmt(c, n->explain_stmt->query);
	case PG_QUERY__NODE__NODE_TRANSACTION_STMT: {
		const PgQuery__TransactionStmt *t = n->transaction_stmt;
		c->out->kind = SHARD_ROUTE_SESSION;
		if (t->kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_BEGIN ||
		    t->kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_START)
			c->out->tx = SHARD_TX_BEGIN;
		else if (t->kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT && !t->chain)
			c->out->tx = SHARD_TX_COMMIT;
		else if (t->kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK && !t->chain)
			c->out->tx = SHARD_TX_ROLLBACK;
		else if (t->kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT ||
			 t->kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK ||
			 t->kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_PREPARE)
			c->out->tx = SHARD_TX_ENDS; /* AND CHAIN, PREPARE TRANSACTION */
		return 0;
	}
	case PG_QUERY__NODE__NODE_VARIABLE_SET_STMT:
	case PG_QUERY__NODE__NODE_VARIABLE_SHOW_STMT:
	case PG_QUERY__NODE__NODE_DISCARD_STMT:
	case PG_QUERY__NODE__NODE_DEALLOCATE_STMT:
	case PG_QUERY__NODE__NODE_LISTEN_STMT:
	case PG_QUERY__NODE__NODE_UNLISTEN_STMT:
	case PG_QUERY__NODE__NODE_NOTIFY_STMT:
		c->out->kind = SHARD_ROUTE_SESSION;
		return 0;
	case PG_QUERY__NODE__NODE_PREPARE_STMT:
	case PG_QUERY__NODE__NODE_EXECUTE_STMT:
		return refuse(c, "0A000", "SQL-level PREPARE and EXECUTE on a sharded database (use the extended "
			      "protocol's Parse and Bind)");
	case PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT:
	case PG_QUERY__NODE__NODE_FETCH_STMT:
	case PG_QUERY__NODE__NODE_CLOSE_PORTAL_STMT:
		return refuse(c, "0A000", "cursors (DECLARE, FETCH, MOVE, CLOSE) on a sharded database");
	case PG_QUERY__NODE__NODE_COPY_STMT: {
		const PgQuery__CopyStmt *cp = n->copy_stmt;
		bool from_stdin = cp->is_from && !cp->is_program && (!cp->filename || !*cp->filename);
		int t = cp->relation ? map_find(c->map, cp->relation->schemaname && *cp->relation->schemaname
							       ? cp->relation->schemaname : NULL, cp->relation->relname) : -1;
		if (t >= 0) {
			if (!from_stdin)
				return refuse(c, "0A000", "COPY %s sharded table %s: sluice splits COPY FROM STDIN by key; read "
					      "with SELECT", cp->is_from ? "from a file into" : "out of", cp->relation->relname);
			return copy_in(c, cp, t);
		}
		struct scan s;
		if (scan_stmt(c, &cp->base, false, &s) < 0)
			return ROUTE_FAIL;
		if (s.sharded)
			return refuse(c, "0A000", "COPY (query) over sharded table %s", s.sharded);
		if (from_stdin && cp->relation && copy_in(c, cp, -1) < 0)
			return ROUTE_FAIL;
		return replicated(c, cp->is_from || s.modifying || s.unknown_func);
	}
	case PG_QUERY__NODE__NODE_MERGE_STMT: {
		struct scan s;
		if (scan_stmt(c, &n->merge_stmt->base, true, &s) < 0)
			return ROUTE_FAIL;
		if (s.sharded)
			return refuse(c, "0A000", "MERGE with sharded table %s", s.sharded);
		return replicated(c, true);
	}
	case PG_QUERY__NODE__NODE__NOT_SET:
		return replicated(c, false);
	default:
		return route_other(c, n, "a statement");
	}
}

/* Several statements in one Query: one place for all, or refused. */
static int combine(struct route_ctx *c, struct shard_route *acc, bool *have, const struct shard_route *r)
{
	if (r->kind == SHARD_ROUTE_SESSION && *have)
		return 0;
	if (!*have || acc->kind == SHARD_ROUTE_SESSION) {
		struct shard_item *items = acc->items;
		*acc = *r;
		acc->items = items; /* a multi-statement text never keeps items */
		*have = true;
		return 0;
	}
	bool acc_rep = acc->kind == SHARD_ROUTE_REPLICATED_READ || acc->kind == SHARD_ROUTE_REPLICATED_WRITE;
	bool r_rep = r->kind == SHARD_ROUTE_REPLICATED_READ || r->kind == SHARD_ROUTE_REPLICATED_WRITE;
	if (acc_rep && r_rep) {
		acc->write |= r->write;
		acc->kind = acc->write ? SHARD_ROUTE_REPLICATED_WRITE : SHARD_ROUTE_REPLICATED_READ;
		return 0;
	}
	if (acc->kind == SHARD_ROUTE_ONE && r->kind == SHARD_ROUTE_ONE && acc->shard == r->shard) {
		acc->write |= r->write;
		return 0;
	}
	return refuse(c, "0A000", "several statements in one query that do not all go to one shard: send them one "
		      "at a time");
}

int shard_route(const char *sql, const uint32_t *param_types, int n_param_types, const struct shard_map *map,
		struct shard_route *out)
{
	memset(out, 0, sizeof(*out));
	struct route_ctx *c = calloc(1, sizeof(*c));
	if (!c) {
		out->kind = SHARD_ROUTE_REFUSE;
		snprintf(out->sqlstate, sizeof(out->sqlstate), "53200");
		snprintf(out->message, sizeof(out->message), "out of memory routing over shards");
		return -ENOMEM;
	}
	c->sql = sql;
	c->map = map;
	c->ptypes = param_types;
	c->n_ptypes = n_param_types;
	struct sql_tree tree;
	int rc = sql_parse(&tree, sql);
	if (rc < 0) {
		/* below */
	} else if (!tree.pr) {
		c->out = out;
		refuse(c, "42601", "syntax error: sluice routes over shards only what PostgreSQL's parser reads");
	} else if (tree.pr->n_stmts == 1) {
		c->out = out;
		rc = route_stmt(c, tree.pr->stmts[0]->stmt);
	} else if (tree.pr->n_stmts == 0) {
		out->kind = SHARD_ROUTE_REPLICATED_READ; /* an empty query: any shard answers it */
	} else {
		struct shard_route one;
		bool have = false, ends = false;
		for (size_t i = 0; i < tree.pr->n_stmts && rc >= 0 && !c->refused; i++) {
			memset(&one, 0, sizeof(one));
			c->out = &one;
			rc = route_stmt(c, tree.pr->stmts[i]->stmt);
			if (rc == -ENOMEM) {
				shard_route_deinit(&one);
				break;
			}
			c->out = out;
			ends |= one.tx != SHARD_TX_NONE && one.tx != SHARD_TX_BEGIN;
			if (one.kind == SHARD_ROUTE_REFUSE) {
				shard_route_deinit(out);
				*out = one;
				one.items = NULL;
			} else if (one.kind == SHARD_ROUTE_BIND || one.kind == SHARD_ROUTE_SEVERAL ||
				   one.kind == SHARD_ROUTE_MULTI) {
				c->refused = false;
				refuse(c, "0A000", "several statements in one query where one of them needs more than one "
				       "shard (or a Bind): send them one at a time");
			} else {
				combine(c, out, &have, &one);
			}
			shard_route_deinit(&one);
			rc = 0;
		}
		/* Only a text of one statement is answered by sluice. */
		out->tx = ends ? SHARD_TX_ENDS : SHARD_TX_NONE;
	}
	sql_tree_deinit(&tree);
	free(c);
	if (rc == -ENOMEM) {
		shard_route_deinit(out);
		out->kind = SHARD_ROUTE_REFUSE;
		snprintf(out->sqlstate, sizeof(out->sqlstate), "53200");
		snprintf(out->message, sizeof(out->message), "out of memory routing over shards");
		return -ENOMEM;
	}
	return 0;
}

void shard_route_deinit(struct shard_route *r)
{
	free(r->items);
	r->items = NULL;
	r->n_items = 0;
	free(r->shard_sql);
	r->shard_sql = NULL;
}

int shard_plan_literal_shard(const struct shard_plan *plan, const char *sql, const struct sql_literal *lits,
			     int n_lits, int n_shards)
{
	if (plan->kind - 1 != SHARD_ROUTE_BIND || !plan->bind_alone || plan->param < 1 || plan->param > n_lits)
		return -1;
	/* An integer constant hashes alike for a key of any integer width
	 * (and so for one whose type is not configured); for a text or uuid
	 * key it is PostgreSQL's error, left to the text's own route. */
	int type = plan->param_type == PGHASH_UNKNOWN ? PGHASH_INT8 : plan->param_type;
	if (type != PGHASH_INT2 && type != PGHASH_INT4 && type != PGHASH_INT8)
		return -1;
	int k = plan->param - 1;
	int shard = pghash_shard_text(type, sql + lits[k].off, lits[k].len, n_shards);
	return shard >= 0 ? shard : -1;
}

int shard_plan_of_shape(const char *shape, const char *sql, const struct sql_literal *lits, int n_lits,
			const struct shard_map *map, struct shard_plan *out)
{
	struct shard_route r;
	int rc = shard_route(shape, NULL, 0, map, &r);
	*out = shard_plan_of(&r);
	shard_route_deinit(&r);
	if (rc < 0)
		return rc;
	int shard = shard_plan_literal_shard(out, sql, lits, n_lits, map->n_shards);
	if (shard < 0)
		return 0;
	rc = shard_route(sql, NULL, 0, map, &r);
	if (rc < 0 || r.kind != SHARD_ROUTE_ONE || r.shard != shard)
		out->bind_alone = false; /* the text itself must be routed, each time */
	shard_route_deinit(&r);
	return rc;
}

struct shard_plan shard_plan_of(const struct shard_route *r)
{
	return (struct shard_plan){ .kind = (int8_t)(r->kind + 1), .tx = r->tx, .param_type = (int8_t)r->param_type,
				    .write = r->write, .bind_alone = r->bind_alone, .shard = (int8_t)r->shard,
				    .concat = r->concat, .aggregate = r->n_aggs > 0, .param = (int16_t)r->param };
}

const char *shard_route_kind_name(int kind)
{
	static const char *const names[SHARD_ROUTE_KINDS] = {
		[SHARD_ROUTE_ONE] = "one",
		[SHARD_ROUTE_SEVERAL] = "several",
		[SHARD_ROUTE_BIND] = "bind",
		[SHARD_ROUTE_REPLICATED_READ] = "replicated read",
		[SHARD_ROUTE_REPLICATED_WRITE] = "replicated write",
		[SHARD_ROUTE_MULTI] = "multi",
		[SHARD_ROUTE_SESSION] = "session",
		[SHARD_ROUTE_REFUSE] = "refuse",
	};
	return kind >= 0 && kind < SHARD_ROUTE_KINDS ? names[kind] : "?";
}
