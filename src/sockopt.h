/*
 * sockopt.h - TCP options every client and server socket gets: no Nagle
 * delay, keepalive with the configured timings, TCP_USER_TIMEOUT.
 * Keepalive and the user timeout are how half-open connections (peer gone
 * without a FIN) are found.
 */
#ifndef SLUICE_SOCKOPT_H
#define SLUICE_SOCKOPT_H

struct config;

/* Apply the options to a connected or accepted TCP socket. Failures are
 * ignored: each option only tunes behaviour. */
void sockopt_tune_tcp(int fd, const struct config *cfg);

#endif
