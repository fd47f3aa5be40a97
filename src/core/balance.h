/*
 * balance.h - how many workers carry the traffic (adaptive_workers).
 *
 * sluice starts one worker per CPU, but spreading a light load over all of
 * them costs more than it gains: every worker wakes for its share of the
 * traffic (fewer events per epoll_wait), and a client on one worker whose
 * idle server sits on another needs two mails to get it. Seed 001's rule
 * applies instead: under light load one thread does the whole job. So only
 * the first `active` workers take traffic, and `active` follows the load:
 * it grows by one as soon as the active workers are busy (their thread CPU
 * time over a tick, adaptive_workers_busy percent of a CPU on average) and
 * shrinks once the whole load would fit on one worker fewer at 4/7 of that,
 * for BALANCE_HOLD ticks in a row.
 *
 * How the traffic follows `active`:
 * - New TCP connections: a classic BPF program on each listening address's
 *   SO_REUSEPORT group picks one of its first `active` sockets (socket i of
 *   a group belongs to worker i, worker.c keeps that true across online
 *   restarts); with every worker active the program is removed and the
 *   kernel's hash spreads them as before. The unix socket is polled by the
 *   active workers only.
 * - Connected clients, between transactions (no server, nothing buffered,
 *   client_maybe_move): a client of an inactive worker moves to an active
 *   one, and an active worker with more busy clients than its share hands
 *   the excess to the active worker with the fewest.
 *
 * Off (adaptive_workers = 0), or when other processes may share the port
 * (so_reuseport = 1): every worker is active all the time, as before.
 *
 * Owns: the per-worker load figures (each worker writes its own at its
 * tick; others read them), `active` (worker 0 decides it), the counters of
 * cross-worker traffic for /metrics.
 */
#ifndef SLUICE_BALANCE_H
#define SLUICE_BALANCE_H

#include <stdbool.h>
#include <stdint.h>

struct worker;
struct config;

/* Before the workers start (main thread). */
void balance_start(const struct config *cfg, int workers_started);
void balance_stop(void);

/* Worker w's periodic tick: busy_clients is how many of its clients had
 * traffic since its previous tick. Publishes w's load; on worker 0 also
 * decides `active` and steers the listeners when it changes. */
void balance_tick(struct worker *w, int busy_clients);

/* Does worker w take new connections and clients now? */
bool balance_worker_active(const struct worker *w);

/* A client of w is between transactions and could move: the worker it
 * should move to, or NULL to stay. Counts the move when it says one. */
struct worker *balance_move_target(struct worker *w);

/* Workers taking traffic now (1..n_workers). */
int balance_active_workers(void);

/* Cross-worker traffic since start, for /metrics. */
struct balance_counts {
	uint64_t moves;     /* clients moved to another worker between transactions */
	uint64_t handoffs;  /* servers handed to a client on another worker (mails) */
	uint64_t changes;   /* times `active` changed */
};
void balance_get_counts(struct balance_counts *out);
/* A server was handed to a waiting client on another worker (pool.c). */
void balance_count_handoff(void);

#endif
