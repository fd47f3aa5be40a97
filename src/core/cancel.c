/*
 * cancel.c - see cancel.h. The registry lock is taken at login, close and
 * per cancel request. A client found here is used only on its own worker
 * (c->worker), the only thread that changes or frees it.
 */
#include "cancel.h"

#include <pthread.h>
#include <stdlib.h>

#include "client.h"
#include "proto.h"
#include "worker.h"

#define CANCEL_BUCKETS 4096

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct client *buckets[CANCEL_BUCKETS];

static unsigned bucket_of(uint32_t pid, uint32_t key)
{
	return (unsigned)((pid * 2654435761u) ^ key) % CANCEL_BUCKETS;
}

static struct client *find_locked(uint32_t pid, uint32_t key)
{
	for (struct client *c = buckets[bucket_of(pid, key)]; c; c = c->cancel_next)
		if (c->cancel_pid == pid && c->cancel_key == key)
			return c;
	return NULL;
}

void cancel_register(struct client *c)
{
	pthread_mutex_lock(&registry_lock);
	/* A client handed over by the previous process keeps its key (the
	 * application may still cancel with it) unless it collides. */
	if ((c->cancel_pid || c->cancel_key) && !find_locked(c->cancel_pid, c->cancel_key))
		goto insert;
	for (;;) {
		uint32_t v[2];
		c->proto->cancel_draw_key(&v[0], &v[1]);
		if ((v[0] == 0 && v[1] == 0) || find_locked(v[0], v[1]))
			continue;
		c->cancel_pid = v[0];
		c->cancel_key = v[1];
		break;
	}
insert:;
	unsigned b = bucket_of(c->cancel_pid, c->cancel_key);
	c->cancel_next = buckets[b];
	buckets[b] = c;
	pthread_mutex_unlock(&registry_lock);
}

void cancel_unregister(struct client *c)
{
	pthread_mutex_lock(&registry_lock);
	struct client **pp = &buckets[bucket_of(c->cancel_pid, c->cancel_key)];
	while (*pp && *pp != c)
		pp = &(*pp)->cancel_next;
	if (*pp)
		*pp = c->cancel_next;
	c->cancel_next = NULL;
	pthread_mutex_unlock(&registry_lock);
}

void cancel_set_worker(struct client *c, struct worker *w)
{
	pthread_mutex_lock(&registry_lock);
	c->worker = w;
	pthread_mutex_unlock(&registry_lock);
}

static void post_cancel(struct worker *to, uint32_t pid, uint32_t key)
{
	struct mail *m = calloc(1, sizeof(*m));
	if (!m)
		return;
	m->kind = MAIL_CANCEL;
	m->key_pid = pid;
	m->key = key;
	worker_post(to, m);
}

/* Cancel on the client's own worker. */
void cancel_deliver(struct worker *w, uint32_t pid, uint32_t key)
{
	pthread_mutex_lock(&registry_lock);
	struct client *c = find_locked(pid, key);
	/* The client moved to another worker while the mail was on its way. */
	struct worker *moved_to = c && c->worker != w ? c->worker : NULL;
	pthread_mutex_unlock(&registry_lock);
	if (moved_to)
		post_cancel(moved_to, pid, key);
	else if (c && !c->closing)
		c->proto->client_cancel(c);
}

bool cancel_dispatch(struct worker *w, uint32_t pid, uint32_t key)
{
	pthread_mutex_lock(&registry_lock);
	struct client *c = find_locked(pid, key);
	struct worker *target = c ? c->worker : NULL;
	pthread_mutex_unlock(&registry_lock);
	if (!target)
		return false;
	if (target == w)
		cancel_deliver(w, pid, key);
	else
		post_cancel(target, pid, key);
	return true;
}

struct client *cancel_find_here(struct worker *w, uint32_t pid, uint32_t key, struct worker **elsewhere)
{
	pthread_mutex_lock(&registry_lock);
	struct client *c = find_locked(pid, key);
	*elsewhere = c && c->worker != w ? c->worker : NULL;
	pthread_mutex_unlock(&registry_lock);
	return *elsewhere ? NULL : c;
}
