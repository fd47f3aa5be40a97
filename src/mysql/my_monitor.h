/*
 * my_monitor.h - the MySQL side of route.h's roles: a monitor connection
 * per host of a routed pool that asks, every role_check_interval, whether
 * the host is read_only and how far its GTID position is, and the role
 * check a pooled server of a routed pool makes once at login.
 *
 * A host is a primary when @@global.read_only is 0, a standby when it is
 * 1 (the rule ProxySQL uses for its writer and reader hostgroups): a
 * replica must be set read_only, and a promoted one read_only = 0.
 *
 * The position (MariaDB): @@global.gtid_binlog_pos on a primary,
 * @@global.gtid_slave_pos on a standby. With exactly one GTID domain
 * ("domain-server-seq") the position is its sequence number; several
 * domains, none, or Oracle MySQL (whose GTID sets are not read here) are
 * reported as positions that cannot be compared (route_report_pos):
 * no read-your-writes on such a standby.
 *
 * Owns: nothing beyond its server (an aside server, my_conn.h), which
 * worker 0 opens and drives through route_tick.
 */
#ifndef SLUICE_MY_MONITOR_H
#define SLUICE_MY_MONITOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct worker;
struct pool;
struct server;
struct my_server;
struct my_packet;

/* proto.h monitor_open and monitor_check for MySQL. */
struct server *my_monitor_open(struct worker *w, struct pool *p, int host);
void my_monitor_check(struct server *s);

/* my_server_login.c: s logged in. A monitor runs its first check; a
 * server of a routed pool asks its host's role before it joins the pool.
 * True when that query went out (s is not released yet). */
bool my_monitor_logged_in(struct my_server *s);
/* my_server.c: a whole packet of the answer to the role query
 * (s->role_query), at the socket's cursor; the packet is dropped here.
 * True when s is no longer the caller's (closed, or in the pool). */
bool my_monitor_packet(struct my_server *s, const struct my_packet *pk);
/* my_server.c: an aside server is closing. */
void my_monitor_closed(struct my_server *s, const char *reason);

/* A MariaDB GTID position ("domain-server-seq[,...]", n bytes): true with
 * *seq when it has exactly one domain. */
bool my_gtid_single_seq(const char *s, size_t n, uint64_t *seq);

#endif
