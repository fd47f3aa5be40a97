/*
 * takeover.h - online restart: a new sluice process takes the listening
 * sockets and the idle clients of a running one over a unix socket
 * (SCM_RIGHTS), so no client connection is dropped.
 *
 * Old process: takeover_listen() opens <unix_socket_dir>/.s.SLUICE.<port>.takeover
 * and serves one new process at a time on its own thread. Once the listening
 * sockets are sent, workers hand each client over at its next transaction
 * boundary (takeover_give_client) until none is left.
 * New process: takeover_fetch_listeners() (before the workers start), then
 * takeover_receive_start() adopts clients on the workers as they arrive.
 * Must not: carry a client that is linked to a server, logging in, or has
 * bytes half-sent; those stay and drain in the old process.
 */
#ifndef SLUICE_TAKEOVER_H
#define SLUICE_TAKEOVER_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct client;

/* Old side. Returns 0, or a negative errno (logged) when the socket cannot
 * be opened; the pooler runs on without online restart then. */
int takeover_listen(const struct config *cfg);
void takeover_stop(void);
/* A worker's client at a boundary during PHASE_HANDOVER: send it when it
 * can move. Returns true when the client left this process. */
bool takeover_give_client(struct client *c);

/* Clients queued for the new process and not sent yet. */
bool takeover_busy(void);

/* New side. Connects to the old process and receives its listening
 * sockets (kept for the workers: see takeover_listener_fds). Returns 0 or a
 * negative errno with err filled in. */
int takeover_fetch_listeners(const struct config *cfg, char *err, size_t errlen);
/* Listening sockets received: TCP ones and the unix one (-1 if none). */
int takeover_listener_fds(int **tcp, int *unix_fd);
/* Start the thread that adopts the old process's clients. */
int takeover_receive_start(void);
void takeover_receive_stop(void);

#endif
