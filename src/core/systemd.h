/*
 * systemd.h - the two parts of systemd's daemon protocol sluice speaks,
 * without libsystemd: telling the service manager how it is doing
 * (sd_notify(3): READY=1, RELOADING=1, STOPPING=1, STATUS=...) and taking
 * listening sockets from it (socket activation, sd_listen_fds(3)).
 *
 * Owns: nothing long-lived; the sockets it takes are handed to the caller.
 * Must not: be called from a worker thread (main thread only; it reads and
 * changes the environment).
 */
#ifndef SLUICE_SYSTEMD_H
#define SLUICE_SYSTEMD_H

#include <stdbool.h>
#include <stddef.h>

struct config;

/* Most TCP sockets taken from systemd for one port (each worker holds a
 * copy of every one, and a worker has room for WORKER_MAX_LISTEN). */
#define SYSTEMD_MAX_TCP 6

/* The sockets systemd passed, sorted by what they serve. */
struct systemd_listeners {
	int pg_tcp[SYSTEMD_MAX_TCP]; /* TCP sockets on listen_port (or mysql_listen_port), as passed */
	int n_pg_tcp;                /* how many of pg_tcp are set */
	int pg_unix;                 /* the unix socket .s.PGSQL.<listen_port>, or -1 */
};

/* Send one state change ("READY=1", "STATUS=...", several lines at once
 * allowed) to $NOTIFY_SOCKET. 0 when sent or when there is no
 * NOTIFY_SOCKET (not under systemd), else a negative errno. */
int systemd_notify(const char *state);

/* Is there a NOTIFY_SOCKET (running under systemd, Type=notify)? */
bool systemd_notify_wanted(void);

/* printf-style systemd_notify. */
int systemd_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Socket activation: take the sockets of LISTEN_FDS when LISTEN_PID is
 * this process, and match each to a configured listener by its address
 * (getsockname). Returns the number taken (0: not socket-activated), or a
 * negative errno with err set when a socket matches no listener. Unsets
 * LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES, so that no child sees them. */
int systemd_take_listeners(const struct config *cfg, struct systemd_listeners *out, char *err, size_t errlen);

/* Close what systemd_take_listeners took (online restart won instead). */
void systemd_close_listeners(struct systemd_listeners *l);

#endif
