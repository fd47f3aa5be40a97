/*
 * cancel_conn.h - PostgreSQL cancel requests: the CancelRequest packet a
 * client sends (looked up in the registry, cancel.h, or passed on to a
 * peer process), and the short-lived connections that carry one to
 * PostgreSQL or to a peer.
 *
 * Owns: struct cancel_conn, on worker->cancels of the worker that opened it.
 */
#ifndef SLUICE_CANCEL_CONN_H
#define SLUICE_CANCEL_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct pg_server;
struct worker;

/* A CancelRequest arrived on worker w. */
void cancel_request(struct worker *w, uint32_t pid, uint32_t key);

/* Open a connection to addr and send a CancelRequest for (pid, key). With
 * hold, that server (on worker w) is not lent to another client until
 * PostgreSQL has taken the cancel: a late cancel must never reach another
 * client's query (server_cancel_done ends the hold). */
void cancel_send(struct worker *w, const struct sockaddr *addr, socklen_t len,
		 uint32_t pid, uint32_t key, struct pg_server *hold);
/* Pass a CancelRequest on to a peer process (peer.h); *inflight is
 * decremented when its connection ends. */
void cancel_forward(struct worker *w, const struct sockaddr *addr, socklen_t len,
		    uint32_t pid, uint32_t key, int *inflight);
/* s is closing: its pending cancels no longer hold it. */
void cancel_forget_server(struct worker *w, struct pg_server *s);

/* Drop cancel connections older than their timeout (all when all). */
void cancel_tick(struct worker *w, int64_t now_us, bool all);

#endif
