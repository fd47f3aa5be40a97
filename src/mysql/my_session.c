/*
 * my_session.c - the session system variables a MySQL client sets, kept
 * per client and restored on whichever server it gets (see my_session.h).
 *
 * How it decides: lexically, from the client's own statement. A lone
 * "SET [SESSION|LOCAL] var = literal, @@[session.]var = literal, NAMES x
 * [COLLATE y], CHARACTER SET x, ..." is read before it goes out; when the
 * server answers OK, the client's list takes the new values (a SET the
 * server refused changes nothing: MySQL checks every assignment of a SET
 * before it applies any). Anything else that begins with SET (user
 * variables, GLOBAL, an expression, a comment, a second statement, SET
 * TRANSACTION, one-shot variables such as insert_id) is not followed here
 * and pins as before.
 *
 * Why not the server's session tracking (SESSION_TRACK_SYSTEM_VARIABLES in
 * OK packets): it needs session_track_system_variables = '*' on every
 * server session and CLIENT_SESSION_TRACK on sluice's logins, and a client
 * that did not ask for SESSION_TRACK would then get OK packets it cannot
 * read unless sluice rewrote every one of them; a client that did ask
 * would see '*' where its server's setting was. The lexical screen costs
 * nothing per answer and is exact for what it accepts. Its known blind
 * spot, as before this file: a stored procedure or SET STATEMENT's inner
 * effects (a CALL that sets time_zone) are not seen.
 *
 * Restoring: a server's list says what its session has set away from a
 * fresh login. When a client gets a server whose list differs from its
 * own, one statement goes ahead of the client's command: the variables
 * the server has and the client has not go back to their login values
 * (var = DEFAULT, which is the global value; the character set of the
 * login handshake for the character set ones, by collation id; and
 * interactive_timeout for wait_timeout on an interactive session), then
 * the client's own assignments in the order it made them.
 */
#include "my_session.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "my_conn.h"
#include "pool.h"

/* ---- the list ---- */

/* The pair at off (off < v->len): key, its value, and the next pair's offset. */
static size_t pair_at(const struct my_vars *v, size_t off, const char **key, const char **value)
{
	*key = v->text + off;
	*value = *key + strlen(*key) + 1;
	return (size_t)(*value - v->text) + strlen(*value) + 1;
}

static const char *vars_find(const struct my_vars *v, const char *key)
{
	const char *k, *val;
	for (size_t off = 0; v && off < v->len;) {
		off = pair_at(v, off, &k, &val);
		if (strcmp(k, key) == 0)
			return val;
	}
	return NULL;
}

static void vars_remove(struct my_vars *v, const char *key)
{
	const char *k, *val;
	for (size_t off = 0; off < v->len;) {
		size_t next = pair_at(v, off, &k, &val);
		if (strcmp(k, key) == 0) {
			memmove(v->text + off, v->text + next, v->len - next);
			v->len = (uint16_t)(v->len - (next - off));
			return;
		}
		off = next;
	}
}

static bool vars_append(struct my_vars *v, const char *key, const char *value)
{
	size_t kl = strlen(key) + 1, vl = strlen(value) + 1;
	if (v->len + kl + vl > sizeof(v->text))
		return false;
	memcpy(v->text + v->len, key, kl);
	memcpy(v->text + v->len + kl, value, vl);
	v->len = (uint16_t)(v->len + kl + vl);
	return true;
}

static bool vars_equal(const struct my_vars *a, const struct my_vars *b)
{
	size_t la = a ? a->len : 0, lb = b ? b->len : 0;
	return la == lb && (la == 0 || memcmp(a->text, b->text, la) == 0);
}

/* *dst becomes a copy of src (NULL or empty: none). False: out of memory. */
static bool vars_copy(struct my_vars **dst, const struct my_vars *src)
{
	if (!src || !src->len) {
		free(*dst);
		*dst = NULL;
		return true;
	}
	if (!*dst && !(*dst = malloc(sizeof(**dst))))
		return false;
	(*dst)->len = src->len;
	memcpy((*dst)->text, src->text, src->len);
	return true;
}

/* The variables a login sets from the handshake's collation, and those
 * SET NAMES and SET CHARACTER SET change. */
static bool is_charset_key(const char *key)
{
	static const char *const keys[] = {
		"NAMES", "CHARACTER SET", "character_set_client", "character_set_results",
		"character_set_connection", "collation_connection",
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(key, keys[i]) == 0)
			return true;
	return false;
}

/* Is "key = DEFAULT" something else than the session's login value? Then
 * it is remembered as such rather than forgotten. */
static bool default_differs(const char *key)
{
	return is_charset_key(key) || strcmp(key, "wait_timeout") == 0;
}

/* One assignment on top of the list (false: it does not fit). */
static bool vars_set(struct my_vars *v, const char *key, const char *value)
{
	vars_remove(v, key);
	if (strcmp(key, "NAMES") == 0 || strcmp(key, "CHARACTER SET") == 0) {
		static const char *const covered[] = {
			"NAMES", "CHARACTER SET", "character_set_client", "character_set_results",
			"character_set_connection", "collation_connection",
		};
		for (size_t i = 0; i < sizeof(covered) / sizeof(covered[0]); i++)
			vars_remove(v, covered[i]);
	} else if (strcmp(key, "character_set_connection") == 0) {
		vars_remove(v, "collation_connection");
	} else if (strcmp(key, "collation_connection") == 0) {
		vars_remove(v, "character_set_connection");
	}
	if (strcmp(value, "DEFAULT") == 0 && !default_differs(key))
		return true; /* back to the login value: nothing to remember */
	return vars_append(v, key, value);
}

/* COM_RESET_CONNECTION gave the session a character set: MariaDB gives
 * back the handshake's, MySQL the global one. Marked in a server's list
 * by a NAMES value no client can have ("?"): the next restore sets the
 * handshake's again. */
static bool charset_unknown(const struct my_vars *v)
{
	const char *names = vars_find(v, "NAMES");
	return names && strcmp(names, "?") == 0;
}

/* Put the mark first in *v (created if NULL). False: out of memory. */
static bool mark_charset_unknown(struct my_vars **v)
{
	struct my_vars *old = *v;
	struct my_vars *n = malloc(sizeof(*n));
	if (!n)
		return false;
	n->len = 0;
	vars_append(n, "NAMES", "?");
	const char *k, *val;
	for (size_t off = 0; old && off < old->len;) {
		off = pair_at(old, off, &k, &val);
		if (strcmp(k, "NAMES") != 0 && !vars_append(n, k, val)) {
			free(n);
			return false;
		}
	}
	free(old);
	*v = n;
	return true;
}

/* ---- reading the SET statement ---- */

struct lex {
	const char *s;             /* the query text */
	size_t n;                  /* its length */
	size_t i;                  /* the cursor */
};

static bool word_char(char ch)
{
	return isalnum((unsigned char)ch) || ch == '_' || ch == '$';
}

static void blanks(struct lex *l)
{
	while (l->i < l->n && isspace((unsigned char)l->s[l->i]))
		l->i++;
}

/* The keyword w (any case, a whole word) at the cursor: steps over it and
 * the blanks after it. */
static bool keyword(struct lex *l, const char *w)
{
	size_t k = strlen(w);
	if (l->i + k > l->n || strncasecmp(l->s + l->i, w, k) != 0)
		return false;
	if (l->i + k < l->n && word_char(l->s[l->i + k]))
		return false;
	l->i += k;
	blanks(l);
	return true;
}

/* "@@session." or "@@local." after the @@: w and a dot, nothing between. */
static bool scope_dot(struct lex *l, const char *w)
{
	size_t k = strlen(w);
	if (l->i + k >= l->n || strncasecmp(l->s + l->i, w, k) != 0 || l->s[l->i + k] != '.')
		return false;
	l->i += k + 1;
	return true;
}

/* A word (identifier characters) into out, lower case when lower. */
static bool word(struct lex *l, char *out, size_t cap, bool lower)
{
	size_t k = 0;
	while (l->i < l->n && word_char(l->s[l->i])) {
		if (k + 1 >= cap)
			return false;
		char ch = l->s[l->i++];
		out[k++] = lower ? (char)tolower((unsigned char)ch) : ch;
	}
	out[k] = '\0';
	blanks(l);
	return k > 0;
}

/* A literal value as it will be said again: a quoted string (to single
 * quotes; none with a quote, a backslash or a NUL inside, whose reading
 * depends on sql_mode, nor a byte beyond ASCII, whose reading depends on
 * the character set of the session it is said in), a number, or a word
 * (DEFAULT in upper case). */
static bool literal(struct lex *l, char *out, size_t cap)
{
	const char *s = l->s;
	if (l->i < l->n && (s[l->i] == '\'' || s[l->i] == '"')) {
		char q = s[l->i];
		size_t j = l->i + 1, k = 0;
		out[k++] = '\'';
		for (; j < l->n && s[j] != q; j++) {
			if (s[j] == '\'' || s[j] == '\\' || s[j] == '\0' || (s[j] & 0x80) || k + 2 >= cap)
				return false;
			out[k++] = s[j];
		}
		if (j >= l->n || (j + 1 < l->n && s[j + 1] == q))
			return false; /* unterminated, or a doubled quote */
		out[k++] = '\'';
		out[k] = '\0';
		l->i = j + 1;
		blanks(l);
		return true;
	}
	size_t k = 0, j = l->i;
	if (j < l->n && (s[j] == '-' || s[j] == '+'))
		out[k++] = s[j++];
	if (j < l->n && isdigit((unsigned char)s[j])) {
		bool dot = false;
		for (; j < l->n && (isdigit((unsigned char)s[j]) || (s[j] == '.' && !dot)); j++) {
			if (k + 1 >= cap)
				return false;
			dot |= s[j] == '.';
			out[k++] = s[j];
		}
		out[k] = '\0';
		if (j < l->n && word_char(s[j]))
			return false; /* 1e5, 0x1f: not read here */
		l->i = j;
		blanks(l);
		return true;
	}
	if (k)
		return false; /* a sign before a word */
	if (!word(l, out, cap, false))
		return false;
	if (strcasecmp(out, "default") == 0)
		snprintf(out, cap, "DEFAULT");
	return true;
}

/* A character set or collation name after NAMES, CHARACTER SET, COLLATE:
 * a word, quoted or not. */
static bool charset_name(struct lex *l, char *out, size_t cap)
{
	if (l->i < l->n && (l->s[l->i] == '\'' || l->s[l->i] == '"' || l->s[l->i] == '`')) {
		char q = l->s[l->i++];
		size_t k = 0;
		while (l->i < l->n && word_char(l->s[l->i]) && k + 1 < cap)
			out[k++] = l->s[l->i++];
		out[k] = '\0';
		if (!k || l->i >= l->n || l->s[l->i] != q)
			return false;
		l->i++;
		blanks(l);
		return true;
	}
	if (!word(l, out, cap, false))
		return false;
	if (strcasecmp(out, "default") == 0)
		snprintf(out, cap, "DEFAULT");
	return true;
}

/* Names a SET gives that are no session state to move: one-shot
 * variables (insert_id, the random seeds), LAST_INSERT_ID's, those the
 * database switch owns, and SET PASSWORD's "password". */
static bool not_followed(const char *name)
{
	static const char *const names[] = {
		"insert_id", "last_insert_id", "identity", "rand_seed1", "rand_seed2", "character_set_database",
		"collation_database", "gtid_seq_no", "pseudo_thread_id", "password",
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	/* Words the SET syntax owns are no variable (SET @@names = 1 is
	 * refused by the server; the restore could not say it). */
	static const char *const keywords[] = {
		"names", "charset", "character", "global", "session", "local", "persist", "persist_only",
	};
	for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
		if (strcmp(name, keywords[i]) == 0)
			return true;
	return strncmp(name, "session_track_", 14) == 0; /* changes what OK packets carry */
}

/* The value of an assignment whose expression sluice does not evaluate:
 * a marker no literal can be, replaced by what the server says once the
 * SET went through (my_session_learned). */
#define LEARN "\001"

/* An expression up to the end of its item (a ',' or ';' outside brackets
 * and quotes, or the end of the text): CONCAT(@@sql_mode, ',X'). Not one
 * with a user variable, a subquery or a comment. */
static bool expression(struct lex *l)
{
	size_t start = l->i;
	int depth = 0;
	while (l->i < l->n) {
		char ch = l->s[l->i];
		if (ch == '\'' || ch == '"' || ch == '`') {
			size_t j = l->i + 1;
			while (j < l->n && l->s[j] != ch)
				j += l->s[j] == '\\' ? 2 : 1;
			if (j >= l->n)
				return false;
			l->i = j + 1;
			continue;
		}
		if (ch == '@') {
			if (l->i + 1 >= l->n || l->s[l->i + 1] != '@')
				return false; /* a user variable */
			l->i += 2;
			continue;
		}
		if (ch == '#' || (ch == '-' && l->i + 1 < l->n && l->s[l->i + 1] == '-') ||
		    (ch == '/' && l->i + 1 < l->n && l->s[l->i + 1] == '*'))
			return false;
		if ((ch == ',' || ch == ';') && depth == 0)
			break;
		if (ch == '(')
			depth++;
		if (ch == ')' && --depth < 0)
			return false;
		if (word_char(ch) && (l->i == 0 || !word_char(l->s[l->i - 1])) && keyword(l, "select"))
			return false;
		l->i++;
	}
	if (depth || l->i == start)
		return false;
	return true;
}

/* One item of the SET list onto v. False: not one sluice follows. */
static bool item(struct lex *l, struct my_vars *v)
{
	char name[64], value[256];
	if (keyword(l, "global") || keyword(l, "persist") || keyword(l, "persist_only"))
		return false;
	bool scoped = keyword(l, "session") || keyword(l, "local");
	if (!scoped && l->i + 1 < l->n && l->s[l->i] == '@' && l->s[l->i + 1] == '@') {
		l->i += 2;
		if (!scope_dot(l, "session"))
			scope_dot(l, "local");
		scoped = true;
	}
	if (!scoped && keyword(l, "names")) {
		char cs[64], coll[64];
		if (!charset_name(l, cs, sizeof(cs)))
			return false;
		if (keyword(l, "collate")) {
			if (strcmp(cs, "DEFAULT") == 0 || !charset_name(l, coll, sizeof(coll)))
				return false;
			snprintf(value, sizeof(value), "%s COLLATE %s", cs, coll);
		} else {
			snprintf(value, sizeof(value), "%s", cs);
		}
		return vars_set(v, "NAMES", value);
	}
	if (!scoped && (keyword(l, "charset") || (keyword(l, "character") && keyword(l, "set")))) {
		if (!charset_name(l, value, sizeof(value)))
			return false;
		return vars_set(v, "CHARACTER SET", value);
	}
	if (!word(l, name, sizeof(name), true) || not_followed(name))
		return false;
	if (l->i < l->n && l->s[l->i] == '=')
		l->i++;
	else if (l->i + 1 < l->n && l->s[l->i] == ':' && l->s[l->i + 1] == '=')
		l->i += 2;
	else
		return false;
	blanks(l);
	size_t at = l->i;
	if (!literal(l, value, sizeof(value)) || (l->i < l->n && l->s[l->i] != ',' && l->s[l->i] != ';')) {
		/* Not a lone literal: an expression, whose value the server is
		 * asked for after the SET. */
		l->i = at;
		if (strcmp(name, "autocommit") == 0 || !expression(l))
			return false;
		snprintf(value, sizeof(value), "%s", LEARN);
	} else if (strcmp(name, "autocommit") == 0) {
		return true; /* the answer's status flags follow it (my_server.c) */
	}
	return vars_set(v, name, value);
}

bool my_session_screen(struct my_client *c, const uint8_t *payload, uint32_t len)
{
	/* Only a COM_QUERY (a SET in a COM_STMT_PREPARE runs at no PREPARE's
	 * answer), and only a whole packet: one longer than the receive
	 * buffer is screened on its first bytes (my_client.c), and the header
	 * in front of the payload in the client's buffer says the full
	 * length. */
	if (len < 2 || payload[0] != MY_COM_QUERY || my_header_len(payload - MY_HEADER_LEN) != len)
		return false;
	struct lex l = { (const char *)payload + 1, len - 1, 0 };
	blanks(&l);
	if (!keyword(&l, "set"))
		return false;
	struct my_vars *v = c->want_vars;
	if (!v && !(v = malloc(sizeof(*v))))
		return false;
	c->want_vars = v;
	v->len = 0;
	if (c->vars)
		memcpy(v->text, c->vars->text, v->len = c->vars->len);
	for (;;) {
		if (!item(&l, v))
			goto refuse;
		if (l.i < l.n && l.s[l.i] == ',') {
			l.i++;
			blanks(&l);
			continue;
		}
		if (l.i < l.n && l.s[l.i] == ';') {
			l.i++;
			blanks(&l);
		}
		if (l.i != l.n)
			goto refuse;
		return true;
	}
refuse:
	free(c->want_vars);
	c->want_vars = NULL;
	return false;
}

void my_session_answered(struct my_client *c, struct my_server *s, bool ok)
{
	struct my_vars *want = c->want_vars;
	if (!want)
		return;
	c->want_vars = NULL;
	if (!ok) {
		free(want);
		return;
	}
	free(c->vars);
	c->vars = want->len ? want : NULL;
	if (!want->len)
		free(want);
	/* The server was at the client's variables before the SET (it went
	 * first, my_server_link): it is at them after, but for a character
	 * set a COM_RESET_CONNECTION left unknown, unless this SET named one. */
	bool unknown = charset_unknown(s->vars) && !vars_find(c->vars, "NAMES") && !vars_find(c->vars, "CHARACTER SET");
	if (!vars_copy(&s->vars, c->vars))
		s->pinned = true; /* unknown now: reset before anyone else gets it */
	else if (unknown)
		mark_charset_unknown(&s->vars);
}

void my_session_tracked(struct my_server *s, const uint8_t *payload, uint32_t len)
{
	struct my_client *c = s->client;
	struct my_ok ok;
	if (!c || c->pinned || c->want_vars || !(s->caps & MY_CLIENT_SESSION_TRACK) || !s->answer.status_known ||
	    !(s->answer.status & MY_STATUS_SESSION_STATE_CHANGED) || s->answer.command == MY_COM_RESET_CONNECTION ||
	    my_is_eof(payload, len) || my_ok_parse(payload, len, s->caps, &ok) < 0 || !ok.session_state)
		return;
	/* Session state information: entries of a type byte and lenenc
	 * data; SESSION_TRACK_SYSTEM_VARIABLES (0) holds a lenenc name and a
	 * lenenc value. */
	struct my_reader r = my_reader_of(ok.session_state, ok.session_state_len);
	while (my_left(&r)) {
		uint8_t type = my_get_u8(&r);
		uint64_t n, name_len;
		const uint8_t *data = my_get_lenenc_str(&r, &n);
		if (r.err)
			return;
		if (type != 0 || !data)
			continue; /* another kind of state, or a NULL (0xfb) length */
		struct my_reader d = my_reader_of(data, (uint32_t)n);
		const uint8_t *name = my_get_lenenc_str(&d, &name_len);
		if (d.err || !name || (name_len == 10 && strncasecmp((const char *)name, "autocommit", 10) == 0))
			continue; /* the status flags follow autocommit */
		CLOG(c, LOG_LEVEL_DEBUG, "pinned to its server (the server reports %.*s changed)", (int)name_len,
		     (const char *)name);
		c->pinned = true;
		c->pin_why = "a system variable changed by a statement sluice did not read (the server's session tracking)";
		return;
	}
}

void my_session_reset_connection(struct my_client *c, struct my_server *s)
{
	free(c->vars);
	c->vars = NULL;
	free(c->want_vars);
	c->want_vars = NULL;
	my_session_server_clear(s);
	if (!mark_charset_unknown(&s->vars))
		s->pinned = true;
}

/* ---- restoring ---- */

struct out {
	char *p;                   /* the caller's buffer */
	size_t cap, len;           /* its size, bytes written */
	bool full;                 /* sticky: something did not fit */
	bool first;                /* no assignment written yet */
};

static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	if (o->full)
		return;
	if (!o->first && o->len + 2 < o->cap) {
		memcpy(o->p + o->len, ", ", 2);
		o->len += 2;
	}
	o->first = false;
	va_start(ap, fmt);
	int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->cap - o->len)
		o->full = true;
	else
		o->len += (size_t)n;
}

int my_session_restore(const struct my_server *s, const struct my_client *c, char *out, size_t cap)
{
	if (vars_equal(s->vars, c->vars))
		return 0;
	struct out o = { out, cap, 0, cap < 5, true };
	if (!o.full) {
		memcpy(out, "SET ", 4);
		o.len = 4;
	}
	const uint8_t *variant = s->pool->variant;
	unsigned collation = variant ? variant[4] : 45;
	bool charset_reset = false;
	const char *k, *v;
	for (size_t off = 0; s->vars && off < s->vars->len;) {
		off = pair_at(s->vars, off, &k, &v);
		if (vars_find(c->vars, k))
			continue; /* the client's own value follows */
		if (is_charset_key(k)) {
			if (!charset_reset)
				put(&o, "character_set_client=%u, character_set_results=%u, collation_connection=%u",
				    collation, collation, collation);
			charset_reset = true;
		} else if (strcmp(k, "wait_timeout") == 0 && (s->caps & MY_CLIENT_INTERACTIVE)) {
			put(&o, "wait_timeout=@@global.interactive_timeout");
		} else {
			put(&o, "%s=DEFAULT", k);
		}
	}
	for (size_t off = 0; c->vars && off < c->vars->len;) {
		off = pair_at(c->vars, off, &k, &v);
		put(&o, isupper((unsigned char)k[0]) ? "%s %s" : "%s=%s", k, v);
	}
	if (o.full)
		return -1;
	return (int)o.len;
}

bool my_session_restored(struct my_server *s, const struct my_client *c)
{
	return vars_copy(&s->vars, c->vars);
}

void my_session_server_clear(struct my_server *s)
{
	free(s->vars);
	s->vars = NULL;
}

void my_session_client_free(struct my_client *c)
{
	free(c->vars);
	free(c->want_vars);
	c->vars = c->want_vars = NULL;
}

/* ---- values from expressions ---- */

int my_session_learn_query(const struct my_client *c, char *out, size_t cap)
{
	struct out o = { out, cap, 0, cap < 8, true };
	if (!o.full) {
		memcpy(out, "SELECT ", 7);
		o.len = 7;
	}
	const char *k, *v;
	for (size_t off = 0; c->vars && off < c->vars->len;) {
		off = pair_at(c->vars, off, &k, &v);
		if (strcmp(v, LEARN) == 0)
			put(&o, "@@session.%s", k);
	}
	if (o.first)
		return 0;
	if (o.full)
		return -1;
	return (int)o.len;
}

/* v with key's value replaced, in place in the order (false: no room). */
static bool vars_replace(struct my_vars *v, const char *key, const char *value)
{
	struct my_vars old = *v;
	v->len = 0;
	const char *k, *val;
	bool ok = true;
	for (size_t off = 0; off < old.len && ok;) {
		off = pair_at(&old, off, &k, &val);
		ok = vars_append(v, k, strcmp(k, key) == 0 ? value : val);
	}
	return ok;
}

void my_session_learned(struct my_client *c, struct my_server *s, const uint8_t *row, uint32_t len)
{
	struct my_reader r = my_reader_of(row, row ? len : 0);
	const char *why = row ? NULL : "the server did not say what a SET with expressions gave";
	char names[16][64];
	size_t n = 0;
	const char *k, *v;
	for (size_t off = 0; c->vars && off < c->vars->len && n < 16;) {
		off = pair_at(c->vars, off, &k, &v);
		if (strcmp(v, LEARN) == 0)
			snprintf(names[n++], sizeof(names[0]), "%.63s", k);
	}
	for (size_t i = 0; i < n && !why; i++) {
		bool is_null = false;
		uint64_t vl = 0;
		if (my_left(&r) && *r.p == 0xfb) {
			is_null = true;
			r.p++;
		}
		const uint8_t *val = is_null ? NULL : my_get_lenenc_str(&r, &vl);
		char lit[256];
		bool sayable = val && vl + 3 <= sizeof(lit);
		for (uint64_t j = 0; sayable && j < vl; j++)
			sayable = val[j] != '\'' && val[j] != '\\' && val[j] != 0 && !(val[j] & 0x80);
		if (!sayable) {
			why = "a SET with expressions whose value sluice cannot say again";
			break;
		}
		snprintf(lit, sizeof(lit), "'%.*s'", (int)vl, (const char *)val);
		if (!vars_replace(c->vars, names[i], lit))
			why = "session variables beyond what sluice keeps";
	}
	for (size_t off = 0; !why && c->vars && off < c->vars->len;) {
		off = pair_at(c->vars, off, &k, &v);
		if (strcmp(v, LEARN) == 0)
			why = "too many SET expressions at once";
	}
	if (why) {
		CLOG(c, LOG_LEVEL_DEBUG, "pinned to its server (%s)", why);
		c->pinned = true;
		c->pin_why = why;
		s->pinned = true;
		return;
	}
	if (!vars_copy(&s->vars, c->vars))
		s->pinned = true;
}
