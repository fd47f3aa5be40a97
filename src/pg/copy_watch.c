/*
 * copy_watch.c - see copy_watch.h.
 */
#include "copy_watch.h"

#include <string.h>

#include "bpf/pgframe.h"
#include "log.h"
#include "pg_proto.h"
#include "pg_server.h"
#include "track.h"

#define INSIDE_COPY "unexpected message during COPY FROM STDIN (send CopyDone or CopyFail first)"
#define BEHIND_FAILED_COPY "a request right behind a failed COPY FROM STDIN, before Sync: sluice " \
	"cannot know whether PostgreSQL would run it (send Sync after CopyDone)"
#define LOST_TRACK "lost track of the Syncs sent during COPY FROM STDIN"

void copy_watch_reset(struct copy_watch *w)
{
	memset(w, 0, sizeof(*w));
}

void copy_watch_from_kernel(struct copy_watch *w, int outstanding, uint32_t syncs, uint32_t end_syncs,
			    uint32_t flags)
{
	copy_watch_reset(w);
	w->requests = outstanding > 0 ? (uint32_t)outstanding : 0;
	uint32_t q = flags & PGF_CP_QUERY ? 1 : 0;
	if (!(flags & PGF_CP_STARTED) || w->requests < syncs + q)
		return; /* no start the answers still to come can belong to */
	w->syncs = syncs;
	w->n_starts = 1;
	w->start[0] = (struct copy_start){
		.req = w->requests - syncs - q + 1,
		.is_query = q,
		.ended = flags & PGF_CP_ENDED,
		.end_syncs = end_syncs,
		.mixed = flags & PGF_CP_MIXED,
	};
}

static int broken(struct copy_watch *w, const char *why)
{
	w->broken = why;
	return COPY_BROKEN;
}

static struct copy_start *latest(struct copy_watch *w)
{
	return w->n_starts ? &w->start[(w->n_starts - 1) % COPY_STARTS] : NULL;
}

/* A request other than Sync goes: what it means for the latest start and
 * for the running copy, which it follows. */
static void note_request(struct copy_watch *w)
{
	struct copy_start *l = latest(w);
	if (l && !l->ended) {
		l->mixed = true;
	} else if (l && !l->req_after && !l->req_unsynced) {
		uint32_t since = w->syncs - l->end_syncs;
		if (since == 0) {
			l->req_unsynced = true;
		} else {
			l->req_after = true;
			l->syncs_to_req = since;
		}
	}
	if (w->in_copy && !w->req_after && !w->req_unsynced) {
		if (w->post == 0)
			w->req_unsynced = true;
		else
			w->req_after = true;
	}
}

int copy_watch_client(struct pg_server *s, uint8_t type)
{
	struct copy_watch *w = &s->copy;
	switch (type) {
	case 'd':
	case 'H':
		return COPY_PASS;
	case 'S':
		w->syncs++;
		if (w->in_copy) {
			if (w->region_open)
				w->region++;
			else if (!w->req_after && !w->req_unsynced)
				w->post++;
		}
		if (w->doubt == COPY_WAIT_SYNC) {
			w->in_doubt++;
			w->doubt = COPY_MARK_DUE; /* the client loop sends the marker next */
		}
		return COPY_PASS;
	case 'c':
	case 'f': {
		struct copy_start *l = latest(w);
		if (l && !l->ended) {
			l->ended = true;
			l->end_syncs = w->syncs;
		}
		w->region_open = false;
		return COPY_PASS;
	}
	default:
		if (w->in_copy && w->region_open)
			return broken(w, INSIDE_COPY);
		if (w->doubt == COPY_WAIT_SYNC)
			return broken(w, BEHIND_FAILED_COPY);
		note_request(w);
		if (type == 'E' || type == 'Q') {
			struct copy_start *n = &w->start[w->n_starts++ % COPY_STARTS];
			*n = (struct copy_start){ .req = w->requests + 1, .syncs = w->syncs, .is_query = type == 'Q' };
		}
		return COPY_PASS;
	}
}

/* CopyInResponse: the copy belongs to the oldest request not answered. */
static int copy_began(struct pg_server *s)
{
	struct copy_watch *w = &s->copy;
	w->in_copy = true;
	w->region = w->post = 0;
	w->region_open = w->req_unsynced = w->req_after = false;
	uint32_t target = w->requests - (uint32_t)s->outstanding + 1;
	const struct copy_start *st = NULL;
	uint32_t kept = w->n_starts < COPY_STARTS ? w->n_starts : COPY_STARTS;
	for (uint32_t i = 0; i < kept && !st; i++) {
		const struct copy_start *c = &w->start[(w->n_starts - 1 - i) % COPY_STARTS];
		if (c->req == target)
			st = c;
	}
	if (s->outstanding < 0 || !st) {
		/* Too many requests went behind its start before the answer
		 * (or the kernel carried them): the Syncs inside it cannot be
		 * counted, and a wrong count would stall the client. */
		log_debug("S-%llu: COPY not placed in the client's stream (outstanding %d)",
			  (unsigned long long)s->id, s->outstanding);
		return broken(w, "too many requests pipelined ahead of the answer to a COPY FROM STDIN for "
			      "sluice to follow (wait for CopyInResponse)");
	}
	if (st->mixed)
		return broken(w, INSIDE_COPY);
	w->is_query = st->is_query;
	w->region = (st->ended ? st->end_syncs : w->syncs) - st->syncs;
	w->region_open = !st->ended;
	w->req_unsynced = st->req_unsynced;
	w->req_after = st->req_after;
	if (st->ended)
		w->post = st->req_after ? st->syncs_to_req : st->req_unsynced ? 0 : w->syncs - st->end_syncs;
	if (s->tracking && !track_copy_began(s, w->region))
		return broken(w, INSIDE_COPY);
	return COPY_PASS;
}

static int copy_ended(struct pg_server *s, bool ok)
{
	struct copy_watch *w = &s->copy;
	uint32_t r = w->region;
	w->in_copy = w->region_open = false;
	if (ok || r == 0) {
		/* PostgreSQL read every Sync of the region inside the copy. */
		if (r) {
			s->outstanding -= (int)r;
			if (s->tracking && !track_copy_drop_syncs(s, 1, r))
				return broken(w, LOST_TRACK);
		}
		return COPY_PASS;
	}
	w->answered = 0;
	w->in_doubt = r + w->post + (w->is_query ? 1 : 0);
	w->marker_sent = false;
	if (w->is_query) {
		/* After a simple Query PostgreSQL does not skip to a Sync: what
		 * follows runs in any case, and may be the boundary. */
		w->doubt = w->req_unsynced || w->req_after ? COPY_COUNTING : COPY_MARK_DUE;
		return COPY_PASS;
	}
	if (w->req_unsynced)
		return broken(w, BEHIND_FAILED_COPY);
	if (w->req_after)
		w->doubt = COPY_COUNTING; /* the client's next request is the boundary */
	else
		w->doubt = w->post ? COPY_MARK_DUE : COPY_WAIT_SYNC;
	return COPY_PASS;
}

/* The first answer after the Syncs in doubt: the ReadyForQuery messages
 * not come by now never will. */
static int boundary(struct pg_server *s)
{
	struct copy_watch *w = &s->copy;
	if (w->answered > w->in_doubt)
		return broken(w, LOST_TRACK);
	uint32_t never = w->in_doubt - w->answered;
	if (never) {
		s->outstanding -= (int)never;
		if (s->tracking && !track_copy_drop_syncs(s, 0, never))
			return broken(w, LOST_TRACK);
	}
	return COPY_PASS;
}

int copy_watch_server(struct pg_server *s, uint8_t type)
{
	struct copy_watch *w = &s->copy;
	if (w->doubt) {
		if (type == 'Z') {
			if (w->doubt == COPY_MARK_READY) {
				w->doubt = COPY_SURE;
				return COPY_SWALLOW;
			}
			w->answered++;
			return COPY_PASS;
		}
		if (w->doubt != COPY_COUNTING)
			return broken(w, LOST_TRACK); /* only ReadyForQuery can come before the boundary */
		if (boundary(s) == COPY_BROKEN)
			return COPY_BROKEN;
		if (w->marker_sent) {
			if (type != 'I')
				return broken(w, LOST_TRACK);
			w->doubt = COPY_MARK_READY;
			return COPY_SWALLOW;
		}
		w->doubt = COPY_SURE; /* the answer goes on as usual */
	}
	switch (type) {
	case 'G':
		return copy_began(s);
	case 'C':
	case 'E':
		return w->in_copy ? copy_ended(s, type == 'C') : COPY_PASS;
	default:
		return COPY_PASS;
	}
}

bool copy_watch_send_marker(struct pg_server *s)
{
	struct copy_watch *w = &s->copy;
	if (pg_fe_query(&s->sock.wbuf, "") < 0)
		return false;
	w->doubt = COPY_COUNTING;
	w->marker_sent = true;
	return true;
}
