/*
 * my_sqlread.c - see my_sqlread.h.
 */
#include "my_sqlread.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

enum tok_kind {
	T_END,
	T_WORD,        /* a name, keyword or number */
	T_QUOTED_NAME, /* `name` */
	T_STRING,      /* 'text' or "text" */
	T_USERVAR,     /* @name */
	T_SYSVAR,      /* @@[scope.]name: p, len are the name */
	T_PUNCT,       /* one character (ch); ":=" is ch '=' with assign */
	T_BAD,         /* an executable comment, or something unterminated */
};

struct tok {
	int kind;       /* enum tok_kind */
	const char *p;  /* its first byte in the text (T_SYSVAR: of the name) */
	size_t len;     /* its bytes from p */
	char ch;        /* T_PUNCT: the character */
	bool assign;    /* T_PUNCT: it is ":=" */
};

/* A pass over one text. */
struct lex {
	const char *s;  /* the text (not NUL-terminated) */
	size_t n, i;    /* its length; the next byte to read */
	bool backslash; /* backslash escapes in strings (no NO_BACKSLASH_ESCAPES) */
};

static bool word_char(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
	       ch == '$' || ch >= 0x80;
}

static bool blank(unsigned char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

/* Blanks and comments; false at an executable or unterminated comment. */
static bool skip_space(struct lex *x)
{
	const char *s = x->s;
	while (x->i < x->n) {
		unsigned char ch = (unsigned char)s[x->i];
		if (blank(ch)) {
			x->i++;
		} else if (ch == '#' ||
			   (ch == '-' && x->i + 1 < x->n && s[x->i + 1] == '-' &&
			    (x->i + 2 == x->n || (unsigned char)s[x->i + 2] <= ' '))) {
			while (x->i < x->n && s[x->i] != '\n')
				x->i++;
		} else if (ch == '/' && x->i + 1 < x->n && s[x->i + 1] == '*') {
			/* slash-star-bang and MariaDB's slash-star-M-bang run their content. */
			if (x->i + 2 < x->n && (s[x->i + 2] == '!' || (s[x->i + 2] == 'M' && x->i + 3 < x->n &&
									 s[x->i + 3] == '!')))
				return false;
			size_t k = x->i + 2;
			while (k + 1 < x->n && !(s[k] == '*' && s[k + 1] == '/'))
				k++;
			if (k + 1 >= x->n)
				return false;
			x->i = k + 2;
		} else {
			break;
		}
	}
	return true;
}

/* Past a quoted run that began at x->i with quote q; false when it does
 * not end. */
static bool skip_quoted(struct lex *x, char q, bool escapes)
{
	size_t k = x->i + 1;
	while (k < x->n) {
		if (escapes && x->s[k] == '\\') {
			k += 2;
			continue;
		}
		if (x->s[k] == q) {
			if (k + 1 < x->n && x->s[k + 1] == q) {
				k += 2; /* doubled: one quote inside */
				continue;
			}
			x->i = k + 1;
			return true;
		}
		k++;
	}
	return false;
}

static struct tok next(struct lex *x)
{
	struct tok t = { .kind = T_END };
	if (!skip_space(x)) {
		t.kind = T_BAD;
		return t;
	}
	if (x->i >= x->n)
		return t;
	const char *s = x->s;
	char ch = s[x->i];
	t.p = s + x->i;
	if (ch == '\'' || ch == '"') {
		t.kind = skip_quoted(x, ch, x->backslash) ? T_STRING : T_BAD;
	} else if (ch == '`') {
		t.kind = skip_quoted(x, '`', false) ? T_QUOTED_NAME : T_BAD;
	} else if (ch == '@' && x->i + 1 < x->n && s[x->i + 1] == '@') {
		x->i += 2;
		/* @@global.name, @@session.name, @@local.name or @@name */
		size_t b = x->i;
		while (x->i < x->n && word_char((unsigned char)s[x->i]))
			x->i++;
		if (x->i < x->n && s[x->i] == '.' &&
		    ((x->i - b == 6 && strncasecmp(s + b, "global", 6) == 0) ||
		     (x->i - b == 7 && strncasecmp(s + b, "session", 7) == 0) ||
		     (x->i - b == 5 && strncasecmp(s + b, "local", 5) == 0))) {
			b = ++x->i;
			while (x->i < x->n && word_char((unsigned char)s[x->i]))
				x->i++;
		}
		t.kind = x->i > b ? T_SYSVAR : T_BAD;
		t.p = s + b;
		t.len = x->i - b;
		return t;
	} else if (ch == '@') {
		t.kind = T_USERVAR;
		x->i++;
	} else if (word_char((unsigned char)ch)) {
		t.kind = T_WORD;
		while (x->i < x->n && word_char((unsigned char)s[x->i]))
			x->i++;
	} else {
		t.kind = T_PUNCT;
		t.ch = ch;
		x->i++;
		if (ch == ':' && x->i < x->n && s[x->i] == '=') {
			t.assign = true;
			x->i++;
		}
	}
	t.len = (size_t)(s + x->i - t.p);
	return t;
}

static struct tok peek(const struct lex *x)
{
	struct lex copy = *x;
	return next(&copy);
}

static bool is_word(const struct tok *t, const char *w)
{
	return t->kind == T_WORD && strlen(w) == t->len && strncasecmp(t->p, w, t->len) == 0;
}

static bool in_list(const struct tok *t, const char *const *list)
{
	for (size_t k = 0; list[k]; k++)
		if (strlen(list[k]) == t->len && strncasecmp(t->p, list[k], t->len) == 0)
			return true;
	return false;
}

/* Keywords a '(' may follow without being a call. */
static const char *const paren_keywords[] = {
	"select", "from", "where", "and", "or", "xor", "not", "in", "exists", "any", "all", "some", "as", "on",
	"using", "join", "by", "having", "when", "then", "else", "case", "between", "like", "is", "distinct",
	"distinctrow", "union", "except", "intersect", "minus", "over", "index", "key", "partition", "lateral",
	"div", "regexp", "rlike", "escape", "straight_join", "columns", "with", "limit", "offset", "null", NULL,
};

/* Built-ins that only read and give the same on any server of the
 * database (types too: CAST(x AS DECIMAL(10,2))). */
static const char *const read_functions[] = {
	/* aggregates and windows */
	"count", "sum", "avg", "min", "max", "group_concat", "std", "stddev", "stddev_pop", "stddev_samp",
	"variance", "var_pop", "var_samp", "bit_and", "bit_or", "bit_xor", "json_arrayagg", "json_objectagg",
	"row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead", "first_value",
	"last_value", "nth_value", "median", "percentile_cont", "percentile_disc",
	/* strings */
	"concat", "concat_ws", "lower", "upper", "lcase", "ucase", "length", "char_length", "character_length",
	"octet_length", "bit_length", "substring", "substr", "substring_index", "mid", "left", "right", "trim",
	"ltrim", "rtrim", "lpad", "rpad", "replace", "reverse", "repeat", "space", "instr", "locate", "position",
	"field", "find_in_set", "elt", "insert", "ascii", "ord", "char", "hex", "unhex", "format", "quote", "soundex",
	"strcmp", "regexp_replace", "regexp_instr", "regexp_substr", "make_set", "export_set", "to_base64",
	"from_base64", "collation", "charset", "coercibility", "weight_string", "natural_sort_key",
	/* numbers */
	"abs", "ceil", "ceiling", "floor", "round", "truncate", "mod", "pow", "power", "sqrt", "exp", "ln", "log",
	"log2", "log10", "sign", "pi", "sin", "cos", "tan", "asin", "acos", "atan", "atan2", "cot", "degrees",
	"radians", "greatest", "least", "conv", "crc32", "bin", "oct", "rand",
	/* dates and times */
	"now", "curdate", "current_date", "curtime", "current_time", "current_timestamp", "localtime",
	"localtimestamp", "sysdate", "utc_date", "utc_time", "utc_timestamp", "unix_timestamp", "from_unixtime",
	"date", "time", "year", "month", "day", "dayofmonth", "dayofweek", "dayofyear", "dayname", "monthname",
	"hour", "minute", "second", "microsecond", "week", "weekday", "weekofyear", "yearweek", "quarter",
	"date_add", "date_sub", "adddate", "subdate", "addtime", "subtime", "datediff", "timediff",
	"timestampdiff", "timestampadd", "date_format", "time_format", "str_to_date", "last_day", "makedate",
	"maketime", "extract", "timestamp", "convert_tz", "to_days", "from_days", "to_seconds", "sec_to_time",
	"time_to_sec", "period_add", "period_diff", "get_format",
	/* control and conversion */
	"if", "ifnull", "nullif", "coalesce", "isnull", "nvl", "nvl2", "interval", "cast", "convert", "binary",
	"decimal", "dec", "numeric", "datetime", "float", "double", "int", "integer", "signed", "unsigned",
	"varchar", "nchar", "row", "match", "against",
	/* JSON */
	"json_extract", "json_unquote", "json_object", "json_array", "json_contains", "json_contains_path",
	"json_length", "json_keys", "json_value", "json_query", "json_type", "json_valid", "json_search",
	"json_depth", "json_quote", "json_merge", "json_merge_patch", "json_merge_preserve", "json_set",
	"json_insert", "json_replace", "json_remove", "json_array_append", "json_array_insert", "json_table",
	"json_compact", "json_detailed", "json_pretty", "json_loose", "json_exists", "json_overlaps",
	/* hashes, addresses, identity */
	"md5", "sha", "sha1", "sha2", "uuid", "inet_aton", "inet_ntoa", "inet6_aton", "inet6_ntoa", "is_ipv4",
	"is_ipv6", "version", "database", "schema", "user", "current_user", "session_user", "system_user", NULL,
};

/* System variables whose value is the session's own doing, not
 * restored on another server. */
static const char *const session_bound_vars[] = {
	"last_insert_id", "identity", "insert_id", "warning_count", "error_count", "last_gtid", "rand_seed1",
	"rand_seed2", "in_transaction", "pseudo_thread_id", "thread_id", NULL,
};

/* Words that lock or write, wherever they are. */
static const char *const write_words[] = {
	"into", "update", "share", "lock", "sql_calc_found_rows", "procedure", "delete", NULL,
};

/* START TRANSACTION [READ ONLY | WITH CONSISTENT SNAPSHOT][, ...] [;] */
static int start_transaction(struct lex *x)
{
	struct tok t = next(x);
	if (!is_word(&t, "transaction"))
		return MY_READ_NO;
	bool read_only = false;
	for (;;) {
		t = next(x);
		if (is_word(&t, "read")) {
			t = next(x);
			if (!is_word(&t, "only"))
				return MY_READ_NO;
			read_only = true;
		} else if (is_word(&t, "with")) {
			struct tok a = next(x), b = next(x);
			if (!is_word(&a, "consistent") || !is_word(&b, "snapshot"))
				return MY_READ_NO;
		} else {
			break;
		}
		t = next(x);
		if (t.kind != T_PUNCT || t.ch != ',')
			break;
	}
	if (t.kind == T_PUNCT && t.ch == ';')
		t = next(x);
	return read_only && t.kind == T_END ? MY_READ_TX_READ_ONLY : MY_READ_NO;
}

static int classify(const char *s, size_t n, bool backslash)
{
	struct lex x = { .s = s, .n = n, .i = 0, .backslash = backslash };
	struct tok t = next(&x);
	if (is_word(&t, "start"))
		return start_transaction(&x);
	while (t.kind == T_PUNCT && t.ch == '(')
		t = next(&x);
	if (!is_word(&t, "select") && !is_word(&t, "with"))
		return MY_READ_NO;
	bool after_dot = false;
	for (; t.kind != T_END; t = next(&x)) {
		switch (t.kind) {
		case T_BAD:
		case T_USERVAR:
			return MY_READ_NO;
		case T_SYSVAR:
			if (in_list(&t, session_bound_vars))
				return MY_READ_NO;
			break;
		case T_PUNCT:
			if (t.assign)
				return MY_READ_NO;
			if (t.ch == ';' && peek(&x).kind != T_END)
				return MY_READ_NO; /* a second statement */
			break;
		case T_QUOTED_NAME: {
			struct tok u = peek(&x);
			if (u.kind == T_PUNCT && u.ch == '(')
				return MY_READ_NO; /* a stored function */
			break;
		}
		case T_WORD: {
			if (in_list(&t, write_words))
				return MY_READ_NO;
			struct tok u = peek(&x);
			bool call = u.kind == T_PUNCT && u.ch == '(';
			if ((is_word(&t, "insert") || is_word(&t, "replace")) && !call)
				return MY_READ_NO; /* WITH ... INSERT: not the string functions */
			if ((is_word(&t, "next") || is_word(&t, "previous")) && is_word(&u, "value"))
				return MY_READ_NO; /* a sequence */
			if (call && (after_dot || (!in_list(&t, paren_keywords) && !in_list(&t, read_functions))))
				return MY_READ_NO; /* a call of something not known to only read */
			break;
		}
		default:
			break;
		}
		after_dot = t.kind == T_PUNCT && t.ch == '.';
	}
	return MY_READ_YES;
}

int my_sql_read_class(const char *s, size_t n)
{
	if (memchr(s, '\0', n))
		return MY_READ_NO;
	int a = classify(s, n, true);
	if (a == MY_READ_NO)
		return MY_READ_NO;
	/* The same without backslash escapes (NO_BACKSLASH_ESCAPES). */
	return classify(s, n, false) == a ? a : MY_READ_NO;
}
