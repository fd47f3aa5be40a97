/*
 * config.h - sluice's configuration: a PgBouncer-compatible INI file parsed
 * into an immutable snapshot.
 *
 * Owns: struct config and everything hanging off it (all strings and arrays
 * are heap copies owned by the snapshot; config_free() releases them all).
 * Must not: open sockets, start threads, or keep global state. A reload
 * builds a new snapshot and swaps it; readers never see a half-built one.
 */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

struct hba_rules;
struct ident_maps;

enum pool_mode {
	POOL_MODE_SESSION = 0,     /* server held for the whole client session */
	POOL_MODE_TRANSACTION = 1, /* server returned at ReadyForQuery 'I' */
	POOL_MODE_STATEMENT = 2,   /* like transaction, multi-statement tx refused */
};

enum auth_type {
	AUTH_TYPE_TRUST = 0, /* no password asked; user must exist in auth_file unless any */
	AUTH_TYPE_ANY,       /* no password asked, any user name accepted */
	AUTH_TYPE_PLAIN,     /* cleartext password exchange ("plain" / "password") */
	AUTH_TYPE_MD5,       /* md5 challenge; falls back to SCRAM when only a verifier is known */
	AUTH_TYPE_SCRAM,     /* scram-sha-256 */
	AUTH_TYPE_CERT,      /* TLS client certificate whose CN is the user name */
	AUTH_TYPE_HBA,       /* per connection, from auth_hba_file (pg_hba.conf syntax) */
	AUTH_TYPE_PEER,      /* unix socket peer user = user name (only from auth_hba_file) */
};

/* client_tls_sslmode / server_tls_sslmode, libpq's names and order. */
enum tls_mode {
	TLS_MODE_DISABLE,
	TLS_MODE_ALLOW,
	TLS_MODE_PREFER,
	TLS_MODE_REQUIRE,
	TLS_MODE_VERIFY_CA,
	TLS_MODE_VERIFY_FULL,
};

/* One line of [databases]: "name = host=... port=... dbname=... ..." */
/* Timeouts a [databases] or [users] entry may set for its pools, as in
 * PgBouncer 1.24+ (microseconds; -1 = not set there, 0 = off). For a pool
 * the [users] value wins over the [databases] one, which wins over the
 * global key of the same name. */
struct config_timeouts {
	int64_t query_timeout_us;            /* [users] */
	int64_t query_wait_timeout_us;       /* [users], [databases] */
	int64_t idle_transaction_timeout_us; /* [users] */
	int64_t transaction_timeout_us;      /* [users] */
	int64_t client_idle_timeout_us;      /* [users] */
	int64_t server_lifetime_us;          /* [databases] */
};

/* Startup parameters a [databases] entry asks of the server. */
enum {
	CONFIG_SP_APPLICATION_NAME,
	CONFIG_SP_CLIENT_ENCODING,
	CONFIG_SP_DATESTYLE,
	CONFIG_SP_TIMEZONE,
	CONFIG_SERVER_PARAMS
};
extern const char *const config_server_param_names[CONFIG_SERVER_PARAMS];

/* Hosts a [databases] entry may list ("host=a,b,c"). */
#define CONFIG_MAX_HOSTS 16

/* One [peers] line: where cancel requests for peer_id go (peer.h). */
struct config_peer {
	int id;                /* 1..CONFIG_MAX_PEER_ID */
	char *host;            /* IP address, host name or unix socket directory */
	int port;              /* default 6432 */
	int pool_size;         /* cancels in flight to it at once; -1 = default_pool_size */
};
#define CONFIG_MAX_PEER_ID 16383

/* The most shards a sharded [databases] entry may list ("shards=a,b,..."). */
#define CONFIG_MAX_SHARDS 64

/* Types of a shard key column ([sharded_tables] "column:type"); the same
 * values as enum pghash_type (src/pg/pghash.h, which the core does not
 * include; test_config checks that the two agree). */
enum config_shard_key_type {
	CONFIG_KEY_UNKNOWN = 0, /* not said: learned later from the shards' catalog */
	CONFIG_KEY_INT2,
	CONFIG_KEY_INT4,
	CONFIG_KEY_INT8,
	CONFIG_KEY_TEXT,        /* text or varchar */
	CONFIG_KEY_UUID,
	CONFIG_KEY_TYPES
};
/* The type a name means (int2, smallint, int4, integer, int, int8, bigint,
 * text, varchar, uuid; any case), or -1. */
int config_key_type_from_name(const char *name);

/* One [sharded_tables] line: "db.table = column" or
 * "db.schema.table = column:type". Names are plain identifiers, folded to
 * lower case as PostgreSQL folds unquoted ones. */
struct config_sharded_table {
	char *schema;          /* NULL: the table unqualified (any schema on the search path) */
	char *table;           /* table name */
	char *column;          /* its shard key column */
	int key_type;          /* enum config_shard_key_type */
	char *where;           /* "FILE:LINE" of the line */
};

/* Wire protocols of [databases] entries ("protocol = mysql"). */
enum config_protocol {
	CONFIG_PROTO_PG = 0,    /* PostgreSQL (the default) */
	CONFIG_PROTO_MYSQL = 1, /* MySQL and MariaDB */
	CONFIG_PROTOCOLS        /* how many */
};

struct config_database {
	char *name;            /* name clients connect to; "*" is the fallback */
	int protocol;          /* CONFIG_PROTO_*: which clients see it, what its servers speak */
	char *host;            /* server host or unix socket dir; NULL = unix default */
	int port;              /* server port, default 5432 (the first of ports) */
	int ports[CONFIG_MAX_HOSTS]; /* "port=a,b": one per host, or one for all */
	int n_ports;           /* entries in ports (0 = port only) */
	bool lb_disable;       /* load_balance_hosts = disable: stay on one host until it fails */
	char *dbname;          /* real database name; NULL = same as name */
	char *user;            /* forced server user; NULL = client's user */
	char *password;        /* password for the forced user or client's user; NULL = from auth_file */
	int pool_size;         /* -1 = default_pool_size */
	int min_pool_size;     /* -1 = global min_pool_size */
	int reserve_pool_size; /* -1 = global reserve_pool_size */
	int pool_mode;         /* -1 = global pool_mode, else enum pool_mode */
	int max_db_connections; /* -1 = global max_db_connections (0 = unlimited) */
	int max_db_client_connections; /* -1 = global (0 = unlimited) */
	struct config_timeouts t; /* query_wait_timeout, server_lifetime */
	char *connect_query;   /* run once on each new server connection; NULL = none */
	char *server_params[CONFIG_SERVER_PARAMS]; /* startup parameters sent to the server
						    * (config_server_param_names); NULL = not set */
	char *auth_user;       /* overrides the global auth_user for this database; NULL = global */
	char *auth_query;      /* overrides the global auth_query; NULL = global */
	char *auth_dbname;     /* overrides the global auth_dbname; NULL = global */
	/* Routing over several hosts (route.h). */
	int target;            /* target_session_attrs: enum config_target; -1 = not set
				* (read-write with several hosts, else any) */
	bool read_routing;     /* read_routing = auto: reads to standbys */
	bool primary_reads;    /* primary_reads = on: the primary takes its share of reads too */
	int64_t max_standby_lag_bytes; /* a standby further behind takes no reads; 0 = no limit */
	int64_t max_standby_lag_us;    /* the same in time; 0 = no limit */
	/* Workload mirroring. */
	char *mirror;          /* mirror = OTHER_DB; NULL = none */
	double mirror_fraction; /* share of transactions mirrored, 0..1 (default 1) */
	/* Sharding (docs/sharding.md). */
	char **shards;         /* shards = a,b,c: entry names in shard order; NULL = not sharded */
	int n_shards;          /* entries in shards (0 = not sharded) */
	int *shard_db;         /* index in config.databases of each shard, resolved after parsing */
	struct config_sharded_table *tables; /* its [sharded_tables] lines, in file order */
	size_t n_tables;
	char *where;           /* "FILE:LINE" of the entry, for errors found after parsing */
};

/* target_session_attrs, libpq's names and meanings. */
enum config_target {
	CONFIG_TARGET_ANY,
	CONFIG_TARGET_READ_WRITE,     /* the primary (not in recovery) */
	CONFIG_TARGET_PRIMARY,        /* the same */
	CONFIG_TARGET_READ_ONLY,      /* a standby */
	CONFIG_TARGET_STANDBY,        /* a standby */
	CONFIG_TARGET_PREFER_STANDBY, /* a standby, else any */
	CONFIG_TARGETS
};
extern const char *const config_target_names[CONFIG_TARGETS];
/* The target a database entry's pools use (the default resolved). */
int config_database_target(const struct config_database *db);

/* One line of [users]: "name = pool_mode=... max_user_connections=..." */
struct config_user {
	char *name;
	int pool_mode;            /* -1 = inherit */
	int max_user_connections; /* -1 = global */
	int pool_size;            /* -1 = inherit (user-level pool_size, like PgBouncer 1.21) */
	int reserve_pool_size;    /* -1 = inherit */
	int max_user_client_connections; /* -1 = global (0 = unlimited) */
	struct config_timeouts t; /* all but server_lifetime */
};

/* One line of auth_file: "user" "password-or-md5-hash-or-SCRAM-verifier" */
struct config_auth_entry {
	char *user;
	char *secret; /* plain text, "md5<32 hex>" or "SCRAM-SHA-256$<iter>:<salt>$<stored>:<server>" */
};

struct config {
	char *path; /* file this snapshot was read from */

	/* [sluice] / [pgbouncer] section */
	char *listen_addr;      /* comma separated, "*" = all IPv4+IPv6; NULL/"" = no TCP */
	int listen_port;        /* default 6432 */
	char *mysql_listen_addr; /* MySQL clients' addresses, as listen_addr; NULL = listen_addr */
	int mysql_listen_port;  /* MySQL clients' port; 0 = no MySQL listener (default) */
	char *mysql_server_version; /* version MySQL clients see in the greeting */
	char *unix_socket_dir;  /* NULL or "" = no unix socket; default "/tmp" */
	int unix_socket_mode;   /* default 0777 */
	char *unix_socket_group; /* group owning the unix socket; NULL = the process's own */
	int listen_backlog;     /* default 128 */
	int auth_type;          /* enum auth_type, default AUTH_TYPE_MD5 */
	char *auth_file;        /* path, NULL = none */
	int pool_mode;          /* enum pool_mode, default POOL_MODE_SESSION */
	int default_pool_size;  /* default 20 */
	int min_pool_size;      /* default 0 */
	int reserve_pool_size;  /* default 0 */
	int64_t reserve_pool_timeout_us; /* default 5 s */
	int max_client_conn;    /* default 100 */
	int max_db_connections; /* 0 = unlimited (default) */
	int max_user_connections; /* 0 = unlimited (default) */
	int max_db_client_connections;   /* clients per database; 0 = unlimited (default) */
	int max_user_client_connections; /* clients per user; 0 = unlimited (default) */
	char *server_reset_query; /* default "DISCARD ALL"; "" = none */
	bool server_reset_query_always; /* default false: only in session mode */
	bool server_fast_close;        /* session mode: a server RECONNECT/RELOAD outdated closes at
					 * its next transaction boundary, with its client */
	char *server_check_query; /* default "select 1"; "" = none */
	int64_t server_check_delay_us;     /* default 30 s */
	int64_t role_check_interval_us;    /* host roles re-checked (route.h), default 1 s */
	int mirror_queue_size;             /* transactions waiting for a mirror, per database
					    * and worker (default 64) */
	int64_t server_lifetime_us;        /* default 3600 s; 0 = unlimited */
	int64_t server_idle_timeout_us;    /* default 600 s; 0 = disabled */
	int64_t server_connect_timeout_us; /* default 15 s */
	int64_t server_login_retry_us;     /* default 15 s */
	int64_t client_login_timeout_us;   /* default 60 s */
	int64_t query_wait_timeout_us;     /* default 120 s; 0 = disabled */
	int64_t query_wait_notify_us;      /* a client queued this long gets a NOTICE, once; default 5 s; 0 = never */
	int64_t autodb_idle_timeout_us;    /* a pool made from the "*" entry, with no client and no
					    * server this long, is dropped; default 3600 s; 0 = at once */
	bool server_round_robin;           /* idle servers reused oldest first (FIFO); default false:
					    * the most recently released first (LIFO) */
	bool disable_pqexec;               /* a simple Query ('Q') closes the client; default false */
	bool application_name_add_host;    /* " - ADDR:PORT" added to application_name at login */
	int max_packet_size;               /* bytes; a longer client message closes the client;
					    * default 2147483647 */
	int64_t client_idle_timeout_us;    /* default 0 = disabled */
	int64_t idle_transaction_timeout_us; /* default 0 = disabled */
	int64_t query_timeout_us;          /* default 0 = disabled */
	char *logfile;          /* NULL = stderr only */
	char *pidfile;          /* NULL = none */
	char *admin_users;      /* comma separated list, NULL = none */
	char *stats_users;      /* comma separated list, NULL = none */
	char *ignore_startup_parameters; /* comma separated list, NULL = none */
	int workers;            /* default: number of online CPUs */
	bool adaptive_workers;  /* use only as many workers as the load needs (balance.h) */
	int adaptive_workers_busy; /* percent of a CPU at which one more worker joins */
	int peer_id;            /* this process in a group of peers ([peers], peer.h); 0 = none */
	bool so_reuseport;      /* accepted: sluice always shares its port among its workers */
	bool bpf_bypass;        /* default false: kernel fast path (eBPF sockmap) */
	int max_prepared_statements; /* per server connection in transaction/statement mode; 0 = names pass through; default 200 */
	int max_client_prepared_statements; /* named statements one client may hold (0 = no limit); default 10000 */
	int max_client_prepared_bytes;      /* bytes of their names and texts per client (0 = no limit); default 16 MiB */
	bool dynamic_sql_check;     /* after DO/CALL, look for session state left behind and pin; default on */
	char *track_extra_parameters; /* list: more startup parameters kept per client and set on each server */
	int verbose;            /* 0 = info; 1+ = debug (also -v on command line) */
	bool log_connections;   /* default true */
	bool log_disconnections; /* default true */
	bool log_pooler_errors; /* default true */
	int pkt_buf;            /* bytes per network buffer, default 4096 (min 1024) */
	int shard_buffer_size;  /* bytes a read over shards may keep to sort its rows (16 MiB) */
	int sbuf_high_watermark; /* bytes queued towards a peer before reading pauses, default 64 KiB */
	bool tcp_keepalive;     /* default true */
	int tcp_keepidle;       /* seconds before the first probe; 0 = kernel default */
	int tcp_keepintvl;      /* seconds between probes; 0 = kernel default */
	int tcp_keepcnt;        /* probes before the connection is dropped; 0 = kernel default */
	int tcp_user_timeout;   /* ms unacknowledged data may wait (TCP_USER_TIMEOUT); 0 = kernel default */
	int tcp_defer_accept;   /* nonzero: TCP listeners wake only for data (TCP_DEFER_ACCEPT, 45 s); default 0 */
	int tcp_socket_buffer;  /* bytes of SO_SNDBUF and SO_RCVBUF on client and server TCP sockets; 0 = kernel default */
	int64_t cancel_wait_timeout_us; /* a cancel in flight to PostgreSQL is given up after this; default 10 s, 0 = never */
	int scram_iterations;   /* PBKDF2 rounds of a SCRAM secret made from a plain auth_file password; default 4096 */
	int64_t transaction_timeout_us; /* default 0 = disabled */
	int64_t stats_period_us; /* default 60 s */
	bool log_stats;         /* default true: one stats line per database per stats_period */
	bool syslog;            /* default false: also log to syslog */
	char *syslog_ident;     /* default "sluice" */
	char *syslog_facility;  /* default "daemon" */
	int64_t shutdown_timeout_us; /* graceful shutdown deadline, default 30 s; 0 = none */
	int metrics_port;       /* Prometheus endpoint; 0 = off (default) */
	char *metrics_addr;     /* default "127.0.0.1" */
	int client_tls_sslmode; /* enum tls_mode, default disable */
	char *client_tls_cert_file, *client_tls_key_file, *client_tls_ca_file;
	char *client_tls_protocols; /* "secure" (default), "all", "legacy" or a list like "tlsv1.2,tlsv1.3" */
	char *client_tls_ciphers;   /* "fast" (default), "secure", "normal", "all", or an OpenSSL cipher list */
	char *client_tls13_ciphers; /* TLS 1.3 suites, "A:B"; NULL = OpenSSL's default */
	char *client_tls_ecdhcurve; /* "auto" (default: OpenSSL's groups), "none" (no ECDH), or curve names */
	char *client_tls_dheparams; /* "auto" (default), "legacy" (as auto) or "none": DHE in TLS 1.2 */
	int server_tls_sslmode; /* enum tls_mode, default prefer */
	char *server_tls_cert_file, *server_tls_key_file, *server_tls_ca_file;
	char *server_tls_protocols, *server_tls_ciphers;
	char *server_tls13_ciphers; /* TLS 1.3 suites towards PostgreSQL; NULL = OpenSSL's default */
	char *auth_hba_file;    /* pg_hba.conf-style rules for auth_type = hba */
	char *auth_ident_file;  /* pg_ident.conf-style user name maps for map= in auth_hba_file */
	char *auth_user;        /* runs auth_query; NULL = no lookup */
	char *auth_query;       /* default "SELECT usename, passwd FROM pg_shadow WHERE usename=$1" */
	char *auth_dbname;      /* database for auth_query; NULL = the client's */
	struct hba_rules *hba;  /* parsed auth_hba_file (auth_type = hba), owned */
	struct ident_maps *ident; /* parsed auth_ident_file (auth_type = hba and the key set), owned */

	struct config_database *databases; /* [databases], in file order */
	size_t n_databases;
	struct config_user *users;         /* [users], in file order */
	size_t n_users;
	struct config_peer *peers;         /* [peers], in file order (peer.h) */
	size_t n_peers;
	struct config_auth_entry *auth;    /* auth_file entries */
	size_t n_auth;
};

/*
 * Read and validate a configuration file (and the auth_file it names).
 * On success returns 0 and stores a new snapshot in *out.
 * On failure returns a negative errno and writes a one-line message of the
 * form "FILE:LINE: key 'KEY': why" (or "FILE: why") into err (size errlen).
 * Unknown keys are not errors: a warning naming file, line and key is
 * passed to warn_cb (may be NULL) for each.
 */
int config_load(const char *path, struct config **out, char *err, size_t errlen,
		void (*warn_cb)(const char *msg));

/* One "key = value" given at run time (admin console SET), applied to the
 * [sluice] section after the file. */
struct config_override {
	const char *key;
	const char *value;
};

/* config_load, then apply the overrides in order (errors name "SET"). */
int config_load_with(const char *path, const struct config_override *ov, size_t n_ov,
		     struct config **out, char *err, size_t errlen,
		     void (*warn_cb)(const char *msg));

/* Release a snapshot and everything it owns. NULL is allowed. */
void config_free(struct config *cfg);

/* Lookups; NULL when absent. The "*" database is returned by
 * config_find_database only when no exact match exists. */
const struct config_database *config_find_database(const struct config *cfg, const char *name);
/* The same for clients of one protocol (CONFIG_PROTO_*): NULL when the
 * entry found is another protocol's. */
const struct config_database *config_find_database_for(const struct config *cfg, const char *name, int protocol);
/* Hosts in its "host=a,b,c" (1 when none: the unix socket default). */
int config_database_hosts(const struct config_database *db);
const struct config_user *config_find_user(const struct config *cfg, const char *name);

/* How clients of database db are looked up when auth_file lacks them:
 * its [databases] entry's auth_user / auth_query / auth_dbname, else the
 * global ones. user NULL = no lookup; dbname NULL = the client's database.
 * The strings belong to cfg. */
struct config_auth_lookup {
	const char *user, *query, *dbname;
};
void config_auth_lookup_for(const struct config *cfg, const char *db, struct config_auth_lookup *out);
const char *config_find_secret(const struct config *cfg, const char *user);

/* True when name appears in the comma separated list (spaces ignored). */
bool config_list_contains(const char *list, const char *name);

/* SHOW CONFIG: main keys by index 0..config_key_count()-1. Writes the
 * value of key i in cfg into val and returns the key's name. */
size_t config_key_count(void);
const char *config_key_describe(const struct config *cfg, size_t i, char *val, size_t vlen);
/* True for keys read only at start-up (listen_addr, workers, ...). */
bool config_key_needs_restart(const char *name);
bool config_key_known(const char *name);
/* RELOAD: copy from old into cfg the values of keys that need a restart
 * and differ, calling changed_cb(key) for each. Returns 0 or -ENOMEM. */
int config_keep_restart_keys(struct config *cfg, const struct config *old,
			     void (*changed_cb)(const char *key));
/* A snapshot holding only the defaults (for SHOW CONFIG's default column). */
struct config *config_defaults(void);

/* Parse helpers shared with tests. Return 0 or -EINVAL. */
int config_parse_bool(const char *s, bool *out);
int config_parse_int(const char *s, int64_t min, int64_t max, int64_t *out);
/* Durations: plain number = seconds (fractions allowed), or with unit
 * suffix us, ms, s, min, h, d. */
int config_parse_duration_us(const char *s, int64_t *out);
int config_parse_pool_mode(const char *s, int *out);
int config_parse_auth_type(const char *s, int *out);
int config_parse_sslmode(const char *s, int *out);

#endif
