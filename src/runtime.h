/*
 * runtime.h - process-wide state that every module reads: the current
 * configuration snapshot and global counters.
 *
 * Owns: the pointer to the active config (replaced whole on reload, never
 * edited) and counters updated with atomics.
 */
#ifndef SLUICE_RUNTIME_H
#define SLUICE_RUNTIME_H

struct config;

const struct config *runtime_config(void);
void runtime_set_config(struct config *cfg);

/* Clients connected right now, for max_client_conn. */
int runtime_clients_add(int delta);

#endif
