/*
 * loop.c - epoll backend for one worker. Level-triggered: a handle that
 * stops reading must say so with loop_set(), which keeps the rules simple
 * (no lost wakeups) at the price of an epoll_ctl when interest changes.
 */
#include "loop.h"

#include <errno.h>
#include <time.h>
#include <unistd.h>

int loop_init(struct loop *l)
{
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		return -errno;
	l->n_ready = 0;
	l->cur = 0;
	l->changed = NULL;
	l->now_us = loop_now_us();
	return 0;
}

void loop_deinit(struct loop *l)
{
	if (l->epfd >= 0)
		close(l->epfd);
	l->epfd = -1;
}

static void unlink_changed(struct loop *l, struct loop_handle *h)
{
	if (!h->changed)
		return;
	for (struct loop_handle **pp = &l->changed; *pp; pp = &(*pp)->change_next) {
		if (*pp == h) {
			*pp = h->change_next;
			break;
		}
	}
	h->changed = false;
}

int loop_set(struct loop *l, struct loop_handle *h, uint32_t events)
{
	if (h->events == events)
		return 0;
	if (h->registered && events) { /* a change: before the next wait */
		h->events = events;
		if (!h->changed) {
			h->changed = true;
			h->change_next = l->changed;
			l->changed = h;
		}
		return 0;
	}
	struct epoll_event ev = { .events = events, .data.ptr = h };
	int op = h->registered == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_DEL;
	if (epoll_ctl(l->epfd, op, h->fd, &ev) < 0)
		return -errno;
	unlink_changed(l, h);
	h->events = h->registered = events;
	return 0;
}

/* Apply the changes of this wakeup. EPOLL_CTL_MOD of a registered fd
 * allocates nothing and cannot fail for a live handle. */
static void apply_changes(struct loop *l)
{
	while (l->changed) {
		struct loop_handle *h = l->changed;
		l->changed = h->change_next;
		h->changed = false;
		if (h->events == h->registered)
			continue; /* changed and changed back */
		struct epoll_event ev = { .events = h->events, .data.ptr = h };
		if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, h->fd, &ev) == 0)
			h->registered = h->events;
	}
}

void loop_forget(struct loop *l, struct loop_handle *h)
{
	if (h->registered && h->fd >= 0)
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, h->fd, NULL);
	unlink_changed(l, h);
	h->events = h->registered = 0;
	if (h->deferred) {
		for (struct loop_handle **pp = &l->deferred; *pp; pp = &(*pp)->defer_next) {
			if (*pp == h) {
				*pp = h->defer_next;
				break;
			}
		}
		h->deferred = false;
	}
	for (int i = l->cur + 1; i < l->n_ready; i++)
		if (l->ready[i].data.ptr == h)
			l->ready[i].data.ptr = NULL;
}

void loop_defer(struct loop *l, struct loop_handle *h)
{
	if (h->deferred)
		return;
	h->deferred = true;
	h->defer_next = l->deferred;
	l->deferred = h;
}

/* One pass over the deferred handles present now; a callback that defers
 * again waits for the next wakeup (which then does not block). */
static void run_deferred(struct loop *l)
{
	int n = 0;
	for (struct loop_handle *h = l->deferred; h; h = h->defer_next)
		n++;
	while (n-- > 0 && l->deferred) {
		struct loop_handle *h = l->deferred;
		l->deferred = h->defer_next;
		h->deferred = false;
		h->cb(h, EPOLLIN);
	}
}

int loop_run_once(struct loop *l, int timeout_ms)
{
	if (l->deferred)
		timeout_ms = 0;
	apply_changes(l);
	int n = epoll_wait(l->epfd, l->ready, LOOP_BATCH, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	l->n_ready = n;
	l->now_us = loop_now_us();
	for (l->cur = 0; l->cur < n; l->cur++) {
		struct loop_handle *h = l->ready[l->cur].data.ptr;
		if (h)
			h->cb(h, l->ready[l->cur].events);
	}
	l->n_ready = 0;
	l->cur = 0;
	run_deferred(l);
	return n;
}

int64_t loop_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
