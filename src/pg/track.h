/*
 * track.h - what a client's session owns on the pooled servers it
 * borrows, in transaction and statement mode: its prepared statements
 * (named ones renamed to sluice's own, the unnamed one re-prepared where
 * needed), its session settings, the things that pin it to one server,
 * and PostgreSQL's skip-until-Sync rule for everything sluice answers
 * itself.
 *
 * Client direction: each message is judged before it goes (rewritten,
 * answered by sluice, dropped, held). Server direction: each answer is
 * matched to the expect queue, so sluice swallows the answers to its own
 * messages, puts its own answers exactly where PostgreSQL would have, and
 * undoes its bookkeeping for messages PostgreSQL skipped after an error
 * (protocol docs 55.2.3).
 *
 * Owns: struct unnamed_stmt, struct track_pending and the undo records in
 * expect entries; works on client->stmts/unnamed/vars and server->stmts/
 * expect/vars. Runs on the pair's worker thread.
 */
#ifndef SLUICE_TRACK_H
#define SLUICE_TRACK_H

#include <stdbool.h>
#include <stddef.h>

#include "pg_proto.h"
#include "prepared.h"

struct pg_client;
struct pg_server;
struct pool;
struct sql_info;

/* The client's unnamed statement: PostgreSQL keeps it until the next
 * unnamed Parse or simple Query, across transactions, so sluice must be
 * able to prepare it again on whichever server the client gets next. */
struct unnamed_stmt {
	struct pstmt_def def;
	struct sql_info *info; /* what its text does, one reference, or NULL */
	int8_t read_class;     /* 1 + its sql_read_class (sqlread.h), 0 = not known yet (pg_route.c) */
	struct shard_plan shard; /* where it goes on a sharded database (pg_shard.c) */
};

/* Portals bound from a statement that does something sluice follows
 * (settings, DEALLOCATE, DISCARD ALL): judged when they are executed. */
struct portal_info {
	char *name;            /* portal name, "" = unnamed (heap) */
	struct sql_info *info; /* one reference */
	uint32_t batch;        /* client->batch when it was bound: the portal ends with
				* the transaction, at a ReadyForQuery 'I' of this batch or later,
				* or with an error there */
	bool ran;              /* sluice answered its Execute (DEALLOCATE): it cannot run again */
};
struct portal_infos {
	struct portal_info *v;
	uint8_t n;             /* at most TRACK_MAX_PORTALS; beyond that the client is pinned */
};
#define TRACK_MAX_PORTALS 16

enum track_action {
	TRACK_FORWARD,       /* forward the message unchanged */
	TRACK_DROP,          /* consumed (answered or rewritten): drop its bytes */
	TRACK_DROP_QUERY,    /* like DROP, for a Query sluice answers whole (counts as a request) */
	TRACK_FLUSH_FIRST,   /* send what is queued first (or wait for answers), then call again */
	TRACK_ERROR,         /* malformed message or no memory: close the client */
};

/* Is the expect queue used for clients of this pool (transaction and
 * statement mode)? */
bool track_enabled(const struct pool *p);
/* Are named statements renamed to sluice's own (max_prepared_statements > 0)? */
bool track_renames(const struct pool *p);

/* Must this client message be complete in the buffer before
 * track_client_msg can decide? */
bool track_wants_whole(const struct pg_client *c, const struct pg_msg *m, uint32_t avail);

/* One client message (complete when track_wants_whole said so). */
int track_client_msg(struct pg_client *c, struct pg_server *s, const struct pg_msg *m);
/* After track_client_msg returned act for m (of which avail bytes are in):
 * record what went to the server in the batch journal. wbuf_before is the
 * server's wbuf length before the call. */
void track_journal_note(struct pg_server *s, const struct pg_msg *m, int act, uint32_t avail, uint32_t wbuf_before);

/* Must this server message be complete before track_server_msg? */
bool track_server_wants_whole(struct pg_server *s, const struct pg_msg *m);
/* One server message (complete when track_server_wants_whole said so). */
int track_server_msg(struct pg_server *s, const struct pg_msg *m);

/* Write sluice's own answers that are due now into the client's wbuf.
 * Returns TRACK_FLUSH_FIRST when server bytes must be sent first. */
int track_emit(struct pg_server *s);

/* Is one of sluice's own answers next in line for s's client? */
bool track_answer_due(struct pg_server *s);

/* s is clean and about to go back to the pool: true when sluice first
 * sent its own look at the session (after dynamic SQL) and s must wait. */
bool track_check_before_release(struct pg_server *s);

/* SQL that brings server s's session settings in line with client c's
 * (appended to *sql as in session_vars_diff_sql); s is then taken to hold
 * c's settings. Returns 0 or -ENOMEM. */
int track_restore_sql(struct pg_server *s, struct pg_client *c, char **sql, size_t *len, size_t *cap);

/* Refuse the client's message m (a Query, Parse or Bind) with sluice's
 * error, in its place: the server fails instead, aborting the
 * transaction or skipping to Sync as PostgreSQL would have (sharding,
 * pg_shard.h). Returns a track_action, as track_client_msg. */
int track_refuse(struct pg_client *c, struct pg_server *s, const struct pg_msg *m, const char *sqlstate,
		 const char *message);

/* A Parse (m, whole) that sluice answers itself, without a server (a
 * BEGIN before the shard is known, pg_shard.h): the statement is the
 * client's from now on. 0, or < 0 when sluice cannot take it so (a name
 * in use, too many statements, no memory): then a server must see it. */
int track_local_parse(struct pg_client *c, const struct pg_msg *m);

/* bpf_bypass: the kernel carried the client's unnamed Parse (its body,
 * len bytes) or dropped the statement (body NULL): sluice's copy follows.
 * Returns the statement's new version (client->unnamed_gen). */
uint32_t track_unnamed_from_kernel(struct pg_client *c, const uint8_t *body, uint32_t len);

/* COPY FROM STDIN (copy_watch.h): the server began the copy of the head
 * entry (Execute or Query), with the next region entries the Syncs the
 * client sent inside it. False when the queue does not look like that. A
 * client held for the batch's answer reads on: the copy data must come. */
bool track_copy_began(struct pg_server *s, uint32_t region);
/* Take out n Sync entries from index at (0 = head): PostgreSQL read
 * them inside a copy and never answers them. False when they are not
 * there. */
bool track_copy_drop_syncs(struct pg_server *s, uint32_t at, uint32_t n);

/* Statements prepared on s are gone (DISCARD ALL, reset). */
void track_server_forget(struct pg_server *s);
/* Free the expect queue and its entries' data. */
void track_server_free(struct pg_server *s);
/* Free the client's tracked statements and settings. */
void track_client_free(struct pg_client *c);
/* Heap bytes held for the client's statements and settings. */
size_t track_client_bytes(const struct pg_client *c);
/* Bring the pool's gauges of its clients' named statements (count, bytes)
 * up to date with c's (gone: take c's share out, it leaves its pool). */
void track_account(struct pg_client *c, bool gone);

#endif
