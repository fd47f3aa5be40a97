/*
 * pg_mirror.h - workload mirroring for PostgreSQL clients (mirror.h has
 * the protocol-neutral part): a share of a database's client transactions
 * is captured as the client sent it, replayed on the mirror database's
 * servers, and the mirror's answers are compared with the primary's.
 *
 * A transaction begins with a client message that finds its server
 * between transactions (status 'I', nothing outstanding, no open batch)
 * and ends with the ReadyForQuery 'I' that leaves nothing outstanding.
 * While one is captured, the client's messages are copied (whole; named
 * statements noted by their text and types, since the mirror prepares
 * them under names of its own), and the primary's answers are summarised
 * per statement: command tag, DataRow count and a hash of the DataRows.
 * Unmirrored traffic pays one branch per message.
 *
 * Each worker has a channel per (mirrored database, mirror pool): one
 * aside server connection (server.h SERVER_MIRROR) that replays one
 * transaction at a time, and a queue of at most mirror_queue_size waiting
 * ones; what does not fit is dropped and counted. Clients never wait for
 * the mirror and never see its answers or errors.
 *
 * Owns: the channels (per worker thread, never freed while it runs), the
 * captured transactions (one per client at most while captured, then the
 * channel's) and the mirror connections' statement caches.
 */
#ifndef SLUICE_PG_MIRROR_H
#define SLUICE_PG_MIRROR_H

#include <stdbool.h>
#include <stdint.h>

struct pg_client;
struct pg_server;
struct pg_msg;

/* Client message m (avail bytes of it here) is about to go to server s:
 * capture it if this transaction is mirrored. Returns 0 to go on, or how
 * many more bytes must arrive first (the message is captured whole). */
uint32_t pg_mirror_client_msg(struct pg_client *c, struct pg_server *s, const struct pg_msg *m, uint32_t avail);
/* The message just captured will be examined again (statement tracking
 * asked to flush first): forget it. */
void pg_mirror_client_unsee(struct pg_client *c);
/* A message from s for its client, whose transaction is captured. Returns
 * 0 to go on, or how many more bytes must arrive first. May end the
 * transaction (ReadyForQuery 'I'). */
uint32_t pg_mirror_server_msg(struct pg_server *s, const struct pg_msg *m, uint32_t avail);
/* Are c's transactions (some of them) mirrored? Such a client stays in
 * user space (bpf_bypass): the kernel would carry them unseen. */
bool pg_mirror_wanted(struct pg_client *c);
/* The client is freed: its capture, if any, is abandoned. */
void pg_mirror_client_free(struct pg_client *c);

/* The worker's periodic tick: a channel whose connection failed tries
 * again once transactions wait; with all (the worker stops), the
 * channels are freed (their connections are closed by then). */
struct worker;
void pg_mirror_tick(struct worker *w, int64_t now_us, bool all);

/* From pg_server.c's aside dispatch for SERVER_MIRROR connections. */
void mirror_ready(struct pg_server *s);
bool mirror_message(struct pg_server *s, const struct pg_msg *m);
void mirror_closed(struct pg_server *s, const char *reason);

#endif
