/*
 * hba_lex.h - the lexical layer shared by auth_hba_file (pg_hba.conf
 * syntax, hba.c) and auth_ident_file (pg_ident.conf syntax, ident.c):
 * reading the file, joining backslash-continued lines, and cutting a line
 * into fields of comma-separated, possibly quoted items. PostgreSQL reads
 * both files with one tokenizer, so sluice does too.
 *
 * Owns: struct hba_lex (one pass over one text) and its error message.
 * Must not: give any token a meaning (keywords are the parsers' business),
 * log, or keep global state.
 *
 * Lexical rules (PostgreSQL documentation, "The pg_hba.conf File"):
 * - One record per line. A line ending in a backslash continues on the next
 *   one (PostgreSQL 15+), also inside quotes and comments; errors name the
 *   first line of the record. A logical line is at most HBA_MAX_LINE bytes.
 * - '#' outside double quotes starts a comment, also in the middle of a
 *   word ("db#x" is "db").
 * - Fields are separated by spaces, tabs (and \r, \f, \v). A field is a
 *   comma-separated list; blanks after a comma continue the same list, so
 *   "db1, db2" is one field with two names, as in PostgreSQL; blanks before
 *   a comma do too ("u1 , u2"), as in PgBouncer.
 * - Double quotes protect blanks, commas and '#'; "" inside quotes is one
 *   quote character. The token records that it was quoted, so that the
 *   parsers can treat a quoted keyword as a plain name.
 */
#ifndef SLUICE_HBA_LEX_H
#define SLUICE_HBA_LEX_H

#include <stdbool.h>
#include <stddef.h>

/* Longest logical line (after joining "\"-continued lines), in bytes. */
#define HBA_MAX_LINE 8192
/* Largest file hba_lex_read_file reads, in bytes. */
#define HBA_MAX_FILE (64 * 1024 * 1024)
/* Longest piece of a token echoed back in an error message. */
#define HBA_ECHO_MAX 64

/* One pass over one file's text. Large (two line buffers): allocate it on
 * the heap, inside the parser's own state. */
struct hba_lex {
	const char *file;            /* file name for messages, never NULL */
	int line_no;                 /* first physical line of the current record, 1-based */
	char *err;                   /* caller's message buffer, may be NULL */
	size_t errlen;               /* its size */
	const char *text;            /* the whole file, not NUL-terminated; caller's */
	size_t len;                  /* bytes in text */
	size_t text_pos;             /* next unread byte of text */
	int phys;                    /* physical lines consumed so far */
	char line[HBA_MAX_LINE + 1]; /* current logical line (continuations joined) */
	size_t line_len;             /* bytes in line */
	size_t pos;                  /* tokenizer position in line */
	char tok[HBA_MAX_LINE + 1];  /* unquoted text of the current token */
};

/* One comma-separated item of a field, as hba_lex_next returns it. */
struct hba_token {
	const char *text;            /* NUL-terminated, in hba_lex.tok; valid until the next token */
	size_t len;                  /* strlen(text), at least 1 */
	bool quoted;                 /* had a double quote somewhere: never a keyword */
	bool more;                   /* ended with ',': the next token is in the same field */
};

/* Start a pass over text[0..len). file (may be NULL) only appears in
 * messages; err (may be NULL) receives "FILE:LINE: what is wrong". */
void hba_lex_init(struct hba_lex *lx, const char *text, size_t len, const char *file,
		  char *err, size_t errlen);

/* The next logical line into lx->line (blank and comment lines included).
 * Returns 1, 0 at the end of the text, or -EINVAL (NUL byte, line too long). */
int hba_lex_line(struct hba_lex *lx);

/* The next item of the current line into *t. Returns 1 for a token, 0 at
 * the end of the line (or a comment), -EINVAL for an unterminated quote, an
 * empty item or a list ending in a comma. After a token with t->more set,
 * the next call returns 1 (the list's next item) or an error, never 0. */
int hba_lex_next(struct hba_lex *lx, struct hba_token *t);

/* The first item of the next field, which must exist ("what" names it in
 * the message). Returns 0 or -EINVAL. */
int hba_lex_need(struct hba_lex *lx, struct hba_token *t, const char *what);

/* t is the unquoted keyword kw. */
bool hba_lex_is_kw(const struct hba_token *t, const char *kw);

/* Write "FILE:LINE: message" (the current record's line) and return rc. */
int hba_lex_fail(struct hba_lex *lx, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Write a message without a line number into err (may be NULL). */
void hba_lex_set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Printable copy of the start of s for a message: control bytes become
 * '?', so a hostile file cannot forge log lines; long text ends in "...". */
const char *hba_lex_echo(const char *s, char buf[HBA_ECHO_MAX + 4]);

/* Make room for need elements of size elem in *bufp (a T **, capacity
 * *cap). Returns 0 or -ENOMEM (then *bufp is unchanged). */
int hba_lex_grow(void *bufp, size_t *cap, size_t need, size_t elem);

/* Read the whole file at path (at most HBA_MAX_FILE bytes) into a new heap
 * block *buf (not NUL-terminated; free() it) of *len bytes. Returns 0, or
 * a negative errno (open/read error, -EFBIG, -ENOMEM; -EINVAL for a
 * NULL path) with err saying "PATH: what". */
int hba_lex_read_file(const char *path, char **buf, size_t *len, char *err, size_t errlen);

#endif
