/*
 * sqlshape.h - the shape of a simple query: its text with each plain
 * integer literal turned into a parameter ($1, $2, ... in order), so that
 * a decision made once over the shape serves every text of that shape
 * (`... WHERE aid = 17` and `... WHERE aid = 4242`), with the literals as
 * the parameters' values. A lexical scan, no parse: it takes only texts it
 * can read without doubt, and says no to the rest.
 *
 * A plain integer literal is a run of decimal digits with no sign before
 * it (a unary + or -, which PostgreSQL folds into the constant), and no
 * letter, digit, '_' or '.' on either side and no ':' after it (a cast, a
 * decimal number, a name). Texts with quotes, dollar signs, backslashes or
 * comments are not shaped at all: where a literal starts and ends there
 * takes the real lexer.
 *
 * Owns: nothing. Must not: allocate, or know what the text means.
 */
#ifndef SLUICE_SQLSHAPE_H
#define SLUICE_SQLSHAPE_H

#include <stddef.h>
#include <stdint.h>

/* The most literals a shape turns into parameters; a text with more is
 * not shaped. */
#define SQL_SHAPE_MAX_LITERALS 32

struct sql_literal {
	uint32_t off, len; /* in the original text */
};

/* Write the shape of sql (len bytes) into out (cap bytes, NUL-terminated)
 * and its literals into lits (at most SQL_SHAPE_MAX_LITERALS). Returns the
 * number of literals, or -1 when the text cannot be shaped (see above) or
 * its shape does not fit. */
int sql_shape(const char *sql, size_t len, char *out, size_t cap, struct sql_literal *lits);

#endif
