/*
 * sqlinfo.h - what a SQL text does beyond its own transaction, read with
 * PostgreSQL's own grammar (libpg_query, PostgreSQL 15): session settings
 * it changes (SET, RESET, DISCARD ALL, set_config(..., false)), things that
 * bind it to one server session (temporary objects, LISTEN, session
 * advisory locks, WITH HOLD cursors, SQL-level PREPARE, LOAD), prepared
 * statement commands (DEALLOCATE, EXECUTE) and code sluice cannot see
 * into (DO, CALL).
 *
 * Parsing costs microseconds, so texts are first screened by a lexical
 * scan (sql_worth_parsing) that is cheap and conservative: it says yes to
 * every text that could matter, and no to ordinary SELECT/INSERT/UPDATE/
 * DELETE traffic. The parse tree, not the words, decides.
 *
 * Owns: struct sql_info (heap, reference counted: a prepared statement,
 * its portal and the answers still to come share one).
 * Must not: do I/O, or know about clients and servers.
 */
#ifndef SLUICE_SQLINFO_H
#define SLUICE_SQLINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Why a text binds its client to one server session (first reason found). */
enum sql_pin {
	SQL_PIN_NONE = 0,
	SQL_PIN_TEMP,        /* temporary table, view, sequence, function (pg_temp) */
	SQL_PIN_LISTEN,      /* LISTEN */
	SQL_PIN_ADVISORY,    /* session-level advisory lock */
	SQL_PIN_HOLD_CURSOR, /* DECLARE ... WITH HOLD */
	SQL_PIN_PREPARE,     /* SQL-level PREPARE */
	SQL_PIN_LOAD,        /* LOAD of a shared library */
	SQL_PIN_SETTING,     /* a setting change sluice cannot replay */
	SQL_PIN_UNREADABLE,  /* too deep to read through: assume the worst */
};

/* A change of session settings, applied when its statement succeeds and
 * its transaction commits. */
enum sql_change_op {
	SQL_CHANGE_SET,         /* name = what sql sets */
	SQL_CHANGE_RESET,       /* name back to its session default */
	SQL_CHANGE_RESET_ALL,   /* RESET ALL: every setting but role and session_authorization */
	SQL_CHANGE_DISCARD_ALL, /* DISCARD ALL: every setting, statement and temporary object */
};

struct sql_change {
	uint8_t op;     /* enum sql_change_op */
	uint16_t stmt;  /* index of its statement in the text */
	char *name;     /* setting, lower case (SET, RESET), else NULL */
	char *sql;      /* statement that makes the setting again (SET), else NULL */
};

#define SQL_F_DEALLOCATE_ALL 0x01 /* DEALLOCATE ALL or DISCARD ALL among the statements */
#define SQL_F_DYNAMIC        0x02 /* DO or CALL: runs code sluice cannot read */
#define SQL_F_TX_CONTROL     0x04 /* BEGIN, COMMIT, ROLLBACK, SAVEPOINT ... among them */
#define SQL_F_DEALLOCATE     0x08 /* the text is one DEALLOCATE name (name set) */
#define SQL_F_EXECUTE        0x10 /* the text is one EXECUTE name (name set) */

struct sql_info {
	int refs;                   /* holders; freed at 0 (one thread only) */
	uint16_t flags;             /* SQL_F_* */
	uint8_t pin;                /* enum sql_pin */
	uint16_t n_stmts;           /* statements in the text */
	uint16_t dealloc_stmt;      /* SQL_F_DEALLOCATE_ALL: index of the first such statement */
	uint16_t n_changes;
	struct sql_change *changes; /* in statement order */
	char *name;                 /* DEALLOCATE / EXECUTE target, else NULL */
};

/* Could this text matter at all? false means: certainly not (a plain
 * query). len bytes, no NUL needed. */
bool sql_worth_parsing(const char *sql, size_t len);

/* Parse a NUL-terminated text. *out is NULL when it does nothing of the
 * above (or does not parse: PostgreSQL will refuse it too), else a new
 * sql_info with one reference. Returns 0 or -ENOMEM. */
int sql_inspect(const char *sql, struct sql_info **out);

/* sql_worth_parsing, then sql_inspect when needed. */
int sql_inspect_if_needed(const char *sql, size_t len, struct sql_info **out);

static inline struct sql_info *sql_info_get(struct sql_info *si)
{
	if (si)
		si->refs++;
	return si;
}
void sql_info_put(struct sql_info *si);

/* Does si change settings, or bind its client to the server? */
static inline bool sql_info_changes_session(const struct sql_info *si)
{
	return si && (si->n_changes || si->pin || (si->flags & (SQL_F_DEALLOCATE_ALL | SQL_F_DYNAMIC)));
}

const char *sql_pin_name(int pin);

/* "SELECT pg_catalog.set_config('name', 'value', false)", both quoted as
 * SQL literals (heap), or NULL without memory. */
char *sql_set_config_statement(const char *name, const char *value);

#endif
