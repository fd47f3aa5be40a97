/*
 * mirror_chan.h - a worker's channel to one mirror, whatever protocol it
 * speaks: the aside connection's life (opened when a transaction waits,
 * retried no sooner than a second after a failure, closed when a replay
 * goes unanswered for a minute), the queue of transactions waiting for it
 * and what becomes of them when the connection fails.
 *
 * The protocol (pg_mirror.c, my_mirror.c) captures transactions, replays
 * them and compares answers; its channel struct starts with
 * MIRROR_CHAN_FIELDS and it hands the core a struct mirror_chan_ops.
 *
 * Owns: the channels of one list (a protocol's, per worker: one thread
 * uses it) and the records queued or replaying on them.
 * States of a channel: no connection -> connecting (srv, !ready) ->
 * ready and idle (cur NULL) <-> replaying (cur) ; any -> no connection
 * (mirror_chan_closed), which fails cur and the queue.
 */
#ifndef SLUICE_MIRROR_CHAN_H
#define SLUICE_MIRROR_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mirror.h"

struct mirror_chan;
struct pool;
struct server;
struct worker;

/* What the protocol does for the core's channel machinery. */
struct mirror_chan_ops {
	/* Open an aside connection (SERVER_MIRROR) to host of ch->pool; NULL
	 * with err when it cannot. */
	struct server *(*open)(struct mirror_chan *ch, int host, char *err, size_t errlen);
	/* Replay rec on ch->srv, logged in and idle; ch->cur is rec. */
	void (*start)(struct mirror_chan *ch, struct mirror_qnode *rec);
	/* Forget the protocol's state of the replay in flight (answers so far,
	 * what it waits for); ch->cur is freed by the core. */
	void (*forget)(struct mirror_chan *ch);
	/* Free a captured transaction. */
	void (*rec_free)(struct mirror_qnode *rec);
};

/*
 * The core's fields, at the start of a protocol's channel struct, with
 * SERVER and REC its server and record struct tags (as SERVER_FIELDS).
 */
#define MIRROR_CHAN_FIELDS(CHAN, SERVER, REC) \
	struct CHAN *next;           /* in the list of its worker and protocol */      \
	const struct mirror_chan_ops *ops;                                               \
	struct worker *worker;       /* whose thread uses it */                        \
	struct mirror_stats *stats;  /* counters of (database, mirror) */              \
	struct pool *pool;           /* the mirror's pool */                           \
	double fraction;             /* mirror_fraction, as last read */               \
	struct mirror_queue queue;   /* transactions waiting */                        \
	struct SERVER *srv;          /* the aside connection, NULL = none */           \
	bool ready;                  /* srv logged in */                               \
	int64_t retry_us;            /* no new connection before this */               \
	struct REC *cur;             /* being replayed on srv */                       \
	int64_t sent_us;             /* cur was started */                             \
	/* end of MIRROR_CHAN_FIELDS */

struct mirror_chan {
	MIRROR_CHAN_FIELDS(mirror_chan, server, mirror_qnode)
};

/* The channel of list for (database db mirrored to d_mirror, pool p),
 * made (size bytes, zeroed, ops) on first use; its fraction set. NULL
 * (with a warning when p is NULL: err says why) when there is none. */
struct mirror_chan *mirror_chan_get(struct mirror_chan **list, const struct mirror_chan_ops *ops, size_t size,
				    struct worker *w, const char *db, const char *d_mirror, double fraction,
				    struct pool *p, const char *err);
/* The channel whose connection s is, or NULL. */
struct mirror_chan *mirror_chan_of(struct mirror_chan *list, const struct server *s);

/* Whether a transaction starting now is captured for ch: drawn with
 * ch->fraction; one that would find the queue full is counted as dropped
 * at once, sparing its capture. */
bool mirror_chan_take(struct mirror_chan *ch);
/* Queue rec (a finished capture) on ch and start what can start; when
 * the queue is full (mirror_queue_size) rec is counted as dropped and freed. */
void mirror_chan_push(struct mirror_chan *ch, struct mirror_qnode *rec);
/* Start the next replay, or the connection it needs. */
void mirror_chan_kick(struct mirror_chan *ch);
/* srv logged in (or is idle again): replays may start. */
void mirror_chan_ready(struct mirror_chan *ch);
/* The replay of cur is over; differed: its answers differed (text: the
 * request that differed, may be NULL), primary_us: how long it took on
 * the primary. Frees cur and starts the next. */
void mirror_chan_done(struct mirror_chan *ch, bool differed, const char *text, int64_t primary_us);
/* Give cur up (counted as r) and close the connection. */
void mirror_chan_abandon(struct mirror_chan *ch, enum mirror_result r, const char *why);
/* ch's connection closed: cur and the queue fail; no new one for a second. */
void mirror_chan_closed(struct mirror_chan *ch, const char *reason);

/* Per tick: replays unanswered for a minute close their connection, a
 * queue waiting for a retry gets it. all: the worker stops; free every
 * channel of list. */
void mirror_chans_tick(struct mirror_chan **list, int64_t now_us, bool all);

/* A uniform draw in [0, 1) (per thread). */
double mirror_draw(void);
/* FNV-1a over n bytes, chained from h (0 to start). */
uint64_t mirror_hash(uint64_t h, const void *p, size_t n);

#endif
