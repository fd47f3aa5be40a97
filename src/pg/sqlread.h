/*
 * sqlread.h - does a SQL text only read? The answer lets sluice send it to
 * a streaming standby (read_routing). PostgreSQL's own grammar decides
 * (sqlparse.h, libpg_query), not words; a cheap lexical prescreen keeps
 * INSERT/UPDATE/... traffic away from the parser.
 *
 * "Only reads" is decided from the text alone, so it is conservative: a
 * SELECT whose every function call is a known read-only built-in, with no
 * locking clause, no INTO and no data-modifying WITH; SHOW; EXPLAIN of
 * such a SELECT. What the text cannot show is not seen: a view or a
 * user-defined operator or cast that calls a writing function. A standby
 * refuses any write ("cannot execute ... in a read-only transaction"), so
 * such a miss fails the statement; it never writes in the wrong place.
 *
 * Owns: nothing beyond a call.
 * Must not: do I/O, or know about clients, servers or routing policy.
 */
#ifndef SLUICE_SQLREAD_H
#define SLUICE_SQLREAD_H

#include <stdbool.h>
#include <stddef.h>

enum sql_read_class {
	SQL_READ_NO = 0,       /* may write, or unknown: goes to the primary */
	SQL_READ_YES,          /* only reads: may go to a standby */
	SQL_READ_TX_READ_ONLY, /* opens a transaction declared READ ONLY (BEGIN /
				* START TRANSACTION ... READ ONLY), and whatever
				* follows in the same text only reads or ends it
				* (COMMIT, END, ROLLBACK): the whole transaction
				* may go to a standby */
};

/* The class of len bytes of SQL (no NUL needed; a NUL before the last
 * byte: SQL_READ_NO). Never fails: a text that does not parse, is empty
 * or only comments, or meets no memory is SQL_READ_NO. */
int sql_read_class(const char *sql, size_t len);

/* The prescreen alone: false means certainly SQL_READ_NO (the first word,
 * past blanks, comments and opening parentheses, is not SELECT, WITH,
 * VALUES, TABLE, SHOW, EXPLAIN, BEGIN or START). */
bool sql_read_worth_parsing(const char *sql, size_t len);

/* Is name (lower case, as the parser leaves an unquoted name) a built-in
 * function known to only read, called unqualified or as pg_catalog.name? */
bool sql_read_builtin(const char *name);

/* The allowlist itself, sorted by strcmp (for the unit test). */
const char *const *sql_read_builtins(size_t *n);

const char *sql_read_class_name(int cls);

#endif
