/*
 * my_sqlread.h - does a MySQL statement text only read (read_routing,
 * route.h)? A lexical classifier: libpg_query does not parse MySQL.
 *
 * A read is one SELECT (or WITH ... SELECT, or a parenthesized one) that
 * takes no locks (no FOR UPDATE, FOR SHARE, LOCK IN SHARE MODE), writes
 * nowhere (no INTO: OUTFILE, DUMPFILE, @var), uses no user variable (@name,
 * which lives in one server's session) and no session-bound system
 * variable (@@last_insert_id, @@identity, ...; other @@ variables read the
 * same on any server, the session's being restored), no sequence (NEXT
 * VALUE FOR), no SQL_CALC_FOUND_ROWS, and calls only functions of an
 * allowlist of built-ins that neither write nor depend on the session
 * (COUNT, NOW, CONCAT, ...; not GET_LOCK, SLEEP, LAST_INSERT_ID,
 * FOUND_ROWS, NEXTVAL, nor any unknown or stored function). Comments,
 * backquoted names and strings in both quotes are skipped; a text is a
 * read only when it is one both with backslash escapes and without
 * (NO_BACKSLASH_ESCAPES), since the session's sql_mode is not known.
 * Executable comments (slash-star-bang) make a text not a read.
 *
 * Conservative where words cannot tell: a name spelled like a locking or
 * writing keyword (a column `share`, `lock`, `update`, `into`, `delete`)
 * or like a call (WITH RECURSIVE c (n) AS ...) makes a text not a read;
 * a view or a built-in that writes cannot hide behind the allowlist.
 *
 * START TRANSACTION READ ONLY opens a transaction that may go to a
 * standby whole. Everything else (SHOW, SET, DML, DDL, ...) is not a
 * read.
 *
 * Owns: nothing; pure functions.
 */
#ifndef SLUICE_MY_SQLREAD_H
#define SLUICE_MY_SQLREAD_H

#include <stddef.h>

enum my_read_class {
	MY_READ_NO = 0,        /* may write, or unknown: the primary */
	MY_READ_YES,           /* only reads: may go to a standby */
	MY_READ_TX_READ_ONLY,  /* START TRANSACTION READ ONLY */
};

/* The class of the n bytes of statement text s (no NUL needed). */
int my_sql_read_class(const char *s, size_t n);

#endif
