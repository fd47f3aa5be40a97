/*
 * sockopt.h - TCP options every client and server socket gets: no Nagle
 * delay, keepalive with the configured timings, TCP_USER_TIMEOUT, buffer
 * sizes (tcp_socket_buffer); and those of TCP listeners (tcp_defer_accept).
 * Keepalive and the user timeout are how half-open connections (peer gone
 * without a FIN) are found.
 */
#ifndef SLUICE_SOCKOPT_H
#define SLUICE_SOCKOPT_H

struct config;

/* Apply the options to a connected or accepted TCP socket. Failures are
 * ignored: each option only tunes behaviour. */
void sockopt_tune_tcp(int fd, const struct config *cfg);

/* Seconds of TCP_DEFER_ACCEPT when tcp_defer_accept is on. */
#define SOCKOPT_DEFER_ACCEPT_S 45

/* Apply the listener options to a listening TCP socket (ignored failures too). */
void sockopt_tune_listener(int fd, const struct config *cfg);

#endif
