/*
 * balance.c - see balance.h.
 *
 * Load is thread CPU time, not time spent outside epoll_wait: on a small
 * machine the workers share the CPUs with PostgreSQL and the clients, and a
 * worker preempted in the middle of its work is not busy in a way another
 * thread could help with. A worker near a whole CPU is.
 */
#include "balance.h"

#include <stdlib.h>
#include <time.h>

#include "config.h"
#include "control.h"
#include "log.h"
#include "runtime.h"
#include "worker.h"

/* One more worker when the active ones are busier than adaptive_workers_busy
 * (percent of a CPU, 70 by default) on average; one fewer when the whole
 * load would fit on one worker fewer at 4/7 of that (40%)... */
#define BALANCE_HOLD 20   /* ...for this many ticks of worker 0 in a row (2 s) */

/* One worker's figures. Written by that worker at its tick, read by the
 * others (relaxed atomics: each value stands alone). */
struct balance_slot {
	int load;           /* per mille of a CPU over the last tick */
	int busy_clients;   /* clients with traffic during the last tick */
	/* Owner only: */
	int64_t cpu_ns;     /* thread CPU time at the last tick */
	int64_t wall_ns;    /* monotonic time at the last tick */
	int shed;           /* clients still to hand to `shed_to` */
	int shed_to;        /* the active worker with the fewest busy clients */
};

static struct balance_slot *slots;  /* [n] */
static int n;                       /* workers */
static int active;                  /* workers taking traffic (atomic; worker 0 writes) */
static bool adaptive;               /* fixed at start: steering works (the key may
				     * still turn it off and on, by RELOAD) */
static int low_ticks;               /* worker 0 only: ticks in a row the load fitted on fewer */
static uint64_t n_moves, n_handoffs, n_changes; /* atomic */

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void balance_start(const struct config *cfg, int workers_started)
{
	n = workers_started;
	slots = calloc((size_t)n, sizeof(*slots));
	active = n;
	adaptive = false;
	if (!slots || n < 2)
		return;
	/* Other processes in the port's SO_REUSEPORT group would make the
	 * socket numbers the program returns meaningless. */
	if (cfg->so_reuseport) {
		log_info("adaptive_workers: off, since so_reuseport lets other processes share the port");
		return;
	}
	int k = cfg->adaptive_workers ? 1 : n;
	char err[160];
	if (worker_steer_listeners(k, err, sizeof(err)) < 0) {
		log_warning("adaptive_workers: off, every worker takes connections: %s", err);
		return;
	}
	adaptive = true;
	active = k;
}

void balance_stop(void)
{
	free(slots);
	slots = NULL;
}

int balance_active_workers(void) { return __atomic_load_n(&active, __ATOMIC_RELAXED); }

bool balance_worker_active(const struct worker *w) { return w->id < balance_active_workers(); }

/* Worker 0: one more worker when the active ones are busy, one fewer when
 * the whole load has fitted on fewer for a while. */
static void decide(void)
{
	/* Shutting down or handing over: the listening sockets (and their
	 * group's program) may be the next process's already. */
	if (control_phase() != PHASE_RUNNING)
		return;
	int k = balance_active_workers(), want = k;
	int load_active = 0, load_all = 0;
	for (int i = 0; i < n; i++) {
		int l = __atomic_load_n(&slots[i].load, __ATOMIC_RELAXED);
		load_all += l;
		if (i < k)
			load_active += l;
	}
	const struct config *cfg = runtime_config();
	int high = cfg->adaptive_workers_busy * 10, low = high * 4 / 7; /* per mille */
	if (!cfg->adaptive_workers) {
		want = n;
	} else if (k < n && load_active >= high * k) {
		want = k + 1;
	} else if (k > 1 && load_all < low * (k - 1)) {
		if (++low_ticks >= BALANCE_HOLD)
			want = k - 1;
	} else {
		low_ticks = 0;
	}
	if (want == k)
		return;
	char err[160];
	if (worker_steer_listeners(want, err, sizeof(err)) < 0) {
		log_warning("adaptive_workers: cannot steer new connections to %d worker%s: %s", want,
			    want == 1 ? "" : "s", err);
		return;
	}
	low_ticks = 0;
	__atomic_store_n(&active, want, __ATOMIC_RELAXED);
	__atomic_add_fetch(&n_changes, 1, __ATOMIC_RELAXED);
	log_debug("adaptive_workers: %d of %d workers take traffic (load of the active ones %d per mille of a CPU)",
		  want, n, load_active);
}

/* Worker w, active among k: how many of its busy clients to give away
 * (beyond its fair share), and to whom. */
static void plan_shedding(struct balance_slot *me, int self, int k)
{
	int total = 0, least = -1, least_busy = 0;
	for (int i = 0; i < k; i++) {
		int b = __atomic_load_n(&slots[i].busy_clients, __ATOMIC_RELAXED);
		total += b;
		if (i != self && (least < 0 || b < least_busy)) {
			least = i;
			least_busy = b;
		}
	}
	int share = (total + k - 1) / k;
	me->shed = 0;
	/* One client of difference is no imbalance worth a move. */
	if (least >= 0 && me->busy_clients > share && me->busy_clients - least_busy > 1) {
		me->shed = me->busy_clients - share;
		me->shed_to = least;
	}
}

void balance_tick(struct worker *w, int busy_clients)
{
	if (!adaptive)
		return;
	struct balance_slot *me = &slots[w->id];
	int64_t cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID), wall = clock_ns(CLOCK_MONOTONIC);
	if (me->wall_ns && wall > me->wall_ns) {
		int64_t l = (cpu - me->cpu_ns) * 1000 / (wall - me->wall_ns);
		__atomic_store_n(&me->load, (int)(l > 1000 ? 1000 : l), __ATOMIC_RELAXED);
	}
	me->cpu_ns = cpu;
	me->wall_ns = wall;
	__atomic_store_n(&me->busy_clients, busy_clients, __ATOMIC_RELAXED);
	if (w->id == 0)
		decide();
	int k = balance_active_workers();
	if (w->id < k)
		plan_shedding(me, w->id, k);
	else
		me->shed = 0;
}

struct worker *balance_move_target(struct worker *w)
{
	if (!adaptive || !runtime_config()->adaptive_workers)
		return NULL;
	struct balance_slot *me = &slots[w->id];
	int k = balance_active_workers();
	int to = -1;
	if (w->id >= k) {
		/* Leaving an inactive worker: to the active one with the
		 * fewest busy clients. */
		int least_busy = 0;
		for (int i = 0; i < k; i++) {
			int b = __atomic_load_n(&slots[i].busy_clients, __ATOMIC_RELAXED);
			if (to < 0 || b < least_busy) {
				to = i;
				least_busy = b;
			}
		}
	} else if (me->shed > 0 && me->shed_to < k) {
		me->shed--;
		to = me->shed_to;
	}
	if (to < 0)
		return NULL;
	__atomic_add_fetch(&n_moves, 1, __ATOMIC_RELAXED);
	return &workers[to];
}

void balance_count_handoff(void) { __atomic_add_fetch(&n_handoffs, 1, __ATOMIC_RELAXED); }

void balance_get_counts(struct balance_counts *out)
{
	out->moves = __atomic_load_n(&n_moves, __ATOMIC_RELAXED);
	out->handoffs = __atomic_load_n(&n_handoffs, __ATOMIC_RELAXED);
	out->changes = __atomic_load_n(&n_changes, __ATOMIC_RELAXED);
}
