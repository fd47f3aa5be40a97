/*
 * runtime.c - see runtime.h.
 */
#include "runtime.h"

#include <errno.h>

#include "config.h"

static struct config *current_config;
static int n_clients;

/* accept() failures (runtime_accept_failed). Every worker writes them, so
 * they are atomics: a lock here would be taken on the hot error path by
 * every worker at once, exactly when the process is short of resources. */
static uint64_t accept_failures[RUNTIME_ACCEPT_ERRNOS]; /* by errno, since start */
static uint64_t accept_unlogged;  /* failures since the last line logged */
static int64_t accept_next_log_us; /* no line before this (loop_now_us clock); 0 = now */

const int runtime_accept_errnos[RUNTIME_ACCEPT_ERRNOS] = { EMFILE, ENFILE, ENOBUFS, ENOMEM };
const char *const runtime_accept_errno_names[RUNTIME_ACCEPT_ERRNOS] = { "EMFILE", "ENFILE", "ENOBUFS",
									"ENOMEM" };

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

bool runtime_accept_failed(int err, int64_t now_us, uint64_t *unlogged)
{
	for (int i = 0; i < RUNTIME_ACCEPT_ERRNOS; i++) {
		if (runtime_accept_errnos[i] == err) {
			__atomic_add_fetch(&accept_failures[i], 1, __ATOMIC_RELAXED);
			break;
		}
	}
	__atomic_add_fetch(&accept_unlogged, 1, __ATOMIC_RELAXED);
	int64_t next = __atomic_load_n(&accept_next_log_us, __ATOMIC_RELAXED);
	if (now_us < next)
		return false;
	/* Several workers may fail at the same moment: the one whose
	 * compare-and-swap moves the deadline logs, the others stay quiet. */
	if (!__atomic_compare_exchange_n(&accept_next_log_us, &next, now_us + RUNTIME_ACCEPT_LOG_US, false,
					 __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		return false;
	/* Taken after winning, so a failure that another worker counted in
	 * between is reported here rather than lost; each failure is in
	 * exactly one line's count (or still waiting for the next line). The
	 * one being logged is not "unlogged". */
	uint64_t n = __atomic_exchange_n(&accept_unlogged, 0, __ATOMIC_RELAXED);
	*unlogged = n > 0 ? n - 1 : 0;
	return true;
}

uint64_t runtime_accept_failures(int i)
{
	if (i < 0 || i >= RUNTIME_ACCEPT_ERRNOS)
		return 0;
	return __atomic_load_n(&accept_failures[i], __ATOMIC_RELAXED);
}
