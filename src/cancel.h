/*
 * cancel.h - CancelRequest routing. Each client gets a BackendKeyData from
 * sluice (not the server's); a cancel arriving on any worker finds the
 * client here and the client's own worker sends the real cancel to the
 * server the client is linked to.
 *
 * Owns: a hash of live clients by (pid, key) under one mutex, taken at
 * client login/close and per cancel, never per message; and the short-lived
 * connections that carry a CancelRequest to PostgreSQL.
 */
#ifndef SLUICE_CANCEL_H
#define SLUICE_CANCEL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct client;
struct server;
struct worker;

/* Give c a unique random (cancel_pid, cancel_key) and register it. */
void cancel_register(struct client *c);
void cancel_unregister(struct client *c);
/* The client moves to worker w (balance.h): cancels go there from now on. */
void cancel_set_worker(struct client *c, struct worker *w);

/* A CancelRequest arrived on worker w. */
void cancel_request(struct worker *w, uint32_t pid, uint32_t key);
/* MAIL_CANCEL on the client's own worker. */
void cancel_deliver(struct worker *w, uint32_t pid, uint32_t key);

/* Open a connection to addr and send a CancelRequest for (pid, key). With
 * hold, that server (on worker w) is not lent to another client until
 * PostgreSQL has taken the cancel: a late cancel must never reach another
 * client's query (server_cancel_done ends the hold). */
void cancel_send(struct worker *w, const struct sockaddr *addr, socklen_t len,
		 uint32_t pid, uint32_t key, struct server *hold);
/* Pass a CancelRequest on to a peer process (peer.h); *inflight is
 * decremented when its connection ends. */
void cancel_forward(struct worker *w, const struct sockaddr *addr, socklen_t len,
		    uint32_t pid, uint32_t key, int *inflight);
/* s is closing: its pending cancels no longer hold it. */
void cancel_forget_server(struct worker *w, struct server *s);

/* Drop cancel connections older than their timeout (all when all). */
void cancel_tick(struct worker *w, int64_t now_us, bool all);

#endif
