/*
 * mirror_chan.c - see mirror_chan.h.
 */
#include "mirror_chan.h"

#include <stdio.h>
#include <stdlib.h>

#include "fnv.h"
#include "log.h"
#include "loop.h"
#include "pool.h"
#include "proto.h"
#include "runtime.h"
#include "server.h"

#define RETRY_US 1000000LL                 /* after a failed connection, none before this */
#define REPLAY_TIMEOUT_US (60 * 1000000LL) /* a replay unanswered this long is given up */

static __thread uint64_t rng; /* xorshift state, 0 = not seeded */

double mirror_draw(void)
{
	if (!rng)
		rng = (uint64_t)loop_now_us() * 0x9E3779B97F4A7C15ull ^ (uintptr_t)&rng;
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (double)(rng >> 11) / (double)(1ull << 53);
}

uint64_t mirror_hash(uint64_t h, const void *p, size_t n)
{
	return fnv1a(h ? h : FNV1A_START, p, n);
}

struct mirror_chan *mirror_chan_get(struct mirror_chan **list, const struct mirror_chan_ops *ops, size_t size,
				    struct worker *w, const char *db, const char *d_mirror, double fraction,
				    struct pool *p, const char *err)
{
	if (!p) {
		log_write(LOG_LEVEL_WARNING, "mirror of %s: %s", db, err);
		return NULL;
	}
	struct mirror_stats *st = mirror_stats_get(db, d_mirror);
	if (!st)
		return NULL;
	struct mirror_chan *ch;
	for (ch = *list; ch; ch = ch->next)
		if (ch->stats == st && ch->pool == p)
			break;
	if (!ch) {
		if (!(ch = calloc(1, size)))
			return NULL;
		ch->ops = ops;
		ch->worker = w;
		ch->stats = st;
		ch->pool = p;
		ch->next = *list;
		*list = ch;
	}
	ch->fraction = fraction;
	return ch;
}

struct mirror_chan *mirror_chan_of(struct mirror_chan *list, const struct server *s)
{
	for (struct mirror_chan *ch = list; ch; ch = ch->next)
		if (ch->srv == s)
			return ch;
	return NULL;
}

static void close_srv(struct mirror_chan *ch, struct server *s, const char *reason)
{
	ch->pool->proto->server_close(s, reason);
}

static void fail_all(struct mirror_chan *ch, enum mirror_result r)
{
	struct mirror_qnode *q;
	while ((q = mirror_queue_pop(&ch->queue))) {
		mirror_count(ch->stats, r);
		ch->ops->rec_free(q);
	}
}

/* cur is over (counted already): free it and what the protocol kept of it. */
static void drop_cur(struct mirror_chan *ch)
{
	if (ch->cur) {
		ch->ops->rec_free(ch->cur);
		ch->cur = NULL;
	}
	ch->ops->forget(ch);
}

bool mirror_chan_take(struct mirror_chan *ch)
{
	if (ch->fraction < 1.0 && mirror_draw() >= ch->fraction)
		return false;
	if (ch->cur && ch->queue.n >= (uint32_t)runtime_config()->mirror_queue_size) {
		mirror_count(ch->stats, MIRROR_DROPPED);
		return false;
	}
	return true;
}

void mirror_chan_push(struct mirror_chan *ch, struct mirror_qnode *rec)
{
	/* The one being replayed does not count against the queue's size. */
	if (!mirror_queue_push(&ch->queue, rec, runtime_config()->mirror_queue_size + (ch->cur ? 0 : 1))) {
		mirror_count(ch->stats, MIRROR_DROPPED);
		ch->ops->rec_free(rec);
		return;
	}
	mirror_chan_kick(ch);
}

void mirror_chan_kick(struct mirror_chan *ch)
{
	if (ch->cur || !ch->queue.n)
		return;
	if (!ch->srv) {
		int64_t now = loop_now_us();
		if (now < ch->retry_us) {
			fail_all(ch, MIRROR_ERROR);
			return;
		}
		char err[200] = "connection failed";
		ch->ready = false;
		ch->srv = ch->ops->open(ch, pool_pick_host(ch->pool), err, sizeof(err));
		if (ch->srv && ch->srv->closed)
			ch->srv = NULL; /* failed at once (it is buried; nobody was told) */
		if (!ch->srv) {
			log_write(LOG_LEVEL_WARNING, "mirror %s: cannot connect: %s", ch->pool->db_name, err);
			ch->retry_us = now + RETRY_US;
			fail_all(ch, MIRROR_ERROR);
		}
		return;
	}
	if (!ch->ready)
		return;
	ch->cur = mirror_queue_pop(&ch->queue);
	ch->sent_us = loop_now_us();
	mirror_count(ch->stats, MIRROR_SENT);
	server_core_set_state(ch->srv, SERVER_CHECK);
	ch->ops->start(ch, ch->cur);
}

void mirror_chan_ready(struct mirror_chan *ch)
{
	ch->ready = true;
	server_core_set_state(ch->srv, SERVER_IDLE);
	mirror_chan_kick(ch);
}

void mirror_chan_done(struct mirror_chan *ch, bool differed, const char *text, int64_t primary_us)
{
	if (differed) {
		mirror_count(ch->stats, MIRROR_DIFFERED);
		mirror_note_differed(ch->stats, text);
	}
	mirror_note_times(ch->stats, primary_us, loop_now_us() - ch->sent_us);
	drop_cur(ch);
	mirror_chan_ready(ch);
}

void mirror_chan_abandon(struct mirror_chan *ch, enum mirror_result r, const char *why)
{
	log_write(LOG_LEVEL_WARNING, "mirror %s: replay given up: %s", ch->pool->db_name, why);
	mirror_count(ch->stats, r);
	drop_cur(ch);
	close_srv(ch, ch->srv, why);
}

void mirror_chan_closed(struct mirror_chan *ch, const char *reason)
{
	log_write(LOG_LEVEL_WARNING, "mirror %s: connection closed: %s", ch->pool->db_name, reason);
	ch->srv = NULL;
	ch->ready = false;
	ch->retry_us = loop_now_us() + RETRY_US;
	if (ch->cur)
		mirror_count(ch->stats, MIRROR_ERROR);
	drop_cur(ch);
	fail_all(ch, MIRROR_ERROR);
}

void mirror_chans_tick(struct mirror_chan **list, int64_t now_us, bool all)
{
	while (all && *list) {
		struct mirror_chan *ch = *list;
		*list = ch->next;
		if (ch->srv && !ch->srv->closed) {
			struct server *s = ch->srv;
			ch->srv = NULL; /* closing it tells nobody now */
			close_srv(ch, s, "mirror: worker stopping");
		}
		drop_cur(ch);
		fail_all(ch, MIRROR_ERROR);
		free(ch);
	}
	for (struct mirror_chan *ch = *list; ch; ch = ch->next) {
		if (ch->cur && ch->srv && now_us - ch->sent_us > REPLAY_TIMEOUT_US)
			close_srv(ch, ch->srv, "mirror: replay not answered within 60 s");
		if (!ch->srv && ch->queue.n && now_us >= ch->retry_us)
			mirror_chan_kick(ch);
	}
}
