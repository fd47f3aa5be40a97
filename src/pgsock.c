/*
 * pgsock.c - see pgsock.h.
 */
#include "pgsock.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

void pgsock_init(struct pgsock *s, int fd, loop_cb cb)
{
	*s = (struct pgsock){ 0 };
	s->h.fd = fd;
	s->h.cb = cb;
}

void pgsock_close(struct loop *l, struct pgsock *s)
{
	loop_forget(l, &s->h);
	if (s->h.fd >= 0)
		close(s->h.fd);
	s->h.fd = -1;
	iobuf_release(&s->rbuf);
	iobuf_release(&s->wbuf);
	s->fwd = s->skip = 0;
}

int pgsock_read(struct pgsock *s)
{
	/* Keep the unsent/unexamined bytes; make room at the end. A full
	 * buffer means backpressure: the caller stops reading. */
	if (!s->rbuf.data || iobuf_space(&s->rbuf) < 512) {
		uint32_t need = s->rbuf.data ? 512 : iobuf_block_size();
		if (s->rbuf.data && s->rbuf.cap - iobuf_len(&s->rbuf) < need)
			return -ENOBUFS;
		int rc = iobuf_reserve(&s->rbuf, need);
		if (rc)
			return rc;
	}
	ssize_t n = recv(s->h.fd, s->rbuf.data + s->rbuf.end, iobuf_space(&s->rbuf), 0);
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

int pgsock_flush(struct pgsock *dst, struct pgsock *src)
{
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

void pgsock_drop(struct pgsock *s, uint32_t len)
{
	iobuf_consume(&s->rbuf, len);
}

int pgsock_update(struct loop *l, struct pgsock *s, bool want_write)
{
	uint32_t ev = 0;
	/* Read while there is room; with a half-full buffer of bytes still
	 * waiting for the peer, wait for the peer to drain first (watermark). */
	if (s->want_read && (s->fwd == 0 || !s->rbuf.data || s->fwd < s->rbuf.cap / 2))
		ev |= EPOLLIN;
	if (want_write)
		ev |= EPOLLOUT;
	return loop_set(l, &s->h, ev);
}
