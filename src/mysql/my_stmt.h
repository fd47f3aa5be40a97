/*
 * my_stmt.h - server-side prepared statements (COM_STMT_*) that move with
 * the client in transaction mode.
 *
 * A client sees statement ids sluice hands out; each server keeps its own
 * statements, keyed by schema and text, prepared there lazily the first
 * time a client executes one on it. Because libmariadb and Connector/J
 * send the parameter types only with the first execute after a bind,
 * sluice keeps each statement's last bound types, per client and per
 * server statement, and adds them to an execute that goes to a server
 * whose statement has other types (or none yet).
 *
 * Owns: struct my_stmts (a client's statements) and struct my_server_stmts
 * (a server's), and their memory. The state machines call in at the points
 * named below; the rest is private to my_stmt.c.
 */
#ifndef SLUICE_MY_STMT_H
#define SLUICE_MY_STMT_H

#include <stdbool.h>
#include <stdint.h>

struct my_client;
struct my_server;
struct my_packet;
struct my_stmt;
struct my_server_stmt;

/* A client's statements, under the ids sluice gave them. */
struct my_stmts {
	struct my_stmt **v;
	uint32_t n, cap;
	uint32_t next_id;          /* the last id handed out (they start at 1) */
	uint32_t preparing;        /* the id whose COM_STMT_PREPARE is being answered */
	uint64_t bytes;            /* of their texts (max_client_prepared_bytes) */
};

/* A server session's statements, at most max_prepared_statements: the
 * least recently used is closed to make room. */
struct my_server_stmts {
	struct my_server_stmt *v;
	uint32_t n, cap;
	uint64_t clock;            /* use counter for the LRU */
};

/* Is sluice translating statement ids (max_prepared_statements > 0)?
 * Otherwise COM_STMT_PREPARE pins the client to its server, as before. */
bool my_stmt_enabled(void);

/* What the client's command at its cursor needs (my_client.c). */
enum my_stmt_verdict {
	MY_STMT_FORWARD, /* forward it as it is now (its id was rewritten in place) */
	MY_STMT_SENT,    /* sluice sent it rewritten: its answer comes as usual */
	MY_STMT_ANSWERED, /* sluice answered it (an error, a no-op): the server may go */
	MY_STMT_WAIT,    /* sluice prepares it on the server first: process again
			  * when my_client_resume says so */
	MY_STMT_GONE,    /* the client was closed */
};

/* Before a server is needed: COM_STMT_CLOSE, and COM_STMT_RESET /
 * COM_STMT_FETCH of a client without a server, are sluice's own; an
 * execute of a statement that reads LAST_INSERT_ID() sets
 * c->reads_insert_id. True when the command was dealt with here. */
bool my_stmt_command_here(struct my_client *c, const struct my_packet *pk);

/* With a server linked: a COM_STMT_* command at the cursor (pk->len are
 * the bytes present; full its whole payload length). For
 * COM_STMT_PREPARE the packet is whole. */
enum my_stmt_verdict my_stmt_command(struct my_client *c, const struct my_packet *pk, uint32_t full);

/* my_server.c: the first packet of the answer to a client's
 * COM_STMT_PREPARE, mutable in place before it goes to the client (it
 * carries the server's statement id, which becomes sluice's). */
void my_stmt_prepare_answer(struct my_server *s, uint8_t *payload, uint32_t len);

/* my_server.c: the first packet of the answer to sluice's own
 * COM_STMT_PREPARE. False when it is an error (the server's statement
 * entry is gone; the client's command gets the error). */
bool my_stmt_internal_prepared(struct my_server *s, const uint8_t *payload, uint32_t len);

/* The client's or server's session lost its statements
 * (COM_RESET_CONNECTION, COM_CHANGE_USER, a reset). */
void my_stmts_clear(struct my_stmts *t);
void my_server_stmts_clear(struct my_server_stmts *t);

/* A client's statements for the new process of an online restart
 * (my_handover.c): encode, and decode into an empty table (sets d->err
 * when the bytes do not make sense). */
struct takeover_enc;
struct takeover_dec;
void my_stmts_encode(const struct my_stmts *t, struct takeover_enc *e);
void my_stmts_decode(struct my_stmts *t, struct takeover_dec *d);

/* Does the client's statement id only read (my_sqlread.h, classified
 * once when it was prepared)? False for an unknown id. */
bool my_stmt_reads_only(const struct my_client *c, uint32_t id);

/* A client's statement for my_mirror.c: its text (not NUL-terminated),
 * parameter count and last bound types (2 bytes each, NULL = never
 * bound). False for an unknown id or one not prepared yet. */
bool my_stmt_describe(const struct my_client *c, uint32_t id, const char **text, uint32_t *text_len,
		      uint16_t *params, const uint8_t **types);

/* How many statements a client / server session has (SHOW, tests). */
static inline uint32_t my_stmts_count(const struct my_stmts *t) { return t->n; }

#endif
