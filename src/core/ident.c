/*
 * ident.c - parser and check for auth_ident_file (PostgreSQL's
 * pg_ident.conf syntax; PgBouncer 1.23+ reads it for map= on peer and
 * cert lines of auth_hba_file).
 *
 * Owns: struct ident_maps (an array of lines; every string and compiled
 * regular expression in it belongs to it). Tokenizing is hba_lex.c's.
 * Must not: log, keep global state, or learn anything about roles.
 *
 * What a line means (PostgreSQL documentation, "User Name Maps"):
 * - MAPNAME SYSTEM-USERNAME DATABASE-USERNAME: the system user may log in
 *   as the database user under that map. A map is every line with its
 *   name; one matching line is enough, and lines are tried in file order.
 * - SYSTEM-USERNAME starting with '/': the rest is a regular expression,
 *   searched in the system user name (not anchored: write ^ and $).
 *   DATABASE-USERNAME may then contain \1, replaced (first occurrence) by
 *   what the first parenthesized subexpression matched; the result is a
 *   plain name. As in PostgreSQL a leading '/' makes a regular expression
 *   even inside quotes, and quoting does not protect \1.
 * - DATABASE-USERNAME "all" (unquoted): any database user (PostgreSQL
 *   16+; PgBouncer supports it too). Starting with '/' (PostgreSQL 16+):
 *   a regular expression the requested user name must match; no \1 then.
 *
 * Where sluice is stricter than PostgreSQL, the file is refused with a
 * FILE:LINE message instead of a line silently meaning something else
 * (a reload then keeps the running maps):
 * - "+group" as DATABASE-USERNAME (sluice does not know role membership;
 *   quote it for the user literally called +group);
 * - include, include_if_exists, include_dir lines (one file is the map);
 * - a comma-separated list in any field, a missing or an extra field;
 * - \1 in DATABASE-USERNAME when the SYSTEM-USERNAME expression has no
 *   parenthesized subexpression (PostgreSQL refuses every login that
 *   reaches such a line; this is found at load time instead).
 * PgBouncer itself (1.23-1.25) supports neither regular expressions nor
 * "/" database user names; sluice supports both, as PostgreSQL does.
 *
 * Regular expressions: POSIX extended syntax (regcomp with REG_EXTENDED,
 * glibc), matched byte by byte (sluice runs in the C locale), where
 * PostgreSQL uses its own "advanced" flavour (ARE) on characters. The
 * common subset (literals, . [] [^] [[:alpha:]] * + ? {n,m} | () ^ $)
 * means the same. Not available here: \d \D (write [0-9] or [[:digit:]];
 * glibc does accept \w \W \s \S \b \< \>), non-greedy quantifiers (*? +?),
 * lookahead (?=...) and (?!...), embedded options (?i), ARE escapes such as
 * \m \M \y \A \Z \t \uXXXX, and a backslash inside [] is a literal
 * backslash. POSIX takes the leftmost-longest match, so in rare patterns
 * \1 may capture a different part than PostgreSQL's would. A '.' matches
 * one byte of a multibyte UTF-8 character.
 */
#include "ident.h"
#include "hba_lex.h"

#include <errno.h>
#include <regex.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* struct ident_line.flags */
#define IDENT_SYS_REGEX 0x1u  /* system user is a regular expression (sys_re) */
#define IDENT_DB_ALL    0x2u  /* database user keyword all */
#define IDENT_DB_REGEX  0x4u  /* database user is a regular expression (db_re) */
#define IDENT_DB_SUBST  0x8u  /* database user has \1 at subst_at, to be replaced */

/* One record of the file. */
struct ident_line {
	int line_no;                 /* first physical line of the record, 1-based */
	unsigned flags;              /* IDENT_* */
	char *map;                   /* map name; owned */
	char *sys;                   /* system user as written (regex: with the '/'); owned */
	char *db;                    /* database user as written; owned */
	size_t subst_at;             /* IDENT_DB_SUBST: offset of "\1" in db */
	regex_t sys_re;              /* IDENT_SYS_REGEX: compiled sys + 1 */
	regex_t db_re;               /* IDENT_DB_REGEX: compiled db + 1 */
};

struct ident_maps {
	struct ident_line *lines;    /* records in file order; owned */
	size_t n_lines;              /* used entries of lines */
	size_t cap_lines;            /* allocated entries of lines */
};

/* The parse of one ident_parse call. Heap allocated (the lexer's buffers). */
struct ident_parser {
	struct hba_lex lx;           /* tokenizer over the file's text */
	struct ident_maps *m;        /* maps being built, owned until returned */
};

static void line_clear(struct ident_line *l)
{
	if (l->flags & IDENT_SYS_REGEX)
		regfree(&l->sys_re);
	if (l->flags & IDENT_DB_REGEX)
		regfree(&l->db_re);
	free(l->map);
	free(l->sys);
	free(l->db);
}

void ident_free(struct ident_maps *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_lines; i++)
		line_clear(&m->lines[i]);
	free(m->lines);
	free(m);
}

size_t ident_line_count(const struct ident_maps *m)
{
	return m ? m->n_lines : 0;
}

/* ---- parsing ------------------------------------------------------------ */

/* Most bytes a pattern may stand for once its bounds are expanded (see
 * too_complex). */
#define IDENT_RE_MAX_SIZE 4096
/* Largest {n,m} bound: PostgreSQL's limit (DUPMAX) too. */
#define IDENT_RE_MAX_BOUND 255
/* Deepest nesting of parentheses. */
#define IDENT_RE_MAX_DEPTH 32

/* glibc's regcomp builds its automaton by copying a bounded or repeated
 * piece once per repetition, so a short pattern such as ((a{99}){99}){99}
 * or a+++++... costs gigabytes. Estimate the expanded size and refuse
 * what is too big, a bound over 255 (as PostgreSQL does) and a quantifier
 * applied to a quantifier (an error in PostgreSQL too, where *? +? ??
 * mean non-greedy matching, which POSIX lacks). Returns the reason or
 * NULL. Parsing is rough: what it does not understand, regcomp judges. */
static const char *too_complex(const char *re)
{
	size_t seq[IDENT_RE_MAX_DEPTH + 1] = { 0 }; /* size so far at each open group */
	size_t last = 0;                          /* size of the atom a quantifier would repeat */
	bool after_quant = false;                 /* the previous token was a quantifier */
	int depth = 0;

	for (size_t i = 0; re[i]; i++) {
		char c = re[i];
		size_t atom = 1;

		if (c == '*' || c == '+' || c == '?' || (c == '{' && re[i + 1] >= '0' && re[i + 1] <= '9')) {
			unsigned long lo = 0, hi;
			char *end;

			if (after_quant)
				return "a quantifier follows a quantifier";
			after_quant = true;
			if (c != '{') {
				/* at most doubles what the automaton holds */
				seq[depth] += last;
				last *= 2;
			} else {
				lo = strtoul(re + i + 1, &end, 10);
				hi = lo;
				if (*end == ',')
					hi = end[1] == '}' ? lo + 1 : strtoul(end + 1, &end, 10);
				if (lo > IDENT_RE_MAX_BOUND || hi > IDENT_RE_MAX_BOUND + 1)
					return "a {n,m} bound over 255";
				end = strchr(re + i, '}');
				if (!end)
					return NULL; /* regcomp reports it */
				i = (size_t)(end - re);
				if (hi < 1)
					hi = 1;
				seq[depth] += last * (hi - 1);
				last *= hi;
			}
			if (seq[depth] > IDENT_RE_MAX_SIZE)
				return "too large once its repetitions are expanded";
			continue;
		}
		after_quant = false;
		if (c == '(') {
			if (++depth > IDENT_RE_MAX_DEPTH)
				return "parentheses nested too deep";
			seq[depth] = 0;
			continue;
		}
		if (c == ')' && depth > 0) {
			atom = seq[depth--] + 1;
		} else if (c == '\\' && re[i + 1]) {
			i++;
		} else if (c == '[') {
			/* a bracket expression is one atom: skip to its ']' (one
			 * right after [ or [^ is a member), over [:class:] too */
			i++;
			if (re[i] == '^')
				i++;
			if (re[i] == ']')
				i++;
			while (re[i] && re[i] != ']') {
				if (re[i] == '[' && (re[i + 1] == ':' || re[i + 1] == '.' || re[i + 1] == '=')) {
					const char *close = strstr(re + i + 2, (char[]){ re[i + 1], ']', 0 });
					if (close)
						i = (size_t)(close - re) + 1;
				}
				if (re[i] && re[i] != ']')
					i++;
			}
			if (!re[i])
				return NULL; /* regcomp reports it */
		}
		seq[depth] += atom;
		last = atom;
		if (seq[depth] > IDENT_RE_MAX_SIZE)
			return "too large once its repetitions are expanded";
	}
	return NULL;
}

/* Compile pattern (without its '/') into *re; a bad one fails the line. */
static int compile(struct ident_parser *p, regex_t *re, const char *pattern)
{
	char e[HBA_ECHO_MAX + 4], why[128];
	const char *complex = too_complex(pattern);

	if (complex)
		return hba_lex_fail(&p->lx, -EINVAL, "regular expression \"%s\" refused: %s",
				    hba_lex_echo(pattern, e), complex);
	int rc = regcomp(re, pattern, REG_EXTENDED);

	if (rc == 0)
		return 0;
	if (rc == REG_ESPACE)
		return hba_lex_fail(&p->lx, -ENOMEM, "out of memory");
	regerror(rc, NULL, why, sizeof(why));
	return hba_lex_fail(&p->lx, -EINVAL, "invalid regular expression \"%s\": %s",
			    hba_lex_echo(pattern, e), why);
}

/* The next field, which must be one item (what names it). */
static int field(struct ident_parser *p, struct hba_token *t, const char *what, char **out)
{
	int rc = hba_lex_need(&p->lx, t, what);

	if (rc < 0)
		return rc;
	if (t->more)
		return hba_lex_fail(&p->lx, -EINVAL, "%s is a comma-separated list (one name a line)", what);
	*out = strdup(t->text);
	if (!*out)
		return hba_lex_fail(&p->lx, -ENOMEM, "out of memory");
	return 0;
}

/* The fields of one record into *l (already zeroed; l owns what it got
 * even on failure). */
static int parse_fields(struct ident_parser *p, struct hba_token *t, struct ident_line *l)
{
	char e[HBA_ECHO_MAX + 4];
	const char *subst;
	bool db_quoted;
	int rc;

	if (t->more)
		return hba_lex_fail(&p->lx, -EINVAL, "the map name is a comma-separated list (one name a line)");
	l->map = strdup(t->text);
	if (!l->map)
		return hba_lex_fail(&p->lx, -ENOMEM, "out of memory");
	bool include = !t->quoted && (strcmp(l->map, "include") == 0 || strcmp(l->map, "include_if_exists") == 0 ||
				      strcmp(l->map, "include_dir") == 0);
	rc = field(p, t, "the system user name", &l->sys);
	if (rc < 0)
		return rc;
	rc = hba_lex_next(&p->lx, t);
	if (rc < 0)
		return rc;
	if (rc == 0 && include)
		return hba_lex_fail(&p->lx, -EINVAL, "\"%s\" is not supported (put all map lines in this one file)", l->map);
	if (rc == 0)
		return hba_lex_fail(&p->lx, -EINVAL, "end of line before the database user name");
	if (t->more)
		return hba_lex_fail(&p->lx, -EINVAL, "the database user name is a comma-separated list (one name a line)");
	db_quoted = t->quoted;
	l->db = strdup(t->text);
	if (!l->db)
		return hba_lex_fail(&p->lx, -ENOMEM, "out of memory");
	rc = hba_lex_next(&p->lx, t);
	if (rc < 0)
		return rc;
	if (rc > 0)
		return hba_lex_fail(&p->lx, -EINVAL, "extra field \"%s\" after the database user name",
				    hba_lex_echo(t->text, e));

	if (l->sys[0] == '/') {
		rc = compile(p, &l->sys_re, l->sys + 1);
		if (rc < 0)
			return rc;
		l->flags |= IDENT_SYS_REGEX;
	}
	if (!db_quoted && strcmp(l->db, "all") == 0) {
		l->flags |= IDENT_DB_ALL;
	} else if (!db_quoted && l->db[0] == '+') {
		return hba_lex_fail(&p->lx, -EINVAL, "group \"%s\" is not supported (sluice does not know role membership)",
				    hba_lex_echo(l->db, e));
	} else if (l->db[0] == '/') {
		rc = compile(p, &l->db_re, l->db + 1);
		if (rc < 0)
			return rc;
		l->flags |= IDENT_DB_REGEX;
	} else if ((l->flags & IDENT_SYS_REGEX) && (subst = strstr(l->db, "\\1")) != NULL) {
		if (l->sys_re.re_nsub < 1)
			return hba_lex_fail(&p->lx, -EINVAL, "\"%s\" uses \\1 but the regular expression \"%s\" has no parenthesized subexpression",
					    l->db, hba_lex_echo(l->sys + 1, e));
		l->flags |= IDENT_DB_SUBST;
		l->subst_at = (size_t)(subst - l->db);
	}
	return 0;
}

/* The logical line in p->lx: nothing for a blank or comment line, else
 * one line appended to p->m. */
static int parse_record(struct ident_parser *p)
{
	struct hba_token t;
	struct ident_line l;
	void *lines = p->m->lines;
	int rc;

	rc = hba_lex_next(&p->lx, &t);
	if (rc <= 0)
		return rc;
	memset(&l, 0, sizeof(l));
	l.line_no = p->lx.line_no;
	rc = parse_fields(p, &t, &l);
	if (rc == 0) {
		rc = hba_lex_grow(&lines, &p->m->cap_lines, p->m->n_lines + 1, sizeof(*p->m->lines));
		p->m->lines = lines;
		if (rc < 0)
			rc = hba_lex_fail(&p->lx, rc, "out of memory");
	}
	if (rc < 0) {
		line_clear(&l);
		return rc;
	}
	p->m->lines[p->m->n_lines++] = l;
	return 0;
}

int ident_parse(const char *text, size_t len, const char *file_name,
		struct ident_maps **out, char *err, size_t errlen)
{
	struct ident_parser *p;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!file_name)
		file_name = "ident";
	if (!text && len) {
		hba_lex_set_err(err, errlen, "%s: no text", file_name);
		return -EINVAL;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		hba_lex_set_err(err, errlen, "%s: out of memory", file_name);
		return -ENOMEM;
	}
	hba_lex_init(&p->lx, text, len, file_name, err, errlen);
	p->m = calloc(1, sizeof(*p->m));
	if (!p->m) {
		rc = hba_lex_fail(&p->lx, -ENOMEM, "out of memory");
		goto out;
	}
	while ((rc = hba_lex_line(&p->lx)) > 0) {
		rc = parse_record(p);
		if (rc < 0)
			goto out;
	}
	if (rc < 0)
		goto out;
	*out = p->m;
	p->m = NULL;
out:
	ident_free(p->m);
	free(p);
	return rc;
}

int ident_load(const char *path, struct ident_maps **out, char *err, size_t errlen)
{
	char *buf;
	size_t len;
	int rc = hba_lex_read_file(path, &buf, &len, err, errlen);

	if (rc < 0) {
		if (out)
			*out = NULL;
		return rc;
	}
	rc = ident_parse(buf, len, path, out, err, errlen);
	free(buf);
	return rc;
}

/* ---- checking ----------------------------------------------------------- */

bool ident_has_map(const struct ident_maps *m, const char *name)
{
	if (!m || !name)
		return false;
	for (size_t i = 0; i < m->n_lines; i++)
		if (strcmp(m->lines[i].map, name) == 0)
			return true;
	return false;
}

/* Is db_user the line's database user with \1 replaced by
 * sys[cap->rm_so .. cap->rm_eo)? Compared in pieces, nothing allocated. */
static bool subst_equals(const struct ident_line *l, const char *sys, const regmatch_t *cap,
			 const char *db_user)
{
	size_t pre = l->subst_at, mid = (size_t)(cap->rm_eo - cap->rm_so);
	const char *post = l->db + l->subst_at + 2;

	if (strlen(db_user) != pre + mid + strlen(post))
		return false;
	return memcmp(db_user, l->db, pre) == 0 && memcmp(db_user + pre, sys + cap->rm_so, mid) == 0 &&
	       strcmp(db_user + pre + mid, post) == 0;
}

/* 1: the line pairs the two names; 0: it does not; -1: it cannot say
 * (\1 refers to a subexpression that took no part in the match), which
 * stops the search as in PostgreSQL. */
static int line_allows(const struct ident_line *l, const char *sys, const char *db_user)
{
	regmatch_t cap[2];

	if (l->flags & IDENT_SYS_REGEX) {
		if (regexec(&l->sys_re, sys, 2, cap, 0) != 0)
			return 0;
	} else if (strcmp(l->sys, sys) != 0) {
		return 0;
	}
	if (l->flags & IDENT_DB_ALL)
		return 1;
	if (l->flags & IDENT_DB_REGEX)
		return regexec(&l->db_re, db_user, 0, NULL, 0) == 0;
	if (l->flags & IDENT_DB_SUBST) {
		if (cap[1].rm_so < 0)
			return -1;
		return subst_equals(l, sys, &cap[1], db_user);
	}
	return strcmp(l->db, db_user) == 0;
}

bool ident_allows(const struct ident_maps *m, const char *map, const char *system_user,
		  const char *db_user, int *line_no)
{
	if (line_no)
		*line_no = 0;
	if (!system_user || !db_user)
		return false;
	if (!map || !map[0])
		return strcmp(system_user, db_user) == 0;
	if (!m)
		return false;
	for (size_t i = 0; i < m->n_lines; i++) {
		const struct ident_line *l = &m->lines[i];
		int ok;

		if (strcmp(l->map, map) != 0)
			continue;
		ok = line_allows(l, system_user, db_user);
		if (ok < 0)
			return false;
		if (ok) {
			if (line_no)
				*line_no = l->line_no;
			return true;
		}
	}
	return false;
}
