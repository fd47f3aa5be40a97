/*
 * metrics.h - the Prometheus endpoint: metrics_port / metrics_addr serve
 * GET /metrics in the Prometheus text format (docs/operations.md lists the
 * metrics). One thread of its own, blocking I/O, one request at a time,
 * each bounded in size and time: a slow or hostile scraper cannot touch
 * the pooling workers.
 *
 * Owns: the listening socket and the thread.
 * Reads: pools (pool_foreach, pool_get_counts, pool_get_totals), process
 * counters (control_reloads, runtime_clients_add(0)); never a worker's
 * connections.
 */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

struct config;

/* Start when cfg->metrics_port != 0. Returns 0 (also when disabled) or a
 * negative errno after logging why (port busy, bad address). */
int metrics_start(const struct config *cfg);
void metrics_stop(void);

/* The whole /metrics body (heap, NUL-terminated) or NULL when out of
 * memory. Exposed for tests. */
char *metrics_render(void);

#endif
