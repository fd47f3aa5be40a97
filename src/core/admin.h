/*
 * admin.h - the admin console: the virtual database "sluice" (also
 * "pgbouncer"), PgBouncer's SHOW and control commands over the simple
 * query protocol (docs/operations.md).
 *
 * Owns: struct admin_session (one per console client: the reply being
 * streamed, the command waiting for a condition, the cross-worker job in
 * flight) and the reply builder used by admin_show.c.
 * Must not: touch another worker's connections; SHOW CLIENTS and friends
 * run a job on every worker (worker_run_all) and collect the rows.
 */
#ifndef SLUICE_ADMIN_H
#define SLUICE_ADMIN_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct client;
struct config;
struct worker;

enum admin_level {
	ADMIN_NONE = 0,  /* not allowed on the console */
	ADMIN_STATS = 1, /* stats_users: SHOW only */
	ADMIN_FULL = 2,  /* admin_users: everything */
};

/* The console's database names, in name order ("pgbouncer", "sluice"). */
#define ADMIN_CONSOLE_DBS 2
extern const char *const admin_console_dbs[ADMIN_CONSOLE_DBS];
/* The user name PgBouncer gives its console (its forced user). */
#define ADMIN_CONSOLE_USER "pgbouncer"

bool admin_is_console_db(const char *db);
/* What user may do on the console under cfg. */
int admin_level_for(const struct config *cfg, const char *user);
/* PgBouncer's rule for its own console user: user "pgbouncer" connected
 * over the unix socket (fd) by a process of the OS user sluice runs as
 * (peer credentials) is an admin without a password. */
bool admin_peer_is_own_user(int fd, const char *user);
/* Console sessions logged in to db now (SHOW POOLS). Any thread. */
int admin_console_sessions(const char *db);
/* Connections to a console database, logged in or not: what a shutdown
 * does not wait for (control_exit_due). Any thread. */
int admin_console_clients(void);
/* A SHUTDOWN WAIT_FOR_SERVERS / WAIT_FOR_CLIENTS has closed every
 * listener: the console that asked gets its answer (on c's worker). */
void admin_shutdown_begun(struct client *c);

/* The client logged in to the console (its protocol writes the welcome).
 * Returns 0 or -ENOMEM. */
int admin_start(struct client *c, int level);
/* One whole message from the client: its type byte and body (for a
 * Query, the text and its terminating NUL). */
void admin_message(struct client *c, uint8_t type, const uint8_t *body, uint32_t len);
/* The console must not read the next message yet (reply still streaming,
 * a command waiting for its condition or for the workers). */
bool admin_blocked(const struct client *c);
/* Move reply bytes into the socket's buffer as room allows. */
void admin_pump(struct client *c);
bool admin_wants_write(const struct client *c);
/* A job is in flight: the client's memory must outlive client_close. */
bool admin_job_pending(const struct client *c);
void admin_tick(struct client *c, int64_t now_us);
void admin_free(struct client *c);

/* ---- reply builder (admin.c), used by admin_show.c ---- */

struct admin_reply {
	uint8_t *data;   /* heap: whole protocol messages */
	size_t len, cap;
	size_t sent;     /* bytes already moved to the socket buffer */
	size_t msg_off;  /* start of the message being built */
	int cells;       /* cells written in the current DataRow */
	bool oom;        /* sticky: an allocation failed */
};

struct admin_col {
	const char *name;
	char type;       /* 's' text, 'i' bigint */
};

void reply_columns(struct admin_reply *r, const struct admin_col *cols, int n);
void reply_row_begin(struct admin_reply *r, int n);
void reply_cell(struct admin_reply *r, const char *s); /* NULL = SQL NULL */
void reply_cell_int(struct admin_reply *r, int64_t v);
void reply_cellf(struct admin_reply *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void reply_row_end(struct admin_reply *r);
void reply_complete(struct admin_reply *r, const char *tag);
void reply_notice(struct admin_reply *r, const char *msg, const char *detail);
void reply_append(struct admin_reply *r, const void *p, size_t n);
void reply_free(struct admin_reply *r);

/* ---- jobs that run on every worker ---- */

enum admin_job_kind {
	JOB_SHOW_CLIENTS,
	JOB_SHOW_SERVERS,
	JOB_SHOW_FDS,
	JOB_KILL_CLIENT,  /* close client id */
	JOB_KILL_DB,      /* close every client and server of db ("" = every database) */
	JOB_COUNT_OLD,    /* count servers outdated by RECONNECT/RELOAD (WAIT_CLOSE) */
	JOB_SHOW_PINS,    /* the clients pinned to their server, and why */
};

struct admin_job {
	struct client *c;        /* console client (on origin) */
	struct worker *origin;   /* its worker */
	int kind;                /* enum admin_job_kind */
	char db[64];             /* database argument, "" = all */
	uint64_t id;             /* JOB_KILL_CLIENT */
	int64_t now_wall_us;     /* wall clock at the start, for times shown */
	pthread_mutex_t lock;    /* protects rows and count */
	struct admin_reply rows; /* DataRows from all workers */
	int count;               /* matches (kill, count) */
};

/* admin_show.c */
/* SHOW what: writes the answer (without ReadyForQuery). Returns false when
 * what is not a SHOW command this console knows. A cross-worker SHOW sets
 * *job_kind instead of writing (>= 0). */
bool admin_show(struct client *c, const char *what, struct admin_reply *r, int *job_kind);
/* Rows of w's connections for a SHOW job (runs on w). */
void admin_show_collect(struct worker *w, struct admin_job *job);
/* The header of a SHOW job's answer. */
void admin_show_header(int kind, struct admin_reply *r);

#endif
