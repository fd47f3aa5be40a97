/*
 * sqlread.c - see sqlread.h. The walk over a SELECT's tree is sqlparse.c's
 * generic one, so a function call or a locking clause cannot hide in a node
 * type this file does not name.
 */
#include "sqlread.h"
#include "sqlparse.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the prescreen ---- */

bool sql_read_worth_parsing(const char *sql, size_t len)
{
	static const char *const words[] = {
		"select", "with", "values", "table", "show", "explain", "begin", "start",
	};
	const char *p = sql, *end = sql + len;
	for (;;) {
		p = sql_skip_space(p, end);
		if (p < end && *p == '(')
			p++;
		else
			break;
	}
	const char *w = p;
	while (p < end && (isalpha((unsigned char)*p) || *p == '_'))
		p++;
	size_t n = (size_t)(p - w);
	if (p < end && (isdigit((unsigned char)*p) || *p == '$' || (unsigned char)*p >= 0x80))
		return false; /* a longer identifier: SELECT1, selecté */
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strlen(words[i]) == n && strncasecmp(w, words[i], n) == 0)
			return true;
	return false;
}

/* ---- functions known to only read ---- */

/* Built-ins that write nothing, change no state of the session and work on
 * a standby (volatile ones such as random() and clock_timestamp() too: they
 * only read). Left out on purpose: nextval/setval/currval/lastval (sequence
 * state of the session), pg_advisory_* (locks), set_config and setseed
 * (session settings), pg_notify, txid_current/pg_current_xact_id (assign an
 * xid), pg_current_wal_* (fail on a standby), pg_create_*, pg_drop_*, lo_*,
 * dblink*, pg_read_file and its kin, pg_cancel/terminate_backend,
 * pg_reload_conf, and everything not named here. Sorted by strcmp: bsearch. */
static const char *const builtins[] = {
		"abs", "acos", "age", "array_agg", "array_append", "array_cat", "array_dims",
		"array_fill", "array_length", "array_lower", "array_ndims", "array_position",
		"array_positions", "array_prepend", "array_remove", "array_replace", "array_to_json",
		"array_to_string", "array_upper", "ascii", "asin", "atan", "atan2", "avg", "bit_and",
		"bit_length", "bit_or", "bit_xor", "bool", "bool_and", "bool_or", "btrim",
		"cardinality", "cbrt", "ceil", "ceiling", "char_length", "character_length", "chr",
		"clock_timestamp", "col_description", "concat", "concat_ws", "convert",
		"convert_from", "convert_to", "corr", "cos", "cot", "count", "covar_pop",
		"covar_samp", "cume_dist", "current_database", "current_schema", "current_schemas",
		"current_setting", "date", "date_bin", "date_part", "date_trunc", "daterange",
		"decode", "degrees", "dense_rank", "div", "encode", "every", "exp", "extract",
		"factorial", "first_value", "float8", "floor", "format", "format_type", "gcd",
		"gen_random_uuid", "generate_series", "generate_subscripts",
		"has_any_column_privilege", "has_column_privilege", "has_database_privilege",
		"has_foreign_data_wrapper_privilege", "has_function_privilege",
		"has_language_privilege", "has_schema_privilege", "has_sequence_privilege",
		"has_server_privilege", "has_table_privilege", "has_tablespace_privilege",
		"has_type_privilege", "inet_client_addr", "inet_client_port", "inet_server_addr",
		"inet_server_port", "initcap", "int4", "int4range", "int8", "int8range", "interval",
		"is_normalized", "isempty", "isfinite", "json_agg", "json_array_elements",
		"json_array_elements_text", "json_array_length", "json_build_array",
		"json_build_object", "json_each", "json_each_text", "json_extract_path",
		"json_extract_path_text", "json_object", "json_object_agg", "json_object_keys",
		"json_populate_record", "json_populate_recordset", "json_strip_nulls",
		"json_to_record", "json_to_recordset", "json_typeof", "jsonb_agg",
		"jsonb_array_elements", "jsonb_array_elements_text", "jsonb_array_length",
		"jsonb_build_array", "jsonb_build_object", "jsonb_each", "jsonb_each_text",
		"jsonb_extract_path", "jsonb_extract_path_text", "jsonb_insert", "jsonb_object",
		"jsonb_object_agg", "jsonb_object_keys", "jsonb_path_exists", "jsonb_path_match",
		"jsonb_path_query", "jsonb_path_query_array", "jsonb_path_query_first",
		"jsonb_populate_record", "jsonb_populate_recordset", "jsonb_pretty", "jsonb_set",
		"jsonb_set_lax", "jsonb_strip_nulls", "jsonb_to_record", "jsonb_to_recordset",
		"jsonb_typeof", "justify_days", "justify_hours", "justify_interval", "lag",
		"last_value", "lcm", "lead", "left", "length", "like_escape", "ln", "log", "log10",
		"lower", "lower_inc", "lower_inf", "lpad", "ltrim", "make_date", "make_interval",
		"make_time", "make_timestamp", "make_timestamptz", "max", "md5", "min", "min_scale",
		"mod", "mode", "normalize", "now", "nth_value", "ntile", "num_nonnulls", "num_nulls",
		"numeric", "numrange", "obj_description", "octet_length", "overlaps", "overlay",
		"percent_rank", "percentile_cont", "percentile_disc", "pg_backend_pid",
		"pg_client_encoding", "pg_collation_for", "pg_column_size", "pg_conf_load_time",
		"pg_database_size", "pg_encoding_to_char", "pg_function_is_visible",
		"pg_get_constraintdef", "pg_get_expr", "pg_get_function_arguments",
		"pg_get_function_identity_arguments", "pg_get_function_result", "pg_get_functiondef",
		"pg_get_indexdef", "pg_get_ruledef", "pg_get_serial_sequence", "pg_get_triggerdef",
		"pg_get_userbyid", "pg_get_viewdef", "pg_has_role", "pg_indexes_size",
		"pg_is_in_recovery", "pg_is_wal_replay_paused", "pg_last_wal_receive_lsn",
		"pg_last_wal_replay_lsn", "pg_last_xact_replay_timestamp", "pg_postmaster_start_time",
		"pg_relation_size", "pg_size_bytes", "pg_size_pretty", "pg_sleep",
		"pg_table_is_visible", "pg_table_size", "pg_total_relation_size",
		"pg_type_is_visible", "pg_typeof", "pg_wal_lsn_diff", "phraseto_tsquery", "pi",
		"plainto_tsquery", "position", "power", "quote_ident", "quote_literal",
		"quote_nullable", "radians", "random", "range_agg", "range_intersect_agg", "rank",
		"regexp_count", "regexp_instr", "regexp_like", "regexp_match", "regexp_matches",
		"regexp_replace", "regexp_split_to_array", "regexp_split_to_table", "regexp_substr",
		"regr_avgx", "regr_avgy", "regr_count", "regr_intercept", "regr_r2", "regr_slope",
		"regr_sxx", "regr_sxy", "regr_syy", "repeat", "replace", "reverse", "right", "round",
		"row_number", "row_to_json", "rpad", "rtrim", "scale", "sha224", "sha256", "sha384",
		"sha512", "shobj_description", "sign", "similar_escape", "similar_to_escape", "sin",
		"split_part", "sqrt", "starts_with", "statement_timestamp", "stddev", "stddev_pop",
		"stddev_samp", "string_agg", "string_to_array", "string_to_table", "strpos", "substr",
		"substring", "sum", "tan", "text", "time", "timeofday", "timestamp", "timestamptz",
		"timezone", "to_ascii", "to_char", "to_date", "to_hex", "to_json", "to_jsonb",
		"to_number", "to_regclass", "to_regcollation", "to_regnamespace", "to_regoper",
		"to_regoperator", "to_regproc", "to_regprocedure", "to_regrole", "to_regtype",
		"to_timestamp", "to_tsquery", "to_tsvector", "transaction_timestamp", "translate",
		"trim_array", "trim_scale", "trunc", "ts_headline", "ts_rank", "ts_rank_cd",
		"tsrange", "tstzrange", "unistr", "unnest", "upper", "upper_inc", "upper_inf",
		"var_pop", "var_samp", "variance", "version", "websearch_to_tsquery", "width_bucket",
		"xmlagg",
};

static int cmp_name(const void *key, const void *elem)
{
	return strcmp((const char *)key, *(const char *const *)elem);
}

bool sql_read_builtin(const char *name)
{
	return bsearch(name, builtins, sizeof(builtins) / sizeof(builtins[0]), sizeof(builtins[0]), cmp_name) != NULL;
}

const char *const *sql_read_builtins(size_t *n)
{
	*n = sizeof(builtins) / sizeof(builtins[0]);
	return builtins;
}

/* A name list (String nodes) that is name or pg_catalog.name: name, else NULL. */
static const char *catalog_name(size_t n, PgQuery__Node *const *names)
{
	if (n < 1 || n > 2 || names[n - 1]->node_case != PG_QUERY__NODE__NODE_STRING)
		return NULL;
	if (n == 2 && (names[0]->node_case != PG_QUERY__NODE__NODE_STRING ||
		       strcmp(names[0]->string->sval, "pg_catalog") != 0))
		return NULL;
	return names[n - 1]->string->sval;
}

/* ---- the parse tree ---- */

enum { READ_STOP = SQL_WALK_SKIP + 1 }; /* stops the walk: not a read */

/* Anything in a SELECT's tree that makes it more than a read. */
static int visit(struct sql_walker *w, const ProtobufCMessage *m, const ProtobufCMessageDescriptor *parent)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	if (d == &pg_query__func_call__descriptor) {
		const PgQuery__FuncCall *fc = (const PgQuery__FuncCall *)m;
		const char *fn = catalog_name(fc->n_funcname, fc->funcname);
		return fn && sql_read_builtin(fn) ? SQL_WALK_ON : READ_STOP;
	}
	if (d == &pg_query__a__expr__descriptor) {
		/* OPERATOR(schema.op): a schema's operator may call anything.
		 * Unqualified operators are let through (sqlread.h). */
		const PgQuery__AExpr *e = (const PgQuery__AExpr *)m;
		return e->n_name <= 1 || catalog_name(e->n_name, e->name) ? SQL_WALK_ON : READ_STOP;
	}
	if (d == &pg_query__range_var__descriptor) {
		/* pg_temp.t: the session's own table, on the primary only. */
		const char *schema = ((const PgQuery__RangeVar *)m)->schemaname;
		return schema && strncmp(schema, "pg_temp", 7) == 0 ? READ_STOP : SQL_WALK_ON;
	}
	if (d == &pg_query__locking_clause__descriptor || /* FOR UPDATE/SHARE: takes row locks */
	    d == &pg_query__into_clause__descriptor ||    /* SELECT INTO: creates a table */
	    d == &pg_query__insert_stmt__descriptor ||    /* data-modifying WITH */
	    d == &pg_query__update_stmt__descriptor ||
	    d == &pg_query__delete_stmt__descriptor ||
	    d == &pg_query__merge_stmt__descriptor)
		return READ_STOP;
	return SQL_WALK_ON;
}

/* Too deep to read through: assume the worst. */
static int too_deep(struct sql_walker *w)
{
	return READ_STOP;
}

static bool select_reads(const PgQuery__Node *n)
{
	if (!n || n->node_case != PG_QUERY__NODE__NODE_SELECT_STMT)
		return false;
	struct sql_walker w = { .visit = visit, .too_deep = too_deep };
	return sql_walk(&w, &n->select_stmt->base) == SQL_WALK_ON;
}

/* Settings drivers SHOW to tell a primary from a standby (pgJDBC's
 * targetServerType, libpq's target_session_attrs before PostgreSQL 14):
 * asked of a standby, they would lie about the primary the client
 * believes it is on. */
static bool show_asks_role(const char *name)
{
	return name && (strcasecmp(name, "transaction_read_only") == 0 ||
			strcasecmp(name, "default_transaction_read_only") == 0 ||
			strcasecmp(name, "in_hot_standby") == 0);
}

/* One statement that only reads. */
static bool stmt_reads(const PgQuery__Node *n)
{
	if (!n)
		return false;
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_SELECT_STMT:
		return select_reads(n);
	case PG_QUERY__NODE__NODE_VARIABLE_SHOW_STMT:
		return !show_asks_role(n->variable_show_stmt->name);
	case PG_QUERY__NODE__NODE_EXPLAIN_STMT:
		/* With ANALYZE the query runs: a read either way. */
		return select_reads(n->explain_stmt->query);
	default:
		return false;
	}
}

/* 1 or 0 for a constant true or false (READ ONLY is the integer 1, READ
 * WRITE 0), -1 for anything else. */
static int const_bool(const PgQuery__Node *n)
{
	if (!n || n->node_case != PG_QUERY__NODE__NODE_A_CONST)
		return -1;
	const PgQuery__AConst *c = n->a_const;
	if (c->val_case == PG_QUERY__A__CONST__VAL_IVAL)
		return c->ival->ival != 0;
	if (c->val_case == PG_QUERY__A__CONST__VAL_BOOLVAL)
		return c->boolval->boolval != 0;
	return -1;
}

/* BEGIN or START TRANSACTION whose last read-only option says READ ONLY
 * (PostgreSQL applies the options in order). */
static bool begins_read_only(const PgQuery__Node *n)
{
	if (!n || n->node_case != PG_QUERY__NODE__NODE_TRANSACTION_STMT)
		return false;
	const PgQuery__TransactionStmt *ts = n->transaction_stmt;
	if (ts->kind != PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_BEGIN &&
	    ts->kind != PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_START)
		return false;
	int read_only = 0;
	for (size_t i = 0; i < ts->n_options; i++) {
		const PgQuery__Node *o = ts->options[i];
		if (o->node_case == PG_QUERY__NODE__NODE_DEF_ELEM && o->def_elem->defname &&
		    strcmp(o->def_elem->defname, "transaction_read_only") == 0)
			read_only = const_bool(o->def_elem->arg) == 1;
	}
	return read_only;
}

/* COMMIT, END, ROLLBACK, ABORT (with or without AND CHAIN, which keeps
 * READ ONLY). */
static bool ends_transaction(const PgQuery__Node *n)
{
	return n && n->node_case == PG_QUERY__NODE__NODE_TRANSACTION_STMT &&
	       (n->transaction_stmt->kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT ||
		n->transaction_stmt->kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK);
}

static int classify(const PgQuery__ParseResult *pr)
{
	if (pr->n_stmts == 0)
		return SQL_READ_NO; /* nothing to route */
	int cls = SQL_READ_YES;
	size_t k = 0;
	if (begins_read_only(pr->stmts[0]->stmt)) {
		cls = SQL_READ_TX_READ_ONLY;
		k = 1;
	}
	for (; k < pr->n_stmts; k++) {
		const PgQuery__Node *n = pr->stmts[k]->stmt;
		if (!stmt_reads(n) && !(cls == SQL_READ_TX_READ_ONLY && ends_transaction(n)))
			return SQL_READ_NO;
	}
	return cls;
}

/* Texts this short are copied to the stack to get their NUL. */
enum { READ_STACK_TEXT = 1024 };

/* ---- the quick path ---- */

static bool word_is(const char *w, size_t n, const char *kw)
{
	return strlen(kw) == n && strncasecmp(w, kw, n) == 0;
}

/*
 * A SELECT that provably only reads without a parse: one statement, no
 * parenthesis (so no function call, subquery or set-returning FROM), no
 * FOR (locking) or INTO, no pg_temp name, only plain 'strings' and
 * "names". Anything else, comments and escapes included, is left to the
 * parser (false). pgbench's select is such a text.
 */
static bool plain_select(const char *sql, size_t len)
{
	const char *p = sql, *end = sql + len;
	while (p < end && isspace((unsigned char)*p))
		p++;
	bool first = true, ended = false;
	while (p < end) {
		unsigned char ch = (unsigned char)*p;
		if (isspace(ch)) {
			p++;
			continue;
		}
		if (ended)
			return false; /* something after the ';' */
		if (isalpha(ch) || ch == '_') {
			const char *w = p;
			while (p < end && (isalnum((unsigned char)*p) || *p == '_'))
				p++;
			size_t n = (size_t)(p - w);
			if (p < end && (*p == '$' || (unsigned char)*p >= 0x80))
				return false;
			if (first ? !word_is(w, n, "select")
				  : word_is(w, n, "for") || word_is(w, n, "into") ||
				    (n >= 7 && strncasecmp(w, "pg_temp", 7) == 0))
				return false;
			first = false;
			continue;
		}
		if (first)
			return false;
		if (ch == '\'' || ch == '"') {
			/* Doubled quotes inside are two strings in a row here. */
			const char *q = memchr(p + 1, ch, (size_t)(end - p - 1));
			if (!q || memchr(p + 1, '\\', (size_t)(q - p - 1)) ||
			    (ch == '"' && q - p >= 8 && strncasecmp(p + 1, "pg_temp", 7) == 0))
				return false;
			p = q + 1;
			continue;
		}
		if (ch == ';') {
			ended = true;
			p++;
			continue;
		}
		/* Digits, operators, commas, dots, casts: no call among them. */
		if (ch == '(' || ch == ')' || ch == '$' || ch == '\\' || ch >= 0x80 || ch == 0 ||
		    (ch == '-' && p + 1 < end && p[1] == '-') || (ch == '/' && p + 1 < end && p[1] == '*'))
			return false;
		p++;
	}
	return !first;
}

int sql_read_class(const char *sql, size_t len)
{
	if (!sql_read_worth_parsing(sql, len))
		return SQL_READ_NO;
	if (plain_select(sql, len && sql[len - 1] == '\0' ? len - 1 : len)) /* the Query's own NUL */
		return SQL_READ_YES;
	size_t n = strnlen(sql, len);
	if (n + 1 < len)
		return SQL_READ_NO; /* a NUL inside: PostgreSQL refuses such a Query */
	char stack[READ_STACK_TEXT];
	char *text = n < sizeof(stack) ? stack : malloc(n + 1);
	if (!text)
		return SQL_READ_NO;
	memcpy(text, sql, n);
	text[n] = '\0';
	struct sql_tree tree;
	int rc = sql_parse(&tree, text);
	if (text != stack)
		free(text);
	int cls = rc == 0 && tree.pr ? classify(tree.pr) : SQL_READ_NO;
	sql_tree_deinit(&tree);
	return cls;
}

const char *sql_read_class_name(int cls)
{
	switch (cls) {
	case SQL_READ_YES: return "read";
	case SQL_READ_TX_READ_ONLY: return "read-only transaction";
	default: return "no";
	}
}
