/*
 * control.c - see control.h.
 */
#include "control.h"
#include "bypass.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "client.h"
#include "config.h"
#include "log.h"
#include "loop.h"
#include "pool.h"
#include "proto.h"
#include "runtime.h"
#include "server.h"
#include "takeover.h"
#include "tls.h"
#include "worker.h"

int control_phase_now = PHASE_RUNNING;

static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;
static struct config_override *overrides; /* SET values (reload_lock); strings owned */
static size_t n_overrides;
static uint64_t n_reloads, n_reload_failures; /* (atomic) */
static int64_t started_us;
static int64_t deadline_us;                 /* shutdown deadline, 0 = none (atomic) */
static bool suspended;                      /* (atomic) */

void control_init(void)
{
	started_us = loop_now_us();
}

int64_t control_started_us(void) { return started_us; }
uint64_t control_reloads(void) { return __atomic_load_n(&n_reloads, __ATOMIC_RELAXED); }
uint64_t control_reload_failures(void) { return __atomic_load_n(&n_reload_failures, __ATOMIC_RELAXED); }

/* ---- reload ---- */

static void log_config_warning(const char *msg)
{
	log_warning("%s", msg);
}

static void restart_needed(const char *key)
{
	log_warning("RELOAD: '%s' changed, but it takes effect only after a restart; keeping the old value", key);
}

static void noop_fn(struct worker *w, void *arg) { (void)w; (void)arg; }

/* Every worker has passed its safe point since the swap: nobody reads the
 * old snapshot any more. */
static void free_old_config(void *arg)
{
	config_free(arg);
}

static int reload_locked(char *err, size_t errlen)
{
	const struct config *old = runtime_config();
	struct config *cfg = NULL;
	int rc = config_load_with(old->path, overrides, n_overrides, &cfg, err, errlen, log_config_warning);
	if (rc == 0)
		rc = config_keep_restart_keys(cfg, old, restart_needed);
	/* New certificates and keys apply to new connections only; a bad
	 * file fails the whole reload. */
	if (rc == 0)
		rc = tls_configure(cfg, err, errlen);
	if (rc < 0) {
		config_free(cfg);
		__atomic_add_fetch(&n_reload_failures, 1, __ATOMIC_RELAXED);
		log_error("RELOAD failed: %s; the running configuration is unchanged", err);
		return rc;
	}
	runtime_set_config(cfg);
	pool_reconfigure(cfg);
	log_set_verbose(cfg->verbose);
	bypass_apply(cfg);
	if (worker_run_all(noop_fn, free_old_config, (void *)old) < 0)
		log_warning("RELOAD: out of memory; the old configuration is kept in memory");
	__atomic_add_fetch(&n_reloads, 1, __ATOMIC_RELAXED);
	log_info("configuration reloaded from %s", cfg->path);
	return 0;
}

static void clear_overrides(void)
{
	for (size_t i = 0; i < n_overrides; i++) {
		free((char *)overrides[i].key);
		free((char *)overrides[i].value);
	}
	free(overrides);
	overrides = NULL;
	n_overrides = 0;
}

void control_startup_hold(void)
{
	pthread_mutex_lock(&reload_lock);
}

void control_startup_done(void)
{
	pthread_mutex_unlock(&reload_lock);
}

int control_reload(bool keep_overrides, char *err, size_t errlen)
{
	pthread_mutex_lock(&reload_lock);
	struct config_override *saved = overrides;
	size_t n_saved = n_overrides;
	if (!keep_overrides) {
		overrides = NULL;
		n_overrides = 0;
	}
	int rc = reload_locked(err, errlen);
	if (!keep_overrides) {
		if (rc < 0) {
			overrides = saved;
			n_overrides = n_saved;
		} else {
			struct config_override *mine = overrides;
			size_t n_mine = n_overrides;
			overrides = saved;
			n_overrides = n_saved;
			clear_overrides();
			overrides = mine;
			n_overrides = n_mine;
		}
	}
	pthread_mutex_unlock(&reload_lock);
	return rc;
}

int control_set(const char *key, const char *value, char *err, size_t errlen)
{
	if (!config_key_known(key)) {
		snprintf(err, errlen, "unknown configuration key '%.64s'", key);
		return -ENOENT;
	}
	if (config_key_needs_restart(key)) {
		snprintf(err, errlen, "'%s' cannot be changed at run time (restart needed)", key);
		return -EPERM;
	}
	pthread_mutex_lock(&reload_lock);
	struct config_override *grown = realloc(overrides, (n_overrides + 1) * sizeof(*overrides));
	char *k = strdup(key), *v = strdup(value);
	if (!grown || !k || !v) {
		if (grown)
			overrides = grown;
		free(k);
		free(v);
		pthread_mutex_unlock(&reload_lock);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	overrides = grown;
	overrides[n_overrides++] = (struct config_override){ .key = k, .value = v };
	int rc = reload_locked(err, errlen);
	if (rc < 0) {
		n_overrides--;
		free(k);
		free(v);
	}
	pthread_mutex_unlock(&reload_lock);
	return rc;
}

/* ---- shutdown and hand-over ---- */

/* May c go now? A client with a request in flight finishes it first. */
static bool client_quiet(const struct client *c)
{
	switch (c->state) {
	case CLIENT_STARTUP:
	case CLIENT_AUTH:
		return control_phase() != PHASE_HANDOVER;
	case CLIENT_IDLE:
		return !c->server;
	case CLIENT_WAITING:
	case CLIENT_LOGIN_WAIT: {
		/* SHUTDOWN WAIT_FOR_SERVERS closes waiting clients at once, as
		 * PgBouncer does: their request has not reached a server. Else
		 * only when the pool cannot log in: nothing will finish. */
		char why[8];
		return control_phase() == PHASE_DRAIN_SERVERS ||
		       (control_phase() != PHASE_HANDOVER && c->pool && pool_login_failing(c->pool, why, sizeof(why)));
	}
	case CLIENT_ACTIVE:
		return c->server && c->proto->server_at_boundary(c->server);
	default:
		return false;
	}
}

bool control_at_boundary(struct client *c)
{
	int phase = control_phase();
	/* Console sessions stay until the process exits, as PgBouncer's do. */
	/* A client travelling to another worker is seen to there (client_arrive). */
	if (c->closing || c->moving || phase == PHASE_RUNNING || phase == PHASE_DRAIN_CLIENTS || (c->adm && phase != PHASE_HANDOVER))
		return false;
	/* A client the kernel carries may be in a transaction there. */
	if (c->proto->client_take_back) {
		c->proto->client_take_back(c, __func__);
		if (c->closing)
			return true;
	}
	if (!client_quiet(c))
		return false;
	if (phase == PHASE_HANDOVER)
		return takeover_give_client(c);
	c->proto->client_fail(c, "57P01", "sluice is shutting down");
	return true;
}

static void drain_fn(struct worker *w, void *arg)
{
	bool keep_listeners = control_phase() == PHASE_HANDOVER;
	worker_set_accepting(w, false);
	if (!keep_listeners)
		worker_close_listeners(w);
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &w->clients) {
		struct client *c = list_entry(pos, struct client, node);
		if (c->closing)
			continue;
		if (!c->adm || keep_listeners)
			control_at_boundary(c);
	}
	(void)arg;
}

static void close_consoles_fn(struct worker *w, void *arg)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &w->clients) {
		struct client *c = list_entry(pos, struct client, node);
		if (!c->closing && c->adm)
			admin_shutdown_begun(c);
	}
	(void)arg;
}

/* Every worker has stopped accepting. The console that asked for the
 * shutdown is answered only now, so an operator who sees SHUTDOWN knows no
 * new login can get in; console sessions stay open until the exit. */
static void drain_done(void *arg)
{
	(void)arg;
	if (control_phase() == PHASE_HANDOVER)
		return;
	worker_close_shared_listeners();
	worker_run_all(close_consoles_fn, NULL, NULL);
}

void control_begin(int phase)
{
	int cur = control_phase();
	/* HANDOVER and the drains do not mix: the first one wins, except
	 * that SHUTDOWN (EXIT) always wins. */
	if (cur != PHASE_RUNNING && phase != PHASE_EXIT)
		return;
	__atomic_store_n(&control_phase_now, phase, __ATOMIC_RELAXED);
	bypass_sync_pools(); /* the kernel starts no more transactions */
	const struct config *cfg = runtime_config();
	int64_t dl = cfg->shutdown_timeout_us ? loop_now_us() + cfg->shutdown_timeout_us : 0;
	__atomic_store_n(&deadline_us, dl, __ATOMIC_RELAXED);
	static const char *const names[] = { "running", "shutdown: waiting for servers to be released",
					     "shutdown: waiting for clients to disconnect",
					     "online restart: handing clients over", "shutdown now" };
	log_info("%s", names[phase]);
	if (phase == PHASE_EXIT)
		return;
	if (worker_run_all(drain_fn, drain_done, NULL) < 0)
		__atomic_store_n(&control_phase_now, PHASE_EXIT, __ATOMIC_RELAXED);
}

bool control_exit_due(int64_t now_us)
{
	int phase = control_phase();
	if (phase == PHASE_RUNNING)
		return false;
	if (phase == PHASE_EXIT)
		return true;
	int clients = runtime_clients_add(0);
	/* Console sessions do not hold a shutdown up. Read after the total:
	 * a closing console leaves this count before the total, so a
	 * console that goes meanwhile cannot make real clients look gone. */
	if (phase != PHASE_HANDOVER)
		clients -= admin_console_clients();
	int64_t dl = __atomic_load_n(&deadline_us, __ATOMIC_RELAXED);
	/* Handed-over clients still queued for sending keep us here. */
	if (clients <= 0 && (phase != PHASE_HANDOVER || !takeover_busy() || (dl && now_us >= dl)))
		return true;
	if (clients <= 0)
		return false;
	if (dl && now_us >= dl) {
		log_warning("shutdown_timeout reached with %d client%s left: closing them", clients,
			    clients == 1 ? "" : "s");
		return true;
	}
	return false;
}

void control_read_config(int64_t *stats_period_us, bool *log_stats)
{
	/* Under the reload lock: a reload may free the old snapshot. */
	pthread_mutex_lock(&reload_lock);
	const struct config *cfg = runtime_config();
	*stats_period_us = cfg->stats_period_us;
	*log_stats = cfg->log_stats;
	pthread_mutex_unlock(&reload_lock);
}

/* ---- SUSPEND ---- */

static void suspend_fn(struct worker *w, void *arg)
{
	bool on = arg != NULL;
	w->suspended = on;
	if (on)
		bypass_worker_take_all(w); /* pairs in the kernel stop too */
	if (control_phase() == PHASE_RUNNING)
		worker_set_accepting(w, !on);
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &w->clients) {
		struct client *c = list_entry(pos, struct client, node);
		if (!c->closing)
			c->proto->client_update_events(c);
	}
}

static uint64_t suspend_tickets, suspend_done_count; /* (atomic) */

static void suspend_done(void *arg)
{
	(void)arg;
	__atomic_add_fetch(&suspend_done_count, 1, __ATOMIC_RELEASE);
}

uint64_t control_suspend(bool on)
{
	__atomic_store_n(&suspended, on, __ATOMIC_RELAXED);
	bypass_sync_pools(); /* before SUSPEND is answered: no new transaction in the kernel */
	uint64_t ticket = __atomic_add_fetch(&suspend_tickets, 1, __ATOMIC_RELAXED);
	if (worker_run_all(suspend_fn, suspend_done, on ? (void *)1 : NULL) < 0)
		suspend_done(NULL); /* nothing runs: nothing to wait for */
	return ticket;
}

bool control_suspend_applied(uint64_t ticket)
{
	return __atomic_load_n(&suspend_done_count, __ATOMIC_ACQUIRE) >= ticket;
}

bool control_suspended(void)
{
	return __atomic_load_n(&suspended, __ATOMIC_RELAXED);
}
