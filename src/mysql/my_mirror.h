/*
 * my_mirror.h - workload mirroring for MySQL clients (mirror.h has the
 * protocol-neutral part, pg_mirror.h the PostgreSQL one): a share of a
 * database's client transactions is captured as the client sent it,
 * replayed on the mirror database's servers, and the mirror's answers
 * are compared with the primary's.
 *
 * A transaction begins with a command that finds the client's server
 * outside a transaction (no MY_STATUS_IN_TRANS, nothing being answered)
 * and ends with the answer that leaves MY_STATUS_IN_TRANS clear: with
 * autocommit, every statement is a transaction of one command. While one
 * is captured, COM_QUERY and COM_INIT_DB are copied (the primary entry's
 * schema named as the mirror's), COM_STMT_EXECUTE and COM_STMT_RESET with
 * their statement's text (sluice's ids mean nothing on the mirror, which
 * prepares each text once per connection), and the primary's answers are
 * summarised per result: an OK's affected rows, an ERR's code, a result
 * set's row count and a hash of its rows (never the column definitions:
 * they name the schema). Unmirrored traffic pays one branch per command.
 *
 * Each worker has a channel per (mirrored database, mirror pool): one
 * aside server connection (server.h SERVER_MIRROR) that replays one
 * transaction at a time, one command at a time, and a queue of at most
 * mirror_queue_size waiting ones; what does not fit is dropped and
 * counted. Clients never wait for the mirror and never see its answers
 * or errors.
 *
 * Owns: the channels (per worker thread, freed when it stops), the
 * captured transactions (the client's while captured, then the
 * channel's) and the mirror connections' statement caches.
 */
#ifndef SLUICE_MY_MIRROR_H
#define SLUICE_MY_MIRROR_H

#include <stdbool.h>
#include <stdint.h>

struct my_client;
struct my_server;
struct my_packet;
struct worker;

/* my_client.c: the command pk at c's cursor goes to c->server now
 * (partial: only its first pk->len bytes are here). Captured when this
 * transaction is mirrored. Called only when c->mirror_chan, c->mirror_tx
 * or a new configuration (c->mirror_cfg) says it may matter. */
void my_mirror_client_command(struct my_client *c, const struct my_packet *pk, bool partial);
/* The command just captured was not forwarded (sluice answered it, or
 * will process it again): forget it. */
void my_mirror_client_unsee(struct my_client *c);
/* The client is freed: its capture, if any, is abandoned. */
void my_mirror_client_free(struct my_client *c);

/* my_server.c: a packet of the answer to s's client's command, whose
 * transaction is captured; rows: the tracker was in the rows of a
 * result set before it (my_answer_in_rows), rc what my_answer_feed said.
 * May end the transaction. */
void my_mirror_primary_packet(struct my_server *s, const struct my_packet *pk, bool rows, int rc);
/* A row too long for the buffer went by unseen: not comparable. */
void my_mirror_primary_unseen(struct my_client *c);

/* A mirror connection (aside SERVER_MIRROR): logged in
 * (my_server_login.c); a whole packet at its socket's cursor, dropped
 * here (true when s was closed); a packet that does not fit the buffer
 * yet (avail bytes present; true when s was closed); closing. */
void my_mirror_ready(struct my_server *s);
bool my_mirror_packet(struct my_server *s, const struct my_packet *pk);
bool my_mirror_partial(struct my_server *s, uint32_t avail);
void my_mirror_closed(struct my_server *s, const char *reason);

/* The worker's periodic tick: a channel whose connection failed tries
 * again once transactions wait, a replay unanswered for 60 s is given
 * up; with all (the worker stops) the channels are freed. */
void my_mirror_tick(struct worker *w, int64_t now_us, bool all);

#endif
