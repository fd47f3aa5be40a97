/*
 * fakepg.c - a PostgreSQL server that costs almost nothing, for the
 * scaling row of bench/bench.sh: it lets the pooler, not the database,
 * be what limits throughput.
 *
 * It speaks just enough of the protocol (version 3.0) for pgbench -S and
 * a pooler in front of it: SSLRequest/GSSENCRequest are refused ('N'),
 * every login is accepted (AuthenticationOk, a few ParameterStatus,
 * BackendKeyData, ReadyForQuery); every simple Query gets one row ("1") (or only a CommandComplete for SET, RESET, DISCARD, BEGIN,
 * COMMIT, ROLLBACK, DEALLOCATE); the extended protocol is answered message
 * by message (Parse, Bind, Describe, Execute, Close, Sync, Flush) with the
 * same row. CancelRequest connections are closed. Anything else
 * closes the connection.
 *
 * Usage: fakepg PORT [THREADS]   (listens on 127.0.0.1; THREADS epoll
 * loops sharing the port with SO_REUSEPORT, default 1). Runs until killed.
 * Not part of sluice: built by `make bench` into build/fakepg.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF 65536

struct conn {
	int fd;
	int started;            /* startup packet seen */
	bool polling_out;       /* EPOLLOUT registered */
	uint32_t in_len;        /* bytes in in[] */
	uint8_t in[BUF];
	uint32_t out_len;       /* bytes in out[] not yet sent */
	uint8_t out[BUF * 2];
};

static int port;

static void put(struct conn *c, char type, const void *body, uint32_t len)
{
	if (c->out_len + len + 5 > sizeof(c->out))
		return; /* a client that never reads: the answer is dropped */
	uint8_t *p = c->out + c->out_len;
	uint32_t n = htonl(len + 4);
	p[0] = (uint8_t)type;
	memcpy(p + 1, &n, 4);
	memcpy(p + 5, body, len);
	c->out_len += len + 5;
}

static void put_param(struct conn *c, const char *k, const char *v)
{
	char b[384];
	size_t kl = strlen(k) + 1, vl = strlen(v) + 1;
	memcpy(b, k, kl);
	memcpy(b + kl, v, vl);
	put(c, 'S', b, (uint32_t)(kl + vl));
}

static void put_ready(struct conn *c) { put(c, 'Z', "I", 1); }

static void put_complete(struct conn *c, const char *tag) { put(c, 'C', tag, (uint32_t)strlen(tag) + 1); }

/* A row of text columns "1", NULL, "0" (cols = 1 or 3). One column does
 * for pgbench's transactions; at start-up pgbench also reads the
 * partitioning of pgbench_accounts (count, method, partitions: NULL =
 * none), which gets all three. */
static void put_rowdesc(struct conn *c, int cols)
{
	uint8_t d[2 + 3 * (3 + 18)], *p = d;
	*p++ = 0;
	*p++ = (uint8_t)cols;
	for (int i = 0; i < cols; i++) {
		/* name "cN"; table 0, column 0, type 25 (text), size -1, typmod -1, text */
		static const uint8_t f[18] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x19, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0 };
		*p++ = 'c';
		*p++ = (uint8_t)('0' + i);
		*p++ = 0;
		memcpy(p, f, sizeof(f));
		p += sizeof(f);
	}
	put(c, 'T', d, (uint32_t)(p - d));
}

static void put_row(struct conn *c, int cols)
{
	uint8_t d[] = { 0, (uint8_t)cols, 0, 0, 0, 1, '1', 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, '0' };
	put(c, 'D', d, cols == 3 ? sizeof(d) : 7);
}

static bool command_only(const char *q)
{
	static const char *const words[] = { "set", "reset", "discard", "begin", "commit", "rollback",
					     "deallocate", "listen", "unlisten", NULL };
	while (*q == ' ' || *q == '\n' || *q == '\t')
		q++;
	for (int i = 0; words[i]; i++)
		if (strncasecmp(q, words[i], strlen(words[i])) == 0)
			return true;
	return false;
}

/* SET of a parameter PostgreSQL reports (GUC_REPORT): answer with its
 * ParameterStatus as PostgreSQL does, so that a pooler sees the server
 * took the value. Understands SET name = value / TO value, the value
 * plain or quoted ('...' or E'...', '' inside quotes). */
static void report_set(struct conn *c, const char *q)
{
	static const char *const reported[] = { "application_name", "client_encoding", "DateStyle", "TimeZone",
						"IntervalStyle", "standard_conforming_strings", "is_superuser",
						"integer_datetimes", "server_encoding", "server_version",
						"session_authorization", "default_transaction_read_only",
						"in_hot_standby", NULL };
	char name[64], value[256];
	size_t n = 0, v = 0;
	q += 3;
	while (*q == ' ')
		q++;
	if (strncasecmp(q, "session ", 8) == 0 || strncasecmp(q, "local ", 6) == 0)
		return; /* SET SESSION/LOCAL ...: not needed here */
	while (*q && *q != ' ' && *q != '=' && n < sizeof(name) - 1)
		name[n++] = *q++;
	name[n] = 0;
	while (*q == ' ' || *q == '=')
		q++;
	if (strncasecmp(q, "to ", 3) == 0)
		q += 3;
	while (*q == ' ')
		q++;
	if (*q == 'E' && q[1] == '\'')
		q++;
	if (*q == '\'') {
		for (q++; *q && v < sizeof(value) - 1; q++) {
			if (*q == '\'' && q[1] == '\'')
				q++;
			else if (*q == '\'')
				break;
			value[v++] = *q;
		}
	} else {
		while (*q && *q != ';' && *q != ' ' && v < sizeof(value) - 1)
			value[v++] = *q++;
	}
	value[v] = 0;
	for (int i = 0; reported[i]; i++)
		if (strcasecmp(name, reported[i]) == 0)
			put_param(c, reported[i], value);
}

static void query(struct conn *c, const char *q)
{
	if (command_only(q)) {
		char tag[16];
		int i = 0;
		while (*q == ' ' || *q == '\n' || *q == '\t')
			q++;
		for (; i < 15 && q[i] && q[i] != ' ' && q[i] != ';'; i++)
			tag[i] = (char)(q[i] >= 'a' && q[i] <= 'z' ? q[i] - 32 : q[i]);
		tag[i] = 0;
		if (strcmp(tag, "SET") == 0)
			report_set(c, q);
		put_complete(c, tag);
	} else if (*q) {
		int cols = strstr(q, "partstrat") ? 3 : 1;
		put_rowdesc(c, cols);
		put_row(c, cols);
		put_complete(c, "SELECT 1");
	} else {
		put(c, 'I', "", 0); /* EmptyQueryResponse */
	}
	put_ready(c);
}

/* One complete message; returns -1 to close. */
static int message(struct conn *c, uint8_t type, const uint8_t *body, uint32_t len)
{
	switch (type) {
	case 'Q':
		query(c, len ? (const char *)body : "");
		return 0;
	case 'P': put(c, '1', "", 0); return 0;
	case 'B': put(c, '2', "", 0); return 0;
	case 'D':
		if (len && body[0] == 'S') {
			static const uint8_t none[] = { 0, 0 };
			put(c, 't', none, sizeof(none));
		}
		put_rowdesc(c, 1);
		return 0;
	case 'E':
		put_row(c, 1);
		put_complete(c, "SELECT 1");
		return 0;
	case 'C': put(c, '3', "", 0); return 0;
	case 'S': put_ready(c); return 0;
	case 'H': return 0;
	default: return -1; /* 'X' and anything unexpected */
	}
}

static int startup(struct conn *c, const uint8_t *p, uint32_t len)
{
	uint32_t code;
	memcpy(&code, p + 4, 4);
	code = ntohl(code);
	if (code == 80877103 || code == 80877104) { /* SSLRequest, GSSENCRequest */
		c->out[c->out_len++] = 'N';
		return 0;
	}
	if (code != 196608 || len < 8)
		return -1; /* CancelRequest or unknown: close */
	static const uint8_t ok[] = { 0, 0, 0, 0 };
	put(c, 'R', ok, sizeof(ok));
	put_param(c, "server_version", "15.0");
	put_param(c, "server_encoding", "UTF8");
	put_param(c, "client_encoding", "UTF8");
	put_param(c, "DateStyle", "ISO, MDY");
	put_param(c, "TimeZone", "UTC");
	put_param(c, "integer_datetimes", "on");
	put_param(c, "standard_conforming_strings", "on");
	put_param(c, "is_superuser", "off");
	static const uint8_t key[] = { 0, 0, 0, 42, 0, 0, 0, 7 };
	put(c, 'K', key, sizeof(key));
	put_ready(c);
	c->started = 1;
	return 0;
}

/* Handle every complete message in c->in. Returns -1 to close. */
static int consume(struct conn *c)
{
	uint32_t off = 0;
	for (;;) {
		uint32_t avail = c->in_len - off, len;
		const uint8_t *p = c->in + off;
		if (!c->started) {
			if (avail < 8)
				break;
			memcpy(&len, p, 4);
			len = ntohl(len);
			if (len < 8 || len > BUF)
				return -1;
			if (avail < len)
				break;
			if (startup(c, p, len) < 0)
				return -1;
			off += len;
			continue;
		}
		if (avail < 5)
			break;
		memcpy(&len, p + 1, 4);
		len = ntohl(len);
		if (len < 4 || len + 1 > BUF)
			return -1;
		if (avail < len + 1)
			break;
		if (message(c, p[0], p + 5, len - 4) < 0)
			return -1;
		off += len + 1;
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
	return 0;
}

static int flush(struct conn *c)
{
	uint32_t done = 0;
	while (done < c->out_len) {
		ssize_t n = send(c->fd, c->out + done, c->out_len - done, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN)
				break;
			return -1;
		}
		done += (uint32_t)n;
	}
	memmove(c->out, c->out + done, c->out_len - done);
	c->out_len -= done;
	return 0;
}

static void drop(int ep, struct conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

static void *loop(void *arg)
{
	(void)arg;
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 1024) < 0) {
		perror("fakepg: listen");
		exit(1);
	}
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	struct epoll_event ready[64];
	for (;;) {
		int n = epoll_wait(ep, ready, 64, -1);
		for (int i = 0; i < n; i++) {
			struct conn *c = ready[i].data.ptr;
			if (!c) {
				int fd;
				while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					struct conn *nc = calloc(1, sizeof(*nc));
					if (!nc) {
						close(fd);
						continue;
					}
					nc->fd = fd;
					struct epoll_event e = { .events = EPOLLIN, .data.ptr = nc };
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
				}
				continue;
			}
			ssize_t r = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
			if (r == 0 || (r < 0 && errno != EAGAIN) || (r > 0 && (c->in_len += (uint32_t)r, consume(c) < 0)) ||
			    flush(c) < 0) {
				drop(ep, c);
				continue;
			}
			if (c->polling_out != (c->out_len > 0)) {
				c->polling_out = c->out_len > 0;
				struct epoll_event e = { .events = EPOLLIN | (c->polling_out ? EPOLLOUT : 0), .data.ptr = c };
				epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
			}
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: fakepg PORT [THREADS]\n");
		return 2;
	}
	port = atoi(argv[1]);
	int threads = argc > 2 ? atoi(argv[2]) : 1;
	if (threads < 1)
		threads = 1;
	for (int i = 1; i < threads; i++) {
		pthread_t t;
		pthread_create(&t, NULL, loop, NULL);
	}
	loop(NULL);
	return 0;
}
