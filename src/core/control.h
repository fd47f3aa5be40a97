/*
 * control.h - the process-level state an operator changes: reload, SET,
 * SUSPEND, graceful shutdown, hand-over to a new process (online restart).
 *
 * Owns: the run phase, the shutdown deadline, the SET overrides, the
 * reload counters, and the lock that serialises reloads (SIGHUP and the
 * console may ask at the same time).
 * Must not: touch another worker's connections directly; it broadcasts a
 * function that each worker runs on its own connections.
 */
#ifndef SLUICE_CONTROL_H
#define SLUICE_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct client;

enum control_phase {
	PHASE_RUNNING,       /* normal service */
	PHASE_DRAIN_SERVERS, /* SHUTDOWN WAIT_FOR_SERVERS / SIGINT / SIGTERM: clients
			      * are closed at their next transaction boundary */
	PHASE_DRAIN_CLIENTS, /* SHUTDOWN WAIT_FOR_CLIENTS: wait for clients to leave */
	PHASE_HANDOVER,      /* online restart: clients move to the new process at
			      * their next transaction boundary */
	PHASE_EXIT,          /* SHUTDOWN: leave now */
};

void control_init(void);

/* Read the configuration file again (keeping SET overrides only when
 * keep_overrides). On failure nothing changes and err says why.
 * Returns 0 or a negative errno. Any thread. */
int control_reload(bool keep_overrides, char *err, size_t errlen);
/* Start-up: main reads its first configuration snapshot after the workers
 * run (listeners, metrics). A RELOAD or SET in that window would free it
 * under main's feet, so they wait from control_startup_hold until
 * control_startup_done. Main thread only. */
void control_startup_hold(void);
void control_startup_done(void);
/* SET key = value. Returns 0 or a negative errno with err filled in. */
int control_set(const char *key, const char *value, char *err, size_t errlen);
uint64_t control_reloads(void);
uint64_t control_reload_failures(void);

/* Begin a shutdown or hand-over. A stricter phase overrides a milder one. */
void control_begin(int phase);
static inline int control_phase(void);
/* Main thread: time to leave the signal loop (no client left, or the
 * deadline passed). */
bool control_exit_due(int64_t now_us);

/* A client just reached a transaction boundary (no server, or a clean
 * one) while not running normally: closes it (drain) or hands it over.
 * Returns true when the client is gone from this process. */
bool control_at_boundary(struct client *c);

/* SUSPEND / RESUME of reading and accepting on every worker. The workers
 * apply it between their events: control_suspend returns a ticket, and
 * control_suspend_applied(ticket) says when every worker has (SUSPEND is
 * answered then, as PgBouncer answers once no socket is read). */
uint64_t control_suspend(bool on);
bool control_suspend_applied(uint64_t ticket);
bool control_suspended(void);

/* Settings the main thread reads while a worker might be reloading. */
void control_read_config(int64_t *stats_period_us, bool *log_stats);

/* Process start (monotonic and wall clock), for uptime and SHOW. */
int64_t control_started_us(void);

extern int control_phase_now;
static inline int control_phase(void)
{
	return __atomic_load_n(&control_phase_now, __ATOMIC_RELAXED);
}

#endif
