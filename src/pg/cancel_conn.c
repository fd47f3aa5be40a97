/*
 * cancel_conn.c - see cancel_conn.h.
 */
#include "cancel_conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cancel.h"
#include "config.h"
#include "log.h"
#include "peer.h"
#include "pg_proto.h"
#include "runtime.h"
#include "pg_server.h"
#include "worker.h"

void cancel_request(struct worker *w, uint32_t pid, uint32_t key)
{
	if (cancel_dispatch(w, pid, key))
		return;
	/* Forwarded by a peer (peer.h): the key with its hops used up. */
	if (runtime_config()->peer_id && cancel_dispatch(w, pid, peer_issued_key(key)))
		return;
	if (!peer_forward_cancel(w, pid, key))
		log_debug("cancel request with unknown key ignored");
}

/* A connection that carries one CancelRequest to PostgreSQL. */
struct cancel_conn {
	struct loop_handle h; /* socket */
	struct list node;     /* in worker->cancels */
	struct worker *worker;
	uint8_t pkt[16];      /* the CancelRequest */
	uint8_t sent;         /* bytes of pkt sent */
	int64_t start_us;     /* for cancel_wait_timeout */
	struct pg_server *hold;  /* the server that must not go to another client until
			       * PostgreSQL has taken the cancel (it closes this
			       * connection then), or NULL */
	int *inflight;        /* a peer's count of forwarded requests (peer.c), or NULL */
};

static void cancel_conn_free(struct cancel_conn *cc)
{
	struct pg_server *s = cc->hold;
	loop_forget(&cc->worker->loop, &cc->h);
	close(cc->h.fd);
	list_del(&cc->node);
	if (cc->inflight)
		__atomic_sub_fetch(cc->inflight, 1, __ATOMIC_RELAXED);
	free(cc);
	if (s)
		server_cancel_done(s);
}

void cancel_forget_server(struct worker *w, struct pg_server *s)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &w->cancels) {
		struct cancel_conn *cc = list_entry(pos, struct cancel_conn, node);
		if (cc->hold == s)
			cc->hold = NULL;
	}
}

static void cancel_conn_cb(struct loop_handle *h, uint32_t revents)
{
	struct cancel_conn *cc = (struct cancel_conn *)h;
	if (revents & (EPOLLERR | EPOLLHUP)) {
		cancel_conn_free(cc);
		return;
	}
	if (cc->sent == sizeof(cc->pkt)) {
		/* PostgreSQL signalled the backend and closed: done. */
		uint8_t b[16];
		ssize_t n = recv(h->fd, b, sizeof(b), 0);
		if (n > 0 || (n < 0 && errno == EAGAIN))
			return;
		cancel_conn_free(cc);
		return;
	}
	while (cc->sent < sizeof(cc->pkt)) {
		ssize_t n = send(h->fd, cc->pkt + cc->sent, sizeof(cc->pkt) - cc->sent, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN)
				return;
			break;
		}
		cc->sent = (uint8_t)(cc->sent + n);
	}
	/* Sent (or failed). PostgreSQL acts on the packet, then closes: a
	 * server held for the cancel waits for that; else nothing to wait for. */
	if (cc->sent == sizeof(cc->pkt) && cc->hold && loop_set(&cc->worker->loop, &cc->h, EPOLLIN | EPOLLRDHUP) == 0)
		return;
	cancel_conn_free(cc);
}

static void send_request(struct worker *w, const struct sockaddr *addr, socklen_t len,
			 uint32_t pid, uint32_t key, struct pg_server *hold, int *inflight)
{
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct cancel_conn *cc = fd >= 0 ? calloc(1, sizeof(*cc)) : NULL;
	if (!cc) {
		if (fd >= 0)
			close(fd);
		if (inflight)
			__atomic_sub_fetch(inflight, 1, __ATOMIC_RELAXED);
		return;
	}
	cc->inflight = inflight;
	if (hold) {
		cc->hold = hold;
		hold->cancels_pending++;
	}
	cc->h.fd = fd;
	cc->h.cb = cancel_conn_cb;
	cc->worker = w;
	cc->start_us = w->loop.now_us;
	pg_fe_cancel(cc->pkt, pid, key);
	list_add_tail(&w->cancels, &cc->node);
	if (connect(fd, addr, len) < 0 && errno != EINPROGRESS) {
		cancel_conn_free(cc);
		return;
	}
	if (loop_set(&w->loop, &cc->h, EPOLLOUT) < 0)
		cancel_conn_free(cc);
}

void cancel_send(struct worker *w, const struct sockaddr *addr, socklen_t len,
		 uint32_t pid, uint32_t key, struct pg_server *hold)
{
	send_request(w, addr, len, pid, key, hold, NULL);
}

void cancel_forward(struct worker *w, const struct sockaddr *addr, socklen_t len,
		    uint32_t pid, uint32_t key, int *inflight)
{
	send_request(w, addr, len, pid, key, NULL, inflight);
}

/* cancel_wait_timeout: a cancel that PostgreSQL (or a peer) has not taken
 * by then is given up, and the server it held goes back to its pool; 0
 * waits for as long as it takes. */
void cancel_tick(struct worker *w, int64_t now_us, bool all)
{
	int64_t limit = runtime_config()->cancel_wait_timeout_us;
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &w->cancels) {
		struct cancel_conn *cc = list_entry(pos, struct cancel_conn, node);
		if (all || (limit > 0 && now_us - cc->start_us > limit))
			cancel_conn_free(cc);
	}
}
