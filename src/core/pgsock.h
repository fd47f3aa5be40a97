/*
 * pgsock.h - the byte-moving half of a connection, shared by the client
 * and server state machines.
 *
 * Owns: the socket fd, its loop handle, the receive buffer and the buffer
 * of bytes sluice itself generated for this socket.
 * Must not: interpret messages (client.c / server.c do that).
 *
 * Forwarding without copying: bytes received on A are examined in place;
 * rbuf[start, start + fwd) is the examined part that goes to A's peer, and
 * is sent straight from A's rbuf to the peer's socket. While that part
 * cannot be sent (peer not writable) A stops reading once its rbuf is
 * full, so one direction never holds more than one buffer (backpressure).
 */
#ifndef SLUICE_PGSOCK_H
#define SLUICE_PGSOCK_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "iobuf.h"
#include "loop.h"

typedef struct ssl_st SSL;

struct pgsock {
	struct loop_handle h; /* fd + registered events; h.cb set by owner */
	struct iobuf rbuf;    /* received bytes not yet consumed */
	uint32_t fwd;         /* rbuf bytes (from start) examined, to send to the peer */
	uint32_t skip;        /* body bytes of the current message, not yet received,
			       * that are forwarded unexamined as they arrive */
	uint32_t drop;        /* body bytes of the current message, not yet received,
			       * that are dropped as they arrive (PostgreSQL would skip it) */
	uint32_t resync;      /* bpf_bypass: the first bytes of rbuf were already sent
			       * to the peer by the kernel; drop them instead of
			       * forwarding them again */
	struct iobuf wbuf;    /* bytes sluice generated for this socket; sent
			       * before any forwarded bytes */
	SSL *ssl;             /* TLS session once the handshake began, else NULL (owned) */
	bool want_read;       /* owner wants EPOLLIN when there is room */
	bool parse_blocked;   /* parsing stopped until the forward part is sent */
	bool bp_quiet;        /* bpf_bypass: the kernel carries this socket; only a
			       * hang-up is watched (hand-overs come as events) */
	bool bp_settle;       /* bpf_bypass: just taken back from the kernel; bytes it
			       * redirected here may still be on their way out */
	uint64_t sent;        /* bytes sluice wrote to this socket */
	/* bpf_bypass: the socket's byte stream is bp_base + sent + the bytes
	 * the kernel redirected here (bypass_sock_redirected), once the
	 * kernel's backlog for it is written (set at attach). */
	int64_t bp_base;
	const void *bp_slot;  /* bpf_bypass: the socket's slot while it is in the
			       * sockhash, else NULL; only bypass.c looks inside */
};

void pgsock_init(struct pgsock *s, int fd, loop_cb cb);
/* Close the fd (after loop_forget) and release buffers. */
void pgsock_close(struct loop *l, struct pgsock *s);

/* recv() as much as fits into rbuf (at most one call per wakeup beyond the
 * first full read). Returns bytes read (>0), 0 on EOF, -EAGAIN when
 * nothing is there, -ENOBUFS when rbuf is full, PGSOCK_ERESENT, or
 * another -errno. */
int pgsock_read(struct pgsock *s);
/* bpf_bypass: TCP gave the kernel path bytes twice; the stream is lost. */
#define PGSOCK_ERESENT (-EBADMSG)
/* Why a pgsock_read result n < 0 ends the connection, for the log. */
const char *pgsock_read_failure(int n, const char *what);

/* Bytes ever queued on a TCP socket, by anyone: acknowledged plus still in
 * the send queue. -1 when fd is not TCP (or the kernel does not say). */
int64_t pgsock_tcp_queued(int fd);

/* Nothing in flight: no byte buffered either way (TLS included), no
 * message half received, not in the kernel path's sockhash or settling
 * back from it. */
bool pgsock_quiet(const struct pgsock *s);

/* rbuf takes no more bytes until some are consumed: a message at the
 * cursor that is not whole by then never will be (forward it as it
 * comes, or refuse it). */
#define PGSOCK_READ_MIN 512u
static inline bool pgsock_rbuf_full(const struct pgsock *s)
{
	return s->rbuf.data && s->rbuf.cap - iobuf_len(&s->rbuf) < PGSOCK_READ_MIN;
}
/* Bytes of rbuf not yet examined. */
static inline uint32_t pgsock_unexamined(const struct pgsock *s) { return iobuf_len(&s->rbuf) - s->fwd; }
static inline uint8_t *pgsock_cursor(const struct pgsock *s) { return iobuf_head(&s->rbuf) + s->fwd; }

/* Send dst->wbuf, then src->rbuf's forward part (src may be NULL) to dst's
 * socket. Returns 0 when everything was sent, -EAGAIN when some is left
 * (caller must wait for EPOLLOUT on dst), or another -errno. */
int pgsock_flush(struct pgsock *dst, struct pgsock *src);

/* Drop the examined message of len bytes at the cursor (it must not be
 * forwarded). Only valid when fwd == 0. */
void pgsock_drop(struct pgsock *s, uint32_t len);

/* Recompute epoll interest: EPOLLIN when want_read and rbuf has room and
 * nothing examined waits to be forwarded beyond the low watermark;
 * EPOLLOUT when want_write. */
int pgsock_update(struct loop *l, struct pgsock *s, bool want_write);

/* One step of the TLS handshake on s (s->ssl set): 0 when done, -EAGAIN
 * while it goes on (the events it waits for are set), another negative
 * value with why when it failed (or epoll did). */
int pgsock_tls_step(struct loop *l, struct pgsock *s, char *why, size_t whylen);

#endif
