/*
 * sockopt.c - see sockopt.h.
 */
#include "sockopt.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "config.h"

static void set_int(int fd, int level, int opt, int value)
{
	(void)setsockopt(fd, level, opt, &value, sizeof(value));
}

void sockopt_tune_tcp(int fd, const struct config *cfg)
{
	set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1);
	if (cfg->tcp_keepalive) {
		set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
		if (cfg->tcp_keepidle > 0)
			set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, cfg->tcp_keepidle);
		if (cfg->tcp_keepintvl > 0)
			set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, cfg->tcp_keepintvl);
		if (cfg->tcp_keepcnt > 0)
			set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, cfg->tcp_keepcnt);
	}
	if (cfg->tcp_user_timeout > 0)
		set_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, cfg->tcp_user_timeout);
	/* Linux doubles the value for its bookkeeping (socket(7)); an accepted
	 * socket set here keeps the window scale its listener had. */
	if (cfg->tcp_socket_buffer > 0) {
		set_int(fd, SOL_SOCKET, SO_SNDBUF, cfg->tcp_socket_buffer);
		set_int(fd, SOL_SOCKET, SO_RCVBUF, cfg->tcp_socket_buffer);
	}
}

void sockopt_tune_listener(int fd, const struct config *cfg)
{
	/* The kernel wakes accept() only once the client has sent something
	 * (its startup packet or SSLRequest); a connection that stays silent
	 * is accepted after about this long. PgBouncer sets 45 s too. */
	if (cfg->tcp_defer_accept)
		set_int(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, SOCKOPT_DEFER_ACCEPT_S);
}
