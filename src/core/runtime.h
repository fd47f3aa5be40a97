/*
 * runtime.h - process-wide state that every module reads: the current
 * configuration snapshot and global counters.
 *
 * Owns: the pointer to the active config (replaced whole on reload, never
 * edited) and counters updated with atomics.
 */
#ifndef SLUICE_RUNTIME_H
#define SLUICE_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>

struct config;

const struct config *runtime_config(void);
void runtime_set_config(struct config *cfg);

/* Clients connected right now, for max_client_conn. */
int runtime_clients_add(int delta);

/* accept() failures for want of file descriptors or memory (the workers
 * pause accepting after each, worker.c). They are counted by errno, in the
 * order of runtime_accept_errnos: EMFILE, ENFILE, ENOBUFS, ENOMEM. */
#define RUNTIME_ACCEPT_ERRNOS 4
#define RUNTIME_ACCEPT_LOG_US 5000000 /* at most one log line per 5 s, process-wide */
extern const int runtime_accept_errnos[RUNTIME_ACCEPT_ERRNOS];
extern const char *const runtime_accept_errno_names[RUNTIME_ACCEPT_ERRNOS];

/* Count one failure with errno err (one of runtime_accept_errnos) at
 * now_us (loop_now_us clock). True when the caller should log it: the
 * first failure, and then the first one at least RUNTIME_ACCEPT_LOG_US
 * after the previous logged one, whichever worker sees it. *unlogged is
 * then set to the failures counted but not logged since that previous
 * line. Lock-free; any thread. */
bool runtime_accept_failed(int err, int64_t now_us, uint64_t *unlogged);

/* Failures so far with errno runtime_accept_errnos[i] (for /metrics). */
uint64_t runtime_accept_failures(int i);

#endif
