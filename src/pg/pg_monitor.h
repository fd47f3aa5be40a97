/*
 * pg_monitor.h - the PostgreSQL side of route.h's monitors: a connection
 * per host of a routed pool that asks, every role_check_interval, whether
 * the host is in recovery and how far its WAL is (written on a primary,
 * replayed on a standby), and reports the answer to the route.
 *
 * Owns: nothing beyond its server (an aside server, pg_server.h), which
 * worker 0 opens and drives through route_tick.
 */
#ifndef SLUICE_PG_MONITOR_H
#define SLUICE_PG_MONITOR_H

#include <stdbool.h>

struct worker;
struct pool;
struct server;
struct pg_server;
struct pg_msg;

/* proto.h monitor_open and monitor_check for PostgreSQL. */
struct server *monitor_open(struct worker *w, struct pool *p, int host);
void monitor_check(struct server *s);

/* From pg_server.c's aside dispatch: logged in; a message (false when it
 * closed); closing. */
void monitor_ready(struct pg_server *s);
bool monitor_message(struct pg_server *s, const struct pg_msg *m);
void monitor_closed(struct pg_server *s, const char *reason);

#endif
