/*
 * runtime.c - see runtime.h.
 */
#include "runtime.h"

#include "config.h"

static struct config *current_config;
static int n_clients;

const struct config *runtime_config(void)
{
	return __atomic_load_n(&current_config, __ATOMIC_ACQUIRE);
}

void runtime_set_config(struct config *cfg)
{
	__atomic_store_n(&current_config, cfg, __ATOMIC_RELEASE);
}

int runtime_clients_add(int delta)
{
	return __atomic_add_fetch(&n_clients, delta, __ATOMIC_RELAXED);
}
