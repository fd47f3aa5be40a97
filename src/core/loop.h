/*
 * loop.h - one epoll instance per worker thread, plus a coarse tick.
 *
 * Owns: the epoll fd and the batch of ready events of the current wakeup.
 * The caller owns every loop_handle (embedded in its connection object).
 * Must not: know about PostgreSQL or connections.
 *
 * Safety rule: before a handle's memory is freed or handed to another
 * thread, call loop_forget() so events already fetched in this batch for
 * it are dropped instead of dispatched to freed or foreign memory.
 */
#ifndef SLUICE_LOOP_H
#define SLUICE_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

struct loop_handle;
typedef void (*loop_cb)(struct loop_handle *h, uint32_t revents);

struct loop_handle {
	int fd;          /* file descriptor watched, -1 when none */
	uint32_t events; /* events wanted (0 = not registered); what epoll has
			  * from the next wait on */
	uint32_t registered; /* events epoll has now (differs from `events`
			      * while a change waits on loop->changed) */
	loop_cb cb;      /* called with the ready events */
	struct loop_handle *defer_next; /* in loop->deferred (loop_defer) */
	bool deferred;   /* on loop->deferred */
	struct loop_handle *change_next; /* in loop->changed */
	bool changed;    /* on loop->changed */
};

#define LOOP_BATCH 128

struct loop {
	int epfd;                             /* epoll instance */
	struct epoll_event ready[LOOP_BATCH]; /* events of the current wakeup */
	int n_ready;                          /* valid entries in ready[] */
	int cur;                              /* index being dispatched */
	int64_t now_us;                       /* monotonic time of the current wakeup */
	struct loop_handle *deferred;         /* handles to call with EPOLLIN without
					       * an epoll event (TLS bytes already
					       * decrypted inside OpenSSL) */
	struct loop_handle *changed;          /* registered handles whose wanted events
					       * changed since the last wait */
};

int loop_init(struct loop *l);
void loop_deinit(struct loop *l);

/* Register, change or remove interest. events == 0 removes. Returns 0 or
 * -errno. Registering and removing happen at once; a change of a
 * registered handle's events is applied just before the next wait, so that
 * one undone within the same wakeup (EPOLLOUT wanted while bytes were
 * queued, then not, because the send that followed took them all) costs
 * no system call. Level-triggered epoll makes the delay harmless: what is
 * ready at the wait is reported then. */
int loop_set(struct loop *l, struct loop_handle *h, uint32_t events);
/* Remove from epoll and drop pending events of this batch for h. */
void loop_forget(struct loop *l, struct loop_handle *h);

/* Call h's callback with EPOLLIN at the end of this wakeup even though the
 * kernel has nothing for it (data waits inside OpenSSL, not the socket). */
void loop_defer(struct loop *l, struct loop_handle *h);

/* Wait up to timeout_ms and dispatch. Returns number of events or -errno. */
int loop_run_once(struct loop *l, int timeout_ms);

/* Monotonic clock in microseconds. */
int64_t loop_now_us(void);

#endif
