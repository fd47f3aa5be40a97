/*
 * my_conn.h - MySQL's client and server structs and the functions the two
 * state machines (my_client.c, my_server.c) call on each other.
 *
 * Owns: struct my_client and struct my_server (they begin with the core's
 * struct client and struct server, core/client.h and core/server.h). A
 * client lives on the worker that accepted it, a server on the worker
 * whose loop has its fd, as for PostgreSQL.
 *
 * What sluice does with a MySQL session (docs/behaviour.md, "MySQL"):
 * clients log in to sluice (mysql_native_password or caching_sha2_password
 * against auth_file), sluice logs in to the server with the pool's user;
 * commands and their answers are forwarded as they are (a command's
 * packets restart at sequence id 0, so nothing is renumbered); in
 * transaction mode the server goes back to the pool when an answer ends
 * outside a transaction (the status flags of its last OK or EOF), unless
 * the client did something the session keeps (it is pinned then).
 */
#ifndef SLUICE_MY_CONN_H
#define SLUICE_MY_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "client.h"
#include "my_proto.h"
#include "my_stmt.h"
#include "my_session.h"
#include "server.h"

struct my_server;

/* Where sluice is while it logs in to a MySQL server as a pool's user
 * (its servers, and my_kill.c's short connections). */
struct my_pool_auth {
	uint8_t seq;               /* sequence id of sluice's next packet in the login */
	uint8_t scramble[MY_SCRAMBLE_LEN]; /* nonce of the server's greeting, or of a switch */
	char plugin[64];           /* plugin of the login exchange */
};

/* Commands sluice sends on a server before a client's (my_server_link). */
enum my_internal {
	MY_INTERNAL_INIT_DB,    /* COM_INIT_DB to the client's database */
	MY_INTERNAL_AUTOCOMMIT, /* SET autocommit to the client's */
	MY_INTERNAL_PREPARE,    /* COM_STMT_PREPARE of a client's statement (my_stmt.c) */
	MY_INTERNAL_STMT_SCHEMA, /* COM_INIT_DB to the schema a statement was prepared in;
				  * an INIT_DB back to the client's follows */
	MY_INTERNAL_INSERT_ID,  /* DO LAST_INSERT_ID(n): the client's, before it reads it */
	MY_INTERNAL_SESSION,    /* SET the client's session variables (my_session.c) */
	MY_INTERNAL_LEARN,      /* SELECT the values a SET with expressions gave (my_session.c) */
};

/* Where a client's connection phase is. */
enum my_client_login {
	MY_LOGIN_GREETED,    /* handshake sent, waiting for its response */
	MY_LOGIN_SWITCHED,   /* AuthSwitchRequest (mysql_native_password) sent, waiting for the answer */
	MY_LOGIN_TLS,        /* SSLRequest read: the TLS handshake runs, then the
			      * HandshakeResponse41 comes inside it */
	MY_LOGIN_SWITCHED_SHA2, /* AuthSwitchRequest (caching_sha2_password) sent */
	MY_LOGIN_FULL_AUTH,  /* caching_sha2_password's "perform full authentication"
			      * sent: the password comes (in clear over TLS, else
			      * RSA-encrypted after a request for the public key) */
	MY_LOGIN_DONE,       /* OK sent: the command phase */
};

/* A field that is session state (what the client expects its session to
 * keep between transactions) must travel in an online restart: add a
 * record for it in my_handover.c (`fields`), and say in my_handover_ok
 * when it cannot move. */
struct my_client {
	union {
		struct client base;                   /* the core's view (client.h) */
		struct { CLIENT_FIELDS(my_server) }; /* the same fields, by name */
	};
	uint8_t login;             /* enum my_client_login */
	uint8_t seq;               /* sequence id of sluice's next packet in the login */
	uint8_t scramble[MY_SCRAMBLE_LEN]; /* nonce of sluice's greeting (and of a switch) */
	uint32_t caps;             /* capabilities agreed with the client */
	bool changing_user;        /* the login under way is a COM_CHANGE_USER's */
	uint8_t charset;           /* collation id it asked for */
	char schema[64];           /* its current database ("" = none): COM_INIT_DB */
	char want_schema[64];      /* a COM_INIT_DB in flight asks for this one */
	bool autocommit_off;       /* its session has autocommit = 0 (every statement opens a
				    * transaction): set on a server before its commands */
	bool pinned;               /* did something a shared server cannot keep: keeps its server */
	const char *pin_why;       /* why it is pinned, for SHOW PINS (a static string; NULL
				    * with pinned = a prepared statement or an option) */
	struct my_vars *vars;      /* system variables it SET (my_session.h); NULL = none; owned */
	struct my_vars *want_vars; /* what vars becomes if the SET in flight succeeds; owned */
	bool infile;               /* sending a LOCAL INFILE's packets, up to an empty one */
	bool continued;            /* the last packet read was 16 MiB - 1 long: one follows */
	uint32_t skip_cmd;         /* bytes of a command longer than the receive buffer still
				    * to forward as they arrive */
	bool wait_flush;           /* a command waits until the last one left the buffer */
	bool reads_insert_id;      /* the command at the cursor reads LAST_INSERT_ID() */
	uint64_t last_insert_id;   /* the last id its statements generated (OK packets) */
	struct my_stmts stmts;     /* its prepared statements, under sluice's ids */
	bool killing;              /* its KILL is on its way (my_kill.c): not read until answered */
	/* read_routing (my_route.h) */
	uint8_t route_kind;        /* its current transaction: enum my_route_kind */
	int64_t last_write_us;     /* when its last write on the primary ended (route.h), 0 = never */
	/* workload mirroring (my_mirror.h) */
	struct my_mirror_chan *mirror_chan; /* where its transactions are mirrored, NULL = nowhere */
	struct my_mirror_tx *mirror_tx; /* its transaction being captured, NULL = none; owned */
	const struct config *mirror_cfg; /* configuration mirror_chan was judged under */
};

/* What a server's session holds besides its transaction. */
struct my_server {
	union {
		struct server base;                   /* the core's view (server.h) */
		struct { SERVER_FIELDS(my_client) }; /* the same fields, by name */
	};
	uint8_t login_step;        /* 0 = waiting for the greeting, 1 = response sent */
	bool tls_handshaking;      /* SSLRequest sent, the TLS handshake runs (CONNECTING) */
	struct my_pool_auth auth;  /* the login (and a reset's COM_CHANGE_USER) */
	uint32_t caps;             /* capabilities agreed with the server */
	uint32_t conn_id;          /* the server's connection id (SHOW SERVERS remote_pid) */
	struct my_answer answer;   /* the answer being forwarded */
	bool answering;            /* a forwarded command is not fully answered yet */
	uint8_t internal;          /* commands sluice sent itself whose answers it swallows,
				    * ahead of any forwarded one (in order) */
	uint8_t internal_kind[4];  /* what they are: enum my_internal, oldest first */
	bool autocommit_off;       /* the session has autocommit = 0 (status flags) */
	bool in_trans;             /* the last status said MY_STATUS_IN_TRANS */
	bool pinned;               /* its client did something session-bound: reset before reuse */
	bool continued;            /* the last packet forwarded was 16 MiB - 1 long */
	uint32_t skip_rows;        /* packets forwarded without examination: the rest of a
				    * row too long for the receive buffer */
	char schema[64];           /* the session's current database */
	char want_schema[64];      /* a COM_INIT_DB sluice sent asks for this one */
	bool internal_started;     /* the answer to the oldest internal command has begun */
	uint64_t last_insert_id;   /* LAST_INSERT_ID() of the session, as far as sluice saw */
	uint64_t want_insert_id;   /* what a DO LAST_INSERT_ID sluice sent sets */
	bool answered_meanwhile;   /* the client's command is answered (by sluice, or before
				    * sluice's own that follow it): my_client_answered once
				    * the internal commands are done */
	struct my_server_stmts stmts; /* the statements its session has prepared */
	uint8_t kills;             /* KILL QUERYs for its command on their way (my_kill.c): it is
				    * not lent to another client until they are answered */
	struct my_vars *vars;      /* system variables its session has away from a fresh
				    * login's (my_session.h); NULL = none; owned */
	/* Routed pools (my_monitor.h): the role query, at login or a monitor's. */
	bool mariadb;              /* its greeting's version says MariaDB */
	bool role_query;           /* sluice's role query is out: its answer is my_monitor's */
	uint8_t role_found;        /* what its answer says (enum host_role, route.h) */
	bool pos_comparable;       /* monitors: pos is a single GTID domain's sequence number */
	uint64_t pos;
	int64_t aside_sent_us;     /* monitors: when the current query was sent */
};

#define CLOG(c, lvl, fmt, ...) \
	log_write(lvl, "C-%llu %s/%s@%s mysql " fmt, (unsigned long long)(c)->id, \
		  (c)->db[0] ? (c)->db : "-", (c)->user[0] ? (c)->user : "-", (c)->peer, ##__VA_ARGS__)
#define SLOG(s, lvl, fmt, ...) \
	log_write(lvl, "S-%llu %s/%s@%s mysql " fmt, (unsigned long long)(s)->id, (s)->pool->db_name, \
		  (s)->pool->user, server_core_host(&(s)->base)->addr_text, ##__VA_ARGS__)

/* The payload length in the header at p (4 bytes present), whole or not. */
static inline uint32_t my_header_len(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
}

static inline struct my_client *my_client(struct client *c) { return (struct my_client *)c; }
static inline struct my_server *my_server(struct server *s) { return (struct my_server *)s; }

/* my_client.c */
void my_client_accept(struct worker *w, int fd, const char *peer, bool has_data);
void my_client_set_state(struct my_client *c, int state);
/* Send what sluice wrote for the client; false when the client is gone. */
bool my_client_flush_own(struct my_client *c);
void my_client_on_server(struct my_client *c, struct my_server *s);
void my_client_fail(struct my_client *c, const char *sqlstate, const char *msg);
void my_client_close(struct my_client *c, const char *reason);
void my_client_free(struct my_client *c);
void my_client_tick(struct my_client *c, int64_t now_us);
void my_client_update_events(struct my_client *c);
/* The answer to the client's command is complete and sent: read on (the
 * server may have gone back to the pool). */
void my_client_answered(struct my_client *c);
/* sluice's own command on its server (COM_INIT_DB) is answered: the
 * client's waiting command goes now. */
void my_client_resume(struct my_client *c);
/* Its server is gone or broken. */
void my_client_server_lost(struct my_client *c, const char *msg);
/* A client taken over from the previous process (my_handover.c): logged
 * in, IDLE, not reading yet; the caller fills in its state, its pool and
 * its cancel key, then my_client_resume. */
struct my_client *my_client_adopt(struct worker *w, int fd, const char *peer);

/* my_login.c: the client's connection phase */
bool my_login_greet(struct my_client *c);
void my_login_packet(struct my_client *c, const struct my_packet *pk);
/* The pool for c's db, user, capabilities and character set (its variant:
 * clients that differ in them never share a server); NULL with err. */
struct pool *my_login_pool(const struct my_client *c, char *err, size_t errlen);
/* After an SSLRequest (login MY_LOGIN_TLS, the request dropped): start the
 * handshake; then advance it on each socket event. */
void my_login_start_tls(struct my_client *c);
/* Until the client's first packet is in, it is read with
 * my_login_read_first (pgsock_read's contract), not pgsock_read. */
bool my_login_reads_exactly(const struct my_client *c);
int my_login_read_first(struct my_client *c);
void my_login_tls_step(struct my_client *c);
/* COM_CHANGE_USER in the command phase (the packet still at the cursor):
 * the client logs in again, maybe to another pool. */
void my_login_change_user(struct my_client *c, const struct my_packet *pk);
/* An ERR packet with MySQL's error number code, and close. */
void my_client_fail_code(struct my_client *c, uint16_t code, const char *sqlstate, const char *msg);
/* The client's session is new (COM_CHANGE_USER): forget what sluice keeps
 * of the old one. Whoever adds per-client session state clears it here. */
void my_client_session_cleared(struct my_client *c);

/* my_screen.c: what a COM_QUERY's text means to the pooler */
void my_screen_query(struct my_client *c, const uint8_t *payload, uint32_t len);
bool my_query_is_kill(const uint8_t *text, size_t n);
/* Does a statement text read LAST_INSERT_ID() (1) or set it with
 * LAST_INSERT_ID(expr) (2)? 0: neither. */
int my_screen_insert_id_use(const char *s, size_t n);

/* my_server_login.c: sluice's login to a server, and its reset */
void my_server_login_packet(struct my_server *s, const struct my_packet *pk);
void my_server_login_fail(struct my_server *s, const char *sqlstate, const char *msg, bool auth_error);
/* Advance the TLS handshake towards the server (tls_handshaking). */
void my_server_tls_step(struct my_server *s);
/* Clear the session for the next client (COM_CHANGE_USER). */
bool my_server_reset_session(struct my_server *s);
/* The password sluice logs in to p's servers with ("" when none), and its
 * answer to a nonce for plugin (returns the plugin answered for:
 * mysql_native_password for one sluice does not speak). Also for
 * my_kill.c's connections, which log in as the pool's user. */
const char *my_server_password(const struct pool *p);
const char *my_server_auth_answer(const struct pool *p, const char *plugin, const uint8_t *nonce, uint8_t *out,
				  uint32_t *len);
/* A packet of the exchange after sluice's response other than the final
 * OK or ERR (the caller's): an AuthSwitchRequest or caching_sha2's
 * AuthMoreData, answered into out (tls: the connection is inside TLS).
 * 0 to go on; -1 with the SQLSTATE, a message, and whether the password
 * was what the server refused. */
int my_pool_auth_more(const struct pool *p, struct my_pool_auth *a, const struct my_packet *pk, bool tls,
		      struct iobuf *out, const char **sqlstate, char *err, size_t errlen, bool *auth_error);

/* my_server.c */
void my_server_launch(struct worker *w, struct pool *p);
/* A server sluice uses itself (server.h enum server_aside) on host of p:
 * my_monitor.c's. NULL with err when it could not even start. */
struct my_server *my_server_launch_aside(struct worker *w, struct pool *p, int host, int kind, char *err,
					 size_t errlen);
/* Set the session's LAST_INSERT_ID() to the client's before its command
 * (which waits for the answer). False when it cannot be queued. */
bool my_server_restore_insert_id(struct my_server *s, uint64_t id);
void my_server_update_events(struct my_server *s);
/* Link a clean idle server to c; it sends COM_INIT_DB first when the
 * session is in another database than the client. */
void my_server_link(struct my_server *s, struct my_client *c);
/* The client's command at its socket's cursor was marked for forwarding
 * (cmd: its first payload bytes): track its answer and send. */
void my_server_forward(struct my_server *s, const uint8_t *cmd, uint32_t len);
/* Queue a command of sluice's own (command byte, then len bytes) ahead of
 * the client's; its answer is swallowed. False when the queue is full or
 * out of memory. */
bool my_server_send_internal(struct my_server *s, int kind, uint8_t command, const void *data, size_t len);
/* Send what waits: sluice's own packets, then the client's examined ones. */
void my_server_send_pending(struct my_server *s);
/* Send what waits towards the client (and release the server when the
 * answer is complete and the transaction over). True when s is no longer
 * the caller's to touch (back in the pool, or the client closed). */
bool my_server_deliver_pending(struct my_server *s);
/* server_check_query for MySQL: a COM_PING on an idle server taken from
 * its pool; it comes back through pool_release, or closes. */
void my_server_check(struct my_server *s);
/* The client went away: reset the session for the next one, or close. */
void my_server_client_gone(struct my_server *s);
bool my_server_at_boundary(const struct my_server *s);
void my_server_watch_idle(struct my_server *s);
void my_server_detach(struct my_server *s);
void my_server_tick(struct my_server *s, int64_t now_us);
void my_server_close(struct my_server *s, const char *reason);
void my_server_free(struct my_server *s);

/* my_kill.c: KILL naming sluice's connection ids */
/* A COM_QUERY whose text begins with KILL (my_query_is_kill). */
void my_kill_query(struct my_client *c, const struct my_packet *pk);
/* What the KILL statement s (n bytes) says: MariaDB's KILL [HARD | SOFT]
 * [CONNECTION | QUERY [ID]] {id | CONNECTION_ID() | USER name}, with an
 * optional ';'. NULL with *target (self for CONNECTION_ID()) and *query
 * set, or why sluice refuses it (KILL QUERY ID, KILL USER, an expression,
 * more after it). */
const char *my_kill_parse(const char *s, size_t n, uint32_t self, uint64_t *target, bool *query);
/* COM_PROCESS_KILL: KILL CONNECTION with a 4-byte id. */
void my_kill_command(struct my_client *c, const struct my_packet *pk);
/* A client that named no database at login is logged in without a pool:
 * it can only KILL (what the mariadb CLI's Ctrl-C connects for), ping
 * and quit. */
void my_kill_login_finish(struct my_client *c);
/* Such a client's command: true when refused here (1046). */
bool my_kill_refuse_without_pool(struct my_client *c, const struct my_packet *pk);
/* s is closing: KILLs on their way for it hold it no more. */
void my_kill_forget_server(struct my_server *s);
/* proto_ops worker_tick: KILLs not answered in time are given up. */
void my_kill_tick(struct worker *w, int64_t now_us, bool all);

#endif
