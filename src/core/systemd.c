/*
 * systemd.c - systemd's notify and socket activation protocols, written
 * from their documentation (sd_notify(3), sd_listen_fds(3)); no libsystemd.
 *
 * Notify: each state change is one datagram of "KEY=VALUE" lines to the
 * unix socket named in $NOTIFY_SOCKET; a name starting with '@' is in the
 * abstract namespace (the '@' stands for a leading NUL byte). Nothing is
 * sent when the variable is unset, so the same binary runs anywhere.
 *
 * Socket activation: systemd passes listening sockets as fds 3, 4, ...
 * (LISTEN_FDS of them) and sets LISTEN_PID to the pid they are meant for
 * (a child that inherits the environment must not take them too). Which
 * configured listener a socket stands for is read from the socket itself
 * (getsockname): its port says which protocol it serves (listen_port:
 * PostgreSQL; a second protocol's port would be one more row in
 * match_listener), a unix socket its file name.
 *
 * Must not: keep any fd it took; the caller owns them.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "systemd.h"

#define LISTEN_FDS_START 3 /* SD_LISTEN_FDS_START: the first passed fd */

int systemd_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || !*path)
		return 0;
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	/* '/' a path, '@' abstract; other forms (vsock:) are not spoken here. */
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(un.sun_path))
		return -EAFNOSUPPORT;
	memcpy(un.sun_path, path, len);
	if (path[0] == '@')
		un.sun_path[0] = '\0';
	/* An abstract name is exactly len bytes long: no trailing NUL counted. */
	socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int rc = 0;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&un, sl) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

bool systemd_notify_wanted(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	return path && *path;
}

int systemd_notifyf(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return -EMSGSIZE;
	return systemd_notify(buf);
}

/* How many fds systemd passed to this process: 0 when LISTEN_PID names
 * another process or the variables are missing or malformed. */
static int passed_fd_count(void)
{
	const char *pid_s = getenv("LISTEN_PID"), *fds_s = getenv("LISTEN_FDS");
	if (!pid_s || !fds_s)
		return 0;
	char *end;
	errno = 0;
	long pid = strtol(pid_s, &end, 10);
	if (errno || *end || pid != (long)getpid())
		return 0;
	long n = strtol(fds_s, &end, 10);
	if (errno || *end || n <= 0 || n > 64)
		return 0;
	return (int)n;
}

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t len)
{
	char host[64] = "?", port[16] = "?";
	if (ss->ss_family == AF_UNIX) {
		snprintf(out, len, "%s", ((const struct sockaddr_un *)ss)->sun_path);
		return;
	}
	getnameinfo((const struct sockaddr *)ss, sizeof(*ss), host, sizeof(host), port, sizeof(port),
		    NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(out, len, ss->ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
}

static int sockaddr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return -1;
}

/* Is the TCP address one that listen_addr names? Only for the log: the
 * socket unit, not listen_addr, decides where sluice listens. */
static bool in_listen_addr(const struct config *cfg, const struct sockaddr_storage *ss)
{
	if (!cfg->listen_addr || !*cfg->listen_addr)
		return false;
	char *list = strdup(cfg->listen_addr);
	if (!list)
		return false;
	bool found = false;
	char *save = NULL;
	for (char *tok = strtok_r(list, ", ", &save); tok && !found; tok = strtok_r(NULL, ", ", &save)) {
		if (strcmp(tok, "*") == 0) {
			found = true;
			break;
		}
		struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
		struct addrinfo *res = NULL;
		if (getaddrinfo(tok, NULL, &hints, &res) != 0)
			continue;
		for (struct addrinfo *ai = res; ai && !found; ai = ai->ai_next) {
			if (ai->ai_family != ss->ss_family)
				continue;
			if (ss->ss_family == AF_INET)
				found = ((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr ==
					((const struct sockaddr_in *)ss)->sin_addr.s_addr;
			else
				found = memcmp(&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr,
					       &((const struct sockaddr_in6 *)ss)->sin6_addr, sizeof(struct in6_addr)) == 0;
		}
		freeaddrinfo(res);
	}
	free(list);
	return found;
}

/* Which configured listener does this socket stand for? The protocol is
 * told by the port (TCP) or the file name (unix): ".s.PGSQL.<port>" is
 * what PostgreSQL clients look for. Returns 'T' (TCP: listen_port, or
 * mysql_listen_port, whose sockets the workers tell by their port), 'U'
 * (PostgreSQL, unix) or 0 (none). */
static int match_listener(const struct config *cfg, const struct sockaddr_storage *ss, socklen_t sl)
{
	if (ss->ss_family == AF_INET || ss->ss_family == AF_INET6) {
		int port = sockaddr_port(ss);
		return port == cfg->listen_port || (cfg->mysql_listen_port && port == cfg->mysql_listen_port) ? 'T' : 0;
	}
	if (ss->ss_family != AF_UNIX || sl <= offsetof(struct sockaddr_un, sun_path))
		return 0;
	const char *path = ((const struct sockaddr_un *)ss)->sun_path;
	if (!path[0])
		return 0; /* abstract: no PostgreSQL client finds it */
	char want[32];
	snprintf(want, sizeof(want), ".s.PGSQL.%d", cfg->listen_port);
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	return strcmp(base, want) == 0 ? 'U' : 0;
}

int systemd_take_listeners(const struct config *cfg, struct systemd_listeners *out, char *err, size_t errlen)
{
	*out = (struct systemd_listeners){ .pg_unix = -1 };
	int n = passed_fd_count();
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	for (int i = 0; i < n; i++) {
		int fd = LISTEN_FDS_START + i;
		struct sockaddr_storage ss = { 0 };
		socklen_t sl = sizeof(ss);
		int type = 0, listening = 0;
		socklen_t tl = sizeof(type), ll = sizeof(listening);
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 ||
		    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
		    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ll) < 0) {
			snprintf(err, errlen, "socket activation: fd %d is not a socket: %s", fd, strerror(errno));
			return -ENOTSOCK;
		}
		char addr[128];
		format_addr(&ss, addr, sizeof(addr));
		if (type != SOCK_STREAM || !listening) {
			snprintf(err, errlen, "socket activation: %s (fd %d) is not a listening stream socket "
				 "(ListenStream= in the socket unit)", addr, fd);
			return -EINVAL;
		}
		/* systemd passes blocking sockets by default; workers need
		 * non-blocking ones (several may poll one socket), and no
		 * program sluice starts should inherit them. */
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
			snprintf(err, errlen, "socket activation: fd %d: %s", fd, strerror(errno));
			return -errno;
		}
		switch (match_listener(cfg, &ss, sl)) {
		case 'T':
			if (out->n_pg_tcp >= SYSTEMD_MAX_TCP) {
				snprintf(err, errlen, "socket activation: more than %d TCP sockets for port %d",
					 SYSTEMD_MAX_TCP, cfg->listen_port);
				return -E2BIG;
			}
			out->pg_tcp[out->n_pg_tcp++] = fd;
			if (in_listen_addr(cfg, &ss))
				log_info("socket activation: listening on %s (from systemd)", addr);
			else
				log_warning("socket activation: listening on %s (from systemd), which listen_addr (%s) "
					    "does not name", addr, cfg->listen_addr ? cfg->listen_addr : "");
			break;
		case 'U':
			if (out->pg_unix >= 0) {
				snprintf(err, errlen, "socket activation: two unix sockets for port %d", cfg->listen_port);
				return -EINVAL;
			}
			out->pg_unix = fd;
			log_info("socket activation: listening on %s (from systemd)", addr);
			break;
		default:
			snprintf(err, errlen, "socket activation: %s (fd %d) matches no listener: the port must be "
				 "listen_port (%d) or mysql_listen_port, a unix socket's name .s.PGSQL.%d", addr, fd,
				 cfg->listen_port, cfg->listen_port);
			return -EINVAL;
		}
	}
	return n;
}

void systemd_close_listeners(struct systemd_listeners *l)
{
	for (int i = 0; i < l->n_pg_tcp; i++)
		close(l->pg_tcp[i]);
	if (l->pg_unix >= 0)
		close(l->pg_unix);
	*l = (struct systemd_listeners){ .pg_unix = -1 };
}
