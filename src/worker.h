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
#include <stdint.h>

#include "list.h"
#include "loop.h"

struct client;
struct server;
struct pool;
struct config;

enum mail_kind {
	MAIL_HANDOFF,     /* server handed to waiting client (both now ours) */
	MAIL_FAIL_CLIENT, /* waiting client must get an error and be closed */
	MAIL_CANCEL,      /* cancel the query of the client with this key */
	MAIL_POKE_POOL,   /* serve pool's waiters from our idle servers */
	MAIL_STOP,        /* leave the loop */
};

struct mail {
	struct mail *next;
	int kind;               /* enum mail_kind */
	struct client *client;  /* MAIL_HANDOFF / MAIL_FAIL_CLIENT */
	struct server *server;  /* MAIL_HANDOFF */
	struct pool *pool;      /* MAIL_POKE_POOL */
	uint32_t key_pid, key;  /* MAIL_CANCEL */
	char sqlstate[6];       /* MAIL_FAIL_CLIENT */
	char message[200];      /* MAIL_FAIL_CLIENT */
};

#define WORKER_MAX_LISTEN 8

struct worker {
	int id;                       /* 0..n_workers-1 */
	pthread_t thread;
	struct loop loop;             /* this thread's epoll */
	struct loop_handle listen[WORKER_MAX_LISTEN]; /* listening sockets */
	int n_listen;
	bool accept_paused;           /* fd exhaustion: listeners removed until tick */
	struct loop_handle mailbox_h; /* eventfd, readable when mail waits */
	pthread_mutex_t mail_lock;    /* protects mail_head/tail only */
	struct mail *mail_head, *mail_tail;
	struct list clients;          /* struct client.node: all our clients */
	struct list servers;          /* struct server.node: all servers in our loop */
	struct client *dead_clients;  /* closed clients (chain via dead_next), freed
				       * after the current wakeup; they stay on
				       * `clients` until then so iteration is safe */
	struct server *dead_servers;  /* same for servers */
	struct list cancels;          /* struct cancel_conn.node: cancels in flight */
	int64_t next_tick_us;         /* when the periodic check runs next */
	uint64_t next_conn_id;        /* local part of connection ids */
	int stopping;                 /* leave the loop soon */
};

/* Global set of workers, fixed after start-up. */
extern struct worker *workers;
extern int n_workers;

/* The worker running on this thread (NULL on the main thread). */
struct worker *worker_self(void);

int worker_start_all(const struct config *cfg);
void worker_stop_all(void);

/* Post a mail (takes ownership of m). */
void worker_post(struct worker *w, struct mail *m);

/* Queue a closed object for freeing at the loop's safe point. */
void worker_bury_client(struct worker *w, struct client *c);
void worker_bury_server(struct worker *w, struct server *s);

/* Connection ids unique across workers. */
uint64_t worker_next_id(struct worker *w);

#endif
