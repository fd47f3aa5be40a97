/*
 * takeover.c - see takeover.h.
 *
 * Wire format on the unix stream socket, one frame at a time:
 *   u32 payload length, u8 type, u8 number of fds, payload
 * sent with one sendmsg() carrying the fds (SCM_RIGHTS), so the fds arrive
 * with the frame's first bytes. Frames:
 *   'L' listening sockets: u8 kind per fd ('T' TCP, 'U' unix)
 *   'C' one PostgreSQL client: see client_handover.c
 *   'M' one MySQL client: see my_handover.c
 * (a client's frame type is its protocol's takeover_frame, proto.h; a
 * process that does not know the type closes the client's socket)
 * The new process opens with "SLUICE-TAKEOVER 1\n". The old process sends
 * 'L' first, then clients as workers hand them over, and closes the
 * connection when it exits; EOF ends the new process's receiving thread.
 */
#include "takeover.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "client.h"
#include "config.h"
#include "control.h"
#include "log.h"
#include "pool.h"
#include "proto.h"
#include "runtime.h"
#include "worker.h"

#define HELLO "SLUICE-TAKEOVER 1\n"
#define MAX_FDS 64
#define MAX_FRAME (64u << 20) /* a client with many prepared statements fits */

/* ---- frames ---- */

static int send_frame(int sock, uint8_t type, const int *fds, int nfds, const void *payload, uint32_t len)
{
	uint8_t hdr[6] = { (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len,
			   type, (uint8_t)nfds };
	struct iovec iov[2] = { { hdr, sizeof(hdr) }, { (void *)payload, len } };
	union {
		char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
		struct cmsghdr align;
	} cm;
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
	if (nfds > 0) {
		msg.msg_control = cm.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	size_t total = sizeof(hdr) + len, sent = 0;
	while (sent < total) {
		ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		sent += (size_t)n;
		/* The fds went with the first bytes; send the rest plainly. */
		msg.msg_control = NULL;
		msg.msg_controllen = 0;
		while (msg.msg_iovlen && (size_t)n >= msg.msg_iov[0].iov_len) {
			n -= (ssize_t)msg.msg_iov[0].iov_len;
			msg.msg_iov++;
			msg.msg_iovlen--;
		}
		if (msg.msg_iovlen) {
			msg.msg_iov[0].iov_base = (char *)msg.msg_iov[0].iov_base + n;
			msg.msg_iov[0].iov_len -= (size_t)n;
		}
	}
	return 0;
}

static int read_exact(int sock, void *p, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = recv(sock, (char *)p + got, n - got, 0);
		if (r == 0)
			return -EPIPE;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)r;
	}
	return 0;
}

/* Returns 0 with *payload (heap) and fds filled, -EPIPE at EOF, or -errno. */
static int recv_frame(int sock, uint8_t *type, int *fds, int *nfds, uint8_t **payload, uint32_t *len)
{
	uint8_t hdr[6];
	union {
		char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
		struct cmsghdr align;
	} cm;
	struct iovec iov = { hdr, sizeof(hdr) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
			      .msg_controllen = sizeof(cm.buf) };
	*nfds = 0;
	*payload = NULL;
	ssize_t n;
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_WAITALL);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return -EPIPE;
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			memcpy(fds + *nfds, CMSG_DATA(c), sizeof(int) * (size_t)k);
			*nfds += k;
		}
	}
	if ((size_t)n < sizeof(hdr) && read_exact(sock, hdr + n, sizeof(hdr) - (size_t)n) < 0)
		return -EPIPE;
	*len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
	*type = hdr[4];
	if (*len > MAX_FRAME || hdr[5] != *nfds)
		return -EPROTO;
	*payload = malloc(*len ? *len : 1);
	if (!*payload)
		return -ENOMEM;
	int rc = read_exact(sock, *payload, *len);
	if (rc < 0) {
		free(*payload);
		*payload = NULL;
	}
	return rc;
}

/* ---- encoding a client's state ---- */

void takeover_enc_bytes(struct takeover_enc *e, const void *p, size_t n)
{
	if (e->oom || n == 0)
		return;
	if (e->len + n > e->cap) {
		size_t cap = e->cap ? e->cap : 512;
		while (cap < e->len + n)
			cap *= 2;
		uint8_t *q = realloc(e->p, cap);
		if (!q) {
			e->oom = true;
			return;
		}
		e->p = q;
		e->cap = cap;
	}
	memcpy(e->p + e->len, p, n);
	e->len += n;
}

void takeover_enc_u32(struct takeover_enc *e, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
	takeover_enc_bytes(e, b, 4);
}

void takeover_enc_str(struct takeover_enc *e, const char *s)
{
	if (!s) {
		takeover_enc_u32(e, 0xffffffff);
		return;
	}
	uint32_t n = (uint32_t)strlen(s);
	takeover_enc_u32(e, n);
	takeover_enc_bytes(e, s, n);
}

uint32_t takeover_dec_u32(struct takeover_dec *d)
{
	if (d->end - d->p < 4) {
		d->err = true;
		return 0;
	}
	uint32_t v = (uint32_t)d->p[0] << 24 | (uint32_t)d->p[1] << 16 | (uint32_t)d->p[2] << 8 | d->p[3];
	d->p += 4;
	return v;
}

char *takeover_dec_str(struct takeover_dec *d, bool *absent)
{
	uint32_t n = takeover_dec_u32(d);
	*absent = n == 0xffffffff;
	if (d->err || *absent)
		return NULL;
	if ((size_t)(d->end - d->p) < n) {
		d->err = true;
		return NULL;
	}
	char *s = malloc((size_t)n + 1);
	if (!s) {
		d->err = true;
		return NULL;
	}
	memcpy(s, d->p, n);
	s[n] = '\0';
	d->p += n;
	return s;
}

/* ---- old process ---- */

struct outgoing {
	struct outgoing *next;
	int fd;               /* client socket, closed after sending */
	uint8_t type;         /* frame type: its protocol's takeover_frame */
	uint8_t *data;
	uint32_t len;
};

static int listen_fd = -1;
static char listen_path[108];
static pthread_t thread;
static bool thread_running;
static int stop_pipe[2] = { -1, -1 };
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t out_cond = PTHREAD_COND_INITIALIZER;
static struct outgoing *out_head, **out_tail = &out_head;
static int out_pending;               /* queued or being sent (out_lock) */
static bool peer_gone;                /* the new process went away (out_lock) */

static int takeover_path(const struct config *cfg, char *out, size_t len)
{
	if (!cfg->unix_socket_dir || !*cfg->unix_socket_dir)
		return -EINVAL;
	int n = snprintf(out, len, "%s/.s.SLUICE.%d.takeover", cfg->unix_socket_dir, cfg->listen_port);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

bool takeover_give_client(struct client *c)
{
	if (c->adm) {
		c->proto->client_fail(c, "57P01", "sluice is restarting (online restart); please reconnect");
		return true;
	}
	/* A TLS session's state lives in OpenSSL: it cannot move (docs). */
	bool movable = c->pool && c->pool->mode != POOL_MODE_SESSION && c->state == CLIENT_IDLE && !c->sock.ssl &&
		       !c->server && iobuf_len(&c->sock.wbuf) == 0 && c->sock.fwd == 0 &&
		       c->sock.skip == 0 && !c->queued && c->proto->client_handover_ok(c);
	if (!movable)
		return false;
	struct takeover_enc e = { 0 };
	struct outgoing *o = calloc(1, sizeof(*o));
	if (!o || c->proto->client_encode(c, &e) < 0) {
		free(o);
		free(e.p);
		return false; /* try again at the next boundary */
	}
	pthread_mutex_lock(&out_lock);
	bool gone = peer_gone;
	if (!gone) {
		o->data = e.p;
		o->len = (uint32_t)e.len;
		o->type = c->proto->takeover_frame;
		loop_forget(&c->worker->loop, &c->sock.h);
		o->fd = c->sock.h.fd;
		c->sock.h.fd = -1; /* the socket now belongs to the queue */
		*out_tail = o;
		out_tail = &o->next;
		out_pending++;
		pthread_cond_signal(&out_cond);
	}
	pthread_mutex_unlock(&out_lock);
	if (gone) {
		free(o);
		free(e.p);
		return false;
	}
	c->proto->client_close(c, "handed over to the new sluice process");
	return true;
}

bool takeover_busy(void)
{
	pthread_mutex_lock(&out_lock);
	bool busy = out_pending > 0;
	pthread_mutex_unlock(&out_lock);
	return busy;
}

static void serve_new_process(int sock)
{
	char hello[sizeof(HELLO) - 1];
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 ||
	    (cred.uid != geteuid() && cred.uid != 0)) {
		log_warning("online restart: refused a takeover request from uid %d", (int)cred.uid);
		return;
	}
	if (read_exact(sock, hello, sizeof(hello)) < 0 || memcmp(hello, HELLO, sizeof(hello)) != 0) {
		log_warning("online restart: bad greeting on the takeover socket; ignored");
		return;
	}
	int fds[MAX_FDS];
	uint8_t kinds[MAX_FDS];
	int n = worker_listener_fds(fds, kinds, MAX_FDS);
	/* No second takeover while this one runs: the new process makes its
	 * own takeover socket once it has the listeners. */
	close(listen_fd);
	listen_fd = -1;
	unlink(listen_path);
	if (send_frame(sock, 'L', fds, n, kinds, (uint32_t)n) < 0) {
		log_error("online restart: could not send the listening sockets; going on as before");
		return;
	}
	log_info("online restart: listening sockets handed to pid %d; handing clients over", (int)cred.pid);
	worker_forget_listeners(); /* the new process owns them (and the unix socket's path) */
	control_begin(PHASE_HANDOVER);
	for (;;) {
		pthread_mutex_lock(&out_lock);
		while (!out_head)
			pthread_cond_wait(&out_cond, &out_lock);
		struct outgoing *o = out_head;
		out_head = o->next;
		if (!out_head)
			out_tail = &out_head;
		pthread_mutex_unlock(&out_lock);
		int rc = peer_gone ? -EPIPE : send_frame(sock, o->type, &o->fd, 1, o->data, o->len);
		if (rc < 0 && !peer_gone) {
			log_error("online restart: the new process stopped taking clients (%s); the rest are closed",
				  strerror(-rc));
			pthread_mutex_lock(&out_lock);
			peer_gone = true;
			pthread_mutex_unlock(&out_lock);
		}
		close(o->fd);
		OPENSSL_cleanse(o->data, o->len);
		free(o->data);
		free(o);
		pthread_mutex_lock(&out_lock);
		out_pending--;
		pthread_mutex_unlock(&out_lock);
	}
}

static void *takeover_main(void *arg)
{
	(void)arg;
	while (listen_fd >= 0) {
		struct pollfd p[2] = { { listen_fd, POLLIN, 0 }, { stop_pipe[0], POLLIN, 0 } };
		if (poll(p, 2, -1) < 0)
			continue;
		if (p[1].revents)
			break;
		int sock = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (sock < 0)
			continue;
		serve_new_process(sock); /* returns only when the takeover failed */
		close(sock);
	}
	return NULL;
}

int takeover_listen(const struct config *cfg)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	if (takeover_path(cfg, un.sun_path, sizeof(un.sun_path)) < 0)
		return 0; /* no unix_socket_dir: no online restart (docs say so) */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(un.sun_path);
	mode_t old = umask(0077);
	int rc = bind(fd, (struct sockaddr *)&un, sizeof(un));
	umask(old);
	if (rc < 0 || listen(fd, 4) < 0 || pipe2(stop_pipe, O_CLOEXEC) < 0) {
		rc = -errno;
		log_warning("online restart unavailable: cannot listen on %s: %s", un.sun_path, strerror(errno));
		close(fd);
		return rc;
	}
	listen_fd = fd;
	snprintf(listen_path, sizeof(listen_path), "%s", un.sun_path);
	if (pthread_create(&thread, NULL, takeover_main, NULL) != 0) {
		close(fd);
		listen_fd = -1;
		unlink(listen_path);
		return -EAGAIN;
	}
	thread_running = true;
	return 0;
}

void takeover_stop(void)
{
	if (listen_fd >= 0) {
		if (write(stop_pipe[1], "x", 1) < 0)
			(void)0;
		pthread_join(thread, NULL);
		close(listen_fd);
		listen_fd = -1;
		unlink(listen_path);
	} else if (thread_running) {
		/* Serving a takeover: the thread ends with the process. */
		pthread_detach(thread);
	}
	thread_running = false;
}

/* ---- new process ---- */

static int conn_fd = -1;                 /* to the old process */
static int got_tcp[MAX_FDS], n_got_tcp;
static int got_unix = -1;
static pthread_t recv_thread;
static bool recv_running;
static int next_worker;
static const struct proto_ops *const *clients_protos; /* the protocols clients may speak */
static int n_clients_protos;
static pthread_mutex_t recv_lock = PTHREAD_MUTEX_INITIALIZER;
static bool recv_stopping;               /* workers are going away (recv_lock) */

int takeover_fetch_listeners(const struct config *cfg, char *err, size_t errlen)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	if (takeover_path(cfg, un.sun_path, sizeof(un.sun_path)) < 0) {
		snprintf(err, errlen, "online restart (-R) needs unix_socket_dir to be set");
		return -EINVAL;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&un, sizeof(un)) < 0) {
		snprintf(err, errlen, "no running sluice to take over from at %s: %s", un.sun_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -ECONNREFUSED;
	}
	if (write(fd, HELLO, sizeof(HELLO) - 1) != (ssize_t)(sizeof(HELLO) - 1)) {
		snprintf(err, errlen, "cannot talk to the running sluice: %s", strerror(errno));
		close(fd);
		return -EIO;
	}
	uint8_t type;
	int fds[MAX_FDS], nfds;
	uint8_t *kinds;
	uint32_t len;
	int rc = recv_frame(fd, &type, fds, &nfds, &kinds, &len);
	if (rc < 0 || type != 'L' || len != (uint32_t)nfds) {
		snprintf(err, errlen, "the running sluice did not hand over its listening sockets (%s)",
			 rc < 0 ? strerror(-rc) : "unexpected answer");
		free(kinds);
		close(fd);
		return rc < 0 ? rc : -EPROTO;
	}
	for (int i = 0; i < nfds; i++) {
		if (kinds[i] == 'U')
			got_unix = fds[i];
		else
			got_tcp[n_got_tcp++] = fds[i];
	}
	free(kinds);
	conn_fd = fd;
	return 0;
}

int takeover_listener_fds(int **tcp, int *unix_fd)
{
	*tcp = got_tcp;
	*unix_fd = got_unix;
	return n_got_tcp;
}

struct arrival {
	const struct proto_ops *proto; /* what the client speaks */
	int fd;
	uint8_t *data;
	uint32_t len;
};

static void adopt_fn(struct worker *w, void *arg)
{
	struct arrival *a = arg;
	a->proto->client_adopt(w, a->fd, a->data, a->len);
	OPENSSL_cleanse(a->data, a->len);
	free(a->data);
	free(a);
}

static void *receive_main(void *arg)
{
	(void)arg;
	int adopted = 0;
	for (;;) {
		uint8_t type;
		int fds[MAX_FDS], nfds;
		uint8_t *data;
		uint32_t len;
		int rc = recv_frame(conn_fd, &type, fds, &nfds, &data, &len);
		if (rc == -EPIPE)
			break;
		const struct proto_ops *proto = NULL;
		for (int i = 0; rc == 0 && i < n_clients_protos; i++)
			if (clients_protos[i] && clients_protos[i]->takeover_frame == type)
				proto = clients_protos[i];
		if (rc < 0 || !proto || nfds != 1) {
			for (int i = 0; i < nfds; i++)
				close(fds[i]);
			free(data);
			if (rc < 0) {
				log_error("online restart: reading from the old process failed: %s", strerror(-rc));
				break;
			}
			if (!proto)
				log_warning("online restart: a client of a kind this process does not know "
					    "(frame '%c') was closed", type);
			continue;
		}
		struct arrival *a = malloc(sizeof(*a));
		if (!a) {
			close(fds[0]);
			free(data);
			continue;
		}
		*a = (struct arrival){ .proto = proto, .fd = fds[0], .data = data, .len = len };
		/* Never post to workers that are being torn down. */
		pthread_mutex_lock(&recv_lock);
		int rc2 = recv_stopping ? -ESHUTDOWN
					: worker_run_on(&workers[next_worker++ % n_workers], adopt_fn, a);
		pthread_mutex_unlock(&recv_lock);
		if (rc2 < 0) {
			close(a->fd);
			free(a->data);
			free(a);
			continue;
		}
		adopted++;
	}
	log_info("online restart complete: %d client%s taken over", adopted, adopted == 1 ? "" : "s");
	close(conn_fd);
	conn_fd = -1;
	return NULL;
}

int takeover_receive_start(const struct proto_ops *const *protos, int n)
{
	clients_protos = protos;
	n_clients_protos = n;
	if (conn_fd < 0)
		return 0;
	if (pthread_create(&recv_thread, NULL, receive_main, NULL) != 0)
		return -EAGAIN;
	recv_running = true;
	return 0;
}

void takeover_receive_stop(void)
{
	pthread_mutex_lock(&recv_lock);
	recv_stopping = true;
	pthread_mutex_unlock(&recv_lock);
	if (recv_running) {
		/* Stops at EOF; at our own exit the old process may still be
		 * sending: do not wait for it. */
		pthread_detach(recv_thread);
		recv_running = false;
	}
}
