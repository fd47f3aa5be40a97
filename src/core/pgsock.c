/*
 * pgsock.c - see pgsock.h.
 */
#include "pgsock.h"
#include "bypass.h"

#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <sys/ioctl.h>

#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls.h"

void pgsock_init(struct pgsock *s, int fd, loop_cb cb)
{
	*s = (struct pgsock){ 0 };
	s->h.fd = fd;
	s->h.cb = cb;
}

void pgsock_close(struct loop *l, struct pgsock *s)
{
	loop_forget(l, &s->h);
	if (s->ssl) {
		/* A polite close_notify when it fits; never wait for it. */
		if (s->h.fd >= 0 && SSL_is_init_finished(s->ssl))
			SSL_shutdown(s->ssl);
		SSL_free(s->ssl);
		s->ssl = NULL;
		ERR_clear_error();
	}
	if (s->h.fd >= 0)
		close(s->h.fd);
	s->h.fd = -1;
	iobuf_release(&s->rbuf);
	iobuf_release(&s->wbuf);
	s->fwd = s->skip = 0;
}

/* SSL_read into rbuf's free space (room was made by pgsock_read). */
static int tls_read(struct pgsock *s)
{
	ERR_clear_error();
	int n = SSL_read(s->ssl, s->rbuf.data + s->rbuf.end, (int)iobuf_space(&s->rbuf));
	if (n > 0) {
		s->rbuf.end += (uint32_t)n;
		return n;
	}
	switch (SSL_get_error(s->ssl, n)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		if (iobuf_len(&s->rbuf) == 0)
			iobuf_release(&s->rbuf);
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		return errno ? -errno : 0;
	default:
		ERR_clear_error();
		return -EPROTO;
	}
}

/* SSL_write of one piece; returns bytes written, -EAGAIN or -errno. */
static int tls_write(SSL *ssl, const uint8_t *p, uint32_t len)
{
	ERR_clear_error();
	int n = SSL_write(ssl, p, (int)len);
	if (n > 0)
		return n;
	switch (SSL_get_error(ssl, n)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return -EAGAIN;
	case SSL_ERROR_SYSCALL:
		return errno ? -errno : -EPIPE;
	default:
		ERR_clear_error();
		return -EPROTO;
	}
}

/* pgsock_flush over TLS: no writev, so the two parts go one after the
 * other (OpenSSL makes one record per write of up to 16 KiB). */
static int tls_flush(struct pgsock *dst, struct pgsock *src)
{
	while (iobuf_len(&dst->wbuf)) {
		int n = tls_write(dst->ssl, iobuf_head(&dst->wbuf), iobuf_len(&dst->wbuf));
		if (n < 0)
			return n;
		iobuf_consume(&dst->wbuf, (uint32_t)n);
	}
	while (src && src->fwd) {
		int n = tls_write(dst->ssl, iobuf_head(&src->rbuf), src->fwd);
		if (n < 0)
			return n;
		src->fwd -= (uint32_t)n;
		iobuf_consume(&src->rbuf, (uint32_t)n);
	}
	return 0;
}

int pgsock_read(struct pgsock *s)
{
	/* Keep the unsent/unexamined bytes; make room at the end. A full
	 * buffer means backpressure: the caller stops reading. */
	if (!s->rbuf.data || iobuf_space(&s->rbuf) < PGSOCK_READ_MIN) {
		uint32_t need = s->rbuf.data ? PGSOCK_READ_MIN : iobuf_block_size();
		if (pgsock_rbuf_full(s))
			return -ENOBUFS;
		int rc = iobuf_reserve(&s->rbuf, need);
		if (rc)
			return rc;
	}
	if (s->ssl)
		return tls_read(s);
	ssize_t n = recv(s->h.fd, s->rbuf.data + s->rbuf.end, iobuf_space(&s->rbuf), 0);
	if (n > 0 && s->bp_slot && bypass_sock_resent(s)) /* no call for sockets outside the sockhash */
		return PGSOCK_ERESENT;
	if (n > 0) {
		s->rbuf.end += (uint32_t)n;
		return (int)n;
	}
	if (n == 0)
		return 0;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
		if (iobuf_len(&s->rbuf) == 0)
			iobuf_release(&s->rbuf);
		return -EAGAIN;
	}
	return -errno;
}

const char *pgsock_read_failure(int n, const char *what)
{
	if (n == PGSOCK_ERESENT)
		return "bpf_bypass: TCP delivered retransmitted bytes twice to the kernel fast path; "
		       "the connection cannot go on";
	return what;
}

int64_t pgsock_tcp_queued(int fd)
{
	/* Acknowledged bytes first, then the queue: an ACK between the two
	 * calls makes the sum smaller, never larger, than the truth. */
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
	    len < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof(ti.tcpi_bytes_acked))
		return -1;
	int outq = 0;
	if (ioctl(fd, SIOCOUTQ, &outq) < 0 || outq < 0)
		return -1;
	return (int64_t)ti.tcpi_bytes_acked + outq;
}

/* bpf_bypass: has the kernel written everything it redirected to dst?
 * It does so from a work queue after the program returns (the psock
 * backlog), so right after a hand-over some may still be on the way;
 * sluice's bytes must come after them. */
static bool kernel_backlog_written(const struct pgsock *dst)
{
	if (!dst->bp_slot)
		return true;
	int64_t expect = dst->bp_base + (int64_t)dst->sent + (int64_t)bypass_sock_redirected(dst);
	int64_t queued = pgsock_tcp_queued(dst->h.fd);
	return queued < 0 || queued >= expect;
}

int pgsock_flush(struct pgsock *dst, struct pgsock *src)
{
	if (dst->ssl)
		return tls_flush(dst, src);
	if (dst->bp_settle && (iobuf_len(&dst->wbuf) || (src && src->fwd))) {
		/* Until then the caller waits for EPOLLOUT (rare: only right
		 * after a hand-over, for microseconds). Nothing to send is not
		 * a wait. */
		if (!kernel_backlog_written(dst))
			return -EAGAIN;
		dst->bp_settle = false;
	}
	if (src && src->resync && src->fwd >= src->resync) {
		iobuf_consume(&src->rbuf, src->resync);
		src->fwd -= src->resync;
		src->resync = 0;
	}
	for (;;) {
		struct iovec iov[2];
		int n_iov = 0;
		uint32_t wlen = iobuf_len(&dst->wbuf);
		uint32_t flen = src ? src->fwd : 0;
		if (wlen)
			iov[n_iov++] = (struct iovec){ iobuf_head(&dst->wbuf), wlen };
		if (flen)
			iov[n_iov++] = (struct iovec){ iobuf_head(&src->rbuf), flen };
		if (!n_iov)
			return 0;
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n_iov };
		ssize_t n = sendmsg(dst->h.fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		}
		dst->sent += (uint64_t)n;
		uint32_t sent = (uint32_t)n;
		uint32_t w = sent < wlen ? sent : wlen;
		if (w)
			iobuf_consume(&dst->wbuf, w);
		sent -= w;
		if (sent) {
			src->fwd -= sent;
			iobuf_consume(&src->rbuf, sent);
		}
		if ((size_t)n < (size_t)wlen + flen)
			return -EAGAIN;
	}
}

bool pgsock_quiet(const struct pgsock *s)
{
	return iobuf_len(&s->rbuf) == 0 && iobuf_len(&s->wbuf) == 0 && !s->fwd && !s->skip && !s->drop &&
	       !s->resync && !s->parse_blocked && !s->bp_slot && !s->bp_quiet && !s->bp_settle &&
	       (!s->ssl || SSL_pending(s->ssl) == 0);
}

void pgsock_drop(struct pgsock *s, uint32_t len)
{
	s->resync = s->resync > len ? s->resync - len : 0;
	iobuf_consume(&s->rbuf, len);
}

int pgsock_update(struct loop *l, struct pgsock *s, bool want_write)
{
	uint32_t ev = 0;
	if (s->bp_quiet)
		return loop_set(l, &s->h, EPOLLRDHUP);
	/* Read while there is room; with a half-full buffer of bytes still
	 * waiting for the peer, wait for the peer to drain first (watermark). */
	if (s->want_read && (s->fwd == 0 || !s->rbuf.data || s->fwd < s->rbuf.cap / 2))
		ev |= EPOLLIN;
	if (want_write)
		ev |= EPOLLOUT;
	/* Bytes OpenSSL has decrypted already raise no epoll event. */
	if (s->ssl && (ev & EPOLLIN) && SSL_pending(s->ssl) > 0)
		loop_defer(l, &s->h);
	return loop_set(l, &s->h, ev);
}

int pgsock_tls_step(struct loop *l, struct pgsock *s, char *why, size_t whylen)
{
	bool want_write = false;
	int rc = tls_handshake(s->ssl, &want_write, why, whylen);
	if (rc != -EAGAIN)
		return rc;
	bool rd = s->want_read;
	s->want_read = !want_write;
	rc = pgsock_update(l, s, want_write);
	s->want_read = rd;
	if (rc < 0) {
		snprintf(why, whylen, "epoll failure");
		return -EIO;
	}
	return -EAGAIN;
}
