/*
 * test_mirror_chan.c - mirror_chan.c's states with a fake protocol: the
 * connection opened when a transaction waits, replays one at a time, the
 * queue's drops, a failed or closed connection failing what waits, the
 * retry delay, and the worker's stop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "loop.h"
#include "mirror_chan.h"
#include "pool.h"
#include "proto.h"
#include "runtime.h"
#include "server.h"
#include "unit.h"

struct frec {
	struct mirror_qnode qn;
	int id;
};

struct fchan {
	MIRROR_CHAN_FIELDS(fchan, server, frec)
	int forgets; /* forget calls */
};

static struct mirror_chan *list;
static struct server srv;
static bool open_fails;
static int opens, freed, closes;
static int started[16], n_started;

static struct server *f_open(struct mirror_chan *ch, int host, char *err, size_t errlen)
{
	(void)ch;
	(void)host;
	opens++;
	if (open_fails) {
		snprintf(err, errlen, "refused");
		return NULL;
	}
	memset(&srv, 0, sizeof(srv));
	return &srv;
}

static void f_start(struct mirror_chan *ch, struct mirror_qnode *rec)
{
	CHECK(ch->cur == rec);
	if (n_started < 16)
		started[n_started++] = ((struct frec *)rec)->id;
}

static void f_forget(struct mirror_chan *ch)
{
	((struct fchan *)ch)->forgets++;
}

static void f_rec_free(struct mirror_qnode *rec)
{
	freed++;
	free(rec);
}

static const struct mirror_chan_ops ops = { f_open, f_start, f_forget, f_rec_free };

/* The protocol's close: its server tells the channel, as pg_server.c does. */
static void f_server_close(struct server *s, const char *reason)
{
	closes++;
	s->closed = true;
	struct mirror_chan *ch = mirror_chan_of(list, s);
	if (ch)
		mirror_chan_closed(ch, reason);
}

static struct proto_ops fproto;
static struct pool pool;

static struct mirror_qnode *rec(int id)
{
	struct frec *r = calloc(1, sizeof(*r));
	r->id = id;
	return &r->qn;
}

static uint64_t count(struct mirror_chan *ch, enum mirror_result r)
{
	return __atomic_load_n(&ch->stats->n[r], __ATOMIC_RELAXED);
}

static void test_channel_life(void)
{
	struct config *cfg = config_defaults();
	CHECK(cfg != NULL);
	if (!cfg)
		return;
	cfg->mirror_queue_size = 2;
	runtime_set_config(cfg);
	fproto.server_close = f_server_close;
	pool.proto = &fproto;
	snprintf(pool.db_name, sizeof(pool.db_name), "shadow");

	CHECK(mirror_chan_get(&list, &ops, sizeof(struct fchan), NULL, "app", "shadow", 1.0, NULL, "no pool") == NULL);
	struct mirror_chan *ch = mirror_chan_get(&list, &ops, sizeof(struct fchan), NULL, "app", "shadow", 0.5, &pool, "");
	CHECK(ch != NULL);
	if (!ch)
		return;
	CHECK(mirror_chan_get(&list, &ops, sizeof(struct fchan), NULL, "app", "shadow", 1.0, &pool, "") == ch);
	CHECK(ch->fraction == 1.0); /* the last value read (RELOAD) */

	/* A transaction waits: the connection opens; nothing starts before login. */
	CHECK(mirror_chan_take(ch));
	mirror_chan_push(ch, rec(1));
	CHECK(opens == 1 && ch->srv == &srv && !ch->ready && !ch->cur && n_started == 0);
	mirror_chan_push(ch, rec(2));
	mirror_chan_push(ch, rec(3));
	CHECK(ch->queue.n == 3); /* nothing replaying: one more than mirror_queue_size */
	mirror_chan_push(ch, rec(4));
	CHECK(freed == 1 && count(ch, MIRROR_DROPPED) == 1);

	/* Logged in: the oldest starts; the server is busy. */
	mirror_chan_ready(ch);
	CHECK(n_started == 1 && started[0] == 1 && srv.state == SERVER_CHECK);
	CHECK(count(ch, MIRROR_SENT) == 1 && ch->queue.n == 2);
	/* Queue full while one replays: a new transaction is not even captured. */
	CHECK(!mirror_chan_take(ch) && count(ch, MIRROR_DROPPED) == 2);

	/* Answered: counted, freed, the next starts. */
	mirror_chan_done(ch, true, "SELECT 1", 1000);
	CHECK(count(ch, MIRROR_DIFFERED) == 1 && !strcmp(ch->stats->last_query, "SELECT 1"));
	CHECK(freed == 2 && n_started == 2 && started[1] == 2 && ((struct fchan *)ch)->forgets == 1);
	CHECK(ch->stats->timed == 1 && ch->stats->primary_us == 1000);

	/* The connection fails: the replay and the queue are errors; no new
	 * connection for a second, and what comes meanwhile fails at once. */
	f_server_close(&srv, "gone");
	CHECK(ch->srv == NULL && !ch->cur && ch->queue.n == 0 && freed == 4);
	CHECK(count(ch, MIRROR_ERROR) == 2);
	mirror_chan_push(ch, rec(5));
	CHECK(opens == 1 && freed == 5 && count(ch, MIRROR_ERROR) == 3);

	/* After the delay, a waiting transaction reopens (tick); a refused
	 * connection fails it and waits again. */
	ch->retry_us = 0;
	open_fails = true;
	mirror_chan_push(ch, rec(6));
	CHECK(opens == 2 && ch->srv == NULL && freed == 6 && count(ch, MIRROR_ERROR) == 4);
	CHECK(ch->retry_us > loop_now_us());
	open_fails = false;
	ch->retry_us = 0;
	CHECK(mirror_queue_push(&ch->queue, rec(7), 10));
	mirror_chans_tick(&list, loop_now_us(), false);
	CHECK(opens == 3 && ch->srv == &srv);
	mirror_chan_ready(ch);
	CHECK(n_started == 3 && started[2] == 7);

	/* A replay unanswered for a minute closes its connection. */
	mirror_chans_tick(&list, ch->sent_us + 61 * 1000000LL, false);
	CHECK(closes == 2 && ch->srv == NULL && freed == 7 && count(ch, MIRROR_ERROR) == 5);

	/* The worker stops: its channels go, an open connection is closed
	 * without calling back into a freed channel. */
	ch->retry_us = 0;
	mirror_chan_push(ch, rec(8));
	CHECK(ch->srv == &srv);
	mirror_chans_tick(&list, loop_now_us(), true);
	CHECK(list == NULL && closes == 3 && freed == 8);
	runtime_set_config(NULL);
	config_free(cfg);
}

UNIT_MAIN({ test_channel_life(); })
