/*
 * my_handover.h - a MySQL client changes hands between transactions: to
 * the new process in an online restart (takeover.h), or to another worker
 * of this one (adaptive_workers, balance.h).
 *
 * Owns: the encoding of a client's session state for the new process
 * (versioned records, my_handover.c), and when a client may go. A client
 * goes when it is logged in, has no server, nothing buffered either way,
 * no LOCAL INFILE or long command in flight, and is not pinned: a pinned
 * client's session is on its server, which cannot move, so it stays with
 * the old process (or worker) until it leaves, as PostgreSQL's unmovable
 * clients do.
 * Must not: touch the server side; a client linked to a server never
 * moves (the core checks that too).
 */
#ifndef SLUICE_MY_HANDOVER_H
#define SLUICE_MY_HANDOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct my_client;
struct takeover_enc;
struct worker;

/* ---- online restart (proto.h client_handover_ok, client_encode, client_adopt) ---- */

/* The protocol's part of "c may go to the new process now". */
bool my_handover_ok(const struct my_client *c);
/* c's state as the new process reads it: 0 or -ENOMEM. */
int my_handover_encode(const struct my_client *c, struct takeover_enc *e);
/* Fill c (fresh: zeroed, its receive buffer empty) from an encoded state:
 * 0, or -EPROTO with why saying what was wrong. No pool, no cancel key
 * yet: my_handover_adopt's. */
int my_handover_decode(struct my_client *c, const uint8_t *p, uint32_t len, char *why, size_t whylen);
/* New process: a client on w from its socket and encoded state (the
 * socket is closed when the state cannot be used). */
void my_handover_adopt(struct worker *w, int fd, const uint8_t *state, uint32_t len);

/* ---- between workers (proto.h client_maybe_move; client_stay and
 * client_arrive are the core's) ---- */

/* Between transactions: move to the worker the balance wants, if any. */
void my_client_maybe_move(struct my_client *c);

/* A command was answered and c may have given its server back: the
 * moment to leave for the new process (online restart) or another worker. */
void my_handover_at_rest(struct my_client *c);

#endif
