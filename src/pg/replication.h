/*
 * replication.h - replication connections passed through (PgBouncer 1.23).
 *
 * A client whose startup packet carries replication=true (physical: a
 * standby, pg_basebackup, pg_receivewal) or replication=database (logical:
 * pg_recvlogical, a subscription) gets a server connection that logs in
 * with the client's own startup parameters, replication included, and is
 * never shared: its pool is keyed by those parameters, runs in session
 * mode whatever the configuration says, sends no SET to bring the server in
 * line with the client (it already is), and closes the server when the
 * client leaves instead of resetting it. Everything after login is relayed
 * as in any session (walsender commands, COPY both ways).
 *
 * Owns: the packed startup parameters ("name\0value\0" pairs, heap) that
 * key a replication pool and go into its servers' startup packets.
 */
#ifndef SLUICE_REPLICATION_H
#define SLUICE_REPLICATION_H

#include <stddef.h>
#include <stdint.h>

struct pg_startup;

enum repl_kind {
	REPL_NONE,
	REPL_PHYSICAL, /* replication=true (or on, yes, 1) */
	REPL_LOGICAL,  /* replication=database */
};

/* The kind the startup packet asks for; -1 and a message (PostgreSQL's
 * words) for a value PostgreSQL would refuse. */
int repl_kind_of(const struct pg_startup *st, char *err, size_t errlen);
/* "none", "physical", "logical" (SHOW CLIENTS / SERVERS). */
const char *repl_kind_name(int kind);
/* st's parameters except user and database, packed; NULL when out of
 * memory. *len gets the packed size. */
char *repl_startup_pack(const struct pg_startup *st, uint32_t *len);
/* Unpack into names/values (pointing into packed); returns how many, at
 * most max. */
int repl_startup_unpack(const char *packed, uint32_t len, const char **names, const char **values, int max);

#endif
