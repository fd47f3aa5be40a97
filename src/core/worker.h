/*
 * worker.h - a peer worker thread (seed 001): its own epoll loop, its own
 * SO_REUSEPORT listening sockets, its own connections. The thread that
 * accepts a client does all of that client's work.
 *
 * Owns: the thread, the loop, the listening sockets, the lists of clients
 * and servers whose fds are in this loop, and the mailbox.
 * Cross-thread rule: another thread never touches a worker's connections;
 * it posts a mail (handoff of a server to a waiting client, a failure for
 * a waiting client, a cancel, a poke to serve a pool's queue).
 */
#ifndef SLUICE_WORKER_H
#define SLUICE_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "list.h"
#include "loop.h"

struct client;
struct server;
struct pool;
struct config;
struct proto_ops;

enum mail_kind {
	MAIL_HANDOFF,     /* server handed to waiting client (both now ours) */
	MAIL_FAIL_CLIENT, /* waiting client must get an error and be closed */
	MAIL_CANCEL,      /* cancel the query of the client with this key */
	MAIL_POKE_POOL,   /* serve pool's waiters from our idle servers */
	MAIL_STOP,        /* leave the loop */
	MAIL_RUN,         /* run a function on this worker (worker_run_all) */
	MAIL_ADOPT_CLIENT, /* a client moved here between transactions (balance.h) */
	MAIL_REROUTE,     /* waiting client must choose its server's pool again (route.h) */
};

struct run_all;

struct mail {
	struct mail *next;
	int kind;               /* enum mail_kind */
	struct client *client;  /* MAIL_HANDOFF / MAIL_FAIL_CLIENT / MAIL_ADOPT_CLIENT */
	struct server *server;  /* MAIL_HANDOFF */
	struct pool *pool;      /* MAIL_POKE_POOL */
	uint32_t key_pid, key;  /* MAIL_CANCEL */
	char sqlstate[6];       /* MAIL_FAIL_CLIENT */
	char message[200];      /* MAIL_FAIL_CLIENT */
	struct run_all *run;    /* MAIL_RUN */
};

#define WORKER_MAX_LISTEN 8

struct worker {
	int id;                       /* 0..n_workers-1 */
	pthread_t thread;
	struct loop loop;             /* this thread's epoll */
	struct loop_handle listen[WORKER_MAX_LISTEN]; /* listening sockets */
	const struct proto_ops *listen_proto[WORKER_MAX_LISTEN]; /* what their clients speak */
	int n_listen;
	bool accept_paused;           /* accept() ran out of fds or memory: listeners
				       * off until accept_resume_us (or a client of
				       * ours closes, freeing an fd) */
	int64_t accept_resume_us;     /* when accept_paused ends (loop clock) */
	int64_t accept_backoff_us;    /* length of the last pause; doubled by each
				       * failure that follows it, 0 again after a
				       * successful accept */
	struct loop_handle mailbox_h; /* eventfd, readable when mail waits */
	pthread_mutex_t mail_lock;    /* protects mail_head/tail only */
	struct mail *mail_head, *mail_tail;
	struct list clients;          /* struct client.node: all our clients */
	int n_clients;                /* length of `clients` (atomic: /metrics reads it) */
	struct list servers;          /* struct server.node: all servers in our loop */
	struct client *dead_clients;  /* closed clients (chain via dead_next), freed
				       * after the current wakeup; they stay on
				       * `clients` until then so iteration is safe */
	struct server *dead_servers;  /* same for servers */
	struct client *movers;        /* clients leaving for another worker (chain via
				       * move_next), sent at the safe point; they stay
				       * on `clients` until then */
	bool unix_polled;             /* polls the shared unix listener (an active
				       * worker, balance.h) */
	struct list cancels;          /* struct cancel_conn.node: cancels in flight */
	int64_t next_tick_us;         /* when the periodic check runs next */
	uint64_t next_conn_id;        /* local part of connection ids */
	int stopping;                 /* leave the loop soon */
	bool suspended;               /* SUSPEND: no reading from clients */
	bool suspended_accept;        /* SUSPEND, shutdown, takeover: listeners off
				       * (independent of accept_paused: listening
				       * needs both false) */
};

/* Global set of workers, fixed after start-up. */
extern struct worker *workers;
extern int n_workers;

/* The worker running on this thread (NULL on the main thread). */
struct worker *worker_self(void);

/* Open the listening sockets (or use the ones inherited from the previous
 * process in an online restart: n_inherited TCP fds and a unix one, -1 if
 * none) and start the threads. protos: each protocol's table, by enum
 * config_protocol (NULL = not served); PostgreSQL's listens on listen_port
 * and the unix socket, MySQL's on mysql_listen_port. */
int worker_start_all(const struct config *cfg, const struct proto_ops *const *protos, const int *inherited,
		     int n_inherited, int inherited_unix);
void worker_stop_all(void);

/* Post a mail (takes ownership of m). */
void worker_post(struct worker *w, struct mail *m);

/* Run fn(w, arg) on every worker's thread, between events; when the last
 * one has, done(arg) runs on that thread (done may be NULL). Because a
 * worker reads its mail only between callbacks, done also marks a point
 * after which no callback that began earlier is still running. Returns 0
 * or -ENOMEM (nothing runs then). */
int worker_run_all(void (*fn)(struct worker *w, void *arg), void (*done)(void *arg), void *arg);

/* Run fn(w, arg) on worker w's thread. Returns 0 or -ENOMEM. */
int worker_run_on(struct worker *w, void (*fn)(struct worker *w, void *arg), void *arg);

/* Stop or restart accepting new connections on every listener of w. A
 * restart during a pause for want of fds takes effect when the pause ends. */
void worker_set_accepting(struct worker *w, bool on);

/* Shutdown: close w's own listening sockets (new connections are refused
 * by the kernel from then on); the shared unix socket is closed and its
 * path removed by worker_close_shared_listeners, once every worker is done. */
void worker_close_listeners(struct worker *w);
void worker_close_shared_listeners(void);
/* Online restart, old process: every listening fd (kinds 'T' or 'U'), and
 * giving up the unix socket's path to the new process. */
int worker_listener_fds(int *fds, uint8_t *kinds, int max);
void worker_forget_listeners(void);

/* Enter c in w's list of clients, or take it out (owner thread). */
void worker_add_client(struct worker *w, struct client *c);
void worker_remove_client(struct worker *w, struct client *c);

/* Move client c (out of w's loop already) to worker `to` at w's safe
 * point; `to` adopts it with client_arrive. */
void worker_move_client(struct worker *w, struct client *c, struct worker *to);

/* Steer new TCP connections to the first `active` workers (all of them
 * when active >= n_workers). Returns 0 or -errno with err set. */
int worker_steer_listeners(int active, char *err, size_t errlen);

/* Queue a closed object for freeing at the loop's safe point. */
void worker_bury_client(struct worker *w, struct client *c);
void worker_bury_server(struct worker *w, struct server *s);

/* Connection ids unique across workers. */
uint64_t worker_next_id(struct worker *w);

#endif
