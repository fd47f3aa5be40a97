/*
 * ident.h - PgBouncer's auth_ident_file: user name maps in PostgreSQL's
 * pg_ident.conf syntax, and the question "may this system user (the OS
 * user of a peer connection, the CN of a client certificate) log in as
 * this database user under map M?".
 *
 * Owns: the parser (text -> immutable struct ident_maps, regular
 * expressions compiled once) and the check. No sockets, no logging, no
 * global state; a loaded struct ident_maps is never written again, so any
 * number of threads may call ident_allows on it (glibc's regexec is
 * thread-safe on a shared compiled expression).
 * Must not: decide which map applies (the auth_hba_file line does, see
 * hba_map_at), or read any file but the one ident_load is given.
 *
 * Records (one a line; comments, quoting and continued lines as in
 * pg_hba.conf, see hba_lex.h):
 *   MAPNAME SYSTEM-USERNAME DATABASE-USERNAME
 * SYSTEM-USERNAME starting with '/' is a regular expression (the rest of
 * the field); DATABASE-USERNAME may then contain \1, replaced by what the
 * first parenthesized subexpression matched. DATABASE-USERNAME "all"
 * (unquoted) is every user; starting with '/' it is a regular expression
 * the requested user must match. See ident.c for what is refused and how
 * the regular expressions differ from PostgreSQL's.
 */
#ifndef SLUICE_IDENT_H
#define SLUICE_IDENT_H

#include <stdbool.h>
#include <stddef.h>

/* Parsed map lines, in file order. Opaque; immutable after load. */
struct ident_maps;

/* Parse text[0..len) (the whole file). file_name (may be NULL) only
 * appears in messages. Returns 0 and *out, or -EINVAL (malformed or
 * unsupported input, an invalid regular expression) / -ENOMEM with
 * *out = NULL and err = "FILE:LINE: what is wrong". A file without any
 * line is valid (it maps nobody), as in PostgreSQL. */
int ident_parse(const char *text, size_t len, const char *file_name,
		struct ident_maps **out, char *err, size_t errlen);

/* Read the file at path (at most HBA_MAX_FILE bytes), then ident_parse it.
 * Returns 0 or a negative errno; err says what went wrong. */
int ident_load(const char *path, struct ident_maps **out, char *err, size_t errlen);

/* Release maps from ident_parse/ident_load. NULL is a no-op. */
void ident_free(struct ident_maps *m);

/* Number of map lines in m; 0 for NULL. */
size_t ident_line_count(const struct ident_maps *m);

/* Some line of m belongs to the map called name. False for m == NULL. */
bool ident_has_map(const struct ident_maps *m, const char *name);

/* May system_user log in as db_user? Without a map (map NULL or empty)
 * only when the two names are the same, as PostgreSQL's peer and cert
 * methods without map=. With a map, when some line of that map pairs them
 * (m == NULL or an unknown map: never). *line_no (when not NULL) gets the
 * line that allowed it, 0 otherwise. */
bool ident_allows(const struct ident_maps *m, const char *map, const char *system_user,
		  const char *db_user, int *line_no);

#endif
