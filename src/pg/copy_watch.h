/*
 * copy_watch.h - the Syncs a client sends into a COPY FROM STDIN.
 *
 * While PostgreSQL reads COPY data it ignores Sync and Flush (protocol
 * docs, "COPY Operations"), for drivers that send "Execute, Sync" before
 * they learn the statement was a COPY (libpq does, in pipeline mode and
 * for PQexecParams). Such a Sync gets no ReadyForQuery when the copy runs,
 * so counting one answer per Sync (server->outstanding, the expect queue)
 * would wait for an answer that never comes.
 *
 * Sluice remembers, for the client's last few Execute/Query messages (the
 * "starts"), how many Syncs it sent after each before its CopyDone or
 * CopyFail (the "region"). The CopyInResponse belongs to the oldest request
 * not answered yet, which names the start. When the copy succeeds,
 * PostgreSQL read every region Sync inside the copy: none is answered.
 * When it fails, PostgreSQL answers those it read after the failure, and
 * which those are cannot be seen (a view or a BEFORE trigger fails before
 * the first read, bad data after it). Then the ReadyForQuery messages are
 * counted up to the first answer of anything the client sent after them;
 * when the client sent nothing more yet, sluice sends an empty Query as
 * that boundary (a marker) behind the client's next Sync and swallows its
 * answer. What was not answered before the boundary never will be.
 *
 * A request sent inside the copy, or between a failed copy's CopyDone and
 * the next Sync, makes PostgreSQL's answer depend on that same unknowable
 * order, and a copy whose start is too far back (more than COPY_STARTS
 * Execute/Query messages pipelined before its CopyInResponse) cannot be
 * placed: the client is disconnected with 08P01 instead.
 *
 * Owns: struct copy_watch (one per server, reset when a client is linked).
 * Every pooling mode; with the expect queue (track.h) the region's Sync
 * entries are taken out once their answers are known not to come.
 */
#ifndef SLUICE_COPY_WATCH_H
#define SLUICE_COPY_WATCH_H

#include <stdbool.h>
#include <stdint.h>

struct pg_server;

/* One Execute/Query the client sent, as far as COPY cares. */
struct copy_start {
	uint32_t req;            /* number of the request it belongs to (its batch's Sync, or the Query) */
	uint32_t syncs;          /* copy_watch.syncs when it went */
	uint32_t end_syncs;      /* copy_watch.syncs at the first CopyDone/CopyFail after it */
	uint32_t syncs_to_req;   /* Syncs after that end before the first request after it */
	bool is_query;           /* a simple Query (answered by its own ReadyForQuery) */
	bool ended;              /* end_syncs is set */
	bool mixed;              /* a request came after it before its end */
	bool req_unsynced;       /* a request came after its end before any Sync */
	bool req_after;          /* syncs_to_req is set */
};

#define COPY_STARTS 8 /* starts remembered; older ones cannot be placed */

enum copy_doubt {
	COPY_SURE,        /* nothing in doubt */
	COPY_WAIT_SYNC,   /* a copy failed: the marker goes behind the client's next Sync */
	COPY_MARK_DUE,    /* that Sync is forwarded: the marker goes once it is written */
	COPY_COUNTING,    /* counting ReadyForQuery up to the boundary */
	COPY_MARK_READY,  /* the marker's EmptyQueryResponse came: its ReadyForQuery is swallowed */
};

struct copy_watch {
	uint32_t requests;     /* client requests counted in server->outstanding, ever */
	uint32_t syncs;        /* Syncs forwarded, ever */
	uint32_t n_starts;     /* starts ever; the last COPY_STARTS are in start[] */
	struct copy_start start[COPY_STARTS];
	/* The running copy (in_copy), or the failed one (doubt). */
	uint32_t region;       /* Syncs PostgreSQL reads inside it */
	uint32_t post;         /* Syncs after its end, before the next request */
	uint32_t in_doubt;     /* doubt: ReadyForQuery messages that may come before the boundary */
	uint32_t answered;     /* doubt: ReadyForQuery messages since the failure */
	bool is_query;         /* started by a simple Query */
	bool in_copy;          /* the server sent CopyInResponse, the copy has not ended */
	bool region_open;      /* in_copy and the client has not sent CopyDone/CopyFail yet */
	bool req_unsynced;     /* a request after its end before any Sync */
	bool req_after;        /* a request after the Syncs behind its end: the boundary */
	bool marker_sent;      /* the boundary is sluice's empty Query */
	uint8_t doubt;         /* enum copy_doubt */
	const char *broken;    /* why the last COPY_BROKEN (static text) */
};

/* What copy_watch_client / copy_watch_server tell the caller. */
enum copy_verdict {
	COPY_PASS,        /* go on as usual */
	COPY_SWALLOW,     /* server message: the marker's answer, drop it */
	COPY_BROKEN,      /* fail the client (08P01): copy_watch_broken_reason() says why */
};

void copy_watch_reset(struct copy_watch *w);

/* bpf_bypass: the pair comes back from the kernel with outstanding
 * requests unanswered; the kernel's note of the client's latest
 * Execute/Query (struct pgf_copy: syncs, end_syncs, flags) places a copy it
 * may have started. */
void copy_watch_from_kernel(struct copy_watch *w, int outstanding, uint32_t syncs, uint32_t end_syncs,
			    uint32_t flags);

/* A client message of this type is forwarded to the server (not for
 * messages sluice dropped or answered itself). */
int copy_watch_client(struct pg_server *s, uint8_t type);
/* A client request counted in server->outstanding (forwarded or not). */
static inline void copy_watch_request(struct copy_watch *w) { w->requests++; }

/* bpf_bypass: while sluice waits for answers to what the kernel carried,
 * may this client message go on all the same? COPY data (the answer may
 * wait for it), a Sync inside or right after a copy (PostgreSQL may answer
 * nothing until it comes), and any message inside a running copy (refused
 * there). */
static inline bool copy_watch_passes_wait(const struct copy_watch *w, uint8_t type)
{
	if (type == 'd' || type == 'c' || type == 'f')
		return true;
	if (type == 'S')
		return w->in_copy || w->doubt == COPY_WAIT_SYNC;
	return w->in_copy && w->region_open;
}

/* Does copy_watch_server need to see server messages of this type? */
static inline bool copy_watch_wants(const struct copy_watch *w, uint8_t type)
{
	return type == 'G' || (w->in_copy && (type == 'C' || type == 'E')) ||
	       (w->doubt && type != 'N' && type != 'S' && type != 'A');
}

/* A server message of this type (whole), before statement tracking sees
 * it. */
int copy_watch_server(struct pg_server *s, uint8_t type);

/* The marker is due and may go now that the client's bytes before it
 * are written. */
static inline bool copy_watch_marker_due(const struct copy_watch *w) { return w->doubt == COPY_MARK_DUE; }
/* Queue the marker in s->sock.wbuf. Returns false without memory. */
bool copy_watch_send_marker(struct pg_server *s);

static inline const char *copy_watch_broken_reason(const struct copy_watch *w) { return w->broken; }

#endif
