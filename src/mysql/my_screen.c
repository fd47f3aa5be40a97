/*
 * my_screen.c - what a MySQL client's query text says to the pooler,
 * read lexically before it is forwarded: a USE that moves the client, a
 * SET autocommit sluice follows, and what pins the client to its server
 * (docs/behaviour.md, "MySQL").
 */
#include "my_conn.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"

static bool is_word_char(char ch)
{
	return isalnum((unsigned char)ch) || ch == '_' || ch == '$';
}

/* Is the word w (any case) at s[*i]? Steps over it when it is. */
static bool word_at(const char *s, size_t n, size_t *i, const char *w)
{
	size_t k = strlen(w);
	if (*i + k > n || strncasecmp(s + *i, w, k) != 0)
		return false;
	if (*i + k < n && is_word_char(s[*i + k]))
		return false;
	*i += k;
	return true;
}

static void skip_blanks(const char *s, size_t n, size_t *i)
{
	while (*i < n && isspace((unsigned char)s[*i]))
		(*i)++;
}

/* Is w (lower case) a whole word somewhere in the n bytes of s? */
static bool contains_word(const char *s, size_t n, const char *w)
{
	size_t k = strlen(w);
	for (size_t i = 0; i + k <= n; i++)
		if ((i == 0 || !is_word_char(s[i - 1])) && strncasecmp(s + i, w, k) == 0 &&
		    (i + k == n || !is_word_char(s[i + k])))
			return true;
	return false;
}

/* A user variable (@name; @@name is a system variable, which a SELECT
 * only reads). */
static bool has_user_variable(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '@')
			continue;
		if (i + 1 < n && s[i + 1] == '@') {
			i++; /* @@: skip both */
			continue;
		}
		return true;
	}
	return false;
}

/* "SET [SESSION] autocommit = 0|1|ON|OFF|TRUE|FALSE" alone (drivers send it
 * at connect: PyMySQL, Connector/J): sluice sets it on each server the
 * client gets, instead of pinning. */
static bool sets_autocommit_only(const char *s, size_t n)
{
	static const char *const values[] = { "0", "1", "on", "off", "true", "false" };
	size_t i = 0;
	skip_blanks(s, n, &i);
	if (!word_at(s, n, &i, "set"))
		return false;
	skip_blanks(s, n, &i);
	if (i + 2 <= n && s[i] == '@' && s[i + 1] == '@')
		i += 2;
	size_t j = i;
	if (word_at(s, n, &j, "session") && j < n && s[j] == '.')
		i = j + 1;
	else if (word_at(s, n, &i, "session"))
		skip_blanks(s, n, &i);
	if (!word_at(s, n, &i, "autocommit"))
		return false;
	skip_blanks(s, n, &i);
	if (i >= n || s[i] != '=')
		return false;
	i++;
	skip_blanks(s, n, &i);
	bool value = false;
	for (size_t k = 0; k < sizeof(values) / sizeof(values[0]) && !value; k++)
		value = word_at(s, n, &i, values[k]);
	if (!value)
		return false;
	skip_blanks(s, n, &i);
	if (i < n && s[i] == ';')
		i++;
	skip_blanks(s, n, &i);
	return i == n;
}

/* What SHOW PINS says for a word of my_screen_query's lists. */
static const char *my_screen_pin_reason(const char *why)
{
	static const struct {
		const char *word, *reason;
	} reasons[] = {
		{ "@", "user variable (@name)" },
		{ "set", "SET that sluice does not follow (an expression, GLOBAL, TRANSACTION, STATEMENT, "
			 "a one-shot variable, or with another statement)" },
		{ "lock", "LOCK TABLES" },
		{ "prepare", "PREPARE (a prepared statement in the session)" },
		{ "execute", "EXECUTE" },
		{ "deallocate", "DEALLOCATE PREPARE" },
		{ "handler", "HANDLER (an open table handler)" },
		{ "xa", "XA transaction" },
		{ "use", "USE in a multi-statement query" },
		{ "flush", "FLUSH" },
		{ "load", "LOAD" },
		{ "temporary", "temporary table" },
		{ "get_lock", "GET_LOCK (a named lock)" },
		{ "release_lock", "RELEASE_LOCK (a named lock)" },
		{ "found_rows", "FOUND_ROWS()" },
		{ "sql_calc_found_rows", "SQL_CALC_FOUND_ROWS" },
		{ "LAST_INSERT_ID(expr)", "LAST_INSERT_ID(expr) (sets the session's value)" },
	};
	for (size_t k = 0; k < sizeof(reasons) / sizeof(reasons[0]); k++)
		if (strcmp(why, reasons[k].word) == 0)
			return reasons[k].reason;
	return why;
}

/* LAST_INSERT_ID() (or @@last_insert_id, @@identity) read: 1; written
 * with LAST_INSERT_ID(expr): 2; neither: 0. */
int my_screen_insert_id_use(const char *s, size_t n)
{
	static const char w[] = "last_insert_id";
	int use = contains_word(s, n, "identity") ? 1 : 0;
	for (size_t i = 0; i + sizeof(w) - 1 <= n; i++) {
		if ((i && is_word_char(s[i - 1])) || strncasecmp(s + i, w, sizeof(w) - 1) != 0)
			continue;
		size_t j = i + sizeof(w) - 1;
		if (j < n && is_word_char(s[j]))
			continue;
		use = use ? use : 1;
		skip_blanks(s, n, &j);
		if (j < n && s[j] == '(') {
			j++;
			skip_blanks(s, n, &j);
			if (j < n && s[j] != ')')
				return 2;
		}
	}
	return use;
}

/* COM_QUERY: "USE name" moves the client to a database sluice follows;
 * statements whose effect outlives the transaction pin the client to its
 * server: those that begin with one of first_words (at the start or after
 * any ';'), and any text with one of any_words or a user variable ('@').
 * Lexical and conservative: quotes and comments are not parsed, so a word
 * inside a string counts too (docs/behaviour.md, "MySQL"). */
void my_screen_query(struct my_client *c, const uint8_t *payload, uint32_t len)
{
	static const char *const first_words[] = {
		"set", "lock", "prepare", "execute", "deallocate", "handler", "xa", "use", "flush", "load",
	};
	static const char *const any_words[] = {
		"temporary", "get_lock", "found_rows", "sql_calc_found_rows", "release_lock",
	};
	const char *s = (const char *)payload + 1;
	size_t n = len - 1, i = 0;
	skip_blanks(s, n, &i);
	if (sets_autocommit_only(s, n))
		return; /* the answer's status flags say what the session has now */
	if (my_session_screen(c, payload, len))
		return; /* session variables follow the client (my_session.c) */
	if (word_at(s, n, &i, "use")) {
		skip_blanks(s, n, &i);
		char name[64];
		size_t k = 0;
		bool quoted = i < n && s[i] == '`';
		if (quoted)
			i++;
		while (i < n && k + 1 < sizeof(name) && (quoted ? s[i] != '`' : is_word_char(s[i])))
			name[k++] = s[i++];
		name[k] = '\0';
		if (quoted && i < n)
			i++;
		skip_blanks(s, n, &i);
		if (i < n && s[i] == ';')
			i++;
		skip_blanks(s, n, &i);
		if (k && i == n) {
			snprintf(c->want_schema, sizeof(c->want_schema), "%s", name);
			return;
		}
	}
	const char *why = has_user_variable(s, n) ? "@" : NULL;
	int insert_id = my_screen_insert_id_use(s, n);
	if (insert_id == 2)
		why = "LAST_INSERT_ID(expr)";
	else if (insert_id == 1)
		c->reads_insert_id = true; /* the client's value is set first */
	for (size_t k = 0; !why && k < sizeof(any_words) / sizeof(any_words[0]); k++)
		if (contains_word(s, n, any_words[k]))
			why = any_words[k];
	for (size_t at = 0; !why && at <= n;) {
		size_t j = at;
		skip_blanks(s, n, &j);
		for (size_t k = 0; k < sizeof(first_words) / sizeof(first_words[0]); k++) {
			size_t p = j;
			if (word_at(s, n, &p, first_words[k])) {
				why = first_words[k];
				break;
			}
		}
		const char *semi = memchr(s + at, ';', n - at);
		at = semi ? (size_t)(semi - s) + 1 : n + 1;
	}
	if (why && !c->pinned) {
		CLOG(c, LOG_LEVEL_DEBUG, "pinned to its server (\"%s\")", why);
		c->pinned = true;
		c->pin_why = my_screen_pin_reason(why);
	}
}


bool my_query_is_kill(const uint8_t *text, size_t n)
{
	size_t i = 0;
	skip_blanks((const char *)text, n, &i);
	return word_at((const char *)text, n, &i, "kill");
}
