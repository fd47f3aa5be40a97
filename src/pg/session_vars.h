/*
 * session_vars.h - session settings (SET outside a transaction's own
 * scope) that sluice keeps in step between a client and the pooled
 * servers it borrows: for a client, what it has set; for a server, what
 * its session holds now. Each entry keeps the statement that makes the
 * setting, so restoring it replays the client's own words.
 *
 * Owns: the entries (heap). Pure data, no I/O. The settings PostgreSQL
 * reports itself (ParameterStatus) are kept apart, in client.c's params.
 */
#ifndef SLUICE_SESSION_VARS_H
#define SLUICE_SESSION_VARS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct iobuf;
struct sql_info;

struct session_var {
	char *name; /* setting, lower case */
	char *sql;  /* statement that sets it to the wanted value */
};

struct session_vars {
	struct session_var *v;
	uint16_t n, cap;
};

/* Set (replace) name's statement. Returns 0 or -ENOMEM. */
int session_vars_set(struct session_vars *vs, const char *name, const char *sql);
void session_vars_unset(struct session_vars *vs, const char *name);
/* RESET ALL: everything but role and session_authorization (PostgreSQL's
 * GUC_NO_RESET_ALL). */
void session_vars_reset_all(struct session_vars *vs);
void session_vars_clear(struct session_vars *vs);
int session_vars_copy(struct session_vars *dst, const struct session_vars *src);
const char *session_vars_get(const struct session_vars *vs, const char *name);
/* Heap bytes held, for SHOW CLIENTS. */
size_t session_vars_bytes(const struct session_vars *vs);

/* Apply change k of si (a committed SET, RESET, RESET ALL or DISCARD ALL)
 * to vs. Returns 0 or -ENOMEM. */
int session_vars_apply(struct session_vars *vs, const struct sql_info *si, uint16_t k);

/* Append to sql (NUL-terminated in a malloc'd buffer of *cap bytes, *len
 * used) what turns a server holding `have` into one holding `want`:
 * RESET of what only `have` holds, `want`'s statement where they differ.
 * Returns 0 or -ENOMEM. */
int session_vars_diff_sql(const struct session_vars *have, const struct session_vars *want,
			  char **sql, size_t *len, size_t *cap);

#endif
