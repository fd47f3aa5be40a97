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

#include <stdint.h>

struct config;
struct client;
struct proto_ops;

/* A client's state in a frame to the new process, written and read by its
 * protocol (proto.h client_encode, client_adopt): big-endian u32s, and
 * strings as a u32 length (0xffffffff = absent) and their bytes. */
struct takeover_enc {
	uint8_t *p;                /* heap, grown as needed */
	size_t len, cap;
	bool oom;                  /* sticky: an append failed */
};
void takeover_enc_bytes(struct takeover_enc *e, const void *p, size_t n);
void takeover_enc_u32(struct takeover_enc *e, uint32_t v);
void takeover_enc_str(struct takeover_enc *e, const char *s);

struct takeover_dec {
	const uint8_t *p, *end;    /* what is left to read */
	bool err;                  /* sticky: ran past the end or out of memory */
};
uint32_t takeover_dec_u32(struct takeover_dec *d);
/* Heap copy, NULL for an absent string (and on error). */
char *takeover_dec_str(struct takeover_dec *d, bool *absent);

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
/* Start the thread that adopts the old process's clients, each with the
 * protocol of protos[0..n-1] whose takeover_frame its frame has. */
int takeover_receive_start(const struct proto_ops *const *protos, int n);
void takeover_receive_stop(void);

#endif
