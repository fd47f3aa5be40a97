/*
 * pool.h - server connections for one (database, user) pair, shared by all
 * workers. Limits (pool_size, reserve, max_db_connections,
 * max_user_connections) therefore hold globally.
 *
 * Owns: the FIFO of waiting clients, per-worker lists of idle servers,
 * the counters, the cached ParameterStatus set for new clients (welcome),
 * the server address. One mutex per pool protects all of it; it is taken
 * once per transaction (acquire, release), never per message.
 *
 * Idle servers stay registered in the loop of the worker that released
 * them (idle[worker]) and only that worker takes them out, so no other
 * thread ever touches their fd. A client on another worker is served by
 * a handoff mail (see worker.h).
 */
#ifndef SLUICE_POOL_H
#define SLUICE_POOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "list.h"
#include "stats.h"

struct proto_ops;
struct client;
struct server;
struct worker;
struct config;
struct route;

/* One server address of a pool. */
struct pool_host {
	struct sockaddr_storage addr;
	socklen_t addr_len;
	char addr_text[128];        /* for log lines */
	char name[128];             /* host name as configured (TLS SNI, verify-full); "" for unix */
};

/* Its TCP port, 0 for a unix socket. */
int pool_host_port(const struct pool_host *h);

/* The addresses of a [databases] entry, in its order. */
struct pool_hosts {
	struct pool_host h[CONFIG_MAX_HOSTS];
	int n;
};

/* Shared connection counters for max_db_connections / max_user_connections. */
struct limit_counter {
	struct limit_counter *next; /* in the global list */
	char name[64];              /* database or user name */
	int count;                  /* server connections open (under pools_lock) */
};

struct pool {
	struct pool *next;          /* global list of pools (under pools_lock) */
	const struct proto_ops *proto; /* the protocol of its clients and servers (proto.h) */
	char db_name[64];           /* database name clients use */
	char user[64];              /* client user name */
	char server_db[64];         /* database name on the server */
	char server_user[64];       /* user name on the server */
	char *server_password;      /* password to log in with, NULL = none (heap) */
	char *connect_query;        /* heap, NULL = none */
	char *server_params[CONFIG_SERVER_PARAMS]; /* startup parameters for its servers
						    * (config_server_param_names); heap, NULL = none */
	int replication;            /* 0, or the protocol's kind of replication connection its
				     * servers are (PostgreSQL: enum repl_kind, replication.h) */
	char *repl_startup;         /* their startup parameters, packed (replication.h; heap) */
	uint32_t repl_startup_len;
	uint8_t *variant;           /* the protocol's own part of the pool's identity (MySQL:
				     * the capabilities and character set its servers log in
				     * with); heap, NULL = none */
	uint32_t variant_len;
	struct pool_hosts hosts;    /* server addresses ("host=a,b,c"); fixed for the pool's life */
	struct route *route;        /* roles of its hosts and where reads go (route.h), NULL =
				     * plain: hosts used in turn. Shared by a home pool and its readers */
	int fixed_host;             /* reader pool: the standby it uses; -1 = a home pool */
	struct pool *home;          /* reader pool: the pool its clients logged in to; else itself */
	struct pool **shard_pools;  /* a sharded database's pool (docs/sharding.md): the pool of
				     * each shard for the same user, [n_shards], filled by pool_get
				     * (atomic pointers: RELOAD replaces a stale one). It has no
				     * servers of its own. NULL = an ordinary pool */
	int n_shards;
	uint64_t shard_sig;         /* what its shards and sharded tables were when made: a RELOAD
				     * that changes them makes a new pool */
	void *shard_map;            /* the protocol's view of its sharded tables, made by the
				     * protocol (pg_shard.c) on first use as one heap block;
				     * freed with the pool */
	bool lb_disable;            /* load_balance_hosts = disable */
	int mode;                   /* enum pool_mode */
	int pool_size;              /* servers normally allowed */
	int min_pool_size;
	int reserve_size;           /* extra servers after reserve_pool_timeout */
	int max_db;                 /* 0 = unlimited */
	int max_user;               /* 0 = unlimited */
	struct config_timeouts t;   /* [users] over [databases] over global; never -1. Read
				     * without the lock: RELOAD stores each value whole */
	struct limit_counter *db_count, *user_count;

	pthread_mutex_t lock;       /* protects everything below */
	struct list waiters;        /* struct client.wait_node, FIFO */
	int n_waiting;
	struct list *idle;          /* [n_workers] lists of struct server.pool_node; taken from
				     * the head (server_round_robin: FIFO, else LIFO) */
	int n_idle;
	int n_servers;              /* all server connections incl. connecting */
	int n_connecting;           /* not yet logged in */
	int n_checking;             /* running server_check_query (SERVER_CHECK) */
	int next_host;              /* round-robin: the host the next server connects to */
	int cur_host;               /* load_balance_hosts = disable: the host in use */
	uint32_t hosts_failed;      /* host lists: bit i = host i failed since the last
				     * login that worked (a host that fails twice at once,
				     * two servers connecting in parallel, counts once) */
	int64_t login_fail_until_us; /* no new connection before this */
	char login_error[200];      /* last server login failure, for clients */
	char login_sqlstate[6];
	bool login_auth_error;      /* last failure was the server refusing the login */
	bool have_scram_keys;       /* keys below learned from a client's SCRAM proof */
	uint8_t scram_client_key[32]; /* for SCRAM pass-through to the server */
	uint8_t scram_server_key[32];
	char lookup_secret[512];    /* secret auth_query found for user ("" = none) */
	uint8_t *welcome;           /* ParameterStatus messages of the first server */
	uint32_t welcome_len;

	bool paused;                /* PAUSE / KILL: no server is handed out, idle ones close */
	bool disabled;              /* DISABLE: new logins refused */
	bool stale;                 /* server settings changed by RELOAD: no new clients;
				     * its clients move to the new pool at their next request */
	uint32_t generation;        /* bumped by RECONNECT / RELOAD: older servers close when free */
	int n_clients;              /* logged-in clients using this pool (atomic) */
	int64_t client_prepared;    /* named prepared statements its clients hold (atomic) */
	int64_t client_prepared_bytes; /* and their bytes: names, texts, types (atomic) */
	int bp_index;               /* bpf_bypass: index of its groups of idle servers, -1 = none */
	bool autodb;                /* made from the "*" entry (autodb_idle_timeout applies) */
	bool forgotten;             /* autodb unused past autodb_idle_timeout: skipped by
				     * pool_foreach, statistics zeroed (pools_lock) */
	int64_t unused_since_us;    /* autodb: first tick that saw it without clients and
				     * servers; 0 = in use (pools_lock) */

	struct stats_slot *slots;   /* [n_workers] traffic counters, one writer each */
	/* Averages over the last stats_period (pools_lock). */
	struct stats_totals period_start; /* totals when the current period began */
	struct stats_totals period_delta; /* what the last complete period added */
	int64_t period_us;          /* length of that period */
};

/* Shard i's pool of sharded pool p, the current one after a RELOAD.
 * NULL with a message in err when it cannot be had. */
struct pool *pool_shard(struct pool *p, int i, char *err, size_t errlen);
/* The pool whose servers stand in for p at login (auth_query, the
 * parameters reported to a new client): shard 0's for a sharded pool,
 * else p itself. */
struct pool *pool_for_login(struct pool *p);

/* Counts for SHOW POOLS and /metrics, taken under the pool lock. */
/* The reader pool on host i of routed home pool p (route.h), made on
 * first use: p's settings, its own servers. NULL when out of memory. */
struct pool *pool_get_reader(struct pool *p, int host);
/* The roles of p's hosts changed (route.c): servers may launch for its
 * waiters now, without waiting out server_login_retry. */
void pool_hosts_changed(struct pool *p);

struct pool_counts {
	int cl_active;              /* logged in, not waiting */
	int cl_waiting;             /* queued for a server */
	int sv_active;              /* linked to a client (or being reset) */
	int sv_idle;                /* idle in the pool */
	int sv_login;               /* connecting or logging in */
	int sv_tested;              /* running server_check_query */
	int64_t maxwait_us;         /* wait of the oldest waiting client */
	int64_t prepared;           /* named prepared statements the clients hold */
	int64_t prepared_bytes;     /* bytes of those (names, texts, types) */
};

/* max_db_client_connections / max_user_client_connections: count one
 * client of db and user, checked right after the startup packet, before
 * any authentication work. Returns false when a limit is reached. */
bool pool_client_limits_take(const char *db, const char *user, int max_db, int max_user,
			     struct limit_counter **db_out, struct limit_counter **user_out);
void pool_client_limits_put(struct limit_counter *db, struct limit_counter *user);
/* What a shared counter holds now, whatever its limit: kind "db" / "user"
 * counts server connections (by server database / user name),
 * "client-db" / "client-user" clients (pool_client_limits_take). For the
 * admin console's current_connections columns. Any thread. */
int pool_limit_count(const char *kind, const char *name);

/* Find or create the pool for (protocol, database config name, user). Returns NULL
 * and writes a message when the database is unknown or unusable. */
struct pool *pool_get(const struct config *cfg, const struct proto_ops *proto, const char *db,
		      const char *user, char *err, size_t errlen);
/* The same for a replication client (replication.h): the pool is keyed by
 * its kind and packed startup parameters too, which its servers log in
 * with. */
/* The same with the protocol's own part of the pool's identity (struct
 * pool, variant): clients that differ in it never share a server. */
struct pool *pool_get_variant(const struct config *cfg, const struct proto_ops *proto, const char *db,
			      const char *user, const void *variant, uint32_t variant_len, char *err, size_t errlen);
struct pool *pool_get_replication(const struct config *cfg, const struct proto_ops *proto, const char *db,
				  const char *user, int kind, const char *startup, uint32_t startup_len,
				  char *err, size_t errlen);

/* A logged-in client needs a server. Returns the server (now linked to
 * client; it is in the caller's loop), or NULL when the client was queued
 * (a handoff comes later), or sets *fail to a message and returns NULL when
 * the client cannot be served (login failing). */
struct server *pool_acquire(struct pool *p, struct client *c, const char **fail);

/* The server is clean (ReadyForQuery 'I', nothing pending): serve the
 * first waiter or make it idle. Called by the server's worker. */
void pool_release(struct server *s);

/* The host (index in p->hosts) a new server connection goes to:
 * load_balance_hosts round-robin takes the next, disable the current. */
int pool_pick_host(struct pool *p);
/* A connection or login to host i failed (not for an auth error). With a
 * host list, disable mode moves on to the next host; returns true when
 * every host has failed in a row (then the server_login_retry pause
 * starts), false when another host is worth trying at once. */
bool pool_host_failed(struct pool *p, int i);

/* A server connection of p went away (closed, failed login) in state
 * (enum server_state). */
void pool_server_gone(struct pool *p, int state);

/* A server logged in; remember its parameters for new clients if this is the first. */
void pool_set_welcome(struct pool *p, const uint8_t *params, uint32_t len);
/* Copy the welcome set into out (iobuf). Returns false when not known yet. */
struct iobuf;
bool pool_copy_welcome(struct pool *p, struct iobuf *out);

/* auth_query: the secret found for the pool's user, used to log in to the
 * server (md5 hash; a SCRAM verifier goes with pass-through keys). The
 * get copies into out and returns false when none is known. */
void pool_set_lookup_secret(struct pool *p, const char *secret);
bool pool_get_lookup_secret(struct pool *p, char *out, size_t len);

/* SCRAM pass-through: remember / fetch the keys of the pool's user. */
void pool_set_scram_keys(struct pool *p, const uint8_t client_key[32], const uint8_t server_key[32]);
bool pool_get_scram_keys(struct pool *p, uint8_t client_key[32], uint8_t server_key[32]);

/* Connecting or logging in to the server failed. New connections wait
 * server_login_retry. When auth_error (the server refused the login) and
 * no server remains, waiting clients get the server's message now;
 * otherwise they keep waiting (up to query_wait_timeout). */
void pool_login_failed(struct pool *p, const char *sqlstate, const char *msg, bool auth_error);

/* True when the last attempt to open a server failed and none has logged
 * in since; copies the reason into why. */
bool pool_login_failing(struct pool *p, char *why, size_t len);

/* Remove a waiting client from the queue. Returns false when it was
 * already taken by a handoff in flight. */
bool pool_dequeue(struct pool *p, struct client *c);

/* Worker w serves p's waiters from its idle list (MAIL_POKE_POOL). */
void pool_serve_waiters(struct pool *p, struct worker *w);

/* Take an idle server out of its list because it must close. Returns
 * false when it is not idle any more. */
bool pool_take_idle(struct server *s);

/* Periodic upkeep run by each worker: reserve pool, min_pool_size. */
void pool_tick(struct worker *w, int64_t now_us);

/* The counter slot of worker w in p. */
static inline struct stats_slot *pool_stats(struct pool *p, const struct worker *w);

/* Visit every pool (pools are never freed while workers run) but the
 * forgotten ones (autodb_idle_timeout): what SHOW and /metrics list.
 * pool_foreach_all visits those too. */
void pool_foreach(void (*fn)(struct pool *p, void *arg), void *arg);
void pool_foreach_all(void (*fn)(struct pool *p, void *arg), void *arg);
void pool_get_counts(struct pool *p, int64_t now_us, struct pool_counts *out);
void pool_get_totals(struct pool *p, struct stats_totals *out);
/* Last period's delta and its length (for SHOW STATS averages). */
void pool_get_period(struct pool *p, struct stats_totals *delta, int64_t *period_us);
/* Close the stats period: called every stats_period by the main thread. */
void pool_roll_period(int64_t period_us);

/* Operator controls. db NULL = every pool. Return the number of pools hit. */
int pool_set_paused(const char *db, bool paused);
int pool_set_disabled(const char *db, bool disabled);
int pool_reconnect(const char *db);
/* Servers of db open at all (PAUSE waits for 0). */
int pool_open_servers(const char *db);
bool pool_db_disabled(const char *db);
bool pool_db_paused(const char *db);
/* The server must close instead of going back to the pool (RECONNECT,
 * RELOAD, PAUSE). */
bool pool_server_outdated(const struct server *s);
/* A new configuration: sizes, modes and limits change in place; pools
 * whose server address or credentials changed become stale. */
void pool_reconfigure(const struct config *cfg);
/* A stale pool's client moves to the current pool for its db/user. */
struct pool *pool_current(struct pool *p, char *err, size_t errlen);

/* Free all pools at exit. */
void pool_free_all(void);

#include "worker.h"
static inline struct stats_slot *pool_stats(struct pool *p, const struct worker *w)
{
	return &p->slots[w->id];
}

#endif
