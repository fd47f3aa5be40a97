/*
 * cancel.c - see cancel.h. The registry lock is taken at login, close and
 * per CancelRequest; reading c->server under it is safe only on c's own
 * worker, which is the only thread that changes it.
 */
#include "cancel.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth_crypto.h"
#include "client.h"
#include "log.h"
#include "pg_proto.h"
#include "pool.h"
#include "peer.h"
#include "runtime.h"
#include "config.h"
#include "server.h"
#include "worker.h"

#define CANCEL_BUCKETS 4096

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct client *buckets[CANCEL_BUCKETS];

static unsigned bucket_of(uint32_t pid, uint32_t key)
{
	return (unsigned)((pid * 2654435761u) ^ key) % CANCEL_BUCKETS;
}

static struct client *find_locked(uint32_t pid, uint32_t key)
{
	for (struct client *c = buckets[bucket_of(pid, key)]; c; c = c->cancel_next)
		if (c->cancel_pid == pid && c->cancel_key == key)
			return c;
	return NULL;
}

void cancel_register(struct client *c)
{
	pthread_mutex_lock(&registry_lock);
	/* A client handed over by the previous process keeps its key (the
	 * application may still cancel with it) unless it collides. */
	if ((c->cancel_pid || c->cancel_key) && !find_locked(c->cancel_pid, c->cancel_key))
		goto insert;
	for (;;) {
		uint32_t v[2];
		if (auth_random_bytes((uint8_t *)v, sizeof(v)) < 0)
			abort(); /* no randomness: cancel keys would be guessable */
		/* PostgreSQL's pids are positive; keep ours looking like one. */
		v[0] &= 0x7fffffff;
		peer_shape_key(&v[0], &v[1]);
		if ((v[0] == 0 && v[1] == 0) || find_locked(v[0], v[1]))
			continue;
		c->cancel_pid = v[0];
		c->cancel_key = v[1];
		break;
	}
insert:;
	unsigned b = bucket_of(c->cancel_pid, c->cancel_key);
	c->cancel_next = buckets[b];
	buckets[b] = c;
	pthread_mutex_unlock(&registry_lock);
}

void cancel_unregister(struct client *c)
{
	pthread_mutex_lock(&registry_lock);
	struct client **pp = &buckets[bucket_of(c->cancel_pid, c->cancel_key)];
	while (*pp && *pp != c)
		pp = &(*pp)->cancel_next;
	if (*pp)
		*pp = c->cancel_next;
	c->cancel_next = NULL;
	pthread_mutex_unlock(&registry_lock);
}

void cancel_set_worker(struct client *c, struct worker *w)
{
	pthread_mutex_lock(&registry_lock);
	c->worker = w;
	pthread_mutex_unlock(&registry_lock);
}

static void post_cancel(struct worker *to, uint32_t pid, uint32_t key)
{
	struct mail *m = calloc(1, sizeof(*m));
	if (!m)
		return;
	m->kind = MAIL_CANCEL;
	m->key_pid = pid;
	m->key = key;
	worker_post(to, m);
}

/* Cancel on the client's own worker: find its server and send. */
void cancel_deliver(struct worker *w, uint32_t pid, uint32_t key)
{
	struct sockaddr_storage addr;
	socklen_t len = 0;
	uint32_t bpid = 0, bkey = 0;
	pthread_mutex_lock(&registry_lock);
	struct client *c = find_locked(pid, key);
	bool in_kernel = c && c->worker == w && c->bp_kernel && !c->closing;
	/* The client moved to another worker while the mail was on its way. */
	struct worker *moved_to = c && c->worker != w ? c->worker : NULL;
	pthread_mutex_unlock(&registry_lock);
	if (moved_to) {
		post_cancel(moved_to, pid, key);
		return;
	}
	/* bpf_bypass: the kernel may have linked the client to a server; only
	 * a pair in user space has a server that is surely its own. c stays
	 * valid: only this worker frees it, at its safe point. */
	if (in_kernel)
		client_take_from_kernel(c);
	pthread_mutex_lock(&registry_lock);
	c = find_locked(pid, key);
	struct server *s = NULL;
	if (c && c->worker == w && c->server && !c->closing) {
		s = c->server;
		const struct pool_host *h = server_host(s);
		memcpy(&addr, &h->addr, h->addr_len);
		len = h->addr_len;
		bpid = s->backend_pid;
		bkey = s->backend_key;
	}
	pthread_mutex_unlock(&registry_lock);
	if (len)
		cancel_send(w, (struct sockaddr *)&addr, len, bpid, bkey, s);
}

void cancel_request(struct worker *w, uint32_t pid, uint32_t key)
{
	pthread_mutex_lock(&registry_lock);
	struct client *c = find_locked(pid, key);
	if (!c && runtime_config()->peer_id && (c = find_locked(pid, peer_issued_key(key))) != NULL)
		key = c->cancel_key; /* forwarded by a peer: hops used up */
	struct worker *target = c ? c->worker : NULL;
	pthread_mutex_unlock(&registry_lock);
	if (!target) {
		if (!peer_forward_cancel(w, pid, key))
			log_debug("cancel request with unknown key ignored");
		return;
	}
	if (target == w)
		cancel_deliver(w, pid, key);
	else
		post_cancel(target, pid, key);
}

/* A connection that carries one CancelRequest to PostgreSQL. */
struct cancel_conn {
	struct loop_handle h; /* socket */
	struct list node;     /* in worker->cancels */
	struct worker *worker;
	uint8_t pkt[16];      /* the CancelRequest */
	uint8_t sent;         /* bytes of pkt sent */
	int64_t start_us;     /* for cancel_wait_timeout */
	struct server *hold;  /* the server that must not go to another client until
			       * PostgreSQL has taken the cancel (it closes this
			       * connection then), or NULL */
	int *inflight;        /* a peer's count of forwarded requests (peer.c), or NULL */
};

static void cancel_conn_free(struct cancel_conn *cc)
{
	struct server *s = cc->hold;
	loop_forget(&cc->worker->loop, &cc->h);
	close(cc->h.fd);
	list_del(&cc->node);
	if (cc->inflight)
		__atomic_sub_fetch(cc->inflight, 1, __ATOMIC_RELAXED);
	free(cc);
	if (s)
		server_cancel_done(s);
}

void cancel_forget_server(struct worker *w, struct server *s)
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
			 uint32_t pid, uint32_t key, struct server *hold, int *inflight)
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
		 uint32_t pid, uint32_t key, struct server *hold)
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
