/*
 * hba.h - PgBouncer's auth_type = hba: the rules of auth_hba_file, a file in
 * PostgreSQL's pg_hba.conf syntax, and the question "which method applies
 * to this client?".
 *
 * Owns: the parser (text -> immutable struct hba_rules) and the matcher
 * (rules + request -> method). Pure functions: no sockets, no logging, no
 * global state; a loaded struct hba_rules is never written again, so any
 * number of threads may call hba_match on it while a reload parses a new one.
 * Must not: authenticate anyone (the caller runs the method it gets back),
 * resolve host names, or read any file but the one hba_load is given.
 *
 * The supported subset (see hba.c for the details and the reasons):
 *   local      DATABASE USER METHOD [OPTIONS]
 *   host       DATABASE USER ADDRESS METHOD [OPTIONS]
 *   hostssl    DATABASE USER ADDRESS METHOD [OPTIONS]
 *   hostnossl  DATABASE USER ADDRESS METHOD [OPTIONS]
 * ADDRESS is IP/PREFIX, IP MASK (two fields) or all. METHOD is trust,
 * reject, password, md5, scram-sha-256, cert (hostssl only) or peer (local
 * only); peer and cert accept map=NAME, a user name map of auth_ident_file
 * (ident.h). Anything sluice cannot honour exactly (host names, samehost,
 * samenet, +group, @file, regular expressions, map= on other methods, ...)
 * refuses to load with a message naming the line, never silently matches
 * differently.
 */
#ifndef SLUICE_HBA_H
#define SLUICE_HBA_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "hba_lex.h" /* HBA_MAX_LINE, HBA_MAX_FILE */

/* Most names one DATABASE or USER field may list. */
#define HBA_MAX_LIST 1024

/* What a matching line asks for. HBA_REJECT is also the answer when no line
 * matches (hba_match then reports line 0). */
enum hba_method {
	HBA_REJECT,     /* "reject": refuse the connection */
	HBA_TRUST,      /* "trust": no password */
	HBA_PASSWORD,   /* "password": cleartext password */
	HBA_MD5,        /* "md5": MD5 challenge (PostgreSQL runs SCRAM instead when the stored
	                 * secret is a SCRAM verifier; that choice is the caller's) */
	HBA_SCRAM,      /* "scram-sha-256" */
	HBA_CERT,       /* "cert": TLS client certificate, CN = user name */
	HBA_PEER,       /* "peer": unix socket peer credentials, OS user = user name */
};

/* The first field of a line: which connections it is about. */
enum hba_conn_type {
	HBA_LOCAL,      /* unix socket connections */
	HBA_HOST,       /* TCP connections, TLS or not */
	HBA_HOSTSSL,    /* TCP connections that use TLS */
	HBA_HOSTNOSSL,  /* TCP connections that do not use TLS */
};

/* Parsed rules, in file order. Opaque; immutable after load. */
struct hba_rules;

/* One client to classify. The caller owns every pointer; hba_match only
 * reads them during the call. */
struct hba_request {
	bool is_unix;                 /* came over the unix socket (only "local" lines match) */
	bool tls;                     /* connection uses TLS (hostssl matches, hostnossl does not) */
	const struct sockaddr *addr;  /* client address for host* lines: a struct sockaddr_in
	                               * (AF_INET) or sockaddr_in6 (AF_INET6); an IPv4-mapped
	                               * IPv6 address (::ffff:a.b.c.d) also matches IPv4 rules.
	                               * NULL or another family: only "all" addresses match. */
	const char *database;         /* database from the startup packet; NULL matches no line */
	const char *user;             /* user from the startup packet; NULL matches no line */
	bool physical_replication;    /* replication=true: only the database keyword
	                               * "replication" matches, as in PostgreSQL */
};

/* Parse text[0..len) (the whole file; a NUL byte in it is an error).
 * file_name (may be NULL) only appears in messages. Returns 0 and *out, or
 * -EINVAL (malformed or unsupported input) / -ENOMEM with *out = NULL and
 * err = "FILE:LINE: what is wrong". A file with no rule at all is an error:
 * it would reject every login, which is never what was meant. */
int hba_parse(const char *text, size_t len, const char *file_name,
	      struct hba_rules **out, char *err, size_t errlen);

/* Read the file at path (at most HBA_MAX_FILE bytes), then hba_parse it.
 * Returns 0, or a negative errno: the open/read error, -EFBIG, or what
 * hba_parse returned; err says which. */
int hba_load(const char *path, struct hba_rules **out, char *err, size_t errlen);

/* Release rules from hba_parse/hba_load. NULL is a no-op. */
void hba_free(struct hba_rules *r);

/* Number of rules (non-blank, non-comment lines) in r; 0 for NULL. */
size_t hba_rule_count(const struct hba_rules *r);

/* The method of the first line matching req, HBA_REJECT when none does.
 * *line_no (when line_no is not NULL) gets that line's number in the file,
 * 0 when no line matched. r == NULL or req == NULL matches nothing. */
enum hba_method hba_match(const struct hba_rules *r, const struct hba_request *req, int *line_no);

/* The map=NAME of the rule at line line_no (as hba_match reports it), or
 * NULL when that rule has none (or there is no such rule). The string
 * lives as long as r. */
const char *hba_map_at(const struct hba_rules *r, int line_no);

struct ident_maps;

/* The first map= name of r that maps (may be NULL: no auth_ident_file)
 * does not define, with its rule's line in *line_no; NULL when every
 * name is defined. Such a rule is kept, and logins through it fail, as
 * in PostgreSQL; the caller warns. */
const char *hba_unknown_map(const struct hba_rules *r, const struct ident_maps *maps, int *line_no);

/* The pg_hba.conf keyword of m ("md5", "scram-sha-256", ...); "unknown"
 * for a value outside the enum. */
const char *hba_method_name(enum hba_method m);

#endif
