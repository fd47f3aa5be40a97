/*
 * worker.c - see worker.h. Listening sockets are opened on the main
 * thread before the workers start so that a bad address or a busy port is
 * reported at start-up with a non-zero exit.
 *
 * When accept() runs out of file descriptors (or the kernel of memory),
 * the connection stays in the kernel's queue and the listener stays
 * readable, so a level-triggered loop would call accept() again at once,
 * and fail again, for as long as the shortage lasts. Instead the worker
 * stops polling its listeners for a pause that doubles while the failures
 * go on (ACCEPT_BACKOFF_MIN_US up to ACCEPT_BACKOFF_MAX_US) and starts
 * short again after an accept that works; a client of ours that goes
 * away ends the pause early, since it just gave back an fd. PgBouncer
 * does the same with its pooler suspend/resume. The queued connections
 * wait in the kernel meanwhile; clients already connected are not
 * affected. The log line is rate-limited process-wide (runtime.c).
 */
#include "worker.h"
#include "bypass.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <linux/filter.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "balance.h"
#include "cancel.h"
#include "client.h"
#include "config.h"
#include "control.h"
#include "iobuf.h"
#include "log.h"
#include "pool.h"
#include "route.h"
#include "proto.h"
#include "runtime.h"
#include "server.h"
#include "sockopt.h"

#define TICK_US 100000       /* periodic checks: timeouts, reserve pool */
#define ACCEPTS_PER_WAKEUP 64 /* bound so one listener cannot starve the rest */
#define ACCEPT_BACKOFF_MIN_US 100000  /* first pause after accept() ran short */
#define ACCEPT_BACKOFF_MAX_US 2000000 /* longest pause: how late, at worst, a queued
				       * client is noticed once fds are free again */

struct worker *workers;
int n_workers;
static __thread struct worker *current_worker;
static int unix_listen_fd = -1;      /* shared by all workers (EPOLLEXCLUSIVE) */
static char unix_listen_path[108];
/* The protocols, by enum config_protocol (NULL: none built in); the
 * listeners of each know theirs (worker->listen_proto). */
static const struct proto_ops *const *protocols;

struct worker *worker_self(void) { return current_worker; }

uint64_t worker_next_id(struct worker *w)
{
	/* Ids are unique across workers: worker id in the low bits. */
	return ++w->next_conn_id * (uint64_t)n_workers + (uint64_t)w->id;
}

void worker_post(struct worker *w, struct mail *m)
{
	m->next = NULL;
	pthread_mutex_lock(&w->mail_lock);
	if (w->mail_tail)
		w->mail_tail->next = m;
	else
		w->mail_head = m;
	w->mail_tail = m;
	pthread_mutex_unlock(&w->mail_lock);
	uint64_t one = 1;
	if (write(w->mailbox_h.fd, &one, sizeof(one)) < 0)
		(void)0; /* counter overflow cannot happen in practice; reader drains */
}

struct run_all {
	void (*fn)(struct worker *w, void *arg);
	void (*done)(void *arg);
	void *arg;
	int pending;            /* workers that have not run fn yet (atomic) */
};

int worker_run_all(void (*fn)(struct worker *w, void *arg), void (*done)(void *arg), void *arg)
{
	struct run_all *r = calloc(1, sizeof(*r));
	struct mail **m = calloc((size_t)n_workers, sizeof(*m));
	bool ok = r && m;
	for (int i = 0; ok && i < n_workers; i++)
		ok = (m[i] = calloc(1, sizeof(**m))) != NULL;
	if (!ok) {
		for (int i = 0; m && i < n_workers; i++)
			free(m[i]);
		free(m);
		free(r);
		return -ENOMEM;
	}
	*r = (struct run_all){ .fn = fn, .done = done, .arg = arg, .pending = n_workers };
	for (int i = 0; i < n_workers; i++) {
		m[i]->kind = MAIL_RUN;
		m[i]->run = r;
		worker_post(&workers[i], m[i]);
	}
	free(m);
	return 0;
}

int worker_run_on(struct worker *w, void (*fn)(struct worker *w, void *arg), void *arg)
{
	struct run_all *r = calloc(1, sizeof(*r));
	struct mail *m = calloc(1, sizeof(*m));
	if (!r || !m) {
		free(r);
		free(m);
		return -ENOMEM;
	}
	*r = (struct run_all){ .fn = fn, .arg = arg, .pending = 1 };
	m->kind = MAIL_RUN;
	m->run = r;
	worker_post(w, m);
	return 0;
}

static void run_mail(struct worker *w, struct run_all *r)
{
	r->fn(w, r->arg);
	if (__atomic_sub_fetch(&r->pending, 1, __ATOMIC_ACQ_REL) == 0) {
		if (r->done)
			r->done(r->arg);
		free(r);
	}
}

static void mailbox_cb(struct loop_handle *h, uint32_t revents)
{
	struct worker *w = list_entry(h, struct worker, mailbox_h);
	uint64_t v;
	if (read(h->fd, &v, sizeof(v)) < 0)
		(void)0;
	pthread_mutex_lock(&w->mail_lock);
	struct mail *m = w->mail_head;
	w->mail_head = w->mail_tail = NULL;
	pthread_mutex_unlock(&w->mail_lock);
	while (m) {
		struct mail *next = m->next;
		switch (m->kind) {
		case MAIL_HANDOFF:
			m->client->proto->client_on_server(m->client, m->server);
			break;
		case MAIL_FAIL_CLIENT:
			m->client->handoff_pending = false;
			if (m->client->closing) {
				worker_bury_client(w, m->client);
			} else {
				m->client->proto->client_fail(m->client, m->sqlstate, m->message);
			}
			break;
		case MAIL_REROUTE:
			m->client->handoff_pending = false;
			if (m->client->closing)
				worker_bury_client(w, m->client);
			else
				m->client->proto->client_reroute(m->client);
			break;
		case MAIL_CANCEL:
			cancel_deliver(w, m->key_pid, m->key);
			break;
		case MAIL_POKE_POOL:
			pool_serve_waiters(m->pool, w);
			break;
		case MAIL_ADOPT_CLIENT:
			worker_add_client(w, m->client);
			m->client->proto->client_arrive(m->client);
			break;
		case MAIL_STOP:
			w->stopping = 1;
			break;
		case MAIL_RUN:
			run_mail(w, m->run);
			break;
		}
		free(m);
		m = next;
	}
}

static void format_peer(const struct sockaddr_storage *ss, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
	} else {
		snprintf(out, len, "unix");
		return;
	}
	snprintf(out, len, "%s:%d", host, port);
}

/* Poll the listeners exactly when nothing holds them off: neither a pause
 * for want of fds (accept_paused) nor SUSPEND, shutdown or takeover
 * (suspended_accept). While off, new connections wait in the kernel's
 * accept queue (up to listen_backlog). */
static void update_listeners(struct worker *w)
{
	bool on = !w->accept_paused && !w->suspended_accept;
	w->unix_polled = balance_worker_active(w);
	for (int i = 0; i < w->n_listen; i++) {
		if (w->listen[i].fd < 0)
			continue;
		/* The unix socket is shared: only workers taking traffic poll
		 * it (balance.h). TCP connections are steered in the kernel. */
		bool poll = on && (w->listen[i].fd != unix_listen_fd || w->unix_polled);
		uint32_t ev = poll ? EPOLLIN : 0;
		if (poll && w->listen[i].fd == unix_listen_fd)
			ev |= EPOLLEXCLUSIVE;
		/* EPOLLEXCLUSIVE cannot be MODed: remove and add again. */
		if (w->listen[i].events && poll)
			continue;
		loop_set(&w->loop, &w->listen[i], ev);
	}
}

void worker_set_accepting(struct worker *w, bool on)
{
	w->suspended_accept = !on;
	update_listeners(w);
}

void worker_close_listeners(struct worker *w)
{
	for (int i = 0; i < w->n_listen; i++) {
		if (w->listen[i].fd < 0)
			continue;
		loop_set(&w->loop, &w->listen[i], 0);
		/* The shared unix socket is closed once, by worker_close_shared_listeners. */
		if (w->listen[i].fd != unix_listen_fd)
			close(w->listen[i].fd);
		w->listen[i].fd = -1;
	}
}

int worker_listener_fds(int *fds, uint8_t *kinds, int max)
{
	int n = 0;
	for (int i = 0; i < n_workers; i++) {
		for (int k = 0; k < workers[i].n_listen && n < max; k++) {
			int fd = workers[i].listen[k].fd;
			if (fd < 0 || fd == unix_listen_fd)
				continue;
			fds[n] = fd;
			kinds[n++] = 'T';
		}
	}
	if (unix_listen_fd >= 0 && n < max) {
		fds[n] = unix_listen_fd;
		kinds[n++] = 'U';
	}
	return n;
}

void worker_forget_listeners(void)
{
	/* The new process owns the sockets and the unix socket's path now.
	 * Workers have stopped polling them (PHASE_HANDOVER); the fds are
	 * closed at exit but the path must stay. */
	unix_listen_path[0] = '\0';
}

void worker_close_shared_listeners(void)
{
	if (unix_listen_fd >= 0) {
		close(unix_listen_fd);
		if (unix_listen_path[0])
			unlink(unix_listen_path);
		unix_listen_fd = -1;
	}
}

/* accept() failed with err (EMFILE, ENFILE, ENOBUFS or ENOMEM): pause
 * every listener of w, for twice as long as the previous pause if there
 * was no successful accept since (see the file comment). */
static void accept_pause(struct worker *w, int err)
{
	int64_t now = w->loop.now_us;
	int64_t b = w->accept_backoff_us ? 2 * w->accept_backoff_us : ACCEPT_BACKOFF_MIN_US;
	w->accept_backoff_us = b < ACCEPT_BACKOFF_MAX_US ? b : ACCEPT_BACKOFF_MAX_US;
	w->accept_resume_us = now + w->accept_backoff_us;
	w->accept_paused = true;
	update_listeners(w);
	/* Every worker fails at the same rate in a shortage of the process's
	 * fds: one line now and then for all of them says enough, and the
	 * metric has the exact count. */
	uint64_t unlogged = 0;
	if (!runtime_accept_failed(err, now, &unlogged))
		return;
	if (unlogged)
		log_error("accept failed: %s; pausing new connections (%" PRIu64 " more failure%s since the last message)",
			  strerror(err), unlogged, unlogged == 1 ? "" : "s");
	else
		log_error("accept failed: %s; pausing new connections", strerror(err));
}

/* The pause is over, or an fd was freed (reap): listen again. If the
 * shortage goes on, the next accept fails and pauses for longer. */
static void accept_resume_if_due(struct worker *w)
{
	if (!w->accept_paused || w->loop.now_us < w->accept_resume_us)
		return;
	w->accept_paused = false;
	update_listeners(w);
}

static void listen_cb(struct loop_handle *h, uint32_t revents)
{
	struct worker *w = current_worker;
	/* Another of our listeners paused accepting earlier in this wakeup,
	 * or a mail in this wakeup stopped it (SUSPEND, shutdown, online
	 * restart: the connection waits for the next process); the event
	 * for this one was fetched before that. */
	if (w->accept_paused || w->suspended_accept)
		return;
	const struct proto_ops *proto = w->listen_proto[h - w->listen];
	for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(h->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			int err = errno;
			if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
				accept_pause(w, err);
			return;
		}
		w->accept_backoff_us = 0; /* the shortage is over: a new one starts with a short pause */
		if (ss.ss_family != AF_UNIX)
			sockopt_tune_tcp(fd, runtime_config());
		char peer[48];
		format_peer(&ss, peer, sizeof(peer));
		/* With TCP_DEFER_ACCEPT the kernel hands over a TCP connection
		 * once its first bytes are in (or after 45 s of silence). */
		proto->client_accept(w, fd, peer, ss.ss_family != AF_UNIX && runtime_config()->tcp_defer_accept);
	}
}

void worker_add_client(struct worker *w, struct client *c)
{
	list_add_tail(&w->clients, &c->node);
	__atomic_add_fetch(&w->n_clients, 1, __ATOMIC_RELAXED);
}

void worker_remove_client(struct worker *w, struct client *c)
{
	list_del(&c->node);
	__atomic_sub_fetch(&w->n_clients, 1, __ATOMIC_RELAXED);
}

/* ---- moving clients between workers (balance.h) ---- */

void worker_move_client(struct worker *w, struct client *c, struct worker *to)
{
	c->move_to = to;
	c->move_next = w->movers;
	w->movers = c;
}

/* Safe point: the clients marked to move leave w's list for their new
 * worker, which adopts them from its mailbox. */
static void send_movers(struct worker *w)
{
	while (w->movers) {
		struct client *c = w->movers;
		w->movers = c->move_next;
		c->move_next = NULL;
		if (c->closing)
			continue; /* closed meanwhile (KILL_CLIENT): buried, freed below */
		struct mail *m = calloc(1, sizeof(*m));
		if (!m) { /* stay here after all */
			c->proto->client_stay(c);
			continue;
		}
		worker_remove_client(w, c);
		cancel_set_worker(c, c->move_to);
		m->kind = MAIL_ADOPT_CLIENT;
		m->client = c;
		worker_post(c->move_to, m);
	}
}

void worker_bury_client(struct worker *w, struct client *c)
{
	if (c->buried)
		return;
	c->buried = true;
	c->dead_next = w->dead_clients;
	w->dead_clients = c;
}

void worker_bury_server(struct worker *w, struct server *s)
{
	s->dead_next = w->dead_servers;
	w->dead_servers = s;
}

static void reap(struct worker *w)
{
	send_movers(w);
	/* Each of these clients has closed its socket: while accepting is
	 * paused for want of fds, one is free now, so try again without
	 * waiting out the pause. Never a busy loop: at most one try per
	 * wakeup in which a client went away, and a try that fails pauses
	 * again, for longer. */
	if (w->dead_clients && w->accept_paused)
		w->accept_resume_us = w->loop.now_us;
	while (w->dead_clients) {
		struct client *c = w->dead_clients;
		w->dead_clients = c->dead_next;
		c->proto->client_free(c); /* unlinks c->node */
	}
	while (w->dead_servers) {
		struct server *s = w->dead_servers;
		w->dead_servers = s->dead_next;
		s->pool->proto->server_free(s);
	}
}

static void tick(struct worker *w)
{
	int64_t now = w->loop.now_us;
	int busy = 0;
	/* Worker 0 may change which workers are active at any time: read
	 * once, the next tick catches up. */
	bool active = balance_worker_active(w);
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &w->clients) {
		struct client *c = list_entry(pos, struct client, node);
		if (c->closing || c->moving)
			continue;
		if (c->state != CLIENT_IDLE || now - c->last_active_us < TICK_US)
			busy++;
		c->proto->client_tick(c, now);
		/* An inactive worker's idle clients go too, not only busy
		 * ones at the end of a transaction. */
		if (!active)
			c->proto->client_maybe_move(c);
	}
	balance_tick(w, busy);
	if (w->unix_polled != balance_worker_active(w))
		update_listeners(w);
	list_for_each_safe(pos, tmp, &w->servers) {
		struct server *s = list_entry(pos, struct server, node);
		if (!s->closed)
			s->pool->proto->server_tick(s, now);
	}
	pool_tick(w, now);
	route_tick(w, now);
	for (int i = 0; i < CONFIG_PROTOCOLS; i++)
		if (protocols[i] && protocols[i]->worker_tick)
			protocols[i]->worker_tick(w, now, false);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	current_worker = w;
	bypass_worker_started(w);
	w->loop.now_us = loop_now_us();
	w->next_tick_us = w->loop.now_us + TICK_US;
	while (!w->stopping) {
		int64_t due = w->next_tick_us;
		if (w->accept_paused && w->accept_resume_us < due)
			due = w->accept_resume_us;
		int64_t wait = due - loop_now_us();
		int timeout_ms = wait <= 0 ? 0 : (int)((wait + 999) / 1000);
		int rc = loop_run_once(&w->loop, timeout_ms);
		if (rc < 0) {
			log_error("worker %d: epoll_wait failed: %s", w->id, strerror(-rc));
			break;
		}
		reap(w);
		accept_resume_if_due(w);
		if (w->loop.now_us >= w->next_tick_us) {
			tick(w);
			reap(w);
			w->next_tick_us = w->loop.now_us + TICK_US;
		}
	}
	/* Shutdown: close everything this worker owns. Clients about to
	 * move stay and are closed with the rest. */
	while (w->movers) {
		struct client *c = w->movers;
		w->movers = c->move_next;
		c->move_next = NULL;
		c->moving = false;
	}
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &w->clients) {
		struct client *c = list_entry(pos, struct client, node);
		if (c->closing) { /* zombie waiting for a mail that will not come */
			worker_bury_client(w, c);
		} else {
			c->proto->client_fail(c, "57P01", "sluice is shutting down");
		}
	}
	list_for_each_safe(pos, tmp, &w->servers) {
		struct server *s = list_entry(pos, struct server, node);
		s->pool->proto->server_close(s, "shutdown");
	}
	reap(w);
	for (int i = 0; i < CONFIG_PROTOCOLS; i++)
		if (protocols[i] && protocols[i]->worker_tick)
			protocols[i]->worker_tick(w, 0, true);
	iobuf_thread_cleanup();
	return NULL;
}

/* ---- listening sockets ---- */

/* Whether another process listens on addr already: a socket without
 * SO_REUSEPORT cannot bind beside a listener. Without so_reuseport, as
 * PgBouncer, a second instance on the port is refused at start-up rather
 * than silently given half of the connections (the workers' own sockets
 * must all carry SO_REUSEPORT, so they cannot tell by themselves). */
static bool port_taken(const struct addrinfo *ai)
{
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false; /* the real bind says what is wrong */
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	bool taken = bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno == EADDRINUSE;
	close(fd);
	return taken;
}

/* exclusive: refuse the port when another process listens on it. */
static int open_tcp_listener(const char *host, int port, int backlog, bool exclusive, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
	struct addrinfo *res = NULL;
	char portstr[16];
	snprintf(portstr, sizeof(portstr), "%d", port);
	int rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc || !res) {
		snprintf(err, errlen, "listen_addr %s: %s", host, gai_strerror(rc));
		return -EINVAL;
	}
	if (exclusive && port_taken(res)) {
		snprintf(err, errlen, "cannot listen on %s:%d: another process listens on it (so_reuseport = 1 lets "
			 "processes share a port)", host, port);
		freeaddrinfo(res);
		return -EADDRINUSE;
	}
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket for %s: %s", host, strerror(errno));
		freeaddrinfo(res);
		return -errno;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (res->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, backlog) < 0) {
		snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, strerror(errno));
		close(fd);
		freeaddrinfo(res);
		return -EADDRINUSE;
	}
	freeaddrinfo(res);
	return fd;
}

/* unix_socket_group: hand the socket file to that group, so that with
 * unix_socket_mode 0770 (say) its members may connect and others not. */
static int set_unix_socket_group(const char *path, const char *group, char *err, size_t errlen)
{
	if (!group || !*group)
		return 0;
	struct group gr, *found = NULL;
	char buf[16384];
	int rc = getgrnam_r(group, &gr, buf, sizeof(buf), &found);
	if (!found) {
		snprintf(err, errlen, "unix_socket_group '%.64s': %s", group,
			 rc ? strerror(rc) : "no such group");
		return -EINVAL;
	}
	if (chown(path, (uid_t)-1, gr.gr_gid) < 0) {
		rc = -errno;
		snprintf(err, errlen, "unix_socket_group '%.64s': cannot change the group of %s: %s",
			 group, path, strerror(errno));
		return rc;
	}
	return 0;
}

static int open_unix_listener(const struct config *cfg, char *err, size_t errlen)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	int n = snprintf(un.sun_path, sizeof(un.sun_path), "%s/.s.PGSQL.%d", cfg->unix_socket_dir, cfg->listen_port);
	if (n < 0 || (size_t)n >= sizeof(un.sun_path)) {
		snprintf(err, errlen, "unix_socket_dir too long");
		return -ENAMETOOLONG;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "unix socket: %s", strerror(errno));
		return -errno;
	}
	/* A live listener on the path means another instance runs. */
	if (connect(fd, (struct sockaddr *)&un, sizeof(un)) == 0) {
		snprintf(err, errlen, "another process listens on %s", un.sun_path);
		close(fd);
		return -EADDRINUSE;
	}
	close(fd);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	unlink(un.sun_path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&un, sizeof(un)) < 0 ||
	    listen(fd, cfg->listen_backlog) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", un.sun_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -EADDRINUSE;
	}
	chmod(un.sun_path, (mode_t)cfg->unix_socket_mode);
	int rc = set_unix_socket_group(un.sun_path, cfg->unix_socket_group, err, errlen);
	if (rc < 0) {
		close(fd);
		unlink(un.sun_path);
		return rc;
	}
	snprintf(unix_listen_path, sizeof(unix_listen_path), "%s", un.sun_path);
	return fd;
}

/* balance.h: new TCP connections go to one of the first `active` sockets
 * of each listening address's SO_REUSEPORT group (socket i is worker i's),
 * chosen at random by a classic BPF program; with every worker active the
 * program goes and the kernel's hash chooses, as without it. Attaching to
 * one socket of a group sets the group's program: worker 0's sockets
 * stand for their groups. Any thread (setsockopt only). */
int worker_steer_listeners(int active, char *err, size_t errlen)
{
	struct sock_filter one[] = { BPF_STMT(BPF_RET | BPF_K, 0) };
	struct sock_filter some[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)(SKF_AD_OFF + SKF_AD_RANDOM)),
		BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, (uint32_t)active),
		BPF_STMT(BPF_RET | BPF_A, 0),
	};
	struct sock_fprog prog = active <= 1 ? (struct sock_fprog){ 1, one } : (struct sock_fprog){ 3, some };
	struct worker *w = &workers[0];
	for (int i = 0; i < w->n_listen; i++) {
		int fd = w->listen[i].fd;
		if (fd < 0 || fd == unix_listen_fd)
			continue;
		int rc = active >= n_workers ? setsockopt(fd, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &fd, sizeof(fd))
					     : setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof(prog));
		if (rc < 0 && !(active >= n_workers && errno == ENOENT)) {
			snprintf(err, errlen, "%s: %s", active >= n_workers ? "SO_DETACH_REUSEPORT_BPF" : "SO_ATTACH_REUSEPORT_CBPF",
				 strerror(errno));
			return -errno;
		}
	}
	return 0;
}

static int add_listener(struct worker *w, int fd, const struct proto_ops *proto)
{
	if (w->n_listen >= WORKER_MAX_LISTEN)
		return -E2BIG;
	w->listen_proto[w->n_listen] = proto;
	w->listen[w->n_listen++] = (struct loop_handle){ .fd = fd, .cb = listen_cb };
	return 0;
}

/* Open every TCP address of addrs (listen_addr's syntax) on port for
 * worker w, for clients of proto. */
static int open_tcp_for_worker(struct worker *w, const struct config *cfg, const char *addrs, int port,
			       const struct proto_ops *proto, char *err, size_t errlen)
{
	if (!addrs || !*addrs)
		return 0;
	char *list = strdup(addrs);
	if (!list)
		return -ENOMEM;
	int rc = 0;
	char *save = NULL;
	for (char *tok = strtok_r(list, ", ", &save); tok && rc == 0; tok = strtok_r(NULL, ", ", &save)) {
		const char *hosts[2] = { tok, NULL };
		if (strcmp(tok, "*") == 0) {
			hosts[0] = "0.0.0.0";
			hosts[1] = "::";
		}
		for (int i = 0; i < 2 && hosts[i] && rc == 0; i++) {
			/* The first worker's socket is the first of its group. */
			int fd = open_tcp_listener(hosts[i], port, cfg->listen_backlog, w->id == 0 && !cfg->so_reuseport,
						   err, errlen);
			if (fd < 0) {
				/* "*" on a host without IPv6 still works with IPv4 alone. */
				if (i == 1)
					continue;
				rc = fd;
				break;
			}
			sockopt_tune_listener(fd, cfg);
			rc = add_listener(w, fd, proto);
		}
	}
	free(list);
	return rc;
}

/* Online restart: the old process passes its TCP sockets worker by worker,
 * so the r-th socket of a listening address was its worker r's, and is
 * socket r of that address's SO_REUSEPORT group. It goes to worker
 * r mod n_workers here, so that socket i of each group stays worker i's
 * (balance.h steers by that number). */
static int inherited_rank(const int *fds, int k)
{
	struct sockaddr_storage a, b;
	socklen_t la = sizeof(a);
	if (getsockname(fds[k], (struct sockaddr *)&a, &la) < 0)
		return k;
	int rank = 0;
	for (int j = 0; j < k; j++) {
		socklen_t lb = sizeof(b);
		if (getsockname(fds[j], (struct sockaddr *)&b, &lb) == 0 && lb == la && memcmp(&a, &b, la) == 0)
			rank++;
	}
	return rank;
}

/* Which protocol an inherited listening socket serves: MySQL's when it is
 * on mysql_listen_port (the two ports differ: config.c). */
static const struct proto_ops *inherited_proto(const struct config *cfg, int fd)
{
	struct sockaddr_storage a;
	socklen_t la = sizeof(a);
	int port = -1;
	if (getsockname(fd, (struct sockaddr *)&a, &la) == 0)
		port = a.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&a)->sin6_port)
		       : a.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&a)->sin_port) : -1;
	bool mysql = cfg->mysql_listen_port && port == cfg->mysql_listen_port;
	return protocols[mysql ? CONFIG_PROTO_MYSQL : CONFIG_PROTO_PG];
}

int worker_start_all(const struct config *cfg, const struct proto_ops *const *protos, const int *inherited,
		     int n_inherited, int inherited_unix)
{
	protocols = protos;
	const struct proto_ops *pg = protos[CONFIG_PROTO_PG], *my = protos[CONFIG_PROTO_MYSQL];
	char err[256] = "";
	n_workers = cfg->workers > 0 ? cfg->workers : 1;
	workers = calloc((size_t)n_workers, sizeof(*workers));
	if (!workers)
		return -ENOMEM;
	if (inherited_unix >= 0) {
		unix_listen_fd = inherited_unix;
		snprintf(unix_listen_path, sizeof(unix_listen_path), "%s/.s.PGSQL.%d",
			 cfg->unix_socket_dir, cfg->listen_port);
	} else if (cfg->unix_socket_dir && *cfg->unix_socket_dir) {
		unix_listen_fd = open_unix_listener(cfg, err, sizeof(err));
		if (unix_listen_fd < 0) {
			log_error("%s", err);
			return unix_listen_fd;
		}
	}
	for (int i = 0; i < n_workers; i++) {
		struct worker *w = &workers[i];
		w->id = i;
		list_init(&w->clients);
		list_init(&w->servers);
		list_init(&w->cancels);
		pthread_mutex_init(&w->mail_lock, NULL);
		int rc = loop_init(&w->loop);
		if (rc < 0)
			return rc;
		int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (efd < 0)
			return -errno;
		w->mailbox_h = (struct loop_handle){ .fd = efd, .cb = mailbox_cb };
		loop_set(&w->loop, &w->mailbox_h, EPOLLIN);
		/* Online restart: the old process's sockets, shared out among
		 * the workers (SO_REUSEPORT spreads connections over them). */
		int got_pg = 0, got_my = 0;
		for (int k = 0; k < n_inherited; k++) {
			if (inherited_rank(inherited, k) % n_workers == i) {
				const struct proto_ops *proto = inherited_proto(cfg, inherited[k]);
				add_listener(w, inherited[k], proto);
				*(proto == pg ? &got_pg : &got_my) += 1;
			}
		}
		/* A protocol whose sockets did not come from the previous process
		 * or from systemd opens its own (mysql_listen_port newly set). */
		rc = got_pg ? 0 : open_tcp_for_worker(w, cfg, cfg->listen_addr, cfg->listen_port, pg, err, sizeof(err));
		if (rc == 0 && !got_my && my && cfg->mysql_listen_port)
			rc = open_tcp_for_worker(w, cfg, cfg->mysql_listen_addr ? cfg->mysql_listen_addr : cfg->listen_addr,
						 cfg->mysql_listen_port, my, err, sizeof(err));
		if (rc < 0) {
			log_error("%s", err);
			return rc;
		}
		if (unix_listen_fd >= 0)
			add_listener(w, unix_listen_fd, pg);
		if (w->n_listen == 0) {
			log_error("nothing to listen on: set listen_addr or unix_socket_dir");
			return -EINVAL;
		}
	}
	balance_start(cfg, n_workers);
	for (int i = 0; i < n_workers; i++)
		update_listeners(&workers[i]);
	for (int i = 0; i < n_workers; i++) {
		if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
			log_error("cannot start worker thread %d", i);
			return -EAGAIN;
		}
	}
	if (my && cfg->mysql_listen_port)
		log_info("listening on port %d (PostgreSQL) and %d (MySQL) with %d worker%s", cfg->listen_port,
			 cfg->mysql_listen_port, n_workers, n_workers == 1 ? "" : "s");
	else
		log_info("listening on port %d with %d worker%s", cfg->listen_port, n_workers,
			 n_workers == 1 ? "" : "s");
	return 0;
}

void worker_stop_all(void)
{
	for (int i = 0; i < n_workers; i++) {
		struct mail *m = calloc(1, sizeof(*m));
		if (!m) {
			workers[i].stopping = 1;
			continue;
		}
		m->kind = MAIL_STOP;
		worker_post(&workers[i], m);
	}
	/* A worker that does not come back in time (a bug) must not keep the
	 * process alive forever after SIGTERM. */
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 10;
	for (int i = 0; i < n_workers; i++) {
		struct worker *w = &workers[i];
		if (w->thread && pthread_timedjoin_np(w->thread, NULL, &deadline) != 0) {
			log_error("worker %d did not stop within 10 s; exiting anyway", i);
			_exit(1);
		}
	}
	/* Only once every worker is gone: a late worker may still have posted
	 * to one that stopped before it. */
	for (int i = 0; i < n_workers; i++) {
		struct worker *w = &workers[i];
		for (int k = 0; k < w->n_listen; k++)
			if (w->listen[k].fd >= 0 && w->listen[k].fd != unix_listen_fd)
				close(w->listen[k].fd);
		close(w->mailbox_h.fd);
		loop_deinit(&w->loop);
		while (w->mail_head) {
			struct mail *m = w->mail_head;
			w->mail_head = m->next;
			/* A broadcast that arrived too late to run: the last
			 * worker to drop it frees it. */
			if (m->kind == MAIL_RUN && __atomic_sub_fetch(&m->run->pending, 1, __ATOMIC_ACQ_REL) == 0)
				free(m->run);
			free(m);
		}
		pthread_mutex_destroy(&w->mail_lock);
	}
	balance_stop();
	if (unix_listen_fd >= 0) {
		close(unix_listen_fd);
		if (unix_listen_path[0])
			unlink(unix_listen_path);
	}
	free(workers);
	workers = NULL;
}
