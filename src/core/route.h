/*
 * route.h - the hosts of a [databases] entry that lists several of them
 * (or sets target_session_attrs): which is the primary and which are
 * standbys, how far each has replayed, and where a client's next
 * transaction goes (read_routing = auto).
 *
 * Owns: struct route, one per routed pool (pool->route of the pool its
 * clients log in to, the "home" pool), and the home pool's reader pools:
 * one per host, made when a read first goes there, with the home pool's
 * settings and its own servers, limits and statistics.
 *
 * Roles are learned by monitor connections (one per host, run by worker 0
 * through the protocol's monitor_* operations, proto.h): every
 * role_check_interval each reports the host's role and WAL position
 * (route_report), or that it is down (route_monitor_gone). A server also
 * checks its host's role once at login (route_login_role), so that no
 * write goes to a host that became a standby since the last report.
 *
 * Read-your-writes: a client remembers when it last ended a transaction
 * on the primary that was not a read (route_note_write). A standby serves
 * its reads once it has replayed up to the primary's WAL position reported
 * by a monitor query sent after that moment: that position covers the
 * commit, since the commit was acknowledged before the query was sent.
 *
 * Locking: route->lock guards everything in struct route; taken once per
 * routed transaction and per report. Order: pool->lock, then route->lock.
 */
#ifndef SLUICE_ROUTE_H
#define SLUICE_ROUTE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"

struct pool;
struct server;
struct worker;

enum host_role {
	HOST_UNKNOWN,  /* not heard of yet */
	HOST_PRIMARY,  /* takes writes (not in recovery) */
	HOST_STANDBY,  /* in recovery: reads only */
	HOST_DOWN,     /* its monitor cannot connect or got no answer */
};

#define ROUTE_HISTORY 64 /* primary positions kept, for read-your-writes and lag in time */

struct route_host {
	uint8_t role;             /* enum host_role */
	uint64_t lsn;             /* primary: WAL written; standby: WAL replayed */
	int64_t sampled_us;       /* when the query of the last report was sent (loop_now_us) */
	int64_t lag_bytes;        /* standby: behind the primary's last position; -1 = unknown */
	int64_t lag_us;           /* standby: how long ago the primary was where it is; -1 = unknown */
	uint32_t epoch;           /* bumped at each change of role: older servers on it close */
	struct server *monitor;   /* its monitor connection (worker 0 only), NULL = none */
	bool monitor_busy;        /* a check query is out */
	int64_t monitor_since_us; /* when that query was sent, or the connection opened */
	int64_t next_check_us;
	int64_t reads;            /* transactions sent here as reads */
	char error[160];          /* why its monitor last failed ("" = it did not) */
	bool pos_opaque;          /* its last position cannot be compared (route_report_pos) */
};

struct route {
	struct route *next;       /* all routes (route.c's list lock) */
	pthread_mutex_t lock;
	struct pool *home;        /* the pool clients log in to */
	struct pool *readers[CONFIG_MAX_HOSTS]; /* reader pools by host, NULL = none yet */
	struct route_host host[CONFIG_MAX_HOSTS];
	int n_hosts;
	int target;               /* enum config_target of the home pool */
	bool read_routing;        /* read_routing = auto */
	bool primary_reads;       /* primary_reads = on: the primary is one of the readers */
	int64_t max_lag_bytes;    /* 0 = no limit */
	int64_t max_lag_us;       /* 0 = no limit */
	unsigned rr;              /* round-robin over hosts that qualify */
	int cur;                  /* load_balance_hosts = disable: the host in use */
	struct { int64_t sent_us; uint64_t lsn; bool opaque; } hist[ROUTE_HISTORY]; /* primary positions, oldest first */
	int hist_n;
	int64_t reads_on_primary; /* reads that found no standby fresh enough */
};

/* A pool made from entry d gets a route when its target is not "any"
 * (the default with several hosts is read-write) or it routes reads, and
 * its protocol can monitor hosts. NULL otherwise (or out of memory: then
 * the pool is plain). */
struct route *route_new(struct pool *home, const struct config_database *d);

/* The host a new server of p connects to (a reader pool: its own host
 * while it is a standby), or -1 when none qualifies now. */
int route_pick_host(struct pool *p);
/* Could a server of p connect now (route_pick_host would find one)? */
bool route_host_available(struct pool *p);
/* The role (enum host_role) a new server of p must find at login: the
 * primary, a standby, or HOST_UNKNOWN for any. */
int route_login_role(const struct pool *p);
/* A server of p found its host in role (at login): a surprise updates the
 * host's role at once (the monitor confirms later). */
void route_login_found(struct pool *p, int host, int role);
/* Is server s still on a host whose role has not changed since it
 * connected? */
bool route_server_current(const struct server *s);
/* The epoch of host i, which a new server remembers. */
uint32_t route_epoch(const struct pool *p, int host);

/* Where the next transaction of a client of home goes when it only reads:
 * a reader pool on a standby fresh enough for a client that last wrote at
 * last_write_us (0 = never), or NULL for the home pool. */
struct pool *route_for_read(struct pool *home, int64_t last_write_us);
/* The time a client's write ended, for read-your-writes (loop_now_us
 * clock, read now: after the commit's answer arrived). */
int64_t route_write_time(void);

/* Monitor reports (worker 0): host i is in role with lsn, for the query
 * sent at sent_us; or it is gone (why: for SHOW HOSTS and the log). */
void route_report(struct route *r, int host, int role, uint64_t lsn, int64_t sent_us);
/* The same, with comparable false when the host's position cannot be
 * compared with the others' (MySQL: a GTID set of several domains, or
 * none): a standby so reported has no known lag, never serves a client
 * that wrote, and serves the others only without max_standby_lag_*; a
 * primary so reported leaves its writers' reads on the primary. */
void route_report_pos(struct route *r, int host, int role, uint64_t lsn, bool comparable, int64_t sent_us);
void route_monitor_gone(struct route *r, int host, const char *why);

/* Worker w's periodic upkeep (worker 0 only does anything): monitors
 * opened, queries sent when due, stuck ones closed. */
void route_tick(struct worker *w, int64_t now_us);

/* SHOW HOSTS and /metrics: visit every host of every route, with the
 * route locked. */
void route_foreach_host(void (*fn)(const struct route *r, int i, void *arg), void *arg);

const char *route_role_name(int role);

/* SHOW POOLS: add the servers and waiters of home's reader pools to its
 * counts k (its clients are home's already). */
struct pool_counts;
void route_add_reader_counts(struct pool *home, struct pool_counts *k);

/* Stop: close the monitors (worker 0, at exit) and free the routes. */
void route_free_all(void);

#endif
