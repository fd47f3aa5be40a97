/*
 * my_session.h - the system variables a MySQL client set in its session
 * (SET time_zone, SET NAMES, sql_mode, ...), remembered per client and
 * restored on whichever server it gets in transaction mode
 * (docs/behaviour.md, "MySQL").
 *
 * Owns: struct my_vars, the list of a session's variables that differ from
 * what a fresh login gives, and the text of the statements that follow
 * them. Must not: do I/O (my_server.c sends what my_session_restore
 * writes).
 */
#ifndef SLUICE_MY_SESSION_H
#define SLUICE_MY_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct my_client;
struct my_server;

/* Bytes of a list; a client that sets more is pinned instead. */
#define MY_VARS_MAX 1024

/* A session's variables set away from a fresh login's values, in the
 * order they were set (a later SET NAMES overrides an earlier
 * character_set_client): "key\0value\0" pairs. A key is a variable's name
 * in lower case, or "NAMES" / "CHARACTER SET" (upper case: no variable
 * has those names); a value is a literal as the statement will say it
 * again: a number, a word (ON, latin1, DEFAULT) or a single-quoted string
 * without quotes or backslashes inside. Heap-allocated, owned by the
 * client or server that points to it; NULL = none. */
struct my_vars {
	uint16_t len;              /* bytes of text used */
	char text[MY_VARS_MAX];    /* the pairs, oldest first */
};

/* A COM_QUERY (payload: len bytes, the command byte first, in the
 * client's receive buffer just after the packet's header, which tells
 * whether the whole packet is there): is it a lone SET of session
 * system variables to literal values? Then true, and c->want_vars holds
 * what c->vars becomes when it succeeds. False: the caller screens it as
 * before (a SET pins). */
bool my_session_screen(struct my_client *c, const uint8_t *payload, uint32_t len);
/* The client's command on s was answered (ok: without an error): a SET
 * screened above takes effect on both. */
void my_session_answered(struct my_client *c, struct my_server *s, bool ok);
/* After my_session_answered: the SET gave variables values from
 * expressions (Connector/J's `sql_mode = CONCAT(@@sql_mode, ...)`), which
 * sluice asks the server for: the query (SELECT @@session.x, ...) written
 * to out; 0 when there is none, -1 when it does not fit (the caller pins). */
int my_session_learn_query(const struct my_client *c, char *out, size_t cap);
/* The row that query returned (a text row), or NULL when it failed: the
 * values go into the client's and the server's lists; one that cannot be
 * said again as a literal (a quote inside, NULL) pins the client. */
void my_session_learned(struct my_client *c, struct my_server *s, const uint8_t *row, uint32_t len);

/* The last packet of an answer on s (before my_session_answered): when the
 * server reports system variables that changed (SESSION_TRACK, for
 * clients that asked for it) and the command was no SET sluice read (a
 * CALL whose procedure sets time_zone), the client is pinned. */
void my_session_tracked(struct my_server *s, const uint8_t *payload, uint32_t len);
/* COM_RESET_CONNECTION succeeded: the client has no variables now, and the
 * server's character set is its global default, not its clients'. */
void my_session_reset_connection(struct my_client *c, struct my_server *s);
/* The statement that brings s's session to c's variables, written to out
 * (cap bytes). Returns its length, 0 when s is already there, -1 when it
 * does not fit (the caller pins). */
int my_session_restore(const struct my_server *s, const struct my_client *c, char *out, size_t cap);
/* That statement succeeded: s has c's variables. False when out of memory
 * (s's variables are unknown then: the caller resets it before reuse). */
bool my_session_restored(struct my_server *s, const struct my_client *c);
/* A fresh login or COM_CHANGE_USER: the server has no variables set. */
void my_session_server_clear(struct my_server *s);
void my_session_client_free(struct my_client *c);

#endif
